"""Run one of the book's studies under a profile and write its tables to results/<profile>/.

  conversion   trained ANN, max thresholds, signed and IBT neurons, no calibration
  threshold    variance penalty + trainable clipping, with/without (paper's Table 4)
  calibration  none / layer-wise / joint with three weightings (Fig. 3, Table 5)
  cifar        VGG-16 and ResNet-18 on CIFAR-10: two-stage against proposed (Tables 2, 3);
               needs a profile with a 'cifar' section (cifar-cpu, paper, smoke)

Usage: python scripts/run_study.py STUDY [--profile quick] [--T-max N] [--test-subset N|0]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from negspike.experiments import calibration_study, cifar_study, conversion_baselines, threshold_study
from negspike.profiles import ProfileError, load_profile
from negspike.results import write_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=["conversion", "threshold", "calibration", "cifar"])
    ap.add_argument("--profile", default="quick", help="a profile name or the path to a .yaml profile")
    ap.add_argument("--T-max", type=int, help="longest simulation (default: the profile's)")
    ap.add_argument("--test-subset", type=int, help="test images, 0 for all (default: the profile's)")
    ap.add_argument("--out", type=Path, help="output folder (default: results/<profile>)")
    args = ap.parse_args()
    try:
        prof = load_profile(args.profile)
    except ProfileError as err:
        sys.exit(f"error: {err}")
    ev = prof.evaluation
    if args.T_max:
        ev = replace(ev, T_max=args.T_max)
    if args.test_subset is not None:
        ev = replace(ev, test_subset=args.test_subset or None)
    prof = replace(prof, evaluation=ev)
    if prof.cifar is not None and (args.T_max or args.test_subset is not None):
        prof = replace(prof, cifar=replace(prof.cifar, T_max=args.T_max or prof.cifar.T_max,
                                           test_subset=(args.test_subset or None) if args.test_subset is not None
                                           else prof.cifar.test_subset))
    out = args.out or Path("results") / prof.name
    out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 160)
    start = time.perf_counter()
    report = sorted(set(ev.report_T + (4, 8, 10, 16, 32, 64, 128, 256)))
    report = [t for t in report if t <= ev.T_max]

    if args.study == "conversion":
        acc, rates, ann_acc = conversion_baselines(prof)
        tables = {"conversion_acc": acc, "conversion_rates": rates}
        print(f"ANN test accuracy {ann_acc:.4f}; SNN accuracy (max thresholds, no calibration):")
        print(acc[acc["T"].isin(report)].pivot(index="T", columns="neuron", values="snn_acc").to_string())
        print(rates.to_string(index=False))
    elif args.study == "threshold":
        tables = {f"threshold_{k}": v for k, v in threshold_study(prof).items()}
        print("tail (max|a| / p99|a|) and thresholds per layer\n", tables["threshold_layers"].to_string(index=False))
        print("\nANN accuracy after each step\n", tables["threshold_ann_acc"].to_string(index=False))
        r = tables["threshold_firing_rates"]
        print("\nfiring rate per layer (spikes per neuron per step)\n",
              r.pivot(index="layer", columns="threshold_optimisation", values="rate").to_string())
        a = tables["threshold_snn_acc"]
        print("\nSNN accuracy\n", a[a["T"].isin(report)].pivot(index="T", columns="threshold_optimisation",
                                                              values="snn_acc").to_string())
    elif args.study == "cifar":
        if prof.cifar is None:
            sys.exit(f"error: profile {prof.name!r} has no 'cifar' section; use cifar-cpu, paper or smoke")
        tables = {f"cifar10_{k}": v for k, v in cifar_study(prof).items()}
        print(tables["cifar10_ann_acc"].to_string(index=False))
        print(tables["cifar10_summary"].to_string(index=False))
        print(tables["cifar10_seconds"].to_string(index=False))
    else:
        tables = {f"calibration_{k}": v for k, v in calibration_study(prof).items()}
        a = tables["calibration_snn_acc"]
        print(a[a["T"].isin(report)].pivot(index="T", columns="calibration", values="snn_acc").to_string())
        print(tables["calibration_summary"].to_string(index=False))
    for name, df in tables.items():
        write_table(df, out / f"{name}.csv")
    print(f"\n{args.study} study, profile {prof.name}: {time.perf_counter() - start:.0f} s; tables in {out}/")


if __name__ == "__main__":
    main()
