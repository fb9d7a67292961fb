"""Figures and bookkeeping of the chapter "Joint calibration of all layers in time" (book/calibration.ipynb).

Each figure function takes what the chapter computed (tables, tensors, numbers) and returns the
figure; the chapter saves and shows it. The computations themselves stay in the chapter.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..book import at_T, diff_text, pct, pm, pm_format, t_range
from ..calibrate import kappa_at
from ..matched import pair_at, reading
from ..paper import TABLE5
from ..plots import COLORS, FIG_WIDTH, METHOD_COLORS, METHOD_LABELS, zoom_figure, zoom_on_ann
from ..profiles import Profile

__all__ = ["profile_line", "rates_vs_ann", "mismatch_per_layer", "weightings_heatmap", "weightings_lines",
           "kappa_surrogate", "kl_vs_mse", "losses_per_layer", "weight_change", "loss_curves", "epoch_change",
           "acc_vs_T", "table5", "pairs_table", "mismatch_text", "surrogate_text", "loss_pair_text", "readout_text",
           "results_text"]


def profile_line(prof: Profile) -> str:
    """The one-line summary of the profile's ANN, calibration and evaluation settings."""
    cal, ev = prof.calibration, prof.evaluation
    return (f"profile {prof.name!r}: {prof.ann.model} on {prof.ann.dataset}, ANN trained for {prof.ann.epochs} epoch(s) "
            f"on {prof.ann.train_subset or 'all'} images; calibration: {cal.epochs} epoch(s) on {cal.subset or 'all'} "
            f"training images at T = {list(cal.T)}, loss {cal.loss!r}, lr {cal.lr}, batch {cal.batch_size}, "
            f"initial membranes {cal.v_init} P_th; "
            f"evaluation on {ev.test_subset or 'all'} test images for T = 1..{ev.T_max}")


def rates_vs_ann(acts: Mapping[str, torch.Tensor], rates: Mapping[str, torch.Tensor], layers: Sequence[str],
                 T: int) -> Figure:
    """SNN decoded rate against ANN activation for 3000 random neurons of each of two layers."""
    fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.7))
    gen = torch.Generator().manual_seed(0)
    for ax, name in zip(axes, layers):
        a, r = acts[name].flatten(), rates[name].flatten()
        pick = torch.randperm(len(a), generator=gen)[:3000]
        ax.scatter(a[pick], r[pick], s=4, alpha=0.3, color=COLORS["signed"])
        lo, hi = float(a.min()), float(a.max())
        ax.plot([lo, hi], [lo, hi], color=COLORS["ann"], lw=1, ls="--", label="rate = ANN activation")
        ax.set(xlabel="ANN activation (ANN units)", title=f"layer {name}, T = {T}")
        ax.legend(loc="upper left")
    axes[0].set_ylabel("SNN decoded rate (ANN units)")
    fig.suptitle("Uncalibrated SNN against its ANN, 3000 random neurons")
    return fig


def mismatch_per_layer(before: pd.DataFrame, layers: Sequence[str], loss: str) -> Figure:
    """Loss per layer of the uncalibrated SNN, one line per T (``before``: one row per T, one column per layer)."""
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.8))
    for T in before.index:
        ax.semilogy(layers, before.loc[T, layers], "o-", label=f"T = {T}")
    ax.set(xlabel="layer", ylabel=f"{loss.upper()} loss (dimensionless)", title="Uncalibrated SNN: mismatch per layer")
    ax.legend(ncol=2)
    return fig


def weightings_heatmap(W: Mapping[str, np.ndarray]) -> Figure:
    """Heat maps of the normalised layer weights, one per weighting (``W[k]``: layers x progress from 0 to 1)."""
    L = len(next(iter(W.values())))
    fig, axes = plt.subplots(1, 3, figsize=(FIG_WIDTH, 3.3), sharey=True)
    vmax = max(w.max() for w in W.values())
    for ax, (k, w) in zip(axes, W.items()):
        im = ax.imshow(w, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=vmax, extent=(0, 1, 0.5, L + 0.5))
        ax.set(xlabel="progress p", title=f"{k}", xticks=(0, 0.5, 1))
        ax.grid(False)
    axes[0].set(ylabel="layer l", yticks=range(1, L + 1), yticklabels=[f"{i + 1}" for i in range(L)])
    fig.colorbar(im, ax=axes, label=r"weight $w_l(p)$")
    fig.suptitle(f"Layer weights of joint calibration, L = {L} (each column sums to 1)")
    return fig


def weightings_lines(weights: pd.DataFrame) -> Figure:
    """Layer weights against the layer at each progress p (``weights``: index (weighting, p), one column per layer)."""
    ps = weights.index.get_level_values("p").unique()
    fig, axes = plt.subplots(1, len(ps), figsize=(FIG_WIDTH, 3.4), sharey=True)
    layers_idx = np.arange(1, weights.shape[1] + 1)
    for ax, p in zip(axes, ps):
        for k in weights.index.get_level_values("weighting").unique():
            ax.plot(layers_idx, weights.loc[(k, p)].to_numpy(), "o-", label=k, color=METHOD_COLORS[k])
        ax.set(xlabel="layer l", xticks=layers_idx, title=f"p = {p}")
    axes[0].set_ylabel(r"weight $w_l(p)$")
    axes[0].legend()
    fig.suptitle("Layer weights at the start, middle and end of calibration")
    return fig


def kappa_surrogate(kappas: Sequence[float], epochs: int, x: np.ndarray, grads: Mapping[float, np.ndarray]) -> Figure:
    """The schedule of slopes kappa per epoch (profile's epochs shaded) and the surrogate gradient per kappa."""
    fig, (ax_k, ax_g) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.5))
    ax_k.stairs(kappas, np.arange(0.5, len(kappas) + 1), baseline=None, color=COLORS["signed"], lw=2)  # epoch e spans e +- 0.5
    ax_k.axvspan(0.5, epochs + 0.5, color=COLORS["bound"], alpha=0.15, label=f"this profile: {epochs} epoch(s)")
    ax_k.set(xlabel="calibration epoch", ylabel=r"surrogate slope $\kappa$", title=r"$\kappa$ schedule", ylim=(0, 16.5))
    ax_k.legend(loc="lower right")
    for (kappa, grad), color in zip(grads.items(), ("0.65", "0.4", "0.1")):  # kappa is not a method: greys
        ax_g.plot(x, grad, color=color, label=rf"$\kappa$ = {kappa}")
    ax_g.set(xlabel=r"$x$ = membrane $-$ threshold", ylabel=r"surrogate $\partial s/\partial x$",
             title="Surrogate gradient")
    ax_g.legend()
    return fig


def kl_vs_mse(none_acc: pd.Series, kl_mse: pd.DataFrame, losses: Sequence[str], ann_acc: float, T_max: int) -> Figure:
    """Accuracy against T of the SNN calibrated (joint, cosine) with each loss, beside no calibration and the ANN."""
    styles = {"kl": "-", "mse": "--"}  # one method (joint, cosine): one colour, a line style per loss

    def draw(ax):
        ax.plot(none_acc.index, 100 * none_acc, color=METHOD_COLORS["none"], marker=".", label=METHOD_LABELS["none"])
        for kind in losses:
            d = kl_mse[kl_mse["loss_fn"] == kind]
            ax.plot(d["T"], 100 * d["snn_acc"], ls=styles[kind], marker=".", color=METHOD_COLORS["cosine"],
                    label=f"joint cosine, {kind.upper()} loss")
        ax.axhline(100 * ann_acc, color=COLORS["ann"], ls="--", lw=1.2, label=f"ANN, same images ({pct(ann_acc)})")

    fig, ax_full, ax = zoom_figure(height=6.0)
    draw(ax_full)
    draw(ax)
    wide = pd.concat([none_acc, kl_mse.pivot(index="T", columns="loss_fn", values="snn_acc")], axis=1)
    zoom_on_ann(ax_full, ax, wide, ann_acc, T_max, "Zoom on T >= {T_zoom}", ncol=2, legend_y=-0.17)
    fig.suptitle("Calibration loss: KL against MSE")
    return fig


def losses_per_layer(after: pd.DataFrame, loss: str, T: int) -> Figure:
    """Grouped bars of each calibration's loss per layer (``after``: one row per calibration, one column per layer)."""
    methods, layers = list(after.index), list(after.columns)
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.9))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        ax.bar(np.arange(len(layers)) + (i - (len(methods) - 1) / 2) * width, after.loc[m], width,
               label=METHOD_LABELS[m], color=METHOD_COLORS[m])
    ax.set(xticks=range(len(layers)), xticklabels=layers, xlabel="layer", ylabel=f"{loss.upper()} loss (dimensionless)",
           title=f"Loss per layer after calibration, T = {T}")
    ax.legend(ncol=2)
    return fig


def weight_change(snn, ref) -> dict[str, float]:
    """Per synaptic layer of ``snn``: mean |W_calibrated - W_converted| / mean |W_converted| (``ref``: converted SNN)."""
    before = dict(ref.net.named_modules())
    return {n: ((m.weight - before[n].weight).abs().mean() / before[n].weight.abs().mean()).item()
            for n, m in snn.net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}


def loss_curves(loss_hist: pd.DataFrame, methods: Sequence[str], layers: Sequence[str], loss: str) -> Figure:
    """The loss recorded during calibration per layer and epoch, one panel per calibration method."""
    fig, axes = plt.subplots(2, 2, figsize=(FIG_WIDTH, 5.6), sharey=True, sharex=True)
    axes = axes.ravel()
    for ax, m in zip(axes, methods):
        d = loss_hist[loss_hist["calibration"] == m]
        for n in layers:
            e = d[d["layer"] == n]
            ax.semilogy(e["epoch"], e["loss"], "o-", label=n)
        ax.set(title=METHOD_LABELS[m], xticks=sorted(d["epoch"].unique()))
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    for ax in axes[::2]:
        ax.set_ylabel(f"{loss.upper()} loss")
    axes[0].legend(ncol=2)
    fig.suptitle("Calibration loss per layer and epoch (calibration images)")
    return fig


def epoch_change(loss_hist: pd.DataFrame, layers: Sequence[str]) -> pd.DataFrame | None:
    """Relative change of each layer's loss from the first epoch to the last, per calibration; None for one epoch."""
    n_epochs = loss_hist["epoch"].max()
    if n_epochs < 2:
        return None
    ends = loss_hist.pivot_table(index=["calibration", "layer"], columns="epoch", values="loss")
    return (ends[n_epochs] / ends[1] - 1).unstack("layer")[list(layers)].rename_axis("calibration")


def acc_vs_T(acc: pd.DataFrame, methods: Sequence[str], ann_acc: float, T_cal: Sequence[int], T_max: int,
             n_images: int) -> Figure:
    """Accuracy against T of every calibration method, the ANN on the same images, full range and zoom."""

    def draw(ax):
        for m in methods:
            d = acc[acc["calibration"] == m]
            ax.plot(d["T"], 100 * d["snn_acc"], marker=".", ms=5, color=METHOD_COLORS[m], label=METHOD_LABELS[m])
        ax.axhline(100 * ann_acc, color=COLORS["ann"], ls="--", lw=1.2, label=f"ANN, same images ({pct(ann_acc)})")
        for i, t in enumerate(T_cal):
            ax.axvline(t, color="0.55", lw=1, ls="-.", label="calibrated at this T" if i == 0 else None)

    fig, ax_full, ax = zoom_figure(height=6.6)
    draw(ax_full)
    draw(ax)
    ax.axhline(100 * (ann_acc - 0.001), color=COLORS["ann"], ls=":", lw=1.2, label="ANN − 0.1 points")
    zoom_on_ann(ax_full, ax, acc.pivot(index="T", columns="calibration", values="snn_acc"), ann_acc, T_max,
                f"Zoom on T >= {{T_zoom}} ({n_images} test images, ANN and SNN on the same images)")
    fig.suptitle("Net4 on Fashion-MNIST: calibration methods, same initial membrane")
    return fig


def table5(wide: pd.DataFrame, summary: pd.DataFrame, T_cal: int, T_max: int) -> pd.DataFrame:
    """Our Table 5 beside the paper's (:data:`negspike.paper.TABLE5`): accuracies (% ± one standard error) at the
    calibrated and the longest T, and the smallest T within 0.1 points of the ANN (``summary``: indexed by calibration)."""
    ann_acc, ann_se, ann_all, n_test = summary[["ann_acc", "ann_se", "ann_acc_all_test", "test_images"]].iloc[0]
    f, methods = pm_format(int(n_test)), list(wide.columns)
    ours = pd.DataFrame({
        "calibration": methods,
        f"our ANN, same {int(n_test)} images": pm(ann_acc, ann_se),
        f"our SNN, T={T_cal}": [f(wide.loc[T_cal, m]) for m in methods],
        f"our SNN, T={T_max}": [f(wide.loc[T_max, m]) for m in methods],
        "our T within 0.1 (range)": [t_range(summary.loc[m], T_max) for m in methods],
        "our ANN, whole test set": pct(ann_all),
    })
    paper = TABLE5.rename(columns={"weighting": "calibration", "ANN": "paper ANN", "SNN": "paper SNN", "T": "paper T"})
    return ours.merge(paper, on="calibration", how="left")


def pairs_table(at_pair: pd.DataFrame) -> pd.DataFrame:
    """The paired differences of ``at_pair`` (rows of a ``pairs`` table) in points, with their 95% intervals,
    McNemar's p and what they say (:func:`negspike.matched.reading`)."""
    return pd.DataFrame({
        "comparison": [f"{METHOD_LABELS[r.a]} − {METHOD_LABELS[r.b]}" for r in at_pair.itertuples()],
        "difference": [f"{100 * r.diff:+.2f}" for r in at_pair.itertuples()],
        "95% interval": [f"{100 * r.low:+.2f} to {100 * r.high:+.2f}" for r in at_pair.itertuples()],
        "p (McNemar)": at_pair["p_value"].to_numpy(),
        "right only for first / second": [f"{r.only_a} / {r.only_b}" for r in at_pair.itertuples()],
        "reading": [reading(r, METHOD_LABELS[r["a"]], METHOD_LABELS[r["b"]]) for _, r in at_pair.iterrows()],
    })


# The prose of the chapter's remove-input cells: the numbers of this run, in words.

def mismatch_text(before: pd.DataFrame, layers: Sequence[str], T_cal: int) -> str:
    """Whether the uncalibrated loss grows with depth at ``T_cal``, and how the readout's loss falls with T."""
    spiking = list(layers[:-1])
    grows = all(before.loc[T_cal, a] < before.loc[T_cal, b] for a, b in zip(spiking, spiking[1:]))
    T_diag = list(before.index)
    return (
        f"At the calibration length $T = {T_cal}$ the loss of the spiking layers is "
        + ", ".join(f"{before.loc[T_cal, n]:.3f} ({n})" for n in spiking)
        + (": it grows with depth, the accumulation that the paper describes. " if grows else
           ": in this run it does not grow monotonically with depth. ")
        + f"From $T = {T_diag[0]}$ to $T = {T_diag[-1]}$ the readout's loss falls from "
        f"{before.loc[T_diag[0], 'readout']:.3f} to {before.loc[T_diag[-1], 'readout']:.3f}: more time steps "
        "shrink the mismatch, calibration tries to shrink it at a fixed, small $T$.")


def surrogate_text(peaks: Mapping[float, float], areas: Mapping[float, float], epochs: int, snn) -> str:
    """The surrogates' peaks and areas, the slopes this profile's epochs use, and the thresholds of ``snn``."""
    kappa_used = sorted({kappa_at(e) for e in range(epochs)})
    th = [(n.p_th.item(), n.n_th.item()) for n in snn.neurons.values()]
    return (
        "Each surrogate peaks at $\\kappa/4$ ("
        + ", ".join(f"{peaks[k]:.3f} for $\\kappa = {k}$" for k in peaks)
        + ") and integrates to 1 (" + ", ".join(f"{areas[k]:.4f}" for k in areas) + "), like the step it replaces. "
        f"This profile calibrates for {epochs} epoch(s), so it uses $\\kappa \\in \\{{{', '.join(map(str, kappa_used))}\\}}$. "
        "The library applies the sigmoid to the membrane's distance from the threshold in ANN units, not normalised "
        "by the threshold (the paper does not say): our Net4's thresholds are "
        + ", ".join(f"$P_{{th}} = {p:.2f}$, $N_{{th}} = {n:.2f}$" for p, n in th)
        + f", so at $\\kappa = 6.7$ the surrogate is non-negligible over about $\\pm 4/\\kappa = \\pm {4 / 6.7:.2f}$.")


def loss_pair_text(cmp: pd.DataFrame, loss_pairs: pd.DataFrame, losses: Sequence[str], T_cal: int, T_max: int,
                   n_images: int) -> str:
    """The two calibration losses compared at ``T_cal`` and ``T_max``, with their paired differences."""
    own, other = losses
    lp = {r["T_a"]: r for _, r in loss_pairs.iterrows()}
    f = pm_format(n_images)
    return (
        f"At the calibration length $T = {T_cal}$ the {own.upper()}-calibrated SNN reaches {f(cmp.loc[T_cal, own])}%, "
        f"the {other.upper()}-calibrated one {f(cmp.loc[T_cal, other])}%: {own.upper()} minus {other.upper()} is "
        f"{diff_text(lp[T_cal])}. At $T = {T_max}$: {f(cmp.loc[T_max, own])}% against "
        f"{f(cmp.loc[T_max, other])}%, {diff_text(lp[T_max])}. The intervals are paired: both SNNs ran on the same "
        f"{n_images} images, and only the images on which they disagree count ({int(lp[T_cal]['only_a'])} right only "
        f"with {own.upper()}, {int(lp[T_cal]['only_b'])} only with {other.upper()} at $T = {T_cal}$).")


def readout_text(after: pd.DataFrame, dw: pd.DataFrame, joint: Sequence[str], T_cal: int, lr: float,
                 steps: int) -> str:
    """How calibration changed the readout's loss (``after``: loss per calibration and layer, first row "none")."""
    rel = after.div(after.loc["none"], axis=1)
    methods = list(after.index[1:])
    lowered = [m for m in methods if rel.loc[m, "readout"] < 1]
    text = [f"On held-out images at $T = {T_cal}$, joint calibration changed the readout's loss by "
            + ", ".join(f"{100 * (rel.loc[m, 'readout'] - 1):+.1f}% ({m})" for m in joint)
            + f", the layer-wise baseline by {100 * (rel.loc['layerwise', 'readout'] - 1):+.1f}%."]
    if len(lowered) < len(methods):
        raised = [m for m in methods if m not in lowered]
        text.append(
            f"In this run calibration *raised* the readout's loss for {', '.join(raised)}. Adam's first step moves every "
            f"weight by about the learning rate ({lr}) in the direction of its gradient's sign, however small the "
            f"gradient; after {steps} step(s) the weights of the joint calibrations moved by "
            f"{100 * dw.loc[joint].min().min():.1f}% to {100 * dw.loc[joint].max().max():.1f}% of their mean magnitude, "
            f"and the uncalibrated SNN's readout loss was already {after.loc['none', 'readout']:.4f}: a few large steps "
            "can undo more than they fix.")
    return " ".join(text)


def results_text(prof: Profile, wide: pd.DataFrame, summary: pd.DataFrame, pairs: pd.DataFrame, T_pair: int,
                 joint: Sequence[str], steps: int) -> str:
    """What calibration bought in this run, against no calibration, the layer-wise baseline and the paper's Table 5
    (``wide``: accuracy per T and calibration; ``summary``: indexed by calibration)."""
    cal, ev = prof.calibration, prof.evaluation
    T_cal, methods = cal.T[0], list(wide.columns)
    ann_acc, ann_se, ann_all = summary[["ann_acc", "ann_se", "ann_acc_all_test"]].iloc[0]
    n_test = int(summary["test_images"].iloc[0])
    f = pm_format(n_test)
    T_far = int(pairs["T_a"].max())  # the longest reported T: far from the calibrated length
    p5 = TABLE5.set_index("weighting")
    vs_lw = {m: pair_at(pairs, m, "layerwise", T_pair) for m in joint}
    best = max(joint, key=lambda m: vs_lw[m]["diff"])
    text = [
        (f"Paired differences are reported at $T = {T_pair}$, the reported $T$ nearest to the calibration length "
         f"$T = {T_cal}$. " if T_pair != T_cal else "")
        + f"At $T = {T_pair}$ the uncalibrated SNN reaches {f(wide.loc[T_pair, 'none'])}%; "
        + "; ".join(f"{METHOD_LABELS[m]} {f(wide.loc[T_pair, m])}%, {diff_text(pair_at(pairs, m, 'none', T_pair))} "
                    "against no calibration" for m in methods[1:]) + ".",
        f"At $T = {T_far}$ the changes against no calibration are "
        + "; ".join(f"{METHOD_LABELS[m]} {diff_text(pair_at(pairs, m, 'none', T_far))}" for m in methods[1:]) + ".",
        f"Joint calibration against the layer-wise baseline at $T = {T_pair}$: "
        + "; ".join(f"{m} {diff_text(vs_lw[m])}" for m in joint) + ".",
    ]
    r = vs_lw[best]
    if r["high"] < 0:
        text.append(f"In this run the layer-wise baseline beats every joint calibration at $T = {T_pair}$ beyond the "
                    "noise, against what the paper's argument leads one to expect.")
    elif r["low"] > 0:
        text.append(f"Joint calibration ({best}) beats the layer-wise baseline at $T = {T_pair}$ beyond the noise, as "
                    "the paper's argument expects.")
    else:
        text.append(f"The best joint calibration ({best}) and the layer-wise baseline are within noise of each other at "
                    f"$T = {T_pair}$: this run neither shows nor refutes the paper's \"joint beats layer-wise\".")
    if r["diff"] < 0:
        text.append(
            "One difference between the two: the layer-wise method's first stage shifts every neuron's initial membrane "
            "by the mean ANN-SNN difference, while joint calibration here changed only weights and biases, with "
            f"{steps} Adam steps at learning rate {cal.lr}.")
    text.append(
        f"Table 5 orders the weightings cosine, sigmoid, average by the $T$ they need; at $T = {T_pair}$ cosine minus "
        f"average is {diff_text(pair_at(pairs, 'cosine', 'average', T_pair))}, cosine minus sigmoid "
        f"{diff_text(pair_at(pairs, 'cosine', 'sigmoid', T_pair))}.")
    text.append(
        f"Within 0.1 points of the ANN on the same {n_test} images ({pm(ann_acc, ann_se)}%): "
        + ", ".join(f"{m} {at_T(summary.loc[m], ev.T_max)}" for m in methods)
        + " (in brackets the range of $T$ the noise allows).")
    text.append(
        f"The paper's Net4 reaches {pct(p5.loc['cosine', 'SNN'])} at $T = {p5.loc['cosine', 'T']}$ with cosine weighting "
        f"against an ANN of {pct(p5.loc['cosine', 'ANN'])}, and needs {p5.loc['average', 'T']} and "
        f"{p5.loc['sigmoid', 'T']} steps with average and sigmoid weighting (whole test set). Our ANN reaches "
        f"{pct(ann_all)} on the whole test set, {100 * (ann_all - p5.loc['cosine', 'ANN']):+.2f} points from the paper's, "
        f"because profile `{prof.name}` trains it for {prof.ann.epochs} epoch(s) on {prof.ann.train_subset or 'all'} "
        f"images and calibrates for {cal.epochs} epoch(s) on {cal.subset or 'all'} images "
        "(the paper calibrates for at least 20 epochs: its schedule raises $\\kappa$ after the 10th epoch and at the 20th). "
        + (f"One simulated test image is {100 / n_test:.2f} points, coarser than the 0.1-point criterion, so the "
           "smallest $T$ values above are indicative only." if n_test < 1000 else ""))
    return " ".join(text)


def _mean_sd(mean: float, sd: float) -> str:
    """``'92.10 ± 0.31'`` in percent or points; the SD is a dash for a single seed."""
    return f"{100 * mean:.2f} ± " + ("–" if pd.isna(sd) else f"{100 * sd:.2f}")


def seed_table(spread: pd.DataFrame, runs: pd.DataFrame, Ts: Sequence[int]) -> pd.DataFrame:
    """The seed-to-seed spread of :func:`~negspike.experiments.seed_study` at ``Ts``: each seed's
    SNN accuracy, the mean and standard deviation over the seeds, and one run's standard error."""
    rows = []
    for r in spread[spread["T"].isin(Ts)].itertuples():
        per_seed = runs[(runs["calibration"] == r.calibration) & (runs["T"] == r.T)].sort_values("seed")
        rows.append({"calibration": METHOD_LABELS.get(r.calibration, r.calibration), "T": r.T, "seeds": r.seeds,
                     "SNN (%) per seed": ", ".join(f"{100 * a:.2f}" for a in per_seed["snn_acc"]),
                     "ANN (%) mean ± SD": _mean_sd(r.ann_mean, r.ann_std),
                     "SNN (%) mean ± SD": _mean_sd(r.snn_mean, r.snn_std),
                     "gap (points) mean ± SD": _mean_sd(r.gap_mean, r.gap_std),
                     "gap range (points)": f"{100 * r.gap_min:.2f} to {100 * r.gap_max:.2f}",
                     "one run's SE of the SNN (points)": f"{100 * r.snn_se_mean:.2f}"})
    return pd.DataFrame(rows)


def seed_text(spread: pd.DataFrame, runs: pd.DataFrame, T: int, method: str = "cosine", base: str = "none") -> str:
    """How far the seed moves the headline row (``method`` at ``T``), against one run's sampling
    error, and the gain of ``method`` over ``base`` seed by seed."""
    r = spread[(spread["calibration"] == method) & (spread["T"] == T)].iloc[0]
    n = int(r["seeds"])
    if n < 2:
        return "Only one seed was run, so the seed-to-seed spread is not measured here (profile key `evaluation.seeds`)."
    ratio = r["snn_std"] / r["snn_se_mean"]
    size = ("less than" if ratio < 0.67 else "about as much as" if ratio <= 1.5 else "more than")
    at_T = runs[runs["T"] == T].pivot(index="seed", columns="calibration", values="snn_acc")
    gains = (at_T[method] - at_T[base]).sort_index()
    return (f"Across {n} seeds (each trains, optimises the thresholds and calibrates afresh; all on the same test "
            f"images) the SNN ({METHOD_LABELS.get(method, method)}) reaches {100 * r['snn_mean']:.2f}% at $T = {T}$ "
            f"with a standard deviation of {100 * r['snn_std']:.2f} points, and its gap to its own ANN is "
            f"{100 * r['gap_mean']:.2f} ± {100 * r['gap_std']:.2f} points (from {100 * r['gap_min']:.2f} to "
            f"{100 * r['gap_max']:.2f}). One run's standard error on these images is {100 * r['snn_se_mean']:.2f} "
            f"points, so the seed moves the accuracy {size} the choice of test images does; with {n} seeds a "
            f"standard deviation is itself uncertain by about {100 / (2 * (n - 1)) ** 0.5:.0f}%, so read this as an "
            f"order of magnitude. Seed by seed, {METHOD_LABELS.get(method, method)} minus "
            f"{METHOD_LABELS.get(base, base)} at $T = {T}$ (same images): "
            + ", ".join(f"{100 * g:+.2f}" for g in gains) + " points.")
