"""Trainable clipping (Ho and Chang 2021; eq. 24): clipping layers whose thresholds are
learned with the network, and the L2 term that pulls them inward."""
from __future__ import annotations

import torch
from torch import nn

from .activations import activation_sites
from .threshold import Thresholds

__all__ = ["TrainableClip", "add_clipping", "clip_l2"]


class TrainableClip(nn.Module):
    """``clamp(LeakyReLU_alpha(z), theta_n, theta_p)`` with ``theta_p``, ``theta_n`` trainable.

    ``alpha = 0`` gives a clipped ReLU (no ``theta_n``). The gradient reaches a threshold
    only from the values it clips. Call :meth:`project_` after each optimiser step to
    keep ``theta_p > 0 > theta_n``.
    """

    def __init__(self, alpha: float, theta_p: float, theta_n: float | None = None, min_abs: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.min_abs = float(min_abs)
        Thresholds(theta_p, theta_n if alpha > 0 else None)  # validates signs
        self.theta_p = nn.Parameter(torch.tensor(float(theta_p)))
        self.theta_n = nn.Parameter(torch.tensor(float(theta_n))) if alpha > 0 else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = nn.functional.leaky_relu(z, self.alpha) if self.alpha > 0 else torch.relu(z)
        a = torch.minimum(a, self.theta_p)
        if self.theta_n is not None:
            a = torch.maximum(a, self.theta_n)
        return a

    @torch.no_grad()
    def project_(self) -> None:
        self.theta_p.clamp_(min=self.min_abs)
        if self.theta_n is not None:
            self.theta_n.clamp_(max=-self.min_abs)

    def thresholds(self) -> Thresholds:
        return Thresholds(self.theta_p.item(), self.theta_n.item() if self.theta_n is not None else None)

    def extra_repr(self) -> str:
        tn = f"{self.theta_n.item():.4g}" if self.theta_n is not None else None
        return f"alpha={self.alpha}, theta_p={self.theta_p.item():.4g}, theta_n={tn}"


def add_clipping(model: nn.Module, thresholds: dict[str, Thresholds]) -> nn.Module:
    """A copy of ``model`` with every ReLU / Leaky ReLU replaced by a :class:`TrainableClip`.

    The copy is the canonical form of :func:`~negspike.activations.activation_sites`, so
    activations written as functions and each call site of a reused activation get their own
    clipping layer.
    """
    model, layers = activation_sites(model)  # a copy, one module per activation call site
    for name, act in layers.items():
        if isinstance(act, TrainableClip):
            continue
        th = thresholds[name]
        alpha = act.negative_slope if isinstance(act, nn.LeakyReLU) else 0.0
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, TrainableClip(alpha, th.theta_p, th.theta_n if alpha > 0 else None))
    return model


def clip_l2(model: nn.Module) -> torch.Tensor:
    """``sum over clipping layers of theta_p^2 + theta_n^2`` (eq. 24)."""
    terms = []
    for m in model.modules():
        if isinstance(m, TrainableClip):
            terms.append(m.theta_p.pow(2))
            if m.theta_n is not None:
                terms.append(m.theta_n.pow(2))
    if not terms:
        raise ValueError("the model has no TrainableClip layers")
    return torch.stack(terms).sum()
