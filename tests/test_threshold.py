import math

import pytest
import torch
from torch import nn

from negspike import convert
from negspike.clipping import TrainableClip, add_clipping, clip_l2
from negspike.data import synthetic_dataset
from negspike.models import Net4, vgg16
from negspike.tails import layer_statistics
from negspike.threshold import activation_thresholds, learned_thresholds
from negspike.train import train_ann
from negspike.variance_penalty import VariancePenalty, bn_variance_penalty, channel_eta, variance_penalty


def test_eta_is_scale_invariant():
    a = torch.randn(64, 8, 5, 5) + 0.5
    eta = variance_penalty(a, eps=1e-9)
    for gamma in (0.01, 3.0, 100.0):
        assert variance_penalty(gamma * a, eps=1e-9).item() == pytest.approx(eta.item(), rel=1e-4)
    # and it is eq. 23 per channel of |a|, averaged: a penalty of the whole layer's values,
    # of sigma^2, or of the signed values would differ
    mags = a.abs().transpose(0, 1).reshape(8, -1).double()
    by_hand = (mags.std(1, unbiased=False) / (mags.mean(1) + 1e-9)).pow(3).mean()
    assert eta.item() == pytest.approx(by_hand.item(), rel=1e-5)
    whole_layer = (mags.std(unbiased=False) / mags.mean()).pow(3)
    assert abs(eta.item() - whole_layer.item()) > 1e-3 * whole_layer.item()


def test_eta_grows_with_tail_length():
    torch.manual_seed(0)
    bulk = torch.rand(2000, 4)
    etas = []
    for tail in (1.0, 5.0, 20.0):
        a = bulk.clone()
        a[:20] *= tail  # 1% of the values reach `tail` times further
        etas.append(variance_penalty(a).item())
    assert etas[0] < etas[1] < etas[2]


def test_lambda1_carries_no_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.1), nn.Linear(6, 3))
    vp = VariancePenalty(model, weight=0.1)
    x, y = torch.randn(32, 4), torch.randint(3, (32,))
    logits = model(x)
    ce = nn.functional.cross_entropy(logits, y)
    eta = variance_penalty(vp.outputs["1"])
    pen = vp(model, logits, ce)
    assert pen.item() == pytest.approx(0.1 * ce.item(), rel=1e-5)  # lambda1 * eta = 0.1 |CE|
    w = model[0].weight
    got = torch.autograd.grad(pen, w, retain_graph=True)[0]
    expected = torch.autograd.grad((0.1 * ce.detach() / eta.detach()) * eta, w, retain_graph=True)[0]
    undetached = torch.autograd.grad(0.1 * ce / eta * eta, w, retain_graph=True)[0]
    assert torch.allclose(got, expected, atol=1e-7)
    assert not torch.allclose(got, undetached, atol=1e-6)


def test_bn_variant_agrees_with_activation_based():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    out = bn.train()(torch.randn(256, 6, 4, 4) * 3 + 1)  # training mode: batch statistics
    via_act = variance_penalty(out, eps=1e-3, magnitude=False)
    via_bn = bn_variance_penalty(bn, eps=1e-3, magnitude=False)
    assert via_act.item() == pytest.approx(via_bn.item(), rel=1e-3)


def test_bn_penalty_of_magnitudes_agrees_with_activations_and_stays_bounded():
    """The default BN form is eta of |y| (as for activations), in closed form for a normal
    output: it matches the activation-based eta on normal data, a fresh BN (beta = 0)
    gives (pi/2 - 1)^(3/2) instead of 1e9, and channels with beta near 0 neither dominate
    the mean nor get a huge gradient."""
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -1.5, 2.0, 0.2, 1.0, 0.7]))
        bn.bias.copy_(torch.tensor([1.0, 0.3, -2.0, 0.8, 0.0, 1e-4]))
    out = bn.train()(torch.randn(200_000, 6) * 3 + 1)  # normal input: the output is normal
    via_act = channel_eta(out.detach(), eps=1e-3)  # eta of |y| per channel
    for c in range(6):
        one = nn.BatchNorm1d(1)
        with torch.no_grad():
            one.weight.fill_(bn.weight[c].item())
            one.bias.fill_(bn.bias[c].item())
        assert bn_variance_penalty(one, eps=1e-3).item() == pytest.approx(via_act[c].item(), rel=0.02)
    # |beta| >> |gamma|: the folded normal is the normal, the paper's form
    far = nn.BatchNorm1d(1)
    with torch.no_grad():
        far.weight.fill_(0.01)
        far.bias.fill_(-3.0)
    assert bn_variance_penalty(far).item() == pytest.approx(bn_variance_penalty(far, magnitude=False).item(), rel=1e-3)
    fresh = nn.BatchNorm2d(8)
    assert bn_variance_penalty(fresh).item() == pytest.approx((math.pi / 2 - 1) ** 1.5, rel=0.01)
    assert bn_variance_penalty(fresh, magnitude=False).item() > 1e8  # the pitfall this guards
    eta = bn_variance_penalty(bn)
    eta.backward()
    assert eta.item() < 1.0 and bn.bias.grad.abs().max().item() < 1.0
    assert bn.bias.grad[4].item() == pytest.approx(0.0, abs=1e-6)  # no push away from beta = 0
    dead = nn.BatchNorm1d(3)  # gamma = 0 (a zero-initialised residual BN): a finite gradient
    with torch.no_grad():
        dead.weight.copy_(torch.tensor([0.0, 0.0, 1.0]))
        dead.bias.copy_(torch.tensor([0.0, 0.5, 0.0]))
    bn_variance_penalty(dead).backward()
    assert torch.isfinite(dead.weight.grad).all() and torch.isfinite(dead.bias.grad).all()


def test_clip_clamps_and_passes_gradient_only_where_it_clips():
    clip = TrainableClip(0.1, 1.0, -0.2)
    z = torch.tensor([-5.0, -1.0, 0.5, 3.0], requires_grad=True)
    a = clip(z)
    assert torch.allclose(a, torch.tensor([-0.2, -0.1, 0.5, 1.0]))
    a.sum().backward()
    assert clip.theta_p.grad.item() == 1.0  # only z=3 is clipped above
    assert clip.theta_n.grad.item() == 1.0  # only z=-5 is clipped below
    assert torch.allclose(z.grad, torch.tensor([0.0, 0.1, 1.0, 0.0]))
    wide = TrainableClip(0.1, 10.0, -10.0)
    wide(z.detach()).sum().backward()  # nothing clipped: no gradient reaches the thresholds
    assert wide.theta_p.grad.item() == 0.0 and wide.theta_n.grad.item() == 0.0


def test_l2_moves_thresholds_inward_and_projection_keeps_signs():
    clip = TrainableClip(0.1, 2.0, -1.0)
    opt = torch.optim.SGD(clip.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        clip_l2(clip).backward()
        opt.step()
        clip.project_()
    assert 0 < clip.theta_p.item() < 2.0 and -1.0 < clip.theta_n.item() < 0
    opt = torch.optim.SGD(clip.parameters(), lr=10.0)
    opt.zero_grad()
    clip_l2(clip).backward()
    opt.step()
    clip.project_()
    assert clip.theta_p.item() > 0 > clip.theta_n.item()


def test_conversion_uses_exactly_the_learned_thresholds():
    ann = Net4().eval()
    x = torch.randn(16, 1, 28, 28)
    clipped = add_clipping(ann, activation_thresholds(ann, x, "percentile", 99.0))
    with torch.no_grad():
        for i, m in enumerate(m for m in clipped.modules() if isinstance(m, TrainableClip)):
            m.theta_p.fill_(0.5 + i)
            m.theta_n.fill_(-0.1 - i)
    snn = convert(clipped, neuron="signed")
    for i, (name, n) in enumerate(snn.neurons.items()):
        assert n.theta_p.item() == pytest.approx(0.5 + i) and n.theta_n.item() == pytest.approx(-0.1 - i)
    learned = learned_thresholds(clipped)["act2"]
    assert (learned.theta_p, learned.theta_n) == (pytest.approx(1.5), pytest.approx(-1.1))
    with pytest.raises(ValueError, match="no TrainableClip"):
        learned_thresholds(ann)


def test_clipped_snn_matches_clipped_ann():
    ann = Net4().eval()
    x = torch.randn(16, 1, 28, 28)
    clipped = add_clipping(ann, activation_thresholds(ann, x, "percentile", 95.0)).eval()
    snn = convert(clipped)
    with torch.no_grad():
        ref = clipped(x)
        errs = []
        for T in (8, 256):
            snn.reset()
            errs.append((snn(x, T).mean(0) - ref).abs().mean().item())
    assert errs[1] < errs[0] and errs[1] < 0.05 * ref.abs().mean().item()


def test_percentile_thresholds_sit_inside_max_and_statistics_report_tails():
    ann = Net4().eval()
    x = torch.randn(64, 1, 28, 28)
    mx = activation_thresholds(ann, x, "max")
    pc = activation_thresholds(ann, x, "percentile", 99.0)
    for name in mx:
        assert 0 < pc[name].theta_p < mx[name].theta_p
        assert mx[name].theta_n < pc[name].theta_n < 0
    st = layer_statistics(ann, x, max_values=10**8)  # keep every value: the tail is then exact
    assert set(st) == {"act1", "act2", "act3"}
    assert st["act1"]["channel_max"].shape == (32,) and st["act3"]["channel_max"].shape == (1024,)
    outs = {}
    hooks = [getattr(ann, n).register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o)) for n in st]
    with torch.no_grad():
        ann(x)
    for h in hooks:
        h.remove()
    for name, s in st.items():
        mags = outs[name].abs().flatten()
        assert s["tail"] == pytest.approx((mags.max() / torch.quantile(mags, 0.99)).item(), rel=1e-5)
        assert s["channel_max"].tolist() == pytest.approx(
            outs[name].abs().transpose(0, 1).flatten(1).amax(1).tolist(), rel=1e-6)


def test_variance_finetuning_shortens_tails_on_a_small_network():
    torch.manual_seed(0)
    x, y = synthetic_dataset("fmnist", 512)
    model = Net4()
    train_ann(model, (x, y), 1, batch_size=64, progress=False)
    vp = VariancePenalty(model, weight=1.0)
    with torch.no_grad():
        model(x)
    eta_before = {k: v.item() for k, v in vp.etas().items()}
    train_ann(model, (x, y), 3, lr=5e-4, batch_size=64, extra_loss=vp, progress=False)
    with torch.no_grad():
        model(x)
    eta_after = {k: v.item() for k, v in vp.etas().items()}
    vp.remove()
    assert sum(eta_after.values()) < sum(eta_before.values())


def test_bn_penalty_runs_on_vgg():
    model = vgg16(width=1 / 16)
    vp = VariancePenalty(model, use_bn=True)
    etas = vp.etas()
    assert len(etas) == 13
    # freshly initialised BN: gamma = 1, beta = 0 in every channel (the signed form gives 1e9)
    assert all(e.item() == pytest.approx((math.pi / 2 - 1) ** 1.5, rel=0.01) for e in etas.values())
