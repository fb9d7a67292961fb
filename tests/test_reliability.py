"""Reliability of a reproduction (issue 8): determinism, interruption, corrupted caches,
bad parameters, divergence and atomic results files. Small models on synthetic data."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from negspike import cache, convert
from negspike.cache import atomic_save, cached
from negspike.data import load_dataset, synthetic_dataset
from negspike.experiments import calibration_study, threshold_study
from negspike.models import Net4
from negspike.neurons import SignedIFNeuron
from negspike.pipeline import ANNConfig, trained_ann
from negspike.profiles import ProfileError, load_profile
from negspike.results import write_table
from negspike.simulate import simulate
from negspike.threshold import Thresholds
from negspike.train import DivergenceError, train_ann

ROOT = Path(__file__).resolve().parents[1]


TINY = {  # the smoke profile's steps at a tenth of its sizes, on synthetic data (no download)
    "ann": {"dataset": "synthetic_fmnist", "epochs": 1, "train_subset": 512, "alpha": 0.1, "seed": 0},
    "threshold": {"vp_epochs": 1, "clip_epochs": 1},
    "calibration": {"epochs": 1, "subset": 128, "T": [4]},
    "evaluation": {"test_subset": 128, "T_max": 8, "report_T": [4, 8]},
}


def tiny_profile(tmp_path: Path, **threshold) -> Path:
    raw = {**TINY, "threshold": {**TINY["threshold"], **threshold}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def study_tables(prof) -> dict[str, pd.DataFrame]:
    tables = {f"threshold_{k}": v for k, v in threshold_study(prof, progress=False).items()}
    tables.update({f"calibration_{k}": v for k, v in
                   calibration_study(prof, methods=("none", "cosine"), progress=False).items()})
    return tables


# 1. Determinism -------------------------------------------------------------------------

def test_same_seed_gives_identical_tables_other_seed_other_weights(tmp_path, monkeypatch):
    prof = load_profile(tiny_profile(tmp_path))
    runs = []
    for run in ("a", "b"):  # separate caches, so the second run recomputes everything
        monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / run)
        runs.append(study_tables(prof))
    assert runs[0].keys() == runs[1].keys()
    for name in runs[0]:
        pd.testing.assert_frame_equal(runs[0][name], runs[1][name], check_exact=True, obj=name)
    assert len(runs[0]["calibration_snn_acc"]) > 0 and len(runs[0]["threshold_snn_acc"]) > 0

    w0 = trained_ann(prof.ann, progress=False)[0].state_dict()
    w1 = trained_ann(replace(prof.ann, seed=1), progress=False)[0].state_dict()
    assert not torch.equal(w0["conv1.weight"], w1["conv1.weight"])


# 2. Interruption ------------------------------------------------------------------------

def run_study(profile: Path, cache_dir: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "NEGSPIKE_CACHE": str(cache_dir), "TQDM_DISABLE": "1"}
    cmd = [sys.executable, str(ROOT / "scripts" / "run_study.py"), "threshold", "--profile", str(profile),
           "--out", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output


def test_killed_run_resumes_without_redoing_finished_steps(tmp_path):
    # Enough clipping epochs that the kill lands inside that step.
    profile = tiny_profile(tmp_path, clip_epochs=10)
    cache_dir = tmp_path / "cache"
    proc = run_study(profile, cache_dir, tmp_path / "out")
    deadline = time.monotonic() + 240
    while not list(cache_dir.glob("vp-*.pt")):  # the ANN and the variance penalty have finished
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the variance-penalty step never finished"
        time.sleep(0.05)
    time.sleep(1.0)
    assert not list(cache_dir.glob("clip-*.pt")), "the run got past the clipping step before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.csv"))

    finished = {p.name: p.stat().st_mtime_ns for p in cache_dir.glob("*.pt")}
    assert {n.split("-")[0] for n in finished} == {"ann", "vp"}
    finish(run_study(profile, cache_dir, tmp_path / "out"))
    for name, mtime in finished.items():  # finished steps were loaded, not rebuilt
        assert (cache_dir / name).stat().st_mtime_ns == mtime, name
    assert list(cache_dir.glob("clip-*.pt"))

    finish(run_study(profile, tmp_path / "cache-uninterrupted", tmp_path / "out-uninterrupted"))
    tables = sorted(p.name for p in (tmp_path / "out").glob("*.csv"))
    assert tables == sorted(p.name for p in (tmp_path / "out-uninterrupted").glob("*.csv")) and tables
    for name in tables:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "out-uninterrupted" / name).read_bytes(), name


# 3. Corrupted caches --------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "garbage", "other configuration"])
def test_damaged_or_foreign_checkpoint_is_reported_and_rebuilt(tmp_path, damage, toy_step):
    cfg = {"lr": 0.1}
    cached("step", cfg, lambda: torch.ones(2), tmp_path)
    (path,) = tmp_path.glob("step-*.pt")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(300))
    else:  # a checkpoint of another configuration under this configuration's name
        atomic_save({"config": {"lr": 0.2}, "value": torch.zeros(2)}, path)
    with pytest.warns(UserWarning) as caught:
        value = cached("step", cfg, lambda: torch.full((2,), 7.0), tmp_path)
    assert torch.equal(value, torch.full((2,), 7.0))
    ours = [str(w.message) for w in caught if str(w.message).startswith("cache:")]
    assert len(ours) == 1 and str(path) in ours[0] and "\n" not in ours[0]
    assert torch.equal(cached("step", cfg, lambda: torch.zeros(2), tmp_path), value)  # rebuilt file is valid


# 4. Bad parameters ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: load_profile("fast"), ProfileError, r"unknown profile 'fast'; choose one of \[.*'quick'.*'smoke'"),
        (lambda: ANNConfig(alpha=0.0), ValueError, r"alpha=0.0 must lie in \(0, 1\)"),
        (lambda: ANNConfig(alpha=1.0), ValueError, r"alpha=1.0 must lie in \(0, 1\)"),
        (lambda: ANNConfig(dataset="mnist"), ValueError, r"unknown dataset 'mnist'; choose one of .*fashion_mnist"),
        (lambda: load_dataset("imagenet"), ValueError, r"unknown dataset 'imagenet'; choose one of \[.fashion_mnist'"),
        (lambda: Thresholds(1.0, 0.5), ValueError, r"theta_n must be < 0, got 0.5"),
        (lambda: SignedIFNeuron(1.0, 0.5, alpha=0.1), ValueError, r"theta_n must be < 0 .*got 0.5"),
        (lambda: simulate(convert(Net4(), {n: Thresholds(1.0, -0.1) for n in ("act1", "act2", "act3")}),
                          *synthetic_dataset("fmnist", 4), T_max=0), ValueError, r"T_max must be a positive integer, got 0"),
    ],
)
def test_bad_parameters_get_one_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_profile_stops_a_study_before_any_training(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ann: {alpha: 2.0, dataset: synthetic_fmnist}\n")
    env = {**os.environ, "NEGSPIKE_CACHE": str(tmp_path / "cache")}
    for profile, match in ((bad, "alpha=2.0 must lie in (0, 1)"), ("fast", "unknown profile 'fast'")):
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_study.py"), "threshold", "--profile",
                              str(profile), "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True)
        assert res.returncode != 0 and match in res.stderr
        assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


# 5. Divergence --------------------------------------------------------------------------

def test_divergence_stops_the_step_and_writes_no_checkpoint(tmp_path):
    x, y = synthetic_dataset("fmnist", 96)
    batches = []

    def explode_in_epoch_2(model, logits, ce):
        batches.append(1)
        return ce * (float("inf") if len(batches) > 3 else 0.0)

    def build():
        train_ann(Net4(), (x, y), 3, batch_size=32, extra_loss=explode_in_epoch_2, step_name="clipping", progress=False)
        return "never reached"

    with pytest.raises(DivergenceError, match=r"clipping: loss became (inf|nan) in epoch 2; last finite loss \d"):
        cached("clip", {"any": 1}, build, tmp_path)
    assert not list(tmp_path.iterdir())


# 6. Atomic results files ----------------------------------------------------------------

def test_crash_while_writing_a_table_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    write_table(pd.DataFrame({"T": [1, 2], "acc": [0.5, 0.6]}), path)
    before = path.read_bytes()

    def crash_halfway(self, target, **kwargs):
        Path(target).write_text("T,acc\n1,")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_table(pd.DataFrame({"T": [9], "acc": [0.9]}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_crash_while_saving_a_checkpoint_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "step.pt"
    atomic_save({"w": torch.ones(3)}, path)

    def crash_halfway(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["step.pt"]
