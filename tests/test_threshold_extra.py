"""Tests of the per-channel helpers the threshold chapters use (channel samples, tails,
per-channel eta, layer eta, rate-range usage) and of the histogram helper."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from negspike.activations import channel_values  # noqa: E402
from negspike.models import Net4  # noqa: E402
from negspike.plots import threshold_histogram  # noqa: E402
from negspike.tails import channel_samples, channel_tails  # noqa: E402
from negspike.threshold import Thresholds, range_usage  # noqa: E402
from negspike.variance_penalty import channel_eta, layer_eta, variance_penalty  # noqa: E402


def _small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.LeakyReLU(0.1), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.LeakyReLU(0.1))


def test_channel_samples_shapes_extremes_and_full_sample():
    model = _small_net()
    x = torch.randn(20, 1, 6, 6)
    res = channel_samples(model, x, per_channel=10_000, batch_size=7)
    assert list(res) == ["1", "4"]
    with torch.no_grad():
        a1 = model[1](model[0](x))
        a4 = model(x)
    full1 = channel_values(a1)
    # per_channel exceeds the available values: every value is kept, in loader order
    assert res["1"]["values"].shape == full1.shape
    assert torch.allclose(res["1"]["values"].sort(1).values, full1.sort(1).values)
    assert torch.allclose(res["1"]["max"], full1.amax(1)) and torch.allclose(res["1"]["min"], full1.amin(1))
    assert torch.allclose(res["4"]["max"], a4.amax(0)) and res["4"]["values"].shape == (5, 20)


def test_channel_samples_subsample_same_positions_and_errors():
    model = _small_net()
    x = torch.randn(200, 1, 6, 6)
    a = channel_samples(model, x, layers=["1"], per_channel=300)["1"]
    n = a["values"].shape[1]
    assert 200 < n < 420  # about per_channel of 200 * 16 values
    # the exact extremes bound the sample
    assert (a["values"].amax(1) <= a["max"]).all() and (a["values"].amin(1) >= a["min"]).all()
    # a model of the same architecture is sampled at the same positions: scaling the
    # first layer's weights and bias scales the sample exactly
    twin = _small_net()
    with torch.no_grad():
        twin[0].weight.mul_(2.0)
        twin[0].bias.mul_(2.0)
    b = channel_samples(twin, x, layers=["1"], per_channel=300)["1"]
    assert torch.allclose(b["values"], 2.0 * a["values"], atol=1e-5)
    with pytest.raises(ValueError, match="no activation layers"):
        channel_samples(model, x, layers=["act9"])
    with pytest.raises(ValueError, match="per_channel"):
        channel_samples(model, x, per_channel=0)


def test_channel_tails_by_side():
    torch.manual_seed(0)
    bulk = torch.rand(3, 1000) + 0.01  # positive, p99 about 1
    v = torch.cat([bulk, -0.1 * bulk], 1)
    v[1, 0] = 10.0  # a long positive tail in channel 1
    v[2, 1000] = -5.0  # a long negative tail in channel 2
    pos = channel_tails(v, side="pos")
    neg = channel_tails(v, side="neg")
    ab = channel_tails(v, side="abs")
    assert pos[1] > 8 and pos[0] < 1.05 and pos[2] < 1.05
    assert neg[2] > 40 and neg[0] < 1.05 and neg[1] < 1.05
    # each is the largest magnitude over the 99th percentile of that side's magnitudes
    for c in range(3):
        for tails, vals in ((ab, v[c].abs()), (pos, v[c][v[c] > 0]), (neg, -v[c][v[c] < 0])):
            assert tails[c].item() == pytest.approx((vals.max() / torch.quantile(vals, 0.99)).item(), rel=1e-5)
    # the exact extreme replaces the sample's maximum
    ext = channel_tails(bulk, side="pos", extreme=torch.tensor([1.0, 1.0, 20.0]))
    assert ext[2] > 15 and ext[0] == pytest.approx(channel_tails(bulk, side="pos")[0].item())
    # a channel without negative values has no negative tail
    assert torch.isnan(channel_tails(bulk, side="neg")).all()
    with pytest.raises(ValueError, match="side"):
        channel_tails(v, side="both")
    with pytest.raises(ValueError, match="shape"):
        channel_tails(v.flatten())


def test_channel_eta_matches_variance_penalty_and_is_scale_free():
    torch.manual_seed(0)
    a = torch.randn(32, 6, 4, 4) + 0.3
    per = channel_eta(a, eps=1e-3)
    assert per.shape == (6,)
    assert per.mean().item() == pytest.approx(variance_penalty(a, eps=1e-3).item(), rel=1e-6)
    signed = channel_eta(a, eps=1e-3, magnitude=False)
    assert signed.mean().item() == pytest.approx(variance_penalty(a, eps=1e-3, magnitude=False).item(), rel=1e-6)
    assert torch.allclose(channel_eta(7.0 * a, eps=1e-9), channel_eta(a, eps=1e-9), rtol=1e-4)
    # a channel whose signed mean is near zero explodes the signed eta, not the magnitude eta
    b = torch.randn(4096, 2)
    b[:, 1] = b[:, 1].abs() + 1.0
    b[:, 0] -= b[:, 0].mean()
    assert channel_eta(b, magnitude=False)[0] > 1e4 * channel_eta(b)[0]


def test_layer_eta_is_the_batch_mean_of_variance_penalty():
    model = _small_net()
    x = torch.randn(50, 1, 6, 6)
    etas = layer_eta(model, x, eps=1e-3, batch_size=25)
    assert list(etas) == ["1", "4"]
    with torch.no_grad():
        expect = sum(variance_penalty(model[1](model[0](xb)), 1e-3).item() for xb in (x[:25], x[25:])) / 2
    assert etas["1"] == pytest.approx(expect, rel=1e-6)
    assert layer_eta(Net4(), torch.randn(8, 1, 28, 28), batch_size=4).keys() == {"act1", "act2", "act3"}


def test_range_usage():
    a = torch.tensor([0.5, 1.0, 2.0, 4.0, -0.05, -0.1, -0.4], dtype=torch.float64)
    u = range_usage(a, Thresholds(2.0, -0.2), T=4)
    assert u["pos_usage"] == pytest.approx((0.25 + 0.5 + 1.0 + 1.0) / 4)
    assert u["neg_usage"] == pytest.approx((0.25 + 0.5 + 1.0) / 3)
    assert u["clipped"] == pytest.approx(2 / 7)  # 4.0 and -0.4
    # one spike is worth 0.5 (positive) and 0.05 (negative) at T = 4: none of the values is smaller
    assert u["below_one_spike"] == pytest.approx(0.0)
    # with the max thresholds one spike is worth 1.0 and 0.1: 0.5 and -0.05 round to zero
    assert range_usage(a, Thresholds(4.0, -0.4), T=4)["below_one_spike"] == pytest.approx(2 / 7)
    u_max = range_usage(a, Thresholds(4.0, -0.4))
    assert u_max["clipped"] == 0.0 and u_max["pos_usage"] < u["pos_usage"] and "below_one_spike" not in u_max
    relu = range_usage(a.clamp(min=0), Thresholds(4.0))
    assert math.isnan(relu["neg_usage"])
    with pytest.raises(ValueError, match="T must"):
        range_usage(a, Thresholds(1.0, -1.0), T=0)


def test_threshold_histogram_draws_marks_once_per_label():
    fig, ax = plt.subplots()
    threshold_histogram(ax, torch.randn(500).numpy(), {"max": (2.0, -2.0), "99%": (1.5, None)}, label="values")
    labels = [t.get_text() for t in ax.legend().get_texts()]
    assert labels.count("max") == 1 and labels.count("99%") == 1 and "values" in labels
    assert len(ax.lines) == 3 and ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="finite"):
        threshold_histogram(ax, [float("nan")])
    plt.close(fig)
