"""A scripted stand-in for SSH sessions, for unit tests of the runner and the actions.

Like fabric's ``MockRemote`` or invoke's ``MockContext``: each fake host answers the
commands its rules match (a regular expression -> a result, a callable, or an
exception such as ``Unreachable``), keeps the files put on it, and records every
command, so a test asserts exactly what ran. A command no rule matches exits 127 and
is recorded in ``unexpected``: a test should assert that list is empty.

The lab stays the end-to-end truth; this makes the orchestration paths (locks,
unreachable hosts, ``always`` steps, serial batches, masking) testable without root.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterable, Union

from .transport import Endpoint, Result, SessionLike, TunnelRefused, Unreachable

Answer = Union[Result, BaseException, Callable[[str], Union[Result, BaseException]], str, int]


def result(command: str, exit_code: int = 0, stdout: str = "", stderr: str = "") -> Result:
    return Result(command=command, exit_code=exit_code, stdout=stdout, stderr=stderr, duration_s=0.0)


@dataclass
class Rule:
    pattern: re.Pattern[str]
    answer: Answer
    times: int | None = None  # None: every time; N: the first N matches only


@dataclass
class FakeHost:
    """One scripted host: rules, files, and what ran."""

    name: str
    rules: list[Rule] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    connect_error: BaseException | None = None
    stdin: dict[str, bytes] = field(default_factory=dict)  # command -> bytes fed to it
    # (port, path) -> (status, body) or an exception; no entry at all: sshd refuses forwarding
    http: dict[tuple[int, str], tuple[int, bytes] | BaseException] = field(default_factory=dict)
    http_requests: list[str] = field(default_factory=list)  # "GET :port/path", in order

    def on(self, pattern: str, answer: Answer = 0, times: int | None = None) -> "FakeHost":
        """Answer commands matching ``pattern`` (searched): an exit code, stdout text, a Result, an exception."""
        self.rules.append(Rule(re.compile(pattern), answer, times))
        return self

    def answer(self, command: str) -> Result:
        self.commands.append(command)
        for rule in self.rules:
            if rule.times == 0 or not rule.pattern.search(command):
                continue
            if rule.times is not None:
                rule.times -= 1
            got = rule.answer(command) if callable(rule.answer) else rule.answer
            if isinstance(got, BaseException):
                raise got
            if isinstance(got, Result):
                return got
            if isinstance(got, int):
                return result(command, got)
            return result(command, 0, stdout=str(got))
        self.unexpected.append(command)
        return result(command, 127, stderr=f"fake host {self.name}: no rule for this command")

    def on_http(self, port: int, path: str, status: int = 200, body: bytes | str = b"") -> "FakeHost":
        """Answer ``GET http://127.0.0.1:port/path`` through the SSH connection (status 0: nothing listens)."""
        self.http[(port, path)] = (status, body.encode() if isinstance(body, str) else body)
        return self

    def get(self, port: int, path: str) -> tuple[int, bytes]:
        self.http_requests.append(f"GET :{port}{path}")
        if not self.http:
            raise TunnelRefused(f"fake host {self.name}: no HTTP rules (forwarding refused)")
        got = self.http.get((port, path), (0, b""))
        if isinstance(got, BaseException):
            raise got
        return got

    def ran(self, pattern: str) -> list[str]:
        """The commands that matched ``pattern``, in order."""
        return [c for c in self.commands if re.search(pattern, c)]


class FakeSession(SessionLike):
    def __init__(self, host: FakeHost):
        self.host = host
        self.closed = False

    def run(self, command: str, *, stdin: bytes | Iterable[bytes] | None = None, timeout: float | None = None,
            on_sent: Callable[[int], None] | None = None, idle_timeout: float | None = None,
            on_stdout: Callable[[bytes], None] | None = None) -> Result:  # fmt: skip
        if stdin is not None:
            data = stdin if isinstance(stdin, bytes) else b"".join(stdin)
            self.host.stdin[command] = data
            if on_sent is not None:
                on_sent(len(data))
        answer = self.host.answer(command)
        if on_stdout is not None and answer.stdout:
            on_stdout(answer.stdout.encode())
        return answer

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        self.host.commands.append(f"put {remote_path} ({mode:o})")
        self.host.files[remote_path] = data
        self.host.modes[remote_path] = mode

    def get_bytes(self, remote_path: str) -> bytes:
        if remote_path not in self.host.files:
            raise FileNotFoundError(remote_path)
        return self.host.files[remote_path]

    def listdir_recursive(self, remote_dir: str) -> list[str]:
        prefix = remote_dir.rstrip("/") + "/"
        found = sorted(p[len(prefix):] for p in self.host.files if p.startswith(prefix))
        if not found:
            raise FileNotFoundError(remote_dir)
        return found

    def http_get(self, port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return self.host.get(port, path)

    def close(self) -> None:
        self.closed = True


class FakeNetwork:
    """Hosts by name; ``connect`` is what the runner calls instead of opening SSH."""

    def __init__(self) -> None:
        self.hosts: dict[str, FakeHost] = {}
        self.sessions: list[FakeSession] = []
        self._lock = threading.Lock()

    def host(self, name: str) -> FakeHost:
        with self._lock:
            return self.hosts.setdefault(name, FakeHost(name))

    def connect(self, endpoint: Endpoint) -> SessionLike:
        host = self.host(endpoint.name)
        if host.connect_error is not None:
            raise host.connect_error
        session = FakeSession(host)
        with self._lock:
            self.sessions.append(session)
        return session

    @property
    def unexpected(self) -> dict[str, list[str]]:
        return {name: h.unexpected for name, h in self.hosts.items() if h.unexpected}


def unreachable(message: str = "connection to the host timed out") -> Unreachable:
    return Unreachable(message)
