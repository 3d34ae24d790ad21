"""What a finished CUDA build holds, read from its libggml-cuda.so without a GPU.

- The flash-attention K/V pairs compiled in: each vector FA kernel is an instance of
  `flash_attn_ext_vec<D, ncols, type_K, type_V, softcap>` (ggml/src/ggml-cuda/fattn-vec.cuh, one
  template-instances/fattn-vec-instance-K-V.cu per pair), which `nm -C` lists with the types as
  ggml_type numbers. A pair that is not compiled falls back to a slow path at run time, so the
  build checks that it holds exactly the pairs the spec asks for (plus llama.cpp's defaults).
- Where the CUDA libraries resolve from (`ldd`): cuBLAS from the system or from ggufrope's
  PyPI cache, never "not found".
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Callable, Sequence

from ggufrope.build.spec import FA_TYPES, BuildSpec
from ggufrope.errors import BuildError

# ggml/include/ggml.h, enum ggml_type
GGML_TYPE_IDS = {"f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "bf16": 30}
_BY_ID = {str(v): k for k, v in GGML_TYPE_IDS.items()}
_T = r"(?:\(ggml_type\))?(\w+)"
_VEC = re.compile(r"flash_attn_ext_vec<\s*\d+,\s*\d+,\s*" + _T + r",\s*" + _T + r",\s*(?:true|false|[01])\s*>")
CUDA_LIB = "libggml-cuda.so"

Run = Callable[[Sequence[str]], str | None]


def _run(argv: Sequence[str]) -> str | None:
    try:
        r = subprocess.run(list(argv), capture_output=True, text=True, errors="replace", timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def _type_name(tok: str) -> str:
    if tok in _BY_ID:
        return _BY_ID[tok]
    name = tok.lower().removeprefix("ggml_type_")
    return name


def fa_pairs_in(symbols: str) -> tuple[str, ...]:
    """K-V pairs of the vector FA kernels named in `nm -C` output."""
    pairs = {f"{_type_name(k)}-{_type_name(v)}" for k, v in _VEC.findall(symbols)}
    return tuple(sorted(pairs))


def expected_pairs(spec: BuildSpec) -> tuple[str, ...]:
    if spec.fa_pairs == "all":
        return tuple(sorted(f"{k}-{v}" for k in FA_TYPES for v in FA_TYPES))
    return tuple(sorted(spec.fa_pairs))


def fa_kernels(lib: str, run: Run = _run) -> tuple[str, ...]:
    out = run(["nm", "-C", lib])
    if out is None:
        raise BuildError(f"{lib}: `nm -C` failed (binutils installed?); cannot list the FA kernels")
    pairs = fa_pairs_in(out)
    if not pairs:
        raise BuildError(f"{lib}: no flash_attn_ext_vec kernels in its symbols (stripped library?)")
    return pairs


def ldd(path: str, run: Run = _run) -> dict[str, str | None]:
    """soname -> resolved path (None: not found), for the CUDA libraries a binary needs."""
    out = run(["ldd", path]) or ""
    res: dict[str, str | None] = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(not found|\S+)", line)
        if m and re.match(r"lib(cublas|cublasLt|cudart|cuda)\.so", m.group(1)):
            res[m.group(1)] = None if m.group(2) == "not found" else m.group(2)
    return res


def inspect(bin_dir: str, spec: BuildSpec, run: Run = _run) -> dict:
    """The CUDA evidence a build records in its stamp; raises when it is wrong."""
    lib = os.path.join(bin_dir, CUDA_LIB)
    if not os.path.exists(lib):
        raise BuildError(f"{lib}: missing from a CUDA build")
    found = fa_kernels(lib, run)
    want = expected_pairs(spec)
    if found != want:
        extra = sorted(set(found) - set(want))
        lost = sorted(set(want) - set(found))
        raise BuildError(f"{lib}: FA kernels differ from the spec: "
                         + (f"missing {', '.join(lost)}" if lost else "")
                         + ("; " if lost and extra else "") + (f"unexpected {', '.join(extra)}" if extra else ""))
    libs = ldd(lib, run)
    unresolved = sorted(k for k, v in libs.items() if v is None and not k.startswith("libcuda.so"))
    if unresolved or not any(k.startswith("libcublas.so") for k in libs):
        raise BuildError(f"{lib}: {', '.join(unresolved) or 'libcublas'} not resolved by ldd "
                         f"({'; '.join(f'{k} => {v}' for k, v in libs.items())})")
    return {"lib": lib, "fa_kernels": list(found), "ldd": libs}
