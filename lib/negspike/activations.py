"""The activation layers of a network and the one routine that reads their outputs.

:func:`activation_sites` finds the layers (one per call site, under the converter's names),
:func:`run_hooked` runs a model with forward hooks, and :func:`sample_outputs` records each
layer's extremes and a uniform random sample of its outputs: the thresholds
(:mod:`negspike.threshold`) and the long-tail views (:mod:`negspike.tails`) build on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from .data import TensorLoader

__all__ = [
    "is_activation",
    "activation_layers",
    "activation_sites",
    "run_hooked",
    "channel_values",
    "LayerSample",
    "sample_outputs",
]


def is_activation(m: nn.Module) -> bool:
    """ReLU, Leaky ReLU, or a clipping activation exposing ``theta_p``."""
    return isinstance(m, (nn.ReLU, nn.LeakyReLU)) or hasattr(m, "theta_p")


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The activation modules of ``model`` by qualified name, in definition order.

    This walks the module tree as it is. For statistics and thresholds use
    :func:`activation_sites`, which also sees activations written as functions and gives
    each call site of a reused module its own entry, under the names the converter uses.
    """
    return {name: m for name, m in model.named_modules() if name and is_activation(m)}


def activation_sites(model: nn.Module) -> tuple[nn.Module, dict[str, nn.Module]]:
    """``(net, layers)``: a copy of ``model`` in the converter's canonical form (batch norm kept,
    see :func:`negspike.graph.canonical`) and its activation modules, one per call site, by the
    names :func:`negspike.convert` gives the neurons. Raises for operations it cannot convert."""
    from .graph import canonical  # graph asks this module what an activation is

    net = canonical(model, fold_bn=False)
    layers = activation_layers(net)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no activations (ReLU / Leaky ReLU, as modules or functions)")
    return net, layers


@torch.no_grad()
def run_hooked(model: nn.Module, x: torch.Tensor, hooks: dict[nn.Module, Callable], batch_size: int = 1000,
               after_batch: Callable[[], None] | None = None) -> None:
    """Run ``model`` in eval mode over ``x`` in mini-batches with the given forward hooks.

    The hooks are removed and the model's training mode restored afterwards, also on error.
    ``after_batch()`` runs after each mini-batch.
    """
    handles = [m.register_forward_hook(fn) for m, fn in hooks.items()]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for xb, _ in TensorLoader(x, torch.zeros(len(x)), batch_size):
            model(xb.to(device))
            if after_batch is not None:
                after_batch()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def channel_values(a: torch.Tensor) -> torch.Tensor:
    """Rearrange activations ``[B, C, ...]`` (or ``[B, N]``) to ``[C, samples]``: one row per channel.

    For convolutional layers a channel pools batch and positions; for linear layers each
    neuron is its own channel.
    """
    if a.dim() < 2:
        raise ValueError(f"expected activations of shape [batch, channels, ...], got {tuple(a.shape)}")
    return a.transpose(0, 1).reshape(a.shape[1], -1)


@dataclass
class LayerSample:
    """What :func:`sample_outputs` recorded of one activation layer over all of ``x``."""

    module: nn.Module
    max: float = -math.inf  # largest output
    min: float = math.inf  # smallest output
    channel_max: torch.Tensor | None = None  # [C], with channel_extremes=True
    channel_min: torch.Tensor | None = None
    sample: torch.Tensor | None = None  # [k] values, or [C, k] columns; None without pick_prob


def _generators(order: list[str], names: list[str], seed: int, per_layer: bool) -> dict[str, torch.Generator]:
    """The random generators of :func:`sample_outputs`, by layer: one seeded ``seed`` shared by
    all ``names``, or with ``per_layer`` one per layer seeded ``seed + i``, ``i`` its index in
    ``order`` (all activation sites), so that its positions do not depend on which other
    layers are sampled."""
    if per_layer:
        return {n: torch.Generator().manual_seed(seed + order.index(n)) for n in names}
    shared = torch.Generator().manual_seed(seed)
    return {n: shared for n in names}


@torch.no_grad()
def sample_outputs(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str] | None = None,
    *,
    pick_prob: Callable[[int, int], float] | None = None,
    seed: int = 0,
    seed_per_layer: bool = False,
    columns: bool = False,
    channel_extremes: bool = False,
    batch_size: int = 1000,
) -> dict[str, LayerSample]:
    """Extremes and a uniform random sample of the outputs of each activation site of ``model``
    (or of the named ``layers``) on inputs ``x``, by layer name.

    Each mini-batch of ``b`` inputs offers ``n`` candidates per layer: its outputs, flattened,
    or with ``columns=True`` the columns of :func:`channel_values` (every channel's output at
    one position, so all channels are sampled at the same positions). Each candidate is kept
    with probability ``min(1, pick_prob(n, b))``, by one ``torch.rand(n)`` per layer and
    mini-batch, drawn as the hooks fire (in forward order), from one generator seeded ``seed``
    or, with ``seed_per_layer``, one per layer seeded ``seed`` + the layer's index among all
    activation sites. Without ``pick_prob`` nothing is drawn and ``sample`` stays ``None``.
    ``channel_extremes=True`` also records each channel's largest and smallest output.

    ``pick_prob`` comes from the caller rather than from a budget divided here: each caller
    keeps the float expression it has always used, since another rounding of the same
    probability could flip a draw and change the sample (and every result built on it).
    """
    net, found = activation_sites(model)
    names = list(found) if layers is None else list(layers)
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"no activation layers {missing}; the model has {list(found)}")
    gens = _generators(list(found), names, seed, seed_per_layer)
    rec = {n: LayerSample(found[n]) for n in names}
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    seen: set[str] = set()

    def hook(name: str) -> Callable:
        def fn(_m, _i, out):
            r, a = rec[name], out.detach().float().cpu()
            seen.add(name)
            r.max, r.min = max(r.max, float(a.max())), min(r.min, float(a.min()))
            v = channel_values(a) if columns or channel_extremes else None
            if channel_extremes:
                hi, lo = v.amax(1), v.amin(1)
                r.channel_max = hi if r.channel_max is None else torch.maximum(r.channel_max, hi)
                r.channel_min = lo if r.channel_min is None else torch.minimum(r.channel_min, lo)
            if pick_prob is not None:
                cand = v if columns else a.flatten()
                n = cand.shape[-1]
                pick = torch.rand(n, generator=gens[name]) < min(1.0, pick_prob(n, len(out)))
                parts[name].append(cand[:, pick] if columns else cand[pick])

        return fn

    run_hooked(net, x, {found[n]: hook(n) for n in names}, batch_size)
    never = [n for n in names if n not in seen]
    if never:
        raise ValueError(f"activation layers {never} never ran on x ({len(x)} inputs)")
    if pick_prob is not None:
        for n in names:
            rec[n].sample = torch.cat(parts[n], 1 if columns else 0)
    return rec
