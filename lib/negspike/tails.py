"""Long-tail views of activations: per-layer statistics with a tail length, per-channel
samples with exact extremes, and each channel's tail length."""
from __future__ import annotations

import torch
from torch import nn

from .activations import sample_outputs

__all__ = ["layer_statistics", "channel_samples", "channel_tails"]


@torch.no_grad()
def layer_statistics(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1000, bins: int = 201, max_values: int = 1_000_000, seed: int = 0
) -> dict[str, dict]:
    """Activation statistics per layer on inputs ``x``.

    For each activation layer: ``max`` and ``min`` output, per-channel maximum magnitude
    (``channel_max``, a ``[C]`` tensor), a random ``sample`` of at most ``max_values``
    outputs (for histograms and percentiles), and ``tail`` = max |a| / 99th percentile of
    |a|: how far the rarest values reach beyond the bulk (1 for no tail).
    """
    keep = max_values / max(1, len(x))  # values kept per sample, on average
    # keep * batch / values per batch, in this order: the draws of earlier releases (see sample_outputs)
    layers = sample_outputs(model, x, pick_prob=lambda n, b: keep * b / n, seed=seed, channel_extremes=True,
                            batch_size=batch_size)
    st = {}
    for name, s in layers.items():
        mags = s.sample.abs()
        p99 = float(torch.quantile(mags[:16_000_000], 0.99)) if mags.numel() else 0.0
        st[name] = {
            "max": s.max,
            "min": s.min,
            # max |a| of a channel is the larger magnitude of its extremes (exactly)
            "channel_max": torch.maximum(s.channel_max.abs(), s.channel_min.abs()),
            "sample": s.sample,
            "tail": max(abs(s.max), abs(s.min)) / p99 if p99 > 0 else float("inf"),
        }
    return st


@torch.no_grad()
def channel_samples(
    model: nn.Module,
    x: torch.Tensor,
    layers: list[str] | None = None,
    per_channel: int = 50_000,
    batch_size: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, torch.Tensor]]:
    """Outputs of each channel of the chosen activation layers on inputs ``x``.

    Returns ``{layer: {"values": [C, n], "max": [C], "min": [C]}}``: a uniform random
    sample of about ``per_channel`` outputs per channel (the same positions for every
    channel of a layer, all of them when there are fewer) and each channel's exact largest
    and smallest output over all of ``x``. Each layer draws its positions from its own
    generator seeded by ``seed`` and the layer's index, so two models of the same
    architecture are sampled at the same positions.
    """
    if per_channel < 1:
        raise ValueError(f"per_channel must be >= 1, got {per_channel}")
    total = len(x)
    # per_channel / (positions per sample * inputs), in this order: the draws of earlier releases
    found = sample_outputs(model, x, layers, pick_prob=lambda n, b: per_channel / (n / b * total), seed=seed,
                           seed_per_layer=True, columns=True, channel_extremes=True, batch_size=batch_size)
    return {n: {"values": s.sample, "max": s.channel_max, "min": s.channel_min} for n, s in found.items()}


def channel_tails(
    values: torch.Tensor, q: float = 99.0, side: str = "abs", extreme: torch.Tensor | None = None
) -> torch.Tensor:
    """Tail length of each channel: largest magnitude / ``q``-th percentile of the magnitudes.

    ``values`` is ``[C, n]`` (one row per channel, see
    :func:`~negspike.activations.channel_values`). ``side`` chooses the values: ``"abs"`` all
    of them, ``"pos"`` the positive ones, ``"neg"`` the magnitudes of the negative ones.
    ``extreme`` (``[C]``, optional) replaces the sample's largest magnitude, e.g. the exact
    per-channel maximum of :func:`channel_samples`. A channel without values on that side (or
    a zero percentile) gets NaN. The result is at least 1 wherever it is defined.
    """
    if side not in ("abs", "pos", "neg"):
        raise ValueError(f"unknown side {side!r}; choose 'abs', 'pos' or 'neg'")
    if not 0 < q <= 100:
        raise ValueError(f"q must lie in (0, 100], got {q}")
    if values.dim() != 2:
        raise ValueError(f"expected values of shape [channels, samples], got {tuple(values.shape)}")
    v = values.double()
    if side == "abs":
        mags = v.abs()
    elif side == "pos":
        mags = torch.where(v > 0, v, torch.full_like(v, float("nan")))
    else:
        mags = torch.where(v < 0, -v, torch.full_like(v, float("nan")))
    pct = torch.nanquantile(mags, q / 100, dim=1)
    top = torch.nan_to_num(mags, nan=-float("inf")).amax(1)
    if extreme is not None:
        top = torch.maximum(top, extreme.double().abs())
    tail = top / pct
    bad = ~(pct > 0) | ~torch.isfinite(top)
    return torch.where(bad, torch.full_like(tail, float("nan")), tail).float()
