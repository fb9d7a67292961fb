"""Speed of the book's tracking neurons against the paper's signed neuron (issue 13).

Two workloads, both no-grad with spike counting on, as in ``negspike.simulate``:

* ``layer``: one big spiking layer alone, the shape of Net4's first layer at batch 256
  (``[256, 32, 24, 24]``, channels-last), ``T`` steps in chunks of ``--chunk`` steps;
* ``net4``: ``negspike.simulate`` of a converted Net4 (untrained weights, thresholds from
  the maxima of its activations on ``synthetic_dataset``), each Leaky-ReLU layer's neuron
  built by ``make_neuron`` from the same thresholds, so only the neuron differs.

Each repeat times every neuron kind once, in a rotating order (a shared machine's slow
phases then hit every kind), after one warm-up round. Two clocks: the process's CPU time
(``cpu_ms``; on a machine shared with other jobs it does not count the time the process
waits for a core, so it is the steadier one, with ``--threads 1`` by default) and the wall
clock (``wall_ms``). ``*_ms`` are medians over repeats and ``cpu_ratio``/``wall_ratio`` the
medians of the per-repeat ratios to the paper's neuron (``signed``).
Writes results/bench/neurons.csv. Usage:
python benchmarks/bench_neurons.py [--T 8] [--repeats 7] [--threads 1] [--kinds signed tracking pair]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from bench_simulation import tune_malloc
from negspike import activation_thresholds, convert, simulate
from negspike.data import synthetic_dataset
from negspike.models import Net4
from negspike.neurons import SignedIFNeuron
from negspike.tracking import make_neuron
from negspike.results import write_table

ROOT = Path(__file__).resolve().parents[1]


def layer_runner(kind: str, T: int, chunk: int, batch: int):
    """A callable that runs one Net4-conv1-sized neuron layer for ``T`` steps."""
    neuron = make_neuron(kind, 1.0, -0.1, 0.1, 0.5)
    # Input currents in chunks: a fixed random tensor [chunk * batch, 32, 24, 24], channels-last.
    g = torch.Generator().manual_seed(0)
    cur = (torch.randn(chunk * batch, 32, 24, 24, generator=g) * 0.7).contiguous(memory_format=torch.channels_last)

    def run() -> None:
        neuron.reset()
        for _ in range(T // chunk):
            neuron.set_time(chunk, batch)
            out = neuron(cur)
            del out  # let the next chunk reuse the memory

    return run


def net4_runner(kind: str, T: int, chunk: int, batch: int, x: torch.Tensor, y: torch.Tensor):
    """A callable that simulates Net4 with ``kind`` neurons on ``x`` for ``T`` steps."""
    torch.manual_seed(0)
    ann = Net4().eval()
    snn = convert(ann, activation_thresholds(ann, x, "max"), neuron="signed")
    for name, m in list(snn.net.named_children()):
        if isinstance(m, SignedIFNeuron):
            setattr(snn.net, name, make_neuron(kind, m.theta_p.item(), m.theta_n.item(), m.alpha, 0.5))

    def run() -> None:
        simulate(snn, x, y, T, batch_size=batch, chunk=chunk, device="cpu", progress=False)

    return run


def timed(run) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of one call of ``run``."""
    c0, w0 = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64, help="samples per batch (layer and net4)")
    ap.add_argument("--images", type=int, default=128, help="images simulated in the net4 workload")
    ap.add_argument("--kinds", nargs="+", default=["signed", "tracking", "pair"])
    ap.add_argument("--workloads", nargs="+", default=["layer", "net4"])
    args = ap.parse_args()
    if "signed" not in args.kinds:
        raise SystemExit("--kinds must include 'signed' (the reference of the ratios)")
    tune_malloc()
    torch.set_num_threads(args.threads)
    x, y = synthetic_dataset("fmnist", n=args.images)
    rows = []
    for workload in args.workloads:
        if workload == "layer":
            runners = {k: layer_runner(k, args.T, args.chunk, args.batch) for k in args.kinds}
        else:
            runners = {k: net4_runner(k, args.T, args.chunk, args.batch, x, y) for k in args.kinds}
        for run in runners.values():  # warm-up: thread pool, kernels, output memory
            run()
        times = {k: [] for k in args.kinds}
        for r in range(args.repeats):
            order = args.kinds[r % len(args.kinds):] + args.kinds[: r % len(args.kinds)]
            for k in order:
                times[k].append(timed(runners[k]))
        for k in args.kinds:
            row = {"workload": workload, "neuron": k, "T": args.T, "chunk": args.chunk, "batch": args.batch,
                   "repeats": args.repeats, "threads": args.threads}
            for i, clock in enumerate(("cpu", "wall")):
                ratios = [a[i] / b[i] for a, b in zip(times[k], times["signed"])]
                row[f"{clock}_ms"] = statistics.median(t[i] for t in times[k]) * 1e3
                row[f"{clock}_ratio"] = statistics.median(ratios)
                row[f"{clock}_ratio_min"], row[f"{clock}_ratio_max"] = min(ratios), max(ratios)
            rows.append(row)
            print(f"{workload:6s} {k:9s} cpu {row['cpu_ms']:8.1f} ms, ratio {row['cpu_ratio']:.3f} "
                  f"({row['cpu_ratio_min']:.2f}-{row['cpu_ratio_max']:.2f}); wall {row['wall_ms']:8.1f} ms, "
                  f"ratio {row['wall_ratio']:.3f} ({row['wall_ratio_min']:.2f}-{row['wall_ratio_max']:.2f})",
                  flush=True)
    write_table(pd.DataFrame(rows), ROOT / "results" / "bench" / "neurons.csv")


if __name__ == "__main__":
    main()
