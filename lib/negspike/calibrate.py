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
from typing import Iterable

import pandas as pd
import torch
from torch import nn

from .convert import SNN
from .data import TensorLoader
from .neurons import SpikingNeuron
from .threshold import activation_sites
from .train import DivergenceError, progress_bar, select_device

__all__ = [
    "WEIGHTINGS",
    "layer_weights",
    "KAPPA_SCHEDULE",
    "kappa_at",
    "layer_loss",
    "calibrate_joint",
    "calibrate_layerwise",
]

WEIGHTINGS = ("average", "cosine", "sigmoid")
READOUT = "readout"


def layer_weights(kind: str, L: int, p: float, mu: float = 8.0, floor: float = 0.02) -> torch.Tensor:
    """Weights ``w_1..w_L`` of the layers at progress ``p`` in [0, 1], normalised to sum to 1.

    ``average``: 1/L (eq. 25). ``cosine``: ``cos(pi/2 (l/L - p)) + floor`` (eq. 27).
    ``sigmoid``: ``mu s (1 - s) + floor`` with ``s = sigmoid(mu (l/L - p))`` (eqs. 28-30).
    The ``floor`` (added before normalising) keeps every weight strictly positive where the
    paper's formulas reach 0 (the last layer at p = 0, the first at p = 1 for the cosine).
    Both shaped weightings decrease with depth at p = 0, increase at p = 1, and peak near
    layer ``p * L`` in between.
    """
    if kind not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {kind!r}; choose one of {WEIGHTINGS}")
    if L < 1:
        raise ValueError(f"number of layers must be >= 1, got {L}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"progress p must lie in [0, 1], got {p}")
    if floor <= 0:
        raise ValueError(f"floor must be > 0 so that every weight is positive, got {floor}")
    x = torch.arange(1, L + 1, dtype=torch.float64) / L - p
    if kind == "average":
        phi = torch.ones(L, dtype=torch.float64)
    elif kind == "cosine":
        phi = torch.cos(math.pi / 2 * x) + floor
    else:
        if mu <= 0:
            raise ValueError(f"sigmoid weighting needs mu > 0, got {mu}")
        s = torch.sigmoid(mu * x)
        phi = mu * s * (1 - s) + floor
    return (phi / phi.sum()).float()


# (0-based epoch index from which it applies, kappa). The paper: "kappa is set to 6.7, and
# is increased to 10 after 10 epochs, and is increased to 15 at the 20-th epoch". Epochs
# are counted from 1 there: "after 10 epochs" is the 11th epoch (index 10), "the 20-th
# epoch" is index 19.
KAPPA_SCHEDULE: tuple[tuple[int, float], ...] = ((0, 6.7), (10, 10.0), (19, 15.0))

# A sample's ANN map whose spread is below this fraction of the whole batch's spread
# (a constant map: all zero or fully clipped) is scaled by the floor instead; see layer_loss.
SCALE_FLOOR = 0.1


def kappa_at(epoch: int, schedule: Iterable[tuple[int, float]] = KAPPA_SCHEDULE) -> float:
    """Surrogate slope for the 0-based epoch index ``epoch`` (``range(epochs)``).

    ``schedule`` holds ``(first index, kappa)`` pairs. The default follows the paper: 6.7
    for the 1st to 10th epoch (indices 0-9), 10 "after 10 epochs" (indices 10-18) and 15
    from "the 20-th epoch" on (index 19).
    """
    kappa = None
    for start, value in sorted(schedule):
        if epoch >= start:
            kappa = value
    if kappa is None:
        raise ValueError(f"the kappa schedule {list(schedule)} does not cover epoch {epoch}")
    return kappa


def _spread(t: torch.Tensor) -> torch.Tensor:
    """Standard deviation of all values of ``t``, detached (a scalar)."""
    return t.detach().float().std(unbiased=False)


def layer_loss(rate: torch.Tensor, target: torch.Tensor, kind: str = "kl", temperature: float = 1.0) -> torch.Tensor:
    """Discrepancy between an SNN layer's decoded rate and the ANN activation (same shape).

    ``"kl"``: KL(P || Q) with P and Q the softmax, over each sample's flattened feature
    map, of ANN activation and SNN rate, both divided by ``temperature`` times a scale
    (detached), so signed values are allowed and the loss does not depend on the layer's
    scale. The scale is the ANN map's standard deviation, floored at ``SCALE_FLOOR`` times
    the spread of the ANN maps over the whole batch: a constant map (all zero, or fully
    clipped) has no spread of its own, and dividing by ~0 would blow the loss up to ~1e7
    and poison Adam's moments. Where the ANN maps are constant over the whole batch (a
    dead or saturated layer) the SNN rates' spread over the batch is the scale instead,
    so the loss measures how far from flat the SNN's maps are, in their own units (a KL
    of order 1 at most for ordinary spike noise).
    ``"mse"``: mean squared error divided by the mean squared ANN activation (detached),
    again scale-free; for an all-zero ANN batch, divided by the SNN's mean square instead.
    """
    b = rate.shape[0]
    r, a = rate.reshape(b, -1), target.reshape(b, -1)
    if kind == "kl":
        floor = SCALE_FLOOR * _spread(a)
        # Constant over the batch, up to float rounding (which leaves ~1e-7 of the value)?
        if floor <= 1e-5 * SCALE_FLOOR * a.detach().abs().mean():
            floor = _spread(r)
            if floor == 0:  # both constant: each softmax is uniform, the loss is 0 at any scale
                floor = torch.ones((), device=a.device)
        # (a one-value map has no standard deviation; its softmax is 1 whatever the scale)
        own = a.detach().std(1, keepdim=True) if a.shape[1] > 1 else torch.zeros_like(a[:, :1])
        scale = torch.maximum(own, floor) * temperature
        log_q = torch.log_softmax(r / scale, 1)
        log_p = torch.log_softmax(a / scale, 1)
        return (log_p.exp() * (log_p - log_q)).sum(1).mean()
    if kind == "mse":
        norm = a.detach().pow(2).mean()
        if norm == 0:
            norm = r.detach().pow(2).mean()
        return ((r - a) ** 2).mean() / (norm + 1e-30)
    raise ValueError(f"unknown calibration loss {kind!r}; choose 'kl' or 'mse'")


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
            self.store[name] = out.view(m.steps, m.batch, *out.shape[1:]).mean(0)

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


def _trainable(snn: SNN, train: Iterable[str]) -> list[nn.Parameter]:
    """Switch on the requested parameter kinds: weights, biases, thresholds, v0."""
    train = set(train)
    unknown = train - {"weights", "biases", "thresholds", "v0"}
    if unknown:
        raise ValueError(f"unknown parameter kinds {sorted(unknown)}; choose from weights, biases, thresholds, v0")
    params = []
    for m in snn.net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            for kind, p in (("weights", m.weight), ("biases", m.bias)):
                if p is not None:
                    p.requires_grad_(kind in train)
                    if kind in train:
                        params.append(p)
        if isinstance(m, SpikingNeuron):
            for name, p in m.named_parameters(recurse=False):
                want = (name == "v0" and "v0" in train) or (name != "v0" and "thresholds" in train)
                p.requires_grad_(want)
                if want:
                    params.append(p)
    if not params:
        raise ValueError(f"nothing to calibrate for {sorted(train)}")
    return params


def _ensure_v0(snn: SNN, x: torch.Tensor) -> None:
    """Give every neuron a per-neuron initial membrane offset ``v0`` (zeros) if it has none."""
    shapes = {}
    hs = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape[1:])) for n, m in snn.neurons.items()]
    with torch.no_grad():
        snn.reset()
        snn(x[:1], 1)
        snn.reset()
    for h in hs:
        h.remove()
    for n, m in snn.neurons.items():
        if m.v0 is None:
            m.v0 = nn.Parameter(torch.zeros(shapes[n], device=x.device), requires_grad=False)


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
) -> pd.DataFrame:
    """Calibrate all layers of ``snn`` at once against ``ann`` (in place); return the loss history.

    ``T`` is the number of time steps, or several (each batch then draws one, so the
    calibrated network does not specialise to a single T). ``train`` chooses what is
    updated: ``weights``, ``biases``, ``thresholds``, ``v0`` (initial membranes). The
    history is a tidy table: epoch, layer, weight (averaged over the epoch), loss.
    """
    Ts = [T] if isinstance(T, int) else list(T)
    if not Ts or any((not isinstance(t, int)) or t < 1 for t in Ts):
        raise ValueError(f"T must be a positive integer or a list of them, got {T!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = select_device(device)
    snn.to(device).train()
    ann.to(device).eval()
    if "v0" in set(train):
        _ensure_v0(snn, x.to(device))
    params = _trainable(snn, train)
    opt = torch.optim.Adam(params, lr=lr)
    names = list(snn.neurons) + [READOUT]
    L = len(names)
    targets, rates = _Targets(ann), _Rates(snn)
    loader = TensorLoader(x, torch.zeros(len(x)), batch_size, shuffle=True, seed=seed)
    g = torch.Generator().manual_seed(seed)
    total = epochs * len(loader)
    step = 0
    rows = []
    last_finite = float("nan")
    try:
        for epoch in range(epochs):
            _set_kappa(snn, kappa_at(epoch, kappa_schedule))
            sums = torch.zeros(L)
            wsum = torch.zeros(L)
            bar = progress_bar(loader, f"joint calibration ({weighting}) epoch {epoch + 1}/{epochs}", progress)
            for xb, _ in bar:
                xb = xb.to(device)
                w = layer_weights(weighting, L, step / max(1, total - 1), mu, floor)
                t_now = Ts[int(torch.randint(len(Ts), (1,), generator=g))]
                tgt = targets(xb)
                snn.reset()
                out = snn(xb, t_now).mean(0)
                per_layer = [layer_loss(rates.store[n], tgt[n], loss, temperature) for n in names[:-1]]
                per_layer.append(layer_loss(out, tgt[READOUT], loss, temperature))
                losses = torch.stack(per_layer)
                total_loss = (w.to(device) * losses).sum()
                if not torch.isfinite(total_loss):
                    raise DivergenceError(
                        f"joint calibration: loss became {total_loss.item()} in epoch {epoch + 1}; "
                        f"last finite loss {last_finite:.4g}"
                    )
                last_finite = total_loss.item()
                opt.zero_grad(set_to_none=True)
                total_loss.backward()
                opt.step()
                step += 1
                sums += losses.detach().cpu() * len(xb)
                wsum += w * len(xb)
                bar.set_postfix(loss=f"{last_finite:.4f}")
            for i, n in enumerate(names):
                rows.append({"epoch": epoch + 1, "layer": n, "weight": float(wsum[i] / len(x)),
                             "loss": float(sums[i] / len(x)), "method": f"joint-{weighting}"})
    finally:
        targets.remove()
        rates.remove()
        for p in params:
            p.requires_grad_(False)
        snn.eval()
        _reset_and_release(snn)
    return pd.DataFrame(rows)


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


class _StopForward(Exception):
    """Raised by a forward hook to end a pass whose remaining layers are not needed."""


def _stop_forward(*_args) -> None:
    raise _StopForward


@torch.no_grad()
def _init_membranes(snn: SNN, ann: nn.Module, x: torch.Tensor, T: int, batch_size: int, device) -> None:
    """Stage 1: per neuron, ``v0 = T * mean(ANN activation - SNN rate)``, layer after layer.

    A membrane offset ``delta`` adds about ``delta / T`` to a positive neuron's decoded
    rate and ``alpha * delta / T`` to a negative one, so negative-mean neurons get the
    offset divided by ``alpha``.
    """
    targets, rates = _Targets(ann), _Rates(snn)
    stop = None
    try:
        for name, neuron in snn.neurons.items():
            diff = 0.0
            mean_act = 0.0
            stop = neuron.register_forward_hook(_stop_forward)  # the later layers are not needed
            for xb, _ in TensorLoader(x, torch.zeros(len(x)), batch_size):
                xb = xb.to(device)
                tgt = targets(xb)
                snn.reset()
                try:
                    snn(xb, T)
                except _StopForward:
                    pass
                diff = diff + (tgt[name] - rates.store[name]).sum(0)
                mean_act = mean_act + tgt[name].sum(0)
            stop.remove()
            diff, mean_act = diff / len(x), mean_act / len(x)
            alpha = getattr(neuron, "alpha", 1.0)
            offset = torch.where(mean_act < 0, diff / alpha, diff) * T
            neuron.v0 = nn.Parameter(offset + (neuron.v0 if neuron.v0 is not None else 0), requires_grad=False)
    finally:
        for h in (targets, rates, stop):
            if h is not None:
                h.remove()
        _reset_and_release(snn)


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
) -> pd.DataFrame:
    """Layer-wise baseline: initial membranes from the mean ANN-SNN difference, then each
    layer in turn (shallow to deep, readout last) with BPTT on that layer's loss, changing
    only that layer's weights and biases. Errors of earlier layers reach later ones, which
    is the accumulation joint calibration avoids. Returns a tidy loss history.
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    device = select_device(device)
    snn.to(device)
    ann.to(device).eval()
    x_dev = x.to(device)
    if init_membranes:
        _init_membranes(snn, ann, x, T, batch_size, device)
    groups = _layer_params(snn, x_dev)
    chosen = list(groups) if layers is None else list(layers)
    targets, rates = _Targets(ann), _Rates(snn)
    _set_kappa(snn, kappa)
    rows, stops = [], []
    try:
        for name in chosen:
            for p in snn.parameters():
                p.requires_grad_(False)
            params = [p for m in groups[name] for p in m.parameters()]
            for p in params:
                p.requires_grad_(True)
            opt = torch.optim.Adam(params, lr=lr)
            loader = TensorLoader(x, torch.zeros(len(x)), batch_size, shuffle=True, seed=seed)
            # Only this layer's rate is needed: the forward pass stops right after it
            # (after _Rates' hook, registered earlier, has stored it).
            if name != READOUT:
                stops.append(snn.neurons[name].register_forward_hook(_stop_forward))
            for epoch in range(epochs):
                total = 0.0
                for xb, _ in progress_bar(loader, f"layer-wise calibration {name} epoch {epoch + 1}/{epochs}",
                                          progress):
                    xb = xb.to(device)
                    tgt = targets(xb)
                    snn.reset()
                    try:
                        out = snn(xb, T)
                    except _StopForward:
                        out = None
                    rate = out.mean(0) if name == READOUT else rates.store[name]
                    lo = layer_loss(rate, tgt[name], loss, temperature)
                    opt.zero_grad(set_to_none=True)
                    lo.backward()
                    opt.step()
                    total += lo.item() * len(xb)
                rows.append({"epoch": epoch + 1, "layer": name, "weight": 1.0, "loss": total / len(x),
                             "method": "layer-wise"})
            while stops:
                stops.pop().remove()
    finally:
        for h in [targets, rates, *stops]:
            h.remove()
        for p in snn.parameters():
            p.requires_grad_(False)
        snn.eval()
        _reset_and_release(snn)
    return pd.DataFrame(rows)
