"""Where the signed neuron's proof stops: decoding errors under fluctuating input and with depth.

The paper proves that its signed neuron decodes ``clip(LeakyReLU(z))`` for a *constant*
input ``z``. Inside a network every layer after the first receives spikes, so its input
fluctuates around its mean. :func:`fluctuation_table` measures single neurons on inputs
whose mean over ``T`` steps is exactly ``z`` plus zero-mean noise; :func:`layer_diagnosis`
measures every spiking layer of a converted network against its ANN activation: the
relative error of the decoded output and the share of spikes whose sign is opposite to
the sign of the ANN activation (spikes of the "wrong" sign, which the paper's neuron does
not take back at their full value).
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import pandas as pd
import torch

from .calibration_pass import READOUT, _Calibration
from .convert import SNN
from .neurons import SpikingNeuron

__all__ = ["fluctuating_inputs", "fluctuation_table", "layer_diagnosis"]


def fluctuating_inputs(z: torch.Tensor, amplitude: float, T: int, seed: int = 0) -> torch.Tensor:
    """``[T, len(z)]`` inputs: Gaussian noise of standard deviation ``amplitude`` per step, made
    exactly zero-mean over the ``T`` steps, plus ``z``; so every column's mean input is its ``z``."""
    g = torch.Generator().manual_seed(seed)
    noise = amplitude * torch.randn(T, len(z), generator=g, dtype=torch.float64)
    return (z.double() + noise - noise.mean(0)).float()


@torch.no_grad()
def fluctuation_table(neurons: Mapping[str, Callable[[], SpikingNeuron]], zs: Iterable[float],
                      amplitudes: Iterable[float], T: int, n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Decoded output of each neuron (built by ``neurons[name]()``) for ``n`` inputs per mean
    ``z`` and fluctuation ``amplitude``: mean and spread over the inputs of the decoded output
    (sum of output over ``T`` steps, divided by ``T``), and the mean absolute error against
    ``target`` = the neuron's clipped Leaky ReLU of ``z``, taken from its constant-input
    output at the largest ``T`` here."""
    rows = []
    for z in zs:
        zcol = torch.full((n,), float(z))
        for name, make in neurons.items():
            ideal = make()
            target = ideal.run(zcol[:1], steps=4 * T).mean().item()  # constant input: the neuron's own curve
            for a in amplitudes:
                neuron = make()
                out = neuron.run(fluctuating_inputs(zcol, a, T, seed)).sum(0) / T
                rows.append({"neuron": name, "z": float(z), "amplitude": float(a), "T": T, "decoded": out.mean().item(),
                             "decoded_sd": out.std().item(), "target": target,
                             "abs_error": (out - target).abs().mean().item(), "inputs": n})
    return pd.DataFrame(rows)


class _SpikeSigns:
    """Per neuron of an SNN: how often each element fired a positive and a negative spike in the
    last forward pass."""

    def __init__(self, snn: SNN) -> None:
        self.pos: dict[str, torch.Tensor] = {}
        self.neg: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in snn.neurons.items()]

    def _hook(self, name: str):
        def fn(m, _i, out):
            spikes = m.time_major(out)
            self.pos[name] = (spikes > 0).sum(0)
            self.neg[name] = (spikes < 0).sum(0)

        return fn

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def layer_diagnosis(snn: SNN, ann: torch.nn.Module, x: torch.Tensor, Ts: Iterable[int], batch_size: int = 128,
                    device: str | torch.device = "auto") -> pd.DataFrame:
    """Every spiking layer (in execution order, then the readout) of ``snn`` against ``ann`` on
    the images ``x``, run ``T`` steps from reset membranes for each ``T`` of ``Ts``:

    - ``rel_error``: mean |decoded output - ANN activation| over all elements, divided by the
      mean |ANN activation| (for the readout: the mean output against the logits);
    - ``wrong_sign_share``: spikes whose sign is opposite to the sign of the element's ANN
      activation, as a share of all the layer's spikes (NaN for the readout);
    - ``spikes_per_neuron``: spikes per element over the ``T`` steps.
    """
    rows = []
    with _Calibration(snn, ann, device, progress=False) as cal:
        snn.eval()
        order = [n for kind, n in snn.execution_order(x[:1].to(cal.device)) if kind == "neuron"]
        signs = _SpikeSigns(snn)
        try:
            for T in Ts:
                err, mag = {}, {}
                wrong, total = dict.fromkeys(order, 0), dict.fromkeys(order, 0)
                for i in range(0, len(x), batch_size):
                    tgt, out = cal.forward(x[i:i + batch_size].to(cal.device), T)
                    rates = {**cal.rates.store, READOUT: out.mean(0)}
                    for n, r in rates.items():
                        err[n] = err.get(n, 0.0) + (r - tgt[n]).abs().sum().item()
                        mag[n] = mag.get(n, 0.0) + tgt[n].abs().sum().item()
                    for n in order:
                        act, pos, neg = tgt[n], signs.pos[n], signs.neg[n]
                        wrong[n] += int((pos * (act < 0)).sum() + (neg * (act > 0)).sum())
                        total[n] += int(pos.sum() + neg.sum())
                elems = {n: cal.rates.store[n][0].numel() for n in order}
                for depth, n in enumerate(order + [READOUT], start=1):
                    spikes = total.get(n)
                    rows.append({"layer": n, "depth": depth, "T": T, "rel_error": err[n] / max(mag[n], 1e-12),
                                 "wrong_sign_share": (wrong[n] / spikes if spikes else 0.0) if n != READOUT else float("nan"),
                                 "spikes_per_neuron": spikes / (elems[n] * len(x)) if n != READOUT else float("nan"),
                                 "images": len(x)})
        finally:
            signs.remove()
    return pd.DataFrame(rows)
