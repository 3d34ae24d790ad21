"""Files a launch writes just before it starts: the system prompt file (-sysf) and the patched
copy for apply = "patched"."""
from __future__ import annotations

import hashlib
import os
from typing import Callable, Mapping

from ggufrope import paths
from ggufrope.presets.preset import Preset
from ggufrope.presets.prepare.prepared import Prepared


# llama.cpp reads a system prompt from a file (-sysf, common/arg.cpp); one this long goes there
# rather than on the argv (Linux caps one argument at 128 KiB: "Argument list too long")
ARGV_TEXT_LIMIT = 16 * 1024


def prompt_file(p: Preset, env: Mapping[str, str]) -> str | None:
    """Where a long system prompt is written for -sysf (named by its hash; None: short enough
    for the command line)."""
    if not p.system_prompt or len(p.system_prompt.encode()) <= ARGV_TEXT_LIMIT:
        return None
    digest = hashlib.sha256(p.system_prompt.encode()).hexdigest()[:16]
    return os.path.join(paths.home(env), "prompts", f"system-{digest}.txt")


def write_prompt_file(prep: Prepared) -> None:
    """Write the system prompt file (owner-only: a prompt can be private). llama.cpp drops one
    trailing newline of the file, so one is added."""
    path = prep.system_prompt_file
    if path is None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(prep.preset.system_prompt + "\n")
    os.replace(tmp, path)


def write_patched_copy(prep: Prepared, log: Callable[[str], None] = lambda s: None) -> str:
    """Write the patched copy for apply = "patched" (once; it is reused while the model and the
    settings are unchanged)."""
    if not prep.needs_patch or os.path.exists(prep.run_model):
        return prep.run_model
    from ggufrope.edit import patch_file
    from ggufrope.edit.requests import PatchRequest, request_ops
    os.makedirs(os.path.dirname(prep.run_model), exist_ok=True)
    req = PatchRequest(rope=prep.projection.file_part)
    log(f"writing the patched copy {prep.run_model}")
    patch_file(prep.model.path, lambda h: request_ops(h, req)[0], out=prep.run_model)
    return prep.run_model
