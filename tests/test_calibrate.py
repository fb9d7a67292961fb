import math

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from negspike import activation_thresholds, convert
from negspike.calibrate import WEIGHTINGS, calibrate_joint, calibrate_layerwise, kappa_at, layer_loss, layer_weights
from negspike.clipping import add_clipping


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


def paper_weights(kind: str, L: int, p: float, mu: float = 8.0, floor: float = 0.02) -> list[float]:
    """Eqs. 25, 27 and 28-30 written out independently of the library, normalised."""
    phi = []
    for layer in range(1, L + 1):
        x = layer / L - p
        if kind == "average":
            phi.append(1.0)
        elif kind == "cosine":
            phi.append(math.cos(math.pi / 2 * x) + floor)
        else:
            s = 1 / (1 + math.exp(-mu * x))
            phi.append(mu * s * (1 - s) + floor)
    return [f / sum(phi) for f in phi]


@pytest.mark.parametrize("kind", WEIGHTINGS)
def test_weightings_follow_the_papers_formulas(kind):
    for mu in (2.0, 8.0, 20.0):
        for p in (0.0, 0.3, 1.0):
            assert layer_weights(kind, 5, p, mu=mu).tolist() == pytest.approx(paper_weights(kind, 5, p, mu), abs=1e-6)


def test_sigmoid_mu_sharpens_the_peak():
    soft = layer_weights("sigmoid", 8, 0.5, mu=2.0)
    sharp = layer_weights("sigmoid", 8, 0.5, mu=20.0)
    assert sharp.max() > soft.max()


def test_kappa_schedule_counts_the_papers_epochs_from_one():
    """'6.7, increased to 10 after 10 epochs, and to 15 at the 20-th epoch': epochs 1-10
    (indices 0-9) use 6.7, epochs 11-19 use 10, the 20th (index 19) and later 15."""
    got = [kappa_at(e) for e in range(25)]
    assert got == [6.7] * 10 + [10.0] * 9 + [15.0] * 6
    assert kappa_at(19) == 15.0, "the 20th epoch is index 19"
    assert [kappa_at(e, ((0, 1.0), (2, 3.0))) for e in range(4)] == [1.0, 1.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="does not cover"):
        kappa_at(0, ((1, 2.0),))


def test_layer_losses_are_zero_at_match_and_scale_free():
    a = torch.randn(8, 3, 4, 4)
    for kind in ("kl", "mse"):
        assert layer_loss(a, a, kind).item() == pytest.approx(0.0, abs=1e-6)
        r = a + 0.3 * torch.randn_like(a)
        assert layer_loss(r, a, kind).item() > 0
        assert layer_loss(5 * r, 5 * a, kind).item() == pytest.approx(layer_loss(r, a, kind).item(), rel=1e-4)
    with pytest.raises(ValueError, match="unknown calibration loss"):
        layer_loss(a, a, "l1")


def test_layer_losses_are_the_documented_formulas():
    """KL of the softmaxes of each sample's map divided by its ANN map's standard deviation
    (the floor does not act on ordinary maps), and MSE over the mean square of the ANN map."""
    torch.manual_seed(1)
    a = torch.randn(6, 2, 3, 3)
    r = a + 0.4 * torch.randn_like(a)
    fa, fr = a.flatten(1).double(), r.flatten(1).double()
    for temperature in (1.0, 2.5):
        scale = fa.std(1, keepdim=True) * temperature
        p, q = torch.softmax(fa / scale, 1), torch.softmax(fr / scale, 1)
        kl = (p * (p / q).log()).sum(1).mean()
        assert layer_loss(r, a, "kl", temperature).item() == pytest.approx(kl.item(), rel=1e-4)
    mse = ((fr - fa) ** 2).mean() / (fa**2).mean()
    assert layer_loss(r, a, "mse").item() == pytest.approx(mse.item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["kl", "mse"])
@pytest.mark.parametrize("value", [0.0, 1.7, -0.17])
def test_a_constant_ann_map_gives_a_moderate_loss_and_gradient(kind, value):
    """An all-zero or fully clipped ANN map has no spread: dividing by it gave losses near
    1e7 (and gradients to match) from spike noise of one spike's worth."""
    torch.manual_seed(0)
    T = 8
    a = torch.full((16, 4, 6, 6), value)
    noise = torch.randint(-1, 2, a.shape) * 1.7 / T  # rates off by at most one spike
    r = (a + noise).requires_grad_(True)
    loss = layer_loss(r, a, kind)
    loss.backward()
    assert torch.isfinite(loss) and 0 < loss.item() < 2
    assert torch.isfinite(r.grad).all() and r.grad.abs().max().item() < 0.1
    for c in (1e-3, 1e3):  # still scale-free
        assert layer_loss(c * r.detach(), c * a, kind).item() == pytest.approx(loss.item(), rel=1e-3)
    assert layer_loss(a.clone(), a, kind).item() == pytest.approx(0.0, abs=1e-6)
    # one constant map among ordinary ones: its floor is a tenth of the batch's spread
    b = torch.randn(16, 4, 6, 6).clamp(-0.3, 1.5)
    b[0] = 1.5
    rb = (b + noise).requires_grad_(True)
    mixed = layer_loss(rb, b, kind)
    mixed.backward()
    assert 0 < mixed.item() < 2 and rb.grad.abs().max().item() < 0.1


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

    from negspike import calibration_pass
    from negspike.models import resnet18

    torch.manual_seed(0)
    ann = resnet18(width=1 / 16).eval()
    x = torch.randn(24, 3, 32, 32)
    snn = convert(ann, activation_thresholds(ann, x), "signed", v_init=0.5)
    full = copy.deepcopy(snn)
    kwargs = dict(T=3, epochs=1, lr=1e-2, batch_size=12, seed=0, progress=False, device="cpu")
    calibrate_layerwise(snn, ann, x, **kwargs)
    monkeypatch.setattr(calibration_pass, "_stop_forward", lambda *args: None)  # run every layer
    calibrate_layerwise(full, ann, x, **kwargs)
    for (name, a), (_, b) in zip(snn.state_dict().items(), full.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), f"{name} differs when the forward pass stops early"
    changed = any(not torch.equal(a, b) for a, b in zip(snn.state_dict().values(), convert(
        ann, activation_thresholds(ann, x), "signed", v_init=0.5).state_dict().values()))
    assert changed, "calibration changed nothing, so the comparison proves nothing"
    assert all(not m._forward_hooks for m in snn.modules()), "a hook was left behind"


def test_joint_calibration_steps_use_the_documented_weights_kappa_and_readout():
    """Pins what each step of joint calibration optimises: with one batch per epoch and
    ``lr = 0`` (so the network never changes), the gradient of every step must equal that
    of ``sum_l w_l(p) loss_l`` written out here, with ``p = step / (steps - 1)`` (shallow
    layers first), the sigmoid weighting with the given ``mu``, the readout as the last
    layer and kappa from the paper's schedule. A schedule run backwards, a readout left
    out, a kappa never raised or ``mu`` ignored each change these gradients."""
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.1), nn.Linear(8, 8), nn.LeakyReLU(0.1), nn.Linear(8, 3))
    x = torch.randn(12, 6)
    ann = add_clipping(ann, activation_thresholds(ann, x, "percentile", 95.0)).eval()
    snn = convert(ann)
    T, epochs, mu = 3, 21, 5.0  # mu differs from the default 8
    names = list(snn.neurons)
    assert names == ["1", "3"]
    params = [p for m in snn.net.modules() if isinstance(m, nn.Linear) for p in (m.weight, m.bias)]

    kappas, grads = [], []
    pre = [m.register_forward_pre_hook(lambda m, i: kappas.append(m.kappa)) for m in snn.neurons.values()]
    step_hook = register_optimizer_step_pre_hook(lambda opt, *_: grads.append([p.grad.clone() for p in params]))
    try:
        hist = calibrate_joint(snn, ann, x, T=T, epochs=epochs, lr=0.0, batch_size=len(x), weighting="sigmoid",
                               loss="kl", mu=mu, progress=False, device="cpu")
    finally:
        step_hook.remove()
        for h in pre:
            h.remove()

    expected_kappa = [6.7] * 10 + [10.0] * 9 + [15.0] * 2
    assert kappas == [k for k in expected_kappa for _ in names], "kappa per step (one forward per step)"
    assert len(grads) == epochs
    L = len(names) + 1
    for step in range(epochs):
        w = paper_weights("sigmoid", L, step / (epochs - 1), mu)
        assert hist[hist.epoch == step + 1]["weight"].tolist() == pytest.approx(w, abs=1e-6)
        # the objective written out: decoded rates of each layer, the readout's mean input
        for m in snn.neurons.values():
            m.kappa = expected_kappa[step]
        rates, acts = {}, {}
        hooks = [snn.neurons[n].register_forward_hook(
            lambda m, i, o, n=n: rates.__setitem__(n, m.time_major(o).mean(0))) for n in names]
        hooks += [dict(ann.named_modules())[n].register_forward_hook(
            lambda m, i, o, n=n: acts.__setitem__(n, o.detach())) for n in names]
        for p in params:
            p.requires_grad_(True)
        try:
            with torch.no_grad():
                logits = ann(x)
            snn.reset()
            readout = snn(x, T).mean(0)
            losses = [layer_loss(rates[n], acts[n]) for n in names] + [layer_loss(readout, logits)]
            ref = torch.autograd.grad(sum(wi * lo for wi, lo in zip(w, losses)), params)
        finally:
            for h in hooks:
                h.remove()
            for p in params:
                p.requires_grad_(False)
            snn.reset()
        assert ref[-2].abs().sum() > 0, "the readout's weights get a gradient only from the readout term"
        for got, want in zip(grads[step], ref):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-7), f"step {step}: gradient differs"


def test_layer_maps_are_the_ann_activations_and_the_snn_rates_by_layer():
    from negspike.calibrate import layer_losses, layer_maps

    ann, x = small_pair(seed=3)
    snn = convert(ann)
    T = 6
    acts, rates = layer_maps(snn, ann, x, T)
    first = next(iter(snn.neurons))
    assert list(rates) == [*snn.neurons, "readout"] and set(acts) == set(rates)
    with torch.no_grad():  # independently: the ANN's outputs, and the SNN run one step per call
        seen = []
        h = ann.get_submodule(first).register_forward_hook(lambda m, i, o: seen.append(o))
        assert torch.allclose(acts["readout"], ann(x))
        h.remove()
        assert torch.allclose(acts[first], seen[0])
        h = snn.neurons[first].register_forward_hook(lambda m, i, o: seen.append(o))
        snn.reset()
        out = torch.stack([snn(x, 1)[0] for _ in range(T)])
        h.remove()
        assert torch.allclose(rates["readout"], out.mean(0), atol=1e-6)
        assert torch.allclose(rates[first], torch.stack(seen[1:]).mean(0), atol=1e-6)
    # the per-layer loss is the image-weighted mean over mini-batches of the maps' loss
    whole = layer_losses(snn, ann, x, T, "mse", batch_size=len(x))
    assert whole == pytest.approx({n: layer_loss(rates[n], acts[n], "mse").item() for n in rates}, rel=1e-6)
    halves = [layer_maps(snn, ann, x[i:i + 32], T) for i in (0, 32)]
    parts = layer_losses(snn, ann, x, T, "kl", batch_size=32)
    assert parts == pytest.approx({n: sum(layer_loss(r[n], a[n]).item() for a, r in halves) / 2 for n in rates},
                                  rel=1e-6)
