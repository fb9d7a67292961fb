"""ANN training: seeded, device-aware, with progress bars and a divergence check."""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from . import distributed as D
from .data import TensorLoader, apply_crop_flip, crop_flip_params
from .utils import memory_format_for, progress_bar, select_device

__all__ = [
    "DivergenceError",
    "evaluate_ann",
    "train_ann",
]

ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite."""


@torch.no_grad()
def correct_per_image(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
                      device="auto") -> torch.Tensor:
    """Boolean tensor, one entry per image of ``x``: is ``model`` (in eval mode) right on it?

    The ANN side of a matched comparison: an SNN simulated on the same ``x`` has a
    ``correct`` tensor of the same images (:class:`~negspike.simulate.SimulationResult`).
    """
    device = select_device(device)
    was_training = model.training
    fmt = memory_format_for(x)
    model.eval().to(device, memory_format=fmt)
    right = [(model(xb.to(device, memory_format=fmt)).argmax(1) == yb.to(device)).cpu()
             for xb, yb in TensorLoader(x, y, batch_size)]
    model.train(was_training).to(memory_format=torch.contiguous_format)
    return torch.cat(right) if right else torch.zeros(0, dtype=torch.bool)


def evaluate_ann(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000, device="auto") -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of ``model`` in eval mode."""
    return correct_per_image(model, x, y, batch_size, device).double().mean().item()


def _amp_setup(amp: bool, device: torch.device):
    """``(autocast context factory, GradScaler or None)``: bfloat16 where the GPU supports it,
    else float16 with a gradient scaler; no autocast on a CPU (AMP is for CUDA only)."""
    if not amp or device.type != "cuda":
        return contextlib.nullcontext, None
    if torch.cuda.is_bf16_supported():
        dtype, scaler = torch.bfloat16, None
    else:
        dtype, scaler = torch.float16, torch.amp.GradScaler("cuda")
    return functools.partial(torch.autocast, device.type, dtype=dtype), scaler


def _make_optimizer(model: nn.Module, optimizer: str, lr: float, weight_decay: float,
                    momentum: float) -> torch.optim.Optimizer:
    """Adam, or SGD with Nesterov momentum (plain SGD at ``momentum = 0``), over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    raise ValueError(f"unknown optimizer {optimizer!r}; choose 'adam' or 'sgd'")


def _cosine_schedule(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate ``lr * (1 + cos(pi * i / total)) / 2`` at step ``i``, flat at 0 after ``total``."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))


def _wrap_ddp(model: nn.Module, device: torch.device, batch_size: int, n_samples: int, world: int) -> nn.Module:
    """``model`` itself in one process, else wrapped in ``DistributedDataParallel``."""
    if world == 1:
        return model
    if batch_size < world or n_samples < world:
        raise ValueError(f"{world} processes need batch_size and the number of samples >= {world}; "
                         f"got batch_size={batch_size}, {n_samples} samples")
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        ids = [device.index if device.index is not None else torch.cuda.current_device()]
    else:
        ids = None
    return DistributedDataParallel(model, device_ids=ids)


@dataclass
class _Trainer:
    """The state one optimiser step needs; ``net`` is ``model`` or its DDP wrapper."""

    model: nn.Module
    net: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    fmt: torch.memory_format
    autocast: Callable
    scaler: torch.amp.GradScaler | None
    aug_gen: torch.Generator | None  # None: no augmentation
    extra_loss: ExtraLoss | None
    post_step: Callable[[nn.Module], None] | None
    step_name: str
    world: int
    rank: int
    last_finite: float = float("nan")

    def batch(self, x_all: torch.Tensor, y_all: torch.Tensor, idx) -> tuple[torch.Tensor, torch.Tensor] | None:
        """This rank's share of the global batch ``idx`` on the device, augmented if asked;
        None where the global batch is too small to give every rank a sample."""
        n_global = len(idx)
        augment = self.aug_gen is not None
        if augment:  # drawn for the global batch so that every world size sees the same images
            dy, dx, flipped = crop_flip_params(n_global, self.aug_gen)
        if self.world > 1:
            if n_global < self.world:  # some rank would get no sample
                return None
            lo, hi = D.shard_bounds(n_global, self.world, self.rank)
            idx = idx[lo:hi]
            if augment:
                dy, dx, flipped = dy[lo:hi], dx[lo:hi], flipped[lo:hi]
        xb, yb = x_all[idx], y_all[idx].to(self.device)
        if augment:
            xb = apply_crop_flip(xb.to(self.device), dy, dx, flipped).contiguous(memory_format=self.fmt)
        else:
            xb = xb.to(self.device, memory_format=self.fmt)
        return xb, yb

    def losses(self, xb: torch.Tensor, yb: torch.Tensor, n_global: int):
        """``(loss, ce, objective, logits)``: the reported loss and cross-entropy of this
        share, and the objective to differentiate (scaled so DDP's average is the global mean)."""
        with self.autocast():
            logits = self.net(xb)
            if self.world == 1:
                ce = nn.functional.cross_entropy(logits, yb)
                objective = ce
            else:
                ce_total = nn.functional.cross_entropy(logits, yb, reduction="sum")
                ce = ce_total / len(yb)
                objective = ce_total * (self.world / n_global)  # DDP averages over ranks
            extra = self.extra_loss(self.model, logits, ce) if self.extra_loss is not None else None
        loss = ce + extra if extra is not None else ce
        if extra is not None:
            objective = objective + extra
        return loss, ce, objective, logits

    def stats(self, loss: torch.Tensor, ce: torch.Tensor, logits: torch.Tensor, yb: torch.Tensor):
        """``(loss, ce, correct, n)`` of the global batch, the same on every rank (so that all
        ranks stop together on NaN)."""
        if self.world == 1:
            return loss.item(), ce.item(), int((logits.argmax(1) == yb).sum()), len(yb)
        stats = torch.stack([loss.detach().double() * len(yb), ce.detach().double() * len(yb),
                             (logits.argmax(1) == yb).sum().double(),
                             torch.tensor(float(len(yb)), dtype=torch.float64, device=self.device)])
        torch.distributed.all_reduce(stats)
        s_loss, s_ce, s_correct, n = stats.tolist()
        return s_loss / n, s_ce / n, int(round(s_correct)), int(round(n))

    def check_finite(self, batch_loss: float, epoch: int) -> None:
        if not math.isfinite(batch_loss):
            raise DivergenceError(
                f"{self.step_name}: loss became {batch_loss} in epoch {epoch + 1}; "
                f"last finite loss {self.last_finite:.4g}"
            )
        self.last_finite = batch_loss

    def step(self, objective: torch.Tensor) -> None:
        """One optimiser and schedule step, then ``post_step``."""
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(objective).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            objective.backward()
            self.opt.step()
        self.sched.step()
        if self.post_step is not None:
            self.post_step(self.model)

    def epoch(self, loader: TensorLoader, epoch: int, epochs: int, show: bool) -> dict:
        """One pass over ``loader``; its record (epoch, loss, ce, train_acc)."""
        loss_sum = ce_sum = 0.0
        correct = seen = 0
        bar = progress_bar(loader.index_batches(), f"{self.step_name} epoch {epoch + 1}/{epochs}", show,
                           total=len(loader))
        for idx in bar:
            share = self.batch(loader.x, loader.y, idx)
            if share is None:
                continue
            xb, yb = share
            loss, ce, objective, logits = self.losses(xb, yb, len(idx))
            batch_loss, batch_ce, batch_correct, n = self.stats(loss, ce, logits, yb)
            self.check_finite(batch_loss, epoch)
            self.step(objective)
            loss_sum += batch_loss * n
            ce_sum += batch_ce * n
            correct += batch_correct
            seen += n
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        return {"epoch": epoch + 1, "loss": loss_sum / seen, "ce": ce_sum / seen, "train_acc": correct / seen}


def train_ann(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    seed: int = 0,
    device="auto",
    optimizer: str = "adam",
    extra_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    post_step: Callable[[nn.Module], None] | None = None,
    step_name: str = "train",
    progress: bool = True,
    augment: bool = False,
    amp: bool = False,
    momentum: float = 0.9,
) -> list[dict]:
    """Train ``model`` with cross-entropy (plus ``extra_loss(model, logits, ce)`` if given).

    Adam, or SGD with Nesterov momentum ``momentum`` (plain SGD at 0), cosine
    learning-rate schedule. Returns one record per epoch (epoch, loss, ce, train_acc).
    Raises :class:`DivergenceError` naming the step, the epoch and the last finite loss
    if the loss becomes NaN or infinite. ``post_step(model)`` runs after every optimiser
    step (e.g. to project thresholds).

    ``augment``: random crop (zero padding 4) and horizontal flip of every training batch
    (:func:`~negspike.data.random_crop_flip`), drawn from a generator seeded from ``seed``.
    ``amp``: mixed precision on CUDA (bfloat16 autocast, or float16 with a gradient
    scaler where bfloat16 is not supported); ignored on a CPU.

    **Several processes** (torchrun, see :mod:`negspike.distributed`): when a process
    group with more than one process is initialised, the model is wrapped in
    ``DistributedDataParallel`` (so every rank must call ``train_ann`` with the same
    arguments, as a torchrun script does). Every rank draws the same shuffled global batches (and
    the same augmentation) from ``seed`` and trains on its contiguous share of each
    (:func:`~negspike.distributed.shard_bounds`); the loss of rank ``r`` is scaled by
    ``world * n_r / n`` so that DDP's gradient average is the gradient of the mean loss
    over the global batch, also when the shares are unequal. The optimiser therefore
    takes the same steps as one process with the same ``batch_size`` (up to rounding,
    except batch-norm batch statistics, which are per rank). A final global batch smaller
    than the number of processes is skipped. The history is reduced over all ranks, so
    every rank returns the same records; ``extra_loss`` and ``post_step`` receive the
    plain module; the model is returned unwrapped. Only rank 0 shows progress bars.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    device = select_device(device)
    fmt = memory_format_for(train[0], model, device)
    if augment and train[0].dim() != 4:
        raise ValueError(f"augment=True needs image batches [N, C, H, W], got shape {tuple(train[0].shape)}")
    model.to(device, memory_format=fmt).train()
    opt = _make_optimizer(model, optimizer, lr, weight_decay, momentum)
    world, rank = D.world_size(), D.rank()
    net = _wrap_ddp(model, device, batch_size, len(train[0]), world)
    autocast, scaler = _amp_setup(amp, device)
    aug_gen = torch.Generator().manual_seed(seed + 7919) if augment else None
    loader = TensorLoader(*train, batch_size=batch_size, shuffle=True, seed=seed)
    sched = _cosine_schedule(opt, max(1, epochs * len(loader)))
    trainer = _Trainer(model, net, opt, sched, device, fmt, autocast, scaler, aug_gen, extra_loss, post_step,
                       step_name, world, rank)
    del net  # the trainer holds the DDP wrapper, if any, and ``del trainer`` below drops it
    history = [trainer.epoch(loader, epoch, epochs, progress and rank == 0) for epoch in range(epochs)]
    del trainer  # ``model`` is the plain module
    model.eval().to(memory_format=torch.contiguous_format)
    return history
