"""Simulate a converted SNN once up to ``T_max`` and read off every ``T <= T_max``."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from .convert import SNN
from .data import TensorLoader
from .utils import memory_format_for, progress_bar, select_device

__all__ = ["SimulationResult", "simulate", "check_inputs", "count_macs", "fanouts"]


@dataclass
class SimulationResult:
    """Accuracy at every T, and spike statistics over the whole simulation.

    ``accuracy[t-1]`` is the top-1 accuracy when the readout is averaged over the first
    ``t`` steps. ``layers`` has one row per spiking layer: positive and negative spikes
    per neuron per time step (firing rates), and spikes per image over ``T_max`` steps.
    ``synops_per_image`` counts the synaptic additions the spikes trigger over ``T_max``
    steps, plus the first layer's MACs (its analog input is computed once);
    ``ann_macs_per_image`` is the ANN's multiply-accumulate count for one image.
    ``correct[t-1, i]`` says whether image ``i`` is classified correctly with ``t`` steps:
    what paired comparisons of two SNNs, or of an SNN and its ANN, on the same images need
    (:mod:`negspike.stats`).
    """

    T_max: int
    accuracy: np.ndarray
    layers: pd.DataFrame
    synops_per_image: float
    ann_macs_per_image: float
    images: int
    seconds: float
    correct: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    def at(self, T: int) -> float:
        """Accuracy with ``T`` time steps."""
        if not 1 <= T <= self.T_max:
            raise ValueError(f"T must lie in [1, {self.T_max}], got {T}")
        return float(self.accuracy[T - 1])

    def table(self, Ts=None) -> pd.DataFrame:
        """Tidy table ``T, snn_acc`` for the chosen ``Ts`` (default: all)."""
        Ts = list(range(1, self.T_max + 1)) if Ts is None else [t for t in Ts if t <= self.T_max]
        return pd.DataFrame({"T": Ts, "snn_acc": [self.at(t) for t in Ts]})


def count_macs(model: nn.Module, sample: torch.Tensor) -> dict[str, dict]:
    """Per Conv2d/Linear layer, in execution order: MACs and input size for one image."""
    info: dict[str, dict] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(m, inp, out):
        x = inp[0]
        if isinstance(m, nn.Conv2d):
            per_out = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            per_out = m.in_features
        info[names[m]] = {
            "macs": out[0].numel() * per_out,
            "in_numel": x[0].numel(),
        }

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(sample[:1])
    finally:
        for h in hs:
            h.remove()
    return info


def fanouts(snn: SNN, sample: torch.Tensor) -> tuple[dict[str, float], float, float]:
    """Mean fan-out of each spiking layer, the first layer's MACs, and the ANN's MACs.

    A spike of layer ``l`` triggers, on average, ``MACs / input size`` additions in the
    first synaptic layer that runs after ``l`` (average pooling routes each spike to one
    pooled position). Residual shortcuts that skip a synaptic layer are not counted.
    """
    order = snn.execution_order(sample)
    macs = count_macs(snn.net, sample)
    fan: dict[str, float] = {}
    for i, (kind, name) in enumerate(order):
        if kind != "neuron":
            continue
        nxt = next((n for k, n in order[i + 1 :] if k == "syn"), None)
        fan[name] = macs[nxt]["macs"] / macs[nxt]["in_numel"] if nxt else 0.0
    first = next(n for k, n in order if k == "syn")
    return fan, float(macs[first]["macs"]), float(sum(v["macs"] for v in macs.values()))


@torch.no_grad()
def check_inputs(snn: SNN, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise one clear ``ValueError`` for inputs a simulation cannot use, before any work:
    an empty set, ``x`` and ``y`` of different lengths, NaN or infinite inputs, inputs whose
    shape does not fit the network, labels that are not integers in ``[0, classes)``."""
    if len(x) == 0:
        raise ValueError("the test set is empty: x has no samples")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)} labels")
    if not x.is_floating_point():
        raise ValueError(f"inputs must be floating point (analog currents), got {x.dtype}")
    bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten()
    if len(bad):
        raise ValueError(f"{len(bad)} input(s) hold NaN or infinite values (first at index {int(bad[0])}); "
                         "an SNN would simulate them without complaint")
    if y.is_floating_point() or y.dim() != 1:
        raise ValueError(f"labels must be a 1-d integer tensor of class indices, got {y.dtype} of shape {tuple(y.shape)}")
    snn.reset()
    try:
        out = snn(x[:1].to(next(snn.parameters()).device), 1)
    except RuntimeError as err:
        raise ValueError(f"inputs of shape {tuple(x.shape[1:])} per sample do not fit the network: "
                         f"{str(err).splitlines()[0]}") from err
    finally:
        snn.reset()
    classes = out.shape[-1]
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= classes:
        raise ValueError(f"labels must lie in [0, {classes}) for a network with {classes} outputs, "
                         f"got labels from {lo} to {hi}")


@torch.no_grad()
def simulate(
    snn: SNN,
    x: torch.Tensor,
    y: torch.Tensor,
    T_max: int,
    batch_size: int = 128,
    chunk: int = 4,
    device="auto",
    progress: bool = True,
) -> SimulationResult:
    """Run ``snn`` for ``T_max`` steps on ``(x, y)`` once, in chunks of ``chunk`` steps.

    Bad inputs raise a ``ValueError`` before any work (:func:`check_inputs`). Returns the
    accuracy at every ``T <= T_max``, firing rates per layer (positive and
    negative spikes separately) and synaptic operations. Small chunks of steps keep the
    buffers in cache; on a 2-core CPU batch 128 with chunks of 4 steps was fastest.
    Image batches run in channels-last memory format (:func:`~negspike.utils.memory_format_for`),
    as the ANN does, which speeds up the convolutions; the SNN is handed back in NCHW.
    """
    if not isinstance(T_max, int) or T_max < 1:
        raise ValueError(f"T_max must be a positive integer, got {T_max!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    check_inputs(snn, x, y)
    device = select_device(device)
    fmt = memory_format_for(x)
    snn.eval().to(device, memory_format=fmt)
    try:
        return _simulate(snn, x, y, T_max, batch_size, chunk, device, fmt, progress)
    finally:
        snn.to(memory_format=torch.contiguous_format)
        for m in snn.neurons.values():
            m.release_buffers()


def _simulate(snn, x, y, T_max, batch_size, chunk, device, fmt, progress) -> SimulationResult:
    neurons = snn.neurons
    fan, first_macs, ann_macs = fanouts(snn, x[:1].to(device, memory_format=fmt))
    correct = torch.zeros(T_max, len(y), dtype=torch.bool)
    pos = {n: 0 for n in neurons}
    neg = {n: 0 for n in neurons}
    steps_seen = {n: 0 for n in neurons}
    start = time.perf_counter()
    loader = TensorLoader(x, y, batch_size)
    first = 0  # index of the batch's first image (the loader keeps the order of x)
    for xb, yb in progress_bar(loader, f"simulate T<={T_max}", progress):
        xb, yb = xb.to(device, memory_format=fmt), yb.to(device)
        snn.reset()
        acc_out = None
        t0 = 0
        while t0 < T_max:
            steps = min(chunk, T_max - t0)
            out = snn(xb, steps)  # [steps, B, C]
            run = out.cumsum(0)
            if acc_out is not None:
                run += acc_out
            acc_out = run[-1]
            correct[t0 : t0 + steps, first : first + len(yb)] = (run.argmax(-1) == yb).cpu()
            t0 += steps
        first += len(yb)
        for n, m in neurons.items():
            pos[n] += m.pos_spikes
            neg[n] += m.neg_spikes
            steps_seen[n] += m.neuron_steps
    seconds = time.perf_counter() - start
    images = len(y)
    rows = []
    synops = first_macs
    for n in neurons:
        seen = steps_seen[n] or float("nan")  # nan when spike counting was switched off
        p_rate = pos[n] / seen
        n_rate = neg[n] / seen
        spikes_per_image = (pos[n] + neg[n]) / images
        synops += spikes_per_image * fan[n]
        rows.append(
            {
                "layer": n,
                "pos_rate": p_rate,
                "neg_rate": n_rate,
                "rate": p_rate + n_rate,
                "spikes_per_image": spikes_per_image,
                "neurons": steps_seen[n] // (images * T_max),  # 0 when counting was off
            }
        )
    return SimulationResult(
        T_max=T_max,
        accuracy=correct.double().mean(1).numpy(),
        layers=pd.DataFrame(rows),
        synops_per_image=synops,
        ann_macs_per_image=ann_macs,
        images=images,
        seconds=seconds,
        correct=correct,
    )
