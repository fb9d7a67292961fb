"""One calibration pass: the ANN's targets and the SNN's decoded rates layer by layer.

What every calibration shares (:mod:`negspike.calibrate`) and what reads the same maps
without calibrating (:func:`layer_maps`, :func:`layer_losses`, :mod:`negspike.depth`):
both networks on one device, forward hooks that collect the ANN's activations and the
SNN's decoded rates by layer name (the readout counts as the last layer), hooks that end a
pass after the layer that is needed, and the descent loop with its divergence check.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .activations import activation_sites
from .calibration_objective import layer_loss
from .convert import SNN
from .data import TensorLoader
from .train import DivergenceError
from .utils import progress_bar, select_device

__all__ = ["READOUT", "layer_maps", "layer_losses"]

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
