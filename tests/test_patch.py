"""`ggufrope patch | restore | diff` through the real CLI; every written file is re-read by
gguf-py (the independent reader) with identical tensors and the intended metadata."""
import json
import os
import shutil

import pytest

from conftest import file_digest, gguf_py_metadata, run_cli, tensor_digests
from ggufrope.edit.history import HISTORY_KEY
from ggufrope.edit.plan import PAD_KEY
from ggufrope.gguf import read_header


def _meta_without_own(path):
    return {k: v for k, v in gguf_py_metadata(path).items() if not k.startswith("ggufrope.")}


def test_yarn_patch_to_copy_sets_keys_and_context(tiny_model, tmp_path):
    src = tiny_model()
    before_digest = file_digest(src)
    out = str(tmp_path / "out.gguf")
    r = run_cli("patch", src, "-o", out, "--rope-scaling", "yarn", "--rope-scale", "4", check=True)
    assert "streaming copy" in r.stdout
    assert file_digest(src) == before_digest  # source untouched
    meta = gguf_py_metadata(out)
    assert meta["llama.rope.scaling.type"] == "yarn"
    assert meta["llama.rope.scaling.factor"] == 4.0
    assert meta["llama.rope.scaling.original_context_length"] == 256
    assert meta["llama.context_length"] == 1024  # factor x original, so llama-server does not cap
    assert tensor_digests(out) == tensor_digests(src)
    # new file carries reserved header space for later in-place edits
    with read_header(out) as h:
        assert PAD_KEY in h.fields and h.fields[PAD_KEY].count == 1
        assert h.data_offset - h.infos_end + (h.fields[PAD_KEY].end - h.fields[PAD_KEY].value_start) > 8000


def test_types_are_what_llama_cpp_expects(tiny_model, tmp_path):
    import gguf
    out = str(tmp_path / "o.gguf")
    run_cli("patch", tiny_model(), "-o", out, "--rope-scaling", "yarn", "--rope-scale", "2",
            "--rope-freq-base", "20000", "--yarn-beta-fast", "16", check=True)
    r = gguf.GGUFReader(out)
    types = {k: f.types[0] for k, f in r.fields.items()}
    V = gguf.GGUFValueType
    assert types["llama.context_length"] == V.UINT32
    assert types["llama.rope.scaling.original_context_length"] == V.UINT32
    assert types["llama.rope.freq_base"] == V.FLOAT32
    assert types["llama.rope.scaling.factor"] == V.FLOAT32
    assert types["llama.rope.scaling.type"] == V.STRING
    assert types["llama.rope.scaling.yarn_beta_fast"] == V.FLOAT32


def test_in_place_after_copy_stays_in_place(tiny_model, tmp_path):
    out = str(tmp_path / "o.gguf")
    run_cli("patch", tiny_model(), "-o", out, "--rope-scaling", "linear", "--rope-scale", "2", check=True)
    ino = os.stat(out).st_ino
    digests = tensor_digests(out)
    r = run_cli("patch", out, "--in-place", "--rope-scaling", "yarn", "--rope-scale", "8",
                "--set", "general.name=str:" + "x" * 2000, check=True)
    assert "in place" in r.stdout
    assert os.stat(out).st_ino == ino  # same file, not a copy
    meta = gguf_py_metadata(out)
    assert meta["llama.rope.scaling.factor"] == 8.0 and meta["general.name"] == "x" * 2000
    assert meta["llama.context_length"] == 2048  # original stays 256
    assert tensor_digests(out) == digests


def test_same_size_edit_in_place_on_a_gguf_py_file(tiny_model):
    src = tiny_model()
    digests = tensor_digests(src)
    r = run_cli("patch", src, "--in-place", "--rope-freq-base", "500000", check=True)
    assert "in place" in r.stdout
    assert gguf_py_metadata(src)["llama.rope.freq_base"] == 500000.0
    assert tensor_digests(src) == digests
    # no spare header space for the undo record: said plainly, with the old value
    assert "cannot undo" in r.stderr and "llama.rope.freq_base was 10000" in r.stderr


def test_growing_in_place_falls_back_to_atomic_copy(tiny_model):
    src = tiny_model()
    digests = tensor_digests(src)
    r = run_cli("patch", src, "--in-place", "--rope-scaling", "yarn", "--rope-scale", "4", check=True)
    assert "streaming copy" in r.stdout
    assert gguf_py_metadata(src)["llama.rope.scaling.type"] == "yarn"
    assert tensor_digests(src) == digests
    assert not [f for f in os.listdir(os.path.dirname(src)) if "ggufrope-" in f]


def test_restore_undoes_everything_even_after_copying_the_file(tiny_model, tmp_path):
    src = tiny_model()
    original = _meta_without_own(src)
    out = str(tmp_path / "o.gguf")
    run_cli("patch", src, "-o", out, "--rope-scaling", "yarn", "--rope-scale", "4",
            "--set", "general.name=str:renamed", "--remove", "llama.rope.dimension_count", check=True)
    run_cli("patch", out, "--in-place", "--rope-freq-base", "1e6", check=True)
    moved = str(tmp_path / "elsewhere" / "moved.gguf")
    os.makedirs(os.path.dirname(moved))
    shutil.copy(out, moved)
    r = run_cli("restore", moved, check=True)
    assert "in place" in r.stdout
    assert _meta_without_own(moved) == original
    assert HISTORY_KEY not in gguf_py_metadata(moved)
    assert tensor_digests(moved) == tensor_digests(src)
    r = run_cli("restore", moved)
    assert r.returncode != 0 and "nothing to restore" in r.stderr


def test_diff_lists_changes_and_exit_codes(tiny_model, tmp_path):
    src = tiny_model()
    out = str(tmp_path / "o.gguf")
    run_cli("patch", src, "-o", out, "--rope-freq-base", "20000", check=True)
    r = run_cli("diff", src, out, "--json")
    assert r.returncode == 1
    keys = {row["key"]: row for row in json.loads(r.stdout)}
    assert keys["llama.rope.freq_base"]["a"] == "10000" and keys["llama.rope.freq_base"]["b"] == "20000"
    assert run_cli("diff", src, src).returncode == 0


def test_dry_run_writes_nothing(tiny_model):
    src = tiny_model()
    d = file_digest(src)
    r = run_cli("patch", src, "--rope-scaling", "yarn", "--rope-scale", "4", "--dry-run", check=True)
    assert "would change" in r.stdout and "llama.rope.scaling.factor" in r.stdout
    assert file_digest(src) == d


@pytest.mark.parametrize("args,expect", [
    pytest.param(["--set", "llama.context_length=int:4096"], {"llama.context_length": 4096}, id="override-kv-int"),
    pytest.param(["--set", "llama.rope.freq_base=float:1e6"], {"llama.rope.freq_base": 1e6}, id="override-kv-float"),
    pytest.param(["--set", "my.flag=bool:true"], {"my.flag": True}, id="new-bool"),
    pytest.param(["--set", "my.count=u64:5"], {"my.count": 5}, id="explicit-gguf-type"),
    pytest.param(["--set", "tokenizer.chat_template=str:{{ x }}"], {"tokenizer.chat_template": "{{ x }}"},
                 id="chat-template"),
    pytest.param(["--ctx", "1000"], {"llama.context_length": 1000}, id="ctx"),
    pytest.param(["--rope-scaling", "linear", "--rope-scale", "2", "--ctx", "300"],
                 {"llama.context_length": 300, "llama.rope.scaling.factor": 2.0}, id="factor-with-explicit-ctx"),
])
def test_set_values(tiny_model, tmp_path, args, expect):
    out = str(tmp_path / "o.gguf")
    run_cli("patch", tiny_model(), "-o", out, *args, check=True)
    meta = gguf_py_metadata(out)
    for k, v in expect.items():
        assert meta[k] == pytest.approx(v) if isinstance(v, float) else meta[k] == v


def test_wrong_stored_rope_type_is_fixed(tmp_path):
    """A u64 context_length makes llama.cpp refuse the file; patch rewrites it as u32."""
    import gguf
    from conftest import write_tiny_llama
    p = write_tiny_llama(str(tmp_path / "t.gguf"))
    # rewrite context_length as u64 with gguf-py's writer semantics: build a second file
    q = str(tmp_path / "u64.gguf")
    r = gguf.GGUFReader(p)
    w = gguf.GGUFWriter(q, "llama")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if k == "llama.context_length":
            w.add_uint64(k, 256)
        else:
            w.add_key_value(k, f.contents(), f.types[0], f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        w.add_tensor(t.name, t.data, raw_shape=None)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    rep = json.loads(run_cli("inspect", q, "--json", check=True).stdout)
    row = next(x for x in rep["rope"] if x["key"] == "llama.context_length")
    assert row["type_ok"] is False and row["stored_type"] == "UINT64"
    res = run_cli("patch", q, "--in-place", "--set", "llama.context_length=int:512", check=True)
    assert "rewriting it as UINT32" in res.stderr
    assert gguf.GGUFReader(q).fields["llama.context_length"].types[0] == gguf.GGUFValueType.UINT32


def test_per_architecture_warnings(tiny_model, tmp_path):
    out = str(tmp_path / "o.gguf")
    r = run_cli("patch", tiny_model(), "-o", out, "--rope-scaling", "yarn", "--rope-scale", "2",
                "--yarn-beta-fast", "8", check=True)
    assert "llama.rope.scaling.yarn_beta_fast: written, but llama.cpp does not read it for 'llama'" in r.stderr
    assert "--yarn-beta-fast" in r.stderr
    rep = json.loads(run_cli("inspect", out, "--json", check=True).stdout)
    row = next(x for x in rep["rope"] if x["key"].endswith("yarn_beta_fast"))
    assert row["value"] == 8.0 and row["read_by_llama_cpp"] is False


def test_vocab_file_in_place_and_copy(vocab_files, tmp_path):
    """Real files from llama.cpp (no tensors): edits round-trip through gguf-py."""
    (src,) = [f for f in vocab_files if f.endswith("llama-spm.gguf")]
    p = str(tmp_path / "v.gguf")
    shutil.copy(src, p)
    before = gguf_py_metadata(p)
    run_cli("patch", p, "--in-place", "--set", "general.name=str:patched-vocab", check=True)
    after = gguf_py_metadata(p)
    assert after["general.name"] == "patched-vocab"
    assert {k: v for k, v in after.items() if not k.startswith("ggufrope.") and k != "general.name"} == \
           {k: v for k, v in before.items() if k != "general.name"}
    run_cli("restore", p, check=True)
    assert _meta_without_own(p) == before


def test_split_model(tiny_model, tmp_path):
    """Metadata is edited in the first split; inspect reports all splits."""
    src = tiny_model()
    # a split pair made by copying: split 1 has the metadata, split 2 is another valid file
    a = str(tmp_path / "m-00001-of-00002.gguf")
    b = str(tmp_path / "m-00002-of-00002.gguf")
    shutil.copy(src, a)
    shutil.copy(src, b)
    rep = json.loads(run_cli("inspect", a, "--json", check=True).stdout)
    assert len(rep["splits"]) == 2
    assert rep["tensor_count"] == 2 * len(read_header(src).tensors)
    r = run_cli("patch", b, "--in-place", "--rope-freq-base", "5e5")
    assert r.returncode != 0 and "first split" in r.stderr and "m-00001-of-00002.gguf" in r.stderr
    run_cli("patch", a, "--in-place", "--rope-freq-base", "5e5", check=True)
    assert gguf_py_metadata(a)["llama.rope.freq_base"] == 500000.0


def test_inspect_reports_what_a_user_needs(smollm2):
    rep = json.loads(run_cli("inspect", smollm2, "--json", check=True).stdout)
    assert rep["architecture"] == "llama" and rep["trained_context"] == 8192
    assert rep["head_dim_k"] == 64 and rep["n_layer"] == 30 and rep["n_head_kv"] == 3
    assert rep["file_type"] == "MOSTLY_Q4_1" and rep["tensor_count"] == 272
    # 30 layers x 3 KV heads x 64 x (K+V) x 2 bytes x 1024
    assert rep["kv_cache_bytes_per_1k"]["f16"] == 30 * 3 * 64 * 2 * 2 * 1024
    freq = next(x for x in rep["rope"] if x["key"] == "llama.rope.freq_base")
    assert freq["value"] == 100000.0
    text = run_cli("inspect", smollm2, check=True).stdout
    assert "trained context" in text and "absent:" in text
    allk = run_cli("inspect", smollm2, "--all", check=True).stdout
    assert "tokenizer.ggml.tokens" in allk and "STRING x 49152" in allk


@pytest.mark.parametrize("src_off,dst_off,n", [
    pytest.param(3680, 3680 + 20480, 5 * 4096 + 777, id="aligned-middle"),     # head, O_DIRECT middle, tail
    pytest.param(0, 8192, 3 * 4096, id="no-head-no-tail"),
    pytest.param(100, 300, 2 * 4096 + 5, id="offsets-disagree"),               # kernel copy only
    pytest.param(4000, 4000, 50, id="head-only"),
])
@pytest.mark.parametrize("direct", [True, False], ids=["o-direct", "no-o-direct"])
def test_copy_range_moves_exact_bytes(tmp_path, monkeypatch, src_off, dst_off, n, direct):
    """The tensor-data copy (clone, else O_DIRECT from the source's page cache, else
    copy_file_range) writes exactly the source's bytes at the new offset, also on a file
    system that refuses O_DIRECT, and reports progress up to the total."""
    from ggufrope.edit import apply
    if not direct:
        monkeypatch.setattr(apply, "_direct_copy", lambda *a: 0)
    data = os.urandom(src_off + n + 1000)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    sfd = os.open(src, os.O_RDONLY)
    dfd = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o600)
    seen = []
    try:
        os.write(dfd, b"h" * dst_off)
        apply._copy_range(sfd, dfd, src_off, dst_off, n, lambda done, total: seen.append((done, total)))
    finally:
        os.close(sfd)
        os.close(dfd)
    assert dst.read_bytes() == b"h" * dst_off + data[src_off:src_off + n]
    assert seen[-1] == (n, n) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def _patch_flag_cases():
    from ggufrope.gguf.constants import ValueType
    from ggufrope.settings.keys import ROPE_KEYS
    value = {ValueType.UINT32: ("512", "512"), ValueType.FLOAT32: ("2.5", "2.5"), ValueType.STRING: ("yarn", '"yarn"')}
    return [pytest.param(rk.patch_flag, rk.suffix, *value[rk.vtype], id=rk.field) for rk in ROPE_KEYS if rk.patch_flag]


@pytest.mark.parametrize("flag,suffix,given,shown", _patch_flag_cases())
def test_each_patch_flag_of_the_key_table_writes_its_key(tiny_model, flag, suffix, given, shown):
    """The key table's patch_flag column is what `ggufrope patch` takes (plan's patch command is
    built from it): each flag writes its key (a factor also writes the context it reaches)."""
    r = run_cli("patch", tiny_model(n_ctx=256), "--dry-run", "--json", flag, given, check=True)
    changes = {c["key"]: c["after"] for c in json.loads(r.stdout)["changes"]}
    assert changes[f"llama.{suffix}"] == shown
