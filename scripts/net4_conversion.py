"""Train a Leaky-ReLU Net4 on Fashion-MNIST, convert it with max-based thresholds, no
calibration, and report SNN accuracy at several T for the signed and the IBT neuron.

Settings come from a profile (profiles/<name>.yaml); flags override single values.
Usage: python scripts/net4_conversion.py [--profile quick] [--T-max 256] [--test-subset 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from negspike import activation_thresholds, convert, simulate
from negspike.pipeline import ANNConfig, load_split, trained_ann
from negspike.profiles import load_profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--T-max", type=int, help="longest simulation (default: the profile's)")
    ap.add_argument("--test-subset", type=int, help="test images to simulate, 0 for all (default: the profile's)")
    ap.add_argument("--out", type=Path, help="output folder (default: results/<profile>)")
    args = ap.parse_args()
    prof = load_profile(args.profile)
    T_max = args.T_max or prof["T_max"]
    test_subset = prof["test_subset"] if args.test_subset is None else (args.test_subset or None)
    out_dir = args.out or Path("results") / prof["profile"]

    cfg = ANNConfig(dataset=prof["dataset"], alpha=prof["alpha"], epochs=prof["epochs"], lr=prof["lr"],
                    batch_size=prof["batch_size"], train_subset=prof["train_subset"], seed=prof["seed"])
    ann, info = trained_ann(cfg)
    x_train, _ = load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed)
    x_test, y_test = load_split(cfg.dataset, "test", test_subset, cfg.seed)
    th = activation_thresholds(ann, x_train, "max")
    print(f"ANN test accuracy: {info['test_acc']:.4f}")
    for name, t in th.items():
        print(f"  {name}: theta_p={t.theta_p:.4f} theta_n={t.theta_n:.4f}")
    rows, rates = [], []
    for neuron in ("signed", "ibt"):
        res = simulate(convert(ann, th, neuron), x_test, y_test, T_max, chunk=16)
        for T in range(1, T_max + 1):
            rows.append({"dataset": cfg.dataset, "model": cfg.model, "neuron": neuron, "thresholds": "max",
                         "calibration": "none", "T": T, "ann_acc": info["test_acc"], "snn_acc": res.at(T),
                         "seed": cfg.seed, "profile": prof["profile"]})
        layer = res.layers.assign(neuron=neuron, T_max=T_max, synops_per_image=res.synops_per_image,
                                  ann_macs_per_image=res.ann_macs_per_image)
        rates.append(layer)
        print(f"{neuron}: simulated {res.images} images x {T_max} steps in {res.seconds:.0f} s")
        print(res.layers.to_string(index=False))
    df = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_dir / "net4_conversion.csv", index=False)
    pd.concat(rates).to_csv(out_dir / "net4_conversion_layers.csv", index=False)
    wide = df[df["T"].isin(sorted(set(prof["report_T"] + [4, 8, 10, 16, 32, 64, 128, 256])))].pivot(index="T", columns="neuron", values="snn_acc")
    print(f"\nANN {info['test_acc']:.4f}; SNN accuracy (max thresholds, no calibration):")
    print(wide.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
