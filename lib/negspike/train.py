"""ANN training: seeded, device-aware, with progress bars and a divergence check."""
from __future__ import annotations

import contextlib
import functools
import math
import os
import random
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed as D
from .data import TensorLoader, apply_crop_flip, crop_flip_params

__all__ = [
    "seed_everything",
    "select_device",
    "progress_bar",
    "DivergenceError",
    "evaluate_ann",
    "train_ann",
    "memory_format_for",
]


def progress_bar(iterable: Iterable, desc: str, progress: bool = True, total: int | None = None):
    """A tqdm bar, off when ``progress`` is false or the environment sets ``TQDM_DISABLE=1``
    (as ``make reproduce`` does, so that bars do not clutter the rendered pages)."""
    off = not progress or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")
    return tqdm(iterable, desc=desc, disable=off, leave=False, total=total)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def memory_format_for(x: torch.Tensor, model: nn.Module | None = None, device=None) -> torch.memory_format:
    """Channels-last for image batches: mkldnn and cuDNN convolutions run faster in it
    (Net4 training 1.7x on this 2-core CPU), the results are the same up to rounding.

    Given the ``model`` and a CPU ``device``, falls back to the contiguous format where
    torch 2.14's mkldnn backward of a channels-last 1x1 strided convolution with fewer
    than 8 input channels corrupts the heap (seen as segfaults: ResNet-18 shortcuts at
    ``width=1/16``)."""
    if x.dim() != 4:
        return torch.contiguous_format
    if model is not None and (device is None or torch.device(device).type == "cpu"):
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and max(m.stride) > 1 and m.in_channels < 8:
                return torch.contiguous_format
    return torch.channels_last


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
    """``(autocast dtype or None, GradScaler or None)``: bfloat16 where the GPU supports it,
    else float16 with a gradient scaler; nothing on a CPU (AMP is for CUDA only)."""
    if not amp or device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


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
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'adam' or 'sgd'")
    world, rank = D.world_size(), D.rank()
    net = model
    if world > 1:
        if batch_size < world or len(train[0]) < world:
            raise ValueError(f"{world} processes need batch_size and the number of samples >= {world}; "
                             f"got batch_size={batch_size}, {len(train[0])} samples")
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":
            ids = [device.index if device.index is not None else torch.cuda.current_device()]
        else:
            ids = None
        net = DistributedDataParallel(model, device_ids=ids)
    autocast_dtype, scaler = _amp_setup(amp, device)
    if autocast_dtype is None:
        autocast = contextlib.nullcontext
    else:
        autocast = functools.partial(torch.autocast, device.type, dtype=autocast_dtype)
    aug_gen = torch.Generator().manual_seed(seed + 7919) if augment else None
    x_all, y_all = train
    loader = TensorLoader(x_all, y_all, batch_size=batch_size, shuffle=True, seed=seed)
    total = max(1, epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    show = progress and rank == 0
    history = []
    last_finite = float("nan")
    for epoch in range(epochs):
        loss_sum = ce_sum = 0.0
        correct = seen = 0
        bar = progress_bar(loader.index_batches(), f"{step_name} epoch {epoch + 1}/{epochs}", show, total=len(loader))
        for idx in bar:
            n_global = len(idx)
            if augment:  # drawn for the global batch so that every world size sees the same images
                dy, dx, flipped = crop_flip_params(n_global, aug_gen)
            if world > 1:
                if n_global < world:  # some rank would get no sample
                    continue
                lo, hi = D.shard_bounds(n_global, world, rank)
                idx = idx[lo:hi]
                if augment:
                    dy, dx, flipped = dy[lo:hi], dx[lo:hi], flipped[lo:hi]
            xb, yb = x_all[idx], y_all[idx].to(device)
            if augment:
                xb = apply_crop_flip(xb.to(device), dy, dx, flipped).contiguous(memory_format=fmt)
            else:
                xb = xb.to(device, memory_format=fmt)
            with autocast():
                logits = net(xb)
                if world == 1:
                    ce = nn.functional.cross_entropy(logits, yb)
                    objective = ce
                else:
                    ce_total = nn.functional.cross_entropy(logits, yb, reduction="sum")
                    ce = ce_total / len(yb)
                    objective = ce_total * (world / n_global)  # DDP averages over ranks
                extra = extra_loss(model, logits, ce) if extra_loss is not None else None
            loss = ce + extra if extra is not None else ce
            if extra is not None:
                objective = objective + extra
            if world == 1:
                batch_loss, batch_ce, n = loss.item(), ce.item(), len(yb)
                batch_correct = int((logits.argmax(1) == yb).sum())
            else:  # the global batch's statistics on every rank, so all ranks stop together on NaN
                stats = torch.stack([loss.detach().double() * len(yb), ce.detach().double() * len(yb),
                                     (logits.argmax(1) == yb).sum().double(),
                                     torch.tensor(float(len(yb)), dtype=torch.float64, device=device)])
                torch.distributed.all_reduce(stats)
                s_loss, s_ce, s_correct, n = stats.tolist()
                batch_loss, batch_ce, batch_correct, n = s_loss / n, s_ce / n, int(round(s_correct)), int(round(n))
            if not math.isfinite(batch_loss):
                raise DivergenceError(
                    f"{step_name}: loss became {batch_loss} in epoch {epoch + 1}; last finite loss {last_finite:.4g}"
                )
            last_finite = batch_loss
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(objective).backward()
                scaler.step(opt)
                scaler.update()
            else:
                objective.backward()
                opt.step()
            sched.step()
            if post_step is not None:
                post_step(model)
            loss_sum += batch_loss * n
            ce_sum += batch_ce * n
            correct += batch_correct
            seen += n
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "ce": ce_sum / seen, "train_acc": correct / seen})
    del net  # the DDP wrapper, if any; ``model`` is the plain module
    model.eval().to(memory_format=torch.contiguous_format)
    return history
