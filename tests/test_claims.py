"""The claims ledger computes each verdict from the results tables (issue 14)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from negspike.claims import (VERDICTS, fashion_mnist_ledger, ledger, side_by_side, t_range, verdict_at_most,
                             verdict_positive)


def test_verdict_rules():
    assert verdict_at_most(0.0005, 0.0009, 0.001) == "reproduced"
    assert verdict_at_most(0.0005, 0.004, 0.001) == "partly"
    assert verdict_at_most(0.002, 0.004, 0.001) == "not reproduced"
    assert verdict_positive([0.01, 0.02], [0.001, 0.005]) == "reproduced"
    assert verdict_positive([0.01, 0.02], [-0.001, 0.005]) == "partly"
    assert verdict_positive([0.01, -0.02], [0.001, -0.03]) == "partly"
    assert verdict_positive([-0.01, 0.0], [-0.02, -0.01]) == "not reproduced"


def curve(gaps, half=0.002, **labels):
    return pd.DataFrame([{**labels, "T": t + 1, "gap": g, "gap_low": g - half, "gap_high": g + half,
                          "ann_acc": 0.92, "snn_acc": 0.92 - g, "test_images": 2000} for t, g in enumerate(gaps)])


def test_t_range_reads_the_interval_of_a_curve():
    c = curve([0.05, 0.02, 0.004, 0.0, -0.001, -0.003], half=0.004)
    assert t_range(c) == (4, 3, 6)  # measured within at 4; plausible from 3; confidently from 6
    assert t_range(curve([0.05, 0.04]))[0] == np.inf


def write(folder, name, frame):
    frame.to_csv(folder / f"{name}.csv", index=False)


def test_ledger_verdicts_follow_the_numbers(tmp_path):
    # cosine reaches the ANN at T = 3 for sure; sigmoid and average only by T = 9-10; none never
    fast, slow = [0.05, 0.01, -0.005] + [-0.005] * 9, [0.05] * 8 + [0.0] * 4
    acc = pd.concat([curve(fast, calibration="cosine"), curve(slow, calibration="sigmoid"),
                     curve(slow, calibration="average"), curve([0.05] * 12, calibration="none"),
                     curve(slow, calibration="layerwise")])
    write(tmp_path, "calibration_snn_acc", acc)
    write(tmp_path, "calibration_summary", pd.DataFrame({"calibration": ["cosine"], "ann_acc_all_test": [0.80]}))
    write(tmp_path, "calibration_pairs", pd.DataFrame({"a": ["cosine"] * 2, "b": ["layerwise"] * 2, "T_a": [4, 10],
                                                       "T_b": [4, 10], "diff": [0.01, -0.002],
                                                       "low": [0.004, -0.006], "high": [0.02, 0.002]}))
    write(tmp_path, "threshold_firing_rates", pd.DataFrame({
        "layer": ["act1", "act2", "act1", "act2"], "threshold_optimisation": ["with", "with", "without", "without"],
        "rate": [0.2, 0.05, 0.1, 0.1]}))
    t = ledger(tmp_path, "test").set_index("claim")
    assert set(t["verdict"]) <= set(VERDICTS)
    v = t["verdict"]
    assert v.filter(like="fewest steps").item() == "reproduced"
    assert v.filter(like="fewer steps than no calibration").item() == "reproduced"
    assert v.filter(like="of its ANN at T = 10").item() == "reproduced"  # gap -0.005 +- 0.002 at T = 10
    assert v.filter(like="layer-wise").item() == "partly"  # ahead at T = 4, behind at T = 10
    assert v.filter(like="firing rate").item() == "partly"  # one layer of two
    assert v.filter(like="paper's accuracy").item() == "not reproduced"  # 80% against 92.72%
    assert v.filter(like="IBT").item() == "not run"
    cifar = t[t.index.str.startswith("CIFAR")]
    assert len(cifar) == 4 and (cifar["verdict"] == "not run").all()
    assert cifar["results"].str.contains("PROFILE=cifar-cpu").all()


def test_cifar_rows_use_the_paired_differences(tmp_path):
    summary = pd.DataFrame([{"model": m, "calibration": "joint", "T": 8, "delta_acc": 0.03, "delta_low": 0.02,
                             "delta_high": 0.04, "snn_acc": 0.7, "ann_acc": 0.73, "test_images": 1000,
                             "profile": "cifar-cpu", "dataset": "cifar10_jpeg", "width": 0.25}
                            for m in ("vgg16", "resnet18")])
    pairs = pd.DataFrame([{"model": m, "a": "joint", "b": "two_stage", "T_a": T, "T_b": T, "diff": d, "low": d - 0.01,
                           "high": d + 0.01} for m, d in (("vgg16", 0.03), ("resnet18", -0.02)) for T in (4, 8)])
    write(tmp_path, "cifar10_summary", summary)
    write(tmp_path, "cifar10_pairs", pairs)
    t = ledger(tmp_path, "x").set_index("claim")["verdict"]
    assert t["CIFAR-10 VGG-16: proposed ahead of two-stage at T = 4 and 8"] == "reproduced"
    assert t["CIFAR-10 ResNet-18: proposed ahead of two-stage at T = 4 and 8"] == "not reproduced"
    assert t.filter(like="VGG-16: proposed within").item() == "not reproduced"  # 3 points against 1.09


def test_neither_reaching_the_ann_is_not_read_as_a_failure(tmp_path):
    rows = []
    for neuron, gaps in (("signed", [0.05] * 6 + [0.0015] * 2), ("ibt", [0.2] * 8)):
        rows.append(curve(gaps, half=0.001, neuron=neuron, thresholds="max", calibration="none", v_init=0.5))
    write(tmp_path, "accuracy_vs_T", pd.concat(rows).assign(method="m"))
    v = ledger(tmp_path, "x").set_index("claim")
    row = v[v.index.str.contains("IBT")].iloc[0]
    assert row["verdict"] == "partly" and "from T = 7" in row["why"]


def test_side_by_side_lays_two_profiles_ledgers_beside_each_other(tmp_path):
    quick, full = tmp_path / "quick", tmp_path / "full"
    for folder, gap in ((quick, 0.004), (full, -0.0005)):  # T = 10: outside 0.1 points under quick, within under full
        folder.mkdir()
        gaps = [0.05] * 9 + [gap] * 3
        write(folder, "calibration_snn_acc", pd.concat([curve(gaps, half=0.0002, calibration=c)
                                                        for c in ("cosine", "none")]))
    write(full, "calibration_seed_spread", pd.DataFrame([{"calibration": "cosine", "T": 10, "seeds": 3,
                                                          "gap_min": -0.002, "gap_max": 0.003, "gap_std": 0.0025}]))
    both = side_by_side({"quick": fashion_mnist_ledger(quick, "quick"), "full": fashion_mnist_ledger(full, "full")})
    row = both.set_index("claim").filter(like="of its ANN at T = 10", axis=0).iloc[0]
    assert row["verdict (quick)"] == "not reproduced" and row["verdict (full)"] == "reproduced"
    assert "gap 0.40" in row["ours (quick)"] and "gap -0.05" in row["ours (full)"]
    assert list(both.columns[:3]) == ["claim", "paper table", "paper"]
    full_row = fashion_mnist_ledger(full, "full").set_index("claim").filter(like="of its ANN at T = 10", axis=0)
    assert "over 3 training seeds the gap is -0.20 to 0.30 (SD 0.25)" in full_row["uncertainty"].item()
    assert "seeds" not in fashion_mnist_ledger(quick, "quick").set_index("claim").filter(
        like="of its ANN at T = 10", axis=0)["uncertainty"].item()
    with pytest.raises(ValueError, match="other claims"):
        side_by_side({"quick": fashion_mnist_ledger(quick, "quick"), "x": fashion_mnist_ledger(quick, "x").iloc[:2]})
