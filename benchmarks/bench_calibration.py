"""Cost of one joint-calibration step of Net4 (T steps forward + BPTT + optimiser step)
as a ratio to T x one ANN forward pass on the same batch.

Usage: python benchmarks/bench_calibration.py [--batch 128] [--T 4 8 10]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from negspike import activation_thresholds, convert
from negspike.calibrate import calibrate_joint
from negspike.data import synthetic_dataset
from negspike.models import Net4
from negspike.threshold import add_clipping


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 10])
    ap.add_argument("--steps", type=int, default=5, help="timed calibration steps per T")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, _ = synthetic_dataset("fmnist", args.batch * (args.steps + 1))
    ann = add_clipping(Net4().eval(), activation_thresholds(Net4().eval(), x[: args.batch])).eval()
    with torch.no_grad():
        ann(x[: args.batch])
        times = []
        for _ in range(10):
            t = time.perf_counter()
            ann(x[: args.batch])
            times.append(time.perf_counter() - t)
    fwd = statistics.median(times)
    print(f"ANN forward, batch {args.batch}: {fwd * 1e3:.1f} ms, {torch.get_num_threads()} threads")
    print(f"{'T':>4} {'step ms':>9} {'T x ANN ms':>11} {'ratio':>6}")
    for T in args.T:
        snn = convert(ann)
        # one warm-up epoch of one batch, then `steps` timed batches (one epoch)
        calibrate_joint(snn, ann, x[: args.batch], T, epochs=1, batch_size=args.batch, progress=False)
        t = time.perf_counter()
        calibrate_joint(snn, ann, x[args.batch :], T, epochs=1, batch_size=args.batch, progress=False)
        step = (time.perf_counter() - t) / args.steps
        print(f"{T:>4} {step * 1e3:>9.1f} {T * fwd * 1e3:>11.1f} {step / (T * fwd):>6.2f}")


if __name__ == "__main__":
    main()
