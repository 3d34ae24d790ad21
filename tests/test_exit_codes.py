"""Exit codes 8 and 9 end to end through the CLI, and the build crash guard (build/smoke.py)
against real binaries: one that dies with SIGSEGV, one that fails, one that works.
(Exit 7, a write that does not read back, is driven through the CLI in test_injected_faults.py.)"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REAL_HOME, run_cli
from ggufrope.build.builder import BuildResult
from ggufrope.build.smoke import smoke_test
from ggufrope.build.source import SourceInfo
from ggufrope.build.spec import BuildSpec
from ggufrope.errors import BuildError

PROGRAMS = {
    "segfault": "int main(void) { volatile int *p = 0; return *p; }\n",
    "exit-3": '#include <stdio.h>\nint main(void) { fprintf(stderr, "llama: cannot run\\n"); return 3; }\n',
    "works": '#include <stdio.h>\nint main(void) { puts("a b c"); return 0; }\n',
}


def _built(tmp_path, program: str) -> BuildResult:
    """A build whose llama-completion is the compiled PROGRAMS[program] (a real ELF binary)."""
    cc = shutil.which("cc")
    assert cc, "a C compiler is needed to build llama.cpp, and here to build the crashing binary"
    d = tmp_path / "build"
    (d / "bin").mkdir(parents=True)
    src = tmp_path / f"{program}.c"
    src.write_text(PROGRAMS[program])
    exe = str(d / "bin" / "llama-completion")
    subprocess.run([cc, "-O0", "-o", exe, str(src)], check=True, capture_output=True, timeout=120)
    source = SourceInfo(path=str(tmp_path), commit="test", build_number="0", has_fa_quants_option=True,
                        tree_hash="0")
    return BuildResult(dir=str(d), bin_dir=str(d / "bin"), spec=BuildSpec(), source=source,
                       binaries={"llama-completion": exe}, seconds=0.0, cached=False)


def test_crash_guard_reports_a_build_that_dies_with_sigsegv(tmp_path):
    res = _built(tmp_path, "segfault")
    with pytest.raises(BuildError) as e:
        smoke_test(res, timeout=120)
    assert e.value.exit_code == 9
    assert str(e.value) == (f"{res.dir}: this build crashes (SIGSEGV) running a tiny q8_0 model: broken CPU code "
                            f"for this host; build with the default portable CPU flags (--cpu portable)")


def test_crash_guard_reports_a_failing_binary(tmp_path):
    res = _built(tmp_path, "exit-3")
    with pytest.raises(BuildError) as e:
        smoke_test(res, timeout=120)
    assert str(e.value) == (f"{res.binaries['llama-completion']}: smoke test failed (exit 3) on a tiny q8_0 model:\n"
                            f"llama: cannot run")


def test_crash_guard_passes_a_working_binary(tmp_path):
    res = _built(tmp_path, "works")
    smoke_test(res, timeout=120)
    # it ran the binary on each smoke model, which it wrote into the build dir
    assert sorted(f for f in os.listdir(res.dir) if f.endswith(".gguf")) == ["smoke-q4_0.gguf", "smoke-q8_0.gguf"]


def test_exit_9_build_error_through_the_cli(llama_src):
    """A build that cannot start (no cmake on PATH): exit 9, one line that says what to do."""
    r = run_cli("build", "--source", llama_src, env_extra={"PATH": "/nonexistent"})
    assert r.returncode == 9, r.stderr
    assert r.stderr.strip().splitlines() == [
        "ggufrope: error: cmake not found: install cmake (>= 3.18); `ggufrope doctor` lists what is missing"]


def test_exit_8_fetch_error_through_the_cli():
    r = run_cli("fetch", "no-such-model")
    assert r.returncode == 8, r.stderr
    assert r.stderr.strip().splitlines() == [
        "ggufrope: error: no-such-model: unknown model name (known: smollm2)"]


def test_fetch_prints_the_cached_path(smollm2):
    """`ggufrope fetch` (default smollm2) on a warm cache: the path, verified, nothing downloaded."""
    r = run_cli("fetch", env_extra={"GGUFROPE_HOME": REAL_HOME}, check=True)
    assert r.stdout.strip() == smollm2 and os.path.getsize(smollm2) > 0
    r = run_cli("fetch", "smollm2", env_extra={"GGUFROPE_HOME": REAL_HOME}, check=True)
    assert r.stdout.strip() == smollm2
