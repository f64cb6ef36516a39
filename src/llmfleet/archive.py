"""The local run archive: one checksummed, never-overwritten folder per run.

A run is written under ``<root>/.<run-id>.partial`` and renamed to
``<root>/<run-id>`` only after its ``manifest.json`` (every file's path, size and
sha256, and the run's metadata) is on disk. So a folder named like a run id
always holds a complete run; a process killed halfway leaves only the
``.partial`` folder, and a run that raised is renamed to ``.<run-id>.failed``
with a ``failed.json`` (never a manifest). Readers (``list_runs``) skip both.
The layout is documented in docs/archive-format.md.

Reading is the other half: a manifest is schema-checked (``Manifest``), and
``verify_run`` and ``run_results`` reach files only through ``open_in_run``,
which accepts regular files inside the run folder and never follows a symlink.
So the archive says "verified" only for what the run folder itself holds.
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
import stat
import traceback
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Iterable, Literal

import msgspec

from . import __version__, metrics, paths, schema, yamlsrc
from .errors import InputError
from .secrets import mask, redact, redact_bytes
from .secrets import registered as registered_secrets

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
        """Secrets given to the run or the call (text files), and every registered one (all files)."""
        all_secrets = [*self.secrets, *[s for s in secrets if s]]
        if all_secrets and _is_text(data):
            data = mask(data.decode("utf-8"), all_secrets).encode("utf-8")
        return redact_bytes(data)

    def _masked_text(self, text: str) -> str:
        return redact(mask(text, self.secrets))

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
        if self.secrets or secrets or registered_secrets():
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
        line = self._masked_text(line)
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
        text = self._masked_text(json.dumps(manifest, indent=2, sort_keys=True, default=str)) + "\n"
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
        text = self._masked_text(json.dumps(info, indent=2, sort_keys=True, default=str))
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


# --- the manifest's schema -------------------------------------------------------

_SHA256 = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{64}\Z")]
_PerHost = str | dict[str, str | None] | None  # run-wide value, or host -> value


class FileEntry(schema.Struct, frozen=True, kw_only=True):
    """One file of a run as the manifest lists it."""

    path: str
    size: Annotated[int, msgspec.Meta(ge=0)]
    sha256: _SHA256


class HostFacts(schema.Struct, forbid_unknown_fields=False, frozen=True, kw_only=True):
    """A host's facts in ``hosts: {name: {...}}``; other facts a step recorded pass through."""

    hardware: str | None = None
    image: str | None = None
    image_id: str | None = None
    sglang_version: str | None = None


class Manifest(schema.Struct, forbid_unknown_fields=False, frozen=True, kw_only=True):
    """manifest.json (docs/archive-format.md): the keys the archive and the report rely on.

    Other keys are run metadata a caller chose (flags, recap, notes ...): kept, not checked.
    """

    format: Literal[1]
    run_id: str
    complete: bool
    status: str = "complete"
    kind: str = ""
    model: str | None = None
    hf_id: str | None = None
    sglang_version: str | None = None
    simulated: bool = False
    hosts: dict[str, HostFacts | None] | list[str] = []
    hardware: _PerHost = None
    image: _PerHost = None
    image_id: _PerHost = None
    images: dict[str, str | None] | None = None
    image_ids: dict[str, str | None] | None = None
    flags: dict[str, Any] | None = None
    files: list[FileEntry]


def safe_name(name: object) -> bool:
    """A host name usable as one path component: no separator, no '..', no control characters."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(c in name for c in "/\\\0")
        and all(c.isprintable() for c in name)
    )


def relpath_problem(relpath: str) -> str | None:
    """Why ``relpath`` is not a safe path inside a run, or None."""
    if not relpath:
        return "an empty path"
    if relpath.startswith("/") or PurePosixPath(relpath).is_absolute():
        return "an absolute path"
    if "\\" in relpath or "\0" in relpath:
        return "a backslash or NUL in the path"
    parts = relpath.split("/")
    if ".." in parts:
        return "'..' in the path: outside the run"
    if any(part in ("", ".") for part in parts):
        return "an empty or '.' part in the path"
    if relpath in _RESERVED:
        return "a name the archive writes itself"
    return None


# --- opening files inside a run without following symlinks ------------------------


class UnsafePath(ArchiveError):
    """A path inside a run that cannot be read safely: what is wrong is the message."""


_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink (not followed)"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_in_run(run_dir: Path, relpath: str) -> int:
    """A read-only fd of the regular file ``relpath`` inside ``run_dir``; UnsafePath otherwise.

    Each component is opened relative to its parent with O_NOFOLLOW, so a
    symlink anywhere on the path (or one swapped in meanwhile) is refused.
    """
    problem = relpath_problem(relpath)
    if problem:
        raise UnsafePath(problem)
    return _open_parts(run_dir, relpath.split("/"))


def _open_parts(run_dir: Path, parts: list[str]) -> int:
    dfd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = "/".join(parts[: i + 1])
            try:
                st = os.stat(part, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise UnsafePath("missing") from None
            except OSError as exc:
                raise UnsafePath(f"cannot read {where}: {exc.strerror}") from None
            if last and not stat.S_ISREG(st.st_mode) or not last and not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(_kind(st.st_mode) if last else f"{where} is {_kind(st.st_mode)}")
            try:
                fd = os.open(part, _O_FILE if last else _O_DIR, dir_fd=dfd)
            except OSError as exc:  # swapped since the stat (ELOOP: now a symlink)
                raise UnsafePath(f"{where} changed while read: {exc.strerror}") from None
            os.close(dfd)
            dfd = fd
        if not stat.S_ISREG(os.fstat(dfd).st_mode):
            raise UnsafePath("not a regular file")
        fd, dfd = dfd, -1
        return fd
    finally:
        if dfd >= 0:
            os.close(dfd)


def _read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes of an fd (closed afterwards)."""
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def _hash_fd(fd: int) -> tuple[int, str]:
    """(size, sha256) of an open file, streamed (closed afterwards)."""
    h, size = hashlib.sha256(), 0
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


# --- reading -------------------------------------------------------------------


@dataclass
class RunInfo:
    """A run as listed: its id, folder and manifest (raw, and typed when it passed the schema).

    ``problems`` says why the manifest could not be read or failed its schema; such
    a run is listed (as not verified) but its results are never read.
    """

    run_id: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    typed: Manifest | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        return self.manifest

    @property
    def status(self) -> str:
        return _text(self.manifest.get("status", "unknown"))

    @property
    def kind(self) -> str:
        return _text(self.manifest.get("kind", ""))

    @property
    def model(self) -> str:
        return _text(self.manifest.get("model", ""))

    @property
    def hosts(self) -> list[str]:
        return host_names(self.manifest)


def _text(value: Any) -> str:
    """A manifest value shown as text: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def host_names(meta: dict[str, Any]) -> list[str]:
    """Hosts of a run: ``meta["hosts"]`` is a list of names or a mapping name -> facts.

    Only safe names count (a single path component): anything else is a manifest
    problem that ``verify_run`` reports, never a folder to read.
    """
    hosts = meta.get("hosts")
    if isinstance(hosts, dict):
        return sorted(h for h in hosts if safe_name(h))
    if isinstance(hosts, list):
        return list(dict.fromkeys(h for h in hosts if safe_name(h)))
    return []


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


def read_manifest(run_dir: Path) -> tuple[dict[str, Any], Manifest | None, list[str]]:
    """(raw manifest, typed manifest or None, problems) of a run folder; never raises."""
    try:
        raw = _read_fd(_open_parts(run_dir, [MANIFEST]), yamlsrc.MAX_FILE_BYTES + 1)
    except (UnsafePath, OSError) as exc:
        return {}, None, [f"{MANIFEST}: {exc}"]
    try:
        data = yamlsrc.loads_json(raw.decode("utf-8"), MANIFEST)  # bounded: size and depth
    except UnicodeDecodeError:
        return {}, None, [f"{MANIFEST}: not UTF-8 text"]
    except InputError as exc:
        return {}, None, [str(exc)]
    if not isinstance(data, dict):
        return {}, None, [f"{MANIFEST}: not a JSON object"]
    try:
        typed = schema.convert(data, Manifest, what="manifest")
    except InputError as exc:
        return data, None, [f"{MANIFEST}: {exc.message}"]
    return data, typed, []


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Runs, newest first: every folder named like a run id that holds a manifest.json.

    A manifest that is unreadable or fails its schema still lists the run, with its
    ``problems``: one bad run never hides the others. Partial, failed and foreign
    folders are skipped.
    """
    root = Path(root) if root is not None else paths.archive_dir()
    if not root.is_dir():
        return []
    runs = []
    for entry in root.iterdir():
        if not RUN_ID_RE.match(entry.name) or not entry.is_dir() or not os.path.lexists(entry / MANIFEST):
            continue
        runs.append(_run_info(entry))
    runs.sort(key=lambda r: r.run_id, reverse=True)
    return runs


def _run_info(run_dir: Path) -> RunInfo:
    raw, typed, problems = read_manifest(run_dir)
    return RunInfo(run_dir.name, run_dir, raw, typed, problems)


RESULT_KINDS = ("bench", "accuracy", "session")  # runs that hold benchmark or accuracy results (session: both)


def latest_run(root: Path | None = None, kinds: tuple[str, ...] | None = None) -> RunInfo | None:
    runs = [r for r in list_runs(root) if kinds is None or r.kind in kinds]
    return runs[0] if runs else None


def _usable(run: RunInfo) -> RunInfo:
    """The run, or an InputError saying why its manifest cannot be trusted for results."""
    if run.typed is None:
        raise InputError("; ".join(run.problems) or "unreadable manifest", run.path / MANIFEST)
    return run


def load_run(
    run_id_or_path: str | Path | None = None, root: Path | None = None, kinds: tuple[str, ...] | None = None
) -> RunInfo:
    """A run by id, by unique id prefix, by folder path, or the latest (None / "latest") of `kinds`.

    A run whose manifest is unreadable or fails its schema is an InputError naming the problem.
    """
    root = Path(root) if root is not None else paths.archive_dir()
    if run_id_or_path in (None, "", "latest"):
        run = latest_run(root, kinds)
        if run is None:
            what = f"{' or '.join(kinds)} run" if kinds else "run"
            raise InputError(f"no archived {what} in {root}")
        return _usable(run)
    candidate = Path(run_id_or_path)
    if candidate.is_dir() and os.path.lexists(candidate / MANIFEST):
        return _usable(_run_info(candidate))
    wanted = str(run_id_or_path)
    matches = [r for r in list_runs(root) if r.run_id == wanted or r.run_id.startswith(wanted)]
    exact = [r for r in matches if r.run_id == wanted]
    if exact:
        return _usable(exact[0])
    if len(matches) == 1:
        return _usable(matches[0])
    if not matches:
        raise InputError(f"no archived run {wanted!r} in {root}")
    raise InputError(f"{wanted!r} matches several runs: " + ", ".join(r.run_id for r in matches))


# --- verification -------------------------------------------------------------


def verify_run(path: str | Path) -> list[str]:
    """What is wrong with an archived run; [] when the manifest vouches for exactly what the folder holds.

    Checked: the manifest (readable, its schema, ``complete``, safe host names),
    every listed file (a safe relative path, a regular file reached without a
    symlink, its size and sha256), and every entry of the folder (listed, regular,
    no symlinks). Never raises for anything a run folder can contain.
    """
    path = Path(path)
    raw, typed, problems = read_manifest(path)
    if typed is None:
        return problems
    problems.extend(manifest_problems(raw, typed))
    listed: set[str] = set()
    for entry in typed.files:
        problem = _entry_problem(path, entry, listed)
        listed.add(entry.path)
        if problem:
            problems.append(f"{entry.path!r}: {problem}" if relpath_problem(entry.path) else f"{entry.path}: {problem}")
    problems.extend(_folder_problems(path, listed))
    return problems


def manifest_problems(raw: dict[str, Any], typed: Manifest) -> list[str]:
    """What the schema cannot say: the run is complete, host names are single path components."""
    problems = [] if typed.complete else [f"{MANIFEST}: complete is false"]
    hosts = raw.get("hosts")
    names = list(hosts) if isinstance(hosts, (dict, list)) else []
    problems.extend(f"{MANIFEST}: host name {h!r} is not a safe folder name" for h in names if not safe_name(h))
    return problems


def _entry_problem(run_dir: Path, entry: FileEntry, seen: set[str]) -> str | None:
    """Why one manifest entry does not match the folder, or None."""
    if entry.path in seen:
        return "listed twice in the manifest"
    problem = relpath_problem(entry.path)
    if problem:
        return f"listed in the manifest with {problem}; not read"
    try:
        size, digest = _hash_fd(open_in_run(run_dir, entry.path))
    except UnsafePath as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if size != entry.size:
        return f"size {size}, manifest says {entry.size}"
    if digest != entry.sha256:
        return "sha256 mismatch"
    return None


def _folder_problems(run_dir: Path, listed: set[str]) -> list[str]:
    """Entries of the folder the manifest does not vouch for: unlisted files, symlinks, FIFOs ..."""
    problems: list[str] = []
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            entries = sorted(os.scandir(run_dir / prefix if prefix else run_dir), key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{prefix or '.'}: cannot list: {exc.strerror}")
            continue
        for e in entries:
            rel = f"{prefix}{e.name}"
            if e.is_symlink():
                problems.append(f"{rel}: a symlink (not followed)")
            elif e.is_dir(follow_symlinks=False):
                stack.append(rel + "/")
            elif not e.is_file(follow_symlinks=False):
                problems.append(f"{rel}: not a regular file")
            elif rel not in listed and rel != MANIFEST:
                problems.append(f"{rel}: not in the manifest")
    return problems


# --- results of a run ---------------------------------------------------------


@dataclass
class HostResults:
    """Parsed metrics of one host: per bench profile, and GSM8K."""

    bench: dict[str, dict[str, Any]] = field(default_factory=dict)
    gsm8k: dict[str, Any] = field(default_factory=dict)


def read_verified(run: RunInfo, relpath: str) -> bytes | None:
    """A file's bytes, only when the manifest lists it and they match its size and sha256.

    What is parsed is exactly what was checked (one read): a file changed, missing,
    unlisted or reached through a symlink gives None.
    """
    entry = next((f for f in (run.typed.files if run.typed else []) if f.path == relpath), None)
    if entry is None:
        return None
    try:
        data = _read_fd(open_in_run(run.path, relpath), entry.size + 1)
    except (UnsafePath, OSError):
        return None
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        return None
    return data


def _decoded(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def bench_metrics(log: str | None, jsonl: str | None) -> dict[str, Any]:
    """One profile's metrics: the text log's last block, overlaid by the JSONL's last record.

    The JSONL (bench_serving --output-file) carries full precision; the text
    log carries lines the JSONL lacks (Max ITL, Failed requests).
    """
    out: dict[str, Any] = {}
    if log is not None:
        out.update(metrics.parse_text(log))
    if jsonl is not None:
        records = metrics.parse_jsonl(jsonl)
        if records:
            out.update(records[-1])
    return out


_RESULT_FILE = re.compile(r"\A(?P<host>[^/]+)/(?:bench/(?P<profile>[^/]+)\.(?:log|jsonl)|accuracy/gsm8k\.log)\Z")
GSM8K_LOG = "accuracy/gsm8k.log"


def result_files(run: RunInfo) -> dict[str, set[str]]:
    """host -> bench profiles (and GSM8K_LOG) whose files the manifest lists under safe names."""
    out: dict[str, set[str]] = {}
    for entry in run.typed.files if run.typed else []:
        m = _RESULT_FILE.match(entry.path)
        if m and safe_name(m.group("host")) and not relpath_problem(entry.path):
            out.setdefault(m.group("host"), set()).add(m.group("profile") or GSM8K_LOG)
    return out


def run_results(run: RunInfo) -> dict[str, HostResults]:
    """Every host's parsed results, read only from files the manifest lists and that verify."""
    _usable(run)
    files = result_files(run)
    out: dict[str, HostResults] = {}
    for host in sorted(set(host_names(run.manifest)) | set(files)):
        res = HostResults()
        for name in sorted(files.get(host, set())):
            if name == GSM8K_LOG:
                text = _decoded(read_verified(run, f"{host}/{GSM8K_LOG}"))
                res.gsm8k = metrics.parse_text(text) if text is not None else {}
                continue
            log = _decoded(read_verified(run, f"{host}/bench/{name}.log"))
            jsonl = _decoded(read_verified(run, f"{host}/bench/{name}.jsonl"))
            m = bench_metrics(log, jsonl)
            if m:
                res.bench[name] = m
        out[host] = res
    return out
