"""The variance penalty of eqs. 23 and 31: eta, the tail-length measure the fine-tuning
lowers, per channel, per layer and read from batch norm, and the training-loss term."""
from __future__ import annotations

import math

import torch
from torch import nn

from .activations import activation_layers, activation_sites, channel_values, run_hooked

__all__ = ["variance_penalty", "bn_variance_penalty", "VariancePenalty", "channel_eta", "layer_eta"]


def variance_penalty(a: torch.Tensor, eps: float = 1e-3, magnitude: bool = True) -> torch.Tensor:
    """``eta = mean over channels of sigma^3 / (|m| + eps)^3`` (eq. 23).

    ``a`` is ``[B, C, ...]`` or ``[B, N]``; sigma and m are each channel's standard
    deviation and mean. With ``magnitude=True`` (the default for activations) they are
    taken of ``|a|``: Leaky-ReLU outputs are signed, and a channel whose signed mean is
    near zero would make eta explode and the penalty chase the mean instead of the tail.
    ``eta`` is invariant to scaling ``a`` (up to ``eps``) and grows with tail length.
    """
    return channel_eta(a, eps, magnitude).mean()


def bn_variance_penalty(bn: nn.modules.batchnorm._BatchNorm, eps: float = 1e-3, magnitude: bool = True) -> torch.Tensor:
    """eta read from batch norm parameters: each channel's output has mean ``beta`` and
    standard deviation ``|gamma|`` (in training mode, exactly).

    ``magnitude=False``: ``mean_c |gamma|^3 / (|beta| + eps)^3``, the paper's form; it
    agrees with ``variance_penalty(bn_output, eps, magnitude=False)``. These are signed
    pre-activations, so a channel with ``beta`` near 0 makes eta explode (a freshly
    initialised BN, ``gamma = 1, beta = 0``, gives 1e9 with ``eps = 1e-3``) and the few such
    channels dominate the mean and the gradient.

    ``magnitude=True`` (the default) guards this the way :func:`variance_penalty` does for
    activations: sigma and m are those of ``|y|`` rather than ``y``, computed in closed form
    for a normal ``y ~ N(beta, gamma^2)`` (the folded normal). Then eta is at most
    ``(pi/2 - 1)^(3/2) = 0.43`` (at ``beta = 0``), has no gradient pushing ``beta`` away from 0
    there, and tends to the paper's ``(|gamma|/|beta|)^3`` once ``|beta| >> |gamma|``. It
    agrees with ``variance_penalty(bn_output, eps)`` as far as the output is normal.
    """
    g, b = bn.weight.abs(), bn.bias
    if not magnitude:
        return (g / (b.abs() + eps)).pow(3).mean()
    bmag = b.abs()
    z = bmag / (g.clamp_min(1e-12) * math.sqrt(2.0))
    # E|y| = |beta| + d with d = |gamma| sqrt(2/pi) exp(-z^2) - |beta| erfc(z) >= 0; written
    # this way Var|y| = gamma^2 - d (2|beta| + d) does not cancel when |beta| >> |gamma|.
    d = g * math.sqrt(2.0 / math.pi) * torch.exp(-z * z) - bmag * torch.special.erfc(z)
    d = d.clamp_min(0.0)
    # (the floor keeps sqrt's gradient finite for a channel with gamma = 0, e.g. a zero-initialised BN)
    var = (g * g - d * (2 * bmag + d)).clamp_min(1e-30)
    return (var.sqrt() / (bmag + d + eps)).pow(3).mean()


class VariancePenalty:
    """Collects activation outputs during the forward pass and returns ``lambda1 * eta``.

    Use as ``extra_loss`` of :func:`negspike.train.train_ann`. ``eta`` averages the
    per-layer penalties; ``lambda1 = weight * |CE| / eta`` is computed detached (eq. 31),
    so the penalty's value is always ``weight * CE`` and only its direction is learned.
    With ``use_bn=True`` eta is read from the BatchNorm layers instead (VGG, ResNet).
    """

    def __init__(self, model: nn.Module, eps: float = 1e-3, weight: float = 0.1, use_bn: bool = False) -> None:
        self.eps, self.weight, self.use_bn = eps, weight, use_bn
        self.outputs: dict[str, torch.Tensor] = {}
        self.last: dict[str, float] = {}
        self.handles = []
        if use_bn:
            self.bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
            if not self.bns:
                raise ValueError("use_bn=True but the model has no BatchNorm layers")
        else:
            for name, m in activation_layers(model).items():
                self.handles.append(m.register_forward_hook(self._store(name)))

    def _store(self, name):
        def fn(_m, _i, out):
            self.outputs[name] = out

        return fn

    def etas(self) -> dict[str, torch.Tensor]:
        if self.use_bn:
            return {n: bn_variance_penalty(m, self.eps) for n, m in self.bns.items()}
        return {n: variance_penalty(a, self.eps) for n, a in self.outputs.items()}

    def __call__(self, model: nn.Module, logits: torch.Tensor, ce: torch.Tensor) -> torch.Tensor:
        etas = self.etas()
        eta = torch.stack(list(etas.values())).mean()
        self.last = {n: e.item() for n, e in etas.items()}
        lam = (self.weight * ce.abs() / eta).detach()
        self.outputs = {}
        return lam * eta

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def channel_eta(a: torch.Tensor, eps: float = 1e-3, magnitude: bool = True) -> torch.Tensor:
    """Per-channel ``sigma^3 / (|m| + eps)^3`` of eq. 23, shape ``[C]``.

    :func:`variance_penalty` is the mean of this over the channels; see it for ``magnitude``.
    """
    v = channel_values(a)
    if magnitude:
        v = v.abs()
    m = v.mean(1)
    sigma = v.std(1, unbiased=False)
    return (sigma / (m.abs() + eps)).pow(3)


@torch.no_grad()
def layer_eta(
    model: nn.Module, x: torch.Tensor, eps: float = 1e-3, magnitude: bool = True, batch_size: int = 128
) -> dict[str, float]:
    """eta of each activation layer, averaged over mini-batches of ``x`` (eval mode).

    This is what :class:`VariancePenalty` measures per batch during fine-tuning, without
    the parameter updates in between: use it for the eta of a model before or after
    fine-tuning. (For models with batch norm the training-mode statistics differ.)
    """
    model, layers = activation_sites(model)
    etas: dict[str, list[float]] = {n: [] for n in layers}

    def hook(name):
        return lambda _m, _i, o: etas[name].append(variance_penalty(o, eps, magnitude).item())

    run_hooked(model, x, {m: hook(n) for n, m in layers.items()}, batch_size)
    return {n: sum(v) / len(v) for n, v in etas.items()}
