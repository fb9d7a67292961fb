"""Per-layer clipping thresholds: set from activation outputs or learned by clipping layers,
and how much of the range they open a layer's activations use."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .activations import sample_outputs

__all__ = ["Thresholds", "activation_thresholds", "learned_thresholds", "range_usage"]


@dataclass(frozen=True)
class Thresholds:
    """Clipping thresholds of one layer: ``theta_p > 0`` and ``theta_n < 0`` (``None`` for ReLU)."""

    theta_p: float
    theta_n: float | None = None

    def __post_init__(self) -> None:
        if not self.theta_p > 0:
            raise ValueError(f"theta_p must be > 0, got {self.theta_p}")
        if self.theta_n is not None and not self.theta_n < 0:
            raise ValueError(f"theta_n must be < 0, got {self.theta_n}")


@torch.no_grad()
def activation_thresholds(
    model: nn.Module,
    x: torch.Tensor,
    method: str = "max",
    percentile: float = 99.99,
    batch_size: int = 1000,
    max_values: int = 2_000_000,
    seed: int = 0,
) -> dict[str, Thresholds]:
    """Per-layer thresholds from the activation outputs of ``model`` on inputs ``x``.

    ``method="max"``: ``theta_p`` is the largest positive output, ``theta_n`` the most
    negative one. ``method="percentile"``: the given percentile of the positive outputs
    and of the magnitudes of the negative outputs, estimated on a uniform random
    sample of at most ``max_values`` values per layer and sign.
    """
    if method not in ("max", "percentile"):
        raise ValueError(f"unknown threshold method {method!r}; choose 'max' or 'percentile'")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
    keep = max_values / max(1, len(x))  # values kept per sample, on average
    # keep / (values per sample), in this order: the draws of earlier releases (see sample_outputs)
    pick_prob = (lambda n, b: keep / (n / b)) if method == "percentile" else None  # "max" draws nothing
    layers = sample_outputs(model, x, pick_prob=pick_prob, seed=seed, batch_size=batch_size)

    result = {}
    for name, s in layers.items():
        m = s.module
        signed = isinstance(m, nn.LeakyReLU) or getattr(m, "theta_n", None) is not None
        if method == "max":
            tp, tn = max(0.0, s.max), min(0.0, s.min)  # 0 where a layer has no value of that sign
        else:
            pos, neg = s.sample[s.sample > 0], -s.sample[s.sample < 0]
            q = percentile / 100
            tp = float(torch.quantile(pos[:16_000_000], q)) if pos.numel() else 0.0
            tn = -float(torch.quantile(neg[:16_000_000], q)) if neg.numel() else 0.0
        if tp <= 0:
            raise ValueError(f"layer {name!r} never produced a positive activation; cannot set theta_p")
        if signed and tn >= 0:
            # No negative value seen: keep a tiny negative range so the neuron stays signed.
            tn = -1e-3 * tp
        result[name] = Thresholds(tp, tn if signed else None)
    return result


def learned_thresholds(model: nn.Module) -> dict[str, Thresholds]:
    """Thresholds of every :class:`~negspike.clipping.TrainableClip` layer, by qualified name."""
    from .clipping import TrainableClip  # clipping builds on Thresholds: import it late

    th = {n: m.thresholds() for n, m in model.named_modules() if isinstance(m, TrainableClip)}
    if not th:
        raise ValueError("the model has no TrainableClip layers; use activation_thresholds instead")
    return th


def range_usage(values: torch.Tensor, th: Thresholds, T: int | None = None) -> dict[str, float]:
    """How much of the rate range ``[theta_n, theta_p]`` a layer's activations use.

    ``values`` is a sample of the layer's outputs (any shape). Returns ``pos_usage``, the
    mean of ``min(a, theta_p) / theta_p`` over the positive values, ``neg_usage``, the mean
    of ``max(a, theta_n) / theta_n`` over the negative values (NaN without such values or
    without ``theta_n``), ``clipped``, the share of values beyond a threshold, and with
    ``T`` given, ``below_one_spike``: the share of non-zero values smaller in magnitude than
    one spike's worth ``theta / T``, which a rate over ``T`` steps rounds to zero.
    """
    a = values.detach().flatten().double()
    pos, neg = a[a > 0], a[a < 0]
    res = {"pos_usage": float((pos.clamp(max=th.theta_p) / th.theta_p).mean()) if pos.numel() else float("nan")}
    if th.theta_n is not None and neg.numel():
        res["neg_usage"] = float((neg.clamp(min=th.theta_n) / th.theta_n).mean())
        n_clip = int((neg < th.theta_n).sum())
    else:
        res["neg_usage"] = float("nan")
        n_clip = 0
    res["clipped"] = (int((pos > th.theta_p).sum()) + n_clip) / max(1, a.numel())
    if T is not None:
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        small = int((pos < th.theta_p / T).sum())
        if th.theta_n is not None:
            small += int((neg > th.theta_n / T).sum())
        res["below_one_spike"] = small / max(1, pos.numel() + neg.numel())
    return res
