"""Every ANN-versus-SNN table of the studies compares them on the same images (issue 14)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from negspike import cache
from negspike.experiments import calibration_study, conversion_baselines, threshold_study
from negspike.matched import MATCHED_COLUMNS, curve_rows, pair_rows, summary_row
from negspike.pipeline import clipped_ann, load_split, trained_ann
from negspike.profiles import load_profile
from negspike.train import evaluate_ann

from test_reliability import TINY


@pytest.fixture(scope="module")
def tables(tmp_path_factory, tiny_cache):
    tmp = tmp_path_factory.mktemp("matched")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    prof = load_profile(path)
    old = cache.CACHE_DIR
    cache.CACHE_DIR = tiny_cache
    try:
        out = {f"threshold_{k}": v for k, v in threshold_study(prof, progress=False).items()}
        out.update({f"calibration_{k}": v for k, v in
                    calibration_study(prof, methods=("none", "layerwise", "cosine"), progress=False).items()})
        out["baselines"] = conversion_baselines(prof, progress=False)[0]
        x, y = load_split(prof.ann.dataset, "test", prof.evaluation.test_subset, prof.ann.seed)
        anns = {"clipped": evaluate_ann(clipped_ann(prof.ann, prof.threshold, progress=False)[0], x, y),
                "trained": evaluate_ann(trained_ann(prof.ann, progress=False)[0], x, y)}
        full = {"clipped": clipped_ann(prof.ann, prof.threshold, progress=False)[1]["test_acc"]}
    finally:
        cache.CACHE_DIR = old
    return out, anns, full, len(y)


def test_no_table_pairs_an_snn_with_an_ann_from_other_images(tables):
    out, anns, full, n = tables
    for name, t in out.items():
        snn_cols = [c for c in t.columns if c.startswith("snn_acc")]
        ann_cols = [c for c in t.columns if c.startswith("ann_acc")]
        if not snn_cols:
            continue
        # an SNN accuracy sits next to the ANN on the same images, named ann_acc, and the image count
        assert "ann_acc" in t.columns and "test_images" in t.columns, name
        assert (t["test_images"] == n).all(), name
        # any other ANN accuracy says that it is the whole test set
        assert set(ann_cols) <= {"ann_acc", "ann_acc_all_test"}, (name, ann_cols)
    # and the matched number is the ANN scored on exactly the simulated images
    for name in ("calibration_snn_acc", "calibration_summary"):
        assert out[name]["ann_acc"].eq(anns["clipped"]).all(), name
        assert out[name]["ann_acc_all_test"].eq(full["clipped"]).all(), name
    assert out["baselines"]["ann_acc"].eq(anns["trained"]).all()
    with_opt = out["threshold_snn_acc"].query("threshold_optimisation == 'with'")
    assert with_opt["ann_acc"].eq(anns["clipped"]).all()


def test_tables_carry_uncertainty_and_paired_differences(tables):
    out, *_ = tables
    acc = out["calibration_snn_acc"]
    assert set(MATCHED_COLUMNS) <= set(acc.columns)
    assert ((acc["gap_low"] <= acc["gap"]) & (acc["gap"] <= acc["gap_high"])).all()
    assert (acc["gap"] - (acc["ann_acc"] - acc["snn_acc"])).abs().max() < 1e-12
    pairs = out["calibration_pairs"]
    assert {("cosine", "layerwise"), ("cosine", "none"), ("layerwise", "none")} <= set(zip(pairs["a"], pairs["b"]))
    wide = acc.pivot(index="T", columns="calibration", values="snn_acc")
    for r in pairs.itertuples():
        assert r.diff == pytest.approx(wide.loc[r.T_a, r.a] - wide.loc[r.T_b, r.b])
        assert r.low <= r.diff <= r.high and 0 <= r.p_value <= 1
    s = out["calibration_summary"].set_index("calibration")
    for m, r in s.iterrows():
        if not pd.isna(r["T_within_0.1"]):
            assert r["T_within_0.1_earliest"] <= r["T_within_0.1"]


def test_matched_rows_refuse_mismatched_images():
    sim = {"correct": torch.ones(3, 10, dtype=torch.bool)}
    with pytest.raises(ValueError, match="10"):
        curve_rows(sim, torch.ones(9, dtype=torch.bool))
    with pytest.raises(ValueError, match="different image sets"):
        pair_rows("a", sim, "b", {"correct": torch.ones(3, 11, dtype=torch.bool)}, [1])
    with pytest.raises(ValueError, match="per-image"):
        summary_row({"acc": [0.5]}, torch.ones(10, dtype=torch.bool), [1])


def test_pair_at_finds_the_comparison_and_reading_follows_the_interval():
    import pandas as pd

    from negspike.book import points, pm_format
    from negspike.matched import pair_at, reading

    pairs = pd.DataFrame({"a": ["x", "x", "y"], "b": ["y", "y", "x"], "T_a": [4, 8, 8], "T_b": [4, 8, 8],
                          "diff": [0.02, -0.03, 0.01], "low": [0.01, -0.05, -0.01], "high": [0.03, -0.01, 0.03]})
    assert pair_at(pairs, "x", "y", 8)["diff"] == -0.03
    assert pair_at(pairs, "x", "y", 16) is None and pair_at(pairs.iloc[:0], "x", "y", 4) is None
    assert [reading(r, "x", "y") for _, r in pairs.iterrows()] == ["x better", "y better", "within noise"]
    assert points(0.0125) == "1.25" and points(None) == "–" and points(float("nan")) == "–"
    assert pm_format(400)(0.5) == "50.00 ± 2.50" and pm_format(400)(float("nan")) == "–"


def test_run_times_reads_the_recorded_chapter_times(tmp_path, monkeypatch):
    import pandas as pd

    import negspike.results
    from negspike.book import duration, run_times

    assert (duration(42), duration(294), duration(7200)) == ("42 s", "4.9 min", "2.0 h")
    monkeypatch.setattr(negspike.results, "RESULTS_DIR", tmp_path)
    assert "No earlier" in run_times("long_tail", "smoke", 3.0)
    (tmp_path / "quick" / "chapter_times").mkdir(parents=True)
    pd.DataFrame({"chapter": ["long_tail"], "seconds": [294.0]}).to_csv(
        tmp_path / "quick" / "chapter_times" / "long_tail.csv", index=False)
    text = run_times("long_tail", "smoke", 3.0)
    assert "took 3 s" in text and "`quick` 4.9 min" in text and "No earlier" not in text
