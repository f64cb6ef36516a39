"""`router.up --on HOST`: the router container's command, its idempotence and the bundle on a scripted
host (llmfleet.testing), and the recorded state of a router on a host. The lab runs the real one
(tests/e2e/test_router_lab.py)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmfleet import catalog, router, settings
from llmfleet.actions import router_host
from llmfleet.playbook import Playbook
from llmfleet.steps import CHANGED, OK, HostContext, RunContext, StepFailed
from llmfleet.testing import FakeNetwork
from llmfleet.transport import Endpoint

from .fake_hosts import AUDIT

IMAGE = "lmsysorg/sglang:v0.5.9-rocm720-mi30x"
SITE = "/var/lib/llmfleet/router/sglang-router-0.3.2-py3.11"


def _bundle(tmp_path: Path) -> Path:
    out = tmp_path / "sglang-router-0.3.2-py3.11.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        info = tarfile.TarInfo("sglang-router-0.3.2-py3.11/sglang_router/__init__.py")
        tar.addfile(info, io.BytesIO(b""))
    return out


def _ctx(net: FakeNetwork, sets: dict[str, Any], mode: str = "apply") -> HostContext:
    pb = Playbook(name="router-up", path=Path("router-up.yml"), roles=[], vars={})
    run = RunContext(playbook=pb, catalog=catalog.load(), mode=mode, run_id=None)
    s = settings.for_host(None, {}, {"router_port": 30400, "router_policy": "round_robin", **sets})
    return HostContext(run, SimpleNamespace(name="lab1", address="198.51.100.7", vars={}), s.settings, s.resolved,
                       net.connect(Endpoint("lab1", "198.51.100.7")) if mode != "dry-run" else None)  # fmt: skip


def test_run_argv_is_the_pinned_router_on_the_host_network():
    argv = router_host.run_argv(IMAGE, SITE, 30400, "round_robin", "abc")
    assert argv == ["docker", "run", "-d", "--name", "llmfleet-router", "--network", "host", "--mount",
                    f"type=bind,source={SITE},target=/opt/sglang-router,readonly", "--restart=unless-stopped", "-e", "HF_ENDPOINT=http://127.0.0.1:9",
                    "-e", "PYTHONPATH=/opt/sglang-router", "--label", "llmfleet.router.config=abc", IMAGE,
                    "python3", "-m", "sglang_router.launch_router", "--host", "0.0.0.0", "--port", "30400",
                    "--policy", "round_robin", "--prometheus-host", "127.0.0.1", "--prometheus-port", "30401",
                    "--log-level", "info"]  # fmt: skip


def test_config_hash_follows_what_the_container_is():
    base = router_host.config_hash(IMAGE, 30000, "cache_aware", "0.3.2")
    assert base == router_host.config_hash(IMAGE, 30000, "cache_aware", "0.3.2")
    assert len({base, router_host.config_hash("other", 30000, "cache_aware", "0.3.2"),
                router_host.config_hash(IMAGE, 30002, "cache_aware", "0.3.2"),
                router_host.config_hash(IMAGE, 30000, "random", "0.3.2")}) == 4  # fmt: skip


def test_first_up_pushes_the_bundle_and_starts_the_container(tmp_path):
    net = FakeNetwork()
    h = net.host("lab1")
    h.on(r"\{\{\.Config\.Image\}\}'? llmfleet-sglang$", IMAGE + "\n")
    h.on(r"State\.Status.* llmfleet-router$", 1)
    h.on(r"^test -f ", 1)
    h.on(r"^(install|tar|rm|docker run) ", 0)
    h.on(AUDIT, 0)
    bundle = _bundle(tmp_path)
    ctx = _ctx(net, {"router_bundle": str(bundle)})
    status, message = router_host.router_container(ctx, {})
    assert status == CHANGED and "llmfleet-router started on :30400" in message
    assert h.files[f"{SITE}.tar.gz"] == bundle.read_bytes()
    assert h.ran(r"^tar -xzf ") == [f"tar -xzf {SITE}.tar.gz -C /var/lib/llmfleet/router"]
    [run] = h.ran(r"^docker run ")
    assert f"--label llmfleet.router.config={router_host.config_hash(IMAGE, 30400, 'round_robin', router.version())}" in run
    assert not h.ran(r"^docker rm ")  # nothing to replace
    assert any("router start llmfleet-router :30400" in c for c in h.ran(AUDIT))


def test_same_config_running_changes_nothing(tmp_path):
    net = FakeNetwork()
    h = net.host("lab1")
    wanted = router_host.config_hash(IMAGE, 30400, "round_robin", router.version())
    h.on(r"\{\{\.Config\.Image\}\}'? llmfleet-sglang$", IMAGE + "\n")
    h.on(r"State\.Status.* llmfleet-router$", f"running {wanted}\n")
    ctx = _ctx(net, {"router_bundle": str(_bundle(tmp_path))})
    assert router_host.router_container(ctx, {})[0] == OK
    assert not h.ran(r"^docker (run|rm)") and not h.files


def test_another_policy_replaces_the_container_without_pushing_again(tmp_path):
    net = FakeNetwork()
    h = net.host("lab1")
    h.on(r"\{\{\.Config\.Image\}\}'? llmfleet-sglang$", IMAGE + "\n")
    h.on(r"State\.Status.* llmfleet-router$", "running 0123456789abcdef\n")
    h.on(r"^test -f ", 0)
    h.on(r"^docker (rm|run) ", 0)
    h.on(AUDIT, 0)
    ctx = _ctx(net, {"router_bundle": str(_bundle(tmp_path))})
    assert router_host.router_container(ctx, {})[0] == CHANGED
    assert h.ran(r"^docker rm ") == ["docker rm -f llmfleet-router"] and not h.files


def test_no_server_container_and_no_router_image_says_what_to_do(tmp_path):
    net = FakeNetwork()
    net.host("lab1").on(r"\{\{\.Config\.Image\}\}", 1)
    with pytest.raises(StepFailed, match="deploy first, or set router_image"):
        router_host.router_container(_ctx(net, {"router_bundle": str(_bundle(tmp_path))}), {})


def test_bundle_is_built_for_the_images_python_offline_after_the_download():
    download, install = router.pip_target_argv("3.11", Path("/c/wheels"), Path("/c/site"))
    pinned = f"sglang-router=={router.version()}"
    assert download[-1] == install[-1] == pinned
    for argv in (download, install):
        assert argv[argv.index("--python-version") + 1] == "3.11" and "--only-binary=:all:" in argv
    assert "--no-index" in install and install[install.index("--target") + 1] == "/c/site"


def test_a_router_on_a_host_is_alive_by_its_health(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFLEET_ROUTER_STATE", str(tmp_path))
    st = router.RouterState(pid=0, url="http://127.0.0.1:9", policy="random", config_hash="x", version="0.3.2",
                            started_at="now", log="docker logs", on="lab1")  # fmt: skip
    router.save(st)
    assert router.recorded() == st
    assert router.current() is None  # nothing answers on :9
    with pytest.raises(router.RouterError, match="runs on lab1"):
        monkeypatch.setattr(router, "current", lambda: st)
        router.stop()


def test_router_up_reads_the_inventory_it_is_given(tmp_path, monkeypatch):
    from tests.helpers import cli

    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    h1: {ansible_host: 198.51.100.9}\n")
    monkeypatch.setenv("LLMFLEET_ROUTER_STATE", str(tmp_path / "state"))
    r = cli("router.up", "--hosts", "nosuch", "-i", str(inv), "--on", "h1", timeout=120)
    assert r.code == 2 and f"matches no host or group; groups in {inv}" in r.stderr, r.stderr[-2000:]
    r = cli("router.up", "--hosts", "all", "-i", str(inv), "--on", "h1,h2", "--port", "x", timeout=120)
    assert r.code == 2 and "--port takes a number" in r.stderr, r.stderr[-2000:]
