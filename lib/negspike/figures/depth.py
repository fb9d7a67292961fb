"""Figures of the layer diagnosis (:func:`negspike.depth.layer_diagnosis`), shared by the chapter
"Deep networks" (Net4) and the CIFAR-10 chapter (VGG-16, ResNet-18): per layer, the decoded
output's relative error against the ANN activation and the share of wrong-sign spikes. Below them,
the labels, tables, figures and prose of the chapter "Deep networks" (``book/depth.ipynb``)."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..plots import FIG_WIDTH, METHOD_COLORS

__all__ = ["layer_errors", "fluctuation", "depth_text", "NEURON_LABELS", "method_labels", "fluctuation_pivot",
           "fluctuation_text", "mechanism_text", "nearest_T", "wrong_sign_text", "own_vs_paper_text", "layer_table", "accuracy_table",
           "pairs_table", "accuracy_text", "accuracy", "rounding", "rounding_text"]


def layer_errors(diag: pd.DataFrame, T: int, labels: Mapping[str, str], title: str) -> Figure:
    """Relative error (top, log axis) and wrong-sign share (bottom) of every layer against its depth at
    ``T`` steps, one curve per value of ``diag["calibration"]`` (named by ``labels``), one column per
    model when ``diag`` has a ``model`` column."""
    d = diag[diag["T"] == T]
    models = list(dict.fromkeys(d["model"])) if "model" in d else [None]
    fig, axes = plt.subplots(2, len(models), figsize=(FIG_WIDTH, 6.4), squeeze=False, sharex="col")
    for j, model in enumerate(models):
        m = d if model is None else d[d["model"] == model]
        for key, g in m.groupby("calibration", sort=False):
            style = dict(marker=".", color=METHOD_COLORS.get(key), label=labels.get(key, key),
                         ls="--" if str(key).startswith("own") else "-")  # the book's own neuron: dashed
            axes[0, j].semilogy(g["depth"], g["rel_error"], **style)
            spiking = g[g["layer"] != "readout"]
            axes[1, j].plot(spiking["depth"], 100 * spiking["wrong_sign_share"], **style)
        axes[0, j].set(title=model or "", ylabel="relative error" if j == 0 else None)
        axes[1, j].set(xlabel="layer (input to output; last: readout)", ylabel="wrong-sign spikes (%)" if j == 0 else None)
        axes[1, j].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].legend(fontsize=8.5)
    fig.suptitle(f"{title}, T = {T}: decoded output against the ANN, layer by layer")
    return fig


def fluctuation(table: pd.DataFrame, labels: Mapping[str, str]) -> Figure:
    """Decoded output against the fluctuation amplitude for each mean input ``z`` (one panel per z), one
    curve per neuron, the target dashed (table of :func:`negspike.depth.fluctuation_table`)."""
    zs = sorted(table["z"].unique())
    fig, axes = plt.subplots(1, len(zs), figsize=(FIG_WIDTH, 4.0), squeeze=False)
    for ax, z in zip(axes[0], zs):
        t = table[table["z"] == z]
        for name, g in t.groupby("neuron", sort=False):
            ax.errorbar(g["amplitude"], g["decoded"], yerr=g["decoded_sd"], marker="o", ms=4, capsize=3,
                        color=METHOD_COLORS.get(name), label=labels.get(name, name))
        ax.axhline(t["target"].iloc[0], color="0.3", ls="--", lw=1, label="target: clip(LeakyReLU(z))")
        ax.set(title=f"mean input z = {z:g}", xlabel="fluctuation σ per step (input units)",
               ylabel="decoded output (output units)" if ax is axes[0][0] else None)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, fontsize=8.5)
    fig.suptitle(f"Same mean input, more fluctuation (T = {int(table['T'].iloc[0])}; bars: spread over inputs)")
    return fig


def depth_text(diag: pd.DataFrame, name_of=lambda key: key) -> str:
    """The layer diagnosis at its largest T in prose (Markdown): per model and SNN, the relative error
    of the first and last spiking layer and of the readout, and the wrong-sign share over the layers."""
    T = int(diag["T"].max())
    d = diag[diag["T"] == T]
    groups = d.groupby("model", sort=False) if "model" in d else [(None, d)]
    lines = []
    for model, m in groups:
        parts = []
        for key, g in m.groupby("calibration", sort=False):
            sp, ro = g[g["layer"] != "readout"], g[g["layer"] == "readout"]["rel_error"]
            parts.append(f"{name_of(key)}: relative error {sp['rel_error'].iloc[0]:.3f} in the first of {len(sp)} "
                         f"spiking layers, {sp['rel_error'].iloc[-1]:.3f} in the last, "
                         + (f"{ro.iloc[0]:.3f} at the readout; " if len(ro) else "")
                         + f"wrong-sign spikes {100 * sp['wrong_sign_share'].mean():.1f}% on average over the layers "
                         f"(largest {100 * sp['wrong_sign_share'].max():.1f}%)")
        lines.append((f"- **{model}** at $T = {T}$: " if model else f"- At $T = {T}$: ") + "; ".join(parts) + ".")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The chapter "Deep networks" (book/depth.ipynb): labels, tables and the prose of its hidden cells.
# The paper's signed neuron is the reproduction; the tracking and pair neurons are the book's own.
# ---------------------------------------------------------------------------------------------

#: Legend and table names of single neurons: the book's own ones say so.
NEURON_LABELS: dict[str, str] = {
    "signed": "signed (the paper's)",
    "tracking": "tracking (book's own, not the paper's)",
    "pair": "pair tracking (book's own, not the paper's)",
    "ibt": "IBT (Spiking-YOLO)",
    "if": "IF",
}


def method_labels(own: str) -> dict[str, str]:
    """Names of the four SNNs of the chapter (keys of :data:`negspike.plots.METHOD_LABELS`), saying
    which neuron each uses; ``own`` is the profile's own neuron (``evaluation.own_neuron``)."""
    from ..plots import METHOD_LABELS

    mine = f"book's {own} neuron (not the paper's)"
    return {"none": f"paper's neuron, {METHOD_LABELS['none']}", "cosine": f"paper's neuron, {METHOD_LABELS['cosine']}",
            "own_none": f"{mine}, {METHOD_LABELS['none']}", "own_cosine": f"{mine}, {METHOD_LABELS['cosine']}"}


def fluctuation_pivot(table: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """The fluctuation table (:func:`negspike.depth.fluctuation_table`) compactly: one row per neuron
    and mean input, the target and the decoded output at each amplitude."""
    t = table.assign(neuron=table["neuron"].map(lambda k: labels.get(k, k)))
    wide = t.pivot_table(index=["neuron", "z"], columns="amplitude", values="decoded", sort=False)
    wide.columns = [f"decoded, σ = {a:g}" for a in wide.columns]
    target = t.groupby(["neuron", "z"], sort=False)["target"].first()
    return wide.join(target.rename("target"))[["target", *wide.columns]]


def _at(table: pd.DataFrame, neuron: str, z: float, a: float, col: str = "decoded") -> float:
    m = table[(table["neuron"] == neuron) & (table["z"] == z) & (table["amplitude"] == a)]
    return float(m[col].iloc[0])


def fluctuation_text(table: pd.DataFrame, own: Sequence[str] = ("tracking", "pair")) -> str:
    """The counter-example in prose: what the paper's neuron decodes for each mean input as the
    fluctuation grows, and the largest error of the book's own neurons."""
    amps = sorted(a for a in table["amplitude"].unique() if a > 0)
    T, n = int(table["T"].iloc[0]), int(table["inputs"].iloc[0])
    parts = []
    for z in sorted(table["z"].unique()):
        tgt = _at(table, "signed", z, amps[0], "target")
        vals = ", ".join(f"${_at(table, 'signed', z, a):+.3f}$ at $\\sigma = {a:g}$" for a in amps)
        parts.append(f"for the mean input $z = {z:g}$ (target ${tgt:+.3f}$) it decodes {vals}")
    s = table[table["neuron"] == "signed"]
    flipped = s[(s["z"] < 0) & (s["decoded"] > 0)]
    own_rows = table[table["neuron"].isin(own)]
    worst = own_rows.loc[own_rows["abs_error"].idxmax()] if len(own_rows) else None
    moved = s[s["amplitude"] > 0]
    text = (f"Over {n} input sequences of $T = {T}$ steps each, the paper's neuron decodes its target at "
            f"$\\sigma = 0$ (error {_at(table, 'signed', sorted(table['z'])[0], 0.0, 'abs_error'):.4f} and "
            f"{_at(table, 'signed', sorted(table['z'])[-1], 0.0, 'abs_error'):.4f}); with fluctuation, "
            + "; ".join(parts) + ".")
    if (moved["decoded"] > moved["target"]).all():
        text += " Every one of these lies **above** its target, whatever the sign of the mean"
        if len(flipped):
            text += (f", and from $\\sigma = {flipped['amplitude'].min():g}$ on the negative mean is decoded with the "
                     "**wrong sign**")
        text += "."
    if worst is not None:
        text += (f" The book's own neurons stay much closer: their largest mean absolute error is {worst['abs_error']:.4f} "
                 f"({NEURON_LABELS.get(worst['neuron'], worst['neuron'])}, $z = {worst['z']:g}$, "
                 f"$\\sigma = {worst['amplitude']:g}$), against {s['abs_error'].max():.4f} for the paper's neuron.")
    return text


def mechanism_text(mech: pd.DataFrame, z: float, amplitude: float) -> str:
    """The telescoped identity checked on the counter-example (table built in the chapter: per mean
    input and amplitude, wrong-sign spikes per step, the error the identity predicts and the one measured),
    and the share of the error that the wrong-sign spikes explain at ``z``, ``amplitude``."""
    r = mech[(mech["z"] == z) & (mech["amplitude"] == amplitude)].iloc[0]
    spikes = r["wrong_sign_per_step"] * r["error_per_wrong_spike"]
    return (f"The identity holds to {mech['identity_gap'].max():.1e} on every sequence (an identity, up to "
            f"floating-point rounding). At $z = {z:g}$, $\\sigma = {amplitude:g}$ the paper's neuron fires "
            f"{r['wrong_sign_per_step']:.3f} wrong-sign spikes per step; at {r['error_per_wrong_spike']:.2f} of output "
            f"each they account for {spikes:+.3f} of the measured error {r['measured_error']:+.3f}, the $\\Delta v$ "
            f"term for the rest ({r['measured_error'] - spikes:+.3f}). Since the wrong-sign spikes come at a rate per "
            f"step, this error does not fall as $T$ grows (Exercise 1 measures it).")


def nearest_T(Ts: Sequence[int], T: int) -> int:
    """The T of ``Ts`` nearest to ``T`` (the smaller one on a tie)."""
    return min(Ts, key=lambda t: (abs(t - T), t))


def wrong_sign_text(diag: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """Wrong-sign spikes of the layer diagnosis in prose: the first layer (constant input), the largest
    share of the paper's neuron in any deeper layer and T, and the own neuron's share (retractions)."""
    sp = diag[diag["layer"] != "readout"]
    first = sp[sp["depth"] == 1]
    deep = sp[sp["depth"] > 1]
    paper = deep[deep["calibration"].isin(["none", "cosine"])]
    own = sp[sp["calibration"].isin(["own_none", "own_cosine"])]
    pw = paper.loc[paper["wrong_sign_share"].idxmax()]
    cal_first = first[first["calibration"] == "cosine"]["wrong_sign_share"]
    text = (f"In the first layer, whose input is the constant image, the converted paper's neuron fires "
            f"{100 * first[first['calibration'] == 'none']['wrong_sign_share'].max():.2f}% wrong-sign spikes, as the "
            "proof says"
            + (f" (after calibration {100 * cal_first.max():.2f}%: calibration changes the first layer's weights, "
               "so some of its inputs change sign against the ANN it is compared with)" if len(cal_first) else "")
            + ". In the deeper layers its largest share, over all layers and $T$, is "
            f"**{100 * pw['wrong_sign_share']:.3f}%** ({labels.get(pw['calibration'], pw['calibration'])}, layer "
            f"`{pw['layer']}`, $T = {int(pw['T'])}$)")
    if pw["wrong_sign_share"] < 0.01:
        text += (": in this shallow network and at these $T$, spikes of the wrong sign are rare, and the "
                 "counter-example's drift plays almost no part")
        pe = sp[sp["calibration"].isin(["none", "cosine"])]
        Ts = sorted(pe["T"].unique())
        by = pe.set_index(["calibration", "layer", "T"])["rel_error"]
        falls = all(by[(c, l, Ts[-1])] < by[(c, l, Ts[0])] for c, l in pe[["calibration", "layer"]].drop_duplicates()
                    .itertuples(index=False))
        text += (f". Every spiking layer's relative error falls from $T = {Ts[0]}$ to $T = {Ts[-1]}$, like the first "
                 "layer's, whose input is constant and whose error is only the rounding of a rate to a multiple of "
                 "$\\theta/T$." if falls else ".")
    else:
        text += ": each of them is an error that no later spike takes back at its full value."
    if len(own):
        text += (f" The book's own neuron fires {100 * own['wrong_sign_share'].min():.1f}% to "
                 f"{100 * own['wrong_sign_share'].max():.1f}% spikes whose sign is opposite to the ANN activation, "
                 f"already in the first layer: these are its retractions (for example $\\theta_N$ spikes that take "
                 f"back the part of a $+\\theta_P$ spike that rounded up), compensated by construction, so here a "
                 f"higher share is not an error.")
    return text


def own_vs_paper_text(diag: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """In how many (spiking layer, T) cells of the layer diagnosis the own neuron's relative error is below the
    paper's neuron's, uncalibrated and calibrated, and the two in the first layer at the smallest T."""
    sp = diag[diag["layer"] != "readout"].set_index(["calibration", "layer", "T"])["rel_error"]
    have = set(sp.index.get_level_values(0))
    parts = []
    for own, paper, what in (("own_none", "none", "without calibration"), ("own_cosine", "cosine", "after joint calibration")):
        if {own, paper} <= have:
            a, b = sp.xs(own), sp.xs(paper).reindex(sp.xs(own).index)
            parts.append(f"{what} in **{int((a < b).sum())} of {len(a)}**")
    text = ("The book's own neuron (not the paper's) has the lower relative error, counting the (spiking layer, $T$) "
            "cells of the table: " + ", ".join(parts) + ".")
    first = diag[diag["depth"] == 1].set_index(["calibration", "T"])["rel_error"]
    Tmin = int(diag["T"].min())
    if ("own_none", Tmin) in first.index and ("none", Tmin) in first.index:
        text += (f" In the first layer both get the same constant input; at $T = {Tmin}$ their errors are "
                 f"{first[('own_none', Tmin)]:.3f} (own) and {first[('none', Tmin)]:.3f} (paper's). There the "
                 "difference can only be rounding: the own neuron rounds both sides, the paper's neuron started at "
                 "$v(0) = P_{th}/2$ rounds only the positive side (see the section on the initial membrane below).")
    return text


def layer_table(diag: pd.DataFrame, labels: Mapping[str, str], col: str = "rel_error") -> pd.DataFrame:
    """``col`` of the layer diagnosis per SNN and layer (rows) against T (columns)."""
    d = diag.assign(SNN=diag["calibration"].map(lambda k: labels.get(k, k)))
    wide = d.pivot_table(index=["SNN", "depth", "layer"], columns="T", values=col, sort=False)
    wide.columns = [f"T = {t}" for t in wide.columns]
    return wide.reset_index().drop(columns="depth")


def accuracy_table(acc: pd.DataFrame, methods: Sequence[str], labels: Mapping[str, str], Ts: Sequence[int]) -> pd.DataFrame:
    """Accuracy ± one standard error (text) of each SNN at each T of ``Ts``, and the clipped ANN on the same
    images (rows of :func:`negspike.experiments.calibration_study`'s ``snn_acc``)."""
    from ..book import pm

    a = acc.set_index(["calibration", "T"])
    first = acc.iloc[0]
    rows = [{"network": "clipped ANN (same images)", **{f"T = {t}": pm(first["ann_acc"], first["ann_se"]) for t in Ts}}]
    for m in methods:
        rows.append({"network": labels.get(m, m),
                     **{f"T = {t}": pm(a.loc[(m, t), "snn_acc"], a.loc[(m, t), "snn_se"]) for t in Ts}})
    return pd.DataFrame(rows)


def pairs_table(pairs: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Paired differences (rows of a ``pairs`` table, same T on both sides) in points with 95% intervals,
    McNemar's p and which side the interval favours."""
    from ..matched import reading

    return pd.DataFrame({
        "comparison": [f"{labels.get(r.a, r.a)} − {labels.get(r.b, r.b)}" for r in pairs.itertuples()],
        "T": [int(r.T_a) for r in pairs.itertuples()],
        "difference (points)": [f"{100 * r.diff:+.2f}" for r in pairs.itertuples()],
        "95% interval": [f"{100 * r.low:+.2f} to {100 * r.high:+.2f}" for r in pairs.itertuples()],
        "p (McNemar)": [r.p_value for r in pairs.itertuples()],
        "reading": [reading(r._asdict(), "own ahead", "paper's ahead") for r in pairs.itertuples()],
    })


def accuracy_text(pairs: pd.DataFrame, labels: Mapping[str, str], n_images: int) -> str:
    """Per comparison (own neuron minus the paper's): at which T the own neuron is ahead, behind, or within
    noise, with the paired difference at the first and the last T."""
    from ..book import diff_text

    lines = []
    for (a, b), g in pairs.groupby(["a", "b"], sort=False):
        g = g.sort_values("T_a")
        ahead = [int(t) for t, lo in zip(g["T_a"], g["low"]) if lo > 0]
        behind = [int(t) for t, hi in zip(g["T_a"], g["high"]) if hi < 0]
        noise = [int(t) for t in g["T_a"] if int(t) not in ahead + behind]
        say = lambda ts: ", ".join(map(str, ts))  # noqa: E731
        verdict = "; ".join(p for p in (
            f"ahead at $T = {say(ahead)}$" if ahead else "",
            f"behind at $T = {say(behind)}$" if behind else "",
            f"within noise at $T = {say(noise)}$" if noise else "") if p)
        lo, hi = g.iloc[0], g.iloc[-1]
        lines.append(f"- **{labels.get(a, a)}** against **{labels.get(b, b)}**: {verdict} (95% intervals of the "
                     f"paired differences on the same {n_images} images). At $T = {int(lo['T_a'])}$: {diff_text(lo)}; "
                     f"at $T = {int(hi['T_a'])}$: {diff_text(hi)}.")
    return "\n".join(lines)


def accuracy(acc: pd.DataFrame, methods: Sequence[str], labels: Mapping[str, str], ann_acc: float,
             n_images: int) -> Figure:
    """Accuracy against T of each SNN, the clipped ANN on the same images dashed (one axis)."""
    from ..book import pct
    from ..plots import COLORS

    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 4.2))
    for m in methods:
        d = acc[acc["calibration"] == m]
        ls = "--" if m.startswith("own") else "-"
        ax.plot(d["T"], 100 * d["snn_acc"], marker=".", ms=5, ls=ls, color=METHOD_COLORS.get(m), label=labels.get(m, m))
    ax.axhline(100 * ann_acc, color=COLORS["ann"], ls="--", lw=1.2, label=f"clipped ANN, same images ({pct(ann_acc)})")
    ax.set(xlabel="time steps T", ylabel="test accuracy (%)",
           title=f"Net4: the paper's neuron and the book's own ({n_images} test images)")
    ax.legend(fontsize=8.5, loc="lower right")
    return fig


def rounding(table: pd.DataFrame, balanced: float, labels: Mapping[str, str]) -> Figure:
    """Mean absolute error against the initial membrane (:func:`negspike.rounding.side_errors`), one panel per
    side (positive, negative, both), one curve per neuron, the balanced start (``balanced``) marked."""
    sides = ("positive", "negative", "both")
    fig, axes = plt.subplots(1, 3, figsize=(FIG_WIDTH, 4.0), sharex=True)
    dashed = {"ibt": dict(ls="--", marker="x", ms=4, zorder=3), "tracking": dict(ls="-", marker="o", ms=3)}  # IBT may lie on IF
    for ax, side in zip(axes, sides):
        t = table[table["side"] == side]
        for name, g in t.groupby("neuron", sort=False):
            ax.plot(g["v_init"], g["mean_abs_error"], color=METHOD_COLORS.get(name), label=labels.get(name, name),
                    **dashed.get(name, dict(marker=".", ms=4)))
        ax.axvline(balanced, color="0.3", ls=":", lw=1.2, label=f"balanced start (1 − α)/2 = {balanced:g}")
        ax.set(title=f"{side} side" if side != "both" else "sum of both sides",
               xlabel="v_init (× P_th)", ylim=(0, None))
    axes[0].set_ylabel("mean |error| (output units)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=8)
    T = int(table["T"].iloc[0])
    fig.suptitle(f"Initial membrane and rounding, constant inputs, T = {T} (tracking: v_init is a rounding fraction)",
                 fontsize=10.5)
    return fig


def rounding_text(table: pd.DataFrame, balanced: float, layers: pd.DataFrame | None = None) -> str:
    """The initial-membrane measurements in prose (``table``: :func:`negspike.rounding.side_errors`; ``layers``:
    the signed neuron at each Net4 layer's thresholds, columns layer, negative_ratio, both_excess)."""
    s = table[table["neuron"] == "signed"].pivot(index="v_init", columns="side", values="mean_abs_error")
    tr = table[table["neuron"] == "tracking"].pivot(index="v_init", columns="side", values="mean_abs_error")
    half = s.index[np.isclose(s.index, 0.5)][0]
    zero = s.index[np.isclose(s.index, 0.0)][0]
    best = s["both"].idxmin()
    text = (f"With $v(0) = P_{{th}}/2$ the signed neuron's positive-side error falls from {s.loc[zero, 'positive']:.4f} "
            f"to {s.loc[half, 'positive']:.4f}, but its negative-side error rises from {s.loc[zero, 'negative']:.4f} to "
            f"{s.loc[half, 'negative']:.4f}, **{s.loc[half, 'negative'] / s.loc[zero, 'negative']:.1f} times** a zero "
            f"start. The summed error is smallest at $v(0) = {best:.2f}\\,P_{{th}}$ of the grid "
            f"({s.loc[best, 'both']:.4f}; the formula's balanced start is ${balanced:.2f}$), and at $0.5$ it is "
            f"{s.loc[half, 'both']:.4f}, **{100 * (s.loc[half, 'both'] / s['both'].min() - 1):.1f}%** above that minimum.")
    pos = table[(table["side"] == "positive")].pivot(index="v_init", columns="neuron", values="mean_abs_error").dropna()
    if pos.shape[1] > 1:
        text += (f" On the positive side the {pos.shape[1]} neurons' curves lie within "
                 f"{(pos.max(axis=1) - pos.min(axis=1)).max():.4f} of each other: there each behaves like an IF neuron.")
    ibt = table[table["neuron"] == "ibt"].set_index(["v_init", "side"])["mean_abs_error"]
    iff = table[table["neuron"] == "if"].set_index(["v_init", "side"])["mean_abs_error"]
    if len(ibt) and len(iff) and np.allclose(ibt.sort_index(), iff.sort_index(), atol=1e-9):
        text += (" IBT's curves lie on IF's: its negative threshold $-P_{th}/\\alpha$ is never reached by these "
                 "inputs within $T$ steps, so it decodes nothing on the negative side, like IF.")
    if len(tr):
        th = tr.index[np.isclose(tr.index, 0.5)][0]
        text += (f" The tracking neuron at rounding fraction $0.5$ has {tr.loc[th, 'positive']:.4f} on the positive "
                 f"and {tr.loc[th, 'negative']:.4f} on the negative side: it rounds both.")
    if layers is not None and len(layers):
        text += (f" At the thresholds of Net4's spiking layers the picture is the same: $P_{{th}}/2$ multiplies the "
                 f"negative-side error by {layers['negative_ratio'].min():.1f} to {layers['negative_ratio'].max():.1f}, "
                 f"and costs at most {100 * layers['both_excess'].max():.1f}% of the summed error against the balanced "
                 f"start.")
    return text
