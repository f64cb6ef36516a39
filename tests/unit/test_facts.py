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


# --- real outputs (tests/fixtures/host_outputs/README.md names the source of each) -----------------------------


def _gpus(name: str) -> list[facts.Gpu]:
    """A fixture as the gather script's gpu section carries it: the tool's name, then its output."""
    tool = "amd-smi" if name.startswith("amd_smi") else "rocm-smi"
    source, gpus, error = facts.parse_gpu(f"source {tool}\n" + (FIX / name).read_text())
    assert (source, error) == (tool, None)
    return gpus


def test_real_amd_smi_gpu_data_shape_with_na_values():
    """MI210: {"gpu_data": [...]}, VRAM as value/unit, "N/A" board name and oam_id."""
    [gpu] = _gpus("amd_smi_gpu_data_mi210.json")
    assert (gpu.product, gpu.arch, gpu.vram_mb, gpu.device_id) == ("AMD Instinct MI210", "gfx90a", 65520, "0x740f")


def test_real_amd_smi_output_behind_python_warnings():
    """amd-smi on Python 3.14 prints SyntaxWarnings before its JSON: the JSON is still found."""
    [gpu] = _gpus("amd_smi_gpu_data_rx7800xt_with_warnings.txt")
    assert (gpu.product, gpu.arch, gpu.vram_mb) == ("AMD Radeon RX 7800 XT", "gfx1101", None)


def test_real_rocm_smi_6_gfx9010_is_gfx90a():
    [gpu] = _gpus("rocm_smi6_mi250x_gfx9010.json")
    assert (gpu.product, gpu.arch, gpu.device_id) == ("AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2", "gfx90a", "0x7408")


def test_real_rocm_smi_6_mi300a_node():
    gpus = _gpus("rocm_smi6_mi300a.json")  # four APUs, and a "system" entry that is no card
    assert [(g.product, g.arch, g.device_id) for g in gpus] == [("AMD Instinct MI300A", "gfx942", "0x74a0")] * 4


def test_real_rocm_smi_5_field_names():
    """rocm-smi 5.x: lower-case "Card series"/"Card model", "GPU ID"; no GFX Version."""
    named, by_id = _gpus("rocm_smi5_mi250x.json")
    assert (named.product, named.arch) == ("AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2", None)
    assert (by_id.product, by_id.device_id) == ("unknown", "0x7408")
    mi100 = _gpus("rocm_smi5_mi100_old_field_names.json")  # "Card model" holds the vendor ID there
    assert [g.device_id for g in mi100] == ["0x738c"] * 4 and mi100[0].product == "D34304"


def test_real_rocm_smi_meminfo_gives_vram():
    [gpu] = _gpus("rocm_smi6_productname_meminfo_rx7900xt.json")
    assert (gpu.product, gpu.arch, gpu.vram_mb) == ("Radeon RX 7900 XT", "gfx1100", 21458059264 // 2**20)


# --- amd-smi's bare-list shape (amd-smi < 26, ROCm 6.x) and ROCm 6.0's shapes ----------------------------------


def test_real_amd_smi_bare_list_from_an_mi355_node():
    """`amd-smi static --clock --json` on an MI355 node (amd-smi < 26): a bare list, one entry per GPU.

    Only the clock group was asked for, so the entry has no asic or vram: the GPU is counted and
    its kind is not guessed (deploy asks for `hardware`)."""
    from llmfleet import catalog, deployment
    from llmfleet.errors import InputError

    [gpu] = _gpus("amd_smi_static_clock_list_mi355.json")
    assert (gpu.product, gpu.arch, gpu.vram_mb, gpu.device_id) == ("unknown", None, None, None)
    with pytest.raises(InputError, match="cannot tell the hardware kind of GPUs unknown arch"):
        deployment.detect_hardware(catalog.load(), facts.HostFacts(gpus=[gpu]), None)


def test_real_amd_smi_bare_list_vram_of_an_mi300x():
    """An 8 x MI300X node in AMD's amd-smi blog post: `amd-smi static --json | jq '.[0]["vram"]'`.

    jq's `.[0]` indexes a list (on an object it fails), so that amd-smi printed the bare list; the printed
    object is the first entry's "vram" verbatim. The entry's asic values are the same post's `amd-smi static`
    text for GPU 0 (MARKET_NAME MI300X-O, DEVICE_ID 0x74a1, no TARGET_GRAPHICS_VERSION on that release)."""
    from llmfleet import catalog, deployment

    command, _, output = (FIX / "amd_smi_list_mi300x_vram_via_jq.txt").read_text().partition("\n")
    assert command == "$ amd-smi static --json | jq '.[0][\"vram\"]'"
    entry = {"gpu": 0, "asic": {"market_name": "MI300X-O", "device_id": "0x74a1"}, "vram": json.loads(output)}
    source, [gpu], error = facts.parse_gpu("source amd-smi\n" + json.dumps([entry], indent=4))
    assert (gpu.product, gpu.arch, gpu.vram_mb, gpu.device_id, error) == ("MI300X-O", None, 196592, "0x74a1", None)
    hw = deployment.infer_hardware(catalog.load(), gpu.product, gpu.arch, gpu.vram_mb, gpu.device_id)
    assert hw is not None and (hw.key, hw.gpu_memory_gb) == ("mi300x", 192)


def test_real_amd_smi_bare_list_with_asic_and_vram_refused_as_no_instinct():
    """Two real `amd-smi static --json` captures of the bare-list shape (amd-smi < 26) with their asic and
    vram blocks: a Strix Halo APU (ROCm 6.3 era: num_compute_units and target_graphics_version) and an
    RX 6600 (an older schema: no target_graphics_version, no subsystem_id, `dpm_policy`; its market name
    lacks the closing bracket). Both read whole, neither taken for a kind the cookbook has."""
    from llmfleet import catalog, deployment
    from llmfleet.errors import InputError

    [apu] = _gpus("amd_smi_list_strix_halo_gfx1151.json")
    assert (apu.product, apu.arch, apu.vram_mb, apu.device_id) == (
        "Strix Halo [Radeon Graphics / Radeon 8050S Graphics / Radeon 8060S Graphics]", "gfx1151", 32768, "0x1586")
    [rx] = _gpus("amd_smi_list_rx6600_old_fields.json")
    assert (rx.product, rx.arch, rx.vram_mb, rx.device_id) == ("Navi 23 [Radeon RX 6600/6600 XT", None, 8176, "0x73ff")
    cat = catalog.load()
    for gpu in (apu, rx):
        assert deployment.infer_hardware(cat, gpu.product, gpu.arch, gpu.vram_mb, gpu.device_id) is None
        with pytest.raises(InputError, match="cannot tell the hardware kind of GPUs"):
            deployment.detect_hardware(cat, facts.HostFacts(gpus=[gpu] * 8), None)


def test_real_amd_smi_gpu_data_of_an_8_x_mi300x_node():
    """`amd-smi static --json` as root on an 8 x MI300X node (AMDSMI Tool 26.2.2, ROCm 7.2.1): the
    {"gpu_data": [...]} shape, VRAM "HBM" of 196592 MB, an SR-IOV firmware. Read as eight MI300X."""
    from llmfleet import catalog, deployment

    gpus = _gpus("amd_smi_gpu_data_mi300x_x8_rocm721.json")
    assert [(g.product, g.arch, g.vram_mb, g.device_id) for g in gpus] == [
        ("AMD Instinct MI300X", "gfx942", 196592, "0x74a1")] * 8
    hw = deployment.detect_hardware(catalog.load(), facts.HostFacts(gpus=gpus), None)
    assert (hw.key, hw.gpu_memory_gb) == ("mi300x", 192)


def test_rocm_6_0_amd_smi_shapes_read_in_its_source():
    """Shapes read in ROCm/amdsmi's source, not captured outputs. At tag rocm-6.0.0, `_print_json_output`
    prints a one-GPU host's entry as a bare object (a list only for several GPUs) and `static` passes the
    library's VRAM dict on as {"vram_type", "vram_vendor", "vram_size_mb"}; from rocm-6.1.0 a failed VRAM
    read leaves {"type": "N/A", "vendor": "N/A", "size": "N/A"}."""
    one_gpu = {"gpu": 0, "asic": {"market_name": "MI300X-O", "device_id": "0x74a1"},
               "vram": {"vram_type": "HBM", "vram_vendor": "N/A", "vram_size_mb": 196592}}  # fmt: skip
    source, gpus, error = facts.parse_gpu("source amd-smi\n" + json.dumps(one_gpu, indent=4))
    assert (error, [(g.product, g.vram_mb, g.device_id) for g in gpus]) == (None, [("MI300X-O", 196592, "0x74a1")])
    [unread] = facts.parse_amd_smi([{"gpu": 0, "vram": {"type": "N/A", "vendor": "N/A", "size": "N/A"}}])
    assert unread.vram_mb is None
    assert facts.parse_amd_smi({"gpu_data": []}) == [] and facts.parse_amd_smi({"error": "no GPUs"}) == []


# --- hardware kinds from facts ------------------------------------------------------------------------------------

_GIB = 1024


@pytest.mark.parametrize(
    "product,arch,vram_mb,device,kind",
    [
        ("AMD Instinct MI300X", "gfx942", 196592, "0x74a1", "mi300x"),
        ("MI300X-O", "gfx942", 196592, None, "mi300x"),  # amd-smi 6.0's name for an MI300X
        ("AMD Instinct MI325X", "gfx942", 256 * _GIB, None, "mi325x"),
        ("AMD Instinct MI300A", "gfx942", None, "0x74a0", "mi300a"),  # rocm-smi 6.x (fixture above)
        ("MI300A", None, 64289, "0x74a0", "mi300a"),  # amd-smi's MI300A example: a 64289 MB carve-out, no arch
        ("0x74a1", "gfx942", None, "0x74a1", "mi300x"),  # rocm-smi 5.x: only the PCI ID
        ("unknown", "gfx942", 196592, None, "mi300x"),  # no name: the VRAM decides among gfx942 kinds
        ("unknown", "gfx942", 256 * _GIB, None, "mi325x"),
        ("unknown", "gfx942", None, None, None),  # MI300X, MI325X or MI300A: never guessed
        ("AMD Instinct MI308X", "gfx942", 196592, None, None),  # a model the catalog does not know
        ("AMD Instinct MI300X", "gfx942", 256 * _GIB, None, None),  # the name and the VRAM disagree
        ("AMD Instinct MI355X", "gfx950", 294896, None, "mi355x"),
        ("AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2", "gfx90a", None, "0x7408", None),
        # real values (tests/fixtures/host_outputs/README.md, "Also read"):
        ("MI300X-O", None, 196592, "0x74a1", "mi300x"),  # amd-smi 6.2 era, AMD blog: no target_graphics_version
        ("AMD Instinct Mi325X VF", "gfx942", None, "0x74b9", "mi325x"),  # an MI325X VF ("Mi", VF device ID)
        ("AMD Instinct MI308X OAM", "gfx942", None, "0x74a2", None),  # gfx942 but no kind the cookbook knows
        ("AMD Instinct MI350X", "gfx950", None, "0x75a0", "mi355x"),  # the mi355x kind covers MI350X
        # only the PCI ID (rocm-smi 5.x prints it as the name): AMD's device table, README "Also read"
        ("0x74b9", "gfx942", None, "0x74b9", "mi325x"),  # MI325X VF
        ("0x75a3", "gfx950", None, "0x75a3", "mi355x"),  # MI355X
        ("0x75b3", "gfx950", None, "0x75b3", "mi355x"),  # MI355X VF
    ],
)  # fmt: skip
def test_hardware_kind_from_name_id_arch_and_vram(product, arch, vram_mb, device, kind):
    from llmfleet import catalog, deployment

    hw = deployment.infer_hardware(catalog.load(), product, arch, vram_mb, device)
    assert (hw.key if hw else None) == kind


def test_mi300a_is_recognised_and_refused_not_an_mi300x():
    from llmfleet import catalog, deployment
    from llmfleet.errors import InputError

    cat = catalog.load()
    host = facts.HostFacts(gpus=_gpus("rocm_smi6_mi300a.json"))
    mi300a = cat.hw("mi300a")
    assert (mi300a.gpu_memory_gb, mi300a.supported, mi300a.shared_memory) == (128, False, True)
    for declared in (None, "mi300a", "mi300x"):
        with pytest.raises(InputError, match="MI300A is not covered by the cookbook's Llama 4 configurations"):
            deployment.detect_hardware(cat, host, declared)


def test_mi325x_gets_the_mi30x_image():
    from llmfleet import catalog

    cat = catalog.load()
    assert (cat.hw("mi325x").gpu_memory_gb, cat.hw("mi325x").arch) == (256, "gfx942")
    assert cat.image_tag("0.5.9", cat.hw("mi325x")) == cat.image_tag("0.5.9", cat.hw("mi300x"))
    assert cat.image_tag("0.5.9", cat.hw("mi325x")).endswith("-mi30x")
