"""Figures of the chapter "Performance: speed, memory, spikes and a peer" (``book/performance.ipynb``),
and the bookkeeping that finds its benchmark tables: ``results/bench/`` when ``make bench`` wrote
them, else a small run of the same scripts that the chapter makes itself."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..plots import COLORS, FIG_WIDTH, METHOD_COLORS
from ..results import RESULTS_DIR

__all__ = ["FILES", "bench_tables", "small_run", "machine", "run_label", "steps_within", "simulation", "calibration",
           "spikes", "peer_color", "peers_accuracy", "peers_speed"]

#: The benchmark tables the chapter reads, ``<name>.csv`` each.
FILES = ("simulation", "calibration", "spikes", "peers", "peers_speed")
ROOT = RESULTS_DIR.parent


def small_run(out: Path, profile: str) -> None:
    """The benchmark scripts at a small size (seconds each), for when `make bench` has not run."""
    py = [sys.executable]
    runs = [
        ["benchmarks/bench_simulation.py", "--T", "1", "4", "8", "--repeats", "3", "--batch", "64",
         "--vgg-batch", "16", "--vgg-width", "0.125", "--no-memory", "--out", str(out / "simulation.csv")],
        ["benchmarks/bench_calibration.py", "--T", "4", "8", "--steps", "2", "--batch", "32", "--no-memory",
         "--out", str(out / "calibration.csv")],
        ["benchmarks/bench_spikes.py", "--profile", profile, "--T", "4", "8", "--out", str(out / "spikes.csv")],
        ["benchmarks/bench_peers.py", "--profile", profile, "--T", "4", "8", "16", "--test-subset", "256",
         "--repeats", "2", "--batch", "64", "--out", str(out)],
    ]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    for args in runs:
        res = subprocess.run(py + args, cwd=ROOT, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def bench_tables(profile: str) -> tuple[dict[str, pd.DataFrame], str]:
    """The benchmark tables (:data:`FILES`) and a sentence on where they came from: ``results/bench/``
    when `make bench` wrote all of them, else a small run in ``results/<profile>/bench-small/``, made
    again only when a benchmark script or library file (this module included) is newer than it."""
    bench = RESULTS_DIR / "bench"
    if all((bench / f"{f}.csv").exists() for f in FILES):
        source = f"`make bench` (tables in `{bench.relative_to(ROOT)}/`)"
    else:
        bench = RESULTS_DIR / profile / "bench-small"
        # make test runs the chapter twice: the second run reuses the first's small run.
        code = [p for d in ("benchmarks", "lib/negspike") for p in (ROOT / d).glob("*.py")] + [Path(__file__)]
        code_time = max(p.stat().st_mtime for p in code)
        done = [bench / f"{f}.csv" for f in FILES]
        if not all(p.exists() and p.stat().st_mtime > code_time for p in done):
            small_run(bench, profile)
        source = (f"a small run made by this chapter (`make bench` has not been run here; tables in "
                  f"`{bench.relative_to(ROOT)}/`): small batches, few repeats, no memory measurement")
    return {f: pd.read_csv(bench / f"{f}.csv") for f in FILES}, source


def machine(sim: pd.DataFrame) -> str:
    """The machine the simulation benchmark ran on, in words (CPU, cores, threads, torch; or the device)."""
    if sim["device"].iloc[0] != "cpu":
        return f"device {sim['device'].iloc[0]}"
    return (f"{platform.machine()} CPU, {os.cpu_count()} cores, {int(sim['threads'].iloc[0])} PyTorch threads, "
            f"torch {sim['torch'].iloc[0]}")


def run_label(lib: str, net: str, th: str, calib: str) -> str:
    """One converted network of the peers table in words: ``'negspike: ReLU Net4, max'``."""
    return f"{lib}: {net}, {th}" + ("" if calib == "none" else f", {calib}")


def steps_within(peers: pd.DataFrame, tol: float = 0.01) -> dict[tuple[str, str, str, str], int | None]:
    """Per run (library, network, thresholds, calibration): the smallest simulated T at which its
    accuracy is within ``tol`` of its own ANN's on the same images, or None if no T gets there."""
    need = {}
    for key, g in peers.groupby(["library", "network", "thresholds", "calibration"], sort=False):
        ok = g[g["snn_acc"] >= g["ann_acc"] - tol].sort_values("T")
        need[key] = int(ok["T"].iloc[0]) if len(ok) else None
    return need


def _log_T_axis(ax: plt.Axes, Ts) -> None:
    """A log T axis with a tick, labelled plainly, at every simulated T."""
    Ts = sorted(Ts)
    ax.set(xscale="log", xticks=Ts)
    ax.set_xticklabels([str(t) for t in Ts])


def simulation(sim: pd.DataFrame) -> Figure:
    """Time to simulate T steps over T ANN forward passes, one line per model and batch."""
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.9))
    for (model, batch), g in sim.groupby(["model", "batch"]):
        g = g.sort_values("T")
        ax.plot(g["T"], g["ratio"], "o-", label=f"{model}, batch {batch}")
    ax.axhline(1.0, color=COLORS["ann"], ls=":", lw=1.2, label="T x ANN forward")
    ax.axhline(1.3, color=COLORS["ann"], ls="--", lw=1.2, label="1.3 x T x ANN forward")
    _log_T_axis(ax, sim["T"].unique())
    ax.set(xlabel="time steps T", ylabel="SNN time / (T x ANN forward)", title="Cost of simulating T steps")
    ax.legend()
    return fig


def calibration(cal: pd.DataFrame) -> Figure:
    """One joint-calibration step's time against T ANN forward passes and against T ANN training steps."""
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.6))
    c = cal.sort_values("T")
    x = np.arange(len(c))
    ax.bar(x - 0.2, c["ratio"], 0.4, color="0.35", label="vs T x ANN forward")
    ax.bar(x + 0.2, c["train_ratio"], 0.4, color="0.7", label="vs T x ANN training step")
    ax.set(xticks=x, xlabel="time steps T", ylabel="calibration step time / reference",
           title=f"One joint-calibration step, Net4, batch {int(c['batch'].iloc[0])}")
    ax.set_xticklabels([str(t) for t in c["T"]])
    ax.legend()
    return fig


def spikes(sp: pd.DataFrame) -> Figure:
    """Positive (up) and negative (down) spikes per image in each layer, one panel per SNN, one bar per T."""
    Ts = sorted(sp["T"].unique())
    fig, axes = plt.subplots(1, len(sp["snn"].unique()), figsize=(FIG_WIDTH, 4.0), sharey=True, squeeze=False)
    for ax, (snn_name, g) in zip(axes[0], sp.groupby("snn", sort=False)):
        layers = list(dict.fromkeys(g["layer"]))
        width = 0.8 / len(Ts)
        for i, T in enumerate(Ts):
            gt = g[g["T"] == T].set_index("layer").loc[layers]
            xs = np.arange(len(layers)) + (i - (len(Ts) - 1) / 2) * width
            alpha = 0.4 + 0.6 * (i + 1) / len(Ts)
            ax.bar(xs, gt["pos_spikes_per_image"], width, color=COLORS["positive"], alpha=alpha,
                   label=f"positive, T = {T}")
            ax.bar(xs, -gt["neg_spikes_per_image"], width, color=COLORS["negative"], alpha=alpha,
                   label=f"negative, T = {T}")
        ax.axhline(0, color="black", lw=0.6)
        ax.set(xticks=np.arange(len(layers)), title=snn_name, xlabel="layer")
        ax.set_xticklabels(layers)
    axes[0][0].set_ylabel("spikes per image (negative below 0)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=len(Ts), fontsize=9.5)
    fig.suptitle("Positive and negative spikes per image, Net4")
    return fig


def peer_color(lib: str, net: str, calib: str):
    """One colour per method: SpikingJelly, our IF conversion of the ReLU Net4, our calibrated Leaky-ReLU Net4."""
    if lib != "negspike":
        return METHOD_COLORS["spikingjelly"]
    if net.startswith("Leaky"):
        return METHOD_COLORS["cosine" if calib != "none" else "none"]
    return METHOD_COLORS["if"]


def peers_accuracy(peers: pd.DataFrame) -> Figure:
    """Accuracy against T of every converted Net4 (colour: method, line style: threshold rule), with each
    network's ANN accuracy as a dotted line."""
    th_style = {}  # one line style per threshold rule
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 4.6))
    for (lib, net, th, calib), g in peers.groupby(["library", "network", "thresholds", "calibration"], sort=False):
        g = g.sort_values("T")
        ls = th_style.setdefault(th, ("-", "--", "-.", ":")[len(th_style) % 4])
        ax.plot(g["T"], 100 * g["snn_acc"], ls, marker="o", ms=3.5, color=peer_color(lib, net, calib),
                label=run_label(lib, net, th, calib))
    for i, (net, g) in enumerate(peers.groupby("network")):
        ax.axhline(100 * g["ann_acc"].iloc[0], color=COLORS["ann"], lw=1.1, ls=(0, (1, 2 + 2 * i)),
                   label=f"ANN, {net} ({100 * g['ann_acc'].iloc[0]:.2f}%)")
    _log_T_axis(ax, peers["T"].unique())
    ax.set(xlabel="time steps T", ylabel="test accuracy (%)",
           title=f"Converted Net4 on {int(peers['images'].iloc[0])} test images")
    ax.minorticks_off()
    ax.set_ylim(max(0, 100 * peers["snn_acc"].min() - 5), 100)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, fontsize=9.5)
    return fig


def peers_speed(speed: pd.DataFrame) -> Figure:
    """Images per second of each library's simulation at one T and batch, one bar per run."""
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.9 + 0.45 * len(speed)))
    labels = [f"{r.library}: {r.network}, {r.thresholds}" + (f" ({r.mode})" if r.library != "negspike" else "")
              for r in speed.itertuples()]
    colors = [peer_color(r.library, r.network, getattr(r, "calibration", "none")) for r in speed.itertuples()]
    ax.barh(np.arange(len(speed)), speed["images_per_s"], color=colors)
    ax.set(yticks=np.arange(len(speed)), xlabel="images per second",
           title=f"Simulation speed at T = {int(speed['T'].iloc[0])}, batch {int(speed['batch'].iloc[0])}")
    ax.set_yticklabels(labels, fontsize=9.5)
    ax.invert_yaxis()
    return fig
