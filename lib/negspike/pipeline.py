"""Profile-driven pipeline steps with an on-disk cache, so any chapter can run alone."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .cache import cached
from .data import load_dataset
from .models import build_model
from .train import evaluate_ann, seed_everything, train_ann

__all__ = ["ANNConfig", "load_split", "trained_ann"]


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


def load_split(dataset: str, split: str, subset: int | None = None, seed: int = 0):
    """A dataset split as tensors, optionally a fixed random subset of ``subset`` samples."""
    x, y = load_dataset(dataset, split)
    if subset is not None and subset < len(y):
        idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:subset]
        x, y = x[idx], y[idx]
    return x, y


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
        )
        test_acc = evaluate_ann(model, *load_split(cfg.dataset, "test"), device=device)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": history, "test_acc": test_acc}

    blob = cached("ann", asdict(cfg), build)
    model = build_model(cfg.model, cfg.activation, cfg.alpha, cfg.width)
    model.load_state_dict(blob["state_dict"])
    return model.eval(), {"history": blob["history"], "test_acc": blob["test_acc"]}
