"""Fixtures the end-to-end modules share."""

from __future__ import annotations

import pytest

from tests.helpers import cli


@pytest.fixture(scope="module")
def serving(lab, request):
    """Scout deployed on every lab host, with the calling module's `ENV` (its own HF token)."""
    r = cli("deploy", "--hosts", "lab", "--model", "scout", "--json", env=getattr(request.module, "ENV", {}), timeout=1200)
    assert r.code == 0, r.stderr[-3000:]
    return lab
