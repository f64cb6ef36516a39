"""Pushing only the layers a host lacks: the host's answer, the shared chain, and the smaller saved tar
(both `docker save` layouts). The lab test (tests/e2e/test_rollout_lab.py) loads such a tar into real engines."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from llmfleet import imagelayers, shell
from llmfleet.commands import docker

# `docker info --format '{{json .DriverStatus}}'`: a lab host's dockerd 20.10 (overlay2), then what the
# containerd image store reports (Docker's "driver-type: io.containerd.snapshotter.v1" line)
GRAPH_DRIVER = '[["Backing Filesystem","extfs"],["Supports d_type","true"],["Native Overlay Diff","true"],["userxattr","false"]]'
CONTAINERD = '[["driver-type","io.containerd.snapshotter.v1"]]'
A, B, C, D = (f"sha256:{c * 64}" for c in "abcd")


def test_probe_of_a_graph_driver_engine_gives_its_chains():
    out = f'{GRAPH_DRIVER}\n["{A}","{B}"]\n["{A}","{C}"]\n\n'
    host = imagelayers.parse_probe(out)
    assert host == imagelayers.HostLayers(((A, B), (A, C)), True)


@pytest.mark.parametrize("out", [f'{CONTAINERD}\n["{A}"]\n', "", "Cannot connect to the Docker daemon\n", "null\n"])
def test_an_engine_that_may_not_skip_layers_gets_them_all(out):
    assert imagelayers.parse_probe(out).skips_known_layers is False


def test_lines_that_are_no_chain_are_ignored():
    out = f'{GRAPH_DRIVER}\n[1, 2]\nnot json\n["{A}", "md5:x"]\n["{B}"]\n'
    assert imagelayers.parse_probe(out).chains == ((B,),)


@pytest.mark.parametrize(
    "chains,held",
    [
        ([], 0),
        ([(A, B)], 2),  # an upgrade: the base and the next layer are there, the top one is new
        ([(A, B, C)], 3),  # every layer (the image was there under another ID or tag)
        ([(A, D, C)], 1),
        ([(D, B, C)], 0),  # the same layers on other parents are other layers
        ([(A,), (A, B)], 2),
        ([(A, B, C, D)], 3),
    ],
)
def test_held_prefix_counts_only_a_shared_chain(chains, held):
    assert imagelayers.held_prefix((A, B, C), chains) == held


def test_the_probe_runs_in_a_real_shell(tmp_path):
    """The probe as the transport sends it, with a `docker` stub on PATH: one status line, one line per image."""
    import os
    import subprocess

    stub = tmp_path / "docker"
    stub.write_text('#!/bin/sh\ncase "$1" in\n info) echo \'[["a","b"]]\';;\n image)\n  if [ "$2" = ls ]; then'
                    ' printf "sha256:2\\nsha256:1\\nsha256:2\\n"; else shift 4; for i in "$@"; do echo "[\\"$i\\"]"; done; fi;;\n'
                    'esac\n')  # fmt: skip
    stub.chmod(0o755)
    out = subprocess.run(shell.join(docker.layer_chains()), shell=True, capture_output=True, text=True, check=True,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})  # fmt: skip
    assert out.stdout.splitlines() == ['[["a","b"]]', '["sha256:1"]', '["sha256:2"]']


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _saved(path: Path, layout: str, layers: list[bytes]) -> Path:
    """A `docker save` tar: Docker < 25 (`<id>/layer.tar`) or the OCI layout of Docker >= 25 (`blobs/sha256/...`)."""
    diff_ids = [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with tarfile.open(path, "w") as tar:
        if layout == "legacy":
            files = [f"{i:064x}/layer.tar" for i in range(len(layers))]
            config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        else:
            files = [f"blobs/sha256/{d[7:]}" for d in diff_ids]
            config_name = f"blobs/sha256/{hashlib.sha256(config).hexdigest()}"
            _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        done = set()
        for name, data in zip(files, layers):
            if name not in done:
                _add(tar, name, data)
                done.add(name)
        _add(tar, config_name, config)
        manifest = [{"Config": config_name, "RepoTags": ["lmsysorg/sglang:v0.5.9-rocm720-mi30x"], "Layers": files}]
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return path


@pytest.mark.parametrize("layout", ["legacy", "oci"])
def test_the_saved_image_without_its_held_layers(tmp_path, layout):
    layers = [b"rocm base " * 1000, b"sglang 0.5.9 " * 100, b"launcher"]
    src = _saved(tmp_path / "whole.tar", layout, layers)
    saved = imagelayers.read_saved(src)
    assert saved.diff_ids == tuple(f"sha256:{hashlib.sha256(d).hexdigest()}" for d in layers)
    skip = imagelayers.without_layers(saved, 2)
    assert skip == frozenset(saved.layer_files[:2])
    imagelayers.write_without(src, tmp_path / "less.tar", skip)
    size = (tmp_path / "less.tar").stat().st_size
    with tarfile.open(src) as whole, tarfile.open(tmp_path / "less.tar") as less:
        kept = {m.name: less.extractfile(m).read() for m in less if m.isfile()}
        expected = {m.name: whole.extractfile(m).read() for m in whole if m.isfile() and m.name not in skip}
    assert kept == expected and size < src.stat().st_size - len(layers[0])
    assert imagelayers.read_saved(tmp_path / "less.tar") == saved  # what docker load reads is all still there


def test_a_layer_file_the_rest_of_the_chain_uses_is_kept(tmp_path):
    """Docker < 25 names layer files by the layer's ID; the OCI layout by content: the same (empty) layer twice."""
    src = _saved(tmp_path / "whole.tar", "oci", [b"empty", b"base", b"empty"])
    saved = imagelayers.read_saved(src)
    assert saved.layer_files[0] == saved.layer_files[2]
    assert imagelayers.without_layers(saved, 2) == frozenset({saved.layer_files[1]})


def test_a_tar_with_two_images_or_missing_layers_is_refused(tmp_path):
    src = tmp_path / "bad.tar"
    with tarfile.open(src, "w") as tar:
        _add(tar, "c.json", json.dumps({"rootfs": {"diff_ids": [A, B]}}).encode())
        _add(tar, "manifest.json", json.dumps([{"Config": "c.json", "Layers": ["x/layer.tar"]}]).encode())
    with pytest.raises(ValueError, match="1 layer files for 2 layers"):
        imagelayers.read_saved(src)
    with tarfile.open(src, "w") as tar:
        _add(tar, "manifest.json", b"[{}, {}]")
    with pytest.raises(ValueError, match="expected one image"):
        imagelayers.read_saved(src)
