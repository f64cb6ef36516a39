"""SSH to one host: one connection for the whole run, commands as shell text from ``shell.join``.

Built on fabric's Connection (ssh_config, keys, gateways) with paramiko's channel
used directly for exec, so a command costs one channel open on the existing
connection. Host keys are checked on every hop (jump hosts too, against the same
known_hosts file): an unknown or changed key fails the host.
"""

from __future__ import annotations

import http.client
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

import paramiko
from fabric import Config, Connection

from .endpoint import CONNECT_TIMEOUT_S, MAX_JUMPS, Endpoint, check_jump, host_endpoint, jump_from_args, parse_hop

__all__ = ["CONNECT_TIMEOUT_S", "Endpoint", "Session", "SessionLike", "Result", "Unreachable", "TunnelRefused",
           "host_endpoint", "jump_from_args", "parse_hop", "http_request", "parse_http"]  # fmt: skip

_WINDOW = 16 * 2**20  # bigger SSH windows: image pushes are hundreds of MB
INTERRUPTED = 130  # the exit code of a command whose channel interrupt() closed (as a shell says for Ctrl-C)
SFTP_IDLE_TIMEOUT_S = 30.0  # an SFTP request unanswered this long: the host went away (a cut link never says so)

# paramiko logs what the product reports itself (a health probe's "Secsh channel N open FAILED: Connection
# refused" while the server starts, a cut host's socket errors); with no handler Python's last resort printed
# them on the console. Whoever wants them attaches a handler to "paramiko".
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class Unreachable(Exception):
    """The host could not be reached or authenticated; nothing ran there."""


class TunnelRefused(Exception):
    """The host's sshd refuses TCP forwarding (AllowTcpForwarding no): use a remote command instead."""


class _Raw:
    """Bytes that ``http.client.HTTPResponse`` can parse as if they came from a socket."""

    def __init__(self, data: bytes):
        self.data = data

    def makefile(self, *_args: object, **_kwargs: object) -> io.BytesIO:
        return io.BytesIO(self.data)


def parse_http(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a whole HTTP/1.x response (chunked or not); (0, b"") when it is not one."""
    response = http.client.HTTPResponse(_Raw(raw))  # type: ignore[arg-type]
    try:
        response.begin()
        return response.status, response.read()
    except (http.client.HTTPException, ValueError):
        return 0, b""


def http_request(path: str, port: int) -> bytes:
    """A minimal GET; ``Connection: close`` so the answer ends at EOF."""
    if not path.startswith("/") or any(c in path for c in "\r\n "):
        raise ValueError(f"bad HTTP path {path!r}")
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: */*\r\n\r\n".encode()


@dataclass
class Result:
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class SessionLike(Protocol):
    """What the runner and the actions use of a session (``llmfleet.testing`` has a scripted one)."""

    def run(self, command: str, *, stdin: bytes | Iterable[bytes] | None = None, timeout: float | None = None,
            on_sent: Callable[[int], None] | None = None, idle_timeout: float | None = None,
            on_stdout: Callable[[bytes], None] | None = None) -> Result: ...  # fmt: skip

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None: ...

    def get_bytes(self, remote_path: str) -> bytes: ...

    def listdir_recursive(self, remote_dir: str) -> list[str]: ...

    def http_get(self, port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


def _describe_connect_error(ep: Endpoint, exc: BaseException) -> str:
    where = f"{ep.address}:{ep.port}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return f"host key of {where} CHANGED (possible man-in-the-middle); check the host, then fix {ep.known_hosts_file or '~/.ssh/known_hosts'}"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        kh = ep.known_hosts_file or "~/.ssh/known_hosts"
        return f"host key of {where} is not in {kh}; verify the host, then: ssh-keyscan -p {ep.port} {ep.address} >> {kh}"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication to {ep.user or 'default user'}@{where} failed (key {ep.key_file or 'default'})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"connection to {where} timed out after {CONNECT_TIMEOUT_S}s"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return f"connection to {where} refused"
    return f"cannot connect to {where}: {exc.__class__.__name__}: {exc}"


def _check_host_keys(conn: Connection, known_hosts: str) -> None:
    """Check this hop's key, and every gateway's behind it, against one known_hosts file.

    fabric gives each Connection AutoAddPolicy and the system keys; here only our
    file counts and an unknown key is refused.
    """
    seen: set[int] = set()
    hop: object = conn
    while isinstance(hop, Connection) and id(hop) not in seen:
        seen.add(id(hop))
        client: paramiko.SSHClient = hop.client
        client._host_keys = paramiko.HostKeys()  # type: ignore[attr-defined]  # forget what fabric loaded
        client._system_host_keys = paramiko.HostKeys()  # type: ignore[attr-defined]
        if Path(known_hosts).exists():
            client.load_host_keys(known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        hop = hop.gateway


def _hops(conn: Connection) -> list[Connection]:
    """``conn`` and the Connection gateways behind it, the host first, the first jump host last."""
    chain = [conn]
    while isinstance(chain[-1].gateway, Connection) and len(chain) <= MAX_JUMPS + 1:
        chain.append(chain[-1].gateway)
    return chain


class Session:
    """One SSH connection to one host, reused for every command of a run."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float = CONNECT_TIMEOUT_S):
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self._conn: Connection | None = None
        self._hops: list[Connection] = []
        self._config = Config()
        self._sftp: paramiko.SFTPClient | None = None
        self._channels: set[paramiko.Channel] = set()  # commands in flight (interrupt() closes them)
        self._interrupted: set[paramiko.Channel] = set()
        self._sftp_interrupted = False

    # -- connection -------------------------------------------------------------------
    def _known_hosts(self) -> str:
        return os.path.expanduser(self.endpoint.known_hosts_file or "~/.ssh/known_hosts")

    def _connect_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"banner_timeout": self.connect_timeout, "auth_timeout": self.connect_timeout}
        if self.endpoint.key_file:
            kwargs.update(key_filename=os.path.expanduser(self.endpoint.key_file), look_for_keys=False, allow_agent=False)
        return kwargs

    def _connection(self, host: str, user: str | None, port: int | None, gateway: Connection | str | bool) -> Connection:
        """A fabric Connection whose host key is checked; gateway=False stops fabric from building its own."""
        conn = Connection(host=host, user=user, port=port, gateway=gateway, connect_timeout=self.connect_timeout,
                          connect_kwargs=self._connect_kwargs(), config=self._config.clone())  # fmt: skip
        _check_host_keys(conn, self._known_hosts())
        return conn

    def _gateway(self, conn: Connection, jump: str | None, depth: int) -> Connection | str | bool:
        """The gateway of ``conn``: the inventory's jump, else its ~/.ssh/config ProxyJump or ProxyCommand.

        Built here rather than by fabric, so every hop is checked and a chain ``a,b``
        is walked in OpenSSH's order (``a`` first); a ProxyCommand stays a string
        (the final host's key is still checked here).
        """
        if jump is None:
            jump = conn.ssh_config.get("proxyjump")
            if jump is None:
                return conn.ssh_config.get("proxycommand") or False
        if jump.lower() == "none" or depth > MAX_JUMPS:
            if depth > MAX_JUMPS:
                raise Unreachable(f"more than {MAX_JUMPS} jump hosts on the way to {self.endpoint.address}: a ProxyJump loop?")
            return False
        previous: Connection | str | bool = False
        for i, hop in enumerate(check_jump(jump).split(",")):
            user, host, port = parse_hop(hop)
            if host == conn.original_host:  # `Host *` + ProxyJump in ~/.ssh/config names the jump host itself
                return previous
            nxt = self._connection(host, user, port, previous)
            if i == 0:  # ssh reads the first hop's own config (it may have a jump host of its own)
                nxt.gateway = self._gateway(nxt, None, depth + 1)
            previous = nxt
        return previous

    def open(self) -> Session:
        """Connect, hop by hop: a failure names the hop (the host or a jump host) and what to do."""
        ep = self.endpoint
        conn = self._connection(ep.address, ep.user, ep.port, False)
        try:
            conn.gateway = self._gateway(conn, ep.jump, 1)
        except ValueError as exc:  # a ProxyJump in ~/.ssh/config or an Endpoint built by hand
            raise Unreachable(f"bad jump host for {ep.name}: {exc}") from None
        hops = _hops(conn)
        failing = conn
        try:
            for failing in reversed(hops):  # the first jump host first, the host itself last
                failing.open()
        except Exception as exc:  # noqa: BLE001 - every connect failure means the same thing: unreachable
            for hop in hops:
                hop.close()
            raise Unreachable(self._describe_hop_error(failing, conn, exc)) from None
        for hop in hops:
            transport = hop.client.get_transport()
            assert transport is not None
            if isinstance(transport.sock, socket.socket):  # through a jump host it is a channel
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 40 ms per command otherwise
            transport.set_keepalive(15)
        self._conn = conn
        self._hops = hops
        return self

    def _describe_hop_error(self, failing: Connection, conn: Connection, exc: BaseException) -> str:
        ep = self.endpoint
        if failing is conn and isinstance(exc, paramiko.ChannelException) and isinstance(conn.gateway, Connection):
            gw = conn.gateway
            return (f"jump host {gw.host}:{gw.port} refused to forward to {ep.address}:{ep.port} "
                    f"({exc}; is AllowTcpForwarding off there?)")  # fmt: skip
        if failing is conn:
            return _describe_connect_error(ep, exc)
        hop_ep = Endpoint(name=failing.host, address=failing.host, port=failing.port, user=failing.user,
                          key_file=ep.key_file, known_hosts_file=self._known_hosts())  # fmt: skip
        return f"jump host {failing.host}:{failing.port} (on the way to {ep.name}): {_describe_connect_error(hop_ep, exc)}"

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._conn is not None:
            for hop in self._hops:  # fabric closes a connection, not its gateways
                hop.close()
            self._conn = None
            self._hops = []

    def interrupt(self) -> None:
        """Close the channels of the commands in flight (from another thread: Ctrl-C); the connection stays for cleanup.

        The remote side sees its stdin end and its output closed, so a transfer's pipeline stops.
        """
        for chan in list(self._channels):
            self._interrupted.add(chan)
            chan.close()
        if self._sftp is not None:  # a file transfer in flight ends too (see _file_op)
            self._sftp_interrupted = True
            sftp_chan = self._sftp.get_channel()
            if sftp_chan is not None:
                sftp_chan.close()

    def __enter__(self) -> "Session":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transport(self) -> paramiko.Transport:
        if self._conn is None:
            raise RuntimeError("session is not open")
        transport = self._conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise Unreachable(f"connection to {self.endpoint.address} was lost")
        return transport

    # -- commands ---------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        stdin: bytes | Iterable[bytes] | None = None,
        timeout: float | None = None,
        on_sent: Callable[[int], None] | None = None,
        idle_timeout: float | None = None,
        on_stdout: Callable[[bytes], None] | None = None,
    ) -> Result:
        """Run a shell command; optionally feed it stdin (bytes or chunks, e.g. an image tar).

        ``idle_timeout``: give up (exit 124) when no byte moves either way for that long,
        however long the whole command takes (a long transfer; a cut host). ``on_stdout``
        sees stdout as it arrives.
        """
        start = time.monotonic()
        try:
            chan = self._transport().open_session(window_size=_WINDOW, max_packet_size=32768, timeout=self.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(f"cannot open a channel to {self.endpoint.address}: {exc}") from None
        chan.settimeout(idle_timeout if idle_timeout is not None else timeout)
        self._channels.add(chan)
        out: list[bytes] = []
        err: list[bytes] = []
        stalled: list[bool] = []

        def pump(recv: Callable[[int], bytes], sink: list[bytes], watch: Callable[[bytes], None] | None = None) -> None:
            try:
                while True:
                    data = recv(65536)
                    if not data:
                        return
                    sink.append(data)
                    if watch is not None:
                        watch(data)
            except socket.timeout:
                stalled.append(True)
            except OSError:
                return

        try:
            chan.exec_command(command)
            err_thread = threading.Thread(target=pump, args=(chan.recv_stderr, err), daemon=True)
            err_thread.start()
            if stdin is not None:
                chunks = [stdin] if isinstance(stdin, bytes) else stdin
                for chunk in chunks:
                    chan.sendall(chunk)
                    if on_sent:
                        on_sent(len(chunk))
                chan.shutdown_write()
            pump(chan.recv, out, on_stdout)
            if idle_timeout is not None and stalled and not chan.exit_status_ready():
                raise TimeoutError(f"no data for {idle_timeout:.0f}s")
            if timeout is not None and not chan.exit_status_ready():
                deadline = start + timeout
                while not chan.exit_status_ready() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not chan.exit_status_ready():
                    chan.close()
                    raise TimeoutError(f"command timed out after {timeout:.0f}s")
            code = chan.recv_exit_status()
            err_thread.join(timeout=5)
        except (socket.timeout, TimeoutError):
            chan.close()
            what = f"no data for {idle_timeout}s" if idle_timeout is not None else f"timed out after {timeout}s"
            return Result(command, 124, b"".join(out).decode(errors="replace"), what, time.monotonic() - start)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            chan.close()
            if chan in self._interrupted:
                code = INTERRUPTED
            else:
                raise Unreachable(f"connection to {self.endpoint.address} broke: {exc}") from None
        finally:
            chan.close()
            self._channels.discard(chan)
        if chan in self._interrupted:
            self._interrupted.discard(chan)
            code = INTERRUPTED
        return Result(
            command,
            code,
            b"".join(out).decode(errors="replace"),
            b"".join(err).decode(errors="replace"),
            time.monotonic() - start,
        )

    def http_get(self, port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET ``http://127.0.0.1:port/path`` on the host through this connection (direct-tcpip).

        No process starts on the host: sshd itself connects to the port. (0, b"") when
        nothing listens there or it does not answer in time; TunnelRefused when sshd
        forbids forwarding.
        """
        request = http_request(path, port)
        try:
            chan = self._transport().open_channel("direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
                raise TunnelRefused(f"{self.endpoint.address} refuses TCP forwarding: {exc}") from None
            return 0, b""  # connect failed: nothing listens on the port
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(f"cannot open a channel to {self.endpoint.address}: {exc}") from None
        deadline = time.monotonic() + timeout
        raw: list[bytes] = []
        try:
            chan.settimeout(timeout)
            chan.sendall(request)
            while time.monotonic() < deadline:
                data = chan.recv(65536)
                if not data:
                    break
                raw.append(data)
        except OSError:  # socket.timeout is one
            return 0, b""
        finally:
            chan.close()
        return parse_http(b"".join(raw))

    # -- files ------------------------------------------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        chan = self._sftp.get_channel() if self._sftp is not None else None
        if self._sftp is not None and (chan is None or chan.closed):
            self._sftp = None  # closed by interrupt(): cleanup after Ctrl-C gets a new one
        if self._sftp is None:
            self._sftp = self._transport().open_sftp_client()
            chan = self._sftp.get_channel()
            if chan is not None:
                chan.settimeout(SFTP_IDLE_TIMEOUT_S)
            self._sftp_interrupted = False
        return self._sftp

    @contextmanager
    def _file_op(self, what: str) -> Iterator[paramiko.SFTPClient]:
        """An SFTP operation that cannot hang the run: no answer for SFTP_IDLE_TIMEOUT_S (a host cut mid-transfer) is
        Unreachable, its channel closed under it by interrupt() (Ctrl-C) InterruptedError (the host is not at fault:
        the run still cleans up and releases its lock there); a missing file stays the OSError it is."""
        sftp = self.sftp()
        try:
            yield sftp
        except (EOFError, paramiko.SSHException, OSError) as exc:  # OSError: a timeout, a closed channel or a missing file
            chan = sftp.get_channel()
            lost = not isinstance(exc, OSError) or isinstance(exc, TimeoutError) or chan is None or chan.closed
            if not lost:
                raise
            interrupted = self._sftp_interrupted
            sftp.close()
            self._sftp = None
            if interrupted:
                raise InterruptedError(f"interrupted while {what} on {self.endpoint.name}") from None
            raise Unreachable(f"{self.endpoint.name} stopped answering while {what}: "
                              f"no answer for {SFTP_IDLE_TIMEOUT_S:.0f}s ({exc.__class__.__name__})") from None  # fmt: skip

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        """Write a file; the mode is set before any byte is written (secrets are 0600 from the start)."""
        tmp = f"{remote_path}.llmfleet-tmp"
        with self._file_op(f"writing {remote_path}") as sftp:
            with sftp.open(tmp, "wb") as fh:
                fh.chmod(mode)
                fh.write(data)
            sftp.posix_rename(tmp, remote_path)

    def put_file(self, local: Path, remote_path: str, mode: int = 0o644, on_sent: Callable[[int], None] | None = None) -> None:
        tmp = f"{remote_path}.llmfleet-tmp"
        sent = 0

        def progress(done: int, _total: int) -> None:
            nonlocal sent
            if on_sent:
                on_sent(done - sent)
            sent = done

        with self._file_op(f"receiving {local.name}") as sftp:
            sftp.put(str(local), tmp, callback=progress)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, remote_path)

    def get_bytes(self, remote_path: str) -> bytes:
        with self._file_op(f"sending {remote_path}") as sftp, sftp.open(remote_path, "rb") as fh:
            fh.prefetch()
            return fh.read()

    def listdir_recursive(self, remote_dir: str) -> list[str]:
        """Relative paths of the regular files under a remote directory."""
        import stat

        found: list[str] = []
        with self._file_op(f"listing {remote_dir}") as sftp:

            def walk(rel: str) -> None:
                for entry in sftp.listdir_attr(f"{remote_dir}/{rel}" if rel else remote_dir):
                    child = f"{rel}/{entry.filename}" if rel else entry.filename
                    if stat.S_ISDIR(entry.st_mode or 0):
                        walk(child)
                    elif stat.S_ISREG(entry.st_mode or 0):
                        found.append(child)

            walk("")
        return sorted(found)
