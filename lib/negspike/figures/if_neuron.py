"""Figures of the chapter "The integrate-and-fire neuron" (``book/if_neuron.ipynb``)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..plots import COLORS, sawtooth

__all__ = ["membrane", "rate_vs_input", "error_vs_T"]


def membrane(v0: float, v_temp: np.ndarray, v_after: np.ndarray, spikes: np.ndarray, theta: float, z: float,
             T: int) -> Figure:
    """One IF neuron's membrane (integration and soft reset as separate strokes) above its spike train."""
    fig, (ax, ax_s) = plt.subplots(2, 1, figsize=(6.4, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    x, y = sawtooth(v0, v_temp / theta, v_after / theta)
    ax.plot(x, y, color=COLORS["membrane"], label="membrane $v$")
    ax.axhline(1.0, color=COLORS["bound"], ls="--", label=r"threshold $\theta$")
    ax.set(ylabel=r"membrane potential [$\theta$]", ylim=(-0.1, 1.45),
           title=f"IF neuron, constant input z = {z} θ, soft reset")
    ax.legend(loc="upper left", ncol=2)
    ax_s.vlines(np.flatnonzero(spikes) + 1, 0, 1, color=COLORS["positive"], lw=2.5)
    ax_s.set(xlabel="time step t", ylabel="spike", yticks=[0, 1], ylim=(0, 1.2), xticks=range(0, T + 1, 2))
    return fig


def rate_vs_input(z_grid: torch.Tensor, relu_clip: torch.Tensor, curves: Sequence[tuple[int, torch.Tensor]],
                  theta: float) -> Figure:
    """Decoded value against input current, in units of ``theta``: the clipped ReLU and one step curve
    per ``(T, decoded values)`` of ``curves`` (the first dotted, the second solid)."""
    fig, ax = plt.subplots()
    ax.plot(z_grid / theta, relu_clip / theta, color=COLORS["ann"], lw=3, alpha=0.35,
            label=r"ANN: clip(ReLU(z), 0, $\theta$)")
    for (T, a_hat), ls in zip(curves, (":", "-")):
        ax.step(z_grid / theta, a_hat / theta, where="post", ls=ls, color=COLORS["if"], label=f"IF, T = {T}")
    ax.set(xlabel=r"input current z [$\theta$]", ylabel=r"decoded value $\hat a$ [$\theta$]",
           title="IF neuron: decoded rate versus input")
    ax.legend(loc="upper left")
    return fig


def error_vs_T(errors: pd.DataFrame, theta: float, n_inputs: int) -> Figure:
    """Largest and mean rate error against T on log-log axes, with the bound theta/T (columns ``T``,
    ``bound``, ``max_error``, ``mean_error`` of ``errors``, drawn in units of ``theta``)."""
    fig, ax = plt.subplots()
    ax.loglog(errors["T"], errors["bound"] / theta, color=COLORS["bound"], ls="--", label=r"bound $\theta/T$")
    ax.loglog(errors["T"], errors["max_error"] / theta, "o-", color=COLORS["if"], label="largest error")
    ax.loglog(errors["T"], errors["mean_error"] / theta, "s:", color=COLORS["if"], alpha=0.7, label="mean error")
    ax.set(xlabel="number of time steps T", ylabel=r"$|\hat a - \mathrm{clip}(\mathrm{ReLU}(z))|$ [$\theta$]",
           title=f"IF neuron: rate error, {n_inputs} random inputs")
    ax.legend()
    return fig
