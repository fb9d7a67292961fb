"""Train an ANN of the book on several GPUs (or CPU processes) with torchrun and DDP.

Usage (2 processes on this node; one per GPU, or gloo processes on a CPU)::

    torchrun --nproc_per_node=2 scripts/train_ddp.py --dataset cifar10 --model vgg16 \\
        --epochs 200 --lr 0.05 --optimizer sgd --weight-decay 5e-4 --batch-size 256 \\
        --augment --out data/vgg16-cifar10.pt

    torchrun --nproc_per_node=8 scripts/train_ddp.py --profile profiles/cifar.yaml --cache
    python scripts/train_ddp.py --profile smoke --out /tmp/net4.pt   # one process, no torchrun

The settings are those of :class:`negspike.pipeline.ANNConfig`: ``--profile`` (a name in
``profiles/`` or a path to a ``.yaml`` file) supplies its ``ann`` section, and options
given on the command line override single keys. ``--batch-size`` is the *global* batch:
each of the N processes trains on its share of every batch, and the gradients are
averaged, so a run takes the same optimiser steps whatever N is (see
:func:`negspike.train.train_ann`; batch-norm statistics are per process).

Rank 0 evaluates the test accuracy, writes the state dict to ``--out`` (loadable with
``model.load_state_dict(torch.load(path))``) and a record beside it (``.json``: config,
history, test accuracy, number of processes), and with ``--cache`` stores the model in
the pipeline's checkpoint cache under the configuration's key, so that
``negspike.pipeline.trained_ann(cfg)`` (and every chapter using that profile) loads it
instead of training. With CUDA, mixed precision is on unless ``--no-amp``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from negspike import distributed as D
from negspike.models import build_model
from negspike.pipeline import ANNConfig, load_split
from negspike.train import evaluate_ann, train_ann
from negspike.utils import seed_everything

OPTIONS = {  # ANNConfig field -> argparse keyword arguments
    "dataset": dict(type=str),
    "model": dict(type=str),
    "activation": dict(type=str),
    "alpha": dict(type=float),
    "width": dict(type=float),
    "epochs": dict(type=int),
    "lr": dict(type=float),
    "batch_size": dict(type=int, help="global batch, split over the processes"),
    "weight_decay": dict(type=float),
    "optimizer": dict(type=str),
    "train_subset": dict(type=int),
    "seed": dict(type=int),
    "augment": dict(action=argparse.BooleanOptionalAction, help="random crop and flip (CIFAR)"),
    "amp": dict(action=argparse.BooleanOptionalAction, help="mixed precision on CUDA"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", help="profile name or .yaml path whose 'ann' section is the starting point")
    for name, kwargs in OPTIONS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, **kwargs)
    p.add_argument("--out", type=Path, help="where rank 0 writes the state dict (and a .json record beside it)")
    p.add_argument("--cache", action="store_true", help="also store the model in the pipeline's checkpoint cache")
    p.add_argument("--device", default="auto", help="'auto' (the rank's GPU, else CPU) or a torch device")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.out is None and not args.cache:
        p.error("give --out PATH, --cache, or both")
    return args


def config_from(args: argparse.Namespace) -> ANNConfig:
    """The profile's ``ann`` section (or the defaults) with the command-line overrides."""
    if args.profile:
        from negspike.profiles import load_profile

        base = load_profile(args.profile).ann
    else:
        base = ANNConfig()
    overrides = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    return dataclasses.replace(base, **overrides)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config_from(args)
    rank, world, device = D.init_from_env()
    if args.device != "auto":
        device = torch.device(args.device)
    try:
        if D.is_main():
            print(f"train_ddp: {world} process(es), device {device}, config {dataclasses.asdict(cfg)}", flush=True)
        seed_everything(cfg.seed)
        model = build_model(cfg.model, cfg.activation, cfg.alpha, cfg.width)
        if rank != 0:  # rank 0 loads (and perhaps downloads) the data first
            D.barrier()
        train = load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed)
        if rank == 0:
            D.barrier()
        start = time.perf_counter()
        history = train_ann(model, train, cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                            weight_decay=cfg.weight_decay, optimizer=cfg.optimizer, seed=cfg.seed, device=device,
                            step_name=f"train {cfg.model}", progress=not args.no_progress,
                            augment=cfg.augment, amp=cfg.amp)
        seconds = time.perf_counter() - start
        if D.is_main():
            test_acc = evaluate_ann(model, *load_split(cfg.dataset, "test"), device=device)
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            record = {"config": dataclasses.asdict(cfg), "history": history, "test_acc": test_acc,
                      "world_size": world, "train_seconds": seconds}
            if args.out is not None:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                torch.save(state, args.out)
                args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))
            if args.cache:
                from negspike.cache import cache_path, cached
                from negspike.pipeline import ann_key

                built = []  # empty when the cache already held a valid checkpoint of cfg

                def build():
                    built.append(True)
                    return {"state_dict": state, "history": history, "test_acc": test_acc}

                cached("ann", ann_key(cfg), build)
                print(f"train_ddp: cache {cache_path('ann', ann_key(cfg))}"
                      + ("" if built else " (already held a checkpoint, kept)"))
            print(f"train_ddp: test accuracy {test_acc:.4f}, {seconds:.1f} s of training"
                  + (f", state dict in {args.out}" if args.out else ""), flush=True)
        D.barrier()
    finally:
        D.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
