"""Prepare, step 2: the RoPE settings. `rope.plan` first (planning is a pure function of the
model's facts, so nothing is read or cached here), the explicit `[rope]` fields over it, then
the checks that depend on the file (split models and apply = "patched", longrope tensors)."""
from __future__ import annotations

import hashlib
import os
from typing import Mapping

from ggufrope import paths
from ggufrope.errors import GgufropeError
from ggufrope.model_facts import ModelFacts
from ggufrope.presets.checks import Finding
from ggufrope.presets.preset import Preset
from ggufrope.settings import RopeSettings


def plan_settings(p: Preset, m: ModelFacts) -> tuple[RopeSettings, list[str]]:
    """rope.plan as `ggufrope plan MODEL --ctx N --method M` makes it (without the per-pair
    effects, which only `plan` shows)."""
    from ggufrope.planning import make_plan
    method, target = p.rope_plan
    try:
        plan = make_plan(m, target, method)
    except GgufropeError as e:
        raise p.res.error("rope.plan", str(e)) from None
    return plan.settings or RopeSettings(), list(plan.notes)


def compose(p: Preset, m: ModelFacts) -> tuple[RopeSettings, list[Finding]]:
    """(the RoPE settings asked for, findings)."""
    findings: list[Finding] = []
    want = RopeSettings()
    if p.rope_plan is not None:
        want, notes = plan_settings(p, m)
        findings += [Finding("note", "rope.plan", n) for n in notes]
    want = want.merged(p.rope)
    if p.apply == "patched" and m.split:
        findings.append(Finding("error", "apply", "apply = \"patched\" does not handle split models yet "
                                                   "(only the first split holds metadata); use apply = \"runtime\""))
    longrope = want.scaling_type == "longrope" or (want.scaling_type is None and m.current.scaling_type == "longrope")
    if longrope and not any(t.startswith("rope_factors") for t in m.rope_tensors):
        findings.append(Finding("warning", "rope.scaling_type",
                                "longrope needs rope_factors_long/short tensors, which this file lacks"))
    return want, findings


def patched_path(model: str, file_part: RopeSettings, arch: str, env: Mapping[str, str]) -> str:
    """Where the patched copy for these keys lives (named by the model's identity and the keys)."""
    st = os.stat(model)
    key = hashlib.sha256(repr((os.path.realpath(model), st.st_size, st.st_mtime_ns,
                               sorted(file_part.to_override_kv(arch)))).encode()).hexdigest()[:12]
    stem = os.path.splitext(os.path.basename(model))[0]
    return os.path.join(paths.home(env), "patched", f"{stem}.{key}.gguf")
