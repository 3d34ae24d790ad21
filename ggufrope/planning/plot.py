"""`ggufrope plan --plot out.png`: wavelength of every dimension pair before and after scaling,
against the trained and target contexts, with the chosen method's pairs coloured by regime
(extrapolated / ramped / interpolated) and the other methods alongside. matplotlib is
imported here only, with the Agg backend (no display needed)."""
from __future__ import annotations

import math

from ggufrope.errors import FileAccessError, UsageError
from ggufrope.planning.recommend import METHODS, Plan, method_frequencies

REGIME_COLORS = {"extrapolated": "#1f77b4", "ramped": "#ff7f0e", "interpolated": "#2ca02c"}
METHOD_STYLE = {"yarn": ("#d62728", "-"), "linear": ("#9467bd", "--"), "ntk": ("#8c564b", "-."),
                "dynamic": ("#17becf", ":")}
METHOD_LABEL = {"yarn": "YaRN", "linear": "linear (PI)", "ntk": "NTK-aware base", "dynamic": "dynamic NTK (HF, at target)"}


def plot_plan(plan: Plan, path: str) -> str:
    if not path.lower().endswith(".png"):
        raise UsageError(f"{path}: --plot writes a PNG; give a path ending in .png")
    try:
        import matplotlib
    except ImportError:
        raise UsageError(f"{path}: --plot needs matplotlib (./bootstrap installs it)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    eff = plan.effects
    idx = np.arange(eff["n_pairs"])
    wl0 = np.asarray(eff["wavelength_trained"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.6), gridspec_kw={"width_ratios": [1.25, 1]})
    fig.suptitle(_title(plan), fontsize=12)
    others = _draw_curves(plan, ax1, ax2, idx, wl0)
    _frame_wavelengths(plan, ax1)
    _frame_stretch(plan, ax2, legend=bool(others))
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise FileAccessError(f"{path}: cannot write the plot ({e.strerror or e})") from None
    finally:
        plt.close(fig)
    return path


def _title(plan: Plan) -> str:
    facts, T, N = plan.facts, plan.facts.trained_ctx, plan.target_ctx
    name = facts.path.rsplit("/", 1)[-1]
    if plan.needed:
        return (f"{name}: RoPE for {N:,} tokens (trained {T:,}, x{plan.factor:g}); chosen: "
                f"{METHOD_LABEL[plan.method]}" + ("" if plan.llama_cpp_native else " - not in llama.cpp"))
    return f"{name}: {N:,} tokens fit the trained context ({T:,}): no scaling needed"


def _draw_curves(plan: Plan, ax1, ax2, idx, wl0) -> list[str]:
    """Each method's wavelengths (left) and stretch (right), the chosen one bold with its pairs
    coloured by regime; returns the other methods drawn."""
    import numpy as np
    facts, N, eff = plan.facts, plan.target_ctx, plan.effects
    ax1.semilogy(idx, wl0, color="black", lw=1.2, ls="--", label="trained (unscaled)", zorder=3)
    others = [m for m in METHODS if m != plan.method] if plan.needed else []
    for m in others:
        fr, _ = method_frequencies(facts, m, N)
        c, ls = METHOD_STYLE[m]
        ax1.semilogy(idx, 2 * math.pi / fr.inv_freq, color=c, ls=ls, lw=1.2, alpha=0.75, label=METHOD_LABEL[m])
        ax2.plot(idx, (2 * math.pi / fr.inv_freq) / wl0, color=c, ls=ls, lw=1.2, alpha=0.75,
                 label=METHOD_LABEL[m])
    if plan.needed:
        wl1 = np.asarray(eff["wavelength_scaled"])
        c, ls = METHOD_STYLE[plan.method]
        ax1.semilogy(idx, wl1, color=c, lw=2.6, label=f"{METHOD_LABEL[plan.method]} (chosen)", zorder=4)
        ax2.plot(idx, wl1 / wl0, color=c, lw=2.6, label=f"{METHOD_LABEL[plan.method]} (chosen)", zorder=4)
        for regime, pairs in eff["pairs"].items():
            if pairs:
                ax1.scatter(idx[pairs], wl1[pairs], s=30, color=REGIME_COLORS[regime], zorder=5,
                            edgecolor="white", linewidth=0.5, label=f"{regime} ({len(pairs)})")
                ax2.scatter(idx[pairs], (wl1 / wl0)[pairs], s=30, color=REGIME_COLORS[regime], zorder=5,
                            edgecolor="white", linewidth=0.5)
    return others


def _frame_wavelengths(plan: Plan, ax1) -> None:
    """The left panel: wavelengths (log), trained and target contexts as horizontal lines."""
    facts, T, N = plan.facts, plan.facts.trained_ctx, plan.target_ctx
    ax1.axhline(T, color="#555555", lw=1, ls=(0, (4, 2)))
    ax1.text(0.3, T * 1.12, f"trained context {T:,}", color="#555555", fontsize=8.5, va="bottom")
    if plan.needed:
        ax1.axhline(N, color="#d62728", lw=1, ls=(0, (4, 2)))
        ax1.text(0.3, N * 1.12, f"target context {N:,}", color="#d62728", fontsize=8.5, va="bottom")
    ax1.set_xlabel("dimension pair i (high frequency -> low frequency)")
    ax1.set_ylabel("wavelength 2*pi / theta_i (tokens, log scale)")
    ax1.set_title(f"wavelength per pair ({facts.n_dims} RoPE dims, base {facts.freq_base:g})", fontsize=10)
    ax1.grid(True, which="major", alpha=0.3)
    ax1.legend(fontsize=8, loc="upper left")


def _frame_stretch(plan: Plan, ax2, legend: bool) -> None:
    """The right panel: stretch = scaled / trained wavelength (1 = extrapolated, factor = interpolated)."""
    eff = plan.effects
    ax2.axhline(1.0, color="black", lw=1, ls="--")
    if plan.needed:
        ax2.axhline(plan.factor, color="#555555", lw=1, ls=(0, (4, 2)))
        ax2.text(0.3, plan.factor, f"x{plan.factor:g} = fully interpolated", color="#555555", fontsize=8.5,
                 va="bottom")
        llc = eff.get("llama_cpp")
        if plan.method == "yarn" and llc:
            lo, hi = llc["corr_dims"]
            ax2.axvspan(lo, hi, color=REGIME_COLORS["ramped"], alpha=0.12, lw=0)
            ax2.text((lo + hi) / 2, 0.97, f"YaRN ramp (correction dims {lo:g}-{hi:g})", ha="center",
                     va="top", fontsize=8, color="#a05000", transform=ax2.get_xaxis_transform())
    ax2.set_yscale("log", base=2)
    from matplotlib.ticker import FuncFormatter
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"x{v:g}"))
    ax2.set_xlabel("dimension pair i")
    ax2.set_ylabel("stretch: scaled / trained wavelength (log2)")
    ax2.set_title("how much each pair is interpolated (1 = extrapolated, unchanged)", fontsize=10)
    ax2.grid(True, alpha=0.3)
    if legend:
        ax2.legend(fontsize=8, loc="lower right")
