"""ggufrope's GGUF parser against ggml's own reader (ggufrope-gguf-oracle: gguf_init_from_file
as llama.cpp's loader calls it, docs/native.md).

Both must accept and refuse the same files and agree on every value of the files they accept:
version, alignment, data offset, every key's type and value, every tensor's name, type, shape,
offset and size. The differences below are the only ones allowed, each checked narrowly where
it occurs (`verdict`):

* ggml's API hands out C strings, so keys, string values and tensor names are compared up to
  their first NUL (ggml keeps the bytes; llama.cpp sees the cut string too).
* the oracle's `shape` drops trailing 1s (ggml keeps no n_dims); `ne` is compared in full.
* ggml does not check that tensor data is present: ggufrope is run with check_data=False
  (its default check_data=True refuses a truncated data section on purpose).
* ggml refuses big-endian files on a little-endian host ("mismatch between the host and model
  endianness"); ggufrope reads them in their own byte order.
* ggml refuses nested arrays (gguf_init_from_reader: "invalid GGUF type 9"); the spec allows
  them and ggufrope reads them.
* ggufrope refuses keys that are not valid UTF-8 (the GGUF spec says keys are ASCII;
  test_bad_input.py "key-not-utf8"); ggml takes any bytes.
* ggml computes a quantized tensor's byte size as ne0*type_size/block in size_t, which wraps
  for rows of >= 2^64/type_size elements (ggml.c ggml_nbytes); ggufrope's size is the exact one.

The type table (ggufrope.gguf.constants) is checked against this llama.cpp's own gguf-py;
every ggml type id 0..44 is compared below.
"""
from __future__ import annotations

import os
import re
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import write_tiny_llama
from ggufrope.build import native
from ggufrope.errors import GGUFFormatError
from ggufrope.gguf import ValueType, encode_kv, read_header
from ggufrope.gguf.constants import GGMLType, align_up, tensor_nbytes
from ggufrope.gguf.reader import GGUFHeader, parse_header
from test_fuzz import _offsets, fuzz, mutated
from test_native import bin_dir, cpu_build, write_meta  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
VT = ValueType


# ---------------------------------------------------------------------------- comparison
def cut(s: str) -> str:
    """What ggml's C-string API shows of a string: up to the first NUL."""
    return s.split("\0", 1)[0]


def same_items(vt: VT, mine: list, theirs: list) -> bool:
    if len(mine) != len(theirs):
        return False
    if vt in (VT.FLOAT32, VT.FLOAT64):
        dt = np.float32 if vt == VT.FLOAT32 else np.float64
        a = np.array(mine, dtype=dt)
        b = np.array([float(x) for x in theirs], dtype=dt)
        # the oracle prints %.9g / %.17g (round-trips); -0 comes back from JSON as int 0, so the
        # sign of a zero cannot be compared
        return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    if vt == VT.BOOL:
        return all(t is bool(m) for m, t in zip(mine, theirs))
    if vt == VT.STRING:
        return [cut(m) for m in mine] == theirs
    return all(type(t) is int for t in theirs) and mine == theirs


# ggml's byte size per block where ggufrope's table is stale (see the module docstring)


def compare(h: GGUFHeader, doc: dict) -> None:
    """Assert that ggufrope's header and the oracle's report agree on everything"""
    assert doc["ok"], doc
    assert (doc["version"], doc["alignment"], doc["data_offset"], doc["n_kv"], doc["n_tensors"]) == \
        (h.version, h.alignment, h.data_offset, len(h.fields), len(h.tensors))
    for f, kv in zip(h.fields.values(), doc["kv"]):
        where = f"key {f.key!r}"
        assert kv["key"] == cut(f.key), where
        assert kv["type"] == f.vtype.name, where
        if f.vtype == VT.ARRAY:
            assert (kv["array_type"], kv["n"]) == (f.item_type.name, f.count), where
            assert same_items(f.item_type, h.value(f), kv["value"]), where
        else:
            assert same_items(f.vtype, [h.value(f)], [kv["value"]]), (where, h.value(f), kv["value"])
    for t, ti in zip(h.tensors, doc["tensors"]):
        where = f"tensor {t.name!r}"
        ne = list(t.shape) + [1] * (4 - len(t.shape))
        shape = list(ne)
        while len(shape) > 1 and shape[-1] == 1:  # ggml_n_dims: trailing 1s dropped, at least one kept
            shape.pop()
        assert (ti["name"], ti["type"], ti["type_id"]) == (cut(t.name), t.type_name, t.ggml_type), where
        assert (ti["ne"], ti["shape"]) == (ne, shape), where
        assert (ti["offset"], ti["size"]) == (t.offset, t.nbytes), where


def oracle_file(bin_dir: str, path: str) -> dict:
    doc = native.gguf_oracle(bin_dir, path)
    # a crash or abort inside ggml's reader is never acceptable, whatever the input
    assert not doc.get("signal") and not doc.get("ggml_abort"), doc
    return doc


_NON_UTF8_KEY = re.compile(r"key #(\d+) is not valid UTF-8 at offset 0x([0-9a-f]+)$")


def verdict(buf: bytes, doc: dict) -> str:
    """How ggufrope (check_data=False) and ggml treat the file: agree-accept (and every value
    agrees), agree-reject, or one of the documented differences (module docstring), each
    recognised only where it is the reason. Anything else fails."""
    try:
        h = parse_header(buf, len(buf), "<f>", check_data=False)
    except GGUFFormatError as e:
        h, err = None, str(e)
    if h is not None and doc["ok"]:
        compare(h, doc)
        return "agree-accept"
    if h is None and not doc["ok"]:
        return "agree-reject"
    if h is not None:  # only ggml refuses
        if h.byteorder == ">":
            assert "endianness" in doc["error"], doc["error"]
            return "documented:big-endian"
        if any(f.item_type == VT.ARRAY for f in h.fields.values()):
            assert f"has invalid GGUF type {int(VT.ARRAY)}" in doc["error"], doc["error"]
            return "documented:nested-array"
        raise AssertionError(f"ggml refuses what ggufrope accepts: {doc['error']}")
    m = _NON_UTF8_KEY.search(err)  # only ggufrope refuses
    if m:
        i, off = int(m[1]), int(m[2], 16)
        (n,) = struct.unpack_from("<Q", buf, off)
        raw = buf[off + 8: off + 8 + n]
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        assert doc["kv"][i]["key"] == cut(raw.decode("utf-8", "surrogateescape")), doc["kv"][i]
        return "documented:non-utf8-key"

    raise AssertionError(f"ggufrope refuses what ggml accepts: {err}")


# ---------------------------------------------------------------------------- real files
def check_real_file(bin_dir: str, path: str) -> GGUFHeader:
    with read_header(path) as h:  # complete files: the default check_data=True holds too
        compare(h, oracle_file(bin_dir, path))
        return h


def test_oracle_agrees_on_vocab_files(bin_dir, vocab_files):
    for path in vocab_files:
        check_real_file(bin_dir, path)


def test_oracle_agrees_on_smollm2(bin_dir, smollm2):
    h = check_real_file(bin_dir, smollm2)
    assert len(h.tensors) > 200 and {t.type_name for t in h.tensors} >= {"Q4_1", "Q8_0"}


@pytest.mark.parametrize("kw", [pytest.param({}, id="f32"), pytest.param({"quant": "q8_0"}, id="q8_0"),
                                pytest.param({"quant": "q4_0"}, id="q4_0"),
                                pytest.param({"arch": "qwen2", "n_ctx": 4096}, id="qwen2")])
def test_oracle_agrees_on_tiny_models(bin_dir, tiny_model, kw):
    check_real_file(bin_dir, tiny_model(**kw))


@pytest.mark.parametrize("arch", ["deepseek2", "grok"])
def test_oracle_agrees_on_metadata_only_files(bin_dir, tmp_path, arch):
    check_real_file(bin_dir, write_meta(str(tmp_path / f"{arch}.gguf"), arch))


def test_oracle_refuses_big_endian_files(bin_dir, tiny_model):
    """Documented: ggml cannot read a big-endian GGUF on a little-endian host; ggufrope can."""
    import gguf
    path = tiny_model(endianess=gguf.GGUFEndian.BIG)
    with read_header(path) as h:
        assert h.byteorder == ">" and h.get("llama.context_length") == 256
    with open(path, "rb") as f:
        buf = f.read()
    doc = oracle_file(bin_dir, path)
    assert not doc["ok"] and "endianness" in doc["error"]
    assert verdict(buf, doc) == "documented:big-endian"


# ---------------------------------------------------------------------------- crafted files
def string(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def tensor_info(name: bytes, shape, gtype: int, offset: int) -> bytes:
    return (string(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<q", d) for d in shape)
            + struct.pack("<IQ", gtype, offset))


def gguf_file(entries=(), infos=(), tail: bytes = b"", version: int = 3, alignment: int = 32,
              pad: bool = True) -> bytes:
    """Raw little-endian GGUF: entries are encoded kv bytes, infos encoded tensor infos."""
    hdr = b"GGUF" + struct.pack("<IQQ", version, len(infos), len(entries)) + b"".join(entries) + b"".join(infos)
    if infos and pad:
        hdr += b"\0" * (-len(hdr) % alignment)
    return hdr + tail


def kv(key, vt, value, item=None) -> bytes:
    return encode_kv(key, vt, value, "<", item)


def raw_kv(key: bytes, vt: VT, value_bytes: bytes) -> bytes:
    return string(key) + struct.pack("<I", int(vt)) + value_bytes


def laid_out(tensors, entries=(), alignment: int = 32, data: bool = True, **kw) -> bytes:
    """Tensors (name, shape, type) at the running offsets ggml expects, followed by their data
    (0x5a bytes; data=False leaves it out). alignment != 32 adds general.alignment."""
    if alignment != 32:
        entries = [kv("general.alignment", VT.UINT32, alignment), *entries]
    infos, off = [], 0
    for name, shape, gt in tensors:
        infos.append(tensor_info(name, shape, int(gt), off))
        off += align_up(tensor_nbytes(gt, shape), alignment)
    return gguf_file(entries, infos, tail=b"\x5a" * off if data else b"", alignment=alignment, **kw)


ALL_TYPES = [
    kv("u8", VT.UINT8, 255), kv("i8", VT.INT8, -128), kv("u16", VT.UINT16, 65535), kv("i16", VT.INT16, -32768),
    kv("u32", VT.UINT32, 2**32 - 1), kv("i32", VT.INT32, -(2**31)), kv("f32", VT.FLOAT32, 1.5),
    kv("bool", VT.BOOL, True), kv("str", VT.STRING, "h\u00e9llo \u2581"), kv("u64", VT.UINT64, 2**64 - 1),
    kv("i64", VT.INT64, -(2**63)), kv("f64", VT.FLOAT64, -0.1),
    kv("a.u8", VT.ARRAY, [0, 7, 255], VT.UINT8), kv("a.i64", VT.ARRAY, [-1, 2**62], VT.INT64),
    kv("a.bool", VT.ARRAY, [True, False], VT.BOOL), kv("a.str", VT.ARRAY, ["a", "", "ccc"], VT.STRING),
    kv("a.empty", VT.ARRAY, [], VT.FLOAT64), kv("a.f64", VT.ARRAY, [1e300, -2.5], VT.FLOAT64),
]
ODD_VALUES = [
    kv("floats", VT.ARRAY, [float("nan"), float("inf"), -float("inf"), 1e-45, 3.4028234663852886e38, 0.1],
       VT.FLOAT32),
    kv("f64.nan", VT.FLOAT64, float("nan")), kv("f64.tiny", VT.FLOAT64, 5e-324),
    raw_kv(b"bool.two", VT.BOOL, b"\x02"),  # ggml: byte != 0
    raw_kv(b"a.bool.odd", VT.ARRAY, struct.pack("<IQ", int(VT.BOOL), 3) + b"\x00\x01\xff"),
    raw_kv(b"str.nul", VT.STRING, string(b"before\0after")),
    raw_kv(b"str.bad-utf8", VT.STRING, string(b"\xff\xfe ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80")),
    raw_kv(b"a.str.odd", VT.ARRAY, struct.pack("<IQ", int(VT.STRING), 2) + string(b"x\0y") + string(b"\x80")),
    raw_kv(b"key\0with-nul", VT.UINT8, b"\x01"),
]
F32, Q8, Q4K, F16 = GGMLType.F32, GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.F16


CRAFTED = [
    pytest.param(gguf_file(ALL_TYPES), "agree-accept", id="every-value-type"),
    pytest.param(gguf_file(ODD_VALUES), "agree-accept", id="nan-inf-bool2-nul-bad-utf8"),
    pytest.param(gguf_file(ALL_TYPES, version=2), "agree-accept", id="version-2"),
    pytest.param(gguf_file([kv("x", VT.UINT8, 1)], tail=b"junk after the kvs"), "agree-accept",
                 id="no-tensors-trailing-bytes"),
    pytest.param(laid_out([(b"t.f32", (4, 2), F32), (b"t.q8", (64,), Q8), (b"t.col", (5, 1), F32),
                           (b"t.q4k", (256, 1, 2), Q4K), (b"t.scalar", (), F32), (b"t.empty", (0, 3), F16)]),
                 "agree-accept", id="tensors-trailing-1-zero-dim-no-dims"),
    pytest.param(laid_out([(b"t\0hidden", (4,), F32), (b"\xffname\xc3", (4,), F32), (b"", (4,), F32)]),
                 "agree-accept", id="tensor-names-nul-bad-utf8-empty"),
    pytest.param(laid_out([(b"a", (64,), Q8), (b"b", (3,), F32)], alignment=64), "agree-accept",
                 id="alignment-64"),
    pytest.param(laid_out([(b"a", (4,), F32), (b"b", (3,), F32)], alignment=1), "agree-accept",
                 id="alignment-1"),
    pytest.param(laid_out([(b"a", (4096, 4096), F32)], data=False), "agree-accept",
                 id="truncated-data-section"),
    pytest.param(gguf_file([kv("general.alignment", VT.UINT32, 48)], [tensor_info(b"a", (4,), int(F32), 0)],
                           tail=bytes(64), alignment=16), "agree-reject", id="alignment-not-power-of-2"),
    pytest.param(gguf_file([kv("general.alignment", VT.UINT64, 32)], [tensor_info(b"a", (4,), int(F32), 0)],
                           tail=bytes(32)), "agree-reject", id="alignment-u64"),
    pytest.param(gguf_file([kv("x", VT.UINT8, 1), kv("x", VT.UINT8, 2)]), "agree-reject", id="duplicate-key"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (4,), int(F32), 0), tensor_info(b"a", (4,), int(F32), 32)],
                           tail=bytes(64)), "agree-reject", id="duplicate-tensor-name"),
    pytest.param(gguf_file(infos=[tensor_info(b"x" * 64, (4,), int(F32), 0)], tail=bytes(32)), "agree-reject",
                 id="tensor-name-64-bytes"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (4,), int(F32), 0), tensor_info(b"b", (4,), int(F32), 16)],
                           tail=bytes(64)), "agree-reject", id="unaligned-offset"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (33,), int(Q8), 0)], tail=bytes(64)), "agree-reject",
                 id="row-not-multiple-of-block"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (1, 1, 1, 1, 1), int(F32), 0)], tail=bytes(32)),
                 "agree-reject", id="five-dims"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (4, -1), int(F32), 0)], tail=bytes(32)), "agree-reject",
                 id="negative-dim"),
    # fixed in ggufrope.gguf.reader: ggml checks each running product of dimensions, and the
    # running sum of padded sizes against SIZE_MAX
    pytest.param(gguf_file(infos=[tensor_info(b"a", (2**40, 2**40, 0), int(F32), 0)], tail=bytes(32)),
                 "agree-reject", id="overflowing-prefix-then-zero-dim"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (2**31, 2**31), int(F32), 0)], tail=bytes(32)),
                 "agree-reject", id="tensor-bytes-2^64"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (2**62 - 4,), int(F32), 0)], tail=bytes(32)),
                 "agree-reject", id="tensor-bytes-pad-past-2^64"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (2**62 - 8,), int(F32), 0)], tail=bytes(32)),
                 "agree-accept", id="tensor-bytes-2^64-minus-32-fits"),
    pytest.param(gguf_file(infos=[tensor_info(b"a", (2**61,), int(F32), 0),
                                  tensor_info(b"b", (2**61,), int(F32), 2**63)], tail=bytes(32)),
                 "agree-reject", id="data-section-sum-2^64"),
    pytest.param(gguf_file([kv("a.nested", VT.ARRAY, [(VT.UINT8, [1, 2])], VT.ARRAY)]),
                 "documented:nested-array", id="nested-array"),
    pytest.param(gguf_file([raw_kv(b"ok", VT.UINT8, b"\x01"), raw_kv(b"k\xffey", VT.UINT8, b"\x02")]),
                 "documented:non-utf8-key", id="key-not-utf8"),
]


@pytest.mark.parametrize("buf,want", CRAFTED)
def test_crafted_files(bin_dir, tmp_path, buf, want):
    path = str(tmp_path / "c.gguf")
    with open(path, "wb") as f:
        f.write(buf)
    assert verdict(buf, oracle_file(bin_dir, path)) == want


def test_truncated_data_is_ggufropes_own_check(bin_dir, tmp_path):
    """ggml accepts a file whose tensor data is missing; ggufrope does too with check_data=False
    and refuses it by default (a truncated download)."""
    buf = laid_out([(b"a", (64, 64), F32)])[:-100]
    path = str(tmp_path / "t.gguf")
    with open(path, "wb") as f:
        f.write(buf)
    assert verdict(buf, oracle_file(bin_dir, path)) == "agree-accept"
    with pytest.raises(GGUFFormatError, match="truncated download"):
        read_header(path)


def test_ggml_quantized_size_wraps(bin_dir, tmp_path):
    """Documented ggml bug: ggml_nbytes computes ne0*type_size before dividing by the block size,
    so a Q8_0 row of 2^59 elements reports 2^55 bytes instead of 17*2^55."""
    ne0 = 2**59
    buf = gguf_file(infos=[tensor_info(b"a", (ne0,), int(Q8), 0)], tail=bytes(32))
    path = str(tmp_path / "w.gguf")
    with open(path, "wb") as f:
        f.write(buf)
    doc = oracle_file(bin_dir, path)
    h = parse_header(buf, len(buf), path, check_data=False)
    assert h.tensors[0].nbytes == ne0 // 32 * 34
    assert doc["ok"] and doc["tensors"][0]["size"] == (ne0 * 34 % 2**64) // 32 != h.tensors[0].nbytes


def _type_params():
    out = []
    for tid in range(45):
        name = GGMLType(tid).name if tid in GGMLType._value2member_map_ else ("Q2_0" if tid == 42 else "none")
        out.append(pytest.param(tid, id=f"{tid}-{name}"))
    return out


@pytest.mark.parametrize("tid", _type_params())
def test_every_ggml_type_id(bin_dir, tmp_path, tid):
    """ggml accepts exactly its current types (removed ids have block size 0, ids >= 43 are out
    of range); ggufrope must accept the same ones and agree on their byte sizes."""
    buf = gguf_file(infos=[tensor_info(b"t", (1024, 2), tid, 0)], tail=bytes(64))  # 1024: every block size
    path = str(tmp_path / "t.gguf")
    with open(path, "wb") as f:
        f.write(buf)
    doc = oracle_file(bin_dir, path)
    assert verdict(buf, doc) == ("agree-accept" if doc["ok"] else "agree-reject")
    if doc["ok"]:
        assert doc["tensors"][0]["type"] == GGMLType(tid).name


# ---------------------------------------------------------------------------- fuzzed corpus
def _seed(name: str, buf: bytes, full: bytes | None = None) -> tuple[str, bytes, list[int]]:
    """(name, bytes, structural offsets) as test_fuzz's `mutated` strategy takes them."""
    src = full if full is not None else buf
    h = parse_header(src, len(src), name, check_data=False)
    return name, buf, [o for o in _offsets(h) if o < len(buf)]


@pytest.fixture(scope="module")
def fuzz_seeds(tmp_path_factory, vocab_files):
    """Little-endian, ggml-compatible seeds (so that mutants probe real agreement, not the
    documented big-endian / nested-array differences)."""
    d = tmp_path_factory.mktemp("oracle-seeds")
    out = []
    for name, kw in (("tiny-f32", {}), ("tiny-q8_0", {"quant": "q8_0"})):
        p = write_tiny_llama(str(d / f"{name}.gguf"), **kw)
        with read_header(p) as h:
            end = h.data_offset + 256
        with open(p, "rb") as f:
            out.append(_seed(name, f.read()[:end]))
    out.append(_seed("all-types-v3", laid_out([(b"t.f32", (4, 2), F32), (b"t.q8", (64,), Q8),
                                               (b"t\xffcol", (5, 1), F16)], ALL_TYPES + ODD_VALUES)))
    out.append(_seed("all-types-v2-align64", laid_out([(b"a", (64,), Q8), (b"b", (3,), F32)], ALL_TYPES,
                                                      alignment=64, version=2)))
    with open(write_meta(str(d / "deepseek2.gguf"), "deepseek2"), "rb") as f:
        out.append(_seed("meta-deepseek2", f.read()))
    (spm,) = [f for f in vocab_files if f.endswith("ggml-vocab-llama-spm.gguf")]
    with open(spm, "rb") as f:
        full = f.read()
    out.append(_seed("vocab-64k", full[:65536], full))
    return out


N_MUTANTS = 1000


def test_oracle_agrees_on_fuzzed_corpus(bin_dir, fuzz_seeds, tmp_path):
    """Mutated, truncated and spliced headers (test_fuzz's strategy, derandomized: the same
    corpus every run): ggml and ggufrope accept and refuse the same files, and agree on every
    value, except for the documented differences."""
    corpus = [buf for _, buf, _ in fuzz_seeds]

    @fuzz(N_MUTANTS)
    @given(st.data())
    def collect(data):
        corpus.append(data.draw(mutated(fuzz_seeds)))

    collect()
    paths = []
    for i, buf in enumerate(corpus):
        p = str(tmp_path / f"m{i:04d}.gguf")
        with open(p, "wb") as f:
            f.write(buf)
        paths.append(p)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        docs = list(pool.map(lambda p: native.gguf_oracle(bin_dir, p), paths))
    counts: dict[str, int] = {}
    failures = []
    for i, (buf, doc) in enumerate(zip(corpus, docs)):
        try:
            assert not doc.get("signal") and not doc.get("ggml_abort"), doc
            v = verdict(buf, doc)
        except AssertionError as e:
            failures.append(f"{paths[i]}: {str(e)[:400]}")
            continue
        counts[v] = counts.get(v, 0) + 1
    # the failing files stay in pytest's tmp_path for a look
    assert not failures, f"{len(failures)} of {len(corpus)} disagree ({counts}):\n" + "\n".join(failures[:10])
    for i in range(len(fuzz_seeds)):  # the seeds themselves are accepted by both
        assert verdict(corpus[i], docs[i]) in ("agree-accept", "agree-reject")
    assert counts.get("agree-accept", 0) >= 40 and counts.get("agree-reject", 0) >= 40, counts
    print(f"\noracle corpus: {len(corpus)} files: {counts}")
