"""Temporal calibration of a converted SNN against its ANN.

Joint calibration (the paper's section 4.2) runs the SNN for ``T`` steps with BPTT and
minimises ``sum_l w_l(p) * loss_l`` over *all* layers at once, where ``loss_l`` compares
layer ``l``'s decoded firing rate with the ANN's (clipped) activation and ``p`` is the
fraction of calibration done. The readout counts as the last layer ``L``: its mean
input current is compared with the ANN's logits.

The layer-wise baseline (in the style of the two-stage method, Wang et al. 2025) first
sets the initial membrane potentials from the mean ANN-SNN difference, then calibrates
each layer in turn, changing only that layer's weights.
"""
from __future__ import annotations

from typing import Iterable

import pandas as pd
import torch
from torch import nn

from .calibration_guard import KeepBest
from .calibration_objective import KAPPA_SCHEDULE, WEIGHTINGS, kappa_at, layer_loss, layer_weights
from .calibration_pass import (READOUT, _Calibration, _reset_and_release, _set_kappa, _train_only, layer_losses,
                               layer_maps)
from .convert import SNN
from .data import TensorLoader
from .neurons import SpikingNeuron
from .train import correct_per_image

__all__ = [
    "WEIGHTINGS",
    "layer_weights",
    "KAPPA_SCHEDULE",
    "kappa_at",
    "layer_loss",
    "calibrate_joint",
    "calibrate_layerwise",
    "layer_maps",
    "layer_losses",
]


def _trainable(snn: SNN, train: Iterable[str]) -> list[nn.Parameter]:
    """Switch on the requested parameter kinds (weights, biases, thresholds, v0), only those."""
    train = set(train)
    unknown = train - {"weights", "biases", "thresholds", "v0"}
    if unknown:
        raise ValueError(f"unknown parameter kinds {sorted(unknown)}; choose from weights, biases, thresholds, v0")
    params = []
    for m in snn.net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            params += [p for kind, p in (("weights", m.weight), ("biases", m.bias)) if p is not None and kind in train]
        if isinstance(m, SpikingNeuron):
            params += [p for name, p in m.named_parameters(recurse=False)
                       if ("v0" if name == "v0" else "thresholds") in train]
    if not params:
        raise ValueError(f"nothing to calibrate for {sorted(train)}")
    return _train_only(snn, params)


def _ensure_v0(cal: _Calibration, x: torch.Tensor) -> None:
    """Give every neuron a per-neuron initial membrane offset ``v0`` (zeros) if it has none."""
    cal.snn.reset()
    cal.snn(x[:1].to(cal.device), 1)  # the rates hook records each neuron's output shape
    cal.snn.reset()
    for n, m in cal.snn.neurons.items():
        if m.v0 is None:
            m.v0 = nn.Parameter(torch.zeros(cal.rates.store[n].shape[1:], device=cal.device), requires_grad=False)


def calibrate_joint(
    snn: SNN,
    ann: nn.Module,
    x: torch.Tensor,
    T: int | Iterable[int],
    epochs: int = 5,
    lr: float = 1e-4,
    batch_size: int = 128,
    weighting: str = "cosine",
    loss: str = "kl",
    mu: float = 8.0,
    floor: float = 0.02,
    temperature: float = 1.0,
    train: Iterable[str] = ("weights", "biases"),
    kappa_schedule: Iterable[tuple[int, float]] = KAPPA_SCHEDULE,
    seed: int = 0,
    device="auto",
    progress: bool = True,
    holdout: tuple[torch.Tensor, torch.Tensor] | None = None,
    checks: int = 1,
) -> pd.DataFrame:
    """Calibrate all layers of ``snn`` at once against ``ann`` (in place); return the loss history.

    ``T`` is the number of time steps, or several (each batch then draws one, so the
    calibrated network does not specialise to a single T). ``train`` chooses what is
    updated: ``weights``, ``biases``, ``thresholds``, ``v0`` (initial membranes). The
    history is a tidy table: epoch, layer, weight (averaged over the epoch), loss.

    With ``holdout = (images, labels)`` (training images not in ``x``) the SNN is scored on
    them before calibration and ``checks`` times per epoch, and ends in the best state seen
    (:class:`~negspike.calibration_guard.KeepBest`): never worse than it started on those
    images. The checks are in ``history.attrs["holdout"]`` (records of
    :meth:`~negspike.calibration_guard.KeepBest.table`).
    """
    Ts = [T] if isinstance(T, int) else list(T)
    if not Ts or any((not isinstance(t, int)) or t < 1 for t in Ts):
        raise ValueError(f"T must be a positive integer or a list of them, got {T!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    names = list(snn.neurons) + [READOUT]
    L = len(names)
    loader = TensorLoader(x, torch.zeros(len(x)), batch_size, shuffle=True, seed=seed)
    g = torch.Generator().manual_seed(seed)  # draws each batch's T
    total = epochs * len(loader)
    step = 0
    sums, wsum = torch.zeros(L), torch.zeros(L)  # per layer over an epoch: loss and weight times batch size
    rows = []
    with _Calibration(snn, ann, device, progress) as cal:
        snn.train()  # before any forward pass: modules such as dropout act as in training
        if "v0" in set(train):
            _ensure_v0(cal, x)
        opt = torch.optim.Adam(_trainable(snn, train), lr=lr)
        guard = _start_guard(cal, holdout, Ts)
        check_at = {round(total * k / (epochs * checks)) for k in range(1, epochs * checks + 1)}

        def after_step() -> None:
            if guard is not None and step in check_at:
                guard.check(f"step {step}")

        def batch_loss(xb: torch.Tensor) -> torch.Tensor:
            nonlocal step
            w = layer_weights(weighting, L, step / max(1, total - 1), mu, floor)
            tgt, out = cal.forward(xb, Ts[int(torch.randint(len(Ts), (1,), generator=g))])
            out = out.mean(0)
            per_layer = [layer_loss(cal.rates.store[n], tgt[n], loss, temperature) for n in names[:-1]]
            per_layer.append(layer_loss(out, tgt[READOUT], loss, temperature))
            losses = torch.stack(per_layer)
            step += 1
            sums.add_(losses.detach().cpu() * len(xb))
            wsum.add_(w * len(xb))
            return (w.to(cal.device) * losses).sum()

        for epoch in range(epochs):
            _set_kappa(snn, kappa_at(epoch, kappa_schedule))
            sums.zero_()
            wsum.zero_()
            cal.descend(opt, loader, f"joint calibration ({weighting})", epoch, epochs, batch_loss,
                        diverge="joint calibration", after_step=after_step)
            rows += [{"epoch": epoch + 1, "layer": n, "weight": float(wsum[i] / len(x)),
                      "loss": float(sums[i] / len(x)), "method": f"joint-{weighting}"} for i, n in enumerate(names)]
        return _finish_guard(guard, pd.DataFrame(rows))


def _start_guard(cal: _Calibration, holdout, Ts: list[int]) -> KeepBest | None:
    """A :class:`KeepBest` over every parameter of the SNN, scored once before calibration, with the
    ANN's accuracy on the held-out images as its reference."""
    if holdout is None:
        return None
    ann_acc = correct_per_image(cal.targets.ann, *holdout, device=cal.device).double().mean().item()
    guard = KeepBest(cal.snn, list(cal.snn.parameters()), holdout, Ts, cal.device, ann_acc=ann_acc)
    guard.check("start")
    return guard


def _finish_guard(guard: KeepBest | None, history: pd.DataFrame) -> pd.DataFrame:
    """Put the best state back and attach the checks to the history."""
    if guard is not None:
        guard.restore()
        # records, not a DataFrame: pandas compares attrs when it concatenates histories
        history.attrs["holdout"] = guard.table().to_dict("records")
    return history


def _layer_params(snn: SNN, x: torch.Tensor) -> dict[str, list[nn.Module]]:
    """Synaptic modules (Conv2d/Linear) feeding each spiking layer and the readout, by execution order."""
    order = snn.execution_order(x)
    mods = dict(snn.net.named_modules())
    groups: dict[str, list[nn.Module]] = {}
    pending: list[nn.Module] = []
    for kind, n in order:
        if kind == "syn":
            pending.append(mods[n])
        else:
            groups[n] = pending
            pending = []
    groups[READOUT] = pending
    return groups


@torch.no_grad()
def _init_membranes(cal: _Calibration, x: torch.Tensor, T: int, batch_size: int) -> None:
    """Stage 1: per neuron, ``v0 = T * mean(ANN activation - SNN rate)``, layer after layer.

    A membrane offset ``delta`` adds about ``delta / T`` to a positive neuron's decoded
    rate and ``alpha * delta / T`` to a negative one, so negative-mean neurons get the
    offset divided by ``alpha``.
    """
    for name, neuron in cal.snn.neurons.items():
        diff = 0.0
        mean_act = 0.0
        for xb, _ in TensorLoader(x, torch.zeros(len(x)), batch_size):
            tgt, _ = cal.forward(xb.to(cal.device), T, until=name)  # the later layers are not needed
            diff = diff + (tgt[name] - cal.rates.store[name]).sum(0)
            mean_act = mean_act + tgt[name].sum(0)
        diff, mean_act = diff / len(x), mean_act / len(x)
        alpha = getattr(neuron, "alpha", 1.0)
        offset = torch.where(mean_act < 0, diff / alpha, diff) * T
        if neuron.v0 is None:
            neuron.v0 = nn.Parameter(offset, requires_grad=False)
        else:  # in place: a KeepBest holding this parameter can still restore it
            neuron.v0.add_(offset)
    _reset_and_release(cal.snn)


def calibrate_layerwise(
    snn: SNN,
    ann: nn.Module,
    x: torch.Tensor,
    T: int,
    epochs: int = 1,
    lr: float = 1e-4,
    batch_size: int = 128,
    loss: str = "kl",
    temperature: float = 1.0,
    init_membranes: bool = True,
    kappa: float = 6.7,
    seed: int = 0,
    device="auto",
    progress: bool = True,
    layers: Iterable[str] | None = None,
    holdout: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """Layer-wise baseline: initial membranes from the mean ANN-SNN difference, then each
    layer in turn (shallow to deep, readout last) with BPTT on that layer's loss, changing
    only that layer's weights and biases. Errors of earlier layers reach later ones, which
    is the accumulation joint calibration avoids. Returns a tidy loss history.

    With ``holdout = (images, labels)`` the SNN is scored before calibration, after the
    membranes are set and after the last layer, and ends in the best of these states (see
    :func:`calibrate_joint`).
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    rows = []
    with _Calibration(snn, ann, device, progress) as cal:
        if holdout is not None:
            _ensure_v0(cal, x)  # so that the state before the membranes are set can be restored
        guard = _start_guard(cal, holdout, [T])
        if init_membranes:
            _init_membranes(cal, x, T, batch_size)
            if guard is not None:
                guard.check("membranes")
        groups = _layer_params(snn, x.to(cal.device))
        _set_kappa(snn, kappa)
        for name in list(groups) if layers is None else list(layers):
            opt = torch.optim.Adam(_train_only(snn, [p for m in groups[name] for p in m.parameters()]), lr=lr)
            # a new loader: every layer sees the same batches
            loader = TensorLoader(x, torch.zeros(len(x)), batch_size, shuffle=True, seed=seed)

            def batch_loss(xb: torch.Tensor, name: str = name) -> torch.Tensor:
                # only this layer's rate is needed: the pass ends after it
                tgt, out = cal.forward(xb, T, until=None if name == READOUT else name)
                rate = out.mean(0) if name == READOUT else cal.rates.store[name]
                return layer_loss(rate, tgt[name], loss, temperature)

            for epoch in range(epochs):
                total = cal.descend(opt, loader, f"layer-wise calibration {name}", epoch, epochs, batch_loss)
                rows.append({"epoch": epoch + 1, "layer": name, "weight": 1.0, "loss": total / len(x),
                             "method": "layer-wise"})
        if guard is not None:
            guard.check("all layers")  # only the whole network is scored: a check per layer costs a simulation
        return _finish_guard(guard, pd.DataFrame(rows))
