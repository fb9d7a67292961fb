import pytest
import torch
from torch import nn

from negspike import activation_thresholds, convert
from negspike.calibrate import WEIGHTINGS, calibrate_joint, calibrate_layerwise, kappa_at, layer_loss, layer_weights
from negspike.threshold import add_clipping


@pytest.mark.parametrize("kind", ["cosine", "sigmoid"])
@pytest.mark.parametrize("L", [3, 4, 7])
def test_shaped_weightings_move_from_shallow_to_deep(kind, L):
    w0 = layer_weights(kind, L, 0.0)
    w1 = layer_weights(kind, L, 1.0)
    assert (w0[1:] < w0[:-1]).all(), "decreasing with depth at p = 0"
    assert (w1[1:] > w1[:-1]).all(), "increasing with depth at p = 1"
    for p in (0.3, 0.5, 0.8):
        w = layer_weights(kind, L, p)
        peak = int(w.argmax()) + 1
        assert abs(peak - p * L) <= 0.5 + 1e-9, "the peak sits at the layer nearest p * L"
        assert w[peak - 1] >= w.max() - 1e-7
    for p in torch.linspace(0, 1, 11).tolist():
        w = layer_weights(kind, L, p)
        assert (w > 0).all() and w.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_average_weighting_and_bad_arguments():
    assert torch.allclose(layer_weights("average", 4, 0.3), torch.full((4,), 0.25))
    assert set(WEIGHTINGS) == {"average", "cosine", "sigmoid"}
    with pytest.raises(ValueError, match="unknown weighting"):
        layer_weights("linear", 4, 0.5)
    with pytest.raises(ValueError, match="progress p"):
        layer_weights("cosine", 4, 1.5)
    with pytest.raises(ValueError, match="floor"):
        layer_weights("cosine", 4, 0.5, floor=0)


def test_sigmoid_mu_sharpens_the_peak():
    soft = layer_weights("sigmoid", 8, 0.5, mu=2.0)
    sharp = layer_weights("sigmoid", 8, 0.5, mu=20.0)
    assert sharp.max() > soft.max()


def test_kappa_schedule():
    assert [kappa_at(e) for e in (0, 9, 10, 19, 20, 40)] == [6.7, 6.7, 10.0, 10.0, 15.0, 15.0]


def test_layer_losses_are_zero_at_match_and_scale_free():
    a = torch.randn(8, 3, 4, 4)
    for kind in ("kl", "mse"):
        assert layer_loss(a, a, kind).item() == pytest.approx(0.0, abs=1e-6)
        r = a + 0.3 * torch.randn_like(a)
        assert layer_loss(r, a, kind).item() > 0
        assert layer_loss(5 * r, 5 * a, kind).item() == pytest.approx(layer_loss(r, a, kind).item(), rel=1e-4)
    with pytest.raises(ValueError, match="unknown calibration loss"):
        layer_loss(a, a, "l1")


def small_pair(seed=0):
    torch.manual_seed(seed)
    ann = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.LeakyReLU(0.1), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(4 * 5 * 5, 16), nn.LeakyReLU(0.1), nn.Linear(16, 5),
    )
    x = torch.randn(64, 1, 12, 12)
    clipped = add_clipping(ann, activation_thresholds(ann, x, "percentile", 99.0)).eval()
    return clipped, x


def total_rate_error(snn, ann, x, T):
    snn.reset()
    with torch.no_grad():
        return (snn(x, T).mean(0) - ann(x)).abs().mean().item()


@pytest.mark.parametrize("weighting", ["average", "cosine", "sigmoid"])
def test_joint_calibration_lowers_its_loss(weighting):
    ann, x = small_pair()
    snn = convert(ann)
    hist = calibrate_joint(snn, ann, x, T=4, epochs=6, lr=3e-3, batch_size=32, weighting=weighting,
                           loss="mse", progress=False)
    first = hist[hist.epoch == 1]["loss"].sum()
    last = hist[hist.epoch == 6]["loss"].sum()
    assert last < 0.8 * first
    assert set(hist.columns) >= {"epoch", "layer", "weight", "loss"}
    assert list(hist[hist.epoch == 1]["layer"]) == ["1", "5", "readout"]
    assert not any(p.requires_grad for p in snn.parameters())


def test_joint_calibration_improves_the_output_and_can_train_v0():
    ann, x = small_pair(1)
    snn = convert(ann)
    before = total_rate_error(snn, ann, x, 4)
    calibrate_joint(snn, ann, x, T=[3, 4, 5], epochs=6, lr=3e-3, batch_size=32, loss="mse",
                    train=("weights", "biases", "v0"), progress=False)
    assert total_rate_error(snn, ann, x, 4) < before
    assert any(m.v0 is not None and m.v0.abs().sum() > 0 for m in snn.neurons.values())


def test_layerwise_calibration_only_changes_the_layer_it_calibrates():
    ann, x = small_pair(2)
    snn = convert(ann)
    before = {n: p.clone() for n, p in snn.named_parameters()}
    hist = calibrate_layerwise(snn, ann, x, T=4, epochs=2, lr=1e-2, batch_size=32, loss="mse",
                               init_membranes=False, layers=["5"], progress=False)
    changed = {n for n, p in snn.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"net.4.weight", "net.4.bias"}
    assert list(hist["layer"].unique()) == ["5"]


def test_layerwise_membrane_init_reduces_mean_error():
    ann, x = small_pair(3)
    snn = convert(ann)
    before = total_rate_error(snn, ann, x, 4)
    calibrate_layerwise(snn, ann, x, T=4, epochs=1, lr=1e-3, batch_size=32, loss="mse", layers=[], progress=False)
    assert all(m.v0 is not None for m in snn.neurons.values())
    assert total_rate_error(snn, ann, x, 4) < before


def test_bad_calibration_arguments():
    ann, x = small_pair()
    snn = convert(ann)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        calibrate_joint(snn, ann, x, T=0, progress=False)
    with pytest.raises(ValueError, match="unknown parameter kinds"):
        calibrate_joint(snn, ann, x, T=4, train=("gains",), progress=False)


def test_layerwise_forward_stops_after_the_layer_without_changing_the_result(monkeypatch):
    """Layer-wise calibration ends each forward pass after the layer it calibrates; on a
    residual network that must give the same weights as running the whole network, and
    leave no hook behind."""
    import copy

    from negspike import calibrate
    from negspike.models import resnet18

    torch.manual_seed(0)
    ann = resnet18(width=1 / 16).eval()
    x = torch.randn(24, 3, 32, 32)
    snn = convert(ann, activation_thresholds(ann, x), "signed", v_init=0.5)
    full = copy.deepcopy(snn)
    kwargs = dict(T=3, epochs=1, lr=1e-2, batch_size=12, seed=0, progress=False, device="cpu")
    calibrate_layerwise(snn, ann, x, **kwargs)
    monkeypatch.setattr(calibrate, "_stop_forward", lambda *args: None)  # run every layer
    calibrate_layerwise(full, ann, x, **kwargs)
    for (name, a), (_, b) in zip(snn.state_dict().items(), full.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), f"{name} differs when the forward pass stops early"
    changed = any(not torch.equal(a, b) for a, b in zip(snn.state_dict().values(), convert(
        ann, activation_thresholds(ann, x), "signed", v_init=0.5).state_dict().values()))
    assert changed, "calibration changed nothing, so the comparison proves nothing"
    assert all(not m._forward_hooks for m in snn.modules()), "a hook was left behind"
