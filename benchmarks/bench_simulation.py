"""Simulation cost of converted SNNs as a ratio to T x one ANN forward pass, and peak memory.

Models: Net4 (Fashion-MNIST shape, batch 256) and VGG-16 at reduced width (CIFAR-10
shape, batch 64, batch norm set from the batch and folded by ``convert``). Inputs are
``negspike.data.synthetic_dataset`` batches; weights are untrained, thresholds are the
maxima of the ANN's activations on the batch (the dense work does not depend on them).

Timing (median of ``--repeats`` runs after one warm-up run, all in this process):

* ``ann_ms``: one ANN forward pass (eval, no grad) in its *fastest* memory format; both
  NCHW (``ann_contiguous_ms``) and channels-last (``ann_channels_last_ms``) are timed first,
  since channels-last convolutions are much faster on this CPU. ``ann_ms`` itself is the
  median of forward passes of the faster one that alternate with the SNN runs of the row
  (a shared machine's slow phases then hit both sides of the ratio).
* ``snn_ms``: ``negspike.simulate`` for ``T`` steps in chunks of ``--chunk`` steps, per
  batch: its own clock (``SimulationResult.seconds``: neurons, spike counting and readout,
  without the one-off fan-out count per call) over ``--sim-batches`` copies of the batch,
  divided by their number. A call allocates the neurons' output memory on its first batch
  and reuses it for the others, as it does over a test set.
* ``dynamics_ms``: the same chunks through ``SNN.forward`` alone, one batch, spike counting
  off, output memory kept from the previous run (the steady state).
* ``ratio = snn_ms / (T * ann_ms)``, ``dynamics_ratio = dynamics_ms / (T * ann_ms)``.

Unless ``--default-malloc``, glibc's heap thresholds are fixed first (``tune_malloc``;
column ``malloc``), so that neither network's time depends on page faults caused by the
order of earlier allocations.

Peak memory (``peak_mem_mb``, ``ann_peak_mem_mb``): each configuration runs once more in a
fresh child process (multiprocessing ``spawn``, glibc's default heap settings) that builds
the model and input, runs a 1-image warm-up (so that the thread pool and oneDNN's kernels
exist), returns freed heap memory to the system (``malloc_trim``), then resets the
kernel's peak-RSS mark (``/proc/self/clear_refs``) and reads ``VmRSS``; the figure is
``VmHWM`` after one ``simulate`` call (one ANN forward for the ANN) minus that ``VmRSS``:
the extra resident memory the run needed on top of the model and its input. Where
``clear_refs`` is not writable it falls back to the growth of ``ru_maxrss`` (a lower
bound). On CUDA it is ``torch.cuda.max_memory_allocated`` minus the allocation before.

Writes results/bench/simulation.csv (one row per model and T). Usage:
python benchmarks/bench_simulation.py [--models net4 vgg16] [--T 1 4 8 16 32] [--repeats 5]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import ctypes
import gc
import multiprocessing
import platform
import resource
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from negspike import activation_thresholds, convert, simulate
from negspike.data import synthetic_dataset
from negspike.models import Net4, vgg16
from negspike.results import write_table
from negspike.utils import memory_format_for, select_device

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def format_name(fmt: torch.memory_format) -> str:
    return "channels_last" if fmt == torch.channels_last else "contiguous"


# ---------------------------------------------------------------------------
# Timing and memory helpers (bench_calibration.py imports them)
# ---------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(measure, repeats: int) -> float:
    """Median of ``repeats`` calls of ``measure()`` (which returns seconds), after one warm-up call."""
    measure()
    return statistics.median(measure() for _ in range(repeats))


def interleaved(measure_a, measure_b, repeats: int) -> tuple[float, list[float]]:
    """Median of ``repeats`` calls of ``measure_a`` and the list of as many ``measure_b``
    results, the calls alternating (after one warm-up call of each)."""
    measure_a()
    measure_b()
    a, b = [], []
    for _ in range(repeats):
        a.append(measure_a())
        b.append(measure_b())
    return statistics.median(a), b


def wall(fn, device: torch.device):
    """A measure: the wall time of ``fn()``, synchronised on CUDA."""

    def measure() -> float:
        synchronize(device)
        t = time.perf_counter()
        fn()
        synchronize(device)
        return time.perf_counter() - t

    return measure


def tune_malloc() -> bool:
    """Ask glibc to keep freed heap memory (mmap threshold 32 MiB, trim threshold 1 GiB).

    By default glibc adapts both thresholds as blocks are freed, so whether a forward pass
    refills its 19 MB activations from kept memory or takes ~10^4 page faults depends on
    the order of earlier allocations: the same channels-last Net4 forward then takes 30 or
    50 ms. With fixed thresholds neither the ANN nor the SNN pays such faults, which gives
    the ANN its best time. Returns False where this is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def _proc_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_peak_mb(fn, device: torch.device) -> float:
    """Extra peak memory (MiB) of ``fn()`` over what the process holds before it (see module doc)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory kept by the heap leaves RSS
    except (OSError, AttributeError):
        pass
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _proc_kb("VmRSS")
        reset = before is not None
    except OSError:
        reset = False
    if not reset:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = _proc_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, after - before) / 1024


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a new spawned interpreter (so that its peak memory is its own)."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def build(model: str, batch: int, opts: dict):
    """ANN (eval), converted SNN (BN folded, spike counting on) and a synthetic batch ``x, y``."""
    torch.manual_seed(0)
    if model == "net4":
        x, y = synthetic_dataset("fmnist", batch)
        ann = Net4().eval()
    elif model == "vgg16":
        x, y = synthetic_dataset("cifar10", batch)
        ann = vgg16(width=opts["vgg_width"])
        # Batch-norm statistics of this batch (instead of the trivial initial ones), so that
        # the activations and spike counts have a realistic scale; convert folds them.
        for m in ann.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
        with torch.no_grad():
            ann.train()(x)
        ann.eval()
    else:
        raise ValueError(f"unknown model {model!r}; choose 'net4' or 'vgg16'")
    snn = convert(ann, activation_thresholds(ann, x), opts["neuron"])
    return ann, snn, x, y


def snn_format(x: torch.Tensor, choice: str) -> torch.memory_format:
    return memory_format_for(x) if choice == "auto" else FORMATS[choice]


def run_chunks(snn, x: torch.Tensor, T: int, chunk: int) -> None:
    snn.reset()
    t0 = 0
    while t0 < T:
        steps = min(chunk, T - t0)
        snn(x, steps)
        t0 += steps


def _set_threads(opts: dict) -> None:
    torch.set_num_threads(opts["threads"])


def peak_child(kind: str, model: str, batch: int, T: int, opts: dict) -> float:
    """Child process: extra peak memory (MiB) of one ANN forward (``kind="ann"``, in format
    ``opts["ann_format"]``) or of one ``simulate`` call for ``T`` steps (``kind="snn"``)."""
    _set_threads(opts)
    device = select_device(opts["device"])
    ann, snn, x, y = build(model, batch, opts)
    with torch.no_grad():
        if kind == "ann":
            fmt = FORMATS[opts["ann_format"]]
            ann = ann.to(device, memory_format=fmt)
            x = x.to(device).contiguous(memory_format=fmt)
            ann(x[:1])
            return run_peak_mb(lambda: ann(x), device)
        fmt = snn_format(x, opts["snn_format"])
        snn = snn.to(device, memory_format=fmt)
        x = x.to(device).contiguous(memory_format=fmt)
        simulate(snn, x[:1], y[:1], 1, chunk=opts["chunk"], device=device, progress=False)
        return run_peak_mb(
            lambda: simulate(snn, x, y, T, batch_size=batch, chunk=opts["chunk"], device=device, progress=False),
            device,
        )


def bench_model(model: str, batch: int, args, opts: dict) -> list[dict]:
    device = select_device(args.device)
    ann, snn, x, y = build(model, batch, opts)
    x, y = x.to(device), y.to(device)
    ann_ms = {}
    anns = {}
    with torch.no_grad():
        for name, fmt in FORMATS.items():
            a = copy.deepcopy(ann).to(device, memory_format=fmt)
            xf = x.contiguous(memory_format=fmt)
            anns[name] = (a, xf)
            ann_ms[name] = median_seconds(wall(lambda: a(xf), device), args.repeats * 2) * 1e3
    ann_fmt = min(ann_ms, key=ann_ms.get)
    fast_ann, x_ann = anns[ann_fmt]
    del anns
    fmt = snn_format(x, args.snn_format)
    snn = snn.to(device, memory_format=fmt)
    xs = x.contiguous(memory_format=fmt)
    k = args.sim_batches
    x_k, y_k = xs.repeat(k, *([1] * (xs.dim() - 1))), y.repeat(k)
    print(f"\n{model}, batch {batch}: ANN forward {ann_ms['contiguous']:.1f} ms (NCHW), "
          f"{ann_ms['channels_last']:.1f} ms (channels-last); SNN in {format_name(fmt)}, chunks of {args.chunk}")
    ann_peak = None if args.no_memory else in_fresh_process(
        peak_child, "ann", model, batch, 1, {**opts, "ann_format": ann_fmt})
    print(f"{'T':>4} {'SNN ms':>9} {'dyn ms':>9} {'T x ANN ms':>11} {'ratio':>6} {'dyn ratio':>9} {'peak MiB':>9}")
    ann_forward = wall(lambda: fast_ann(x_ann), device)
    rows = []
    for T in args.T:

        def sim() -> float:
            return simulate(snn, x_k, y_k, T, batch_size=batch, chunk=args.chunk, device=device,
                            progress=False).seconds / k

        # ANN forward passes alternate with the SNN runs, so that slow phases of a shared
        # machine hit both; the ratio uses the median ANN time measured for this T.
        snn_s, ann_a = interleaved(sim, ann_forward, args.repeats)
        snn.to(memory_format=fmt)  # simulate hands the SNN back in NCHW
        with torch.no_grad():
            for m in snn.neurons.values():
                m.count_spikes = False
            dyn_s, ann_b = interleaved(wall(lambda: run_chunks(snn, xs, T, args.chunk), device), ann_forward,
                                       args.repeats)
            for m in snn.neurons.values():
                m.count_spikes = True
        ann_t = statistics.median(ann_a + ann_b) * 1e3
        peak = None if args.no_memory else in_fresh_process(peak_child, "snn", model, batch, T, opts)
        base = T * ann_t
        row = {
            "model": model if model == "net4" else f"vgg16-w{opts['vgg_width']:g}",
            "batch": batch,
            "T": T,
            "chunk": args.chunk,
            "neuron": args.neuron,
            "snn_ms": snn_s * 1e3,
            "dynamics_ms": dyn_s * 1e3,
            "ann_ms": ann_t,
            "ratio": snn_s * 1e3 / base,
            "dynamics_ratio": dyn_s * 1e3 / base,
            "ann_memory_format": ann_fmt,
            "ann_contiguous_ms": ann_ms["contiguous"],
            "ann_channels_last_ms": ann_ms["channels_last"],
            "memory_format": format_name(fmt),
            "peak_mem_mb": peak,
            "ann_peak_mem_mb": ann_peak,
            "threads": torch.get_num_threads(),
            "malloc": opts["malloc"],
            "device": str(device),
            "repeats": args.repeats,
            "sim_batches": k,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
        }
        rows.append(row)
        pk = "-" if peak is None else f"{peak:.0f}"
        print(f"{T:>4} {row['snn_ms']:>9.1f} {row['dynamics_ms']:>9.1f} {base:>11.1f} {row['ratio']:>6.2f} "
              f"{row['dynamics_ratio']:>9.2f} {pk:>9}")
    if ann_peak is not None:
        print(f"ANN forward peak memory: {ann_peak:.0f} MiB")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["net4", "vgg16"], choices=["net4", "vgg16"])
    ap.add_argument("--batch", type=int, default=256, help="Net4 batch")
    ap.add_argument("--vgg-batch", type=int, default=64)
    ap.add_argument("--vgg-width", type=float, default=0.25, help="channel-width factor of VGG-16")
    ap.add_argument("--T", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--chunk", type=int, default=4, help="time steps per SNN call (negspike.simulate's default)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sim-batches", type=int, default=4, help="batches per timed simulate call")
    ap.add_argument("--neuron", default="signed", choices=["signed", "ibt", "if"])
    ap.add_argument("--snn-format", default="auto", choices=["auto", *FORMATS],
                    help="memory format of the SNN (auto: negspike.utils.memory_format_for, as simulate uses)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's adaptive heap thresholds alone (see tune_malloc)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "simulation.csv")
    args = ap.parse_args()
    opts = {"threads": args.threads, "neuron": args.neuron, "chunk": args.chunk, "vgg_width": args.vgg_width,
            "device": args.device, "snn_format": args.snn_format,
            "malloc": "default" if args.default_malloc or not tune_malloc() else "tuned"}
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = []
    for model in args.models:
        rows += bench_model(model, args.batch if model == "net4" else args.vgg_batch, args, opts)
    path = write_table(pd.DataFrame(rows).round(4), args.out)
    print(f"\nwrote {path} ({time.perf_counter() - start:.0f} s, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
