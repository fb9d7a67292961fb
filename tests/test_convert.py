import pytest
import torch
from torch import nn

from negspike import UnsupportedLayerError, activation_thresholds, convert, fold_bn, simulate
from negspike.models import BasicBlock, ConvBN, Net4, resnet18, vgg16
from negspike.neurons import IBTNeuron, IFNeuron, SignedIFNeuron
from negspike.threshold import Thresholds


class TinyResNet(nn.Module):
    """conv -> act -> avgpool -> residual block -> flatten -> linear -> act -> linear."""

    def __init__(self, alpha=0.1):
        super().__init__()
        self.stem = ConvBN(3, 8)
        self.act = nn.LeakyReLU(alpha)
        self.pool = nn.AvgPool2d(2)
        self.block = BasicBlock(8, 8, 1, "leaky", alpha)
        self.down = BasicBlock(8, 12, 2, "leaky", alpha)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(12 * 4 * 4, 32)
        self.act_fc = nn.LeakyReLU(alpha)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        h = self.down(self.block(self.pool(self.act(self.stem(x)))))
        return self.fc2(self.act_fc(self.fc1(self.flatten(h))))


def randomise_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def output_error(snn, ann, x, T):
    snn.reset()
    with torch.no_grad():
        return (snn(x, T).mean(0) - ann(x)).abs().mean().item()


def test_fold_bn_leaves_outputs_unchanged():
    model = randomise_bn(TinyResNet())
    x = torch.randn(16, 3, 16, 16)
    folded = fold_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched


def test_converted_residual_leaky_network_matches_ann_as_T_grows():
    torch.manual_seed(0)
    ann = randomise_bn(TinyResNet())
    x = torch.randn(32, 3, 16, 16)
    snn = convert(ann, activation_thresholds(ann, x, "max"), "signed")
    errs = [output_error(snn, ann, x, T) for T in (4, 16, 64, 256)]
    scale = ann(x).abs().mean().item()
    assert errs[0] > errs[1] > errs[2] > errs[3]
    assert errs[-1] < 0.02 * scale


def test_converted_net4_matches_ann_and_ibt_is_slower():
    ann = Net4(alpha=0.1).eval()
    x = torch.randn(32, 1, 28, 28)
    th = activation_thresholds(ann, x, "max")
    signed = convert(ann, th, "signed")
    ibt = convert(ann, th, "ibt")
    assert all(isinstance(m, SignedIFNeuron) and not isinstance(m, IBTNeuron) for m in signed.neurons.values())
    assert all(isinstance(m, IBTNeuron) for m in ibt.neurons.values())
    e_signed = [output_error(signed, ann, x, T) for T in (8, 64, 256)]
    assert e_signed[0] > e_signed[1] > e_signed[2]
    assert output_error(ibt, ann, x, 64) > e_signed[1]


def test_relu_network_converts_to_if_neurons():
    ann = Net4(activation="relu").eval()
    x = torch.randn(16, 1, 28, 28)
    snn = convert(ann, activation_thresholds(ann, x), "signed")
    assert all(type(m) is IFNeuron for m in snn.neurons.values())
    assert output_error(snn, ann, x, 256) < output_error(snn, ann, x, 8)


def test_vgg_and_resnet_convert():
    x = torch.randn(8, 3, 32, 32)
    for ann in (randomise_bn(vgg16(width=1 / 16)), randomise_bn(resnet18(width=1 / 16))):
        snn = convert(ann, activation_thresholds(ann, x), "signed")
        assert output_error(snn, ann, x, 128) < output_error(snn, ann, x, 4)


def test_conversion_uses_exactly_the_given_thresholds():
    ann = Net4().eval()
    th = {"act1": Thresholds(1.5, -0.25), "act2": Thresholds(0.75, -0.125), "act3": Thresholds(2.0, -0.5)}
    snn = convert(ann, th, "signed")
    for name, n in snn.neurons.items():
        assert n.theta_p.item() == th[name].theta_p
        assert n.theta_n.item() == th[name].theta_n
        assert n.n_th.item() == pytest.approx(th[name].theta_n / 0.1)


def test_unsupported_layer_is_named():
    ann = nn.Sequential(nn.Conv2d(1, 4, 3), nn.LeakyReLU(0.1), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))
    x = torch.randn(4, 1, 28, 28)
    with pytest.raises(UnsupportedLayerError, match=r"module '2', MaxPool2d\).*use nn.AvgPool2d"):
        activation_thresholds(ann, x)
    with pytest.raises(UnsupportedLayerError, match=r"module '2', MaxPool2d\).*use nn.AvgPool2d"):
        convert(ann, {"1": Thresholds(1.0, -0.1)})


def test_unfoldable_batch_norm_is_named():
    ann = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3), nn.ReLU())
    with pytest.raises(UnsupportedLayerError, match=r"batch norm node '_0' \(module '0', BatchNorm2d\): it does not directly follow"):
        fold_bn(ann)


def test_bad_conversion_inputs():
    ann = Net4().eval()
    x = torch.randn(4, 1, 28, 28)
    th = activation_thresholds(ann, x)
    with pytest.raises(ValueError, match="unknown neuron"):
        convert(ann, th, "lif")
    with pytest.raises(KeyError, match="act3"):
        convert(ann, {k: v for k, v in th.items() if k != "act3"})
    with pytest.raises(ValueError, match="theta_n must be < 0"):
        Thresholds(1.0, 0.0)
    snn = convert(ann, th)
    with pytest.raises(ValueError, match="positive integer"):
        snn(x, 0)
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        simulate(snn, x, torch.zeros(4, dtype=torch.long), 0, progress=False)


def test_simulate_reports_every_T_in_one_pass_and_matches_separate_runs():
    torch.manual_seed(3)
    ann = Net4().eval()
    x = torch.randn(40, 1, 28, 28)
    y = ann(x).argmax(1).detach()
    snn = convert(ann, activation_thresholds(ann, x))
    res = simulate(snn, x, y, 20, batch_size=16, chunk=6, progress=False)
    assert res.accuracy.shape == (20,)
    for T in (1, 7, 20):
        snn.reset()
        with torch.no_grad():
            pred = snn(x, T).mean(0).argmax(1)
        assert res.at(T) == pytest.approx((pred == y).float().mean().item())
    layers = res.layers.set_index("layer")
    assert list(layers.index) == ["act1", "act2", "act3"]
    assert (layers["neg_rate"] > 0).all() and (layers["pos_rate"] > 0).all()
    assert layers["rate"].tolist() == pytest.approx((layers["pos_rate"] + layers["neg_rate"]).tolist())
    assert layers["neurons"].tolist() == [32 * 24 * 24, 64 * 8 * 8, 1024]
    spikes = layers["spikes_per_image"]
    assert spikes.tolist() == pytest.approx((layers["rate"] * layers["neurons"] * 20).tolist(), rel=1e-9)
    # the first layer's MACs, then each spike costs the next synaptic layer's MACs per input value
    # (act1 feeds conv2 through a 2x2 average pool: 32 x 12 x 12 inputs)
    fan = {"act1": 8 * 8 * 64 * 32 * 25 / (32 * 12 * 12), "act2": 1024 * 1024 / 1024, "act3": 1024 * 10 / 1024}
    assert res.synops_per_image == pytest.approx(24 * 24 * 32 * 25 + sum(spikes[n] * fan[n] for n in fan), rel=1e-9)
    assert res.ann_macs_per_image == pytest.approx(
        24 * 24 * 32 * 25 + 8 * 8 * 64 * 32 * 25 + 1024 * 1024 + 1024 * 10
    )


def test_firing_rates_match_a_manual_count():
    ann = Net4().eval()
    x = torch.randn(8, 1, 28, 28)
    snn = convert(ann, activation_thresholds(ann, x))
    res = simulate(snn, x, torch.zeros(8, dtype=torch.long), 10, progress=False)
    captured = []
    h = snn.neurons["act2"].register_forward_hook(lambda m, i, o: captured.append(o))
    snn.reset()
    with torch.no_grad():
        snn(x, 10)
    h.remove()
    out = captured[0]
    per = out.numel()
    row = res.layers.set_index("layer").loc["act2"]
    assert row["pos_rate"] == pytest.approx((out > 0).sum().item() / per, abs=2 / per)
    assert row["neg_rate"] == pytest.approx((out < 0).sum().item() / per, abs=2 / per)
