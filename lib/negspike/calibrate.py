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

import math
from typing import Callable, Iterable

import pandas as pd
import torch
from torch import nn

from .activations import activation_sites
from .calibration_guard import KeepBest
from .calibration_objective import KAPPA_SCHEDULE, WEIGHTINGS, kappa_at, layer_loss, layer_weights
from .convert import SNN
from .data import TensorLoader
from .neurons import SpikingNeuron
from .train import DivergenceError
from .utils import progress_bar, select_device

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

READOUT = "readout"


class _Targets:
    """ANN activations (by layer name) and logits for a batch."""

    def __init__(self, ann: nn.Module) -> None:
        # the canonical copy names every activation call site as the converter names the neurons
        self.ann, layers = activation_sites(ann)
        self.ann.eval()
        self.store: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in layers.items()]

    def _hook(self, name):
        def fn(_m, _i, out):
            self.store[name] = out.detach()

        return fn

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.store = {}
        logits = self.ann(x)
        return {**self.store, READOUT: logits}

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class _Rates:
    """Decoded firing rates of the SNN's neurons (by name) for the current forward pass."""

    def __init__(self, snn: SNN) -> None:
        self.store: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in snn.neurons.items()]

    def _hook(self, name):
        def fn(m, _i, out):
            self.store[name] = m.time_major(out).mean(0)

        return fn

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _reset_and_release(snn: SNN) -> None:
    """Reset the membranes and drop the output memory the neurons keep between chunks."""
    snn.reset()
    for m in snn.neurons.values():
        m.release_buffers()


def _set_kappa(snn: SNN, kappa: float) -> None:
    for m in snn.neurons.values():
        m.kappa = kappa


def _train_only(snn: SNN, params: list[nn.Parameter]) -> list[nn.Parameter]:
    """Freeze every parameter of ``snn`` except ``params``; return ``params``."""
    for p in snn.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    return params


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


class _StopForward(Exception):
    """Raised by a forward hook to end a pass whose remaining layers are not needed."""


def _stop_forward(*_args) -> None:
    raise _StopForward


class _Calibration:
    """What every calibration shares: both networks on the device (the ANN in eval mode),
    hooks giving a batch's ANN targets and SNN rates, hooks that end a pass early, and the
    descent loop. As a context manager it tears down also when a step fails: the hooks go,
    every SNN parameter is frozen (as :func:`~negspike.convert.convert` leaves them), the
    SNN is put in eval mode and its membranes are reset and released."""

    def __init__(self, snn: SNN, ann: nn.Module, device, progress: bool) -> None:
        self.snn, self.device, self.progress = snn, select_device(device), progress
        snn.to(self.device)
        ann.to(self.device).eval()  # before _Targets copies it
        self.targets, self.rates = _Targets(ann), _Rates(snn)
        self.last_finite = float("nan")  # kept across epochs for the divergence message

    def __enter__(self) -> _Calibration:
        return self

    def __exit__(self, *_exc) -> None:
        self.targets.remove()
        self.rates.remove()
        _train_only(self.snn, [])
        self.snn.eval()
        _reset_and_release(self.snn)

    def forward(self, xb: torch.Tensor, T: int,
                until: str | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """``(ANN targets, SNN output)`` of ``xb``, ``T`` steps from reset membranes; the rates
        are in ``self.rates.store``. ``until`` ends the pass after that neuron, whose rate is
        stored first (its rates hook came first); the output is then None."""
        stop = None if until is None else self.snn.neurons[until].register_forward_hook(_stop_forward)
        tgt = self.targets(xb)
        self.snn.reset()
        try:
            return tgt, self.snn(xb, T)
        except _StopForward:
            return tgt, None
        finally:
            if stop is not None:
                stop.remove()

    def descend(self, opt: torch.optim.Optimizer, loader: TensorLoader, desc: str, epoch: int, epochs: int,
                batch_loss: Callable[[torch.Tensor], torch.Tensor], diverge: str | None = None,
                after_step: Callable[[], None] | None = None) -> float:
        """One pass over ``loader`` (0-based ``epoch``), an optimiser step on ``batch_loss(batch)``
        per batch, then ``after_step()``; returns the sum of loss times batch size. ``diverge``
        names the calibration in the :class:`DivergenceError` raised on a loss that is not
        finite (None: no check)."""
        total = 0.0
        bar = progress_bar(loader, f"{desc} epoch {epoch + 1}/{epochs}", self.progress)
        for xb, _ in bar:
            lo = batch_loss(xb.to(self.device))
            value = lo.item()
            if diverge is not None:
                if not math.isfinite(value):
                    raise DivergenceError(f"{diverge}: loss became {value} in epoch {epoch + 1}; "
                                          f"last finite loss {self.last_finite:.4g}")
                self.last_finite = value
            opt.zero_grad(set_to_none=True)
            lo.backward()
            opt.step()
            if after_step is not None:
                after_step()
            total += value * len(xb)
            bar.set_postfix(loss=f"{value:.4f}")
        return total


@torch.no_grad()
def _batch_maps(cal: _Calibration, x: torch.Tensor, T: int, batch_size: int):
    """``(images, ANN targets, SNN rates)`` per mini-batch of ``x``; the readout is a layer."""
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(cal.device)
        acts, out = cal.forward(xb, T)
        yield xb, acts, {**cal.rates.store, READOUT: out.mean(0)}


@torch.no_grad()
def layer_maps(snn: SNN, ann: nn.Module, x: torch.Tensor, T: int,
               device: str | torch.device = "auto") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(ANN activations, SNN rates)`` by layer name for the images ``x``, the SNN run ``T``
    steps from reset membranes: what calibration compares. The readout counts as a layer (the
    ANN's logits against the SNN's mean output). Leaves the SNN's parameters frozen."""
    with _Calibration(snn, ann, device, progress=False) as cal:
        _, acts, rates = next(_batch_maps(cal, x, T, len(x)))
        return acts, rates


@torch.no_grad()
def layer_losses(snn: SNN, ann: nn.Module, x: torch.Tensor, T: int, kind: str = "kl", temperature: float = 1.0,
                 batch_size: int = 128, device: str | torch.device = "auto") -> dict[str, float]:
    """Each layer's calibration loss (:func:`layer_loss`) between the maps of :func:`layer_maps`,
    averaged over the images ``x`` (in mini-batches of ``batch_size``)."""
    sums: dict[str, float] = {}
    with _Calibration(snn, ann, device, progress=False) as cal:
        for xb, acts, rates in _batch_maps(cal, x, T, batch_size):
            for n, r in rates.items():
                sums[n] = sums.get(n, 0.0) + layer_loss(r, acts[n], kind, temperature).item() * len(xb)
    return {n: v / len(x) for n, v in sums.items()}


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
    x, y = holdout
    with torch.no_grad():
        right = sum(int((cal.targets(x[i:i + 256].to(cal.device))[READOUT].argmax(1).cpu() == y[i:i + 256]).sum())
                    for i in range(0, len(x), 256))
    guard = KeepBest(cal.snn, list(cal.snn.parameters()), holdout, Ts, cal.device, ann_acc=right / max(1, len(x)))
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
