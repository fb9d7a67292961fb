"""Figures of the report chapter."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..book import pct
from ..plots import COLORS, METHOD_COLORS, METHOD_LABELS, zoom_figure, zoom_on_ann


def _curves(ax: plt.Axes, acc: pd.DataFrame, band: bool) -> None:
    for method, g in acc.groupby("calibration", sort=False):
        ax.plot(g["T"], 100 * g["snn_acc"], marker=".", color=METHOD_COLORS.get(method),
                label=METHOD_LABELS.get(method, method))
        if band:
            ax.fill_between(g["T"], 100 * (g["snn_acc"] - g["snn_se"]), 100 * (g["snn_acc"] + g["snn_se"]),
                            color=METHOD_COLORS.get(method), alpha=0.12, lw=0)
    ax.axhline(100 * acc["ann_acc"].iloc[0], ls="--", color=COLORS["ann"], lw=1.2, label="ANN (clipped), same images")


def accuracy_vs_T(acc: pd.DataFrame, paper_snn: float, profile: str) -> plt.Figure:
    """The paper's Figure 3 from ``calibration_snn_acc``: every calibration's accuracy against T, in
    full and zoomed on the band near the ANN (± one standard error), with the paper's SNN at T = 10."""
    fig, ax_full, ax = zoom_figure(height=6.4)
    for a, band in ((ax_full, False), (ax, True)):
        _curves(a, acc, band)
        a.axhline(100 * paper_snn, ls=":", color="0.45", lw=1.2, label=f"paper: {pct(paper_snn)} at T=10")
    zoom_on_ann(ax_full, ax, acc.pivot(index="T", columns="calibration", values="snn_acc"), acc["ann_acc"].iloc[0],
                acc["T"].max(), "Zoom on T >= {T_zoom} (bands: ± 1 s.e.)")
    fig.suptitle(f"Net4 on Fashion-MNIST, profile {profile}, {int(acc['test_images'].iloc[0])} test images")
    return fig
