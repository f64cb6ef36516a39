"""Facts in, commands out: the deploy's decisions on fixture hosts."""

import pytest

from tests.unit.deploy_cases import load_cases, run_case


@pytest.mark.parametrize("name,case", load_cases(), ids=[n for n, _ in load_cases()])
def test_case(name, case):
    assert run_case(case) == case["expected"], case.get("description")
