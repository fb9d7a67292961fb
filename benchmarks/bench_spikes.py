"""Spike counts and synaptic operations of the profile's trained SNNs at T = 4, 8, 16, 32.

Two SNNs of the profile (default ``quick``; a path to a ``.yaml`` file also works):

* ``converted``: the Leaky-ReLU ANN after threshold optimisation (variance penalty and
  trainable clipping), converted with the signed neuron
  (``negspike.pipeline.converted_snn(prof.ann, prof.threshold)``);
* ``calibrated``: the same after joint calibration with the cosine weighting
  (``negspike.pipeline.calibrated_snn`` with ``method="joint", weighting="cosine"``).

Both come from the step cache (``data/cache``, or ``NEGSPIKE_CACHE``) once the book has
run under the profile; a missing step is built first, which for ``quick`` takes several
minutes (the script says so before it starts).

Each SNN is simulated with ``negspike.simulate`` on the profile's test subset once per T
(a separate run of T steps, so the counts are those of a T-step simulation). Writes
results/bench/spikes.csv, one row per SNN, T and spiking layer: positive and negative
spikes per image (over the T steps), firing rates (spikes per neuron per step), neurons,
and for the whole network its synaptic operations per image (``synops_per_image``: the
first layer's MACs plus spikes times fan-out), the ANN's multiply-accumulates per image
(``ann_macs_per_image``), their ratio, and the SNN's accuracy at T.

Usage: python benchmarks/bench_spikes.py [--profile quick] [--T 4 8 16 32]
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from negspike import simulate
from negspike.cache import CACHE_DIR, cache_path
from negspike.pipeline import calibrated_snn, calibration_key, clip_key, converted_snn, load_split
from negspike.profiles import load_profile
from negspike.results import write_table

ROOT = Path(__file__).resolve().parents[1]


def _missing_steps(prof, cal) -> list[str]:
    """Cache steps (of the chain behind the two SNNs) that are not on disk yet."""
    paths = [cache_path("clip", clip_key(prof.ann, prof.threshold)),
             cache_path("calibration", calibration_key(prof.ann, prof.threshold, cal))]
    return [p.name for p in paths if not p.exists()]


def layer_rows(res, snn_name: str, T: int, prof) -> list[dict]:
    rows = []
    for r in res.layers.to_dict("records"):
        per_image = r["neurons"] * T  # neuron-steps per image
        rows.append({
            "profile": prof.name,
            "dataset": prof.ann.dataset,
            "model": prof.ann.model,
            "snn": snn_name,
            "T": T,
            "layer": r["layer"],
            "neurons": r["neurons"],
            "pos_spikes_per_image": r["pos_rate"] * per_image,
            "neg_spikes_per_image": r["neg_rate"] * per_image,
            "spikes_per_image": r["spikes_per_image"],
            "pos_rate": r["pos_rate"],
            "neg_rate": r["neg_rate"],
            "synops_per_image": res.synops_per_image,
            "ann_macs_per_image": res.ann_macs_per_image,
            "synops_over_macs": res.synops_per_image / res.ann_macs_per_image,
            "snn_acc": res.at(T),
            "images": res.images,
            "seconds": res.seconds,
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick", help="profile name or path to a .yaml profile")
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--batch", type=int, default=128, help="simulation batch size")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "spikes.csv")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    prof = load_profile(args.profile)
    cal = dataclasses.replace(prof.calibration, method="joint", weighting="cosine")
    missing = _missing_steps(prof, cal)
    if missing:
        print(f"note: {', '.join(missing)} not in {CACHE_DIR}: building them first "
              f"(run the book under profile {prof.name!r} to cache them)", flush=True)
    snns = {
        "converted": lambda: converted_snn(prof.ann, prof.threshold, progress=False)[1],
        "calibrated": lambda: calibrated_snn(prof.ann, prof.threshold, cal, progress=False)[0],
    }
    x, y = load_split(prof.ann.dataset, "test", prof.evaluation.test_subset, prof.ann.seed)
    rows = []
    for name, make in snns.items():
        snn = make()
        for T in args.T:
            res = simulate(snn, x, y, T, batch_size=args.batch, progress=False)
            rows += layer_rows(res, name, T, prof)
            print(f"{name:>10} T={T:<3} acc {res.at(T):.4f}  synops/image {res.synops_per_image:,.0f} "
                  f"({res.synops_per_image / res.ann_macs_per_image:.2f} x ANN MACs)  {res.seconds:.1f} s",
                  flush=True)
    df = pd.DataFrame(rows)
    df["pos/neg"] = [f"{p:,.0f} / {n:,.0f}" for p, n in zip(df.pos_spikes_per_image, df.neg_spikes_per_image)]
    show = df.pivot(index=["snn", "T"], columns="layer", values="pos/neg")
    show = show.reindex(columns=list(dict.fromkeys(df.layer))).reindex(list(snns), level=0)
    df = df.drop(columns="pos/neg")
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(f"\npositive / negative spikes per image ({prof.name}, {len(y)} test images)\n{show}")
    path = write_table(df.round(6), args.out)
    print(f"\nwrote {path} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
