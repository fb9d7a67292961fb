"""Figures of the chapter "The variance penalty" (``book/variance_penalty.ipynb``)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..plots import COLORS, STAGE_COLORS, legend_panel, threshold_histogram

__all__ = ["eta_signed_vs_magnitude", "eta_per_epoch", "channels_before_after", "tails_thresholds"]

#: The two fine-tuning runs: with the penalty and the control without it.
RUNS = ("variance penalty", "control (no penalty)")


def eta_signed_vs_magnitude(per_channel: pd.DataFrame, layers: list[str], eps: float) -> Figure:
    """Per-channel eta of |a| against eta of signed a (columns ``layer``, ``eta |a|``, ``eta signed``), log-log."""
    fig, ax = plt.subplots()
    for i, name in enumerate(layers):  # the first layers on top: act3 has many more channels
        d = per_channel[per_channel["layer"] == name]
        ax.scatter(d["eta |a|"], d["eta signed"], s=10, alpha=0.6, label=name, color=f"C{i}", zorder=3 - i)
    lim = [per_channel.min(numeric_only=True).min() / 2, per_channel["eta |a|"].max() * 3]
    ax.plot(lim, lim, color=COLORS["ann"], lw=1, ls="--", label="equal")
    ax.set(xscale="log", yscale="log", xlabel=r"per-channel $\eta$ of $|a|$", ylabel=r"per-channel $\eta$ of signed $a$",
           title=rf"Trained Net4: $\eta$ per channel, $\epsilon$ = {eps:g}")
    ax.legend(fontsize="small")
    return fig


def eta_per_epoch(eta_hist: pd.DataFrame, layers: list[str]) -> Figure:
    """Mean eta of each layer per fine-tuning epoch (columns run, epoch, layer, eta): penalty solid, control dashed."""
    fig, ax = plt.subplots()
    for i, name in enumerate(layers):
        for run_name, ls in zip(RUNS, ("-", "--")):
            d = eta_hist[(eta_hist["layer"] == name) & (eta_hist["run"] == run_name)]
            ax.plot(d["epoch"], d["eta"], ls, marker="o", color=f"C{i}",
                    label=f"{name}, {'penalty' if ls == '-' else 'control'}")
    ax.set(xlabel="fine-tuning epoch (0: trained model)", ylabel=r"mean $\eta$ of the layer",
           xticks=sorted(eta_hist["epoch"].unique()), title=r"$\eta$ per layer during fine-tuning")
    ax.legend(fontsize="x-small", ncol=2)
    return fig


def channels_before_after(samples: dict[str, dict], longest: dict[str, list[int]]) -> Figure:
    """Histograms of the chosen channels (``longest``: layer -> channels, one column per layer, one row per
    channel) in the trained and the variance-penalised model, with each channel's max and min as lines;
    ``samples``: :func:`negspike.tails.channel_samples` per model label."""
    grid_layers = list(longest)
    # one column per layer and one row per rank, so that each panel stays readable on the page
    fig, axes = plt.subplots(3, len(grid_layers), figsize=(7.6, 8.4))
    for row, name in zip(axes.T, grid_layers):
        for ax, c in zip(row, longest[name]):
            for label, ls in (("trained", "-"), ("variance penalty", "--")):
                s = samples[label][name]
                threshold_histogram(ax, s["values"][c], bins=100, color=STAGE_COLORS[label], label=label, alpha=0.45)
                for i, x in enumerate((s["max"][c].item(), s["min"][c].item())):
                    ax.axvline(x, ls=ls, color=STAGE_COLORS[label], lw=1.3, label=f"max, {label}" if i == 0 else None)
            ax.set(title=f"{name} channel {c}", xlabel="activation value" if ax is row[-1] else "")
            if name != grid_layers[0]:
                ax.set_ylabel("")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small")
    fig.suptitle("Channels with the longest tails,\nbefore and after the variance penalty", fontweight="bold")
    return fig


def tails_thresholds(before_after: pd.DataFrame, layers: list[str]) -> Figure:
    """Tail and max thresholds of each fine-tuned model relative to the trained model's, as bars from 1
    (``before_after``: one row per model and layer, columns tail, theta_p (max), theta_n (max))."""
    # The changes are a few percent, invisible on bars that start at zero: plot each model's value
    # relative to the trained model's, as bars that start at 1.
    # two panels per row (the fourth holds the legend) so that ticks and labels stay readable
    fig, axes = plt.subplots(2, 2, figsize=(7.6, 6.0))
    width = 0.8 / len(RUNS)
    xpos = np.arange(len(layers))
    colors = {"variance penalty": STAGE_COLORS["variance penalty"], "control (no penalty)": "0.65"}
    ref = before_after[before_after["model"] == "trained"].set_index("layer").loc[layers]
    titles = {"tail": "tail", "theta_p (max)": r"max threshold $\theta_P$", "theta_n (max)": r"max threshold $\theta_N$"}
    for ax, col in zip(axes.flat, titles):
        for i, label in enumerate(RUNS):
            d = before_after[before_after["model"] == label].set_index("layer").loc[layers]
            ax.bar(xpos + (i - (len(RUNS) - 1) / 2) * width, d[col] / ref[col] - 1, width, bottom=1, label=label,
                   color=colors[label])
        ax.axhline(1, color=STAGE_COLORS["trained"], lw=1.2, label="trained (= 1)")
        ax.set(xticks=xpos, xticklabels=layers, title=titles[col], ylabel="relative to the trained model")
        ax.grid(False, axis="x")
    legend_panel(axes, "model")
    fig.suptitle("Tails and max thresholds after fine-tuning", fontweight="bold")
    return fig
