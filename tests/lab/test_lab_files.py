"""The lab's files and plans, tested without a lab: fake SMI tools, labrunc, the mount plan.

No root needed: the scripts run as ordinary subprocesses on generated data.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest
import yaml

from llmfleet import paths
from llmfleet.lab import hostfs, hosts, smi
from llmfleet.lab.layout import IN_HOST
from tests.helpers import cli

FILES = Path(smi.__file__).resolve().parent / "files"


def _load_script(name: str):
    loader = SourceFileLoader(name.replace("-", "_"), str(FILES / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture
def smi_data(tmp_path):
    data = smi.render(smi.load_specs()["mi300x"], "lab2")
    (tmp_path / "gpus.json").write_text(json.dumps(data))
    (tmp_path / "settings.json").write_text(json.dumps(smi.settings("gpu_data")))
    return tmp_path


def _run(tool: str, args: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(FILES / tool), *args], capture_output=True, text=True,
                          env={"LLMFLEET_LAB_SMI_DATA": str(data_dir), "PATH": "/usr/bin:/bin"}, check=False)


def test_gpu_spec_agrees_with_the_hardware_catalog():
    spec = smi.load_specs()["mi300x"]
    hw = yaml.safe_load((paths.catalog_dir() / "hardware.yml").read_text())["mi300x"]
    assert spec["count"] == hw["gpus"]
    assert spec["amd_smi"]["asic"]["target_graphics_version"] == hw["arch"]
    assert spec["rocm_smi"]["GFX Version"] == hw["arch"]
    assert round(spec["amd_smi"]["vram"]["size"]["value"] / 1024) == hw["gpu_memory_gb"]
    assert any(p in spec["amd_smi"]["asic"]["market_name"] for p in hw["products"])


def test_amd_smi_static_json_in_both_shapes(smi_data):
    out = _run("amd-smi", ["static", "--json"], smi_data)
    assert out.returncode == 0, out.stderr
    gpus = json.loads(out.stdout)["gpu_data"]
    assert [g["gpu"] for g in gpus] == list(range(8))
    assert {g["asic"]["market_name"] for g in gpus} == {"AMD Instinct MI300X"}
    assert {g["vram"]["size"]["value"] for g in gpus} == {196592}
    assert len({g["bus"]["bdf"] for g in gpus}) == 8
    assert all(g["asic"]["asic_serial"].startswith("LABSIM-LAB2-") for g in gpus)

    (smi_data / "settings.json").write_text(json.dumps(smi.settings("list")))
    bare = json.loads(_run("amd-smi", ["static", "--json"], smi_data).stdout)
    assert isinstance(bare, list) and bare == gpus


def test_amd_smi_sections_gpu_selection_and_errors(smi_data):
    one = json.loads(_run("amd-smi", ["static", "--asic", "--vram", "-g", "3", "--json"], smi_data).stdout)
    assert one == {"gpu_data": [{"gpu": 3, "asic": one["gpu_data"][0]["asic"], "vram": one["gpu_data"][0]["vram"]}]}
    text = _run("amd-smi", ["static", "-a"], smi_data).stdout
    assert "GPU: 0" in text and "MARKET_NAME: AMD Instinct MI300X" in text
    assert "simulat" in _run("amd-smi", ["version"], smi_data).stdout
    assert _run("amd-smi", ["static", "-g", "9"], smi_data).returncode == 2
    assert _run("amd-smi", ["bogus"], smi_data).returncode == 2


def test_rocm_smi_product_name_json(smi_data):
    out = _run("rocm-smi", ["--showproductname", "--json"], smi_data)
    assert out.returncode == 0, out.stderr
    assert "\n" not in out.stdout.strip()  # one line, like the real tool
    cards = json.loads(out.stdout)
    assert sorted(cards) == [f"card{i}" for i in range(8)]
    assert {c["Card Series"] for c in cards.values()} == {"AMD Instinct MI300X"}
    assert {c["GFX Version"] for c in cards.values()} == {"gfx942"}
    mem = json.loads(_run("rocm-smi", ["--showmeminfo", "vram", "--json", "-d", "0"], smi_data).stdout)
    assert int(mem["card0"]["VRAM Total Memory (B)"]) == 196592 * 1024 * 1024
    assert _run("rocm-smi", ["--showclocks"], smi_data).returncode == 2


def test_labrunc_drops_only_capabilities_outside_the_bounding_set():
    labrunc = _load_script("labrunc")
    status = "Name:\tx\nCapBnd:\t000001fffeffffff\n"  # everything but CAP_SYS_RESOURCE (24)
    allowed = labrunc.bounding_set(status)
    assert "CAP_SYS_RESOURCE" not in allowed and "CAP_SYS_ADMIN" in allowed and len(allowed) == 40
    config = {"process": {"capabilities": {
        "bounding": ["CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_CHOWN"],
        "effective": ["CAP_SYS_RESOURCE"],
    }}}
    assert labrunc.filter_config(config, allowed) == ["CAP_SYS_RESOURCE"]
    assert config["process"]["capabilities"] == {"bounding": ["CAP_SYS_ADMIN", "CAP_CHOWN"], "effective": []}
    assert labrunc.subcommand(["--root", "/run/x", "--log", "/l", "--log-format", "json", "create",
                               "--bundle", "/b", "id"]) == "create"
    assert labrunc.subcommand(["--root", "create", "state", "id"]) == "state"
    assert labrunc.bundle_dir(["create", "--bundle", "/b", "id"]) == "/b"


def test_mount_plan_binds_the_host_dir_first_and_covers_dev_run_root():
    plan = hostfs.mount_plan(name="lab1", host_dir="/somewhere/hosts/lab1", has_proc_modules=False,
                             has_numa_balancing=True)
    targets = [s.get("target") for s in plan if s["op"] in ("mount", "bind")]
    assert targets.index("/run") < targets.index(IN_HOST) < targets.index("/root")
    for t in ("/dev", "/root", "/var/lib/llmfleet", "/opt", "/tmp", "/sys/module", "/proc/sys/kernel/numa_balancing"):
        assert t in targets
    assert "/proc/modules" not in targets
    # Every bind after the first takes its source from inside the host, never from the real tree.
    binds = [s for s in plan if s["op"] == "bind"]
    assert binds[0]["source"] == "/somewhere/hosts/lab1"
    assert all(b["source"].startswith(IN_HOST) for b in binds[1:])
    nodes = [s["path"] for s in plan if s["op"] == "mknod"]
    assert "/dev/kfd" in nodes and sum(p.startswith("/dev/dri/renderD") for p in nodes) == 8
    assert {(s["major"], s["minor"]) for s in plan if s["op"] == "mknod" and s["path"].startswith("/dev/dri")} == {(1, 3)}
    assert {s["op"] for s in plan} <= {"hostname", "umount", "mount", "bind", "mkdir", "mknod", "symlink"}


def test_proc_modules_gains_amdgpu_once():
    text = hostfs.proc_modules("ext4 1 0 - Live 0x0\n")
    assert text.splitlines()[0].startswith("amdgpu ") and "ext4" in text
    assert hostfs.proc_modules(text) == text
    assert hostfs.proc_modules(None).startswith("amdgpu ")


def test_filesystem_type_of_a_path_from_mountinfo():
    info = (
        "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
        "30 22 0:5 / /srv/over rw - overlay overlay rw,lowerdir=/a\n"
        "31 22 0:6 / /srv/overlay2 rw - tmpfs tmpfs rw\n"
    )
    assert hosts.fs_type_of("/srv/project/.lab", info) == "ext4"
    assert hosts.fs_type_of("/srv/over/x", info) == "overlay"
    assert hosts.fs_type_of("/srv/overlay2", info) == "tmpfs"


@pytest.mark.parametrize("args", [
    ["lab.up", "--hosts", "0"],
    ["lab.up", "--hosts", "many"],
    ["lab.fault", "--host", "lab1"],
    ["lab.fault", "--host", "lab1", "--cut", "--restore"],
    ["lab.fault", "--host", "lab1", "--slow", "0"],
    ["lab.fault", "--host", "web1", "--cut"],
    ["lab.configure", "--host", "lab1", "--amd-smi-json", "yaml"],
])
def test_bad_lab_flags_exit_2_before_touching_anything(args):
    r = cli(*args)
    assert r.code == 2, (r.code, r.stderr)
    assert "error:" in r.stderr


def _live_server(data_dir: Path, running: int, **extra) -> None:
    live = data_dir / smi.LIVE_DIR
    live.mkdir(exist_ok=True)
    state = {"gpus": list(range(8)), "memory_mb": 170000, "running": running, "waiting": 0, "ready": True,
             "heartbeat": __import__("time").time(), **extra}
    (live / "lab2-1.json").write_text(json.dumps(state))


def test_amd_smi_metric_follows_the_simulated_server_in_both_shapes(smi_data):
    idle = json.loads(_run("amd-smi", ["metric", "--json"], smi_data).stdout)
    assert "simulated" in idle and len(idle["gpu_data"]) == 8
    g = idle["gpu_data"][0]
    assert g["power"]["socket_power"]["unit"] == "W" and g["power"]["throttle_status"] == "UNTHROTTLED"
    assert g["temperature"]["edge"] == "N/A" and g["temperature"]["hotspot"]["unit"] == "C"
    assert g["mem_usage"]["total_vram"] == {"value": 196592, "unit": "MB"}
    assert g["usage"]["gfx_activity"] == {"value": 0, "unit": "%"}
    _live_server(smi_data, running=64)
    busy = json.loads(_run("amd-smi", ["metric", "--json"], smi_data).stdout)["gpu_data"][0]
    assert busy["mem_usage"]["used_vram"]["value"] > 170000 > g["mem_usage"]["used_vram"]["value"]
    assert busy["power"]["socket_power"]["value"] > g["power"]["socket_power"]["value"]
    assert busy["usage"]["gfx_activity"]["value"] == 100
    (smi_data / smi.LIVE_DIR / "faults.json").write_text(json.dumps({"slow_gpu_pct": 20}))
    (smi_data / "settings.json").write_text(json.dumps(smi.settings("list")))
    bare = json.loads(_run("amd-smi", ["metric", "-p", "-t", "-g", "2", "--json"], smi_data).stdout)
    assert isinstance(bare, list) and set(bare[0]) == {"gpu", "power", "temperature", "simulated"}
    assert bare[0]["power"]["throttle_status"] == "THROTTLED" and bare[0]["temperature"]["hotspot"]["value"] >= 95


def test_rocm_smi_live_fields(smi_data):
    args = ["--showpower", "--showuse", "--showmeminfo", "vram", "--showtemp", "--json"]
    idle = json.loads(_run("rocm-smi", args, smi_data).stdout)["card0"]
    _live_server(smi_data, running=8)
    busy = json.loads(_run("rocm-smi", args, smi_data).stdout)["card0"]
    assert float(busy["Current Socket Graphics Package Power (W)"]) > float(idle["Current Socket Graphics Package Power (W)"])
    assert int(busy["GPU use (%)"]) > int(idle["GPU use (%)"]) == 0
    assert int(busy["VRAM Total Used Memory (B)"]) > 170000 * 2**20 > int(idle["VRAM Total Used Memory (B)"])
    assert idle["Temperature (Sensor edge) (C)"] == "N/A" and float(idle["Temperature (Sensor junction) (C)"]) > 0
    assert "simulated" in busy["Simulated"]
