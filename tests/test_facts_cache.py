"""The facts cache (ggufrope/facts_cache.py): a second reading of the same file version does not
open it; any change to the file (an in-place edit, a replacement of the same size) or a cache
entry someone else could have written makes it read the header again."""
from __future__ import annotations

import os
import shutil

from ggufrope import facts_cache
from ggufrope.edit import patch_file
from ggufrope.edit.plan import SetValue
from ggufrope.gguf import ValueType
from ggufrope.model_facts import read_model_facts

from conftest import counting_header_opens


def _opens(monkeypatch) -> list[str]:
    return counting_header_opens(monkeypatch)


def test_second_read_of_the_same_version_does_not_open_the_file(tiny_model, monkeypatch):
    m = tiny_model()
    opened = _opens(monkeypatch)
    first = read_model_facts(m)
    second = read_model_facts(m)
    assert opened == [m]
    assert second == first and second.trained_ctx == first.trained_ctx


def test_an_in_place_edit_is_read_again(tiny_model, monkeypatch):
    m = tiny_model()
    before = read_model_facts(m)
    patch_file(m, lambda h: [SetValue("llama.rope.freq_base", ValueType.FLOAT32, 12345.0)], in_place=True)
    opened = _opens(monkeypatch)
    after = read_model_facts(m)
    assert opened == [m]
    assert after.info.rope.freq_base == 12345.0 != before.info.rope.freq_base


def test_a_same_size_replacement_with_its_mtime_put_back_is_read_again(tiny_model, tmp_path, monkeypatch):
    a, b = tiny_model(), tiny_model(n_ctx=4096)
    assert os.path.getsize(a) == os.path.getsize(b)
    st = os.stat(a)
    read_model_facts(a)
    shutil.copyfile(b, a)                                  # same path, inode and size
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))       # mtime put back: only ctime tells
    opened = _opens(monkeypatch)
    assert read_model_facts(a).info.rope.context_length == 4096
    assert opened == [a]


def test_an_entry_others_can_write_is_ignored(tiny_model, monkeypatch):
    m = tiny_model()
    read_model_facts(m)
    entry = facts_cache._entry(facts_cache.file_key(m), None)
    os.chmod(entry, 0o666)
    opened = _opens(monkeypatch)
    read_model_facts(m)
    assert opened == [m]


def test_a_damaged_entry_costs_only_the_read(tiny_model, monkeypatch):
    m = tiny_model()
    read_model_facts(m)
    entry = facts_cache._entry(facts_cache.file_key(m), None)
    with open(entry, "r+b") as f:
        f.truncate(5)
    opened = _opens(monkeypatch)
    assert read_model_facts(m).path == m
    assert opened == [m]
    assert oct(os.stat(entry).st_mode & 0o777) == "0o600"   # rewritten whole, private
