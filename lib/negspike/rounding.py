"""The initial membrane and the rounding of both sides of a signed neuron.

An IF neuron started at ``v(0) = P_th / 2`` rounds its rate instead of flooring it
(Bu et al. 2022). A signed neuron has one membrane for two thresholds: a start of
``a * P_th`` rounds the positive side at ``a = 1/2`` but moves the membrane *away* from
``N_th``, so a negative input first has to undo ``a * P_th`` of charge. For constant inputs
spread evenly over each side, the mean absolute decoding error over ``T`` steps is

    positive side:  P_th * (a**2 + (1 - a)**2) / 2 / T
    negative side:  |theta_n| * (a * P_th / |N_th| + 1/2) / T      (a >= 0)

in output units, where ``|theta_n| = alpha |N_th|``. Their sum is smallest at
``a = (1 - alpha) / 2`` (:func:`balanced_start`), whatever the thresholds: one membrane
cannot round both sides, and the negative side's errors are ``alpha`` times smaller in
output units. The book's tracking neurons keep the owed output instead of one membrane and
round both sides at ``v_init = 0.5``. :func:`side_errors` measures all of this.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch

from .tracking import make_neuron

__all__ = ["balanced_start", "side_errors"]


def balanced_start(alpha: float) -> float:
    """The start ``a`` (``v(0) = a * P_th``) of a signed or IBT neuron that minimises the summed
    mean absolute error of both sides for constant inputs: ``(1 - alpha) / 2``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return (1.0 - alpha) / 2


@torch.no_grad()
def side_errors(kinds: Iterable[str], v_inits: Iterable[float], theta_p: float, theta_n: float, alpha: float,
                T: int, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean absolute decoding error (output units) of each neuron kind started at each ``v_init``,
    for ``n`` constant inputs drawn evenly over the positive side ``(0, theta_p)`` and ``n`` over
    the negative side ``(theta_n / alpha, 0)`` (the input range that the clip does not cut), run
    ``T`` steps. Tracking neurons accept ``v_init`` in ``[0, 0.5]`` only; larger values are skipped.
    One row per kind, ``v_init`` and side (``positive``, ``negative``, ``both``: their sum)."""
    g = torch.Generator().manual_seed(seed)
    u = (torch.arange(n, dtype=torch.float64) + torch.rand(n, generator=g, dtype=torch.float64)) / n
    sides = {"positive": (u * theta_p).float(), "negative": (u * theta_n / alpha).float()}
    rows = []
    for kind in kinds:
        for v in v_inits:
            if kind in ("tracking", "pair") and v > 0.5:
                continue
            errs = {}
            for side, z in sides.items():
                neuron = make_neuron(kind, theta_p, theta_n, alpha, v)
                out = neuron.run(z, steps=T).sum(0) / T
                target = torch.where(z > 0, z, alpha * z).clamp(theta_n, theta_p)
                errs[side] = (out - target).abs().mean().item()
            errs["both"] = errs["positive"] + errs["negative"]
            rows += [{"neuron": kind, "v_init": float(v), "side": s, "T": T, "mean_abs_error": e} for s, e in errs.items()]
    return pd.DataFrame(rows)
