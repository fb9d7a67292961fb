"""The paper's reported numbers, in one place (Wang, Zhu, Li, IJCAI 2025, pp. 6460-6468).

Chapters, the report and the claims ledger read them from here; nothing else types them.
Accuracies are fractions of the test set, ``T`` the number of time steps the paper lists.
Tables 1-3 are re-laid in ``paper/tables.md`` of the shared materials.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["CITATION", "TABLE1", "TABLE2_3", "TABLE4", "TABLE5", "FIG3_EXTRA_STEPS", "SPEEDUP_VS_AUGMAPPING",
           "SPEEDUP_VS_STRELU"]

CITATION = ("Wang, Zhu, Li. A Fast and Accurate ANN-SNN Conversion Algorithm with Negative Spikes. "
            "IJCAI 2025, pages 6460-6468, doi 10.24963/ijcai.2025/719")

#: Table 1: Fashion-MNIST, Net4, methods with negative spikes (SNN accuracy at the listed T).
TABLE1 = pd.DataFrame([
    {"method": "AugMapping [Yu 2022]", "neuron": "IBT-style, large negative threshold", "ANN": 0.9211, "SNN": 0.9211,
     "T": 220},
    {"method": "stReLU [Han 2023]", "neuron": "symmetric threshold, hard clip", "ANN": 0.9083, "SNN": 0.9083, "T": 79},
    {"method": "proposed", "neuron": "signed IF, adjustable negative threshold", "ANN": 0.9272, "SNN": 0.9262,
     "T": 10},
])

#: Tables 2 (VGG-16) and 3 (ResNet-18), CIFAR-10 at full width; "two_stage" is the baseline
#: of [Wang 2025] (IBT neurons, layer-wise calibration) with its own ANN.
TABLE2_3 = pd.DataFrame([
    ("vgg16", "two_stage", 4, 0.9562, 0.9176), ("vgg16", "joint", 4, 0.9626, 0.9369),
    ("vgg16", "two_stage", 8, 0.9562, 0.9338), ("vgg16", "joint", 8, 0.9626, 0.9517),
    ("resnet18", "two_stage", 4, 0.9681, 0.9123), ("resnet18", "joint", 4, 0.9712, 0.9417),
    ("resnet18", "two_stage", 8, 0.9681, 0.9393), ("resnet18", "joint", 8, 0.9712, 0.9509),
], columns=["model", "calibration", "T", "paper ANN", "paper SNN"])

#: Table 4: Net4's firing rate per layer (spikes per neuron per time step), with and without
#: threshold optimisation. The paper does not say at which T it counted.
TABLE4 = pd.DataFrame({"layer": ["act1", "act2", "act3"], "with": [0.0964, 0.0763, 0.1856],
                       "without": [0.0368, 0.0161, 0.0477]})

#: Table 5: Net4, weighting of the layers in joint calibration; T is the number of steps the
#: SNN needs to reach the listed accuracy.
TABLE5 = pd.DataFrame([
    {"weighting": "average", "ANN": 0.9272, "SNN": 0.9261, "T": 19},
    {"weighting": "cosine", "ANN": 0.9272, "SNN": 0.9262, "T": 10},
    {"weighting": "sigmoid", "ANN": 0.9272, "SNN": 0.9260, "T": 13},
])

#: Figure 3's text: without calibration the SNN needs "about 20 extra time steps" to reach 92.6%.
FIG3_EXTRA_STEPS = 20

#: Section 5's text: the proposed method needs 1/22 of AugMapping's and 1/8 of stReLU's steps.
SPEEDUP_VS_AUGMAPPING = 22
SPEEDUP_VS_STRELU = 8
