"""ANN models of the paper, each built with a chosen activation (ReLU or Leaky ReLU).

All models use average pooling (max pooling of spikes is not rate-preserving) and keep
their activations as modules, so that the converter can find and replace them.
"""
from __future__ import annotations

from torch import nn

__all__ = ["make_activation", "Net4", "ConvBN", "vgg16", "BasicBlock", "ResNet18", "resnet18", "build_model"]


def make_activation(kind: str = "leaky", alpha: float = 0.1) -> nn.Module:
    """``"relu"`` -> ``nn.ReLU``; ``"leaky"`` -> ``nn.LeakyReLU(alpha)`` with 0 < alpha < 1."""
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky":
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"Leaky-ReLU slope alpha must lie in (0, 1), got {alpha}")
        return nn.LeakyReLU(alpha)
    raise ValueError(f"unknown activation {kind!r}; choose 'relu' or 'leaky'")


class Net4(nn.Sequential):
    """32c5-p2-64c5-p2-1024-10 for 1x28x28 inputs (Fashion-MNIST), average pooling.

    Three spiking layers after conversion (conv1, conv2, fc1) and a non-spiking readout.
    """

    def __init__(self, activation: str = "leaky", alpha: float = 0.1, num_classes: int = 10) -> None:
        super().__init__()
        self.add_module("conv1", nn.Conv2d(1, 32, 5))
        self.add_module("act1", make_activation(activation, alpha))
        self.add_module("pool1", nn.AvgPool2d(2))
        self.add_module("conv2", nn.Conv2d(32, 64, 5))
        self.add_module("act2", make_activation(activation, alpha))
        self.add_module("pool2", nn.AvgPool2d(2))
        self.add_module("flatten", nn.Flatten())
        self.add_module("fc1", nn.Linear(64 * 4 * 4, 1024))
        self.add_module("act3", make_activation(activation, alpha))
        self.add_module("fc2", nn.Linear(1024, num_classes))


class ConvBN(nn.Sequential):
    """3x3 convolution (no bias) followed by batch norm; the converter folds the pair."""

    def __init__(self, cin: int, cout: int, stride: int = 1, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
        )


_VGG16 = [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"]


def vgg16(activation: str = "leaky", alpha: float = 0.1, num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """VGG-16 with batch norm for 3x32x32 inputs; ``width`` scales every channel count."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16:
        if v == "P":
            layers.append(nn.AvgPool2d(2))
        else:
            cout = max(1, int(round(v * width)))
            layers += [ConvBN(cin, cout), make_activation(activation, alpha)]
            cin = cout
    layers += [nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block; the addition happens before the block's second activation."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str, alpha: float) -> None:
        super().__init__()
        self.branch1 = ConvBN(cin, cout, stride)
        self.act1 = make_activation(activation, alpha)
        self.branch2 = ConvBN(cout, cout)
        self.shortcut = ConvBN(cin, cout, stride, kernel=1) if stride != 1 or cin != cout else nn.Identity()
        self.act2 = make_activation(activation, alpha)

    def forward(self, x):
        return self.act2(self.branch2(self.act1(self.branch1(x))) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant (3x3 stem, no stem pooling), global average pooling."""

    def __init__(self, activation: str = "leaky", alpha: float = 0.1, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        w = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.stem = ConvBN(3, w[0])
        self.act = make_activation(activation, alpha)
        blocks = []
        cin = w[0]
        for i, cout in enumerate(w):
            for j in range(2):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(cin, cout, stride, activation, alpha))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.blocks(self.act(self.stem(x))))))


def resnet18(activation: str = "leaky", alpha: float = 0.1, num_classes: int = 10, width: float = 1.0) -> ResNet18:
    """ResNet-18 for 3x32x32 inputs; ``width`` scales every channel count."""
    return ResNet18(activation, alpha, num_classes, width)


def build_model(name: str, activation: str = "leaky", alpha: float = 0.1, width: float = 1.0) -> nn.Module:
    """Build ``"net4"``, ``"vgg16"`` or ``"resnet18"`` by name."""
    if name == "net4":
        return Net4(activation, alpha)
    if name == "vgg16":
        return vgg16(activation, alpha, width=width)
    if name == "resnet18":
        return resnet18(activation, alpha, width=width)
    raise ValueError(f"unknown model {name!r}; choose 'net4', 'vgg16' or 'resnet18'")
