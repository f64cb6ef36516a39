"""SSH to one host: one connection for the whole run, commands as shell text from ``shell.join``.

Built on fabric's Connection (ssh_config, keys, gateways) with paramiko's channel
used directly for exec, so a command costs one channel open on the existing
connection. Host keys are checked: an unknown or changed key fails the host.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

import paramiko
from fabric import Connection

CONNECT_TIMEOUT_S = 15
_WINDOW = 16 * 2**20  # bigger SSH windows: image pushes are hundreds of MB


class Unreachable(Exception):
    """The host could not be reached or authenticated; nothing ran there."""


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
            on_sent: Callable[[int], None] | None = None) -> Result: ...  # fmt: skip

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None: ...

    def get_bytes(self, remote_path: str) -> bytes: ...

    def listdir_recursive(self, remote_dir: str) -> list[str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """How to reach a host: the inventory's ansible_* values."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    known_hosts_file: str | None = None


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


class Session:
    """One SSH connection to one host, reused for every command of a run."""

    def __init__(self, endpoint: Endpoint, connect_timeout: float = CONNECT_TIMEOUT_S):
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self._conn: Connection | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection -------------------------------------------------------------------
    def open(self) -> "Session":
        ep = self.endpoint
        connect_kwargs: dict = {"banner_timeout": self.connect_timeout, "auth_timeout": self.connect_timeout}
        if ep.key_file:
            connect_kwargs.update(key_filename=os.path.expanduser(ep.key_file), look_for_keys=False, allow_agent=False)
        conn = Connection(
            host=ep.address, port=ep.port, user=ep.user, connect_timeout=self.connect_timeout, connect_kwargs=connect_kwargs
        )
        client: paramiko.SSHClient = conn.client
        client._host_keys = paramiko.HostKeys()  # forget anything fabric loaded implicitly
        client._system_host_keys = paramiko.HostKeys()
        known = os.path.expanduser(ep.known_hosts_file or "~/.ssh/known_hosts")
        if Path(known).exists():
            client.load_host_keys(known)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            conn.open()
        except Exception as exc:  # every connect failure means the same thing: unreachable
            conn.close()
            raise Unreachable(_describe_connect_error(ep, exc)) from None
        transport = client.get_transport()
        assert transport is not None
        transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # 40 ms per command otherwise
        transport.set_keepalive(15)
        self._conn = conn
        return self

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
    ) -> Result:
        """Run a shell command; optionally feed it stdin (bytes or chunks, e.g. an image tar)."""
        start = time.monotonic()
        try:
            chan = self._transport().open_session(window_size=_WINDOW, max_packet_size=32768, timeout=self.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(f"cannot open a channel to {self.endpoint.address}: {exc}") from None
        chan.settimeout(timeout)
        out: list[bytes] = []
        err: list[bytes] = []

        def pump(recv: Callable[[int], bytes], sink: list[bytes]) -> None:
            try:
                while True:
                    data = recv(65536)
                    if not data:
                        return
                    sink.append(data)
            except (socket.timeout, OSError):
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
            pump(chan.recv, out)
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
            return Result(command, 124, b"".join(out).decode(errors="replace"), f"timed out after {timeout}s", time.monotonic() - start)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            chan.close()
            raise Unreachable(f"connection to {self.endpoint.address} broke: {exc}") from None
        finally:
            chan.close()
        return Result(
            command,
            code,
            b"".join(out).decode(errors="replace"),
            b"".join(err).decode(errors="replace"),
            time.monotonic() - start,
        )

    # -- files ------------------------------------------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._transport().open_sftp_client()
        return self._sftp

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        """Write a file; the mode is set before any byte is written (secrets are 0600 from the start)."""
        sftp = self.sftp()
        tmp = f"{remote_path}.llmfleet-tmp"
        with sftp.open(tmp, "wb") as fh:
            fh.chmod(mode)
            fh.write(data)
        sftp.posix_rename(tmp, remote_path)

    def put_file(self, local: Path, remote_path: str, mode: int = 0o644, on_sent: Callable[[int], None] | None = None) -> None:
        sftp = self.sftp()
        tmp = f"{remote_path}.llmfleet-tmp"
        sent = 0

        def progress(done: int, _total: int) -> None:
            nonlocal sent
            if on_sent:
                on_sent(done - sent)
            sent = done

        sftp.put(str(local), tmp, callback=progress)
        sftp.chmod(tmp, mode)
        sftp.posix_rename(tmp, remote_path)

    def get_bytes(self, remote_path: str) -> bytes:
        with self.sftp().open(remote_path, "rb") as fh:
            fh.prefetch()
            return fh.read()

    def listdir_recursive(self, remote_dir: str) -> list[str]:
        """Relative paths of the regular files under a remote directory."""
        import stat

        sftp = self.sftp()
        found: list[str] = []

        def walk(rel: str) -> None:
            for entry in sftp.listdir_attr(f"{remote_dir}/{rel}" if rel else remote_dir):
                child = f"{rel}/{entry.filename}" if rel else entry.filename
                if stat.S_ISDIR(entry.st_mode or 0):
                    walk(child)
                elif stat.S_ISREG(entry.st_mode or 0):
                    found.append(child)

        walk("")
        return sorted(found)
