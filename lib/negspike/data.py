"""Datasets as in-memory tensors: Fashion-MNIST, CIFAR-10 and synthetic stand-ins for tests.

Fashion-MNIST is looked for in three places, in order:

1. ``data/fashion-mnist/`` of this project (the four original ``*-idx?-ubyte.gz`` files),
   or torchvision's layout ``data/FashionMNIST/raw/``;
2. ``/usr/share/datasets/fashion-mnist`` (Debian's package ``dataset-fashion-mnist``);
3. a torchvision download into ``data/`` (needs internet).

CIFAR-10 comes from torchvision (``"cifar10"``, or any archive named by
``NEGSPIKE_CIFAR10_NPZ``). ``"cifar10_jpeg"`` is a separate dataset on purpose: a lossy
JPEG copy of CIFAR-10 (quality 75) in one ``.npz``, for machines without internet. Its
results carry its own name, so they are never mistaken for, nor cached as, CIFAR-10's.
It is looked for in ``NEGSPIKE_CIFAR10_JPEG``, ``data/cifar10-jpeg.npz`` and
``../shared/data/cifar10-jpeg.npz`` (next to this project).
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DATA_DIR",
    "DATASETS",
    "DEBIAN_FMNIST_DIR",
    "DataUnavailableError",
    "TensorLoader",
    "crop_flip_params",
    "apply_crop_flip",
    "random_crop_flip",
    "load_fashion_mnist",
    "load_cifar10",
    "cifar10_jpeg_candidates",
    "load_cifar10_jpeg",
    "synthetic_dataset",
    "load_dataset",
]

DATA_DIR = Path(os.environ.get("NEGSPIKE_DATA", Path(__file__).resolve().parents[2] / "data"))
DEBIAN_FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530
DATASETS = ("fashion_mnist", "cifar10", "cifar10_jpeg", "synthetic_fmnist", "synthetic_cifar10")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class DataUnavailableError(FileNotFoundError):
    """A dataset is in none of the places the library looks in."""


@dataclass
class TensorLoader:
    """Mini-batches from in-memory tensors (much faster than a DataLoader on a CPU).

    With ``shuffle`` the order is drawn from a generator seeded with ``seed + epoch``,
    where ``epoch`` counts the passes made so far, so runs are reproducible.
    """

    x: torch.Tensor
    y: torch.Tensor
    batch_size: int = 256
    shuffle: bool = False
    seed: int = 0
    epoch: int = 0

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def index_batches(self):
        """The batches of one pass as sample indices: slices in order, or index tensors when
        shuffled. Counts as a pass (advances ``epoch``), like iterating the loader.

        Processes that build the loader with the same ``seed`` get the same batches, which
        is how distributed training gives each rank its share of one global batch."""
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = None
        self.epoch += 1
        for i in range(0, n, self.batch_size):
            yield slice(i, min(i + self.batch_size, n)) if order is None else order[i : i + self.batch_size]

    def __iter__(self):
        for idx in self.index_batches():
            yield self.x[idx], self.y[idx]


def crop_flip_params(n: int, generator: torch.Generator, padding: int = 4, flip: bool = True):
    """Random offsets and flips for :func:`apply_crop_flip`, drawn from ``generator``:
    ``(dy, dx, flipped)``, each of length ``n``; offsets lie in ``[0, 2 * padding]``."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flipped = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return offsets[0], offsets[1], flipped


def apply_crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flipped: torch.Tensor, padding: int = 4):
    """Crop image ``i`` of ``x`` ``[N, C, H, W]`` at ``(dy[i], dx[i])`` from its zero-padded
    copy and mirror it left-right where ``flipped[i]``; one gather for the whole batch."""
    if x.dim() != 4:
        raise ValueError(f"expected an image batch [N, C, H, W], got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if not len(dy) == len(dx) == len(flipped) == n:
        raise ValueError(f"need one offset and flip per image ({n}), got {len(dy)}, {len(dx)}, {len(flipped)}")
    if padding == 0 and not bool(flipped.any()):
        return x
    dev = x.device
    dy, dx, flipped = dy.to(dev), dx.to(dev), flipped.to(dev)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding)) if padding else x
    hp, wp = h + 2 * padding, w + 2 * padding
    rows = dy[:, None] + torch.arange(h, device=dev)  # [N, H]
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = dx[:, None] + torch.where(flipped[:, None], (w - 1) - cols, cols)  # [N, W]
    # flat index into each padded image's H x W plane, then one gather over [N, C, H*W]
    plane = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    out = padded.reshape(n, c, hp * wp).gather(2, plane)
    return out.reshape(n, c, h, w)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch ``[N, C, H, W]``: each image is cut at a
    random place out of its copy zero-padded by ``padding`` pixels (same size as before;
    on normalised images a zero is the dataset's mean colour)
    and, with probability 1/2 when ``flip``, mirrored left-right. Vectorised (no loop over
    images) and deterministic given the state of ``generator`` (a CPU generator)."""
    dy, dx, flipped = crop_flip_params(len(x), generator, padding, flip)
    return apply_crop_flip(x, dy, dx, flipped, padding)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {magic:#x})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: {data.size} bytes for shape {dims}")
    return data.reshape(dims)


def fashion_mnist_dirs(root: Path | None = None) -> list[Path]:
    """The folders searched for the four original files, in order."""
    root = Path(root) if root is not None else DATA_DIR
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw", DEBIAN_FMNIST_DIR]


def _find_fmnist(root: Path | None) -> Path | None:
    for d in fashion_mnist_dirs(root):
        if all((d / f).is_file() for pair in FMNIST_FILES.values() for f in pair):
            return d
    return None


def load_fashion_mnist(split: str = "train", root: Path | None = None, download: bool = True, normalize: bool = True):
    """Fashion-MNIST as ``(x, y)``: ``x`` float ``[N, 1, 28, 28]`` (normalised), ``y`` int64."""
    if split not in FMNIST_FILES:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    root = Path(root) if root is not None else DATA_DIR
    folder = _find_fmnist(root)
    if folder is None and download:
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
        except Exception as err:  # no internet, no torchvision, ...
            reason = f"{type(err).__name__}: {err}"
        else:
            reason = ""
        folder = _find_fmnist(root)
    else:
        reason = "download disabled"
    if folder is None:
        dirs = fashion_mnist_dirs(root)
        raise DataUnavailableError(
            "Fashion-MNIST not found. Tried:\n"
            f"  1. {dirs[0]} (or {dirs[1]}): copy the four original *-ubyte.gz files there;\n"
            f"  2. {dirs[2]}: run 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu);\n"
            f"  3. torchvision download into {root}: needs internet ({reason or 'failed'})."
        )
    images, labels = (_read_idx(folder / f) for f in FMNIST_FILES[split])
    x = torch.from_numpy(images.copy()).float().div_(255).unsqueeze(1)
    if normalize:
        x = (x - FMNIST_MEAN) / FMNIST_STD
    return x, torch.from_numpy(labels.astype(np.int64))


def load_cifar10(split: str = "train", root: Path | None = None, npz: str | Path | None = None, normalize: bool = True):
    """CIFAR-10 as ``(x, y)``: ``x`` float ``[N, 3, 32, 32]`` (normalised), ``y`` int64.

    ``npz`` (or the environment variable ``NEGSPIKE_CIFAR10_NPZ``) names an archive with
    ``x_train, y_train, x_test, y_test`` uint8 arrays (HWC), used instead of torchvision.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    npz = npz or os.environ.get("NEGSPIKE_CIFAR10_NPZ")
    if npz:
        if not Path(npz).is_file():
            raise DataUnavailableError(f"CIFAR-10 archive {str(npz)!r} does not exist")
        with np.load(npz) as arch:
            images, labels = arch[f"x_{split}"], arch[f"y_{split}"]
    else:
        root = Path(root) if root is not None else DATA_DIR
        try:
            import torchvision

            ds = torchvision.datasets.CIFAR10(str(root), train=split == "train", download=True)
        except Exception as err:
            raise DataUnavailableError(
                f"CIFAR-10 could not be loaded with torchvision into {root} ({type(err).__name__}: {err}). "
                "Without internet, pass npz=... or set NEGSPIKE_CIFAR10_NPZ to an archive with "
                "x_train, y_train, x_test, y_test (for example ../shared/data/cifar10-jpeg.npz, a lossy JPEG copy)."
            ) from err
        images, labels = ds.data, np.asarray(ds.targets)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    if normalize:
        x = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))


def cifar10_jpeg_candidates() -> list[Path]:
    """Where ``"cifar10_jpeg"`` is looked for, in order."""
    env = os.environ.get("NEGSPIKE_CIFAR10_JPEG")
    root = Path(__file__).resolve().parents[2]
    places = [DATA_DIR / "cifar10-jpeg.npz", root.parent / "shared" / "data" / "cifar10-jpeg.npz"]
    return [Path(env), *places] if env else places


def load_cifar10_jpeg(split: str = "train", normalize: bool = True):
    """The lossy JPEG copy of CIFAR-10 (same split and normalisation as :func:`load_cifar10`)."""
    for path in cifar10_jpeg_candidates():
        if path.is_file():
            return load_cifar10(split, npz=path, normalize=normalize)
    tried = ", ".join(str(p) for p in cifar10_jpeg_candidates())
    raise DataUnavailableError(
        f"cifar10_jpeg: no cifar10-jpeg.npz found (tried {tried}). Copy the archive (x_train, y_train, x_test, "
        "y_test as uint8, images HWC) to data/cifar10-jpeg.npz or set NEGSPIKE_CIFAR10_JPEG to its path; "
        "with internet, use the dataset 'cifar10' instead."
    )


def synthetic_dataset(shape: str = "fmnist", n: int = 512, num_classes: int = 10, seed: int = 0, noise: float = 1.0):
    """Learnable random data shaped like Fashion-MNIST (``"fmnist"``) or CIFAR-10 (``"cifar10"``).

    Each class has a fixed random template; a sample is its template plus Gaussian noise.
    """
    shapes = {"fmnist": (1, 28, 28), "cifar10": (3, 32, 32)}
    if shape not in shapes:
        raise ValueError(f"unknown synthetic shape {shape!r}; choose one of {sorted(shapes)}")
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(num_classes, *shapes[shape], generator=torch.Generator().manual_seed(1234))
    y = torch.randint(num_classes, (n,), generator=g)
    x = templates[y] + noise * torch.randn(n, *shapes[shape], generator=g)
    return x, y


def load_dataset(name: str, split: str = "train", **kwargs):
    """``"fashion_mnist"``, ``"cifar10"``, ``"cifar10_jpeg"``, ``"synthetic_fmnist"`` or ``"synthetic_cifar10"``."""
    if name == "fashion_mnist":
        return load_fashion_mnist(split, **kwargs)
    if name == "cifar10":
        return load_cifar10(split, **kwargs)
    if name == "cifar10_jpeg":
        return load_cifar10_jpeg(split, **kwargs)
    if name in ("synthetic_fmnist", "synthetic_cifar10"):
        n = kwargs.get("n", 2048 if split == "train" else 512)
        return synthetic_dataset(name.split("_", 1)[1], n=n, seed=0 if split == "train" else 1)
    raise ValueError(
        f"unknown dataset {name!r}; choose one of {list(DATASETS)}"
    )
