"""Device, seeding, progress and memory-format helpers shared by training, calibration and simulation."""
from __future__ import annotations

import os
import random
from typing import Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["progress_bar", "seed_everything", "select_device", "memory_format_for"]


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
