"""The local run archive: one checksummed, never-overwritten folder per run.

A run is written under ``<root>/.<run-id>.partial`` and renamed to
``<root>/<run-id>`` only after its ``manifest.json`` (every file's path, size and
sha256, and the run's metadata) is on disk. So a folder named like a run id
always holds a complete run; a process killed halfway leaves only the
``.partial`` folder, and a run that raised is renamed to ``.<run-id>.failed``
with a ``failed.json`` (never a manifest). Readers (``list_runs``) skip both.
The layout is documented in docs/archive-format.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as _dt
import errno
import hashlib
import json
import os
import re
import secrets as _secrets
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from . import __version__, metrics, paths
from .errors import InputError
from .shell import mask

FORMAT = 1
MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
RUN_ID_RE = re.compile(r"\A\d{8}T\d{6}Z-[0-9a-f]{6}\Z")
_RESERVED = {MANIFEST, "failed.json"}


class ArchiveError(Exception):
    """The archive refused an operation (existing run, bad path, closed writer)."""


# --- ids, paths, hashing -------------------------------------------------------


def new_run_id(now: _dt.datetime | None = None) -> str:
    """UTC ``YYYYmmddTHHMMSSZ-<6 hex>``: sorts by time, unique without coordination."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + _secrets.token_hex(3)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_relpath(relpath: str) -> str:
    """A safe path inside a run: relative, no '..', no empty parts, not a reserved name."""
    p = PurePosixPath(relpath)
    if not relpath or p.is_absolute() or any(part in ("", ".", "..") for part in relpath.split("/")) or "\\" in relpath:
        raise ArchiveError(f"not a safe path inside a run: {relpath!r}")
    if str(p) in _RESERVED:
        raise ArchiveError(f"{relpath!r} is written by the archive itself")
    return str(p)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_RENAME_NOREPLACE = 1
_libc = None


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename that fails if dst exists (renameat2 RENAME_NOREPLACE; checked fallback elsewhere)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fn = getattr(_libc, "renameat2", None)
    if fn is not None:
        at_fdcwd = -100
        rc = fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- writing -------------------------------------------------------------------


class RunWriter:
    """Writes one run; use as a context manager (see the module docstring).

    ``path`` is the ``.partial`` folder while the run is open and the final
    folder after a clean exit. Secrets given to ``new_run`` are masked in every
    text file and in the manifest; ``write``/``copy_in`` take more.
    """

    def __init__(self, meta: dict[str, Any], root: Path, secrets: Iterable[str] = ()):
        self.root = Path(root)
        self.run_id = new_run_id()
        self.final_path = self.root / self.run_id
        self.path = self.root / f".{self.run_id}.partial"
        self.meta: dict[str, Any] = dict(meta)
        self.secrets = [s for s in secrets if s]
        self._open = False
        self.status: str | None = None

    # context manager
    def __enter__(self) -> "RunWriter":
        self.root.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(self.final_path):
            raise ArchiveError(f"run {self.run_id} already exists: refusing to overwrite it")
        self.path.mkdir()
        self.meta.setdefault("started_at", _utc_now())
        self._open = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._open:
            return
        self._open = False
        if exc_type is None:
            self._commit()
        else:
            self._fail(exc_type, exc, tb)

    # writing files
    def _target(self, relpath: str) -> Path:
        if not self._open:
            raise ArchiveError("the run is closed")
        return self.path / check_relpath(relpath)

    def _masked(self, data: bytes, secrets: Iterable[str]) -> bytes:
        all_secrets = [*self.secrets, *[s for s in secrets if s]]
        if all_secrets and _is_text(data):
            return mask(data.decode("utf-8"), all_secrets).encode("utf-8")
        return data

    def write(self, relpath: str, data: bytes | str, secrets: Iterable[str] = ()) -> Path:
        """Write one file of the run (text is masked); returns its path in the open run."""
        target = self._target(relpath)
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        _write_atomic(target, self._masked(raw, secrets))
        return target

    def copy_in(self, relpath: str, src: str | Path, secrets: Iterable[str] = ()) -> Path:
        """Copy a local file into the run (text is masked like ``write``)."""
        src = Path(src)
        target = self._target(relpath)
        if self.secrets or secrets:
            return self.write(relpath, src.read_bytes(), secrets)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
        return target

    def event(self, kind: str, **fields: Any) -> None:
        """Append one line to the run's events.jsonl (what happened, when, on which host)."""
        target = self._target(EVENTS)
        line = json.dumps({"ts": _utc_now(), "event": kind, **fields}, sort_keys=True, default=str)
        line = mask(line, self.secrets)
        with open(target, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def update_meta(self, **kw: Any) -> None:
        """Add or replace run metadata (written into manifest.json at the end)."""
        self.meta.update(kw)

    # ending
    def _files(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.path.rglob("*")):
            if p.is_file() and not p.name.endswith(".tmp"):
                rel = p.relative_to(self.path).as_posix()
                if rel in _RESERVED:
                    continue
                out.append({"path": rel, "size": p.stat().st_size, "sha256": sha256_file(p)})
        return out

    def _commit(self) -> None:
        self.status = "complete"
        manifest = {
            "format": FORMAT,
            "run_id": self.run_id,
            "toolkit_version": __version__,
            **self.meta,
            # the run's outcome if the caller set one ("ok"/"failed"), else "complete";
            # "complete": true is the archive's own word that every file is listed
            "status": self.meta.get("status") or "complete",
            "complete": True,
            "ended_at": _utc_now(),
            "files": self._files(),
        }
        manifest["run_id"] = self.run_id
        text = mask(json.dumps(manifest, indent=2, sort_keys=True, default=str), self.secrets) + "\n"
        _write_atomic(self.path / MANIFEST, text.encode("utf-8"))
        _fsync_dir(self.path)
        try:
            rename_noreplace(self.path, self.final_path)
        except OSError as exc:
            raise ArchiveError(f"run {self.run_id} already exists: refusing to overwrite it ({exc})") from exc
        _fsync_dir(self.root)
        self.path = self.final_path

    def _fail(self, exc_type, exc, tb) -> None:
        self.status = "failed"
        info = {
            "run_id": self.run_id,
            **self.meta,
            "status": "failed",
            "ended_at": _utc_now(),
            "error": f"{exc_type.__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc_type, exc, tb))[-8000:],
        }
        text = mask(json.dumps(info, indent=2, sort_keys=True, default=str), self.secrets)
        try:
            _write_atomic(self.path / "failed.json", text.encode("utf-8"))
            failed = self.root / f".{self.run_id}.failed"
            rename_noreplace(self.path, failed)
            self.path = failed
        except OSError:
            pass  # stays .partial: still never looks complete


def new_run(meta: dict[str, Any], root: Path | None = None, secrets: Iterable[str] = ()) -> RunWriter:
    """A writer for a new run under ``root`` (default: paths.archive_dir()); use with ``with``."""
    return RunWriter(meta, Path(root) if root is not None else paths.archive_dir(), secrets)


# --- reading -------------------------------------------------------------------


@dataclass
class RunInfo:
    """A complete run as listed: its id, folder and manifest."""

    run_id: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        return self.manifest

    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))

    @property
    def model(self) -> str:
        return str(self.manifest.get("model", ""))

    @property
    def hosts(self) -> list[str]:
        return host_names(self.manifest)


def host_names(meta: dict[str, Any]) -> list[str]:
    """Hosts of a run: ``meta["hosts"]`` is a list of names or a mapping name -> facts."""
    hosts = meta.get("hosts") or []
    if isinstance(hosts, dict):
        return sorted(hosts)
    return [str(h) for h in hosts]


def host_meta(meta: dict[str, Any], host: str) -> dict[str, Any]:
    """One host's facts from a manifest.

    Accepts ``hosts: {name: {hardware, image, image_id, sglang_version}}`` and the
    run-level forms ``hardware: "mi300x"`` or ``hardware: {name: "mi300x"}`` (same
    for image, image_id, sglang_version; ``image_ids``/``images`` maps too).
    """
    out: dict[str, Any] = {}
    for key in ("hardware", "image", "image_id", "sglang_version"):
        for source, scalar_ok in ((meta.get(key), True), (meta.get(key + "s"), False)):
            if isinstance(source, dict):
                if source.get(host) is not None:
                    out[key] = source[host]
                    break
            elif scalar_ok and source is not None:
                out[key] = source
                break
    hosts = meta.get("hosts")
    if isinstance(hosts, dict) and isinstance(hosts.get(host), dict):
        out.update({k: v for k, v in hosts[host].items() if v is not None})
    return out


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Complete runs, newest first; partial, failed and foreign folders are skipped."""
    root = Path(root) if root is not None else paths.archive_dir()
    if not root.is_dir():
        return []
    runs = []
    for entry in root.iterdir():
        if not RUN_ID_RE.match(entry.name) or not entry.is_dir():
            continue
        manifest = _read_manifest(entry)
        if manifest is None:
            continue
        runs.append(RunInfo(entry.name, entry, manifest))
    runs.sort(key=lambda r: r.run_id, reverse=True)
    return runs


RESULT_KINDS = ("bench", "accuracy")  # runs that hold benchmark or accuracy results


def latest_run(root: Path | None = None, kinds: tuple[str, ...] | None = None) -> RunInfo | None:
    runs = [r for r in list_runs(root) if kinds is None or r.kind in kinds]
    return runs[0] if runs else None


def load_run(
    run_id_or_path: str | Path | None = None, root: Path | None = None, kinds: tuple[str, ...] | None = None
) -> RunInfo:
    """A run by id, by unique id prefix, by folder path, or the latest (None / "latest") of `kinds`."""
    root = Path(root) if root is not None else paths.archive_dir()
    if run_id_or_path in (None, "", "latest"):
        run = latest_run(root, kinds)
        if run is None:
            what = f"{' or '.join(kinds)} run" if kinds else "run"
            raise InputError(f"no archived {what} in {root}")
        return run
    candidate = Path(run_id_or_path)
    if candidate.is_dir() and (candidate / MANIFEST).is_file():
        manifest = _read_manifest(candidate)
        if manifest is None:
            raise InputError("unreadable manifest.json", candidate / MANIFEST)
        return RunInfo(candidate.name, candidate, manifest)
    wanted = str(run_id_or_path)
    matches = [r for r in list_runs(root) if r.run_id == wanted or r.run_id.startswith(wanted)]
    exact = [r for r in matches if r.run_id == wanted]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"no archived run {wanted!r} in {root}")
    raise InputError(f"{wanted!r} matches several runs: " + ", ".join(r.run_id for r in matches))


def verify_run(path: str | Path) -> list[str]:
    """Problems with an archived run: missing, changed or extra files; [] when intact."""
    path = Path(path)
    manifest = _read_manifest(path)
    if manifest is None:
        return [f"{MANIFEST}: missing or unreadable"]
    problems: list[str] = []
    listed: set[str] = set()
    for entry in manifest.get("files", []):
        rel = str(entry.get("path", ""))
        listed.add(rel)
        p = path / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = p.stat().st_size
        if size != entry.get("size"):
            problems.append(f"{rel}: size {size}, manifest says {entry.get('size')}")
        if sha256_file(p) != entry.get("sha256"):
            problems.append(f"{rel}: sha256 mismatch")
    for p in sorted(path.rglob("*")):
        if p.is_file():
            rel = p.relative_to(path).as_posix()
            if rel not in listed and rel != MANIFEST:
                problems.append(f"{rel}: not in the manifest")
    return problems


# --- results of a run ---------------------------------------------------------


@dataclass
class HostResults:
    """Parsed metrics of one host: per bench profile, and GSM8K."""

    bench: dict[str, dict[str, Any]] = field(default_factory=dict)
    gsm8k: dict[str, Any] = field(default_factory=dict)


def bench_metrics(log: Path | None, jsonl: Path | None) -> dict[str, Any]:
    """One profile's metrics: the text log's last block, overlaid by the JSONL's last record.

    The JSONL (bench_serving --output-file) carries full precision; the text
    log carries lines the JSONL lacks (Max ITL, Failed requests).
    """
    out: dict[str, Any] = {}
    if log is not None and log.is_file():
        out.update(metrics.parse_file(log))
    if jsonl is not None and jsonl.is_file():
        records = metrics.parse_jsonl(jsonl.read_text(encoding="utf-8", errors="replace"))
        if records:
            out.update(records[-1])
    return out


def run_results(run: RunInfo) -> dict[str, HostResults]:
    """Every host's parsed results, read from the run's files."""
    hosts = set(host_names(run.manifest))
    for child in run.path.iterdir():
        if child.is_dir() and ((child / "bench").is_dir() or (child / "accuracy").is_dir()):
            hosts.add(child.name)
    out: dict[str, HostResults] = {}
    for host in sorted(hosts):
        hdir = run.path / host
        res = HostResults()
        bench_dir = hdir / "bench"
        if bench_dir.is_dir():
            profiles = {p.stem for p in bench_dir.iterdir() if p.suffix in (".log", ".jsonl")}
            for profile in sorted(profiles):
                m = bench_metrics(bench_dir / f"{profile}.log", bench_dir / f"{profile}.jsonl")
                if m:
                    res.bench[profile] = m
        gsm = hdir / "accuracy" / "gsm8k.log"
        if gsm.is_file():
            res.gsm8k = metrics.parse_file(gsm)
        out[host] = res
    return out
