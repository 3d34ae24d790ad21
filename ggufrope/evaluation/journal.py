"""results.jsonl: one line per finished run, appended and fsynced as each run ends, so an
interrupted sweep loses at most the run in flight and a rerun skips every cell already there.
A torn last line (killed mid-write) is ignored on reading."""
from __future__ import annotations

import json
import os
from typing import Iterator

from ggufrope.errors import FileAccessError

JOURNAL = "results.jsonl"


def journal_path(out_dir: str, name: str = JOURNAL) -> str:
    return os.path.join(out_dir, name)


def read_records(out_dir: str, name: str = JOURNAL) -> list[dict]:
    path = journal_path(out_dir, name)
    if not os.path.exists(path):
        return []
    return list(_iter(path))


def _iter(path: str) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn write from an interrupted run
                if isinstance(rec, dict):
                    yield rec
    except OSError as e:
        raise FileAccessError(f"{path}: cannot read: {e.strerror}") from None


def append_record(out_dir: str, rec: dict, name: str = JOURNAL) -> None:
    path = journal_path(out_dir, name)
    try:
        os.makedirs(out_dir, exist_ok=True)
        # a previous run killed mid-line leaves no newline: start on a fresh line
        needs_nl = False
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_nl = f.read(1) != b"\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(("\n" if needs_nl else "") + json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise FileAccessError(f"{path}: cannot append a result: {e.strerror}") from None
