"""Get the SGLang image onto a host: `docker pull` there, or push it from the control node.

Push streams `docker save` output (saved once per run on the control node, whatever
the number of hosts) over each host's SSH connection into `docker load`, with a
progress bar per host; only the layers the host lacks when its engine can take that
(`imagelayers`: an upgrade sends the new release's top layers, not its ROCm base).
Either way the step is skipped when the host already has the image (the same image
ID, for a push).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping

import paramiko

from .. import imagelayers, relay, secrets, shell
from ..commands import docker
from ..steps import CHANGED, OK, HostContext, StepFailed, spec
from ..transport import INTERRUPTED, Result, Unreachable

CHUNK = 1 << 20
KEEP_TARS = 2  # saved images kept on the control node (the current one and the one before)


@dataclass
class ControlImage:
    tag: str
    image_id: str
    size: int
    tar: Path | None = None
    saved: imagelayers.SavedImage | None = None  # its layers, read from the tar


def _control_env(docker_host: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return env


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llmfleet" / "images"


class ControlImages:
    """The control node's images, inspected and saved once per run for all hosts."""

    def __init__(self, docker_host: str | None):
        self.docker_host = docker_host
        self._lock = threading.Lock()
        self._images: dict[str, ControlImage] = {}
        self._in_use: list[IO[str]] = []  # shared locks on the saved images this run streams; held until it exits

    def inspect(self, tag: str) -> ControlImage:
        with self._lock:
            if tag not in self._images:
                argv = docker.image_id(tag)  # DOCKER_HOST picks the engine
                proc = subprocess.run(argv, capture_output=True, text=True, env=_control_env(self.docker_host))
                if proc.returncode != 0:
                    where = self.docker_host or "the control node's default engine"
                    raise StepFailed(f"image {tag} is not on the control node ({where}): {proc.stderr.strip()[:200]}")
                image_id, size = proc.stdout.split()
                self._images[tag] = ControlImage(tag, image_id, int(size))
            return self._images[tag]

    def tar(self, tag: str) -> ControlImage:
        """Save the image to the cache once; every host's push reads the same file."""
        image = self.inspect(tag)
        with self._lock:
            if image.tar is None:
                path = cache_dir() / f"{image.image_id.split(':')[-1]}.tar"

                def save(tmp: Path) -> None:
                    argv = docker.save(tag) + ["-o", str(tmp)]
                    proc = subprocess.run(argv, capture_output=True, text=True, env=_control_env(self.docker_host))
                    if proc.returncode != 0:
                        raise StepFailed(f"docker save {tag} failed on the control node: {proc.stderr.strip()[:200]}")

                self._in_use.append(hold_in_use(path))  # before it exists: another run's prune skips it from now on
                if cached_file(path, save):
                    prune(path.parent, keep=KEEP_TARS)
                image.tar = path
                image.saved = imagelayers.read_saved(path)
            return image

    def without(self, tag: str, held: int) -> Path:
        """The saved image without the files of its first `held` layers (made once, beside the whole one)."""
        image = self.tar(tag)
        assert image.tar is not None and image.saved is not None
        if held == 0:
            return image.tar
        path = image.tar.with_name(f"{image.tar.stem}.less{held}.tar")
        skip = imagelayers.without_layers(image.saved, held)
        source = image.tar
        cached_file(path, lambda tmp: imagelayers.write_without(source, tmp, skip))
        return path


def cached_file(path: Path, make: Callable[[Path], None]) -> bool:
    """Make `path` once, safe against other threads and other llmfleet runs on this control node.

    The maker writes a temporary file of its own, renamed into place when complete; an
    exclusive lock beside the cache entry makes a second run wait for the first one's file
    instead of saving the same GBs again. True when this call made the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if path.exists():
            return False
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            make(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return True


def hold_in_use(tar: Path) -> IO[str]:
    """A shared lock on `<id>.inuse` beside a saved image: while it is held, no run's prune deletes that image.

    Held from before the image is saved until the run ends (the file closes with the process);
    retried when a prune deleted the lock file between our open and our lock.
    """
    tar.parent.mkdir(parents=True, exist_ok=True)
    marker = tar.with_suffix(".inuse")
    while True:
        fh = open(marker, "a")
        fcntl.flock(fh, fcntl.LOCK_SH)
        try:
            if os.fstat(fh.fileno()).st_ino == os.stat(marker).st_ino:
                return fh
        except FileNotFoundError:
            pass
        fh.close()


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest saved images (each is hundreds of MB to GBs), skipping any
    that another run on this control node is streaming (see hold_in_use). Returns those deleted."""
    whole = [p for p in directory.glob("*.tar") if "." not in p.stem]  # `<image id>.tar`, not what is made from it
    tars = sorted(whole, key=lambda p: p.stat().st_mtime, reverse=True)
    deleted = []
    for old in tars[keep:]:
        with open(old.with_suffix(".inuse"), "a") as marker:
            try:
                fcntl.flock(marker, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            for made in directory.glob(f"{old.stem}.*"):  # it, its locks, its compressed copy, its copies without layers
                made.unlink(missing_ok=True)
        deleted.append(old)
    return deleted


def _chunks(path: Path, stop: Callable[[], bool] = lambda: False) -> Iterator[bytes]:
    """The file in 1 MB chunks; raises :class:`relay.Cancelled` when ``stop()`` turns true (Ctrl-C)."""
    with path.open("rb") as fh:
        while True:
            if stop():
                raise relay.Cancelled("interrupted")
            data = fh.read(CHUNK)
            if not data:
                return
            yield data


def host_image_id(ctx: HostContext, tag: str) -> str | None:
    """The host's image ID for a tag: from the facts when they looked at this tag, else asked."""
    if ctx.state.facts_image == tag:
        return ctx.facts.image_id
    result = ctx.probe(docker.image_id(tag))
    return result.stdout.split()[0] if result.ok and result.stdout.strip() else None


def _zstd_tar(source: Path) -> Path:
    """A saved image compressed once (zstd -3) beside its tar, for every host that can decompress it."""
    path = source.with_suffix(".tar.zst")

    def compress(tmp: Path) -> None:
        argv = ["zstd", "-q", "-f", "-3", "-T0", str(source), "-o", str(tmp)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StepFailed(f"zstd on the control node failed: {proc.stderr.strip()[:200]}")

    cached_file(path, compress)
    return path


def compression_ratio(path: Path, sample_mb: int = 4, points: tuple[float, ...] = (0.1, 0.5, 0.9)) -> float:
    """How much zstd -1 shrinks samples of a saved image (1.0: not at all, e.g. random or already compressed layers).

    A few MB at a few offsets decide in well under a second whether compressing the whole image pays.
    """
    size = path.stat().st_size
    raw = bytearray()
    with path.open("rb") as fh:
        for at in points:
            fh.seek(int(size * at))
            raw += fh.read(sample_mb << 20)
    if not raw:
        return 1.0
    proc = subprocess.run(["zstd", "-q", "-1", "-c"], input=bytes(raw), capture_output=True, check=False)
    return len(raw) / max(1, len(proc.stdout)) if proc.returncode == 0 else 1.0


MIN_RATIO = 1.25  # auto: compress only when samples shrink at least this much


@dataclass
class Member:
    """A host of the relay: how the others reach it, its private relay folder, its session (open while it may feed)."""

    ctx: HostContext
    tools: frozenset[str]
    folder: str
    spooled: bool = False  # it receives (or received) the image in this run: it feeds from its spool, not docker save
    users: int = 0  # receivers whose hop uses this host's session now (key line added, not yet removed)
    gone: bool = False  # it left the relay: nobody may start a hop from it any more
    cond: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def borrowed(self) -> Iterator[None]:
        """A receiver's hop from this host: the host stays (its session open) until the hop's key line is off it."""
        with self.cond:
            if self.gone:
                raise FeederFailed(f"{self.ctx.name} left the relay")
            self.users += 1
        try:
            yield
        finally:
            with self.cond:
                self.users -= 1
                self.cond.notify_all()

    def retire(self, timeout: float) -> None:
        """No new hop from this host; wait (bounded) until the hops using it have cleaned up after themselves."""
        with self.cond:
            self.gone = True
            self.cond.wait_for(lambda: self.users == 0, timeout)


class RelayRun:
    """One image's relay in one run: the coordination, the run's SSH key, the members, the stream's format."""

    def __init__(self, run_id: str | None, fanout: int = 1, stream: bool = True):
        self.relay = relay.Relay(fanout=fanout, stream=stream)
        self.members: dict[str, Member] = {}
        self.comment = relay.key_comment(run_id or "run")
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._compress: bool | None = None
        self._without: int | None = None
        self.ratio: float | None = None

    def key(self) -> tuple[str, str]:
        """(private key, public key) made on the control node for this run; the private one is a secret."""
        with self._lock:
            if self._key is None:
                with tempfile.TemporaryDirectory(prefix="llmfleet-relay-") as tmp:
                    path = Path(tmp) / "key"
                    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.comment, "-f", str(path)],
                                   check=True, capture_output=True)  # fmt: skip
                    self._key = (path.read_text(), (path.with_suffix(".pub")).read_text().strip())
                secrets.register(self._key[0])
            return self._key

    def compress(self, ctx: HostContext, image: ControlImage) -> bool:
        """The stream's format, decided once: zstd when asked, or (auto) when a sample of the image shrinks enough."""
        with self._lock:
            if self._compress is None:
                mode = ctx.settings.image_compression
                if mode == "none" or not shutil.which("zstd"):
                    self._compress = False
                elif mode == "zstd":
                    self._compress = True
                else:
                    assert image.tar is not None
                    self.ratio = compression_ratio(image.tar)
                    self._compress = self.ratio >= MIN_RATIO
            return self._compress

    def stream_without(self, held: int) -> int:
        """How many first layers the control node's stream leaves out, decided by the first host to ask: hosts
        that hold fewer get the whole image outside the relay (a fleet's hosts usually hold the same layers)."""
        with self._lock:
            if self._without is None:
                self._without = held
            return self._without

    def join(self, ctx: HostContext) -> Member:
        """The host's private relay folder (and what an earlier, cut run left there removed), and its tools."""
        ctx.probe(relay.clear_stale(self.comment), timeout=30)
        lines = ctx.probe(relay.relay_folder(self.comment), timeout=30).stdout.splitlines()
        folder = lines[0].strip() if lines else ""
        if not folder.startswith("/tmp/llmfleet-relay."):
            raise StepFailed(f"cannot make a private relay folder in /tmp on {ctx.name}")
        member = Member(ctx, frozenset(lines[1].split()) if len(lines) > 1 else frozenset(), folder)
        with self._lock:
            self.members[ctx.name] = member
        return member

    def leave(self, ctx: HostContext) -> None:
        """The host feeds nobody any more: its spool servers stopped, its folder (key, spool) removed."""
        self.relay.leave(ctx.name)
        member = self.members.get(ctx.name)
        if member is None or ctx.session is None:
            return
        member.retire(timeout=ctx.settings.relay_stall_timeout + 60)
        # its folder, and any key line of this run a receiver could not remove (it is the host's own file)
        clean = f"{shell.join(relay.stop_serving(member.folder))}; {shell.join(relay.remove_lines(self.comment))}"
        try:
            if ctx.session.run(clean, timeout=30).ok:
                return
        except Unreachable:
            pass
        ctx.say(f"relay: could not remove {member.folder} on {ctx.name}; the next run there removes it")

    def interrupt(self) -> None:
        """Ctrl-C: no new hop starts, every transfer in flight is cut (each host then cleans up)."""
        self.relay.cancel()
        for member in list(self.members.values()):
            stop = getattr(member.ctx.session, "interrupt", None)
            if stop is not None:
                stop()


def _progress_task(ctx: HostContext, label: str, total: int) -> tuple[Any, Any]:
    progress = ctx.run.shared.get("progress")
    return progress, (progress.add_task(f"{ctx.name} {label}", total=total) if progress else None)


def _run_hop_command(ctx: HostContext, command: str, display: str, stop: Callable[[], bool] = lambda: False,
                     on_stdout: Callable[[bytes], None] | None = None, **kwargs: Any) -> Result:  # fmt: skip
    """A transfer's command; when ``stop()`` turns true (Ctrl-C) while it runs, it ends at its next output or chunk.

    The run's interrupt closes the channels in flight; a hop that started just after it is caught
    here, and only its own channel is closed (the transport closes it when the callback raises).
    """
    assert ctx.session is not None

    def seen(data: bytes) -> None:
        if on_stdout is not None:
            on_stdout(data)
        if stop():
            raise relay.Cancelled("interrupted")

    try:
        if stop():
            raise relay.Cancelled("interrupted")
        result = ctx.session.run(command, idle_timeout=ctx.settings.relay_stall_timeout, on_stdout=seen, **kwargs)
    except relay.Cancelled:
        result = None
    if result is not None:
        ctx.run.event(host=ctx.name, step=ctx.step.name if ctx.step else "", command=display, exit_code=result.exit_code,
                      duration_s=round(result.duration_s, 4), mode=ctx.mode, note="relay")  # fmt: skip
    if result is None or (result.exit_code == INTERRUPTED and stop()):
        raise StepFailed(f"interrupted while {ctx.name} received the image")
    return result


def _from_control(ctx: HostContext, images: ControlImages, tag: str, me: Member, run: RelayRun | None, held: int = 0) -> int:
    """Stream the saved image (without its first `held` layers) from the control node into the host's docker load."""
    image = images.tar(tag)
    compress = (run.compress(ctx, image) if run is not None else _compress(ctx, me.tools)) and "zstd" in me.tools
    if run is not None and run.compress(ctx, image) and not compress:
        raise StepFailed(f"{ctx.name} has no zstd to unpack the relay's stream -> install zstd or set image_compression=none")
    tar = images.without(tag, held)
    src = _zstd_tar(tar) if compress else tar
    total = src.stat().st_size
    progress, task = _progress_task(ctx, "from control", total)
    less = f" without {held} layers it has" if held else ""
    display = (f"docker save {tag}{less}{' | zstd' if compress else ''} | ssh {ctx.name} docker load"
               f"  # {total / 1e6:.0f} MB from the control node")
    spool = me.folder if run is not None else None
    stop = _stopped(ctx, run)
    try:
        result = _run_hop_command(ctx, relay.receive_command(None, compress, spool), display, stop, stdin=_chunks(src, stop),
                                  on_sent=(lambda n: progress.update(task, advance=n)) if progress else None)  # fmt: skip
    finally:
        if progress is not None:
            progress.remove_task(task)
    codes = relay.parse_status(result.stdout)
    if result.exit_code == 124 or (not result.ok and not codes):
        _stalled(ctx, "the control node")
    if not result.ok or not codes or any(codes):
        raise StepFailed(f"docker load from the control node failed ({result.stderr.strip() or result.stdout.strip()[-300:]})")
    return total


def _stopped(ctx: HostContext, run: RelayRun | None) -> Callable[[], bool]:
    """Whether the run was interrupted (Ctrl-C): the relay's cancel, or the runner's flag without a relay."""
    return lambda: bool(ctx.run.shared.get("interrupted")) or (run is not None and run.relay.cancelled)


def _compress(ctx: HostContext, tools: frozenset[str]) -> bool:
    """Without the relay (each host from the control node): zstd unless switched off and when both sides have it."""
    return ctx.settings.image_compression != "none" and "zstd" in tools and shutil.which("zstd") is not None


def _stalled(ctx: HostContext, source: str) -> None:
    """A hop that went silent: when this host does not answer either, it is the one cut (unreachable)."""
    assert ctx.session is not None
    if not ctx.session.run("true", timeout=15).ok:
        raise Unreachable(f"{ctx.name} stopped answering while receiving the image from {source}")


class FeederFailed(Exception):
    """The feeding host failed or was cut: the receiver is fine and gets the image elsewhere."""


def _known_hosts_lines(feeder: HostContext) -> str:
    """The feeder's host keys as the control node's known_hosts has them (what was verified on connect)."""
    ep = getattr(feeder.session, "endpoint", None)
    path = os.path.expanduser((ep.known_hosts_file if ep else None) or "~/.ssh/known_hosts")
    name = feeder.host.address if not ep or ep.port == 22 else f"[{ep.address}]:{ep.port}"
    keys = paramiko.HostKeys(path) if os.path.exists(path) else paramiko.HostKeys()
    found: dict[str, Any] = dict(keys.lookup(name) or {})
    return "".join(f"{name} {kind} {key.get_base64()}\n" for kind, key in found.items())


def _from_holder(ctx: HostContext, run: RelayRun, feeder: Member, tag: str, me: Member, image: ControlImage) -> int:
    """Pull the stream from a host that streams or holds the image: its spool (as it grows), else its docker save."""
    with feeder.borrowed():
        return _pull_from(ctx, run, feeder, tag, me, image)


def _pull_from(ctx: HostContext, run: RelayRun, feeder: Member, tag: str, me: Member, image: ControlImage) -> int:
    fctx = feeder.ctx
    private, public = run.key()
    compress = run.compress(ctx, image)
    if compress and "zstd" not in me.tools:
        raise StepFailed(f"{ctx.name} has no zstd to unpack the relay's stream -> install zstd or set image_compression=none")
    ep = getattr(fctx.session, "endpoint", None)  # a real Session's; the scripted one has none
    port, user = (ep.port, ep.user) if ep is not None else (22, None)
    comment = f"{run.comment}-{ctx.name}"
    # a feeder that is receiving is not a holder yet: only its spool has the bytes (docker save would fail)
    serve = relay.serve_spool(feeder.folder) if feeder.spooled else relay.serve_command(tag, compress)
    line = relay.authorized_line(public, ctx.host.address, serve, comment)
    progress, task = _progress_task(ctx, f"from {fctx.name}", image.size)
    seen = [0]

    def moved(data: bytes) -> None:
        got = relay.progress_bytes(data.decode(errors="replace"))
        if got is not None and progress is not None:
            progress.update(task, completed=got)
        if got is not None:
            seen[0] = got

    try:
        assert ctx.session is not None and fctx.session is not None
        ctx.session.put_bytes(private.encode(), f"{me.folder}/key", 0o600)
        ctx.session.put_bytes(_known_hosts_lines(fctx).encode(), f"{me.folder}/known_hosts", 0o600)
        try:
            added = fctx.session.run(shell.join(relay.add_line(line)), timeout=30)
        except (Unreachable, RuntimeError) as exc:  # RuntimeError: its session is closed already
            raise FeederFailed(str(exc)) from None
        if not added.ok:
            raise FeederFailed(f"cannot add the relay key on {fctx.name}: {added.stderr.strip()[:200]}")
        ssh = relay.ssh_argv(me.folder, fctx.host.address, port, user)
        how = "spool" if feeder.spooled else f"docker save{' | zstd' if compress else ''}"
        display = f"ssh {fctx.name} ({how}) | docker load  # on {ctx.name}, relay key"
        result = _run_hop_command(ctx, relay.receive_command(ssh, compress, me.folder), display, _stopped(ctx, run),
                                  on_stdout=moved)  # fmt: skip
        codes = relay.parse_status(result.stdout)
        if relay.feeder_failed(codes):
            raise FeederFailed(f"{fctx.name} stopped feeding after {seen[0] / 1e6:.0f} MB: {_tail(result.stdout)}")
        if relay.feed_broke(codes):
            raise StreamBroke(f"{fctx.name}'s own stream broke after {seen[0] / 1e6:.0f} MB")
        if result.exit_code == 124:
            _stalled(ctx, fctx.name)
            raise FeederFailed(f"{fctx.name} stalled after {seen[0] / 1e6:.0f} MB")
        if not result.ok or not codes or any(codes):
            raise StepFailed(f"relay from {fctx.name} failed on {ctx.name} (exit {codes or result.exit_code}): {_tail(result.stdout)}")
        return seen[0]
    finally:
        if progress is not None:
            progress.remove_task(task)
        _cleanup(ctx, fctx, comment)


class StreamBroke(Exception):
    """The feeder's spool ended unfinished because its own upstream failed: start again, nobody is dropped."""


def _tail(text: str) -> str:
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip() and ln != "relay-alive"]
    return " | ".join(lines[-3:])[-400:]


def _cleanup(ctx: HostContext, fctx: HostContext, comment: str) -> None:
    """The hop's key line off the feeder; what cannot be removed is said (the line expires by itself)."""
    try:
        assert fctx.session is not None
        if fctx.session.run(shell.join(relay.remove_lines(comment)), timeout=30).ok:
            return
    except (Unreachable, RuntimeError):  # RuntimeError: its session is closed already
        pass
    ctx.say(f"relay: could not remove the key line {comment} on {fctx.name}; it expires by itself, "
            "and the next run there removes it")


def _relay_run(ctx: HostContext, tag: str) -> RelayRun:
    with ctx.run.lock:
        found = ctx.run.shared.get(f"relay:{tag}")
        if found is None:
            found = ctx.run.shared[f"relay:{tag}"] = RelayRun(ctx.run.run_id)
            # Ctrl-C: the runner calls these before it waits for the hosts' threads
            ctx.run.shared.setdefault("on_interrupt", []).append(found.interrupt)
            # the hosts at work that have not reached their image step may still ask (see relay.Relay.pending);
            # the runner's host hooks keep that set (under this same lock, so no start or end is missed)
            started = ctx.run.shared.get("hosts_started", set())
            done = ctx.run.shared.get("hosts_ended", set()) | ctx.run.shared.get("image_arrived", set())
            for host in started - done:
                found.relay.expect(host)
            ctx.run.shared.setdefault("on_host_start", []).append(found.relay.expect)
            ctx.run.shared.setdefault("on_host_end", []).append(found.relay.leave)
        return found


def _arrive(ctx: HostContext) -> None:
    """This host reached its image step and gets the image without the relay (a pull, or relay off): holders
    wait for it no longer. A host that uses the relay stops being pending when it asks, holds or leaves."""
    with ctx.run.lock:
        ctx.run.shared.setdefault("image_arrived", set()).add(ctx.name)
        runs = [v for k, v in ctx.run.shared.items() if k.startswith("relay:")]
    for run in runs:
        run.relay.arrived(ctx.name)


def _push(ctx: HostContext, tag: str) -> tuple[str, str]:
    if ctx.mode == "dry-run":
        src = ctx.settings.control_docker_host
        save = shell.join(docker.save(tag, src))
        via = " (or streamed on from a host that receives it: relay)" if ctx.settings.image_relay else ""
        ctx.planned.append(f"{save} | ssh {ctx.host.address} {shell.join(docker.load())}  # on the control node{via}")
        return CHANGED, ""
    images: ControlImages = ctx.run.shared.setdefault("control_images", ControlImages(ctx.settings.control_docker_host))
    wanted = images.inspect(tag)
    run = _relay_run(ctx, tag) if ctx.settings.image_relay else None
    if run is None:
        _arrive(ctx)  # it will not use the relay: holders need not wait for it (one that does stops being pending
        # when it asks, holds or leaves, not before: between its arrival and its request holders must stay)
    if host_image_id(ctx, tag) == wanted.image_id:
        ctx.state.image_id = wanted.image_id
        ctx.run.note(ctx.name, image_id=wanted.image_id)
        if run is not None and ctx.mode == "apply" and run.relay.needed():
            try:
                run.join(ctx)
                run.relay.hold(ctx.name)
                run.relay.serve(ctx.name)
            finally:
                run.leave(ctx)
        return OK, f"{tag} already there ({wanted.image_id[7:19]})"
    if ctx.mode == "check":
        ctx.planned.append(f"push {tag} ({wanted.size / 1e6:.0f} MB) from the control node, then docker load")
        return CHANGED, ""
    if run is None:
        return _push_alone(ctx, images, tag, wanted)
    try:
        return _push_relayed(ctx, images, tag, wanted, run)
    finally:
        run.leave(ctx)


def _held_layers(ctx: HostContext, images: ControlImages, tag: str) -> int:
    """How many of the image's first layers the host holds and need not be sent (0: send them all)."""
    if ctx.settings.image_push_layers == "all":
        return 0
    image = images.tar(tag)
    assert image.saved is not None
    probe = ctx.probe(docker.layer_chains(), timeout=60)
    host = imagelayers.parse_probe(probe.stdout if probe.ok else "")
    return imagelayers.held_prefix(image.saved.diff_ids, host.chains) if host.skips_known_layers else 0


def _push_alone(ctx: HostContext, images: ControlImages, tag: str, wanted: ControlImage, held: int | None = None) -> tuple[str, str]:
    """Without the relay: the control node streams the image (the layers the host lacks) to this host."""
    tools = frozenset(ctx.probe(["sh", "-c", "command -v zstd >/dev/null && echo zstd; true"], timeout=30).stdout.split())
    held = _held_layers(ctx, images, tag) if held is None else held
    start = time.monotonic()
    try:
        sent = _from_control(ctx, images, tag, Member(ctx, tools, ""), None, held)
        _verify(ctx, tag, wanted)
    except StepFailed as exc:
        if not held or "interrupted" in str(exc):
            raise
        ctx.say(f"{ctx.name} did not load the image without the {held} layers it has ({exc}); sending it whole")
        held = 0
        sent = _from_control(ctx, images, tag, Member(ctx, tools, ""), None)
        _verify(ctx, tag, wanted)
    return _loaded(ctx, tag, wanted, relay.CONTROL, sent, time.monotonic() - start, held)


def _push_relayed(ctx: HostContext, images: ControlImages, tag: str, wanted: ControlImage, run: RelayRun) -> tuple[str, str]:
    held = _held_layers(ctx, images, tag)
    base = run.stream_without(held)
    if held < base:  # the relay's stream lacks layers this host does not have: the whole image, from the control node
        _arrive(ctx)
        ctx.say(f"relay: {ctx.name} lacks layers the relay's stream leaves out; it gets the image from the control node")
        return _push_alone(ctx, images, tag, wanted, held=held)
    me = run.join(ctx)
    image = images.tar(tag)
    run.compress(ctx, image)  # decided once, before the first byte moves
    start = time.monotonic()
    while True:
        try:
            hop = run.relay.feeder_for(ctx.name)
        except relay.Cancelled:
            raise StepFailed("interrupted before the image arrived") from None
        me.spooled = True  # from now on, hosts this one feeds read its spool as it fills
        try:
            if hop.feeder == relay.CONTROL:
                sent = _from_control(ctx, images, tag, me, run, base)
            else:
                sent = _from_holder(ctx, run, run.members[hop.feeder], tag, me, image)
            _verify(ctx, tag, wanted)
        except FeederFailed as exc:
            run.relay.finished(hop, ok=False, feeder_failed=str(exc), again=True)
            ctx.say(f"relay: {exc}; {ctx.name} gets the image from another host")
            continue
        except StreamBroke as exc:
            run.relay.finished(hop, ok=False, again=True)
            ctx.say(f"relay: {exc}; {ctx.name} starts again")
            continue
        except Unreachable as exc:  # this host went away (cut): the recap names it and its source
            run.relay.finished(hop, ok=False)
            msg = str(exc) if "while receiving the image" in str(exc) else \
                f"{ctx.name} went away while receiving the image from {hop.feeder}: {exc}"
            raise Unreachable(msg) from None
        except BaseException:
            run.relay.finished(hop, ok=False)
            raise
        run.relay.finished(hop, ok=True)
        break
    took = time.monotonic() - start
    outcome = _loaded(ctx, tag, wanted, hop.feeder, sent, took, base if hop.feeder == relay.CONTROL else 0)
    run.relay.serve(ctx.name)
    return outcome


def _verify(ctx: HostContext, tag: str, wanted: ControlImage) -> None:
    got = _image_id(ctx, tag)
    if got != wanted.image_id:
        raise StepFailed(f"after docker load the host has {got or 'no image'} for {tag}, expected {wanted.image_id}")


def _loaded(ctx: HostContext, tag: str, wanted: ControlImage, source: str, sent: int, took: float,
            held: int = 0) -> tuple[str, str]:  # fmt: skip
    ctx.state.image_id = wanted.image_id
    ctx.run.note(ctx.name, image_id=wanted.image_id, image_from=source, image_layers_held=held)
    less = f", {held} of {len(wanted.saved.diff_ids)} layers were there" if held and wanted.saved else ""
    return CHANGED, (f"{tag} from {source} ({sent / 1e6:.0f} MB in {took:.1f}s, "
                     f"{sent * 8 / 1e6 / max(took, 1e-3):.0f} Mbit/s{less}), verified {wanted.image_id[7:19]}")  # fmt: skip


def _image_id(ctx: HostContext, tag: str) -> str | None:
    after = ctx.probe(docker.image_id(tag))
    return after.stdout.split()[0] if after.ok and after.stdout.strip() else None


def _pull(ctx: HostContext, tag: str) -> tuple[str, str]:
    _arrive(ctx)  # a host of the run that does not use the relay: holders need not wait for it
    policy = ctx.settings.pull_policy
    before = host_image_id(ctx, tag) if ctx.mode != "dry-run" else None
    if before and policy == "missing":
        ctx.state.image_id = before
        ctx.run.note(ctx.name, image_id=before)
        return OK, f"{tag} already there ({before[7:19]})"
    result = ctx.change(docker.pull(tag), timeout=ctx.settings.pull_timeout)
    if result is None:
        return CHANGED, ""
    after = ctx.probe(docker.image_id(tag))
    if not after.ok:
        raise StepFailed(f"docker pull {tag} finished but the image is not there")
    new_id = after.stdout.split()[0]
    changed = new_id != before
    ctx.state.image_id = new_id
    ctx.run.note(ctx.name, image_id=new_id)
    return (CHANGED if changed else OK), f"{tag} {'pulled' if changed else 'up to date'} ({new_id[7:19]})"


def ensure_image(ctx: HostContext, args: Mapping[str, Any]) -> tuple[str, str]:
    image = ctx.deployment.image
    return _push(ctx, image) if ctx.settings.image_source == "push" else _pull(ctx, image)


ACTIONS = {"ensure_image": spec(ensure_image, requires=["facts", "deployment"], provides=["image_id"])}
