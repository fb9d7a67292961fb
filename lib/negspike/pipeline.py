"""Profile-driven pipeline steps with an on-disk cache, so any chapter can run alone."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .activations import activation_sites
from .cache import cached
from .data import DATASETS, load_dataset
from .models import build_model
from .threshold import Thresholds
from .train import evaluate_ann, train_ann
from .utils import seed_everything

__all__ = [
    "ANNConfig",
    "ThresholdConfig",
    "CalibrationConfig",
    "ann_key",
    "vp_key",
    "clip_key",
    "calibration_key",
    "load_split",
    "trained_ann",
    "variance_finetuned_ann",
    "clipped_ann",
    "converted_snn",
    "calibrated_snn",
]


@dataclass(frozen=True)
class ANNConfig:
    """Everything that determines a trained ANN (the cache key)."""

    dataset: str = "fashion_mnist"
    model: str = "net4"
    activation: str = "leaky"
    alpha: float = 0.1
    width: float = 1.0
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    optimizer: str = "adam"
    train_subset: int | None = None
    seed: int = 0
    augment: bool = False  # random crop (padding 4) and horizontal flip while training (CIFAR)
    amp: bool = True  # mixed precision (bfloat16/float16 autocast) on CUDA; ignored on a CPU

    def __post_init__(self) -> None:
        for flag in ("augment", "amp"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag}={getattr(self, flag)!r} must be true or false")
        datasets = DATASETS
        models = ("net4", "vgg16", "resnet18")
        if self.dataset not in datasets:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {datasets}")
        if self.model not in models:
            raise ValueError(f"unknown model {self.model!r}; choose one of {models}")
        if self.activation not in ("relu", "leaky"):
            raise ValueError(f"unknown activation {self.activation!r}; choose 'relu' or 'leaky'")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha={self.alpha} must lie in (0, 1)")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"need epochs >= 0, batch_size >= 1, lr > 0; got {self.epochs}, {self.batch_size}, {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose 'adam' or 'sgd'")


def load_split(dataset: str, split: str, subset: int | None = None, seed: int = 0):
    """A dataset split as tensors, optionally a fixed random subset of ``subset`` samples."""
    x, y = load_dataset(dataset, split)
    if subset is not None and subset < len(y):
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:subset]
        x, y = x[idx], y[idx]
    return x, y


def ann_key(cfg: ANNConfig) -> dict:
    """The cache key of :func:`trained_ann` (step ``"ann"``)."""
    return asdict(cfg)


def trained_ann(cfg: ANNConfig, device="auto", progress: bool = True) -> tuple[nn.Module, dict]:
    """Train (or load from the cache) the ANN described by ``cfg``.

    Returns the model in eval mode on the CPU and a record with its training history
    and test accuracy.
    """

    def build():
        seed_everything(cfg.seed)
        model = build_model(cfg.model, cfg.activation, cfg.alpha, cfg.width)
        train = load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed)
        history = train_ann(
            model,
            train,
            cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            weight_decay=cfg.weight_decay,
            optimizer=cfg.optimizer,
            seed=cfg.seed,
            device=device,
            step_name=f"train {cfg.model}",
            progress=progress,
            augment=cfg.augment,
            amp=cfg.amp,
        )
        test_acc = evaluate_ann(model, *load_split(cfg.dataset, "test"), device=device)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history, "test_acc": test_acc}

    blob = cached("ann", ann_key(cfg), build)
    model = build_model(cfg.model, cfg.activation, cfg.alpha, cfg.width)
    model.load_state_dict(blob["state_dict"])
    return model.eval(), {"history": blob["history"], "test_acc": blob["test_acc"]}


@dataclass(frozen=True)
class ThresholdConfig:
    """Settings of threshold optimisation: variance-penalty fine-tuning, then trainable clipping."""

    vp_epochs: int = 3
    vp_lr: float = 2e-4
    vp_weight: float = 0.1  # lambda1 = vp_weight * |CE| / eta (eq. 31)
    vp_eps: float = 1e-3
    clip_epochs: int = 3
    clip_lr: float = 5e-4
    clip_l2: float = 1e-3  # weight of sum theta_p^2 + theta_n^2 (eq. 24)
    clip_percentile: float = 99.9  # initial thresholds
    use_variance_penalty: bool = True

    def __post_init__(self) -> None:
        if self.vp_epochs < 0 or self.clip_epochs < 0:
            raise ValueError(f"epochs must be >= 0, got vp_epochs={self.vp_epochs}, clip_epochs={self.clip_epochs}")
        if self.vp_eps <= 0 or self.vp_weight < 0 or self.clip_l2 < 0:
            raise ValueError("vp_eps must be > 0 and the weights vp_weight, clip_l2 >= 0")
        if not 0 < self.clip_percentile <= 100:
            raise ValueError(f"clip_percentile={self.clip_percentile} must lie in (0, 100]")


def _finetune_record(model, history, cfg: ANNConfig, device) -> dict:
    test_acc = evaluate_ann(model, *load_split(cfg.dataset, "test"), device=device)
    return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history, "test_acc": test_acc}


def vp_key(cfg: ANNConfig, th: ThresholdConfig) -> dict:
    """The cache key of :func:`variance_finetuned_ann` (step ``"vp"``): the ANN and the ``vp_`` settings."""
    return {"ann": asdict(cfg), "vp": {k: v for k, v in asdict(th).items() if k.startswith("vp_")}}


def variance_finetuned_ann(cfg: ANNConfig, th: ThresholdConfig, device="auto", progress: bool = True):
    """The trained ANN fine-tuned with the variance penalty (cached). Returns ``(model, record)``."""
    from .variance_penalty import VariancePenalty

    def build():
        model, _ = trained_ann(cfg, device, progress)
        seed_everything(cfg.seed + 1)
        vp = VariancePenalty(model, eps=th.vp_eps, weight=th.vp_weight, use_bn=cfg.model != "net4")
        etas = []

        def extra(m, logits, ce):
            out = vp(m, logits, ce)
            etas.append(vp.last)
            return out

        history = train_ann(model, load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed), th.vp_epochs,
                            lr=th.vp_lr, batch_size=cfg.batch_size, seed=cfg.seed + 1, device=device,
                            extra_loss=extra, step_name="variance penalty", progress=progress,
                            augment=cfg.augment, amp=cfg.amp)
        vp.remove()
        per_batch = len(etas) // max(1, th.vp_epochs)
        for i, h in enumerate(history):  # mean eta per layer over each epoch
            chunk = etas[i * per_batch : (i + 1) * per_batch]
            h.update({f"eta_{k}": sum(e[k] for e in chunk) / len(chunk) for k in chunk[0]})
        return _finetune_record(model, history, cfg, device)

    blob = cached("vp", vp_key(cfg, th), build)
    model = build_model(cfg.model, cfg.activation, cfg.alpha, cfg.width)
    model.load_state_dict(blob["state_dict"])
    return model.eval(), {"history": blob["history"], "test_acc": blob["test_acc"]}


def clip_key(cfg: ANNConfig, th: ThresholdConfig) -> dict:
    """The cache key of :func:`clipped_ann` (step ``"clip"``)."""
    return {"ann": asdict(cfg), "threshold": asdict(th)}


def clipped_ann(cfg: ANNConfig, th: ThresholdConfig, device="auto", progress: bool = True):
    """The (variance-fine-tuned) ANN with trainable clipping layers, trained with L2 on them (cached)."""
    from .clipping import TrainableClip, add_clipping, clip_l2
    from .threshold import activation_thresholds

    def base():
        if th.use_variance_penalty:
            return variance_finetuned_ann(cfg, th, device, progress)[0]
        return trained_ann(cfg, device, progress)[0]

    def make(model):
        x = load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed)[0]
        return add_clipping(model, activation_thresholds(model, x, "percentile", th.clip_percentile))

    def build():
        model = make(base())
        seed_everything(cfg.seed + 2)

        def project(m):
            for c in m.modules():
                if isinstance(c, TrainableClip):
                    c.project_()

        history = train_ann(model, load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed), th.clip_epochs,
                            lr=th.clip_lr, batch_size=cfg.batch_size, seed=cfg.seed + 2, device=device,
                            extra_loss=lambda m, logits, ce: th.clip_l2 * clip_l2(m), post_step=project,
                            step_name="clipping", progress=progress, augment=cfg.augment, amp=cfg.amp)
        return _finetune_record(model, history, cfg, device)

    blob = cached("clip", clip_key(cfg, th), build)
    plain = build_model(cfg.model, cfg.activation, cfg.alpha, cfg.width)
    placeholder = Thresholds(1.0, -1.0 if cfg.activation == "leaky" else None)
    model = add_clipping(plain, {n: placeholder for n in activation_sites(plain)[1]})  # shapes only
    model.load_state_dict(blob["state_dict"])
    return model.eval(), {"history": blob["history"], "test_acc": blob["test_acc"]}


@dataclass(frozen=True)
class CalibrationConfig:
    """Settings of a temporal calibration of the converted SNN (the cache key with the ANN's)."""

    method: str = "joint"  # "joint" or "layerwise"
    weighting: str = "cosine"  # joint only: average, cosine, sigmoid
    T: tuple[int, ...] = (10,)  # joint: one T is drawn per batch from these
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 128
    subset: int | None = 10000  # training images used for calibration
    loss: str = "kl"
    temperature: float = 1.0
    mu: float = 8.0
    floor: float = 0.02
    train: tuple[str, ...] = ("weights", "biases")
    neuron: str = "signed"
    # Initial membrane as a fraction of P_th (a conversion setting). Half the threshold rounds
    # the positive side (Bu et al. 2022) and costs the negative side; summed over both sides it
    # is within about 1% of the best start, (1 - alpha) / 2 (negspike.rounding, measured in
    # the chapter "Deep networks"). For the tracking neurons it is the rounding fraction.
    v_init: float = 0.5
    # Held-out training images (after the `subset` calibration images) on which the SNN is
    # scored before calibration and `checks` times per epoch; it ends in the best state
    # (negspike.calibration_guard). 0: no checks, the state after the last step is kept.
    holdout: int = 0
    checks: int = 1

    def __post_init__(self) -> None:
        if self.method not in ("joint", "layerwise"):
            raise ValueError(f"unknown calibration method {self.method!r}; choose 'joint' or 'layerwise'")
        if self.weighting not in ("average", "cosine", "sigmoid"):
            raise ValueError(f"unknown weighting {self.weighting!r}; choose 'average', 'cosine' or 'sigmoid'")
        if not self.T or any(t < 1 for t in self.T):
            raise ValueError(f"calibration T={self.T} must hold positive integers")
        if self.holdout < 0 or self.checks < 1:
            raise ValueError(f"need holdout >= 0 and checks >= 1, got {self.holdout} and {self.checks}")
        if self.loss not in ("kl", "mse"):
            raise ValueError(f"unknown calibration loss {self.loss!r}; choose 'kl' or 'mse'")
        from .tracking import NEURON_KINDS

        if self.neuron not in NEURON_KINDS:
            raise ValueError(f"unknown neuron {self.neuron!r}; choose one of {NEURON_KINDS}")


def converted_snn(cfg: ANNConfig, th: ThresholdConfig, neuron: str = "signed", progress: bool = True,
                  v_init: float = 0.0):
    """The clipped ANN of ``cfg, th`` and its SNN conversion (learned thresholds)."""
    from .convert import convert

    ann, _ = clipped_ann(cfg, th, progress=progress)
    return ann, convert(ann, neuron=neuron, v_init=v_init)


def calibration_key(cfg: ANNConfig, th: ThresholdConfig, cal: CalibrationConfig) -> dict:
    """The cache key of :func:`calibrated_snn` (step ``"calibration"``)."""
    return {"ann": asdict(cfg), "threshold": asdict(th), "calibration": asdict(cal)}


def calibrated_snn(cfg: ANNConfig, th: ThresholdConfig, cal: CalibrationConfig, device="auto", progress: bool = True):
    """The converted SNN after temporal calibration (cached). Returns ``(snn, loss_history)``."""
    from .calibrate import calibrate_joint, calibrate_layerwise

    def build():
        ann, snn = converted_snn(cfg, th, cal.neuron, progress, cal.v_init)
        x, holdout = calibration_images(cfg, cal)
        seed_everything(cfg.seed + 3)
        common = dict(lr=cal.lr, batch_size=cal.batch_size, loss=cal.loss, temperature=cal.temperature,
                      seed=cfg.seed + 3, device=device, progress=progress, holdout=holdout)
        if cal.method == "joint":
            hist = calibrate_joint(snn, ann, x, list(cal.T), epochs=cal.epochs, weighting=cal.weighting, mu=cal.mu,
                                   floor=cal.floor, train=cal.train, checks=cal.checks, **common)
        elif cal.method == "layerwise":
            hist = calibrate_layerwise(snn, ann, x, cal.T[0], epochs=cal.epochs, **common)
        else:
            raise ValueError(f"unknown calibration method {cal.method!r}; choose 'joint' or 'layerwise'")
        return {"state_dict": {k: v.cpu() for k, v in snn.state_dict().items()}, "history": hist.to_dict("records"),
                "holdout": hist.attrs.get("holdout", [])}

    blob = cached("calibration", calibration_key(cfg, th, cal), build)
    _, snn = converted_snn(cfg, th, cal.neuron, progress, cal.v_init)
    for name, neuron in snn.neurons.items():  # learned initial membranes, if any
        v0 = blob["state_dict"].get(f"net.{name}.v0")
        if v0 is not None:
            neuron.v0 = nn.Parameter(torch.zeros_like(v0), requires_grad=False)
    snn.load_state_dict(blob["state_dict"])
    import pandas as pd

    hist = pd.DataFrame(blob["history"])
    hist.attrs["holdout"] = blob.get("holdout", [])  # the held-out checks, as records
    return snn.eval(), hist


def calibration_images(cfg: ANNConfig, cal: CalibrationConfig):
    """``(x, holdout)``: the ``cal.subset`` training images of a calibration and, when
    ``cal.holdout`` is set, ``(images, labels)`` of that many further training images (the
    same random order continued, so adding a holdout leaves ``x`` as it was); else None."""
    n = None if cal.subset is None else cal.subset + cal.holdout
    x, y = load_split(cfg.dataset, "train", n, cfg.seed + 3)
    if not cal.holdout:
        return x, None
    if len(x) <= cal.holdout:
        raise ValueError(f"calibration holdout={cal.holdout} leaves no calibration images of {len(x)}")
    cut = len(x) - cal.holdout
    return x[:cut], (x[cut:], y[cut:])
