"""ANN-to-SNN conversion: fold batch norm, replace each activation by a spiking neuron.

The converted network is the ANN's traced graph (:mod:`negspike.graph`) with neurons in
place of activations: convolutions, linear layers, average pooling, flattening, residual
additions and concatenations are linear, so they act on all time steps of a chunk at once
(time folded into the batch dimension), and only the neurons loop over time. The last layer does not spike: :class:`SNN` returns
its input current at every step, and the simulator accumulates it (the readout).
Inputs are analog currents, the same at every step.
"""
from __future__ import annotations

import torch
from torch import nn

from .activations import activation_layers
from .graph import UnsupportedLayerError, canonical
from .neurons import SpikingNeuron
from .tracking import NEURON_KINDS, make_neuron
from .threshold import Thresholds, learned_thresholds

__all__ = ["UnsupportedLayerError", "fold_bn", "convert", "SNN", "NEURONS"]

NEURONS = NEURON_KINDS  # "signed", "ibt", "if" (the paper's and its baselines), "tracking", "pair" (the book's own)


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every BatchNorm folded into the Conv2d/Linear that feeds it.

    Works on the traced graph (:func:`negspike.graph.canonical`), so the batch norm may sit
    anywhere in ``forward``; one that does not directly follow a Conv2d or Linear whose
    output only it uses raises :class:`UnsupportedLayerError` naming its node.
    """
    return canonical(model, fold_bn=True, check=False)


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
            m.set_time(steps, batch)
        out = self.net(x)
        if out.shape[0] == batch * steps:
            return out.view(steps, batch, *out.shape[1:])
        return out.unsqueeze(0).expand(steps, *out.shape)  # no neuron on the path


def convert(
    ann: nn.Module,
    thresholds: dict[str, Thresholds] | None = None,
    neuron: str = "signed",
    v_init: float = 0.0,
) -> SNN:
    """Convert ``ann`` into an :class:`SNN`.

    ``thresholds`` maps each activation's qualified name to its :class:`Thresholds`
    (from :func:`negspike.threshold.activation_thresholds`); when omitted, the thresholds
    learned by the model's :class:`~negspike.clipping.TrainableClip` layers are used.
    ``neuron``: ``"signed"`` (the paper's neuron: ``P_th = theta_p``, ``N_th = theta_n/alpha``),
    ``"ibt"`` (``theta_n = -theta_p``) or ``"if"`` (no negative spikes), for which ReLU
    activations become IF neurons and ``v_init`` sets the initial membrane to ``v_init * P_th``;
    or the book's own ``"tracking"`` / ``"pair"`` (:mod:`negspike.tracking`), which decode the
    Leaky ReLU of the mean input also when it fluctuates, and for which ``v_init`` in
    ``[0, 0.5]`` is the rounding fraction (0.5 rounds both signs).
    Batch norm is folded; the ANN is not modified.

    The ANN is converted on its traced graph (:func:`negspike.graph.canonical`): activations
    written as functions in ``forward`` become neurons too, an activation module called at
    several places gets a neuron per call site (named ``relu``, ``relu_1``, ... like the
    thresholds of :func:`~negspike.threshold.activation_thresholds`), and any operation that
    does not preserve rates raises :class:`UnsupportedLayerError` naming it.
    """
    if neuron not in NEURONS:
        raise ValueError(f"unknown neuron {neuron!r}; choose one of {NEURONS}")
    net = canonical(ann, fold_bn=True)
    if thresholds is None:
        thresholds = learned_thresholds(net)
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
        slope = act.negative_slope if isinstance(act, nn.LeakyReLU) else getattr(act, "alpha", 0.0)
        setattr(parent, child, make_neuron(neuron, th.theta_p, th.theta_n, slope, v_init))
    for p in net.parameters():
        p.requires_grad_(False)
    return SNN(net)
