"""ANN-to-SNN conversion: fold batch norm, replace each activation by a spiking neuron.

The converted network keeps the ANN's module tree and ``forward``: convolutions,
linear layers, average pooling, flattening and residual additions are linear, so they
act on all time steps of a chunk at once (time folded into the batch dimension), and
only the neurons loop over time. The last layer does not spike: :class:`SNN` returns
its input current at every step, and the simulator accumulates it (the readout).
Inputs are analog currents, the same at every step.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .neurons import IBTNeuron, IFNeuron, SignedIFNeuron, SpikingNeuron
from .threshold import Thresholds, activation_layers, learned_thresholds

__all__ = ["UnsupportedLayerError", "fold_bn", "convert", "SNN", "NEURONS"]

NEURONS = ("signed", "ibt", "if")
_LINEAR_OK = (
    nn.Conv2d,
    nn.Linear,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Dropout,
)


class UnsupportedLayerError(TypeError):
    """The converter met a layer it cannot turn into a rate-preserving SNN layer."""


def _fold_pair(syn: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` into the weights and bias of the preceding ``syn`` (in place)."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = (gamma / std).detach()
    w = syn.weight.detach()
    shape = (-1,) + (1,) * (w.dim() - 1)
    bias = syn.bias.detach() if syn.bias is not None else torch.zeros_like(bn.running_mean)
    syn.weight = nn.Parameter(w * scale.view(shape))
    syn.bias = nn.Parameter((bias - bn.running_mean) * scale + beta.detach())


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every BatchNorm folded into the conv/linear before it.

    A BatchNorm counts as foldable when it directly follows a Conv2d or Linear inside an
    ``nn.Sequential``. Any other BatchNorm raises :class:`UnsupportedLayerError`.
    """
    model = copy.deepcopy(model).eval()
    for parent_name, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for prev, cur in zip(names, names[1:]):
            a, b = parent._modules[prev], parent._modules[cur]
            if isinstance(b, nn.modules.batchnorm._BatchNorm) and isinstance(a, (nn.Conv2d, nn.Linear)):
                _fold_pair(a, b)
                parent._modules[cur] = nn.Identity()
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise UnsupportedLayerError(
                f"cannot fold batch norm layer '{name}' ({type(m).__name__}): it does not directly follow "
                "a Conv2d or Linear inside an nn.Sequential"
            )
    return model


def _make_neuron(kind: str, act: nn.Module, th: Thresholds, v_init: float) -> SpikingNeuron:
    slope = act.negative_slope if isinstance(act, nn.LeakyReLU) else getattr(act, "alpha", 0.0)
    if not slope or kind == "if":
        return IFNeuron(th.theta_p, v_init=v_init)
    if kind == "ibt":
        return IBTNeuron(th.theta_p, slope, v_init=v_init)
    if th.theta_n is None:
        raise ValueError("the signed neuron needs a negative threshold theta_n < 0")
    return SignedIFNeuron(th.theta_p, th.theta_n, slope, v_init=v_init)


class SNN(nn.Module):
    """A converted network: the ANN's module tree with spiking neurons as activations.

    ``forward(x, steps)`` runs ``steps`` time steps with the constant input ``x`` and
    returns the readout layer's input current at each step, shape ``[steps, batch, ...]``.
    The membranes persist across calls until :meth:`reset`, so a simulation can be cut
    into chunks of steps.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def neurons(self) -> dict[str, SpikingNeuron]:
        """Spiking layers by qualified name (``net.`` prefix removed), in definition order."""
        return {n[4:]: m for n, m in self.named_modules() if isinstance(m, SpikingNeuron)}

    def reset(self) -> None:
        for m in self.neurons.values():
            m.reset()

    def execution_order(self, sample: torch.Tensor) -> list[tuple[str, str]]:
        """``("neuron" | "syn", name)`` for every spiking layer and Conv2d/Linear, in the order
        one time step on ``sample[:1]`` runs them (names relative to ``net``)."""
        order: list[tuple[str, str]] = []
        names = {m: n for n, m in self.net.named_modules()}
        hooks = []
        for m in self.net.modules():
            kind = "neuron" if isinstance(m, SpikingNeuron) else "syn" if isinstance(m, (nn.Conv2d, nn.Linear)) else None
            if kind:
                hooks.append(m.register_forward_hook(lambda m, i, o, kind=kind: order.append((kind, names[m]))))
        try:
            with torch.no_grad():
                self.reset()
                self(sample[:1], 1)
        finally:
            self.reset()
            for h in hooks:
                h.remove()
        return order

    def forward(self, x: torch.Tensor, steps: int = 1) -> torch.Tensor:
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"number of time steps must be a positive integer, got {steps!r}")
        batch = x.shape[0]
        for m in self.neurons.values():
            m.steps, m.batch = steps, batch
        out = self.net(x)
        if out.shape[0] == batch * steps:
            return out.view(steps, batch, *out.shape[1:])
        return out.unsqueeze(0).expand(steps, *out.shape)  # no neuron on the path


def _check_convertible(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if len(m._modules) or isinstance(m, _LINEAR_OK) or isinstance(m, SpikingNeuron):
            continue
        if isinstance(m, (nn.ReLU, nn.LeakyReLU)) or hasattr(m, "theta_p"):
            continue
        raise UnsupportedLayerError(
            f"cannot convert layer '{name}' of type {type(m).__name__}: supported are Conv2d, Linear, "
            "AvgPool2d, AdaptiveAvgPool2d, Flatten, Identity, Dropout, BatchNorm after conv/linear, "
            "ReLU and LeakyReLU (use average pooling instead of max pooling)"
        )


def convert(
    ann: nn.Module,
    thresholds: dict[str, Thresholds] | None = None,
    neuron: str = "signed",
    v_init: float = 0.0,
) -> SNN:
    """Convert ``ann`` into an :class:`SNN`.

    ``thresholds`` maps each activation's qualified name to its :class:`Thresholds`
    (from :func:`negspike.threshold.activation_thresholds`); when omitted, the thresholds
    learned by the model's :class:`~negspike.threshold.TrainableClip` layers are used.
    ``neuron``: ``"signed"`` (the paper's neuron: ``P_th = theta_p``, ``N_th = theta_n/alpha``),
    ``"ibt"`` (``theta_n = -theta_p``) or ``"if"`` (no negative spikes). ReLU activations
    always become IF neurons. ``v_init`` sets the initial membrane to ``v_init * P_th``.
    Batch norm is folded; the ANN is not modified.
    """
    if neuron not in NEURONS:
        raise ValueError(f"unknown neuron {neuron!r}; choose one of {NEURONS}")
    if thresholds is None:
        thresholds = learned_thresholds(ann)
    net = fold_bn(ann)
    _check_convertible(net)
    acts = activation_layers(net)
    missing = sorted(set(acts) - set(thresholds))
    if missing:
        raise KeyError(f"no thresholds for activation layers {missing}")
    for name, act in acts.items():
        th = thresholds[name]
        if not isinstance(th, Thresholds):
            th = Thresholds(*th)
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, _make_neuron(neuron, act, th, v_init))
    for p in net.parameters():
        p.requires_grad_(False)
    return SNN(net)
