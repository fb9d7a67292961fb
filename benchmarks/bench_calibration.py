"""Cost of one joint-calibration step of Net4 (T steps forward + BPTT + Adam step) as a
ratio to T x one ANN forward pass on the same batch, and its peak memory.

The ANN is Net4 with trainable clipping (what calibration is run against), thresholds
from the batch; its SNN is converted with the learned thresholds.

* ``step_ms``: median over ``--steps`` calls of ``calibrate_joint`` on exactly one batch
  (one optimiser step, including the call's small set-up: hooks, a fresh Adam), after a
  warm-up call; the SNN is converted once.
* ``ann_ms``: one ANN forward (eval, no grad) in its fastest memory format (NCHW and
  channels-last are both timed first), median of forward passes alternating with the
  calibration steps of the row; ``ratio = step_ms / (T * ann_ms)``.
* ``ann_train_ms``: one ANN training step (forward, backward, Adam) for comparison;
  ``train_ratio = step_ms / (T * ann_train_ms)``.
* ``peak_mem_mb``: extra peak resident memory of one calibration step in a fresh spawned
  process, measured as in bench_simulation.py (peak-RSS mark reset after set-up and a
  1-image warm-up step; ``VmHWM`` minus ``VmRSS``); ``ann_peak_mem_mb`` the same for one
  ANN forward. On CUDA, ``torch.cuda.max_memory_allocated`` instead.

The calibration runs in ``--memory-format`` (default NCHW, as ``negspike.pipeline`` calls it).
glibc's heap thresholds are fixed first unless ``--default-malloc`` (see bench_simulation.py).
Writes results/bench/calibration.csv. Usage:
python benchmarks/bench_calibration.py [--batch 128] [--T 4 8 10] [--steps 5]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from bench_simulation import FORMATS, in_fresh_process, interleaved, median_seconds, run_peak_mb, tune_malloc, wall
from negspike import activation_thresholds, convert
from negspike.calibrate import calibrate_joint
from negspike.data import synthetic_dataset
from negspike.models import Net4
from negspike.results import write_table
from negspike.utils import select_device
from negspike.clipping import add_clipping

ROOT = Path(__file__).resolve().parents[1]


def build(batch: int, opts: dict):
    """Clipped Net4 (eval), a batch ``x`` and the memory format to calibrate in."""
    torch.manual_seed(0)
    x, _ = synthetic_dataset("fmnist", batch)
    net = Net4().eval()
    ann = add_clipping(net, activation_thresholds(net, x)).eval()
    device = select_device(opts["device"])
    fmt = FORMATS[opts["memory_format"]]
    return ann.to(device, memory_format=fmt), x.to(device).contiguous(memory_format=fmt), fmt


def calibration_step(snn, ann, x, T: int) -> None:
    """One joint-calibration step of ``snn`` on the batch ``x``."""
    calibrate_joint(snn, ann, x, T, epochs=1, batch_size=len(x), device=x.device, progress=False)


def peak_child(kind: str, batch: int, T: int, opts: dict) -> float:
    """Child process: extra peak memory (MiB) of one calibration step (``kind="cal"``) or
    one ANN forward in its fastest format (``kind="ann"``)."""
    torch.set_num_threads(opts["threads"])
    device = select_device(opts["device"])
    if kind == "ann":
        ann, x, _ = build(batch, {**opts, "memory_format": opts["ann_format"]})
        with torch.no_grad():
            ann(x[:1])
            return run_peak_mb(lambda: ann(x), device)
    ann, x, fmt = build(batch, opts)
    snn = convert(ann).to(memory_format=fmt)
    calibration_step(snn, ann, x[:1], 1)  # warm-up
    return run_peak_mb(lambda: calibration_step(snn, ann, x, T), device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 10])
    ap.add_argument("--steps", type=int, default=5, help="timed calibration steps per T (median)")
    ap.add_argument("--memory-format", default="contiguous", choices=list(FORMATS))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's adaptive heap thresholds alone")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "calibration.csv")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    malloc = "default" if args.default_malloc or not tune_malloc() else "tuned"
    start = time.perf_counter()
    device = select_device(args.device)
    opts = {"threads": args.threads, "device": args.device, "memory_format": args.memory_format}
    ann, x, fmt = build(args.batch, opts)

    ann_ms = {}
    anns = {}
    with torch.no_grad():
        for name, f in FORMATS.items():
            a = copy.deepcopy(ann).to(memory_format=f)
            xf = x.contiguous(memory_format=f)
            anns[name] = (a, xf)
            ann_ms[name] = median_seconds(wall(lambda: a(xf), device), 10) * 1e3
    ann_fmt = min(ann_ms, key=ann_ms.get)
    fast_ann, x_ann = anns.pop(ann_fmt)
    del anns

    def ann_forward_fn():
        with torch.no_grad():
            fast_ann(x_ann)

    ann_forward = wall(ann_forward_fn, device)

    # One ANN training step (forward, cross-entropy, backward, Adam) in the fastest format.
    a = copy.deepcopy(ann).to(memory_format=FORMATS[ann_fmt]).train()
    xf = x.contiguous(memory_format=FORMATS[ann_fmt])
    y = torch.randint(10, (len(x),), generator=torch.Generator().manual_seed(0)).to(device)
    opt = torch.optim.Adam(a.parameters(), lr=1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(a(xf), y).backward()
        opt.step()

    ann_train_ms = median_seconds(wall(train_step, device), 10) * 1e3
    del a, opt

    ann_peak = None if args.no_memory else in_fresh_process(
        peak_child, "ann", args.batch, 1, {**opts, "ann_format": ann_fmt})
    print(f"Net4 batch {args.batch}: ANN forward {ann_ms['contiguous']:.1f} ms (NCHW), "
          f"{ann_ms['channels_last']:.1f} ms (channels-last); ANN training step {ann_train_ms:.1f} ms; "
          f"calibration in {args.memory_format}, {torch.get_num_threads()} threads")
    print(f"{'T':>4} {'step ms':>9} {'T x ANN ms':>11} {'ratio':>6} {'train ratio':>11} {'peak MiB':>9}")
    rows = []
    snn = convert(ann).to(memory_format=fmt)
    for T in args.T:
        step, ann_runs = interleaved(wall(lambda: calibration_step(snn, ann, x, T), device), ann_forward,
                                     args.steps)
        step *= 1e3
        fwd = statistics.median(ann_runs) * 1e3
        peak = None if args.no_memory else in_fresh_process(peak_child, "cal", args.batch, T, opts)
        row = {
            "model": "net4",
            "batch": args.batch,
            "T": T,
            "step_ms": step,
            "ann_ms": fwd,
            "ratio": step / (T * fwd),
            "ann_train_ms": ann_train_ms,
            "train_ratio": step / (T * ann_train_ms),
            "ann_memory_format": ann_fmt,
            "ann_contiguous_ms": ann_ms["contiguous"],
            "ann_channels_last_ms": ann_ms["channels_last"],
            "memory_format": args.memory_format,
            "peak_mem_mb": peak,
            "ann_peak_mem_mb": ann_peak,
            "threads": torch.get_num_threads(),
            "malloc": malloc,
            "device": str(device),
            "steps": args.steps,
            "torch": torch.__version__,
        }
        rows.append(row)
        pk = "-" if peak is None else f"{peak:.0f}"
        print(f"{T:>4} {step:>9.1f} {T * fwd:>11.1f} {row['ratio']:>6.2f} {row['train_ratio']:>11.2f} "
              f"{pk:>9}")
    if ann_peak is not None:
        print(f"ANN forward peak memory: {ann_peak:.0f} MiB")
    path = write_table(pd.DataFrame(rows).round(4), args.out)
    print(f"\nwrote {path} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
