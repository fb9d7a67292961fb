"""Figures of the chapter "The signed neuron" (``book/signed_neuron.ipynb``)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..plots import COLORS, sawtooth


def membrane(currents: torch.Tensor, v0: float, v_temp: np.ndarray, v_after: np.ndarray, out: np.ndarray,
             p_th: float, n_th: float) -> plt.Figure:
    """A membrane trace (in units of P_th) with both kinds of spikes below it, for an input that is
    positive for its first steps and negative for the rest."""
    fig, (ax, ax_s) = plt.subplots(2, 1, figsize=(6.8, 5.0), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1.2]})
    x, y = sawtooth(v0, v_temp / p_th, v_after / p_th)
    ax.plot(x, y, color=COLORS["membrane"], label="membrane $v$")
    ax.axhline(1.0, color=COLORS["positive"], ls="--", label=r"$P_{th} = \theta_P$")
    ax.axhline(n_th / p_th, color=COLORS["negative"], ls="--", label=r"$N_{th} = \theta_N/\alpha$")
    k, n = int((currents > 0).sum()), len(currents)  # the positive part comes first
    ax.axvspan(0, k, color="0.9", zorder=0)
    for mid, z in ((k / 2, currents[0].item()), ((k + n) / 2, currents[-1].item())):
        ax.text(mid, -4.6, rf"input $z = {z / p_th:+g}\,P_{{th}}$", ha="center", fontsize="small")
    ax.set(ylabel=r"membrane potential [$P_{th}$]", ylim=(-4.9, 2.5),
           title="Signed neuron: positive and negative spikes")
    ax.legend(loc="upper center", ncol=3, fontsize="small")
    t = np.arange(1, len(out) + 1)
    pos, neg = out > 0, out < 0
    ax_s.vlines(t[pos], 0, out[pos], color=COLORS["positive"], lw=2.5, label=r"positive, carries $\theta_P$")
    ax_s.vlines(t[neg], 0, out[neg], color=COLORS["negative"], lw=2.5, label=r"negative, carries $\theta_N$")
    ax_s.axhline(0, color="0.3", lw=0.8)
    ax_s.set(xlabel="time step t", ylabel="spike value\n(ANN units)", ylim=(-0.5, 1.2))
    ax_s.legend(loc="upper right", fontsize="small")
    return fig


def one_input(cum: dict[str, np.ndarray], z: float, target: float, theta_p: float, theta_n: float,
              n_th: float, ibt_n_th: float) -> plt.Figure:
    """The decoded value of one negative input after each step, signed neuron (``cum["signed"]``)
    against IBT (``cum["ibt"]``, whose θ_N is -θ_P)."""
    fig, ax = plt.subplots()
    t = np.arange(1, len(cum["signed"]) + 1)
    ax.axhline(target, color=COLORS["ann"], lw=3, alpha=0.35, label=rf"ANN: $\alpha z$ = {target:.2f}")
    ax.step(t, cum["signed"], where="post", color=COLORS["signed"],
            label=rf"signed, $\theta_N$ = {theta_n} ($N_{{th}}$ = {n_th:.3g})")
    ax.step(t, cum["ibt"], where="post", color=COLORS["ibt"],
            label=rf"IBT, $\theta_N$ = {-theta_p} ($N_{{th}}$ = {ibt_n_th:.3g})")
    ax.set(xlabel="time step t", ylabel=r"decoded value after t steps (ANN units)",
           ylim=(-0.112, 0.062), title=f"Decoding one negative input, z = {z:.1f}")
    ax.legend(loc="upper right", fontsize="small")
    return fig


def negative_error(neg_err: pd.DataFrame, T_values: Sequence[int], theta_p: float, theta_n: float) -> plt.Figure:
    """Mean error on negative inputs against T (log-log), signed neuron and IBT, with their bounds
    |θ_N|/T and θ_P/T."""
    fig, ax = plt.subplots()
    Ts = np.array(T_values, dtype=float)
    for name, key, bound in [("signed", "signed", abs(theta_n)), ("IBT", "ibt", theta_p)]:
        d = neg_err[neg_err["neuron"] == name]
        ax.loglog(d["T"], d["mean_error"], "o-", color=COLORS[key], label=f"{name}: mean error")
        ax.loglog(Ts, bound / Ts, "--", color=COLORS[key], alpha=0.7, label=f"{name}: bound {bound}/T")
    ax.set(xlabel="number of time steps T", ylabel=r"$|\hat a - \alpha z|$ (ANN units)",
           title="Negative inputs: error against T")
    ax.legend(fontsize="small")
    return fig


def staircase(z: torch.Tensor, ann: torch.Tensor, decoded: dict[int, tuple[torch.Tensor, torch.Tensor]],
              theta_n: float) -> plt.Figure:
    """Decoded value against the input for each T of ``decoded`` (signed, IBT), with the ANN's
    clipped Leaky ReLU: the whole transfer function left, the negative inputs zoomed right."""
    # One row per T: the whole transfer function on the left, the negative side (where the two
    # neurons differ) zoomed on the right.
    fig, axes = plt.subplots(len(decoded), 2, figsize=(7.6, 6.4), gridspec_kw={"width_ratios": [1, 1.15]})
    neg = z < 0
    for (ax_full, ax_neg), (T, (a_sig, a_ibt)) in zip(axes, decoded.items()):
        for ax, sel in ((ax_full, slice(None)), (ax_neg, neg)):
            ax.plot(z[sel], ann[sel], color=COLORS["ann"], lw=3, alpha=0.35, label="ANN: clipped Leaky ReLU")
            ax.step(z[sel], a_sig[sel], where="post", color=COLORS["signed"], label="signed")
            ax.step(z[sel], a_ibt[sel], where="post", color=COLORS["ibt"], ls="--", label="IBT")
        ax_full.set(title=f"T = {T}: all inputs", ylabel=r"decoded value $\hat a(T)$")
        ax_neg.set(title=f"T = {T}: negative inputs (zoom)", ylim=(1.15 * theta_n, 0.03))
    for ax in axes[-1]:
        ax.set_xlabel("input current z (ANN units)")
    axes[0, 1].legend(loc="lower right", fontsize="small")
    fig.suptitle("Firing-rate resolution at small T", fontweight="bold")
    return fig
