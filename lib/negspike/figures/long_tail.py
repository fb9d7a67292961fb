"""Figures of the chapter "Long-tailed activations" (``book/long_tail.ipynb``)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from ..plots import COLORS, PALETTE, legend_panel, threshold_histogram

_pal = sns.color_palette(PALETTE)
# One colour per threshold method, in the order of the threshold marks of the histograms
# (negspike.plots.threshold_histogram: max, then the percentiles from the largest), so that bars and marks agree.
_METHOD_COLORS = [_pal[3], _pal[1], _pal[0], _pal[4]]

Marks = dict[str, tuple[float | None, float | None]]


def toy_error(toy: pd.DataFrame, thresholds: Sequence[str]) -> plt.Figure:
    """Mean error of the toy layer against T (log-log), one line per negative threshold."""
    fig, ax = plt.subplots()
    styles = dict(zip(thresholds, ["o-", "s--", "^-", "v:"]))
    for name in thresholds:
        d = toy[toy["threshold"] == name]
        ax.loglog(d["T"], d["mean_error"], styles[name], label=rf"$\theta_N$ = {d['theta_n'].iloc[0]:.2f} ({name})")
    ax.set(xlabel="number of time steps T", ylabel=r"mean $|\hat a - a|$ (ANN units)",
           title="Toy layer with a long tail: error against T")
    ax.legend(fontsize="small")
    return fig


def channel(values: torch.Tensor, marks: Marks, layer: str, c: int) -> plt.Figure:
    """The paper's Figure 1: histograms of one channel's negative and positive outputs with threshold marks."""
    fig, (ax_n, ax_p) = plt.subplots(1, 2, figsize=(7.6, 3.8))
    threshold_histogram(ax_n, values[values < 0], {k: (None, n) for k, (p, n) in marks.items()}, color=COLORS["negative"])
    threshold_histogram(ax_p, values[values > 0], {k: (p, None) for k, (p, n) in marks.items()}, color=COLORS["positive"])
    ax_n.set(title=f"{layer}, ch. {c}: negative outputs")
    ax_p.set(title=f"{layer}, ch. {c}: positive outputs", ylabel="")
    handles, labels = ax_n.get_legend_handles_labels()  # one legend below both panels
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize="small")
    return fig


def longest_channels(samples: dict[str, dict], picked: pd.DataFrame, marks: list[Marks]) -> plt.Figure:
    """A grid of channel histograms (one column per layer, one row per rank), each value scaled by the
    maximum of its sign; ``picked`` has a row (layer, channel, tail_pos, tail_neg) per panel, ``marks``
    the thresholds of each row's channel (``"max"``: its extremes)."""
    layers = list(dict.fromkeys(picked["layer"]))
    rows = picked.groupby("layer", sort=False).size().max()
    # one column per layer and one row per rank, so that each panel stays readable on the page
    fig, axes = plt.subplots(rows, len(layers), figsize=(7.6, 8.4), sharex=True)
    for col, name in enumerate(layers):
        sel = np.flatnonzero(picked["layer"].to_numpy() == name)
        for ax, i in zip(axes[:, col], sel):
            r, m = picked.iloc[i], marks[i]
            c = int(r["channel"])
            v = samples[name]["values"][c]
            hi, lo = m["max"]
            norm = torch.where(v > 0, v / hi, v / abs(lo))  # fraction of each sign's range, in [-1, 1]
            scaled = {k: (None if p is None else p / hi, None if n is None else n / abs(lo)) for k, (p, n) in m.items()}
            threshold_histogram(ax, norm, scaled, bins=100, color="0.7")  # neutral grey: the marks carry the colours
            ax.set(title=f"{name} ch. {c}: tails +{r['tail_pos']:.2f} / -{r['tail_neg']:.2f}", xlim=(-1.05, 1.05),
                   xlabel="a / max of its sign" if ax is axes[-1, col] else "")
            if col:
                ax.set_ylabel("")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small")
    fig.suptitle("Channels with the longest tails\n(values scaled by the maximum of their sign)", fontweight="bold")
    return fig


def range_usage(usage: pd.DataFrame, methods: Sequence[str], layers: Sequence[str], T: int) -> plt.Figure:
    """Bars per layer and threshold method: mean a/θ_P, mean a/θ_N and the share rounded to zero at T."""
    # two panels per row (the fourth holds the legend) so that ticks and labels stay readable
    fig, axes = plt.subplots(2, 2, figsize=(7.6, 6.0))
    width = 0.8 / len(methods)
    xpos = np.arange(len(layers))
    for ax, col, title in zip(axes.flat, ["mean a/theta_p", "mean a/theta_n", f"below one spike at T={T}"],
                              ["positive side: mean a/θ_P", "negative side: mean a/θ_N",
                               f"share rounded to zero at T = {T}"]):
        for i, method in enumerate(methods):
            d = usage[usage["thresholds"] == method].set_index("layer").loc[list(layers)]
            ax.bar(xpos + (i - (len(methods) - 1) / 2) * width, 100 * d[col], width, label=method,
                   color=_METHOD_COLORS[i])
        ax.set(xticks=xpos, xticklabels=layers, title=title, ylabel="%")
        ax.grid(False, axis="x")
    legend_panel(axes, "thresholds")
    fig.suptitle("How much of the rate range the activations use", fontweight="bold")
    return fig
