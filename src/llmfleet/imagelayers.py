"""Push only the layers a host lacks: what it has, what an image needs, and the smaller `docker save` tar.

A new SGLang release shares its ROCm base layers (most of its size) with the last one. A host's
Docker engine with a graph driver store (overlay2 and the like) skips, in `docker load`, every layer
of the image whose chain it already holds, without opening its file (moby `image/tarexport/load.go`:
the chain ID is looked up first). So a `docker save` tar without those layers' files loads into the
same image ID there. The skipped layers must be a prefix of the image's chain: a layer is the same
layer only on the same parents. Engines with the containerd image store are not sent such a tar.

Pure functions over `docker save` tars (both formats: `<id>/layer.tar` before Docker 25 and the OCI
`blobs/sha256/<digest>` after; both have `manifest.json`) and the host's answer to `commands.docker.layer_chains()`; the tar
writing is the only I/O.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CONTAINERD_STORE = "io.containerd.snapshotter.v1"  # docker info's DriverStatus with the containerd image store


@dataclass(frozen=True)
class HostLayers:
    """What a host's engine holds: its layer chains, and whether it loads a tar without the layers it has."""

    chains: tuple[tuple[str, ...], ...]
    skips_known_layers: bool


def parse_probe(stdout: str) -> HostLayers:
    """The probe's output; anything unreadable counts as nothing held (the whole image is sent)."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return HostLayers((), False)
    try:
        status = json.loads(lines[0])
    except ValueError:
        return HostLayers((), False)
    graph_driver = isinstance(status, list) and CONTAINERD_STORE not in json.dumps(status)
    chains = []
    for line in lines[1:]:
        try:
            chain = json.loads(line)
        except ValueError:
            continue
        if isinstance(chain, list) and all(isinstance(d, str) and d.startswith("sha256:") for d in chain):
            chains.append(tuple(chain))
    return HostLayers(tuple(chains), graph_driver)


def held_prefix(wanted: Sequence[str], chains: Iterable[Sequence[str]]) -> int:
    """How many of the image's first layers (by diff ID) the host holds on the same parents."""
    best = 0
    for chain in chains:
        n = 0
        for a, b in zip(wanted, chain):
            if a != b:
                break
            n += 1
        best = max(best, n)
    return best


@dataclass(frozen=True)
class SavedImage:
    """A `docker save` tar's layers, in chain order: diff IDs (from the image config) and the files holding them."""

    diff_ids: tuple[str, ...]
    layer_files: tuple[str, ...]


def read_saved(path: Path) -> SavedImage:
    """The layers of the one image in a `docker save` tar (its manifest.json and config)."""
    with tarfile.open(path) as tar:
        manifest = json.load(_member(tar, "manifest.json"))
        if not isinstance(manifest, list) or len(manifest) != 1:
            raise ValueError(f"{path.name}: expected one image in manifest.json")
        entry = manifest[0]
        config = json.load(_member(tar, entry["Config"]))
    diff_ids = tuple(config["rootfs"]["diff_ids"])
    files = tuple(entry["Layers"])
    if len(diff_ids) != len(files):
        raise ValueError(f"{path.name}: {len(files)} layer files for {len(diff_ids)} layers")
    return SavedImage(diff_ids, files)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    fh = tar.extractfile(name)
    if fh is None:
        raise ValueError(f"{name} is not a file in the saved image")
    return fh


def without_layers(saved: SavedImage, held: int) -> frozenset[str]:
    """The files of the first `held` layers, except a file a later layer also uses (the same empty layer, say)."""
    needed = set(saved.layer_files[held:])
    return frozenset(f for f in saved.layer_files[:held] if f not in needed)


def write_without(src: Path, dest: Path, skip: frozenset[str]) -> None:
    """Copy the tar without the `skip` files (everything else as it was)."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            if member.name in skip:
                continue
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
