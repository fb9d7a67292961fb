"""Simulation cost of a converted Net4 as a ratio to T x one ANN forward pass.

Both are measured in this process on the same batch (median of repeated runs after a
warm-up). Usage: python benchmarks/bench_simulation.py [--batch 256] [--T 1 4 8 16 32]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from negspike import activation_thresholds, convert
from negspike.data import synthetic_dataset
from negspike.models import Net4


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--T", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--neuron", default="signed", choices=["signed", "ibt", "if"])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, _ = synthetic_dataset("fmnist", args.batch)
    ann = Net4().eval()
    snn = convert(ann, activation_thresholds(ann, x), args.neuron)
    for m in snn.neurons.values():
        m.count_spikes = False  # the benchmark times the dynamics, not the bookkeeping

    with torch.no_grad():
        ann_s = median_time(lambda: ann(x), args.repeats * 2)

        def run(T):
            snn.reset()
            t0 = 0
            while t0 < T:
                steps = min(args.chunk, T - t0)
                snn(x, steps)
                t0 += steps

        print(f"ANN forward, batch {args.batch}: {ann_s * 1e3:.1f} ms ({args.batch / ann_s:.0f} images/s), "
              f"{torch.get_num_threads()} threads")
        print(f"{'T':>4} {'SNN ms':>9} {'T x ANN ms':>11} {'ratio':>6}")
        for T in args.T:
            s = median_time(lambda: run(T), args.repeats)
            print(f"{T:>4} {s * 1e3:>9.1f} {T * ann_s * 1e3:>11.1f} {s / (T * ann_s):>6.2f}")


if __name__ == "__main__":
    main()
