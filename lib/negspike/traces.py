"""Step-by-step views of one neuron, for the chapters that explain the neurons."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .neurons import SpikingNeuron

__all__ = ["MembraneTrace", "membrane_trace"]


class MembraneTrace(NamedTuple):
    """One neuron stepped through a sequence of input currents (unpacks as a 4-tuple)."""

    v0: float  # the initial membrane v(0)
    v_temp: np.ndarray  # after integrating each step's input (eq. 1), before any reset
    v_after: np.ndarray  # after the step's reset (eq. 3), the membrane carried to the next step
    out: np.ndarray  # the step's output: a spike's magnitude (signed) or 0


@torch.no_grad()
def membrane_trace(neuron: SpikingNeuron, currents: torch.Tensor) -> MembraneTrace:
    """Step a single integrate-and-fire neuron from reset through ``currents`` (one value per step).

    For neurons whose membrane integrates the input and is reset by the spike it fires
    (:class:`~negspike.neurons.IFNeuron`, :class:`~negspike.neurons.SignedIFNeuron`, IBT), so
    that ``v_temp`` is the membrane before the reset.
    """
    if currents.dim() != 1 or len(currents) == 0:
        raise ValueError(f"expected one current per step, shape [steps], got {tuple(currents.shape)}")
    neuron.reset()
    v = neuron.initial_membrane(currents[:1])
    v0, v_temp, v_after, out = float(v), [], [], []
    for t, z_t in enumerate(currents):
        v_temp.append(float(v + z_t))
        out.append(float(neuron.run(z_t.view(1), 1, fresh=t == 0)))
        v = neuron.v.clone()
        v_after.append(float(v))
    return MembraneTrace(v0, np.array(v_temp), np.array(v_after), np.array(out))
