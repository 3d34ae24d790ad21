"""Bad input through the real CLI: every failure is one line on stderr naming the file and the
problem, a non-zero exit code, no traceback, no temp or journal files left behind, and the
original file byte-identical. Bad input that is a *valid* GGUF (odd strings, wrongly typed
metadata) must not crash either.

Each CLI run gets an address-space limit (RLIMIT_AS), so a size field taken at its word
would fail the run instead of quietly allocating gigabytes.
"""
from __future__ import annotations

import glob
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO, file_digest, hang_guard, write_tiny_llama
from ggufrope.errors import GGUFFormatError
from ggufrope.gguf import ValueType, encode_kv, read_header
from ggufrope.gguf.reader import parse_header

MEM_LIMIT = 512 << 20
FORMAT, USAGE, EDIT, ACCESS, LOCKED = 3, 2, 4, 5, 6


# ---------------------------------------------------------------------------- helpers
def cli(*args: str, user: str | None = None, timeout: float = 60, env_extra: dict | None = None,
        mem_limit: int | None = MEM_LIMIT) -> subprocess.CompletedProcess:
    """`python -m ggufrope ARGS`, optionally as another user, under an address-space limit."""
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "ggufrope", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]

    def limit():
        if mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout,
                          preexec_fn=limit)


def error_lines(stderr: str) -> list[str]:
    """stderr lines, without progress-bar redraws (which start with a carriage return)."""
    return [ln for ln in stderr.split("\n") if ln.strip() and not ln.startswith("\r")]


def assert_clean_failure(r: subprocess.CompletedProcess, *, code: int | None, problem: str | tuple,
                         names: str | None) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode != 0, (r.stdout, r.stderr)
    if code is not None:
        assert r.returncode == code, (r.returncode, r.stderr)
    lines = error_lines(r.stderr)
    assert len(lines) == 1, f"expected one error line, got:\n{r.stderr!r}"
    line = lines[0]
    assert line.startswith("ggufrope: error: "), r.stderr
    problems = (problem,) if isinstance(problem, str) else problem
    assert any(p.lower() in line.lower() for p in problems), f"{problems} not in {line!r}"
    if names is not None:
        assert names in line, f"{names!r} not named in {line!r}"
    return line


def leftovers(*dirs: str) -> list[str]:
    out = []
    for d in dirs:
        out += glob.glob(os.path.join(glob.escape(d), ".*.ggufrope-tmp-*"))
        out += glob.glob(os.path.join(glob.escape(d), ".*.ggufrope-journal*"))
    return out


def tiny(path: str | Path, **kw) -> str:
    return write_tiny_llama(str(path), **kw)


def with_reserve(src: str, dst: str) -> str:
    """A ggufrope-written copy of src: it carries reserved header space, so edits fit in place."""
    from ggufrope.edit import PAD_KEY, SetValue, patch_file
    # a new key that does not fit the old header: the copy gets a fresh reserve
    patch_file(src, lambda h: [SetValue("general.description", ValueType.STRING, "reserve " * 40)], out=dst)
    with read_header(dst) as h:
        assert PAD_KEY in h.fields
    return dst


def layout(path: str) -> dict:
    with read_header(path) as h:
        f = h.fields
        t0 = h.kv_end
        name_len = struct.unpack_from("<Q", h.raw(t0, t0 + 8))[0]
        return {
            "fields": {k: (v.start, v.value_start, v.end) for k, v in f.items()},
            "kv_end": h.kv_end, "infos_end": h.infos_end, "data_offset": h.data_offset,
            "t0_ndims": t0 + 8 + name_len, "t0_type": t0 + 8 + name_len + 4 + 8 * len(h.tensors[0].shape),
            "t1": t0 + 8 + name_len + 4 + 8 * len(h.tensors[0].shape) + 12,
            "size": h.file_size,
        }


def patched(src: str, dst: str, edits: list[tuple[int, bytes]] = (), cut: int | None = None) -> str:
    data = bytearray(Path(src).read_bytes())
    for off, b in edits:
        data[off:off + len(b)] = b
    if cut is not None:
        del data[cut:]
    Path(dst).write_bytes(bytes(data))
    return dst


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def gguf_bytes(kvs: list[bytes], infos: list[bytes] = (), data: bytes = b"", version: int = 3,
               n_kv: int | None = None, n_tensors: int | None = None, alignment: int = 32) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    hdr = head + b"".join(kvs) + b"".join(infos)
    if infos:
        hdr += b"\0" * (-len(hdr) % alignment)
    return hdr + data


def tensor_info(name: str, shape: tuple, gtype: int, offset: int) -> bytes:
    n = name.encode()
    return u64(len(n)) + n + u32(len(shape)) + b"".join(u64(d) for d in shape) + u32(gtype) + u64(offset)


# ---------------------------------------------------------------------------- the table
@dataclass
class Case:
    args: list[str]
    file: str | None                 # must stay byte-identical (and is named unless names says otherwise)
    problem: str | tuple
    code: int | None
    names: str | None = "<file>"     # "<file>": the file; None: nothing required
    dirs: list[str] = field(default_factory=list)   # where temp/journal files must not be left
    timeout: float = 60


class Env:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._base: str | None = None

    @property
    def base(self) -> str:
        if self._base is None:
            self._base = tiny(self.tmp / "base.gguf")
        return self._base

    def copy(self, name: str) -> str:
        dst = str(self.tmp / name)
        shutil.copyfile(self.base, dst)
        return dst

    def p(self, name: str) -> str:
        return str(self.tmp / name)


def _trunc(where: str) -> Callable[[Env], Case]:
    def make(env: Env) -> Case:
        lay = layout(env.base)
        f = lay["fields"]
        cut = {
            "magic": 2,
            "counts": 14,
            "key": f["general.name"][0] + 10,
            "value": f["general.name"][1] + 3,
            "string-array": f["tokenizer.ggml.tokens"][1] + 1001,
            "scalar-array": f["tokenizer.ggml.scores"][1] + 102,
            "tensor-infos": lay["kv_end"] + 20,
            "padding": lay["infos_end"] + 1,
            "tensor-data": lay["data_offset"] + 1000,
            "last-byte": lay["size"] - 1,
        }[where]
        p = patched(env.base, env.p(f"cut-{where}.gguf"), cut=cut)
        problem = "not a GGUF file" if where == "magic" else "truncated"
        return Case(["inspect", p], p, problem, FORMAT)
    return make


def _edit(name: str, fn: Callable[[dict], list[tuple[int, bytes]]], problem, code=FORMAT):
    """`inspect` of the tiny model with bytes overwritten at offsets fn(layout) gives."""
    def make(env: Env) -> Case:
        p = patched(env.base, env.p(f"{name}.gguf"), fn(layout(env.base)))
        return Case(["inspect", p], p, problem, code)
    return make


def _raw(name: str, blob: Callable[[], bytes], problem, code=FORMAT):
    """`inspect` of a file holding blob()."""
    def make(env: Env) -> Case:
        p = env.p(f"{name}.gguf")
        Path(p).write_bytes(blob())
        return Case(["inspect", p], p, problem, code)
    return make


def _deep_nested() -> bytes:
    body = u64(1) + b"k" + u32(ValueType.ARRAY) + (u32(ValueType.ARRAY) + u64(1)) * 5000 + u32(4) + u64(0)
    return gguf_bytes([body])


def _patch_case(name: str, args: list[str], problem, code, names="<file>", model="base"):
    def make(env: Env) -> Case:
        if model == "base":
            p = env.copy(f"{name}.gguf")
        elif model == "reserve":
            p = with_reserve(env.base, env.p(f"{name}.gguf"))
        else:
            p = model(env, env.p(f"{name}.gguf"))
        argv = [a.replace("{out}", env.p(f"{name}.out.gguf")).replace("{dir}", str(env.tmp)) for a in args]
        return Case(["patch", p, *argv], p, problem, code, names=names, dirs=[str(env.tmp)])
    return make


def _no_ctx_model(env: Env, path: str) -> str:
    import gguf
    import numpy as np
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_tensor("x.weight", np.arange(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _no_arch_model(env: Env, path: str) -> str:
    Path(path).write_bytes(gguf_bytes([encode_kv("general.name", ValueType.STRING, "x")]))
    return path


def _bad_history_model(env: Env, path: str) -> str:
    return tiny(path, extra={"ggufrope.original": "this is not JSON"})


def _dir_case(env: Env) -> Case:
    d = env.p("a-directory.gguf")
    os.mkdir(d)
    return Case(["inspect", d], None, "directory", ACCESS, names=d)


def _missing_case(env: Env) -> Case:
    p = env.p("missing.gguf")
    return Case(["inspect", p], None, "no such file", ACCESS, names=p)


def _missing_patch_case(env: Env) -> Case:
    p = env.p("missing.gguf")
    return Case(["patch", p, "--in-place", "--rope-scale", "2"], None, "no such file", ACCESS, names=p)


def _fifo_case(env: Env) -> Case:
    p = env.p("a-fifo.gguf")
    os.mkfifo(p)
    return Case(["inspect", p], None, "not a regular file", ACCESS, names=p, timeout=20)


def _fifo_patch_case(env: Env) -> Case:
    p = env.p("a-fifo.gguf")
    os.mkfifo(p)
    return Case(["patch", p, "--in-place", "--rope-scale", "2"], None, "not a regular file", ACCESS,
                names=p, timeout=20)


def _out_is_dir_case(env: Env) -> Case:
    p = env.copy("m.gguf")
    d = env.p("outdir")
    os.mkdir(d)
    return Case(["patch", p, "-o", d, "--rope-scale", "2"], p, "directory", ACCESS, names=d,
                dirs=[str(env.tmp), d])


def _out_missing_dir_case(env: Env) -> Case:
    p = env.copy("m.gguf")
    out = env.p("no/such/dir/out.gguf")
    return Case(["patch", p, "-o", out, "--rope-scale", "2"], p, "no such file or directory", ACCESS,
                names=out)


def _split_case(env: Env) -> Case:
    p = env.copy("model-00002-of-00003.gguf")
    return Case(["patch", p, "--in-place", "--rope-scale", "2"], p, "first split", EDIT)


def _diff_case(env: Env) -> Case:
    good = env.copy("good.gguf")
    bad = patched(env.base, env.p("bad.gguf"), cut=layout(env.base)["kv_end"] + 5)
    return Case(["diff", good, bad], bad, "truncated", FORMAT)


def _restore_nothing_case(env: Env) -> Case:
    p = env.copy("pristine.gguf")
    return Case(["restore", p], p, "nothing to restore", EDIT)


def _restore_damaged_case(env: Env) -> Case:
    p = _bad_history_model(env, env.p("damaged-history.gguf"))
    return Case(["restore", p], p, "damaged", FORMAT)


def _restore_bad_entry_case(env: Env) -> Case:
    """The undo record is JSON, but an entry's bytes are not a key/value entry of that key."""
    import base64
    import json
    doc = {"v": 1, "keys": {"general.name": base64.b64encode(b"\x01\x02garbage").decode()}}
    p = tiny(env.p("bad-history-entry.gguf"), extra={"ggufrope.original": json.dumps(doc)})
    return Case(["restore", p], p, "damaged", FORMAT)


_F = lambda lay, k, i=0: lay["fields"][k][i]  # noqa: E731
CASES: list = [
    *[pytest.param(_trunc(w), id=f"truncated-{w}") for w in (
        "magic", "counts", "key", "value", "string-array", "scalar-array", "tensor-infos", "padding",
        "tensor-data", "last-byte")],
    pytest.param(lambda env: (lambda p: Case(["patch", p, "--in-place", "--rope-scale", "2"], p,
                                            "truncated", FORMAT))(
        patched(env.base, env.p("cut.gguf"), cut=layout(env.base)["data_offset"] + 10)),
        id="truncated-data-patch-in-place"),
    pytest.param(lambda env: (lambda p: Case(["patch", p, "-o", env.p("o.gguf"), "--rope-scale", "2"], p,
                                            "truncated", FORMAT, dirs=[str(env.tmp)]))(
        patched(env.base, env.p("cut.gguf"), cut=layout(env.base)["kv_end"] + 3)),
        id="truncated-infos-patch-copy"),
    pytest.param(_raw("empty", lambda: b"", "not a GGUF file"), id="empty-file"),
    pytest.param(_edit("wrong-magic", lambda lay: [(0, b"GGML")], "not a GGUF file"), id="wrong-magic"),
    pytest.param(_edit("gguf-v1", lambda lay: [(4, u32(1))], "version 1"), id="gguf-v1"),
    pytest.param(_edit("gguf-v4", lambda lay: [(4, u32(4))], "unsupported GGUF version 4"), id="gguf-v4"),
    pytest.param(_edit("unknown-value-type", lambda lay: [(_F(lay, "general.name", 1) - 4, u32(13))],
                       "unknown value type 13"), id="unknown-value-type"),
    pytest.param(_edit("unknown-item-type", lambda lay: [(_F(lay, "tokenizer.ggml.tokens", 1) - 12, u32(77))],
                       "unknown item type 77"), id="unknown-array-item-type"),
    pytest.param(_edit("string-len-2^60", lambda lay: [(_F(lay, "general.name", 1), u64(2**60))],
                       "absurd length"), id="string-length-2^60"),
    pytest.param(_edit("string-len-past-eof", lambda lay: [(_F(lay, "general.name", 1), u64(2**29))],
                       "truncated"), id="string-length-past-eof"),
    pytest.param(_edit("key-len-2^60", lambda lay: [(_F(lay, "general.name"), u64(2**60))],
                       "exceeds the GGUF maximum"), id="key-length-2^60"),
    pytest.param(_edit("key-len-2^64-1", lambda lay: [(_F(lay, "general.name"), u64(2**64 - 1))],
                       "exceeds the GGUF maximum"), id="key-length-2^64-1"),
    pytest.param(_edit("array-count-2^60", lambda lay: [(_F(lay, "tokenizer.ggml.tokens", 1) - 8, u64(2**60))],
                       "absurd length"), id="array-count-2^60"),
    pytest.param(_edit("array-count-2^29", lambda lay: [(_F(lay, "tokenizer.ggml.scores", 1) - 8, u64(2**29))],
                       ("truncated", "runs past")), id="array-count-past-eof"),
    pytest.param(_edit("token-len-2^60", lambda lay: [(_F(lay, "tokenizer.ggml.tokens", 1), u64(2**60))],
                       ("runs past", "truncated")), id="string-array-item-length-2^60"),
    pytest.param(_edit("n-kv-2^40", lambda lay: [(16, u64(2**40))], "absurd key/value count"),
                 id="n-kv-2^40"),
    pytest.param(_edit("n-kv-neg", lambda lay: [(16, u64(2**64 - 1))], "absurd key/value count"),
                 id="n-kv-2^64-1"),
    pytest.param(_edit("n-tensors-2^62", lambda lay: [(8, u64(2**62))], "absurd tensor count"),
                 id="n-tensors-2^62"),
    pytest.param(_edit("n-dims-7", lambda lay: [(lay["t0_ndims"], u32(7))], "dimensions"),
                 id="tensor-n-dims-7"),
    pytest.param(_edit("ggml-type-99", lambda lay: [(lay["t0_type"], u32(99))], "unknown ggml type 99"),
                 id="tensor-unknown-ggml-type"),
    pytest.param(_edit("bad-offset", lambda lay: [(lay["t0_type"] + 4, u64(64))], "data offset"),
                 id="tensor-bad-data-offset"),
    pytest.param(_raw("dup-key2", lambda: gguf_bytes([encode_kv("a", ValueType.UINT8, 1)] * 2),
                       "duplicate key"), id="duplicate-key"),
    pytest.param(_raw("bad-align", lambda: gguf_bytes(
        [encode_kv("general.alignment", ValueType.UINT32, 48)],
        [tensor_info("t", (8,), 0, 0)], b"\0" * 32, alignment=48), "not a power of 2"), id="alignment-48"),
    pytest.param(_raw("key-not-utf8", lambda: gguf_bytes([u64(2) + b"\xff\xfe" + u32(0) + b"\1"]),
                       "not valid UTF-8"), id="key-not-utf8"),
    pytest.param(_raw("zero-dim-q4", lambda: gguf_bytes([], [tensor_info("t", (), 2, 0)], b"\0" * 64),
                       "block size"), id="zero-dim-quantized-tensor"),
    pytest.param(_raw("deep-nested", _deep_nested, "nested"), id="deeply-nested-arrays"),
    pytest.param(_dir_case, id="directory"),
    pytest.param(_missing_case, id="missing-file"),
    pytest.param(_missing_patch_case, id="missing-file-patch"),
    pytest.param(_fifo_case, id="fifo"),
    pytest.param(_fifo_patch_case, id="fifo-patch"),
    pytest.param(_out_is_dir_case, id="output-is-a-directory"),
    pytest.param(_out_missing_dir_case, id="output-dir-missing"),
    pytest.param(_split_case, id="not-the-first-split"),
    pytest.param(_diff_case, id="diff-with-a-truncated-file"),
    pytest.param(_restore_nothing_case, id="restore-without-history"),
    pytest.param(_restore_damaged_case, id="restore-damaged-history"),
    pytest.param(_restore_bad_entry_case, id="restore-damaged-history-entry"),
    # --- bad requests: the file is named too (the command has one)
    pytest.param(_patch_case("set-syntax", ["--in-place", "--set", "foo"], "expected KEY=TYPE:VALUE", USAGE),
                 id="set-syntax"),
    pytest.param(_patch_case("set-unknown-type", ["--in-place", "--set", "a.b=blob:1"], "unknown type 'blob'",
                              USAGE), id="set-unknown-type"),
    pytest.param(_patch_case("set-wrong-type", ["--in-place", "--set", "general.name=int:3"],
                              "general.name is STRING", EDIT), id="set-wrong-type-for-existing-key"),
    pytest.param(_patch_case("set-explicit-type", ["--in-place", "--set", "general.name=u32:3"],
                              "stored as STRING", EDIT), id="set-explicit-type-mismatch"),
    pytest.param(_patch_case("set-bad-int", ["--in-place", "--set", "llama.context_length=int:lots"],
                              "'lots' is not a valid int", USAGE), id="set-unparsable-int"),
    pytest.param(_patch_case("set-bad-bool", ["--in-place", "--set", "x.flag=bool:maybe"],
                              "'maybe' is not a valid bool", USAGE), id="set-unparsable-bool"),
    pytest.param(_patch_case("set-out-of-range", ["--in-place", "--set", "general.file_type=int:-5"],
                              "out of range", EDIT), id="set-out-of-range"),
    # a RoPE key follows the RoPE flags' rule (settings.rope_settings.check_value), exit 2 as they do
    pytest.param(_patch_case("set-rope-negative", ["--in-place", "--set", "llama.context_length=int:-5"],
                              "must be a positive 32-bit integer", USAGE), id="set-rope-key-negative"),
    pytest.param(_patch_case("set-array", ["--in-place", "--set", "tokenizer.ggml.tokens=str:x"],
                              "is an array", EDIT), id="set-array-key"),
    pytest.param(_patch_case("set-alignment", ["--in-place", "--set", "general.alignment=u32:64"],
                              "cannot be changed", EDIT), id="set-alignment"),
    pytest.param(_patch_case("set-own-key", ["--in-place", "--set", "ggufrope.padding=str:x"],
                              "bookkeeping", EDIT), id="set-own-key"),
    pytest.param(_patch_case("set-scaling-type", ["--in-place", "--set", "llama.rope.scaling.type=str:foo"],
                              "'foo'", USAGE), id="set-bad-scaling-type"),
    pytest.param(_patch_case("remove-missing", ["--in-place", "--remove", "no.such.key"], "no such key", EDIT),
                 id="remove-missing-key"),
    pytest.param(_patch_case("remove-ctx", ["--in-place", "--remove", "llama.context_length"],
                              "required", EDIT), id="remove-context-length"),
    pytest.param(_patch_case("scaling-foo", ["--in-place", "--rope-scaling", "foo"], "'foo'", USAGE),
                 id="rope-scaling-foo"),
    pytest.param(_patch_case("scale-neg", ["--in-place", "--rope-scale", "-1"], "positive", USAGE),
                 id="rope-scale-negative"),
    pytest.param(_patch_case("scale-zero", ["-o", "{out}", "--rope-scale", "0"], "positive", USAGE),
                 id="rope-scale-zero"),
    pytest.param(_patch_case("base-inf", ["--in-place", "--rope-freq-base", "inf"], "positive", USAGE),
                 id="rope-freq-base-inf"),
    pytest.param(_patch_case("ctx-zero", ["--in-place", "--ctx", "0"], "--ctx", USAGE),
                 id="ctx-zero"),
    pytest.param(_patch_case("orig-ctx-2^40", ["--in-place", "--yarn-orig-ctx", str(2**40)], "32-bit",
                              USAGE), id="yarn-orig-ctx-2^40"),
    pytest.param(_patch_case("both-outputs", ["--in-place", "-o", "{out}", "--rope-scale", "2"], "not both",
                              USAGE), id="in-place-and-output"),
    pytest.param(_patch_case("nothing", ["--in-place"], "nothing to change", USAGE),
                 id="nothing-to-change"),
    pytest.param(_patch_case("no-dest", ["--rope-scale", "2"], "say where to write", EDIT),
                 id="no-destination"),
    pytest.param(_patch_case("yarn-no-ctx", ["--in-place", "--rope-scaling", "yarn", "--rope-scale", "4"],
                              "original (trained) context is unknown", EDIT, model=_no_ctx_model),
                 id="yarn-without-context-length"),
    pytest.param(_patch_case("no-arch", ["-o", "{out}", "--rope-scale", "2"], "general.architecture", EDIT,
                              model=_no_arch_model), id="rope-on-model-without-architecture"),
    pytest.param(_patch_case("damaged-history", ["--in-place", "--set", "general.name=str:x"], "damaged",
                              FORMAT, model=_bad_history_model), id="patch-damaged-history"),
    # option parse errors are one line too (cli/app.py turns click's UsageError into it)
    pytest.param(_patch_case("scale-abc", ["--in-place", "--rope-scale", "abc"], "--rope-scale", USAGE, names=None),
                 id="rope-scale-not-a-number"),
]


@pytest.mark.parametrize("make", CASES)
def test_bad_input(make, tmp_path):
    env = Env(tmp_path)
    case = make(env)
    before = file_digest(case.file) if case.file else None
    r = cli(*case.args, timeout=case.timeout)  # the timeout is a hang guard, not a speed claim
    names = case.file if case.names == "<file>" else case.names
    assert_clean_failure(r, code=case.code, problem=case.problem, names=names)
    dirs = case.dirs or ([os.path.dirname(case.file)] if case.file else [])
    assert leftovers(*dirs) == []
    if case.file:
        assert file_digest(case.file) == before, "the original file changed"


# ---------------------------------------------------------------------------- allocation checks
ABSURD = {
    "string-2^60": lambda: gguf_bytes([u64(1) + b"k" + u32(ValueType.STRING) + u64(2**60)]),
    "key-2^60": lambda: gguf_bytes([u64(2**60) + b"k"]),
    "array-2^60": lambda: gguf_bytes([u64(1) + b"k" + u32(ValueType.ARRAY) + u32(ValueType.UINT64) + u64(2**60)]),
    "array-2^29-u64": lambda: gguf_bytes([u64(1) + b"k" + u32(ValueType.ARRAY) + u32(ValueType.UINT64) + u64(2**29)]),
    "strings-2^29": lambda: gguf_bytes([u64(1) + b"k" + u32(ValueType.ARRAY) + u32(ValueType.STRING) + u64(2**29)]),
    "string-item-2^60": lambda: gguf_bytes([u64(1) + b"k" + u32(ValueType.ARRAY) + u32(ValueType.STRING) + u64(3)
                                            + u64(2**60) + b"x" * 64]),
    "nested-2^29": lambda: gguf_bytes([u64(1) + b"k" + u32(ValueType.ARRAY) + u32(ValueType.ARRAY) + u64(2**29)
                                       + (u32(ValueType.STRING) + u64(0)) * 16]),
    "n-kv-2^40": lambda: gguf_bytes([], n_kv=2**40) + b"\0" * 4096,
    "n-tensors-2^40": lambda: gguf_bytes([], n_tensors=2**40) + b"\0" * 4096,
    "tensor-shape-2^62": lambda: gguf_bytes([], [tensor_info("t", (2**31, 2**31), 0, 0)]),
}


@pytest.mark.parametrize("name", sorted(ABSURD))
def test_absurd_sizes_fail_fast_without_allocating(name):
    buf = ABSURD[name]()
    tracemalloc.start()
    try:
        # hang guard: walking 2^29 elements instead of refusing the count would take minutes
        with hang_guard(60), pytest.raises(GGUFFormatError):
            parse_header(buf, len(buf), f"/m/{name}.gguf", check_data=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, f"peak {peak} bytes while refusing {name}"


def test_string_2_60_through_cli_under_memory_limit(tmp_path):
    p = str(tmp_path / "absurd.gguf")
    Path(p).write_bytes(ABSURD["string-2^60"]())
    r = cli("inspect", p, mem_limit=256 << 20)  # cli's timeout is the hang guard
    assert_clean_failure(r, code=FORMAT, problem="absurd length", names=p)


# ---------------------------------------------------------------------------- --debug
def test_debug_shows_traceback(tmp_path):
    base = tiny(tmp_path / "m.gguf")
    p = patched(base, str(tmp_path / "cut.gguf"), cut=layout(base)["kv_end"] + 5)
    r = cli("--debug", "inspect", p)
    assert r.returncode == 1  # an uncaught exception: Python's own exit status
    assert "Traceback" in r.stderr and "GGUFFormatError" in r.stderr and p in r.stderr


# ---------------------------------------------------------------------------- valid but odd files
def test_invalid_utf8_strings_are_shown_not_crashed(tmp_path):
    """Strings are not checked for UTF-8 by ggml. On a strict UTF-8 terminal printing one must
    not raise UnicodeEncodeError."""
    p = tiny(tmp_path / "m.gguf", extra={"general.description": b"bad \xff\xfe bytes"})
    before = file_digest(p)
    for args in (["inspect", "--all", p], ["inspect", "--json", "--all", p]):
        r = cli(*args, env_extra={"PYTHONIOENCODING": "utf-8:strict"})
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert "general.description" in r.stdout
    r = cli("patch", p, "-o", str(tmp_path / "o.gguf"), "--set", "general.description=str:fine",
            env_extra={"PYTHONIOENCODING": "utf-8:strict"})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert file_digest(p) == before


SEMANTIC = {
    # key: (value, type, sub type)
    "block-count-string": ("llama.block_count", "abc", ValueType.STRING),
    "block-count-2^40": ("llama.block_count", 2**40, ValueType.UINT64),
    "head-count-strings": ("llama.attention.head_count", ["a", "b"], ValueType.ARRAY),
    "key-length-string": ("llama.attention.key_length", "x", ValueType.STRING),
    "file-type-array": ("general.file_type", [1, 2], ValueType.ARRAY),
    "context-length-string": ("llama.context_length", "big", ValueType.STRING),
    "context-length-f32": ("llama.context_length", 4096.5, ValueType.FLOAT32),
    "orig-context-string": ("llama.rope.scaling.original_context_length", "x", ValueType.STRING),
    "scaling-factor-string": ("llama.rope.scaling.factor", "x", ValueType.STRING),
    "history-not-a-dict": ("ggufrope.original", "[1, 2]", ValueType.STRING),
}


# what inspect and patch do with each (the rest: inspect shows it, patch patches it)
_NOT_INT = "{} is stored as {}, not an integer; give --yarn-orig-ctx N"
_DAMAGED = (3, "ggufrope.original is damaged (")  # then Python's reason
SEMANTIC_OUTCOME = {
    "context-length-string": {"patch": (4, _NOT_INT.format("context_length", "'big'"))},
    "context-length-f32": {"patch": (4, _NOT_INT.format("context_length", "4096.5"))},
    "orig-context-string": {"patch": (4, _NOT_INT.format("rope.scaling.original_context_length", "'x'"))},
    "history-not-a-dict": {"inspect": _DAMAGED, "patch": _DAMAGED},
}


def _semantic_model(path: str, key: str, value, vtype: ValueType) -> str:
    import gguf
    import numpy as np
    w = gguf.GGUFWriter(path, "llama")
    sub = None
    if isinstance(value, list):
        sub = gguf.GGUFValueType.STRING if isinstance(value[0], str) else gguf.GGUFValueType.INT32
    w.add_key_value(key, value, gguf.GGUFValueType(int(vtype)), sub_type=sub)
    for k, v in (("llama.block_count", 2), ("llama.context_length", 256), ("llama.embedding_length", 64),
                 ("llama.attention.head_count", 2)):
        if k != key:
            w.add_uint32(k, v)
    w.add_tensor("x.weight", np.zeros(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("name", list(SEMANTIC))
def test_wrongly_typed_metadata(name, tmp_path):
    """A well-formed GGUF whose values have the wrong type or absurd sizes: inspect shows it or
    refuses it in one line; patch refuses it in one line or patches it. Never a traceback."""
    key, value, vtype = SEMANTIC[name]
    p = _semantic_model(str(tmp_path / f"{name}.gguf"), key, value, vtype)
    before = file_digest(p)
    out = str(tmp_path / "o.gguf")
    runs = [["inspect", p], ["inspect", "--json", "--all", p], ["patch", p, "-o", out, "--rope-scale", "2"]]
    expect = SEMANTIC_OUTCOME.get(name, {})
    for args in runs:
        r = cli(*args, timeout=60)
        assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr, (args, r.stderr[-2000:])
        code, message = expect.get(args[0], (0, None))
        assert r.returncode == code, (args, r.stderr)
        lines = [ln for ln in error_lines(r.stderr) if not ln.startswith("copying tensor data")]
        if code:
            assert len(lines) == 1 and lines[0].startswith(f"ggufrope: error: {p}: {message}"), (args, r.stderr)
            assert message.endswith("(") or lines[0] == f"ggufrope: error: {p}: {message}", (args, r.stderr)
        else:
            assert r.stdout.strip() and lines == [], (args, r.stderr)
    assert os.path.exists(out) == (expect.get("patch", (0,))[0] == 0)
    assert file_digest(p) == before
    assert leftovers(str(tmp_path)) == []


# ---------------------------------------------------------------------------- other users
@pytest.fixture
def open_dir():
    """A world-traversable directory (pytest's tmp_path is private to root)."""
    d = tempfile.mkdtemp(prefix="ggufrope-perm-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def as_nobody():
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as another user (root itself ignores file permissions)")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed; cannot run the CLI as user nobody")
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                        "-c", "import ggufrope.cli.app"], capture_output=True, cwd=REPO)
    if r.returncode != 0:
        pytest.skip(f"cannot run python as nobody here: {r.stderr.decode()[-200:]}")
    return "nobody"


def test_unreadable_file(as_nobody, open_dir):
    p = tiny(os.path.join(open_dir, "m.gguf"))
    os.chmod(p, 0o600)
    before = file_digest(p)
    r = cli("inspect", p, user=as_nobody)
    assert_clean_failure(r, code=ACCESS, problem="permission denied", names=p)
    r = cli("patch", p, "-o", os.path.join(open_dir, "o.gguf"), "--rope-scale", "2", user=as_nobody)
    assert_clean_failure(r, code=ACCESS, problem="permission denied", names=p)
    assert file_digest(p) == before and leftovers(open_dir) == []


def test_read_only_file_in_place(as_nobody, open_dir):
    """Readable, not writable: the in-place edit (header fits) is refused before any write."""
    base = tiny(os.path.join(open_dir, "base.gguf"))
    p = with_reserve(base, os.path.join(open_dir, "m.gguf"))
    os.chmod(p, 0o644)
    before = file_digest(p)
    r = cli("patch", p, "--in-place", "--rope-scale", "2", user=as_nobody)
    assert_clean_failure(r, code=ACCESS, problem="permission denied", names=p)
    assert file_digest(p) == before and leftovers(open_dir) == []


def test_unwritable_directory_copy(as_nobody, open_dir):
    """The header must grow (copy), but nobody may create the temp file beside the model."""
    p = tiny(os.path.join(open_dir, "m.gguf"))
    os.chmod(p, 0o666)  # writable file, unwritable directory
    before = file_digest(p)
    r = cli("patch", p, "--in-place", "--rope-scaling", "yarn", "--rope-scale", "4", user=as_nobody)
    assert_clean_failure(r, code=ACCESS, problem="permission denied", names=p)
    r = cli("patch", p, "-o", os.path.join(open_dir, "out.gguf"), "--rope-scale", "2", user=as_nobody)
    assert_clean_failure(r, code=ACCESS, problem="permission denied", names=os.path.join(open_dir, "out.gguf"))
    assert file_digest(p) == before and leftovers(open_dir) == []
    assert not os.path.exists(os.path.join(open_dir, "out.gguf"))


# ---------------------------------------------------------------------------- mounts
@pytest.fixture
def tmpfs(tmp_path):
    """mount_tmpfs(size) -> a fresh tmpfs mount point; all unmounted afterwards."""
    mounted = []

    def mount(size: str, name: str = "fs") -> str:
        d = tmp_path / f"{name}-{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here ({r.stderr.strip()}); "
                        f"read-only and full-disk cases need it")
        mounted.append(str(d))
        return str(d)

    yield mount
    for d in reversed(mounted):
        if subprocess.run(["umount", d], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", d], capture_output=True)


def remount_ro(d: str) -> None:
    r = subprocess.run(["mount", "-o", "remount,ro", d], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount {d} read-only ({r.stderr.strip()})")


def test_read_only_filesystem(tmpfs, tmp_path):
    d = tmpfs("16m", "ro")
    base = tiny(tmp_path / "base.gguf")
    fits = with_reserve(base, os.path.join(d, "fits.gguf"))     # in-place edit would fit
    grows = shutil.copyfile(base, os.path.join(d, "grows.gguf"))  # the edit needs a copy
    remount_ro(d)
    digests = {p: file_digest(p) for p in (fits, grows)}

    r = cli("inspect", fits)
    assert r.returncode == 0, r.stderr
    r = cli("patch", fits, "--in-place", "--rope-scale", "2")
    assert_clean_failure(r, code=ACCESS, problem="read-only file system", names=fits)
    r = cli("patch", grows, "--in-place", "--rope-scaling", "yarn", "--rope-scale", "4")
    assert_clean_failure(r, code=ACCESS, problem="read-only file system", names=grows)
    out = os.path.join(d, "out.gguf")
    r = cli("patch", base, "-o", out, "--rope-scale", "2")
    assert_clean_failure(r, code=ACCESS, problem="read-only file system", names=out)
    assert {p: file_digest(p) for p in digests} == digests
    assert leftovers(d) == [] and not os.path.exists(out)


def test_journal_on_read_only_filesystem(tmpfs, tmp_path):
    """An interrupted edit whose file is now on a read-only FS: say so in one line, touch nothing."""
    from ggufrope.edit import journal
    d = tmpfs("16m", "rojournal")
    p = with_reserve(tiny(tmp_path / "base.gguf"), os.path.join(d, "m.gguf"))
    with read_header(p) as h:
        old = h.raw(0, 64)
    new = old[:8] + b"\xee" * 56  # an edit killed after its write: rolling back must write
    journal.write(p, old, new)
    with open(p, "r+b") as f:
        f.write(new)
    remount_ro(d)
    before = file_digest(p)
    r = cli("recover", p)  # read-only commands (inspect) never roll back
    assert_clean_failure(r, code=ACCESS, problem=("read-only", "cannot be written"), names=p)
    assert file_digest(p) == before


def test_full_disk_during_copy_to_output(tmpfs, tmp_path):
    d = tmpfs("2m", "full")
    p = tiny(tmp_path / "m.gguf", n_ff=4096)  # ~6.5 MB
    assert os.path.getsize(p) > 4 * 2**20
    before = file_digest(p)
    out = os.path.join(d, "out.gguf")
    r = cli("patch", p, "-o", out, "--rope-scaling", "yarn", "--rope-scale", "4")
    assert_clean_failure(r, code=ACCESS, problem="no space left", names=out)
    assert file_digest(p) == before
    assert os.listdir(d) == [], os.listdir(d)


def test_full_disk_during_in_place_copy(tmpfs, tmp_path):
    """The model itself lives on the full disk and its header must grow: the copy fails half way,
    the original stays, the partial temp file is removed."""
    d = tmpfs("10m", "full")
    p = shutil.copyfile(tiny(tmp_path / "m.gguf", n_ff=4096), os.path.join(d, "m.gguf"))
    before = file_digest(p)
    r = cli("patch", p, "--in-place", "--rope-scaling", "yarn", "--rope-scale", "4")
    assert_clean_failure(r, code=ACCESS, problem="no space left", names=p)
    assert file_digest(p) == before
    assert sorted(os.listdir(d)) == ["m.gguf"]


def test_full_disk_journal(tmpfs, tmp_path):
    """In place, but not even the journal fits on the disk: refused before the model is touched."""
    d = tmpfs("4m", "full")
    p = with_reserve(tiny(tmp_path / "base.gguf"), os.path.join(d, "m.gguf"))
    filler = os.path.join(d, "filler")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    before = file_digest(p)
    r = cli("patch", p, "--in-place", "--rope-scale", "2")
    assert_clean_failure(r, code=ACCESS, problem=("journal", "no space"), names=p)
    assert file_digest(p) == before
    assert sorted(os.listdir(d)) == ["filler", "m.gguf"]
