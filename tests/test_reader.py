"""The header codec against gguf-py's GGUFReader (the independent reader) on files written by
gguf-py and on the real vocab files shipped with llama.cpp."""
import os
import tracemalloc

import numpy as np
import pytest

import gguf
from conftest import write_tiny_llama
from ggufrope.errors import GGUFFormatError
from ggufrope.gguf import ValueType, encode_kv, read_header
from ggufrope.gguf.reader import parse_header


def _gguf_py_view(path):
    r = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = [(t.name, tuple(int(x) for x in t.shape), int(t.tensor_type), int(t.data_offset) - r.data_offset)
               for t in r.tensors]
    return meta, tensors, r.data_offset


def _ours(path):
    with read_header(path) as h:
        meta = {k: h.value(f) for k, f in h.fields.items()}
        tensors = [(t.name, t.shape, t.ggml_type, t.offset) for t in h.tensors]
        return meta, tensors, h.data_offset


def _assert_same(path):
    m1, t1, d1 = _gguf_py_view(path)
    m2, t2, d2 = _ours(path)
    assert m1.keys() == m2.keys()
    for k in m1:
        a, b = m1[k], m2[k]
        if isinstance(b, list) and b and isinstance(b[0], list):
            # gguf-py's contents() flattens nested arrays (its limitation); compare flat
            b = [x for sub in b for x in sub]
        if isinstance(a, float):
            assert np.float32(a) == np.float32(b) or (np.isnan(a) and np.isnan(b)), k
        else:
            assert a == b, k
    assert t1 == t2
    if t1:
        # without tensors ggml does not pad the data offset (gguf_init_from_reader) but gguf-py does
        assert d1 == d2


# gguf-py parses every token eagerly (seconds per file); a mix of SPM/BPE/WPM vocabularies
# is compared with it here, and every vocab file with ggml's own reader in the native tests.
GGUF_PY_VOCABS = ["llama-spm", "phi-3", "bert-bge", "gpt-2", "qwen2"]


@pytest.mark.parametrize("name", GGUF_PY_VOCABS)
def test_vocab_files_match_gguf_py(vocab_files, name):
    (p,) = [f for f in vocab_files if f.endswith(f"ggml-vocab-{name}.gguf")]
    _assert_same(p)


def test_every_vocab_file_parses(vocab_files):
    for p in vocab_files:
        with read_header(p) as h:
            assert h.get("general.architecture")
            assert h.fields["tokenizer.ggml.tokens"].count > 1000


def test_smollm2_matches_gguf_py(smollm2):
    _assert_same(smollm2)


@pytest.mark.parametrize("endian", [pytest.param(gguf.GGUFEndian.LITTLE, id="little"),
                                    pytest.param(gguf.GGUFEndian.BIG, id="big")])
def test_all_value_types(tmp_path, endian):
    p = str(tmp_path / "t.gguf")
    w = gguf.GGUFWriter(p, "llama", endianess=endian)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 0.1)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ccc"])
    w.add_array("t.arr_nested", [[1, 2], [3]])
    w.add_array("t.arr_empty", [])
    w.add_tensor("x", np.arange(64, dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    _assert_same(p)
    with read_header(p) as h:
        assert h.byteorder == ("<" if endian == gguf.GGUFEndian.LITTLE else ">")
        assert h.fields["t.arr_str"].item_type == ValueType.STRING and h.fields["t.arr_str"].count == 3
        assert h.value("t.arr_nested") == [[1, 2], [3]]
        # re-encoding every entry reproduces the raw bytes
        for k, f in h.fields.items():
            v = h.value(f)
            if f.vtype == ValueType.ARRAY and f.item_type == ValueType.ARRAY:
                continue
            assert encode_kv(k, f.vtype, v, h.byteorder, f.item_type) == h.raw_entry(k), k


def test_gguf_v2(tmp_path):
    p = write_tiny_llama(str(tmp_path / "v3.gguf"))
    data = bytearray(open(p, "rb").read())
    data[4:8] = (2).to_bytes(4, "little")
    with read_header_bytes(bytes(data)) as h:
        assert h.version == 2
        assert h.get("llama.context_length") == 256


def read_header_bytes(data: bytes):
    return parse_header(data, len(data))


def test_alignment_key(tmp_path):
    p = str(tmp_path / "a.gguf")
    w = gguf.GGUFWriter(p, "llama")
    w.add_custom_alignment(64)
    w.add_tensor("x", np.ones(7 * 16, dtype=np.float32))
    w.add_tensor("y", np.ones(16, dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    with read_header(p) as h:
        assert h.alignment == 64 and h.data_offset % 64 == 0
        assert [t.offset for t in h.tensors] == [0, 448]
    _assert_same(p)


def test_skipping_a_huge_string_array_builds_no_objects(tmp_path):
    """400k strings: parsing the header must not materialise them."""
    p = str(tmp_path / "big.gguf")
    w = gguf.GGUFWriter(p, "llama")
    w.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(400_000)])
    w.add_tensor("x", np.ones(32, dtype=np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    tracemalloc.start()
    h = read_header(p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert h.fields["tokenizer.ggml.tokens"].count == 400_000
    # 400k str objects would be > 20 MB; the index of a few fields is tiny
    assert peak < 2_000_000, peak
    h.close()


def test_truncated_and_garbage_raise_format_error(tmp_path):
    p = write_tiny_llama(str(tmp_path / "t.gguf"))
    data = open(p, "rb").read()
    with read_header(p) as h:
        cuts = [3, 10, 30, h.kv_end - 5, h.infos_end - 3, h.data_offset + 10]
    for cut in cuts:
        with pytest.raises(GGUFFormatError):
            parse_header(data[:cut], cut)
    with pytest.raises(GGUFFormatError, match="not a GGUF file"):
        parse_header(b"GGML" + data[4:], len(data))


def test_string_length_2_pow_60_does_not_allocate(tmp_path):
    p = write_tiny_llama(str(tmp_path / "t.gguf"))
    data = bytearray(open(p, "rb").read())
    with read_header(p) as h:
        f = h.fields["general.name"]
    data[f.value_start:f.value_start + 8] = (2**60).to_bytes(8, "little")
    with pytest.raises(GGUFFormatError, match="absurd length|past the end"):
        parse_header(bytes(data), len(data))


def test_directory_and_missing_file(tmp_path):
    from ggufrope.errors import FileAccessError
    with pytest.raises(FileAccessError, match="directory"):
        read_header(str(tmp_path))
    with pytest.raises(FileAccessError, match="no such file"):
        read_header(str(tmp_path / "nope.gguf"))
    assert not os.path.exists(tmp_path / "nope.gguf")
