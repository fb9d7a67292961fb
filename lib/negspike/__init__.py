"""negspike: ANN-to-SNN conversion for Leaky-ReLU networks with negative spikes.

A small library under the book "A Fast and Accurate ANN-SNN Conversion Algorithm with
Negative Spikes" (Wang, Zhu, Li; IJCAI 2025, pp. 6460-6468, doi 10.24963/ijcai.2025/719).
Modules: ``data``, ``models``, ``neurons``, ``tracking`` (the book's own neurons),
``activations`` (activation layers and the sampling of their outputs), ``threshold``,
``variance_penalty``, ``clipping`` (trainable clipping), ``tails`` (long-tail statistics),
``graph`` (the traced graph the converter works on), ``convert``,
``simulate``, ``calibrate``, ``train``, ``utils`` (device, seeding, progress), ``cache``,
``pipeline`` (cached steps), ``experiments`` (the book's studies), ``profiles``, ``results``
(atomic results files, this machine's runs and committed records), ``own_network``
(converting other networks), ``traces`` (one neuron step by step), ``book`` (chapter
helpers) and ``plots``.
"""
from .convert import SNN, convert, fold_bn
from .graph import UnsupportedLayerError, canonical
from .neurons import IBTNeuron, IFNeuron, SignedIFNeuron, spike
from .simulate import SimulationResult, simulate
from .tracking import PairTrackingNeuron, TrackingNeuron
from .threshold import Thresholds, activation_thresholds

__version__ = "0.1.0"

__all__ = [
    "SNN",
    "UnsupportedLayerError",
    "convert",
    "fold_bn",
    "canonical",
    "IBTNeuron",
    "IFNeuron",
    "SignedIFNeuron",
    "spike",
    "TrackingNeuron",
    "PairTrackingNeuron",
    "SimulationResult",
    "simulate",
    "Thresholds",
    "activation_thresholds",
]
