"""SpikingJelly's ann2snn converter against ours on the book's Net4 (accuracy against T, and speed).

Rows, all simulated on the same test images:

* SpikingJelly 2.0.0 (``ann2snn.Converter`` with ``RateCodingRecipe``: IF neurons with soft
  reset, one threshold per layer from the 99.9% percentile or the max of the ReLU activations
  on training images) on the ReLU Net4 of the accuracy_vs_T chapter;
* ours on the same ReLU Net4: IF neurons, 99.9th-percentile and max thresholds;
* ours on the Leaky-ReLU Net4 with threshold optimisation and joint calibration (cosine
  weighting): the calibration chapter's "cosine" run (signed neurons).

The trained networks come from the on-disk cache (data/cache, or ``NEGSPIKE_CACHE``) and are
trained on first use. Writes ``<out>/peers.csv`` (accuracy per T) and ``<out>/peers_speed.csv``
(images per second at T = 10, batch 256, median of repeats after a warm-up, same images and
threads for every SNN). The SpikingJelly rows need ``.venv/bin/pip install -r
requirements-bench.txt`` (``make bench`` does it); without it only our rows are written.

Usage: python benchmarks/bench_peers.py [--profile quick] [--test-subset 2000] [--out results/bench]
       [--T 4 8 16 32 64 128] [--batch 256] [--speed-T 10] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from bench_simulation import median_seconds, wall

import negspike
from negspike.data import TensorLoader
from negspike.pipeline import calibrated_snn, clipped_ann, load_split, trained_ann
from negspike.profiles import load_profile
from negspike.results import write_table
from negspike.train import evaluate_ann
from negspike.utils import progress_bar

SJ = "SpikingJelly"
OURS = "negspike"
INSTALL_HINT = ("spikingjelly is not installed: run `.venv/bin/pip install -r requirements-bench.txt` "
                "(make bench does) for the SpikingJelly rows; writing our rows only")


@dataclass
class Run:
    """One converted SNN: its labels, the accuracy of its ANN on the simulated images, and
    ``sj`` (SpikingJelly's modules) when SpikingJelly converted it, else ``None``."""

    library: str
    network: str
    thresholds: str
    calibration: str
    ann_acc: float
    snn: nn.Module
    sj: Any = None

    @property
    def labels(self) -> dict:
        return {"library": self.library, "network": self.network, "thresholds": self.thresholds,
                "calibration": self.calibration}


def import_spikingjelly():
    """``(version, ann2snn, functional)`` of SpikingJelly, or ``None`` when it is not installed."""
    try:
        from importlib.metadata import version

        from spikingjelly.activation_based import ann2snn, functional
    except ImportError:
        return None
    return version("spikingjelly"), ann2snn, functional


# SpikingJelly -------------------------------------------------------------------------------


def sj_convert(sj, ann: nn.Module, x_train: torch.Tensor, mode: str, batch: int) -> nn.Module:
    """SpikingJelly's rate-coding conversion of a copy of ``ann`` (``mode``: "99.9%" or "max").

    The recipe's VoltageHook takes each calibration batch's percentile (or max) of every ReLU
    output and keeps a running average (momentum 0.1) as the layer's scale. ``batch`` must keep
    a batch of first-layer activations under torch.quantile's 2^24-element limit.
    """
    _, ann2snn, _ = sj
    loader = TensorLoader(x_train, torch.zeros(len(x_train), dtype=torch.long), batch)
    recipe = ann2snn.RateCodingRecipe(dataloader=loader, mode=mode)
    return ann2snn.Converter(recipe, device="cpu").convert(copy.deepcopy(ann)).eval()


def sj_readout(sj, snn: nn.Module, xb: torch.Tensor, T: int, chunk: int, multi_step: bool):
    """Yield the readout of every step (``[steps, B, C]`` per chunk) of ``T`` steps on ``xb``.

    Multi-step mode feeds ``chunk`` copies of the input at once; single-step mode calls the
    network once per step (SpikingJelly's tutorial loop). The membranes are reset first.
    """
    _, _, functional = sj
    functional.set_step_mode(snn, "m" if multi_step else "s")
    functional.reset_net(snn)
    t0 = 0
    while t0 < T:
        steps = min(chunk, T - t0)
        if multi_step:
            yield snn(xb.unsqueeze(0).expand(steps, *xb.shape))
        else:
            yield torch.stack([snn(xb) for _ in range(steps)])
        t0 += steps


@torch.no_grad()
def sj_accuracy(sj, snn: nn.Module, x: torch.Tensor, y: torch.Tensor, T_max: int, batch: int, chunk: int,
                desc: str) -> np.ndarray:
    """Accuracy at every ``T <= T_max`` (readout averaged over the first T steps)."""
    correct = torch.zeros(T_max, dtype=torch.long)
    for xb, yb in progress_bar(TensorLoader(x, y, batch), desc):
        total, t0 = None, 0
        for out in sj_readout(sj, snn, xb, T_max, chunk, multi_step=True):
            run = out.cumsum(0) if total is None else out.cumsum(0) + total
            total = run[-1]
            correct[t0 : t0 + len(out)] += (run.argmax(-1) == yb).sum(1)
            t0 += len(out)
    return (correct.double() / len(y)).numpy()


# ours ---------------------------------------------------------------------------------------


def ours_predict(snn: negspike.SNN, xb: torch.Tensor, T: int, chunk: int) -> torch.Tensor:
    """Class predictions after ``T`` steps, in chunks of ``chunk`` steps (as ``simulate`` runs)."""
    snn.reset()
    total, t0 = 0, 0
    while t0 < T:
        steps = min(chunk, T - t0)
        total = total + snn(xb, steps).sum(0)
        t0 += steps
    return total.argmax(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick", help="profile name or path to a .yaml file")
    ap.add_argument("--test-subset", type=int, default=None,
                    help="test images simulated (default: the profile's evaluation.test_subset)")
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    ap.add_argument("--batch", type=int, default=256, help="batch of the speed measurement")
    ap.add_argument("--sim-batch", type=int, default=128, help="batch of the accuracy simulations")
    ap.add_argument("--chunk", type=int, default=4, help="time steps per call (both libraries)")
    ap.add_argument("--calib-batch", type=int, default=256, help="batch of SpikingJelly's calibration pass")
    ap.add_argument("--sj-modes", nargs="+", default=["99.9%", "max"], help="SpikingJelly threshold modes")
    ap.add_argument("--speed-T", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    prof = load_profile(args.profile)
    T_max = max(args.T)
    subset = args.test_subset or prof.evaluation.test_subset
    x_test, y_test = load_split(prof.ann.dataset, "test", subset, prof.ann.seed)
    relu_cfg = dataclasses.replace(prof.ann, activation="relu")
    ann_relu, relu_info = trained_ann(relu_cfg)
    x_train = load_split(relu_cfg.dataset, "train", relu_cfg.train_subset, relu_cfg.seed)[0]
    cal = dataclasses.replace(prof.calibration, method="joint", weighting="cosine")
    snn_leaky, _ = calibrated_snn(prof.ann, prof.threshold, cal)
    ann_clip, clip_info = clipped_ann(prof.ann, prof.threshold)
    acc_relu = evaluate_ann(ann_relu, x_test, y_test)
    acc_clip = evaluate_ann(ann_clip, x_test, y_test)
    print(f"profile {prof.name!r}: Net4 on {prof.ann.dataset}, {len(y_test)} test images, T = {args.T}, "
          f"{torch.get_num_threads()} threads")
    print(f"ReLU ANN {100 * acc_relu:.2f}% on these images ({100 * relu_info['test_acc']:.2f}% on the test set); "
          f"Leaky-ReLU ANN after threshold optimisation {100 * acc_clip:.2f}% ({100 * clip_info['test_acc']:.2f}%)")

    sj = import_spikingjelly()
    if sj is None:
        print(INSTALL_HINT)
    relu, leaky = "ReLU Net4", "Leaky-ReLU Net4"
    runs: list[Run] = []
    for label, method in (("99.9th percentile", "percentile"), ("max", "max")):
        th = negspike.activation_thresholds(ann_relu, x_train, method, 99.9)
        runs.append(Run(OURS, relu, label, "none", acc_relu, negspike.convert(ann_relu, th, "if")))
    runs.append(Run(OURS, leaky, "learned (clipping)", "joint-cosine", acc_clip, snn_leaky))
    if sj is not None:
        for mode in args.sj_modes:
            t = time.perf_counter()
            snn = sj_convert(sj, ann_relu, x_train, mode, args.calib_batch)
            label = {"99.9%": "99.9th percentile", "max": "max"}.get(mode.lower(), mode)
            print(f"SpikingJelly {sj[0]} conversion ({mode!r}, {len(x_train)} training images): "
                  f"{time.perf_counter() - t:.1f} s")
            runs.append(Run(f"{SJ} {sj[0]}", relu, label, "none", acc_relu, snn, sj))

    rows = []
    for r in runs:
        desc = f"{r.library}, {r.network}, {r.thresholds}"
        t = time.perf_counter()
        if r.sj is None:
            acc = negspike.simulate(r.snn, x_test, y_test, T_max, batch_size=args.sim_batch, chunk=args.chunk,
                                    device="cpu").accuracy
        else:
            acc = sj_accuracy(r.sj, r.snn, x_test, y_test, T_max, args.sim_batch, args.chunk, f"simulate {desc}")
        print(f"{desc}: T <= {T_max} simulated in {time.perf_counter() - t:.1f} s")
        rows += [{**r.labels, "T": T, "snn_acc": float(acc[T - 1]), "ann_acc": r.ann_acc, "images": len(y_test),
                  "profile": prof.name} for T in args.T]
    acc_df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(acc_df, args.out / "peers.csv")

    # Speed: images per second at T = speed_T on the same batch, same threads.
    xb = x_test[: args.batch]
    speed = []
    with torch.no_grad():
        for r in progress_bar(runs, f"speed at T={args.speed_T}"):
            if r.sj is None:
                for m in r.snn.neurons.values():
                    m.count_spikes = False  # times the dynamics, not simulate's bookkeeping
                modes = {f"chunks of {args.chunk} steps": lambda: ours_predict(r.snn, xb, args.speed_T, args.chunk)}
            else:
                def sj_run(multi: bool) -> Callable[[], torch.Tensor]:
                    steps = lambda: sj_readout(r.sj, r.snn, xb, args.speed_T, args.chunk, multi)  # noqa: E731
                    return lambda: sum(out.sum(0) for out in steps()).argmax(-1)

                modes = {f"multi-step, chunks of {args.chunk} steps": sj_run(True), "single-step": sj_run(False)}
            for mode, fn in modes.items():
                s = median_seconds(wall(fn, torch.device("cpu")), args.repeats)
                speed.append({**r.labels, "mode": mode, "T": args.speed_T, "batch": len(xb),
                              "images_per_s": len(xb) / s, "threads": torch.get_num_threads()})
    speed_df = pd.DataFrame(speed)
    write_table(speed_df, args.out / "peers_speed.csv")

    # Summary
    run = acc_df["library"] + ", " + acc_df["network"] + ", " + acc_df["thresholds"] + ", " + acc_df["calibration"]
    wide = acc_df.assign(run=run).pivot(index="run", columns="T", values="snn_acc").loc[run.unique()]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\nSNN accuracy (%) against T, {len(y_test)} test images "
              f"(ReLU ANN {100 * acc_relu:.2f}%, Leaky-ReLU ANN {100 * acc_clip:.2f}%):")
        print((100 * wide).round(2).to_string())
        print(f"\nImages per second at T = {args.speed_T}, batch {len(xb)}, {torch.get_num_threads()} threads:")
        print(speed_df[["library", "network", "thresholds", "mode", "images_per_s"]].round(1).to_string(index=False))
    relu_speed = speed_df[(speed_df["network"] == relu) & (speed_df["thresholds"] == "99.9th percentile")]
    ours_ips = relu_speed[relu_speed["library"] == OURS]["images_per_s"]
    sj_ips = relu_speed[relu_speed["library"].str.startswith(SJ)].set_index("mode")["images_per_s"]
    if len(ours_ips) and len(sj_ips):
        print(f"ReLU Net4, ours / SpikingJelly images per second: "
              + ", ".join(f"{ours_ips.iloc[0] / v:.2f} (SpikingJelly {m})" for m, v in sj_ips.items()))
    elif sj is None:
        print(INSTALL_HINT)
    print(f"\nwrote {args.out / 'peers.csv'} and {args.out / 'peers_speed.csv'} "
          f"in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
