"""Converting networks the library did not define: the chapter "Convert your own network".

Two example networks written the way users write theirs, and the study that converts them:

* :class:`FunctionalNet`: activations called as functions in ``forward``, one activation
  module called at two places, batch norm called in ``forward`` (outside any
  ``nn.Sequential``), a residual addition, functional average pooling and ``torch.flatten``;
* :func:`torchvision_resnet18`: torchvision's ResNet-18 adapted to conversion (Leaky ReLU
  instead of ReLU, average instead of max pooling, one input channel).

:func:`own_network_study` trains the first on Fashion-MNIST (cached), gives the second
batch-norm statistics from data (its weights stay random: training it is beyond a CPU
budget), converts both and compares each SNN with its ANN on the same images as T grows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .cache import cached
from .convert import convert
from .pipeline import load_split
from .simulate import check_inputs, simulate
from .threshold import activation_thresholds
from .train import evaluate_ann, train_ann
from .utils import seed_everything

__all__ = ["OwnNetworkConfig", "FunctionalNet", "torchvision_resnet18", "output_convergence", "own_network_key",
           "train_functional_net", "own_network_study"]


@dataclass(frozen=True)
class OwnNetworkConfig:
    """Sizes of the chapter "Convert your own network" (profile section ``own``)."""

    train_subset: int = 60000  # Fashion-MNIST training images for FunctionalNet
    epochs: int = 4
    test_subset: int | None = None  # test images simulated (None: all)
    T_max: int = 128
    # the paper's neuron and the book's own tracking neuron (negspike.tracking)
    neurons: tuple[str, ...] = ("signed", "tracking")
    v_init: float = 0.5  # half a threshold for every neuron compared (the tracking neuron then rounds)
    resnet_images: int = 64  # images on which torchvision's ResNet-18 is simulated
    resnet_T_max: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_subset < 1 or self.epochs < 0 or self.T_max < 1 or self.resnet_images < 1 or self.resnet_T_max < 1:
            raise ValueError("need train_subset >= 1, epochs >= 0, T_max >= 1, resnet_images >= 1, resnet_T_max >= 1")
        if self.test_subset is not None and self.test_subset < 1:
            raise ValueError(f"test_subset={self.test_subset} must be >= 1 (or null for all images)")
        if not 0 <= self.v_init < 1:
            raise ValueError(f"v_init={self.v_init} is a fraction of P_th in [0, 1)")
        if not self.neurons:
            raise ValueError("neurons must name at least one neuron")


class FunctionalNet(nn.Module):
    """A Fashion-MNIST CNN written as users write theirs, not as a converter would like it.

    ``F.leaky_relu`` and ``x.relu()`` in ``forward``; ``self.act`` called twice; batch norm
    called in ``forward``; a residual block; ``F.avg_pool2d``; ``torch.flatten``.
    """

    def __init__(self, alpha: float = 0.1, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.alpha = alpha
        self.conv1 = nn.Conv2d(1, width, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.act = nn.LeakyReLU(alpha)
        self.fc1 = nn.Linear(width * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.leaky_relu(self.bn1(self.conv1(x)), self.alpha), 2)  # 14 x 14
        y = self.act(self.conv2(x))
        x = self.act(self.conv3(y) + x)  # the same module at a second call site
        x = F.avg_pool2d(x, 2)  # 7 x 7
        x = F.leaky_relu(self.fc1(torch.flatten(x, 1)), self.alpha)
        return self.fc2(x)


def torchvision_resnet18(num_classes: int = 10, in_channels: int = 1, alpha: float = 0.1) -> nn.Module:
    """torchvision's ResNet-18 (random weights) made convertible: every ``nn.ReLU`` becomes
    ``nn.LeakyReLU(alpha)``, max pooling becomes average pooling, and the stem takes
    ``in_channels`` channels. ``BasicBlock`` still calls its ``self.relu`` twice."""
    from torchvision.models import resnet18

    m = resnet18(weights=None, num_classes=num_classes)
    m.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    m.maxpool = nn.AvgPool2d(3, stride=2, padding=1)
    for parent in list(m.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.LeakyReLU(alpha, inplace=True))
    return m


@torch.no_grad()
def output_convergence(snn, ann: nn.Module, x: torch.Tensor, T_max: int, chunk: int = 8) -> pd.DataFrame:
    """How the SNN's read-out approaches the ANN's output on ``x`` as T grows.

    One row per T: ``rel_error`` = ||mean read-out over T steps - ANN output|| / ||ANN output||
    (over all images and classes) and ``agreement``, the fraction of images whose arg-max
    class is the ANN's.
    """
    ann.eval()
    target = ann(x)
    check_inputs(snn, x, target.argmax(1))
    snn.eval().reset()
    total = torch.zeros_like(target)
    rows = []
    t = 0
    while t < T_max:
        steps = min(chunk, T_max - t)
        run = snn(x, steps).cumsum(0) + total
        for k in range(steps):
            est = run[k] / (t + k + 1)
            rows.append({"T": t + k + 1, "rel_error": float((est - target).norm() / target.norm()),
                         "agreement": float((est.argmax(1) == target.argmax(1)).double().mean())})
        total = run[-1]
        t += steps
    snn.reset()
    for m in snn.neurons.values():
        m.release_buffers()
    return pd.DataFrame(rows)


def _warm_batch_norm(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """Running statistics of every batch norm from ``x`` (cumulative average), weights untouched."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size])
    return model.eval()


def own_network_key(cfg: OwnNetworkConfig, dataset: str) -> dict:
    """The cache key of :func:`train_functional_net` (step ``"own_network"``)."""
    return {"model": "FunctionalNet", "dataset": dataset, "train_subset": cfg.train_subset, "epochs": cfg.epochs,
            "seed": cfg.seed}


def train_functional_net(cfg: OwnNetworkConfig, dataset: str = "fashion_mnist",
                         progress: bool = True) -> tuple[FunctionalNet, pd.DataFrame]:
    """:class:`FunctionalNet` trained on ``dataset`` (cached): the model in eval mode and its training history."""

    def build():
        seed_everything(cfg.seed)
        model = FunctionalNet()
        train = load_split(dataset, "train", cfg.train_subset, cfg.seed)
        history = train_ann(model, train, cfg.epochs, seed=cfg.seed, step_name="train FunctionalNet", progress=progress)
        return {"state_dict": model.state_dict(), "history": history}

    blob = cached("own_network", own_network_key(cfg, dataset), build)
    net = FunctionalNet()
    net.load_state_dict(blob["state_dict"])
    return net.eval(), pd.DataFrame(blob["history"])


def own_network_study(cfg: OwnNetworkConfig, dataset: str = "fashion_mnist", progress: bool = True) -> dict:
    """Convert :class:`FunctionalNet` (trained, cached) and the adapted torchvision ResNet-18.

    Returns ``{"accuracy": one row per network, neuron and T with snn_acc and ann_acc on the same
    images, "convergence": one row per network, neuron and T with rel_error and agreement,
    "ann": the networks' ANN accuracies, "models": {name: (ann, thresholds)}}``.
    """
    net, history = train_functional_net(cfg, dataset, progress)
    x_train = load_split(dataset, "train", min(cfg.train_subset, 5000), cfg.seed)[0]
    x_test, y_test = load_split(dataset, "test", cfg.test_subset, cfg.seed + 1)
    th = activation_thresholds(net, x_train, "percentile", 99.99)
    ann_acc = evaluate_ann(net, x_test, y_test)
    acc_rows, conv_rows = [], []
    for neuron in cfg.neurons:
        snn = convert(net, th, neuron=neuron, v_init=cfg.v_init)
        res = simulate(snn, x_test, y_test, T_max=cfg.T_max, progress=progress)
        for T in range(1, cfg.T_max + 1):
            acc_rows.append({"network": "FunctionalNet", "neuron": neuron, "v_init": cfg.v_init, "T": T,
                             "snn_acc": res.at(T), "ann_acc": ann_acc, "images": len(y_test),
                             "ann_images": "same images"})
        conv = output_convergence(snn, net, x_test[:cfg.resnet_images], cfg.T_max)
        conv_rows += [{"network": "FunctionalNet", "neuron": neuron, **r} for r in conv.to_dict("records")]

    seed_everything(cfg.seed)
    resnet = _warm_batch_norm(torchvision_resnet18(), x_train[:512])
    x_res = x_test[:cfg.resnet_images]
    th_res = activation_thresholds(resnet, x_train[:256], "max")
    for neuron in cfg.neurons:
        snn = convert(resnet, th_res, neuron=neuron, v_init=cfg.v_init)
        conv = output_convergence(snn, resnet, x_res, cfg.resnet_T_max)
        conv_rows += [{"network": "torchvision ResNet-18 (random weights)", "neuron": neuron, **r}
                      for r in conv.to_dict("records")]
    ann = pd.DataFrame([{"network": "FunctionalNet", "ann_acc": ann_acc, "images": len(y_test),
                         "train_images": cfg.train_subset, "epochs": cfg.epochs}])
    return {"accuracy": pd.DataFrame(acc_rows), "convergence": pd.DataFrame(conv_rows), "ann": ann,
            "history": history, "config": asdict(cfg),
            "models": {"FunctionalNet": (net, th), "ResNet-18": (resnet, th_res)}}
