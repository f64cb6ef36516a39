"""A host's connection settings (address, port, user, key, known_hosts) read from its merged variables."""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError
from .model import DEFAULT_PORT, Origin
from .values import short

# When several aliases are set, the last one listed wins (Ansible's rule).
ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user")
KEY_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")
KNOWN_HOSTS_VARS = ("known_hosts_file",)
MAX_TEMPLATE_PASSES = 10  # a var may point at another templated var; more passes than this is a loop


class ConnectionVars:
    """Reads a host's connection variables; Jinja in them is rendered sandboxed; bad values name their origin."""

    def __init__(self, name: str, values: dict[str, Any], sources: dict[str, Origin], groups: list[str]):
        self.name, self.values, self.sources, self.groups = name, values, sources, groups

    def _pick(self, names: tuple[str, ...]) -> tuple[str, Any] | None:
        found = None
        for n in names:  # the last alias set wins, as in Ansible
            if self.values.get(n) is not None:
                found = (n, self.values[n])
        return found

    def _fail(self, var: str, message: str) -> InputError:
        o = self.sources.get(var)
        return InputError(f"host {self.name!r}: {message}", o.path if o else None, o.line if o else None)

    def _context(self) -> dict[str, Any]:
        context = dict(self.values)
        context.update(
            inventory_hostname=self.name,
            inventory_hostname_short=self.name.split(".")[0],
            group_names=[g for g in self.groups if g not in ("all", "ungrouped")],
        )
        return context

    def _render(self, var: str, value: Any) -> str:
        text = str(value)
        if "{" not in text:  # not a template: jinja2 is not even loaded (start-up of every task)
            return text
        from ..templating import TemplateValueError, is_template, render_template_value

        if not is_template(text):
            return text
        context = self._context()
        for _ in range(MAX_TEMPLATE_PASSES):
            try:
                text = render_template_value(text, context)
            except TemplateValueError as exc:
                raise self._fail(var, f"cannot render {var}: {exc}") from None
            if not is_template(text):
                return text
        raise self._fail(var, f"{var} does not resolve (templates refer to each other in a loop?)")

    def text(self, names: tuple[str, ...]) -> str | None:
        """The rendered value of the winning alias, or None when none is set."""
        got = self._pick(names)
        return self._render(*got) if got else None

    def path(self, names: tuple[str, ...]) -> str | None:
        """Like ``text``, with ``~`` expanded (key and known_hosts files)."""
        value = self.text(names)
        return os.path.expanduser(value) if value else None

    def port(self) -> int:
        """The SSH port: 22 unless set; anything but 1-65535 is an error at its file:line."""
        got = self._pick(PORT_VARS)
        if got is None:
            return DEFAULT_PORT
        var, raw = got
        if isinstance(raw, bool):
            raise self._fail(var, f"{var} must be a port number, not {raw!r}")
        value = self._render(var, raw) if isinstance(raw, str) else raw
        try:
            port = int(str(value).strip())
        except ValueError:
            raise self._fail(var, f"{var} must be a port number (1-65535), got {short(raw)}") from None
        if not 1 <= port <= 65535:
            raise self._fail(var, f"{var} must be a port number (1-65535), got {short(raw)}")
        return port

