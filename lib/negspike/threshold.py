"""Activation statistics and the per-layer thresholds the converter needs."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .data import TensorLoader

__all__ = ["Thresholds", "is_activation", "activation_layers", "activation_thresholds"]


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


def is_activation(m: nn.Module) -> bool:
    """ReLU, Leaky ReLU, or a clipping activation exposing ``theta_p``."""
    return isinstance(m, (nn.ReLU, nn.LeakyReLU)) or hasattr(m, "theta_p")


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The activation modules of ``model`` by qualified name, in definition order."""
    return {name: m for name, m in model.named_modules() if name and is_activation(m)}


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
    layers = activation_layers(model)
    if not layers:
        raise ValueError("the model has no activation layers (nn.ReLU / nn.LeakyReLU) to take thresholds from")
    g = torch.Generator().manual_seed(seed)
    stats = {name: {"max": 0.0, "min": 0.0, "pos": [], "neg": [], "n": 0} for name in layers}
    keep = max_values / max(1, len(x))  # values kept per sample and sign, on average

    def hook(name):
        def fn(_m, _inp, out):
            s = stats[name]
            flat = out.detach().flatten().float().cpu()
            s["max"] = max(s["max"], float(flat.max()))
            s["min"] = min(s["min"], float(flat.min()))
            if method == "percentile":
                per_sample = flat.numel() / len(out)
                prob = min(1.0, keep / per_sample)
                pick = torch.rand(flat.numel(), generator=g) < prob
                vals = flat[pick]
                s["pos"].append(vals[vals > 0])
                s["neg"].append(-vals[vals < 0])

        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for xb, _ in TensorLoader(x, torch.zeros(len(x)), batch_size):
            model(xb.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    result = {}
    for name, m in layers.items():
        s = stats[name]
        signed = isinstance(m, nn.LeakyReLU) or getattr(m, "theta_n", None) is not None
        if method == "max":
            tp, tn = s["max"], s["min"]
        else:
            pos = torch.cat(s["pos"]) if s["pos"] else torch.zeros(0)
            neg = torch.cat(s["neg"]) if s["neg"] else torch.zeros(0)
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
