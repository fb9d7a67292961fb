"""Paired statistics for matched ANN/SNN comparisons, and the simulator's per-image record."""
import math

import numpy as np
import pytest
import torch

from negspike import activation_thresholds, convert
from negspike.models import build_model
from negspike.simulate import simulate
from negspike.stats import accuracy_se, mcnemar_p, paired_difference, t_within
from negspike.train import correct_per_image, evaluate_ann


def test_accuracy_se_is_binomial():
    assert accuracy_se(0.92, 2000) == pytest.approx(math.sqrt(0.92 * 0.08 / 2000))
    assert accuracy_se(1.0, 10) == 0.0
    with pytest.raises(ValueError):
        accuracy_se(92.0, 2000)  # a percentage, not a fraction


def test_mcnemar_exact_values():
    assert mcnemar_p(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_p(5, 5) == 1.0
    # one-sided tail of binomial(20, 1/2) up to 5 is 0.020695; two-sided doubles it
    assert mcnemar_p(5, 15) == pytest.approx(2 * 0.0206947, rel=1e-4)
    assert mcnemar_p(0, 0) == 1.0


def test_paired_difference_is_tighter_than_separate_errors():
    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.92
    b = a.copy()
    flip = rng.choice(2000, 30, replace=False)  # B differs from A on 30 images only
    b[flip] = ~b[flip]
    p = paired_difference(a, b)
    assert p.diff == pytest.approx(a.mean() - b.mean())
    assert p.only_a + p.only_b == 30
    separate = math.hypot(accuracy_se(a.mean(), 2000), accuracy_se(b.mean(), 2000))
    assert p.se < separate / 3
    assert p.low < p.diff < p.high
    assert paired_difference(a, a).se == 0.0 and not paired_difference(a, a).excludes_zero()
    with pytest.raises(ValueError, match="same images"):
        paired_difference(a, b[:-1])


def test_t_within_brackets_the_crossing():
    n = 2000
    rng = np.random.default_rng(1)
    ann = rng.random(n) < 0.9
    snn = np.zeros((12, n), dtype=bool)
    for t in range(12):  # the SNN loses 200, 100, 50, ... images to the ANN, 0 from T = 9 on
        lost = 0 if t >= 8 else 200 >> t
        snn[t] = ann
        snn[t, np.flatnonzero(ann)[:lost]] = False
    w = t_within(snn, ann, margin=0.001)
    assert w.T == 8  # T = 7 loses 3 images (0.15 points), T = 8 loses 1 (0.05 points); the margin is 2 images
    assert w.earliest <= w.T <= w.latest
    assert t_within(snn[:3], ann).latest is None  # never confidently within in the first 3 steps


def test_simulation_records_which_images_it_gets_right():
    torch.manual_seed(0)
    net = build_model("net4", "leaky", 0.1).eval()
    x = torch.rand(37, 1, 28, 28)
    y = net(x).argmax(1)
    y[::3] = (y[::3] + 1) % 10  # the ANN is wrong on every third image
    snn = convert(net, activation_thresholds(net, x, "max"), "signed")
    whole = simulate(snn, x, y, 6, batch_size=64, progress=False)
    batched = simulate(snn, x, y, 6, batch_size=5, progress=False)  # 8 batches, the last one partial
    assert whole.correct.shape == (6, 37) and whole.correct.dtype == torch.bool
    assert torch.equal(whole.correct, batched.correct), "the per-image record depends on the batching"
    assert np.allclose(whole.correct.double().mean(1).numpy(), whole.accuracy)
    ann = correct_per_image(net, x, y)
    assert ann.tolist() == [i % 3 != 0 for i in range(37)]
    assert evaluate_ann(net, x, y) == pytest.approx(ann.double().mean().item())
