"""The API key llama-server asks its clients for: where it may come from, how it reaches
llama-server, how it is shown and written.

* Sources: `server.api_key` (the key itself, in a preset file or GGUFROPE_SERVER_API_KEY, or a
  `$VAR` / `${VAR}` reference expanded when the preset is prepared: an unset variable is an
  error, never a literal key), or `server.api_key_file` (a file holding the key: the first line
  that is neither blank nor a `#` comment, as llama-server's --api-key-file reads it).
* Never on an argv (every local user can read /proc/PID/cmdline): ggufrope's own command line
  takes a reference only (`--set server.api_key='$VAR'`), and llama-server gets the key in
  LLAMA_API_KEY (the environment variable of its --api-key option, common/arg.cpp), which only
  the same user (and root) can read.
* Shown masked; a file that carries it (an export, an import) is written 0600.
"""
from __future__ import annotations

import os
import re
import stat
from typing import Mapping

from ggufrope.errors import PresetError

ENV_VAR = "LLAMA_API_KEY"          # llama-server's --api-key, from the environment (common/arg.cpp)
HIDDEN = "(set, hidden)"
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def is_reference(text: str) -> bool:
    """`$VAR` or `${VAR}` and nothing else: names a secret without being one."""
    m = _VAR.fullmatch(text.strip())
    return m is not None


def expand(text: str, env: Mapping[str, str]) -> str:
    """$VAR and ${VAR} replaced from env; ValueError naming the first variable that is unset
    (os.path.expandvars would leave "$VAR" in place: a guessable key)."""
    missing = [m.group(1) or m.group(2) for m in _VAR.finditer(text) if (m.group(1) or m.group(2)) not in env]
    if missing:
        raise ValueError(f"${missing[0]} is not set (an unset variable would become the key "
                         f"{'$' + missing[0]!r} itself); set it, or change the value")
    return _VAR.sub(lambda m: env[m.group(1) or m.group(2)], text)


def shown(value: str | None) -> str | None:
    """How `presets show` prints a key: a reference as written, anything else hidden."""
    if not value:
        return value
    return value if is_reference(value) else HIDDEN


def command_line_refusal(flag: str) -> str:
    """Why a key given on ggufrope's own command line is refused, and the ways that work."""
    return (f"{flag}: server.api_key: a key on the command line is readable by every user of this machine "
            f"(ps, /proc/PID/cmdline); give it as GGUFROPE_SERVER_API_KEY=..., as server.api_key_file = PATH "
            f"in a preset, or by reference: --set server.api_key='$VAR'")


def read_key_file(path: str) -> str:
    """The key in a key file (first line neither blank nor a # comment); ValueError if none."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    return line
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    raise ValueError(f"{path}: holds no key (every line is blank or a # comment)")


def others_can_read(path: str) -> bool:
    try:
        return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o077)
    except OSError:
        return False


def write_private(path: str, text: str) -> None:
    """Write text to path readable by its owner only (0600), also when path already exists
    with a wider mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(text)
    finally:
        if fd >= 0:
            os.close(fd)


def api_key(res, env: Mapping[str, str]) -> tuple[str | None, list[tuple[str, str, str]]]:
    """The key a resolved preset gives llama-server (None: none), with findings as
    (level, field, message). PresetError naming the field for a key that cannot be had."""
    value = res["server.api_key"]
    key_file = res["server.api_key_file"]
    if value and key_file:
        raise res.error("server.api_key_file", "server.api_key is set too; set one of them")
    if value:
        try:
            return expand(value, env) or None, []
        except ValueError as e:
            raise res.error("server.api_key", str(e)) from None
    if key_file:
        try:
            path = os.path.abspath(expand(os.path.expanduser(key_file), env))
            key = read_key_file(path)
        except ValueError as e:
            raise res.error("server.api_key_file", str(e)) from None
        findings = []
        if others_can_read(path):
            findings.append(("warning", "server.api_key_file",
                             f"{path} is readable by other users; `chmod 600 {path}`"))
        return key, findings
    return None, []
