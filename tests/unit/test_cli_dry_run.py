"""`--dry-run` on the example inventory: no connection, the cookbook's flags for every host."""

from tests.helpers import cli

COOKBOOK_DOCKER_FLAGS = (
    "--ipc=host --network=host --privileged --cap-add=CAP_SYS_ADMIN --device=/dev/kfd --device=/dev/dri "
    "--device=/dev/mem --group-add=video --cap-add=SYS_PTRACE --security-opt=seccomp=unconfined"
)


def _commands(result, host):
    return result.json["commands"][host]


def test_maverick_dry_run_prints_cookbook_flags_for_every_host():
    r = cli("deploy", "--hosts", "mi300-cluster", "--model", "maverick", "--dry-run", "--json", "-i", "inventory/mi300-cluster.yml")
    assert r.code == 0, r.stderr
    hosts = sorted(r.json["recap"])
    assert hosts == ["mi300-01", "mi300-02", "mi300-03", "mi300-04"]
    for host in hosts:
        run = next(c for c in _commands(r, host) if c.startswith("docker run"))
        assert COOKBOOK_DOCKER_FLAGS in run
        assert "lmsysorg/sglang:v0.5.9-rocm720-mi30x sglang serve --model-path meta-llama/Llama-4-Maverick-17B-128E-Instruct --tp 8" in run
        assert run.endswith("--enable-multimodal --context-length 65536 --dtype bfloat16 --trust-remote-code --host 0.0.0.0 --port 8000")
        assert any(c == "docker pull lmsysorg/sglang:v0.5.9-rocm720-mi30x" for c in _commands(r, host))
        assert r.json["recap"][host]["unreachable"] is False


def test_scout_fp8_eagle3_tool_calls_dry_run():
    r = cli("deploy", "--hosts", "mi300-cluster", "--model", "scout", "--quant", "fp8", "--eagle3", "--tool-calls",
            "--dry-run", "--json", "-i", "inventory/mi300-cluster.yml")  # fmt: skip
    assert r.code == 0, r.stderr
    for host in r.json["recap"]:
        run = next(c for c in _commands(r, host) if c.startswith("docker run"))
        assert (
            "--tp 8 --quantization fp8 --tool-call-parser pythonic --speculative-algorithm EAGLE3 "
            "--speculative-draft-model-path lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1 --speculative-num-steps 3 "
            "--speculative-eagle-topk 1 --speculative-num-draft-tokens 4 --mem-fraction-static 0.75 --cuda-graph-max-bs 2 "
            "--enable-multimodal"
        ) in run


def test_mi355_dry_run_picks_mi35x_image():
    r = cli("deploy", "--hosts", "mi355-cluster", "--model", "scout", "--dry-run", "--json", "-i", "inventory/mi355-cluster.yml",
            "--sglang-version", "0.5.7")  # fmt: skip
    assert r.code == 0, r.stderr
    for host in r.json["recap"]:
        run = next(c for c in _commands(r, host) if c.startswith("docker run"))
        assert "lmsysorg/sglang:v0.5.7-rocm700-mi35x python3 -m sglang.launch_server --model-path" in run


def test_dry_run_token_is_masked():
    r = cli("deploy", "--hosts", "mi300-01", "--model", "scout", "--dry-run", "-i", "inventory/mi300-cluster.yml",
            env={"HF_TOKEN": "hf_dryRunSecretValue123"})  # fmt: skip
    assert r.code == 0, r.stderr
    assert "hf_dryRunSecretValue123" not in r.stdout + r.stderr
    assert "--env-file /var/lib/llmfleet/secrets/llmfleet-sglang.env" in r.stderr
    assert "HF_TOKEN=********" in r.stderr


def test_unknown_model_is_exit_2_one_line():
    r = cli("deploy", "--hosts", "mi300-cluster", "--model", "llama5", "--dry-run", "-i", "inventory/mi300-cluster.yml")
    assert r.code == 2
    assert "unknown model 'llama5'" in r.stderr and "models.yml" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_host_pattern_is_exit_2():
    r = cli("deploy", "--hosts", "mi300-clustr", "--model", "scout", "--dry-run", "-i", "inventory/mi300-cluster.yml")
    assert r.code == 2 and "mi300-clustr" in r.stderr and "Traceback" not in r.stderr


def test_bad_playbook_step_names_file_and_line(tmp_path):
    from llmfleet.actions import ACTIONS
    from llmfleet.errors import InputError
    from llmfleet.playbook import load_playbook

    (tmp_path / "playbooks").mkdir()
    (tmp_path / "roles" / "r").mkdir(parents=True)
    (tmp_path / "playbooks" / "p.yml").write_text("name: p\nroles: [r]\n")
    (tmp_path / "roles" / "r" / "tasks.yml").write_text("- name: one\n  action: gather_facts\n- name: two\n  acton: ensure_image\n")
    try:
        load_playbook("p", ACTIONS, root=tmp_path / "playbooks")
    except InputError as exc:
        assert str(exc).endswith("tasks.yml:4: unknown key 'acton' in a step (did you mean 'action'?)")
    else:
        raise AssertionError("a typo'd key must be refused")
