"""Multi-process training with torchrun: small helpers around ``torch.distributed``.

One code path serves one process on a CPU, one GPU, and several processes on one or
many GPUs. ``torchrun --nproc_per_node=N script.py`` starts ``N`` processes and sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR``/``MASTER_PORT``) in
each; :func:`init_from_env` reads them and joins the process group (backend ``nccl``
when CUDA is available, else ``gloo``). Without those variables it does nothing and
reports a world of one, so the same script also runs as a plain ``python script.py``.

:func:`negspike.train.train_ann` notices an initialised process group with more than
one process by itself: it wraps the model in ``DistributedDataParallel`` and trains each
rank on its share of every global batch (see there).
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["init_from_env", "is_distributed", "rank", "world_size", "is_main", "barrier", "cleanup", "shard_bounds"]


def init_from_env(backend: str | None = None, timeout_s: float = 1800.0) -> tuple[int, int, torch.device]:
    """Join the process group that torchrun describes in the environment.

    Returns ``(rank, world_size, device)``. The device is ``cuda:LOCAL_RANK`` (made the
    current CUDA device) when CUDA is available, else the CPU. Without ``RANK`` and
    ``WORLD_SIZE`` in the environment no process group is made: ``(0, 1, device)``.
    If a process group exists already it is reused. ``backend`` defaults to ``nccl``
    with CUDA and ``gloo`` without.
    """
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        local_rank %= torch.cuda.device_count()
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if is_distributed():
        return dist.get_rank(), dist.get_world_size(), device
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    rank_, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world < 1 or not 0 <= rank_ < world:
        raise ValueError(f"RANK={rank_} and WORLD_SIZE={world} from the environment are inconsistent")
    dist.init_process_group(
        backend or ("nccl" if cuda else "gloo"),
        rank=rank_,
        world_size=world,
        timeout=timedelta(seconds=timeout_s),
        **({"device_id": device} if cuda else {}),
    )
    return rank_, world, device


def is_distributed() -> bool:
    """Whether a process group is initialised (possibly with a single process)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank; 0 without a process group."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes; 1 without a process group."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the one that prints and saves."""
    return rank() == 0


def barrier() -> None:
    """Wait for all processes; a no-op without a process group."""
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave and destroy the process group, if there is one."""
    if is_distributed():
        dist.destroy_process_group()


def shard_bounds(n: int, world: int, rank_: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank_``'s contiguous share of ``n`` items split over
    ``world`` ranks, as ``torch.tensor_split`` cuts them: sizes differ by at most one,
    the first ``n % world`` ranks get the larger ones."""
    if world < 1 or not 0 <= rank_ < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank_}, world={world}")
    base, extra = divmod(n, world)
    start = rank_ * base + min(rank_, extra)
    return start, start + base + (rank_ < extra)
