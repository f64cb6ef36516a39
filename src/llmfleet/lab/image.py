"""The lab image: built here (no registry is reachable), tagged like the real SGLang images.

Two layers, made without `docker build` (the lab's engines are dockerd 20.10 and the CLI
may want buildx): a base layer from a Debian rootfs (`debootstrap` + a venv with the real
SGLang clients' dependencies) brought in with `docker import`, and one layer per SGLang
version (the real `sglang` wheel installed with --no-deps, the simulated server and its
shims) made with `docker run` + `docker commit`. What is slow (the rootfs with its pip
installs, the wheels, the .debs) is cached as files under
`$XDG_CACHE_HOME/llmfleet/lab-image/`, keyed by the recipe's hash, so another session or
CI run on the same machine reuses it. Every image carries its recipe hash as a label:
`ensure_images` is a no-op when the engine already has the current one. The built images are
also kept there as one `docker save` tar, so a second lab instance's engine (labs side by
side, as the test workers run them) loads the very same images instead of building its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import catalog, paths, yamlsrc
from ..errors import InputError
from .state import locked  # one build at a time per cache directory (tests and `lab.up` may race)

RECIPE_FORMAT = "llmfleet-lab-image/1"  # bump when the build steps change meaning
LABEL_SIMULATED = "org.llmfleet.lab.simulated"
LABEL_RECIPE = "org.llmfleet.lab.recipe"
LABEL_BASE = "org.llmfleet.lab.base"
LABEL_VERSION = "org.llmfleet.lab.sglang-version"
BASE_REPO = "llmfleet/lab-base"
SIM_PACKAGE = "llmfleet_sim"  # the simulator's import name inside the image
SIM_CONFIG_IN_IMAGE = "/opt/llmfleet/lab-sim.yml"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildError(RuntimeError):
    """A build step failed; the message names the step and the log with its output."""


@dataclass(frozen=True)
class Recipe:
    suite: str
    variant: str
    packages: tuple[str, ...]
    python: str
    venv: str
    workdir: str
    groups: tuple[str, ...]
    hardware: str
    base_requirements: str  # file contents
    versions: dict[str, str]  # version -> requirements file contents
    env: dict[str, str]
    strip: tuple[str, ...]
    source: Path


def recipe_dir() -> Path:
    return paths.project_root() / "lab" / "image"


def sim_dir() -> Path:
    """The simulator's sources: copied into the image, and run on the control node."""
    return Path(__file__).resolve().parent / "sim"


def sim_config_path() -> Path:
    return paths.catalog_dir() / "lab-sim.yml"


def load_recipe(directory: Path | None = None) -> Recipe:
    directory = directory or recipe_dir()
    path = directory / "recipe.yml"
    doc = yamlsrc.load(path)
    yamlsrc.check_keys(
        doc,
        {"debian", "python", "venv", "workdir", "groups", "hardware", "base_requirements", "versions", "env", "strip"},
        "recipe.yml",
    )
    deb = doc["debian"]
    versions = {}
    for version, req in doc["versions"].items():
        req_path = directory / req
        if not req_path.is_file():
            raise InputError(f"version {version}: no file {req}", path, doc["versions"].line_of(version))
        versions[str(version)] = req_path.read_text()
    return Recipe(
        suite=deb["suite"],
        variant=deb.get("variant", "minbase"),
        packages=tuple(deb.get("packages", [])),
        python=str(doc["python"]),
        venv=doc["venv"],
        workdir=doc.get("workdir", "/"),
        groups=tuple(doc.get("groups", [])),
        hardware=doc["hardware"],
        base_requirements=(directory / doc["base_requirements"]).read_text(),
        versions=versions,
        env={str(k): str(v) for k, v in (doc.get("env") or {}).items()},
        strip=tuple(doc.get("strip", [])),
        source=directory,
    )


# ---------------------------------------------------------------- hashes (pure)


def _digest(parts: Sequence[bytes | str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def base_hash(recipe: Recipe) -> str:
    """What the base layer depends on: Debian packages, Python, the locked requirements."""
    spec = {
        "format": RECIPE_FORMAT,
        "suite": recipe.suite,
        "variant": recipe.variant,
        "packages": list(recipe.packages),
        "python": recipe.python,
        "venv": recipe.venv,
        "groups": list(recipe.groups),
        "strip": list(recipe.strip),
        "env": recipe.env,
        "workdir": recipe.workdir,
    }
    return _digest([json.dumps(spec, sort_keys=True), recipe.base_requirements])


def sim_files(directory: Path | None = None) -> list[Path]:
    directory = directory or sim_dir()
    return sorted(p for p in directory.glob("*.py") if p.is_file())


def version_hash(recipe: Recipe, version: str, base: str, sim_sources: Sequence[tuple[str, bytes]], sim_config: bytes) -> str:
    """What one version's image depends on: its base, its requirements, the simulator."""
    parts: list[bytes | str] = [RECIPE_FORMAT, base, version, recipe.versions[version], install_script(recipe)]
    parts.append(shim_launch_server())
    parts.append(shim_sglang_cli(recipe))
    for name, data in sim_sources:
        parts += [name, data]
    parts.append(sim_config)
    return _digest(parts)


# ------------------------------------------------------------ command builders (pure)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmfleet" / "lab-image"


def wheel_platform_args(python: str) -> list[str]:
    """pip flags that fetch wheels for the image's Python and glibc, whatever runs pip."""
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    abi = "cp" + python.replace(".", "")
    args += ["--abi", abi, "--abi", "abi3", "--abi", "none"]
    for minor in range(36, 16, -1):  # bookworm has glibc 2.36
        args += ["--platform", f"manylinux_2_{minor}_x86_64"]
    args += ["--platform", "manylinux2014_x86_64", "--platform", "linux_x86_64"]
    return args


def pip_download_argv(python_exe: str, image_python: str, requirements: Path, dest: Path, no_deps: bool = False) -> list[str]:
    argv = [python_exe, "-m", "pip", "download", "--quiet", "--dest", str(dest), "-r", str(requirements)]
    if no_deps:
        argv.append("--no-deps")
    return argv + wheel_platform_args(image_python)


def debootstrap_argv(recipe: Recipe, rootfs: Path, mirror: str, deb_cache: Path) -> list[str]:
    argv = ["debootstrap", f"--variant={recipe.variant}", f"--cache-dir={deb_cache}"]
    if recipe.packages:
        argv.append("--include=" + ",".join(recipe.packages))
    return argv + [recipe.suite, str(rootfs), mirror]


def chroot_argv(rootfs: Path, argv: Sequence[str]) -> list[str]:
    """Run inside the rootfs with a clean environment (the host's PIP_* settings stay out)."""
    env = ["env", "-i", f"PATH={_SYSTEM_PATH}", "HOME=/root", "LANG=C.UTF-8", "PIP_NO_CACHE_DIR=1",
           "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1"]
    return ["chroot", str(rootfs), *env, *argv]


def image_env(recipe: Recipe) -> dict[str, str]:
    env = {"PATH": f"{recipe.venv}/bin:{_SYSTEM_PATH}", "LLMFLEET_SIM_CONFIG": SIM_CONFIG_IN_IMAGE}
    env.update(recipe.env)
    return env


def change_args(env: dict[str, str], labels: dict[str, str], workdir: str | None = None, cmd: Sequence[str] | None = None) -> list[str]:
    """`--change` arguments for docker import/commit (Dockerfile instructions, JSON-quoted)."""
    out = []
    for key, value in env.items():
        out += ["--change", f"ENV {key}={json.dumps(value)}"]
    for key, value in labels.items():
        out += ["--change", f"LABEL {json.dumps(key)}={json.dumps(value)}"]
    if workdir:
        out += ["--change", f"WORKDIR {workdir}"]
    if cmd:
        out += ["--change", "CMD " + json.dumps(list(cmd))]
    return out


def debian_mirror(sources_dir: Path = Path("/etc/apt"), suite: str = "bookworm") -> str:
    """The Debian mirror apt uses on this machine ($LLMFLEET_LAB_DEBIAN_MIRROR overrides)."""
    env = os.environ.get("LLMFLEET_LAB_DEBIAN_MIRROR")
    if env:
        return env
    candidates: list[tuple[str, str]] = []  # (uri, suites text)
    files = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                if "deb" in fields.get("Types", "").split():
                    for uri in fields.get("URIs", "").split():
                        candidates.append((uri, fields.get("Suites", "")))
        else:
            for line in text.splitlines():
                m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    candidates.append((m.group(1), m.group(2)))
    for uri, suites in candidates:
        if suite in suites.split() and "security" not in uri:
            return uri
    raise BuildError(
        f"no Debian mirror for {suite!r} in {sources_dir}/sources.list*; set LLMFLEET_LAB_DEBIAN_MIRROR"
    )


def install_script(recipe: Recipe) -> str:
    """Runs inside the per-version build container: sglang (real), simulator, shims."""
    venv = recipe.venv
    return f"""#!/bin/sh
# llmfleet lab image, per-version layer: the REAL sglang wheel from PyPI (no GPU dependencies),
# the simulated server, and shims so that `sglang serve` / `python3 -m sglang.launch_server`
# start the simulator. Every other sglang module stays the real one.
set -eu
{venv}/bin/python3 -m pip install --no-index --no-deps --no-compile --no-cache-dir \\
    --disable-pip-version-check --quiet /build/wheels/*.whl
site=$({venv}/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site/{SIM_PACKAGE}"
cp -r /build/{SIM_PACKAGE} "$site/{SIM_PACKAGE}"
mkdir -p "$(dirname {SIM_CONFIG_IN_IMAGE})" {recipe.workdir}
cp /build/lab-sim.yml {SIM_CONFIG_IN_IMAGE}
cp /build/shims/launch_server.py "$site/sglang/launch_server.py"
cp /build/shims/sglang "{venv}/bin/sglang"
chmod 0755 "{venv}/bin/sglang"
find / -xdev -name __pycache__ -type d -prune -exec rm -rf {{}} +
rm -rf /build /root/.cache /tmp/* 2>/dev/null || true
"""


def shim_launch_server() -> str:
    return f'''"""llmfleet lab: SIMULATED SGLang server (no GPU, no model weights).

This image replaces sglang's launch_server with the llmfleet lab's simulator; every other
sglang module (bench_serving, test.few_shot_gsm8k, lang) is the real one from PyPI.
"""

import sys

from {SIM_PACKAGE}.shim import launch_server_main

if __name__ == "__main__":
    sys.exit(launch_server_main(sys.argv[1:]))
'''


def shim_sglang_cli(recipe: Recipe) -> str:
    return f'''#!{recipe.venv}/bin/python3
"""llmfleet lab: `sglang serve` starts the SIMULATED server (no GPU, no model weights);
other subcommands are the real sglang CLI."""

import sys

from {SIM_PACKAGE}.shim import sglang_cli_main

if __name__ == "__main__":
    sys.exit(sglang_cli_main(sys.argv[1:]))
'''


# ----------------------------------------------------------------------- I/O


class _Steps:
    """Rich progress for the long steps; output of each command goes to a log file."""

    def __init__(self, log: Path):
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.log = log
        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=self.console, transient=False
        )

    def __enter__(self) -> "_Steps":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        task = self.progress.add_task(f"lab image: {description}", total=1)
        try:
            yield
        except BaseException:
            self.progress.update(task, description=f"[red]lab image: {description} (failed)")
            raise
        self.progress.update(task, completed=1)

    def run(self, argv: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess:
        with open(self.log, "ab") as log:
            log.write(f"\n$ {' '.join(map(str, argv))}\n".encode())
            log.flush()
            proc = subprocess.run(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
        if proc.returncode != 0:
            tail = self.log.read_text(errors="replace").splitlines()[-15:]
            raise BuildError(f"{what} failed (exit {proc.returncode}); log: {self.log}\n" + "\n".join(tail))
        return proc


def _docker(docker_host: str, *args: str) -> list[str]:
    return ["docker", "-H", docker_host, *args]


def _inspect_images(docker_host: str, refs: Sequence[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """ref -> (image id, labels) for the refs the engine has; one call for all."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    if not refs:
        return out
    proc = subprocess.run(
        _docker(docker_host, "image", "inspect", *refs), capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    try:
        items = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        items = []
    for item in items:
        labels = (item.get("Config") or {}).get("Labels") or {}
        for tag in item.get("RepoTags") or []:
            out[tag] = (item["Id"], labels)
    return out


def _strip_rootfs(rootfs: Path, patterns: Sequence[str], venv: str) -> None:
    for pattern in patterns:
        for p in rootfs.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    for cache in list(rootfs.rglob("__pycache__")):
        if cache.is_dir() and not cache.is_symlink():
            shutil.rmtree(cache, ignore_errors=True)
    _dedupe(rootfs / venv.lstrip("/"))


def _dedupe(tree: Path) -> int:
    """Hard-link identical large files (pip unpacks versioned .so copies); returns bytes saved."""
    by_key: dict[tuple[int, str], Path] = {}
    saved = 0
    for p in sorted(tree.rglob("*")):
        if not p.is_file() or p.is_symlink():
            continue
        st = p.stat()
        if st.st_size < 256 * 1024:
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        key = (st.st_size, digest)
        first = by_key.get(key)
        if first is None:
            by_key[key] = p
            continue
        if first.stat().st_mode != st.st_mode:
            continue
        p.unlink()
        os.link(first, p)
        saved += st.st_size
    return saved


def _ensure_group(steps: _Steps, rootfs: Path, group: str) -> None:
    text = (rootfs / "etc" / "group").read_text()
    if re.search(rf"^{re.escape(group)}:", text, re.M):
        return
    steps.run(chroot_argv(rootfs, ["groupadd", "--system", group]), f"groupadd {group}")


def _build_base_tar(recipe: Recipe, bhash: str, cache: Path, steps: _Steps) -> Path:
    """The slow part: debootstrap + venv + pip installs, stripped, as one tarball."""
    tar = cache / f"base-{bhash[:16]}.tar"
    if tar.is_file():
        return tar
    if os.geteuid() != 0:
        raise BuildError("building the lab image's base rootfs needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "chroot", "tar"):
        if not shutil.which(tool):
            raise BuildError(f"{tool} not found: apt-get install debootstrap")
    wheels = cache / "wheels" / f"base-{bhash[:16]}"
    if not (wheels / ".complete").is_file():
        with steps.step("download the client wheels (pip)"):
            wheels.mkdir(parents=True, exist_ok=True)
            req = cache / f"base-{bhash[:16]}.requirements.txt"
            req.write_text(recipe.base_requirements)
            steps.run(pip_download_argv(sys.executable, recipe.python, req, wheels), "pip download")
            (wheels / ".complete").write_text("")
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        rootfs = work / "rootfs"
        with steps.step(f"debootstrap {recipe.suite} ({recipe.variant})"):
            deb_cache = cache / "debs"
            deb_cache.mkdir(parents=True, exist_ok=True)
            steps.run(debootstrap_argv(recipe, rootfs, debian_mirror(suite=recipe.suite), deb_cache), "debootstrap")
        with steps.step("python venv with the clients' dependencies"):
            for group in recipe.groups:
                _ensure_group(steps, rootfs, group)
            shutil.copytree(wheels, rootfs / "tmp" / "wheels")
            (rootfs / "tmp" / "requirements.txt").write_text(recipe.base_requirements)
            steps.run(chroot_argv(rootfs, ["python3", "-m", "venv", recipe.venv]), "python3 -m venv")
            steps.run(
                chroot_argv(rootfs, [f"{recipe.venv}/bin/python3", "-m", "pip", "install", "--quiet", "--no-index",
                                     "--no-compile", "--find-links", "/tmp/wheels", "-r", "/tmp/requirements.txt"]),
                "pip install (base requirements)",
            )
            shutil.rmtree(rootfs / "tmp" / "wheels")
            (rootfs / "tmp" / "requirements.txt").unlink()
            (rootfs / recipe.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        with steps.step("strip and pack the base rootfs"):
            _strip_rootfs(rootfs, recipe.strip, recipe.venv)
            partial = tar.with_suffix(".tar.partial")
            steps.run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."], "tar")
            partial.rename(tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune_cache(cache, bhash[:16])
    return tar


def _sglang_wheel(recipe: Recipe, version: str, cache: Path, steps: _Steps) -> Path:
    reqs_hash = hashlib.sha256(recipe.versions[version].encode()).hexdigest()[:16]
    dest = cache / "wheels" / f"sglang-{version}-{reqs_hash}"
    if not (dest / ".complete").is_file():
        with steps.step(f"download sglang {version} (pip, --no-deps)"):
            dest.mkdir(parents=True, exist_ok=True)
            req = dest / "requirements.txt"
            req.write_text(recipe.versions[version])
            steps.run(pip_download_argv(sys.executable, recipe.python, req, dest, no_deps=True),
                      f"pip download sglang {version}")
            req.unlink()
            (dest / ".complete").write_text("")
    return dest


def _version_context(recipe: Recipe, version: str, wheel_dir: Path, work: Path) -> Path:
    ctx = work / "build"
    (ctx / "wheels").mkdir(parents=True)
    for whl in wheel_dir.glob("*.whl"):
        shutil.copy2(whl, ctx / "wheels" / whl.name)
    pkg = ctx / SIM_PACKAGE
    pkg.mkdir()
    for src in sim_files():
        shutil.copy2(src, pkg / src.name)
    shutil.copy2(sim_config_path(), ctx / "lab-sim.yml")
    (ctx / "shims").mkdir()
    (ctx / "shims" / "launch_server.py").write_text(shim_launch_server())
    (ctx / "shims" / "sglang").write_text(shim_sglang_cli(recipe))
    (ctx / "install.sh").write_text(install_script(recipe))
    return ctx


def _build_version(docker_host: str, recipe: Recipe, version: str, tag: str, base_ref: str, labels: dict[str, str],
                   cache: Path, steps: _Steps) -> None:
    wheel_dir = _sglang_wheel(recipe, version, cache, steps)
    with steps.step(f"layer for SGLang {version} -> {tag}"):
        work = Path(tempfile.mkdtemp(prefix=f"ctx-{version}-", dir=cache))
        name = f"llmfleet-lab-build-{version.replace('.', '-')}-{os.getpid()}"
        try:
            _version_context(recipe, version, wheel_dir, work)
            steps.run(_docker(docker_host, "create", "--name", name, "--network", "none", base_ref,
                              "/bin/sh", "/build/install.sh"), "docker create")
            steps.run(_docker(docker_host, "cp", str(work / "build"), f"{name}:/build"), "docker cp")
            steps.run(_docker(docker_host, "start", "--attach", name), f"install sglang {version} in the build container")
            changes = change_args(image_env(recipe), labels, workdir=recipe.workdir, cmd=["/bin/bash"])
            steps.run(_docker(docker_host, "commit", *changes, name, tag), "docker commit")
        finally:
            subprocess.run(_docker(docker_host, "rm", "-f", name), capture_output=True, stdin=subprocess.DEVNULL)
            shutil.rmtree(work, ignore_errors=True)


def _prune(docker_host: str, base_ref: str) -> None:
    """Drop what this recipe superseded: untagged lab images and older base layers' tags."""
    old_bases = subprocess.run(_docker(docker_host, "images", BASE_REPO, "--format", "{{.Repository}}:{{.Tag}}"),
                               capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.split()
    for ref in old_bases:
        if ref != base_ref:
            subprocess.run(_docker(docker_host, "rmi", ref), capture_output=True, stdin=subprocess.DEVNULL)
    subprocess.run(_docker(docker_host, "image", "prune", "--force", "--filter", f"label={LABEL_SIMULATED}=true"),
                   capture_output=True, stdin=subprocess.DEVNULL)


def _prune_cache(cache: Path, keep: str) -> None:
    """Keep one base rootfs (and its wheels) in the cache: the current recipe's."""
    for old in cache.glob("base-*.tar"):
        if old.name != f"base-{keep}.tar":
            old.unlink(missing_ok=True)
    for old in (cache / "wheels").glob("base-*"):
        if old.name != f"base-{keep}":
            shutil.rmtree(old, ignore_errors=True)
    for old in cache.glob("base-*.requirements.txt"):
        if old.name != f"base-{keep}.requirements.txt":
            old.unlink(missing_ok=True)


def lab_tags(recipe: Recipe, cat: catalog.Catalog | None = None) -> dict[str, str]:
    """version -> the real tag for the lab's hardware kind (e.g. lmsysorg/sglang:v0.5.9-rocm720-mi30x)."""
    cat = cat or catalog.load()
    hw = cat.hw(recipe.hardware)
    return {version: cat.image_tag(version, hw) for version in recipe.versions}


def wanted_images(recipe: Recipe | None = None) -> tuple[str, dict[str, tuple[str, str]]]:
    """(base hash, {version: (tag, recipe hash)}): what the engine should hold, computed offline."""
    recipe = recipe or load_recipe()
    bhash = base_hash(recipe)
    sources = [(p.name, p.read_bytes()) for p in sim_files()]
    config = sim_config_path().read_bytes()
    tags = lab_tags(recipe)
    return bhash, {v: (tags[v], version_hash(recipe, v, bhash, sources, config)) for v in recipe.versions}


def _save_images(docker_host: str, tags: list[str], built: Path, steps: _Steps) -> None:
    """The built images as one `docker save` tar in the cache, the one set kept: another lab
    instance's engine loads it instead of building again, and gets the same image IDs."""
    if built.is_file():
        return
    with steps.step("docker save (for other lab instances' engines)"):
        partial = built.with_name(f"{built.name}.{os.getpid()}.partial")
        try:
            steps.run(_docker(docker_host, "save", "--output", str(partial), *tags), "docker save")
            os.replace(partial, built)
        finally:
            partial.unlink(missing_ok=True)
    for old in built.parent.glob("images-*.tar"):
        if old != built:
            old.unlink(missing_ok=True)


def saved_images_key(wanted: dict[str, tuple[str, str]]) -> str:
    """Names the saved copy of one set of built images (tags and recipe hashes)."""
    return _digest([f"{tag}={rhash}" for tag, rhash in sorted(wanted.values())])[:16]


def ensure_images(docker_host: str) -> dict[str, str]:
    """Make the control engine at `docker_host` hold the lab images of the current recipe.

    Returns tag -> image id. A fast no-op (one `docker image inspect`) when they are there.
    """
    recipe = load_recipe()
    bhash, wanted = wanted_images(recipe)
    tags = [tag for tag, _ in wanted.values()]
    have = _inspect_images(docker_host, tags)
    result = {tag: have[tag][0] for tag, rh in wanted.values() if tag in have and have[tag][1].get(LABEL_RECIPE) == rh}
    cache = cache_root()
    built = cache / f"images-{saved_images_key(wanted)}.tar"
    if len(result) == len(wanted):
        if not built.is_file():  # built before images were saved for other instances: save them once
            with locked(cache / ".lock"), _Steps(cache / "build.log") as steps:
                _save_images(docker_host, tags, built, steps)
        return result

    with locked(cache / ".lock"), _Steps(cache / "build.log") as steps:
        started = time.monotonic()
        base_ref = f"{BASE_REPO}:{bhash[:16]}"
        if built.is_file():
            # Another lab instance's engine built them: the same images (same IDs), in seconds.
            with steps.step("docker load (the images a lab engine built and saved)"):
                steps.run(_docker(docker_host, "load", "--quiet", "--input", str(built)), "docker load")
        else:
            if base_ref not in _inspect_images(docker_host, [base_ref]):
                tar = _build_base_tar(recipe, bhash, cache, steps)
                with steps.step("docker import (base layer)"):
                    labels = {LABEL_SIMULATED: "true", LABEL_BASE: bhash}
                    steps.run(_docker(docker_host, "import", *change_args(image_env(recipe), labels), str(tar),
                                      base_ref), "docker import")
            for version, (tag, rhash) in wanted.items():
                if tag in result:
                    continue
                labels = {LABEL_SIMULATED: "true", LABEL_RECIPE: rhash, LABEL_BASE: bhash, LABEL_VERSION: version}
                _build_version(docker_host, recipe, version, tag, base_ref, labels, cache, steps)
            _save_images(docker_host, tags, built, steps)
        _prune(docker_host, base_ref)
        have = _inspect_images(docker_host, tags)
        steps.console.print(f"lab image: ready in {time.monotonic() - started:.0f} s", style="dim")
    missing = [tag for tag, rh in wanted.values() if tag not in have or have[tag][1].get(LABEL_RECIPE) != rh]
    if missing:
        raise BuildError(f"images missing after the build: {', '.join(missing)}")
    return {tag: have[tag][0] for tag in tags}
