"""The build a command needs: cached if present, built (with progress and smoke test) if not."""
from __future__ import annotations

import os
from typing import Callable, Mapping

from ggufrope.build.builder import BuildResult, Progress, build
from ggufrope.build.smoke import smoke_test
from ggufrope.build.source import resolve_source
from ggufrope.build.spec import BuildSpec


def ensure_build(spec: BuildSpec | None = None, env: Mapping[str, str] | None = None,
                 source: str | None = None, progress: Progress | None = None,
                 log: Callable[[str], None] = lambda s: None) -> BuildResult:
    env = os.environ if env is None else env
    src = resolve_source(source, env, log)
    return build(spec or BuildSpec(), src, env, progress=progress, log=log, smoke=smoke_test)
