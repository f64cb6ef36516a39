"""Fact parsers on real output shapes, and the gather script run by a real shell."""

import json
import subprocess
from pathlib import Path

import pytest

from llmfleet import facts, shell

FIX = Path(__file__).parent.parent / "fixtures" / "host_outputs"


def test_amd_smi_newer_shape():
    gpus = facts.parse_amd_smi(json.loads((FIX / "amd_smi_gpu_data.json").read_text()))
    assert [g.product for g in gpus] == ["AMD Instinct MI300X"] * 2
    assert {g.arch for g in gpus} == {"gfx942"}
    assert gpus[0].vram_mb == 196592


def test_amd_smi_older_list_shape():
    gpus = facts.parse_amd_smi(json.loads((FIX / "amd_smi_list.json").read_text()))
    assert [g.arch for g in gpus] == ["gfx950", "gfx950"]
    assert gpus[1].vram_mb == 294896


def test_rocm_smi_shape():
    gpus = facts.parse_rocm_smi(json.loads((FIX / "rocm_smi_productname.json").read_text()))
    assert [g.product for g in gpus] == ["AMD Instinct MI300X OAM"] * 2
    assert gpus[0].arch == "gfx942"


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"Client":{"Version":"28.2.2"},"Server":{"Version":"20.10.24+dfsg1"}}', ("20.10.24+dfsg1", None)),
        (
            '{"Client":{"Version":"28.2.2"},"Server":null}\nCannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
            (None, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"),
        ),
        ("sh: 1: docker: not found", (None, "docker is not installed")),
    ],
)
def test_docker_version(text, expected):
    assert facts.parse_docker(text) == expected


def test_gpu_section_variants():
    src, gpus, err = facts.parse_gpu("source amd-smi\n" + (FIX / "amd_smi_gpu_data.json").read_text())
    assert (src, len(gpus), err) == ("amd-smi", 2, None)
    src, gpus, err = facts.parse_gpu("source none")
    assert gpus == [] and "amd-smi" in err
    src, gpus, err = facts.parse_gpu("source amd-smi\nERROR: no AMD GPUs found")
    assert gpus == [] and "printed no JSON" in err


def test_df_and_render_nodes():
    df = "Filesystem     1-blocks         Used    Available Capacity Mounted on\n/dev/nvme0n1 3840000000000 1000 2500000000000 1% /data\n"
    assert facts.parse_df(df) == ("/data", 2500000000000)
    assert facts.parse_render_nodes("card0\ncard1\nrenderD129\nrenderD128\nby-path") == ["renderD128", "renderD129"]


def test_container_parse():
    doc = {"Id": "abc", "Image": "sha256:1", "State": {"Status": "exited", "ExitCode": 137},
           "Config": {"Labels": {"org.llmfleet.config": "h1"}}}  # fmt: skip
    c = facts.parse_container(json.dumps(doc))
    assert (c.status, c.exit_code, c.running, c.labels["org.llmfleet.config"]) == ("exited", 137, False, "h1")
    assert facts.parse_container("Error: No such container: llmfleet-sglang") is None


def test_gather_script_runs_in_a_real_shell(tmp_path):
    """The script is POSIX sh: every section appears even when its command fails."""
    q = facts.FactQuery(image="no/such:image", container="no-such-container", hf_home=str(tmp_path / "a b" / "hf"),
                        hf_id="meta-llama/Llama-4-Scout-17B-16E-Instruct")  # fmt: skip
    out = subprocess.run(["sh", "-c", facts.gather_command(q)], capture_output=True, text=True, timeout=60).stdout
    sections = shell.split_sections(out)
    assert set(sections) == {"hostname", "docker", "kfd", "dri", "modules", "amdgpu_sysfs", "gpu", "numa", "df", "image",
                             "container", "model"}  # fmt: skip
    parsed = facts.parse(out)
    assert parsed.hostname
    assert parsed.disk_free_bytes and parsed.disk_free_bytes > 0  # nearest existing parent of a missing path
    assert parsed.image_id is None and parsed.container is None and not parsed.model_cached


@pytest.mark.parametrize(
    "raw,arch",
    [("gfx9010", "gfx90a"), ("gfx942", "gfx942"), ("gfx950", "gfx950"), ("gfx1100", "gfx1100"), ("GFX90A", "gfx90a"),
     ("N/A", None), ("", None)],
)  # fmt: skip
def test_gfx_versions_are_normalised_to_the_real_arch(raw, arch):
    """rocm-smi 6.x prints KFD's gfx_target_version digits: 9.0.10 -> "gfx9010", which is gfx90a."""
    assert facts.normalize_arch(raw) == arch


def test_na_values_and_rocm_smi_5_field_names():
    gpus = facts.parse_rocm_smi({"card0": {"Card series": "N/A", "Card model": "0x740c", "GFX Version": "gfx9010"}})
    assert (gpus[0].product, gpus[0].arch) == ("0x740c", "gfx90a")
    gpus = facts.parse_amd_smi([{"asic": {"market_name": "N/A", "target_graphics_version": "N/A"}, "vram": {}}])
    assert (gpus[0].product, gpus[0].arch) == ("unknown", None)
