"""ggufrope against the llama.cpp it builds: the CPU build runs models, the native tools
(docs/native.md) agree with what ggufrope writes, with ggufrope's table of which
architecture reads which RoPE key, and with ggufrope's RoPE math; the build cache and the
in-process engine use that build.

The build is the real cached one (~/.cache/ggufrope/builds/cpu-portable-*); on a machine
without it the `cpu_build` fixture builds it once (minutes).
(The GGUF parser against ggml's own reader is in test_native_fuzz.py.)
"""
from __future__ import annotations

import itertools
import json
import os
import shlex
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import REAL_HOME, REPO, run_cli
from ggufrope.build import native
from ggufrope.gguf import read_header
from ggufrope.rope import hparams_yarn_log_multiplier, resolve_llamacpp_rope
from ggufrope.settings.keys import BY_FIELD, ROPE_KEYS
from ggufrope.settings.rope_settings import RopeSettings

pytestmark = pytest.mark.slow


def f32(v) -> float:
    return float(np.float32(v))


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def cpu_build():
    """The default (portable CPU) build, from the real cache; built here if missing."""
    from ggufrope.build.ensure import ensure_build
    env = {k: v for k, v in os.environ.items() if k != "GGUFROPE_HOME"}
    return ensure_build(env={"GGUFROPE_HOME": REAL_HOME, **env})


@pytest.fixture(scope="session")
def bin_dir(cpu_build) -> str:
    return cpu_build.bin_dir


# Keys each architecture's loader insists on beyond the generic ones (src/models/<arch>.cpp),
# so that a metadata-only file (no tensors, no tokenizer) gets through load_hparams.
_MLA = {"attention.q_lora_rank": 16, "attention.kv_lora_rank": 16, "expert_feed_forward_length": 32,
        "expert_shared_count": 1}
_DSA = {**_MLA, "attention.indexer.head_count": 2, "attention.indexer.key_length": 32, "attention.indexer.top_k": 8}
ARCH_KEYS: dict[str, dict[str, int]] = {
    "deepseek2": _MLA,
    "deepseek32": {**_DSA, "expert_gating_func": 1},
    "glm-dsa": _DSA,
    "laguna": {"leading_dense_block_count": 1, "expert_feed_forward_length": 32},
}


def write_meta(path: str, arch: str, n_ctx: int = 4096, head_dim: int = 32, n_head: int = 2) -> str:
    """A metadata-only GGUF of `arch` (gguf-py): enough for ggufrope-probe's hparams and
    --which-keys (docs/native.md), not for a model load."""
    import gguf
    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(n_ctx)
    w.add_embedding_length(head_dim * n_head)
    w.add_block_count(2)
    w.add_feed_forward_length(128)
    w.add_head_count(n_head)
    w.add_head_count_kv(1)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_layer_norm_eps(1e-5)  # falcon's loader requires it
    for suffix, v in ARCH_KEYS.get(arch, {}).items():
        w.add_uint32(f"{arch}.{suffix}", v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def meta_file(tmp_path):
    def make(arch: str, **kw) -> str:
        return write_meta(str(tmp_path / f"meta-{arch}.gguf"), arch, **kw)
    return make


def patched(src: str, out: str, *flags: str) -> str:
    run_cli("patch", src, "-o", out, *flags, check=True)
    return out


# ---------------------------------------------------------------------------- 1. runs a model
@pytest.mark.parametrize("quant", [pytest.param(None, id="f32"), pytest.param("q8_0", id="q8_0")])
def test_llama_completion_runs_tiny_model(bin_dir, tiny_model, tmp_path, quant):
    """The brief's argv, plus a fixed seed, --ignore-eos (a random-weight model would otherwise
    stop at EOS now and then) and --prompt-cache-all as the evidence of the generated tokens.

    Not stdout or the perf lines: llama.cpp's logger is asynchronous and never flushed at a
    normal exit (common/log.cpp common_log_main, llama.cpp#22142), so for a run this short the
    generated text and the timings are often lost, exit status 0 (here: 8 of 8 runs in a row on
    a loaded machine, then none).  The session file is written synchronously before exit: magic 'ggsn', version, n,
    then the n tokens (src/llama-context.cpp state_save_file)."""
    model = tiny_model(quant=quant)
    session = str(tmp_path / "session.bin")
    argv = [os.path.join(bin_dir, "llama-completion"), "-m", model, "-p", "a b", "-n", "2", "--no-warmup",
            "-t", "2", "-no-cnv", "--seed", "1", "--ignore-eos", "--prompt-cache", session, "--prompt-cache-all"]
    r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=300,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(session, "rb") as f:
        buf = f.read()
    magic, version, n = struct.unpack_from("<III", buf)
    assert magic == 0x6767736E, hex(magic)
    tokens = struct.unpack_from(f"<{n}i", buf, 12)
    # BOS, "\u2581a", "\u2581b" (ids 1, 259, 260 of the tiny SPM vocab), then the 2 generated tokens
    assert tokens[:3] == (1, 259, 260), tokens
    assert len(tokens) == 5 and all(0 <= t < 285 for t in tokens[3:]), tokens


# ---------------------------------------------------------------------------- 2. probe vs patch
def expected_hparams(rs: RopeSettings, arch: str, head_dim: int) -> dict:
    """What llama.cpp's load_hparams makes of the file's RoPE keys (src/llama-model.cpp
    l.1405-1432, src/models/{grok,mistral3,deepseek2,deepseek32}.cpp), given which keys the
    arch reads according to ggufrope's table."""
    factor = rs.scaling_factor if rs.scaling_factor is not None else (rs.scale_linear or 0.0)
    out = {
        "n_ctx_train": rs.context_length,
        "rope_freq_base_train": f32(10000.0 if rs.freq_base is None else rs.freq_base),
        "rope_scaling_type": rs.scaling_type or "linear",
        "rope_freq_scale_train": 1.0 if f32(factor) == 0 else float(np.float32(1) / np.float32(factor)),
        "n_ctx_orig_yarn": rs.original_context_length or rs.context_length,
        "rope_attn_factor": f32(1.0 if rs.attn_factor is None else rs.attn_factor),
        "rope_finetuned": bool(rs.finetuned),
        "n_rot": rs.dimension_count or head_dim,
    }
    defaults = {"yarn_ext_factor": -1.0, "yarn_attn_factor": 1.0,
                "yarn_beta_fast": 8.0 if arch == "grok" else 32.0, "yarn_beta_slow": 1.0}
    for field, default in defaults.items():
        v = getattr(rs, field)
        out[field] = f32(v) if v is not None and BY_FIELD[field].read_for(arch) else default
    mul = rs.yarn_log_multiplier
    out["rope_yarn_log_mul"] = 0.0 if mul is None else f32(hparams_yarn_log_multiplier(mul, arch))
    return out


def assert_hparams(hp: dict, want: dict, context: str) -> None:
    for k, v in want.items():
        got = hp[k]
        if isinstance(v, float):
            assert np.float32(got) == np.float32(v), f"{context}: {k}: engine {got}, expected {v}"
        else:
            assert got == v, f"{context}: {k}: engine {got!r}, expected {v!r}"


def check_probe_sees_patch(bin_dir: str, path: str, head_dim: int, want: dict) -> dict:
    with read_header(path) as h:
        arch = h.get("general.architecture")
        rs = RopeSettings.from_metadata(h, arch)
    hp = native.probe(bin_dir, path)["hparams"]
    assert_hparams(hp, expected_hparams(rs, arch, head_dim), f"{path} as written")
    assert_hparams(hp, want, f"{path} as asked")
    return hp


LLAMA_PATCHES = [
    pytest.param(["--rope-scaling", "yarn", "--rope-scale", "4", "--yarn-orig-ctx", "256",
                  "--rope-freq-base", "500000"],
                 {"rope_scaling_type": "yarn", "rope_freq_scale_train": 0.25, "n_ctx_orig_yarn": 256,
                  "n_ctx_train": 1024, "rope_freq_base_train": 500000.0}, id="yarn-4x-base"),
    pytest.param(["--rope-scaling", "linear", "--rope-scale", "2", "--ctx", "1000"],
                 {"rope_scaling_type": "linear", "rope_freq_scale_train": 0.5, "n_ctx_train": 1000},
                 id="linear-2x-ctx"),
    pytest.param(["--rope-scaling", "none", "--ctx", "300"],
                 {"rope_scaling_type": "none", "rope_freq_scale_train": 1.0, "n_ctx_train": 300}, id="none"),
    pytest.param(["--rope-scaling", "yarn", "--rope-scale", "3", "--yarn-orig-ctx", "200", "--ctx", "600"],
                 {"rope_freq_scale_train": float(np.float32(1) / np.float32(3)), "n_ctx_orig_yarn": 200},
                 id="yarn-3x-f32-scale"),
    pytest.param(["--rope-freq-base", "12345.678"], {"rope_freq_base_train": f32(12345.678)},
                 id="fractional-base"),
    pytest.param(["--set", "llama.rope.scaling.attn_factor=float:0.75",
                  "--set", "llama.rope.scaling.finetuned=bool:true"],
                 {"rope_attn_factor": 0.75, "rope_finetuned": True}, id="attn-factor-finetuned"),
    pytest.param(["--set", "llama.rope.scale_linear=float:8"], {"rope_freq_scale_train": 0.125},
                 id="scale-linear-alone"),
    pytest.param(["--rope-scale", "4", "--set", "llama.rope.scale_linear=float:8"],
                 {"rope_freq_scale_train": 0.25}, id="scale-linear-shadowed-by-factor"),
    pytest.param(["--remove", "llama.rope.dimension_count"], {"n_rot": 32}, id="dimension-count-absent"),
]


@pytest.mark.parametrize("flags,want", LLAMA_PATCHES)
def test_probe_reports_what_patch_wrote(bin_dir, tiny_model, tmp_path, flags, want):
    out = patched(tiny_model(), str(tmp_path / "p.gguf"), *flags)
    check_probe_sees_patch(bin_dir, out, 32, want)


def test_probe_llama_dimension_count_must_be_head_dim(bin_dir, tiny_model, tmp_path):
    """llama requires rope.dimension_count == head_dim: the engine reads the value ggufrope
    wrote and refuses the load, naming it."""
    out = patched(tiny_model(), str(tmp_path / "p.gguf"), "--set", "llama.rope.dimension_count=int:16")
    with read_header(out) as h:
        assert h.get("llama.rope.dimension_count") == 16
    with pytest.raises(native.NativeToolError, match=r"invalid n_rot: 16, expected 32"):
        native.probe(bin_dir, out)


META_PATCHES = [
    pytest.param("mistral3", ["--rope-scaling", "yarn", "--rope-scale", "4", "--yarn-orig-ctx", "4096",
                              "--yarn-beta-fast", "16", "--yarn-beta-slow", "2", "--yarn-log-multiplier", "0.5"],
                 {"yarn_beta_fast": 16.0, "yarn_beta_slow": 2.0, "rope_yarn_log_mul": 0.5,
                  "yarn_ext_factor": -1.0}, id="mistral3-betas-log-mul"),
    pytest.param("grok", ["--rope-scaling", "yarn", "--rope-scale", "8", "--yarn-ext-factor", "0.5",
                          "--yarn-attn-factor", "0.8", "--yarn-beta-fast", "24", "--yarn-beta-slow", "1.5"],
                 {"yarn_ext_factor": 0.5, "yarn_attn_factor": 0.8, "yarn_beta_fast": 24.0, "yarn_beta_slow": 1.5,
                  "rope_freq_scale_train": 0.125}, id="grok-ext-attn-betas"),
    pytest.param("grok", ["--rope-scaling", "yarn", "--rope-scale", "2"], {"yarn_beta_fast": 8.0},
                 id="grok-beta-fast-default-8"),
    pytest.param("deepseek2", ["--rope-scaling", "yarn", "--rope-scale", "40", "--yarn-log-multiplier", "0.1"],
                 {"rope_yarn_log_mul": 1.0}, id="deepseek2-log-mul-0.1-reads-1"),
    pytest.param("deepseek2", ["--yarn-log-multiplier", "0.0707"],
                 {"rope_yarn_log_mul": float(np.float32(0.0707) / np.float32(0.1))}, id="deepseek2-log-mul-div"),
    pytest.param("deepseek32", ["--yarn-log-multiplier", "0.1"], {"rope_yarn_log_mul": 1.0},
                 id="deepseek32-log-mul"),
    # keys the table says llama does not read: written, but the engine keeps its defaults
    pytest.param("llama", ["--yarn-beta-fast", "16", "--yarn-beta-slow", "3", "--yarn-ext-factor", "0.5",
                           "--yarn-attn-factor", "0.7", "--yarn-log-multiplier", "0.5"],
                 {"yarn_beta_fast": 32.0, "yarn_beta_slow": 1.0, "yarn_ext_factor": -1.0, "yarn_attn_factor": 1.0,
                  "rope_yarn_log_mul": 0.0}, id="llama-ignores-yarn-keys"),
    # partial rotary: outside llama/deci/falcon the dimension count may be below head_dim
    pytest.param("qwen2", ["--set", "qwen2.rope.dimension_count=int:16"], {"n_rot": 16},
                 id="qwen2-partial-rotary"),
]


@pytest.mark.parametrize("arch,flags,want", META_PATCHES)
def test_probe_reports_patched_arch_keys(bin_dir, meta_file, tmp_path, arch, flags, want):
    out = patched(meta_file(arch), str(tmp_path / "p.gguf"), *flags)
    with read_header(out) as h:  # the patch wrote every key asked for, read or not
        written = RopeSettings.from_metadata(h, arch)
    for flag, field in (("--yarn-beta-fast", "yarn_beta_fast"), ("--yarn-log-multiplier", "yarn_log_multiplier"),
                        ("--yarn-ext-factor", "yarn_ext_factor")):
        if flag in flags:
            assert getattr(written, field) == f32(flags[flags.index(flag) + 1]), field
    check_probe_sees_patch(bin_dir, out, 32, want)


RUNTIME_CASES = [
    pytest.param("llama", RopeSettings(scaling_type="yarn", scaling_factor=4.0, original_context_length=256,
                                       freq_base=20000.0), id="llama-yarn-4x"),
    pytest.param("llama", RopeSettings(scaling_type="linear", scaling_factor=2.0), id="llama-linear-2x"),
    pytest.param("mistral3", RopeSettings(scaling_type="yarn", scaling_factor=4.0, original_context_length=256,
                                          yarn_beta_fast=16.0, yarn_beta_slow=2.0, yarn_log_multiplier=0.5,
                                          attn_factor=0.9), id="mistral3-yarn-4x-log-mul"),
]


def _patch_flags(rs: RopeSettings, arch: str) -> list[str]:
    flags = []
    for field, flag in (("scaling_type", "--rope-scaling"), ("scaling_factor", "--rope-scale"),
                        ("freq_base", "--rope-freq-base"), ("original_context_length", "--yarn-orig-ctx"),
                        ("yarn_beta_fast", "--yarn-beta-fast"), ("yarn_beta_slow", "--yarn-beta-slow"),
                        ("yarn_log_multiplier", "--yarn-log-multiplier")):
        v = getattr(rs, field)
        if v is not None:
            flags += [flag, str(v)]
    if rs.attn_factor is not None:
        flags += ["--set", f"{arch}.rope.scaling.attn_factor=float:{rs.attn_factor}"]
    return flags


@pytest.mark.parametrize("arch,rs", RUNTIME_CASES)
def test_runtime_flags_equal_patched_file(bin_dir, tiny_model, tmp_path, arch, rs):
    """The same settings as llama.cpp flags on the original file (projection.settings_flags,
    --override-kv for the flagless keys) and baked into the file by `ggufrope patch` give the
    same context at --ctx beyond the trained context."""
    src = tiny_model(arch=arch)
    out = patched(src, str(tmp_path / "p.gguf"), *_patch_flags(rs, arch))
    ctx = 2048
    flagged = native.probe(bin_dir, src, rope=rs, ctx=ctx, arch=arch)
    baked = native.probe(bin_dir, out, ctx=ctx)
    assert flagged["effective"] is not None, flagged.get("effective_error")
    eff_f, eff_b = dict(flagged["effective"]), dict(baked["effective"])
    # where the trained context comes from differs: the original file's 256 vs what the patch wrote
    patched_ctx = baked["hparams"]["n_ctx_train"]
    assert patched_ctx == 256 * rs.factor
    assert eff_f.pop("n_ctx_train_before") == 256
    assert eff_b.pop("n_ctx_train_before") == patched_ctx
    # llama.cpp raises n_ctx_train to orig / freq_scale at runtime only for YaRN (docs/native.md),
    # so with linear flags it stays the file's while the patched file says 256 * factor
    train_f, train_b = eff_f.pop("n_ctx_train_after"), eff_b.pop("n_ctx_train_after")
    assert train_b == patched_ctx
    assert train_f == (patched_ctx if rs.scaling_type == "yarn" else 256)
    assert eff_f == eff_b
    assert eff_f["n_ctx"] == ctx
    assert np.float32(eff_f["freq_scale"]) == np.float32(1) / np.float32(rs.factor)
    if rs.scaling_type == "yarn":
        # ggufrope's resolution of the op's attn factor is llama.cpp's
        want = resolve_llamacpp_rope(n_dims=32, n_ctx_orig=rs.original_context_length,
                                     freq_base=rs.freq_base or 10000.0, freq_scale=1 / rs.factor,
                                     scaling_type="yarn", yarn_log_multiplier=rs.yarn_log_multiplier or 0.0,
                                     rope_attn_factor=rs.attn_factor or 1.0, beta_fast=rs.yarn_beta_fast or -1,
                                     beta_slow=rs.yarn_beta_slow or -1, arch=arch, precision="float32")
        assert eff_f["yarn_attn_factor"] == pytest.approx(want.attn_factor, rel=1e-6)
        assert eff_f["yarn_ext_factor"] == want.ext_factor
        assert [f32(x) for x in eff_f["yarn_corr_dims"]] == [f32(x) for x in want.corr_dims]


def test_probe_args_pass_flagless_settings_with_arch():
    rs = RopeSettings(scaling_type="yarn", attn_factor=0.9, yarn_log_multiplier=0.5)
    assert "--override-kv" not in native.probe_args(rs)
    args = native.probe_args(rs, ctx=512, arch="mistral3")
    assert args[:2] == ["--ctx", "512"]
    assert "mistral3.rope.scaling.attn_factor=float:0.9" in args
    assert "mistral3.rope.scaling.yarn_log_multiplier=float:0.5" in args


# ---------------------------------------------------------------------------- 3. --which-keys
def assert_table_matches(doc: dict, arch: str, what: str) -> None:
    assert doc["ok"] and doc["arch"] == arch, doc
    assert set(doc["keys"]) == {rk.suffix for rk in ROPE_KEYS}, f"{what}: probe and table list different keys"
    wrong = {rk.suffix: {"engine_reads": doc["keys"][rk.suffix], "table_says": rk.read_for(arch)}
             for rk in ROPE_KEYS if doc["keys"][rk.suffix] != rk.read_for(arch)}
    assert not wrong, f"{what} ({arch}): ggufrope's ROPE_KEYS.read_by disagrees with the engine: {wrong}"


# glm-dsa and laguna use rope_yarn_log_mul in their graphs (or mention YaRN) but read no yarn key
WHICH_KEYS_ARCHS = ["llama", "qwen2", "phi3", "deepseek2", "deepseek32", "glm-dsa", "laguna", "grok", "mistral3",
                    "gemma", "gemma2", "falcon"]


@pytest.mark.parametrize("arch", [pytest.param(a, id=a) for a in WHICH_KEYS_ARCHS])
def test_which_keys_match_table(bin_dir, meta_file, arch):
    doc = native.which_keys(bin_dir, meta_file(arch))
    assert_table_matches(doc, arch, f"metadata-only {arch} file")


def test_which_keys_match_table_smollm2(bin_dir, smollm2):
    assert_table_matches(native.which_keys(bin_dir, smollm2), "llama", "SmolLM2")


def test_which_keys_scale_linear_shadowed_by_factor(bin_dir, tiny_model, tmp_path):
    """rope.scale_linear is only read without rope.scaling.factor; the probe removes the factor
    in memory to test it, and says so."""
    out = patched(tiny_model(), str(tmp_path / "p.gguf"), "--rope-scale", "2")
    doc = native.which_keys(bin_dir, out)
    assert_table_matches(doc, "llama", "tiny llama with a factor")
    assert doc["details"]["rope.scale_linear"]["shadowed_in_this_file"] is True


def without_tokenizer(path: str, out: str) -> str:
    """The file's metadata minus tokenizer.* (the vocab arrays only slow the probe's ~17 forked
    loads down: 30 s for all vocab files instead of 1 s), no tensors."""
    with read_header(path) as h:
        assert h.byteorder == "<" and not h.tensors
        entries = [h.raw_entry(k) for k in h.fields if not k.startswith("tokenizer.")]
    with open(out, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + b"".join(entries))
    return out


def test_which_keys_match_table_on_vocab_files(bin_dir, vocab_files, tmp_path):
    """The arch metadata of llama.cpp's own vocab files (llama, qwen2, phi3, falcon, bert, gpt2,
    gemma4, command-r, ...)."""
    seen = {}
    for path in vocab_files:
        name = os.path.basename(path)
        doc = native.which_keys(bin_dir, without_tokenizer(path, str(tmp_path / name)))
        assert_table_matches(doc, doc["arch"], name)
        seen[doc["arch"]] = name
    assert len(seen) >= 8, sorted(seen)


# ---------------------------------------------------------------------------- 5. rope angles
POSITIONS = [0, 1, 7, 100, 1000, 4095, 8191, 32767, 65535, 131071]
# theta is expected bit-identical (ggufrope.rope.angles replays ggml's float32 recurrence with
# FMA contraction); what remains is cosf/sinf (<= 1 ulp of values near 1: 6e-8 rad) and the
# tool printing atan2 as a float32 (half an ulp of pi: 1.2e-7). One ulp of theta at
# p = 131071 would be 7.8e-3 rad, so this bound fails on any difference in theta.
ANGLE_TOL = 3e-7


def wrap(theta64: np.ndarray) -> np.ndarray:
    """To (-pi, pi], in float64 (exact enough: |theta| * 2^-52)."""
    return np.pi - np.remainder(np.pi - theta64, 2 * np.pi)


def check_angles(bin_dir: str, p, mode: str = "norm", numpy_scalars: bool = False) -> None:
    conv = np.float32 if numpy_scalars else float
    d = native.rope_angles(bin_dir, n_dims=p.n_dims, positions=POSITIONS, freq_base=conv(p.freq_base),
                           freq_scale=conv(p.freq_scale), ext_factor=conv(p.ext_factor),
                           attn_factor=conv(p.attn_factor), beta_fast=conv(p.beta_fast),
                           beta_slow=conv(p.beta_slow), n_ctx_orig=p.n_ctx_orig, mode=mode)
    ours = p.angles(POSITIONS, precision="float32")
    theirs = np.array(d["angles"], dtype=np.float64)
    assert theirs.shape == ours.theta.shape
    diff = np.abs(wrap(theirs - wrap(ours.theta.astype(np.float64))))
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    assert diff.max() <= ANGLE_TOL, (f"angle differs by {diff.max():.3g} rad at position {POSITIONS[worst[0]]}, "
                                     f"pair {worst[1]} (ours theta {ours.theta[worst]!r})")
    mscale = np.array(d["mscale"])
    assert np.allclose(mscale, ours.mscale, rtol=1e-6, atol=0), (mscale.min(), mscale.max(), ours.mscale)
    assert ours.mscale == pytest.approx(p.mscale, rel=1e-6)
    if p.ext_factor != 0:
        assert [f32(x) for x in d["corr_dims"]] == [f32(x) for x in ours.corr_dims]


@pytest.mark.parametrize("stype,n_dims,base", [
    pytest.param(t, d, b, id=f"{t}-d{d}-base{b:g}")
    for t, d, b in itertools.product(["none", "linear", "yarn"], [64, 128], [1e4, 1e5, 5e5])])
def test_rope_angles_match_ggml(bin_dir, stype, n_dims, base):
    for factor, orig in itertools.product([2, 4, 8], [4096, 8192]):
        # the op's inputs as llama.cpp's context resolves them (ext_factor 1 for yarn, attn recomputed)
        p = resolve_llamacpp_rope(n_dims=n_dims, n_ctx_orig=orig, freq_base=base, freq_scale=1 / factor,
                                  scaling_type=stype, precision="float32")
        assert p.ext_factor == (1.0 if stype == "yarn" else 0.0)
        check_angles(bin_dir, p)


@pytest.mark.parametrize("kw", [
    pytest.param(dict(scaling_type="yarn", yarn_log_multiplier=0.1, arch="deepseek2", rope_attn_factor=0.8),
                 id="yarn-deepseek2-log-mul"),
    pytest.param(dict(scaling_type="yarn", beta_fast=8, beta_slow=2, ext_factor=0.5), id="yarn-half-ext-betas"),
    pytest.param(dict(scaling_type="linear", attn_factor=0.7), id="linear-attn"),
])
@pytest.mark.parametrize("mode", ["norm", "neox"])
def test_rope_angles_match_ggml_more(bin_dir, kw, mode):
    p = resolve_llamacpp_rope(n_dims=128, n_ctx_orig=4096, freq_base=1e6, freq_scale=1 / 16,
                              precision="float32", **kw)
    # numpy scalars as inputs once: the runner must turn them into plain numbers
    check_angles(bin_dir, p, mode=mode, numpy_scalars=(mode == "neox"))


# ---------------------------------------------------------------------------- 6. build cache
def test_ensure_build_again_is_cached_without_cmake(cpu_build, monkeypatch):
    from ggufrope.build.ensure import ensure_build
    log = os.path.join(cpu_build.dir, "build.log")
    stamp = os.path.join(cpu_build.dir, "build.json")
    before = [(os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in (log, stamp)]
    calls: list = []

    class Recording(subprocess.Popen):
        def __init__(self, args, *a, **kw):
            calls.append(args)
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    env = {k: v for k, v in os.environ.items() if k != "GGUFROPE_HOME"}
    again = ensure_build(env={"GGUFROPE_HOME": REAL_HOME, **env})
    assert again.cached is True
    assert (again.dir, again.bin_dir, again.binaries) == (cpu_build.dir, cpu_build.bin_dir, cpu_build.binaries)
    ran = [os.path.basename(str(c[0] if isinstance(c, (list, tuple)) else c)) for c in calls]
    assert not [r for r in ran if r in ("cmake", "ninja", "make")], ran
    assert [(os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in (log, stamp)] == before


def test_build_dry_run_prints_cmake_commands(cpu_build):
    r = run_cli("build", "--dry-run", env_extra={"GGUFROPE_HOME": REAL_HOME}, check=True)
    lines = [shlex.split(ln) for ln in r.stdout.strip().splitlines()]
    assert len(lines) == 2, r.stdout
    configure, build = lines
    bdir = os.path.join(cpu_build.dir, "build")
    assert configure[:5] == ["cmake", "-S", REPO, "-B", bdir]  # the cached build's own directory
    assert "-DGGML_NATIVE=OFF" in configure and "-DGGML_AVX2=ON" in configure
    assert f"-DLLAMA_CPP_DIR={cpu_build.source.path}" in configure
    assert build[:3] == ["cmake", "--build", bdir]
    targets = build[build.index("--target") + 1:]
    assert set(targets) == set(cpu_build.binaries)


# ---------------------------------------------------------------------------- 7. in-process engine
_ENGINE_SCRIPT = r"""
import json, sys
import llama_cpp
from llama_cpp import llama_cpp as lc
m = llama_cpp.Llama(sys.argv[1], n_ctx=64, n_threads=2, verbose=False)
toks = m.tokenize(b"a b")
m.eval(toks)
maps = open("/proc/self/maps").read().splitlines()
libs = sorted({ln.split()[-1] for ln in maps if "/libllama" in ln or "/libggml" in ln})
print(json.dumps({"lib": lc._lib._name, "mapped": libs, "n_tokens": m.n_tokens, "n_ctx_train": m._model.n_ctx_train()}))
"""


def test_engine_loads_libllama_from_build(bin_dir, tiny_model):
    import llama_cpp  # noqa: F401 (installed by ./bootstrap; absent = a failure, not a skip)
    model = tiny_model(quant="q8_0")
    r = subprocess.run([sys.executable, "-c", _ENGINE_SCRIPT, model], capture_output=True, text=True,
                       env=native.engine_env(bin_dir), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    real_bin = os.path.realpath(bin_dir)
    assert os.path.dirname(os.path.realpath(doc["lib"])) == real_bin, doc["lib"]
    # every libllama/libggml in the process is the build's (none from llama-cpp-python's wheel)
    assert doc["mapped"] and all(os.path.dirname(os.path.realpath(p)) == real_bin for p in doc["mapped"]), doc
    assert any(os.path.basename(p).startswith("libllama.so") for p in doc["mapped"])
    assert doc["n_tokens"] >= 3 and doc["n_ctx_train"] == 256


def test_tools_drain_their_log_at_exit_under_load(cpu_build, tiny_model, tmp_path):
    """native/log_flush.cpp: llama-perplexity's last line ("Final estimate") survives exit on a
    saturated machine. Without the drain, 34 of 40 such runs lost it here (llama.cpp#22142), so
    ten clean runs in a row do not happen by chance."""
    import random
    model = tiny_model(n_ctx=256)
    words = "the of and to in is was he for it with as his on be at by".split()
    rnd = random.Random(0)
    text = tmp_path / "text.txt"
    text.write_text(" ".join(rnd.choice(words) for _ in range(3000)))
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        lost = 0
        for _ in range(10):
            r = subprocess.run([cpu_build.binaries["llama-perplexity"], "-m", model, "-f", str(text), "-c", "128",
                                "-b", "128", "--chunks", "2", "--no-warmup", "-t", "2"],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr[-2000:]
            lost += "Final estimate" not in r.stdout + r.stderr
    finally:
        for p in spin:
            p.kill()
            p.wait()
    assert lost == 0, f"{lost} of 10 llama-perplexity runs lost their final line at exit"
