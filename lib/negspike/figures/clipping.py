"""Figures of the chapter "Trainable clipping and the effect of threshold optimisation" (``book/clipping.ipynb``)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..plots import STAGE_COLORS

__all__ = ["thresholds", "firing_rates", "snn_acc"]


def thresholds(thr: pd.DataFrame, stages: list[str], layer_names: list[str], percentile: float) -> Figure:
    """Bars of theta_P (top) and theta_N (bottom) per layer at each stage (``thr``: columns stage, layer,
    theta_p, theta_n; ``stages``: trained, variance penalty, the percentile start, clipping)."""
    start = stages[2]  # the clipping step's starting point, the ``percentile``-th percentile
    labels = {"trained": "max, trained", "variance penalty": "max, variance penalty",
              start: f"initial: {percentile:g}th percentile", "clipping": "learned (clipping)"}
    colors = {"trained": STAGE_COLORS["trained"], "variance penalty": STAGE_COLORS["variance penalty"],
              start: "0.7", "clipping": STAGE_COLORS["clipping"]}
    xpos = np.arange(len(layer_names))
    width = 0.8 / len(stages)
    # one panel per row so that bars and labels stay readable on the page
    fig, axes = plt.subplots(2, 1, figsize=(7.2, 6.4), sharex=True)
    titles = {"theta_p": r"positive threshold $\theta_P$", "theta_n": r"negative threshold $\theta_N$"}
    for ax, (col, title) in zip(axes, titles.items()):
        for i, st in enumerate(stages):
            d = thr[thr["stage"] == st].set_index("layer").loc[layer_names]
            ax.bar(xpos + (i - (len(stages) - 1) / 2) * width, d[col], width, color=colors[st], label=labels[st])
        ax.set(xticks=xpos, xticklabels=layer_names, ylabel="threshold (ANN units)", title=title)
        ax.grid(False, axis="x")
    handles, lab = axes[0].get_legend_handles_labels()
    fig.legend(handles, lab, loc="outside lower center", ncol=2, fontsize="small")
    fig.suptitle("Net4: max thresholds and learned clipping thresholds", fontweight="bold")
    return fig


def firing_rates(ours: pd.DataFrame, paper: pd.DataFrame, profile: str) -> Figure:
    """Firing rate of each layer without and with threshold optimisation: ours (left) beside the paper's
    Table 4 (right); both indexed by layer with columns ``without`` and ``with``."""
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.9), sharey=True)
    xpos = np.arange(len(ours))
    for ax, (title, src) in zip(axes, [(f"ours ({profile}, computed)", ours), ("paper's Table 4", paper)]):
        for i, which in enumerate(["without", "with"]):
            ax.bar(xpos + (i - 0.5) * 0.38, src.loc[list(ours.index), which], 0.38, color=STAGE_COLORS[which],
                   label=f"{which} threshold optimisation")
        ax.set(xticks=xpos, xticklabels=list(ours.index), title=title)
        ax.grid(False, axis="x")
    axes[0].set_ylabel("spikes per neuron per time step")
    handles, lab = axes[0].get_legend_handles_labels()
    fig.legend(handles, lab, loc="outside lower center", ncol=2, fontsize="small")
    fig.suptitle("Firing rate of each layer of Net4", fontweight="bold")
    return fig


def snn_acc(acc: pd.DataFrame, n_test: int) -> Figure:
    """SNN accuracy against T without and with threshold optimisation, each with its ANN on the same images
    as a dotted line (``acc``: ``threshold_study``'s snn_acc table)."""
    fig, ax = plt.subplots()
    for which, marker in (("without", "o"), ("with", "s")):
        d = acc[acc["threshold_optimisation"] == which].sort_values("T").set_index("T")
        ann_ref = d["ann_acc"].iloc[0]  # the ANN on the simulated images
        ax.plot(d.index, 100 * d["snn_acc"], marker=marker, ms=4, color=STAGE_COLORS[which],
                label=f"SNN, {which} threshold optimisation")
        ax.axhline(100 * ann_ref, color=STAGE_COLORS[which], ls=":", lw=1.2,
                   label=f"ANN, {which}, same images ({ann_ref:.2%})")
    ax.set(xlabel="number of time steps T", ylabel="test accuracy (%)",
           title=f"Net4, signed neuron, no calibration ({n_test} test images)")
    ax.legend(fontsize="small", loc="lower right")
    return fig
