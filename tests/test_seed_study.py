"""The seed-to-seed spread of the headline rows (issue 14): every seed on the same test images."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from negspike import cache
from negspike.experiments import calibration_study, seed_study, sim_key, study_calibration
from negspike.figures.calibration import seed_table, seed_text
from negspike.pipeline import calibrated_snn, clipped_ann, load_split
from negspike.profiles import ProfileError, load_profile
from negspike.simulate import simulate

from test_reliability import TINY


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_cache):
    tmp = tmp_path_factory.mktemp("seeds")
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "evaluation": {**TINY["evaluation"], "seeds": [3]}}))
    prof = load_profile(path)
    old = cache.CACHE_DIR
    cache.CACHE_DIR = tiny_cache
    try:
        out = seed_study(prof, progress=False)
        base = calibration_study(prof, methods=("none", "cosine"), progress=False)["snn_acc"]
        # seed 3's calibrated SNN, simulated here by hand on the profile's own test images
        run = load_profile(path)
        from dataclasses import replace

        run = replace(run, ann=replace(run.ann, seed=3))
        snn = calibrated_snn(run.ann, run.threshold, study_calibration(run, "cosine"), progress=False)[0]
        x, y = load_split(prof.ann.dataset, "test", prof.evaluation.test_subset, prof.ann.seed)
        by_hand = simulate(snn, x, y, prof.evaluation.T_max, progress=False).accuracy
        clip3 = clipped_ann(run.ann, run.threshold, progress=False)[0]
        clip0 = clipped_ann(prof.ann, prof.threshold, progress=False)[0]
    finally:
        cache.CACHE_DIR = old
    return prof, out, base, by_hand, clip0, clip3


def test_the_profiles_seed_reproduces_the_calibration_study(study):
    prof, out, base, _, _, _ = study
    runs = out["runs"]
    mine = runs[runs["seed"] == prof.ann.seed].set_index(["calibration", "T"])
    theirs = base[base["T"].isin(prof.evaluation.report_T)].set_index(["calibration", "T"])
    for col in ("ann_acc", "snn_acc", "gap", "gap_low", "gap_high", "test_images"):
        pd.testing.assert_series_equal(mine[col].sort_index(), theirs[col].sort_index(), check_names=False)


def test_further_seeds_train_afresh_and_run_on_the_same_images(study):
    prof, out, _, by_hand, clip0, clip3 = study
    runs = out["runs"]
    assert set(runs["seed"]) == {prof.ann.seed, 3}
    w0, w3 = clip0.state_dict(), clip3.state_dict()
    assert any(not torch.equal(w0[k], w3[k]) for k in w0), "seed 3 should train a different network"
    mine = runs[(runs["seed"] == 3) & (runs["calibration"] == "cosine")].set_index("T")["snn_acc"]
    for T, acc in mine.items():  # the study's images are the profile's, not seed 3's own draw
        assert acc == pytest.approx(by_hand[T - 1].item())


def test_the_spread_summarises_the_seeds(study):
    _, out, _, _, _, _ = study
    runs, spread = out["runs"], out["spread"]
    assert (spread["seeds"] == 2).all()
    for r in spread.itertuples():
        vals = runs[(runs["calibration"] == r.calibration) & (runs["T"] == r.T)]["gap"]
        assert r.gap_mean == pytest.approx(vals.mean()) and r.gap_std == pytest.approx(vals.std())
        assert r.gap_min <= r.gap_mean <= r.gap_max
    assert set(out["summary"]["seed"]) == {0, 3} and "T_within_0.1" in out["summary"]


def test_the_profiles_own_seed_keeps_the_cache_key_of_every_other_study():
    prof = load_profile("smoke")
    label = {"any": "snn"}
    plain = sim_key(prof.ann, label, 256, 16)
    assert sim_key(prof.ann, label, 256, 16, images_seed=prof.ann.seed) == plain
    assert sim_key(prof.ann, label, 256, 16, images_seed=prof.ann.seed + 10) != plain


def test_the_seed_text_reports_the_spread_and_says_when_there_is_none(study):
    _, out, _, _, _, _ = study
    text = seed_text(out["spread"], out["runs"], 8)
    r = out["spread"].set_index(["calibration", "T"]).loc[("cosine", 8)]
    assert "Across 2 seeds" in text and f"{100 * r['snn_std']:.2f} points" in text
    assert "uncertain by about 71%" in text  # 1 / sqrt(2 (n - 1)) with n = 2
    at8 = out["runs"][out["runs"]["T"] == 8].pivot(index="seed", columns="calibration", values="snn_acc")
    assert ", ".join(f"{100 * g:+.2f}" for g in at8["cosine"] - at8["none"]) + " points." in text
    one = out["runs"][out["runs"]["seed"] == 0]
    spread1 = out["spread"].assign(seeds=1, snn_std=float("nan"), gap_std=float("nan"), ann_std=float("nan"))
    assert seed_text(spread1, one, 8).startswith("Only one seed")
    assert "nan" not in seed_table(spread1, one, [8]).to_string()


def test_seeds_must_be_distinct(tmp_path, monkeypatch):
    from negspike import profiles

    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    (tmp_path / "p.yaml").write_text("evaluation: {seeds: [1, 1]}\n")
    with pytest.raises(ProfileError, match="distinct"):
        load_profile("p")
