"""Figures of the chapter "Accuracy against the number of time steps" (``book/accuracy_vs_T.ipynb``),
and the prose of its hidden cells, from the chapter's table ``curves`` (one row per conversion,
initial membrane and T: ``key``, ``method``, ``v_init``, ``T``, ``snn_acc``, ``gap``, ...)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ..book import at_T, diff_text, pct, pm, t_range
from ..plots import COLORS, FIG_WIDTH, METHOD_COLORS

__all__ = ["MARKERS", "gap_floor", "accuracy_vs_T", "initial_membrane", "convergence_text", "start_text",
           "ibt_text", "table1_ours", "table1_text", "own_rows_text"]

#: One marker per conversion (the chapter's keys), so that the curves read in black and white too.
MARKERS = {"if": "s", "ibt": "^", "signed": "o", "none": "D", "cosine": "*", "own_none": "v", "own_cosine": "P"}


def _label(curves: pd.DataFrame, key: str) -> str:
    """The label (column ``method``) of the conversion ``key``."""
    return curves[curves["key"] == key]["method"].iloc[0]


def gap_floor(at_half: pd.DataFrame) -> float:
    """The lower limit of the figure's gap panel, in points: the lowest gap from T = 4 on, less half
    a point, and at most -1 (zoomed on T >= 4, where the curves converge)."""
    gap = -100 * at_half["gap"]
    return min(-1.0, float(gap[at_half["T"] >= min(4, int(at_half["T"].max()))].min()) - 0.5)


def accuracy_vs_T(at_half: pd.DataFrame, keys: Sequence[str], v_half: float) -> Figure:
    """The paper's Figure 3 with five conversions from the same start ``v_half``: accuracy against T
    with the ANN of rows 4-5 above, each SNN minus its own ANN below (with row 5's paired 95% band)."""
    ann45 = at_half[at_half["key"] == "cosine"]["ann_acc"].iloc[0]  # the ANN of rows 4-5 on the simulated images
    fig, (ax, ax_gap) = plt.subplots(2, 1, figsize=(FIG_WIDTH, 7.6), sharex=True, height_ratios=(1.1, 1))
    for k in keys:
        d = at_half[at_half["key"] == k]
        style = dict(color=METHOD_COLORS[k], marker=MARKERS[k], ms=4.5, label=_label(at_half, k))
        ax.plot(d["T"], 100 * d["snn_acc"], **style)
        ax_gap.plot(d["T"], -100 * d["gap"], **style)
        if k == "cosine":  # one band, the paper's method's, keeps the panel readable; the text gives the others
            band = ax_gap.fill_between(d["T"], -100 * d["gap_high"], -100 * d["gap_low"], color=METHOD_COLORS[k],
                                       alpha=0.15, lw=0, label="row 5: paired 95% interval")
    ax.axhline(100 * ann45, color=COLORS["ann"], ls="--", lw=1.2, label=f"ANN of rows 4-5, same images ({pct(ann45)})")
    ax.set(ylabel="test accuracy (%)", ylim=(0, 100),
           title=f"Net4 on Fashion-MNIST, v(0) = {v_half:g} P_th, {int(at_half['test_images'].iloc[0])} test images")
    ax.legend(loc="lower right")
    gap = -100 * at_half["gap"]
    refs = [ax_gap.axhline(0, color=COLORS["ann"], ls="--", lw=1.2, label="its own ANN"),
            ax_gap.axhline(-0.1, color=COLORS["ann"], ls=":", lw=1.2, label="ANN - 0.1 points"), band]
    ax_gap.set(xlabel="time steps T", ylabel="SNN minus its ANN (points)",
               ylim=(gap_floor(at_half), max(0.6, float(gap.max()) + 0.3)),
               title="The same curves against each SNN's own ANN (same test images)")
    ax_gap.legend(handles=refs, loc="lower right")  # the methods are labelled in the upper panel
    return fig


def initial_membrane(curves: pd.DataFrame, keys: Sequence[str], v_inits: Sequence[float], v_half: float) -> Figure:
    """Accuracy against T of the conversions ``keys`` from each initial membrane of ``v_inits`` (dashed:
    v(0) = 0), the conversion ``none`` from ``v_half`` only."""
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 4.4))
    for k in keys:
        for v in v_inits if k != "none" else (v_half,):
            d = curves[(curves["key"] == k) & (curves["v_init"] == v)]
            ax.plot(d["T"], 100 * d["snn_acc"], color=METHOD_COLORS[k], ls="-" if v else "--", marker=MARKERS[k],
                    ms=3.5, label=_label(curves, k) if v else None)
    ax.plot([], [], color="0.3", ls="-", label=f"v(0) = {v_half:g} P_th")
    ax.plot([], [], color="0.3", ls="--", label="v(0) = 0")
    ax.set(xlabel="time steps T", ylabel="test accuracy (%)", ylim=(0, 100),
           title="Rows 1-3 from two initial membranes, row 4 for reference")
    ax.legend(loc="lower right", fontsize=9)
    return fig


# The prose of the chapter's hidden cells and its Table 1.

def convergence_text(at_half: pd.DataFrame, keys: Sequence[str], v_half: float, first: int) -> str:
    """Figure 3 in prose (Markdown): every conversion's accuracy at T = ``first`` and its gap to its own
    ANN, with the paired 95% interval, at the longest T."""
    T_max = int(at_half["T"].max())
    g = at_half.pivot(index="T", columns="key", values="snn_acc")[list(keys)]
    end = at_half[at_half["T"] == T_max].set_index("key")
    return (
        f"From the same start $v(0) = {v_half:g}\\,P_{{\\mathrm{{th}}}}$, at $T = {first}$ the five SNNs reach "
        + ", ".join(f"{pct(g.loc[first, k])} ({_label(at_half, k)})" for k in keys)
        + f"; at $T = {T_max}$ they are "
        + ", ".join(f"{-100 * end.loc[k, 'gap']:+.2f} ({-100 * end.loc[k, 'gap_high']:+.2f} to "
                    f"{-100 * end.loc[k, 'gap_low']:+.2f})" for k in keys)
        + " points from their own ANNs on the same images (rows in order; in brackets the paired 95% interval: where "
        "it includes 0 the SNN is within noise of its ANN). The lower panel's y-axis is cut at "
        f"{gap_floor(at_half):.1f} points so that differences of a few tenths stay visible; the upper panel shows the "
        "full range.")


def start_text(start_pairs: dict[str, dict[int, dict]], tuned: dict, labels: dict[str, str], first: int,
               T_max: int) -> str:
    """What the half-threshold start buys, in prose (Markdown): per conversion of ``labels`` the paired
    difference half minus zero start at ``first`` and ``T_max`` (``start_pairs[key][T]``), and row 4
    against row 3 from the same start (``tuned``), rows of :func:`negspike.matched.pair_rows`."""
    return (
        f"At $T = {first}$ the half-threshold start changes the accuracy by "
        + "; ".join(f"{diff_text(start_pairs[k][first])} for {label}" for k, label in labels.items())
        + f"; at $T = {T_max}$ by " + ", ".join(diff_text(start_pairs[k][T_max]) for k in labels)
        + " (same order; paired on the same images). "
        f"With the same start, threshold optimisation (row 4 against row 3) is worth {diff_text(tuned)} at "
        f"$T = {first}$: this, not the gap between a zero-start row 3 and a half-start row 4, is what the thresholds "
        "buy.")


def ibt_text(thr: pd.DataFrame, wait: pd.DataFrame, rates: pd.DataFrame, T_max: int) -> str:
    """Why IBT is slow, in prose (Markdown): the ratio of the negative thresholds (``thr``), the wait for
    the first negative spike and the share that fires within ``T_max`` (``wait``), the measured rates."""
    share = f"share firing within T={T_max}"
    return (
        f"IBT's negative threshold is {thr['IBT / signed'].min():.1f} to {thr['IBT / signed'].max():.1f} times farther "
        "from zero than the signed neuron's (" + ", ".join(f"{n}: {v:.1f}" for n, v in thr["IBT / signed"].items())
        + "). A typical negative activation waits a median of "
        + ", ".join(f"{wait.loc[n, ('median wait (steps)', 'IBT')]:.0f} steps with IBT against "
                    f"{wait.loc[n, ('median wait (steps)', 'signed')]:.0f} with the signed neuron ({n})"
                    for n in thr.index)
        + f", and within $T = {T_max}$ IBT can fire for "
        + ", ".join(f"{100 * wait.loc[n, (share, 'IBT')]:.1f}%" for n in thr.index)
        + " of the negative activations, the signed neuron for "
        + ", ".join(f"{100 * wait.loc[n, (share, 'signed')]:.1f}%" for n in thr.index) + " (layers in order). "
        "In the simulation IBT's negative firing rates are "
        + ", ".join(f"{rates.loc[n, ('neg_rate', 'ibt')]:.4f}" for n in thr.index) + " against the signed neuron's "
        + ", ".join(f"{rates.loc[n, ('neg_rate', 'signed')]:.4f}" for n in thr.index)
        + "."
        + (" IBT therefore reports most negative activations as 0, a ReLU in effect, until $T$ is large."
           if (wait[(share, "IBT")] < 0.5).all() else ""))


def table1_ours(table1: pd.DataFrame, T_max: int) -> pd.DataFrame:
    """Our Table 1 for display: per method the neuron, ANN and SNN accuracy ± standard error on the
    same images, the smallest T within 0.1 points (with its range) and the ANN on the whole test set."""
    n_test = int(table1["test_images"].iloc[0])
    return pd.DataFrame({
        "neuron": table1["neuron"],
        f"ANN, same {n_test} images": [pm(r.ann_acc, r.ann_se) for r in table1.itertuples()],
        f"SNN, T={T_max}": [pm(r.snn_acc, r.snn_se) for r in table1.itertuples()],
        "T within 0.1 (range)": [t_range(r, T_max) for _, r in table1.iterrows()],
        "ANN, whole test set": [pct(v) for v in table1["ann_acc_all_test"]],
    }, index=table1.index)


def table1_text(table1: pd.DataFrame, paper: pd.DataFrame, at_half: pd.DataFrame, prof, leaky_acc: float,
                clip_acc: float) -> str:
    """Our Table 1 against the paper's (``paper``: :data:`negspike.paper.TABLE1`) in prose (Markdown), with
    what keeps the numbers of profile ``prof`` from the paper's; ``leaky_acc`` and ``clip_acc``: the
    Leaky-ReLU ANN's whole-test-set accuracy before and after threshold optimisation."""
    T_max, n_test = prof.evaluation.T_max, int(table1["test_images"].iloc[0])
    p1 = paper.set_index("method")
    paper_ours, paper_aug = p1.loc["proposed"], p1.loc["AugMapping [Yu 2022]"]
    ours = table1.loc["signed, threshold optimisation, joint calibration"]
    plain = table1.loc["signed, threshold optimisation"]
    ibt_row = table1.loc["IBT, max thresholds"]
    r10 = at_half[(at_half["key"] == "cosine") & (at_half["T"] == paper_ours["T"])]
    text = [
        f"Our proposed pipeline (row 5) has an ANN of {pct(ours['ann_acc_all_test'])} on the whole test set, "
        f"{100 * (ours['ann_acc_all_test'] - paper_ours['ANN']):+.2f} points from the paper's "
        f"{pct(paper_ours['ANN'])}; on the {n_test} simulated images it scores {pm(ours['ann_acc'], ours['ann_se'])}%, "
        f"and its SNN reaches {pm(ours['snn_acc'], ours['snn_se'])}% at $T = {T_max}$"
        + (f" and {pm(r10['snn_acc'].iloc[0], r10['snn_se'].iloc[0])}% at $T = {paper_ours['T']}$ (the paper: "
           f"{pct(paper_ours['SNN'])})" if len(r10) else "")
        + f". It comes within 0.1 points of its ANN on the same images {at_T(ours, T_max)} (paper: at "
        f"$T = {paper_ours['T']}$); without calibration (row 4, same start) {at_T(plain, T_max)}. The brackets give "
        "the range of $T$ the noise allows.",
        f"The IBT conversion (row 2) reaches {pm(ibt_row['snn_acc'], ibt_row['snn_se'])}% at $T = {T_max}$ against its "
        f"ANN's {pm(ibt_row['ann_acc'], ibt_row['ann_se'])}% on the same images"
        + (f" and gets within 0.1 points {at_T(ibt_row, T_max)}" if not pd.isna(ibt_row["T_within_0.1"]) else
           f" and does not get within 0.1 points within $T = {T_max}$")
        + f"; AugMapping needs {paper_aug['T']} steps in the paper.",
        f"These numbers are far from the paper's mainly because profile `{prof.name}` trains each ANN for "
        f"{prof.ann.epochs} epoch(s) on {prof.ann.train_subset or 'all'} images and calibrates for "
        f"{prof.calibration.epochs} epoch(s) on {prof.calibration.subset or 'all'} images, and simulates only up to "
        f"$T = {T_max}$: it checks that the pipeline runs, not the paper's accuracy.",
    ]
    extra = prof.threshold.vp_epochs * prof.threshold.use_variance_penalty + prof.threshold.clip_epochs
    text.append(
        f"Threshold optimisation fine-tunes the ANN for {extra} more epoch(s) (variance penalty and clipping), and its "
        f"ANN accuracy on the whole test set moved from {pct(leaky_acc)} to {pct(clip_acc)} "
        f"({100 * (clip_acc - leaky_acc):+.2f} points): with ANNs as short-trained as in this profile, part "
        "of the difference between rows 1-3 and rows 4-5 is this extra training, not the thresholds alone.")
    if n_test < 1000:
        text.append(f"With {n_test} test images one image is {100 / n_test:.2f} points, coarser than the "
                    "0.1-point criterion: the smallest $T$ values are indicative only.")
    return " ".join(text)


def own_rows_text(own_pairs: dict[str, list[dict]], neuron: str) -> str:
    """Rows 6-7 (the book's own ``neuron``, not the paper's) against rows 4-5 in prose (Markdown):
    ``own_pairs[key]`` are :func:`negspike.matched.pair_rows` of ``own_none`` against ``none`` and of
    ``own_cosine`` against ``cosine`` at two T."""
    def at(key):
        return " and ".join(f"{diff_text(r)} at $T = {r['T_a']}$" for r in own_pairs[key])
    return (f"Rows 6-7 are not the paper's: the book's own {neuron} neuron (chapter {{doc}}`depth`), converted from "
            f"the same clipped ANN with the same start. Without calibration it differs from the paper's neuron (row 6 "
            f"minus row 4) by {at('own_none')}; with the same joint calibration (row 7 minus row 5) by "
            f"{at('own_cosine')}, paired on the same images.")
