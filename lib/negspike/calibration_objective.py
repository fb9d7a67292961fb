"""The joint calibration's objective (the paper's section 4.2): the per-layer weights
``w_l(p)`` that move from shallow to deep layers, the surrogate slope ``kappa`` over epochs,
and the loss between a layer's SNN rate and its ANN activation."""
from __future__ import annotations

import math
from typing import Iterable

import torch

__all__ = ["WEIGHTINGS", "layer_weights", "KAPPA_SCHEDULE", "SCALE_FLOOR", "kappa_at", "layer_loss"]

WEIGHTINGS = ("average", "cosine", "sigmoid")


def layer_weights(kind: str, L: int, p: float, mu: float = 8.0, floor: float = 0.02) -> torch.Tensor:
    """Weights ``w_1..w_L`` of the layers at progress ``p`` in [0, 1], normalised to sum to 1.

    ``average``: 1/L (eq. 25). ``cosine``: ``cos(pi/2 (l/L - p)) + floor`` (eq. 27).
    ``sigmoid``: ``mu s (1 - s) + floor`` with ``s = sigmoid(mu (l/L - p))`` (eqs. 28-30).
    The ``floor`` (added before normalising) keeps every weight strictly positive where the
    paper's formulas reach 0 (the last layer at p = 0, the first at p = 1 for the cosine).
    Both shaped weightings decrease with depth at p = 0, increase at p = 1, and peak near
    layer ``p * L`` in between.
    """
    if kind not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {kind!r}; choose one of {WEIGHTINGS}")
    if L < 1:
        raise ValueError(f"number of layers must be >= 1, got {L}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"progress p must lie in [0, 1], got {p}")
    if floor <= 0:
        raise ValueError(f"floor must be > 0 so that every weight is positive, got {floor}")
    x = torch.arange(1, L + 1, dtype=torch.float64) / L - p
    if kind == "average":
        phi = torch.ones(L, dtype=torch.float64)
    elif kind == "cosine":
        phi = torch.cos(math.pi / 2 * x) + floor
    else:
        if mu <= 0:
            raise ValueError(f"sigmoid weighting needs mu > 0, got {mu}")
        s = torch.sigmoid(mu * x)
        phi = mu * s * (1 - s) + floor
    return (phi / phi.sum()).float()


# (0-based epoch index from which it applies, kappa). The paper: "kappa is set to 6.7, and
# is increased to 10 after 10 epochs, and is increased to 15 at the 20-th epoch". Epochs
# are counted from 1 there: "after 10 epochs" is the 11th epoch (index 10), "the 20-th
# epoch" is index 19.
KAPPA_SCHEDULE: tuple[tuple[int, float], ...] = ((0, 6.7), (10, 10.0), (19, 15.0))

# A sample's ANN map whose spread is below this fraction of the whole batch's spread
# (a constant map: all zero or fully clipped) is scaled by the floor instead; see layer_loss.
SCALE_FLOOR = 0.1


def kappa_at(epoch: int, schedule: Iterable[tuple[int, float]] = KAPPA_SCHEDULE) -> float:
    """Surrogate slope for the 0-based epoch index ``epoch`` (``range(epochs)``).

    ``schedule`` holds ``(first index, kappa)`` pairs. The default follows the paper: 6.7
    for the 1st to 10th epoch (indices 0-9), 10 "after 10 epochs" (indices 10-18) and 15
    from "the 20-th epoch" on (index 19).
    """
    kappa = None
    for start, value in sorted(schedule):
        if epoch >= start:
            kappa = value
    if kappa is None:
        raise ValueError(f"the kappa schedule {list(schedule)} does not cover epoch {epoch}")
    return kappa


def _spread(t: torch.Tensor) -> torch.Tensor:
    """Standard deviation of all values of ``t``, detached (a scalar)."""
    return t.detach().float().std(unbiased=False)


def layer_loss(rate: torch.Tensor, target: torch.Tensor, kind: str = "kl", temperature: float = 1.0) -> torch.Tensor:
    """Discrepancy between an SNN layer's decoded rate and the ANN activation (same shape).

    ``"kl"``: KL(P || Q) with P and Q the softmax, over each sample's flattened feature
    map, of ANN activation and SNN rate, both divided by ``temperature`` times a scale
    (detached), so signed values are allowed and the loss does not depend on the layer's
    scale. The scale is the ANN map's standard deviation, floored at ``SCALE_FLOOR`` times
    the spread of the ANN maps over the whole batch: a constant map (all zero, or fully
    clipped) has no spread of its own, and dividing by ~0 would blow the loss up to ~1e7
    and poison Adam's moments. Where the ANN maps are constant over the whole batch (a
    dead or saturated layer) the SNN rates' spread over the batch is the scale instead,
    so the loss measures how far from flat the SNN's maps are, in their own units (a KL
    of order 1 at most for ordinary spike noise).
    ``"mse"``: mean squared error divided by the mean squared ANN activation (detached),
    again scale-free; for an all-zero ANN batch, divided by the SNN's mean square instead.
    """
    b = rate.shape[0]
    r, a = rate.reshape(b, -1), target.reshape(b, -1)
    if kind == "kl":
        floor = SCALE_FLOOR * _spread(a)
        # Constant over the batch, up to float rounding (which leaves ~1e-7 of the value)?
        if floor <= 1e-5 * SCALE_FLOOR * a.detach().abs().mean():
            floor = _spread(r)
            if floor == 0:  # both constant: each softmax is uniform, the loss is 0 at any scale
                floor = torch.ones((), device=a.device)
        # (a one-value map has no standard deviation; its softmax is 1 whatever the scale)
        own = a.detach().std(1, keepdim=True) if a.shape[1] > 1 else torch.zeros_like(a[:, :1])
        scale = torch.maximum(own, floor) * temperature
        log_q = torch.log_softmax(r / scale, 1)
        log_p = torch.log_softmax(a / scale, 1)
        return (log_p.exp() * (log_p - log_q)).sum(1).mean()
    if kind == "mse":
        norm = a.detach().pow(2).mean()
        if norm == 0:
            norm = r.detach().pow(2).mean()
        return ((r - a) ** 2).mean() / (norm + 1e-30)
    raise ValueError(f"unknown calibration loss {kind!r}; choose 'kl' or 'mse'")
