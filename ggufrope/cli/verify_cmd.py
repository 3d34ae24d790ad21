"""`ggufrope verify MODEL`: llama.cpp's own reading of the model against ggufrope's."""
from __future__ import annotations

from typing import Optional

import typer

from ggufrope.cli.output import echo, note, print_json, table
from ggufrope.errors import UsageError

commands = typer.Typer()  # top-level commands; cli/app.py mounts them


def _text(v, layers: bool = False) -> str:
    """A value as the table shows it; layers: a list of layer indices, shown as ranges."""
    if v is None:
        return "-"
    if isinstance(v, float):
        from ggufrope.settings import fmt_float
        return fmt_float(v)
    if isinstance(v, list) and layers:
        from ggufrope.report import layer_ranges
        return layer_ranges(v) or "none"
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v)
    return str(v).lower() if isinstance(v, bool) else str(v)


@commands.command("verify")
def verify_cmd(
    model: str = typer.Argument(..., help="GGUF model."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context for the effective values (default: trained)."),
    rope_scaling: Optional[str] = typer.Option(None, "--rope-scaling", help="Runtime flag, as llama.cpp's."),
    rope_scale: Optional[float] = typer.Option(None, "--rope-scale", help="Runtime flag, as llama.cpp's."),
    rope_freq_base: Optional[float] = typer.Option(None, "--rope-freq-base", help="Runtime flag, as llama.cpp's."),
    yarn_orig_ctx: Optional[int] = typer.Option(None, "--yarn-orig-ctx", help="Runtime flag, as llama.cpp's."),
    yarn_ext_factor: Optional[float] = typer.Option(None, "--yarn-ext-factor", help="Runtime flag."),
    yarn_attn_factor: Optional[float] = typer.Option(None, "--yarn-attn-factor", help="Runtime flag."),
    yarn_beta_fast: Optional[float] = typer.Option(None, "--yarn-beta-fast", help="Runtime flag."),
    yarn_beta_slow: Optional[float] = typer.Option(None, "--yarn-beta-slow", help="Runtime flag."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Load the model's metadata in llama.cpp (ggufrope-probe, no tensor memory) and check every
    RoPE value it resolved against the file and ggufrope's reading; show the effective values
    for --ctx and runtime flags. Exit 1 on any disagreement."""
    from ggufrope.build import native
    from ggufrope.build.ensure import ensure_build
    from ggufrope.model_facts import read_model_facts
    from ggufrope.models import resolve
    from ggufrope.settings import RopeSettings
    from ggufrope.settings.projection import settings_flags
    from ggufrope.verify import SWA_LAYERS, compare
    try:
        rope = RopeSettings(scaling_type=rope_scaling, scaling_factor=rope_scale, freq_base=rope_freq_base,
                            original_context_length=yarn_orig_ctx, yarn_ext_factor=yarn_ext_factor,
                            yarn_attn_factor=yarn_attn_factor, yarn_beta_fast=yarn_beta_fast,
                            yarn_beta_slow=yarn_beta_slow)
    except UsageError as e:
        raise UsageError(f"{model}: {e}") from None
    path = resolve(model, log=note)
    facts = read_model_facts(path)
    res = ensure_build(log=note)
    doc = native.probe(res.bin_dir, path, rope=rope, ctx=ctx)
    rows = compare(facts, doc, rope)
    bad = [r for r in rows if not r.ok]
    if as_json:
        print_json({"model": path, "llama_cpp": res.source.commit, "rows": [r.__dict__ for r in rows],
                    "effective": doc.get("effective"), "ok": not bad})
    else:
        echo(f"{path}: llama.cpp {res.source.commit} (ggufrope-probe) against ggufrope's reading")
        echo(table([["", "file", "ggufrope expects", "llama.cpp resolved", ""]] +
                   [[r.what, _text(r.file), _text(r.expected, r.what == SWA_LAYERS),
                     _text(r.engine, r.what == SWA_LAYERS) if r.reported else "(not reported)",
                     "ok" if r.ok else "DIFFERS" if r.reported else "MISSING"] for r in rows]))
        eff = doc.get("effective")
        if eff:
            flags = " ".join(settings_flags(rope))
            echo(f"effective at n_ctx {eff['n_ctx']}{' with ' + flags if flags else ''}:")
            keys = ["rope_scaling_type", "freq_base", "freq_scale", "n_ctx_orig_yarn", "yarn_ext_factor",
                    "yarn_attn_factor", "yarn_beta_fast", "yarn_beta_slow", "yarn_corr_dims", "n_ctx_train_after"]
            echo(table([[k, _text(eff.get(k))] for k in keys if k in eff]))
        missing = sum(not r.reported for r in bad)
        echo("all values agree" if not bad else
             f"{len(bad) - missing} value(s) differ" + (f", {missing} not reported by llama.cpp" if missing else ""))
    raise typer.Exit(1 if bad else 0)
