"""Threshold optimisation on Net4: variance-penalty fine-tuning, then trainable clipping.

Reports per layer the tail measure and thresholds before and after the variance penalty,
firing rates of the converted SNN with and without threshold optimisation (the paper's
Table 4), ANN accuracy after each step, and SNN accuracy at several T (signed neuron,
no calibration). Usage: python scripts/threshold_optimisation.py [--profile quick]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from negspike import activation_thresholds, convert, simulate
from negspike.pipeline import ANNConfig, ThresholdConfig, clipped_ann, load_split, trained_ann, variance_finetuned_ann
from negspike.profiles import load_profile
from negspike.threshold import layer_statistics, learned_thresholds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--T-max", type=int, default=32)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    prof = load_profile(args.profile)
    out_dir = args.out or Path("results") / prof["profile"]
    cfg = ANNConfig(dataset=prof["dataset"], alpha=prof["alpha"], epochs=prof["epochs"], lr=prof["lr"],
                    batch_size=prof["batch_size"], train_subset=prof["train_subset"], seed=prof["seed"])
    th_cfg = ThresholdConfig()
    x_train, _ = load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed)
    x_test, y_test = load_split(cfg.dataset, "test", prof["test_subset"], cfg.seed)
    x_stats = x_train[:10000]

    ann, ann_info = trained_ann(cfg)
    vp, vp_info = variance_finetuned_ann(cfg, th_cfg)
    clip, clip_info = clipped_ann(cfg, th_cfg)

    rows = []
    for stage, model in (("trained", ann), ("variance penalty", vp)):
        st = layer_statistics(model, x_stats)
        th = activation_thresholds(model, x_train, "max")
        for name, s in st.items():
            rows.append({"stage": stage, "layer": name, "tail": s["tail"], "theta_p": th[name].theta_p,
                         "theta_n": th[name].theta_n, "thresholds": "max"})
    for name, t in learned_thresholds(clip).items():
        st = layer_statistics(clip, x_stats)[name]
        rows.append({"stage": "clipping", "layer": name, "tail": st["tail"], "theta_p": t.theta_p,
                     "theta_n": t.theta_n, "thresholds": "learned"})
    layers = pd.DataFrame(rows)

    acc = pd.DataFrame([
        {"step": "trained", "ann_acc": ann_info["test_acc"]},
        {"step": "variance penalty", "ann_acc": vp_info["test_acc"]},
        {"step": "clipping", "ann_acc": clip_info["test_acc"]},
    ])

    sims, rates = [], []
    for label, snn in (
        ("without", convert(ann, activation_thresholds(ann, x_train, "max"))),
        ("with", convert(clip)),
    ):
        res = simulate(snn, x_test, y_test, args.T_max, chunk=16)
        for T in range(1, args.T_max + 1):
            sims.append({"dataset": cfg.dataset, "model": cfg.model, "threshold_optimisation": label,
                         "neuron": "signed", "calibration": "none", "T": T, "snn_acc": res.at(T),
                         "ann_acc": (ann_info if label == "without" else clip_info)["test_acc"],
                         "seed": cfg.seed, "profile": prof["profile"]})
        rates.append(res.layers.assign(threshold_optimisation=label))
    sims = pd.DataFrame(sims)
    rates = pd.concat(rates)

    out_dir.mkdir(parents=True, exist_ok=True)
    layers.to_csv(out_dir / "threshold_layers.csv", index=False)
    acc.to_csv(out_dir / "threshold_ann_acc.csv", index=False)
    sims.to_csv(out_dir / "threshold_snn_acc.csv", index=False)
    rates.to_csv(out_dir / "threshold_firing_rates.csv", index=False)

    pd.set_option("display.width", 160)
    print("(a) tail (max|a| / p99|a|) and thresholds per layer\n", layers.to_string(index=False))
    print("\nANN accuracy after each step\n", acc.to_string(index=False))
    print("\n(b) firing rate per layer (spikes per neuron per step)\n",
          rates.pivot(index="layer", columns="threshold_optimisation", values="rate").to_string())
    wanted = [t for t in (4, 8, 10, 16, 32) if t <= args.T_max]
    print("\n(c) SNN accuracy\n", sims[sims["T"].isin(wanted)].pivot(index="T", columns="threshold_optimisation",
                                                                      values="snn_acc").to_string())


if __name__ == "__main__":
    main()
