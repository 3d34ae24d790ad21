"""`ggufrope tune MODEL --ctx N`: search RoPE parameters for the lowest perplexity at N tokens
within a budget of llama-perplexity runs, starting from `plan`'s default YaRN.

Search space (llama.cpp runtime flags only; the model is never touched):
  beta_fast    --yarn-beta-fast          8 16 24 32 48 64
  beta_slow    --yarn-beta-slow          0.25 0.5 1 2 4
  attn_factor  rope.scaling.attn_factor  0.85 0.9 0.95 1 1.05 1.1 1.15, through --override-kv:
               llama.cpp recomputes the YaRN magnitude 0.1 ln s + 1 itself and overwrites
               --yarn-attn-factor whenever ext_factor != 0 (src/llama-context.cpp), so the file
               key, which multiplies the final factor, is the knob that works
  ntk_base     the NTK-aware base (scaling type none) x 0.5 0.71 1 1.41 2 4: NTK's one parameter
Coordinate search: evaluation 1 is the plan's YaRN (the reference); then the axes are visited
in a seeded order, each trying the untried grid value nearest the current best (so the search
widens out from the default), until the budget is spent. Each candidate is scored on text from
--text-offset (default 0.5: the second half of the corpus), so the independent `eval
perplexity` re-measurement at offset 0 scores the winner on text the search never saw."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ggufrope.errors import UsageError
from ggufrope.evaluation import engine
from ggufrope.evaluation.proc import Runner, run_tool
from ggufrope.model_facts import ModelFacts
from ggufrope.settings import RopeSettings, fmt_float
from ggufrope.settings.projection import Projection

GRID = {
    "beta_fast": (8.0, 16.0, 24.0, 32.0, 48.0, 64.0),
    "beta_slow": (0.25, 0.5, 1.0, 2.0, 4.0),
    "attn_factor": (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15),
    "ntk_base": (0.5, 0.71, 1.0, 1.41, 2.0, 4.0),
}
YARN_DEFAULT = {"beta_fast": 32.0, "beta_slow": 1.0, "attn_factor": 1.0}


@dataclass(frozen=True)
class Candidate:
    method: str                     # "yarn" | "ntk"
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attn_factor: float = 1.0
    ntk_mult: float = 1.0           # ntk: multiple of the NTK-aware base

    def label(self) -> str:
        if self.method == "ntk":
            return f"ntk base x{self.ntk_mult:g}"
        return f"yarn beta_fast {self.beta_fast:g} beta_slow {self.beta_slow:g} attn_factor {self.attn_factor:g}"


@dataclass
class Trial:
    candidate: Candidate
    settings: RopeSettings
    args: tuple[str, ...]
    ppl: float | None
    ppl_err: float | None
    seconds: float
    error: str | None = None


@dataclass
class TuneResult:
    ctx: int
    trials: list[Trial] = field(default_factory=list)

    @property
    def reference(self) -> Trial:
        return self.trials[0]

    @property
    def best(self) -> Trial:
        ok = [t for t in self.trials if t.ppl is not None]
        if not ok:
            raise UsageError("tune: no candidate produced a perplexity")
        return min(ok, key=lambda t: t.ppl)

    def gain_pct(self) -> float | None:
        """Perplexity reduction of the winner against plan's default YaRN, in percent."""
        ref, best = self.reference.ppl, self.best.ppl
        if ref is None or best is None:
            return None
        return 100.0 * (ref - best) / ref


def settings_for(facts, cand: Candidate, ctx: int) -> RopeSettings:
    from ggufrope.planning import recommend
    if cand.method == "ntk":
        from ggufrope.planning.recommend import ntk_base
        base = float(fmt_float(ntk_base(facts.freq_base, max(1.0, ctx / facts.trained_ctx), facts.n_dims)
                               * cand.ntk_mult))
        return RopeSettings(scaling_type="none", freq_base=base, original_context_length=facts.trained_ctx,
                            context_length=ctx)
    plan = recommend(facts, ctx, "yarn")
    if plan.settings is None or not plan.needed:
        raise UsageError(f"{facts.path}: --ctx {ctx} fits the trained context ({facts.trained_ctx}); "
                         f"there is no scaling to tune (give a context beyond it)")
    s = plan.settings
    extra: dict = {}
    if cand.beta_fast != YARN_DEFAULT["beta_fast"]:
        extra["yarn_beta_fast"] = cand.beta_fast
    if cand.beta_slow != YARN_DEFAULT["beta_slow"]:
        extra["yarn_beta_slow"] = cand.beta_slow
    if cand.attn_factor != YARN_DEFAULT["attn_factor"]:
        extra["attn_factor"] = cand.attn_factor
    return s.merged(RopeSettings(**extra)) if extra else s


def _nearest_untried(grid: tuple[float, ...], current: float, tried: set[float]) -> float | None:
    left = [v for v in grid if v not in tried]
    if not left:
        return None
    return min(left, key=lambda v: (abs(v - current) / max(abs(current), 1e-9), v))


def search(facts, ctx: int, budget: int, seed: int, evaluate: Callable[[Candidate, RopeSettings], Trial],
           on_trial: Callable[[int, Trial], None] = lambda i, t: None) -> TuneResult:
    """Coordinate search from plan's YaRN; `evaluate` runs one candidate."""
    if budget < 1:
        raise UsageError(f"--budget must be at least 1, not {budget}")
    res = TuneResult(ctx)
    seen: set[Candidate] = set()

    def run(c: Candidate) -> Trial:
        seen.add(c)
        s = settings_for(facts, c, ctx)
        t = evaluate(c, s)
        res.trials.append(t)
        on_trial(len(res.trials), t)
        return t

    run(Candidate("yarn"))
    axes = list(GRID)
    random.Random(seed).shuffle(axes)
    tried: dict[str, set[float]] = {"beta_fast": {32.0}, "beta_slow": {1.0}, "attn_factor": {1.0}, "ntk_base": set()}
    stalled = 0
    i = 0
    while len(res.trials) < budget and stalled < len(axes):
        axis = axes[i % len(axes)]
        i += 1
        ok = [t for t in res.trials if t.ppl is not None]
        best_yarn = min((t for t in ok if t.candidate.method == "yarn"), key=lambda t: t.ppl,
                        default=res.trials[0]).candidate
        if axis == "ntk_base":
            v = _nearest_untried(GRID[axis], 1.0, tried[axis])
            cand = None if v is None else Candidate("ntk", ntk_mult=v)
        else:
            cur = getattr(best_yarn, axis)
            v = _nearest_untried(GRID[axis], cur, tried[axis])
            cand = None
            if v is not None:
                kw = {k: getattr(best_yarn, k) for k in YARN_DEFAULT}
                kw[axis] = v
                cand = Candidate("yarn", **kw)
                if cand.beta_fast <= cand.beta_slow:
                    tried[axis].add(v)
                    continue
        if cand is None or cand in seen:
            if v is not None:
                tried[axis].add(v)
            stalled += 1
            continue
        stalled = 0
        tried[axis].add(v)
        run(cand)
    return res


def perplexity_evaluator(binaries: Mapping[str, str], model: str, text: str, ctx: int, chunks: int,
                         facts: ModelFacts, threads: int | None = None, runner: Runner = run_tool):
    def evaluate(c: Candidate, s: RopeSettings) -> Trial:
        # the same argv a preset with these settings would get (one projection)
        args = tuple(Projection(facts.arch, s, facts.current, facts.trained_ctx, ctx).rope_flags())
        try:
            r = engine.perplexity(binaries["llama-perplexity"], model, text, ctx, chunks, args, threads,
                                  runner=runner)
            return Trial(c, s, args, r.ppl, r.ppl_err, r.seconds)
        except Exception as e:  # a crashing candidate loses; the search goes on
            from ggufrope.errors import GgufropeError
            if not isinstance(e, GgufropeError):
                raise
            return Trial(c, s, args, None, None, 0.0, str(e))
    return evaluate


def preset_values(model: str, ctx: int, s: RopeSettings, gain: float | None, ref_ppl: float | None,
                  best_ppl: float | None) -> tuple[dict, list[str]]:
    """Dotted preset fields (the presets package's schema) and header comments."""
    vals: dict = {"description": f"tuned RoPE for {ctx} tokens (ggufrope tune)", "model": model, "ctx": ctx,
                  "apply": "runtime"}
    for k, v in s.as_dict().items():
        vals[f"rope.{k}"] = v
    head = [f"written by `ggufrope tune` for {ctx} tokens",
            f"perplexity at {ctx}: {best_ppl:.4f} (plan's default YaRN: {ref_ppl:.4f}; gain {gain:+.2f}%)"
            if gain is not None and best_ppl is not None and ref_ppl is not None else "perplexity: not measured"]
    return vals, head


def write_preset(path: str, model: str, ctx: int, s: RopeSettings, gain: float | None, ref_ppl: float | None,
                 best_ppl: float | None) -> str:
    """The winner as a preset TOML: through the presets package's writer when it is there, else a
    TOML with the same shape (top-level fields and a [rope] table)."""
    import os
    vals, head = preset_values(model, ctx, s, gain, ref_ppl, best_ppl)
    try:
        from ggufrope.presets.toml_write import preset_text
        text = preset_text(vals, header=head)
    except ImportError:
        text = _plain_toml(vals, head)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def _plain_toml(vals: dict, head: list[str]) -> str:
    import json

    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(v)
    out = [f"# {h}" for h in head] + [""]
    out += [f"{k} = {val(v)}" for k, v in vals.items() if "." not in k]
    out += ["", "[rope]"] + [f"{k.split('.', 1)[1]} = {val(v)}" for k, v in vals.items() if k.startswith("rope.")]
    return "\n".join(out) + "\n"
