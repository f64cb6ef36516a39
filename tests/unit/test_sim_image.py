"""The lab image's recipe: hashes, tags and the commands that build it (no Docker here)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from llmfleet.lab import image


@pytest.fixture(scope="module")
def recipe():
    return image.load_recipe()


def test_tags_are_the_real_ones(recipe):
    assert image.lab_tags(recipe) == {
        "0.5.9": "lmsysorg/sglang:v0.5.9-rocm720-mi30x",
        "0.5.7": "lmsysorg/sglang:v0.5.7-rocm700-mi30x",
    }
    for version, req in recipe.versions.items():
        assert f"sglang=={version}" in req


def test_base_hash_follows_what_the_base_layer_is_made_of(recipe):
    h = image.base_hash(recipe)
    assert h == image.base_hash(image.load_recipe()) and len(h) == 64
    assert image.base_hash(dataclasses.replace(recipe, base_requirements=recipe.base_requirements + "x==1\n")) != h
    assert image.base_hash(dataclasses.replace(recipe, packages=recipe.packages + ("curl",))) != h


def test_version_hash_follows_the_simulator_and_its_config(recipe):
    sources = [("server.py", b"one")]
    h = image.version_hash(recipe, "0.5.9", "base", sources, b"cfg")
    assert h == image.version_hash(recipe, "0.5.9", "base", sources, b"cfg")
    assert h != image.version_hash(recipe, "0.5.9", "base", [("server.py", b"two")], b"cfg")
    assert h != image.version_hash(recipe, "0.5.9", "base", sources, b"cfg2")
    assert h != image.version_hash(recipe, "0.5.7", "base", sources, b"cfg")
    assert h != image.version_hash(recipe, "0.5.9", "other-base", sources, b"cfg")


def test_wanted_images_are_computed_offline(recipe):
    bhash, wanted = image.wanted_images(recipe)
    assert bhash == image.base_hash(recipe)
    assert {tag for tag, _ in wanted.values()} == set(image.lab_tags(recipe).values())
    assert len({rh for _, rh in wanted.values()}) == 2


def test_change_args_are_dockerfile_instructions():
    args = image.change_args({"PATH": "/opt/venv/bin:/usr/bin"}, {"org.llmfleet.lab.simulated": "true"},
                             workdir="/sgl-workspace", cmd=["/bin/bash"])
    assert args == [
        "--change", 'ENV PATH="/opt/venv/bin:/usr/bin"',
        "--change", 'LABEL "org.llmfleet.lab.simulated"="true"',
        "--change", "WORKDIR /sgl-workspace",
        "--change", 'CMD ["/bin/bash"]',
    ]


def test_image_env_puts_the_venv_first_and_stays_offline(recipe):
    env = image.image_env(recipe)
    assert env["PATH"].startswith(recipe.venv + "/bin:")
    assert env["HF_HUB_OFFLINE"] == "1" and env["LLMFLEET_SIM_CONFIG"] == image.SIM_CONFIG_IN_IMAGE


def test_debian_mirror_from_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMFLEET_LAB_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
    )
    assert image.debian_mirror(tmp_path, "bookworm") == "http://mirror.example/debian"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "sources.list").write_text("# comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n")
    assert image.debian_mirror(legacy, "bookworm") == "http://other.example/debian"
    with pytest.raises(image.BuildError):
        image.debian_mirror(legacy, "trixie")
    monkeypatch.setenv("LLMFLEET_LAB_DEBIAN_MIRROR", "http://set.example/debian")
    assert image.debian_mirror(legacy, "trixie") == "http://set.example/debian"


def test_build_commands(recipe, tmp_path):
    argv = image.debootstrap_argv(recipe, tmp_path / "rootfs", "http://m/debian", tmp_path / "debs")
    assert argv[:3] == ["debootstrap", "--variant=minbase", f"--cache-dir={tmp_path / 'debs'}"]
    assert argv[3] == "--include=python3,python3-venv" and argv[-3:] == ["bookworm", str(tmp_path / "rootfs"), "http://m/debian"]
    pip = image.pip_download_argv("python3", "3.11", tmp_path / "r.txt", tmp_path / "w", no_deps=True)
    assert pip[:4] == ["python3", "-m", "pip", "download"] and "--no-deps" in pip
    assert "--only-binary=:all:" in pip and pip[pip.index("--python-version") + 1] == "3.11"
    assert "manylinux_2_36_x86_64" in pip and "manylinux_2_17_x86_64" in pip
    chroot = image.chroot_argv(tmp_path, ["python3", "-V"])
    assert chroot[:4] == ["chroot", str(tmp_path), "env", "-i"] and chroot[-2:] == ["python3", "-V"]


def test_shims_start_the_simulator_and_say_so(recipe):
    script = image.install_script(recipe)
    assert "--no-deps" in script and "launch_server.py" in script and "/opt/venv/bin/sglang" in script
    assert "SIMULATED" in image.shim_launch_server() and "launch_server_main" in image.shim_launch_server()
    cli = image.shim_sglang_cli(recipe)
    assert cli.startswith("#!/opt/venv/bin/python3\n") and "sglang_cli_main" in cli
    compile(image.shim_launch_server(), "launch_server.py", "exec")
    compile(cli, "sglang", "exec")
    json.dumps(image.image_env(recipe))
