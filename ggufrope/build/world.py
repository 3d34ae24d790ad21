"""The machine as the build layer sees it: executables on PATH, files, the environment, and a
runner for short probe commands. Passed in everywhere so tests can describe any machine with
plain functions and dicts."""
from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Sequence


def _run(argv: Sequence[str]) -> str | None:
    """stdout+stderr of a short probe command, or None when it cannot run."""
    try:
        r = subprocess.run(list(argv), capture_output=True, text=True, errors="replace", timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout + r.stderr


@dataclass
class World:
    """The machine as doctor and the CUDA toolkit resolver see it (injectable)."""

    which: Callable[[str], str | None] = shutil.which
    exists: Callable[[str], bool] = os.path.exists
    glob: Callable[[str], list[str]] = glob.glob
    run: Callable[[Sequence[str]], str | None] = _run
    system: str = platform.system()
    machine: str = platform.machine()
    env: dict = field(default_factory=lambda: dict(os.environ))

    def version(self, exe: str, *args: str) -> str | None:
        out = self.run([exe, *args])
        m = re.search(r"(\d+\.\d+(\.\d+)?)", out or "")
        return m.group(1) if m else None
