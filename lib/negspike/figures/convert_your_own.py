"""Figures of the chapter "Convert your own network" (``book/convert_your_own.ipynb``)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ..plots import COLORS

__all__ = ["RESNET", "own_network", "row_at"]

#: The ``network`` name of torchvision's ResNet-18 in the tables of :func:`negspike.own_network.own_network_study`.
RESNET = "torchvision ResNet-18 (random weights)"


def own_network(acc: pd.DataFrame, conv: pd.DataFrame, ann: pd.DataFrame) -> Figure:
    """FunctionalNet's SNN accuracy against T beside the ANN's (left), and the relative error of each
    network's SNN read-out against its ANN's output (right), one colour per neuron."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    a_ann = float(ann["ann_acc"].iloc[0])
    for neuron, d in acc.groupby("neuron", sort=False):
        ax1.plot(d["T"], 100 * d["snn_acc"], color=COLORS.get(neuron), label=f"SNN, {neuron} neuron")
    ax1.axhline(100 * a_ann, color=COLORS["ann"], ls="--", label="ANN, same images")
    ax1.set(xscale="log", xlabel="time steps T", ylabel="test accuracy [%]",
            title=f"FunctionalNet, {int(ann['images'].iloc[0])} test images")
    ax1.set_ylim(max(0, 100 * a_ann - 25), min(100, 100 * a_ann + 5))
    ax1.legend()
    styles = {"FunctionalNet": "-", RESNET: ":"}
    for (network, neuron), d in conv.groupby(["network", "neuron"], sort=False):
        ax2.plot(d["T"], d["rel_error"], styles[network], color=COLORS.get(neuron), label=f"{network}, {neuron}")
    ax2.set(xscale="log", yscale="log", xlabel="time steps T", ylabel="relative error of the read-out",
            title="SNN read-out against the ANN's output")
    ax2.legend(fontsize=8)
    return fig


def row_at(df: pd.DataFrame, T: int, **where) -> pd.Series:
    """The row of ``df`` at time step ``T`` whose columns match ``where`` (``neuron="signed"``)."""
    sel = df["T"] == T
    for k, v in where.items():
        sel &= df[k] == v
    return df[sel].iloc[0]
