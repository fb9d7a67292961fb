import ast
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from negspike import cache
from negspike.cache import atomic_save, cache_path, cached, code_version, config_key
from negspike.data import synthetic_dataset
from negspike.experiments import calibration_study
from negspike.models import Net4
from negspike.own_network import OwnNetworkConfig, train_functional_net
from negspike.pipeline import ANNConfig, CalibrationConfig, ThresholdConfig
from negspike.profiles import EvalConfig, Profile
from negspike.train import DivergenceError, evaluate_ann, train_ann


def test_cache_builds_once_and_keys_on_config(tmp_path, toy_step):
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.ones(3) * len(calls)}

    a = cached("step", {"lr": 0.1, "epochs": 2}, build, tmp_path)
    b = cached("step", {"epochs": 2, "lr": 0.1}, build, tmp_path)  # same config, other key order
    assert len(calls) == 1 and torch.equal(a["w"], b["w"])
    c = cached("step", {"lr": 0.2, "epochs": 2}, build, tmp_path)
    assert len(calls) == 2 and c["w"][0] == 2
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_corrupted_checkpoint_is_reported_and_rebuilt(tmp_path, toy_step):
    cfg = {"x": 1}
    cached("step", cfg, lambda: 1, tmp_path)
    (path,) = tmp_path.glob("step-*.pt")
    path.write_bytes(path.read_bytes()[:10])
    with pytest.warns(UserWarning, match=f"rebuilding unreadable checkpoint {path}"):
        assert cached("step", cfg, lambda: 2, tmp_path) == 2
    assert cached("step", cfg, lambda: 3, tmp_path) == 2  # the rebuilt file is valid
    assert not list(tmp_path.glob("*.tmp"))


# Code versions ----------------------------------------------------------------------------

LIB = Path(cache.__file__).parent
# Modules whose code no cached result depends on; every other module of negspike is named in
# negspike.cache.STEP_CODE. A new module (a part split off another, say) must land in one of the two.
# (stats, matched: standard errors and paired tests computed from cached records, after the
# steps; paper: the paper's numbers.)
OUTSIDE_RESULTS = {"__init__", "book", "cache", "plots", "profiles", "results", "stats", "matched", "paper", "claims", "traces",
                   "depth", "rounding"}  # diagnostics computed afresh by the chapters, never cached


@pytest.fixture
def sources(monkeypatch):
    """The library's source as the cache reads it; ``sources[module] = text`` edits a module."""
    real = cache._module_source
    edited: dict[str, str] = {}
    monkeypatch.setattr(cache, "_module_source", lambda module: edited.get(module) or real(module))
    yield edited
    cache._forget_code_versions()


def versions() -> dict[str, str]:
    cache._forget_code_versions()
    return {step: code_version(step) for step in cache.STEP_CODE}


def changed(before: dict[str, str]) -> set[str]:
    return {step for step, v in versions().items() if v != before[step]}


def test_every_module_is_mapped_to_the_steps_it_determines():
    named = {entry.split(":")[0] for entries in cache.STEP_CODE.values() for entry in entries}
    modules = {p.stem for p in LIB.glob("*.py")}
    assert modules - named - OUTSIDE_RESULTS == set(), "add these modules to STEP_CODE or OUTSIDE_RESULTS"
    assert named <= modules and not named & OUTSIDE_RESULTS
    assert len(set(versions().values())) == len(cache.STEP_CODE)  # every entry resolves; steps differ


def with_statement_in(source: str, function: str) -> str:
    """``source`` with one more statement in the top-level ``function``: a change of code."""
    fn = next(n for n in ast.parse(source).body if getattr(n, "name", None) == function)
    lines = source.splitlines(keepends=True)
    lines.insert(fn.body[-1].lineno - 1, " " * fn.body[-1].col_offset + "_spare = None\n")
    return "".join(lines)


def test_a_code_change_invalidates_what_it_produced_and_nothing_else(sources):
    before = versions()
    real = {m: cache._module_source(m) for m in ("neurons", "pipeline", "experiments", "train")}

    sources["neurons"] = real["neurons"] + "\n\ndef _spare(x):\n    return x + 1\n"
    assert changed(before) == {"calibration", "sim"}
    assert real["neurons"].startswith('"""')
    reworded = real["neurons"].replace('"""', '"""Reworded. ', 1).replace("\n\n", "\n\n\n")
    sources["neurons"] = "# a comment\n\n" + reworded
    assert changed(before) == set()  # comments, docstrings and layout are not code
    del sources["neurons"]

    # one step of pipeline.py: what the calibration produced, and the simulations of its SNNs
    sources["pipeline"] = with_statement_in(real["pipeline"], "calibrated_snn")
    assert changed(before) == {"calibration", "sim"}
    del sources["pipeline"]

    # a study in experiments.py computes tables from cached steps: it invalidates none
    sources["experiments"] = with_statement_in(real["experiments"], "calibration_study")
    assert changed(before) == set()
    sources["experiments"] = with_statement_in(real["experiments"], "simulation")
    assert changed(before) == {"sim"}
    del sources["experiments"]

    sources["train"] = with_statement_in(real["train"], "train_ann")
    assert changed(before) == set(cache.STEP_CODE)  # every step trains, or runs on a trained ANN


def test_changed_code_rebuilds_the_checkpoint_unrelated_code_does_not(sources, tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.full((2,), float(len(calls)))}

    cached("ann", {"x": 1}, build, tmp_path)
    sources["experiments"] = cache._module_source("experiments") + "\n\nSPARE = 1\n"
    cache._forget_code_versions()
    assert cached("ann", {"x": 1}, build, tmp_path)["w"][0] == 1 and len(calls) == 1
    sources["models"] = cache._module_source("models") + "\n\nSPARE = 1\n"
    cache._forget_code_versions()
    assert cached("ann", {"x": 1}, build, tmp_path)["w"][0] == 2 and len(calls) == 2
    assert len(list(tmp_path.glob("ann-*.pt"))) == 2  # the old code's file is left alone, unused


# Weights-only checkpoints ------------------------------------------------------------------

class _RunsCode:
    """Unpickling this calls ``os.system``: what a hostile cache file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@dataclass
class _AnyClass:
    x: int = 1


@pytest.mark.parametrize("payload", ["os.system", "a class"])
def test_crafted_checkpoint_is_refused_and_rebuilt(tmp_path, toy_step, payload):
    cfg = {"lr": 0.1}
    marker = tmp_path / "code-ran"
    value = _RunsCode(marker) if payload == "os.system" else _AnyClass()
    path = cache_path(toy_step, cfg, tmp_path)  # the right name, configuration and code version
    atomic_save({"config": cfg, "code": code_version(toy_step), "value": value}, path)
    with pytest.warns(UserWarning) as caught:
        rebuilt = cached(toy_step, cfg, lambda: torch.ones(2), tmp_path)
    assert torch.equal(rebuilt, torch.ones(2)) and not marker.exists()
    ours = [str(w.message) for w in caught if str(w.message).startswith("cache:")]
    blocked = "system" if payload == "os.system" else "_AnyClass"
    assert len(ours) == 1 and "\n" not in ours[0] and ours[0].startswith(f"cache: refused checkpoint {path}: ")
    assert blocked in ours[0] and ours[0].endswith("rebuilding it")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cached(toy_step, cfg, lambda: torch.zeros(2), tmp_path), rebuilt)  # the rebuilt file loads


def test_values_are_stored_as_what_a_weights_only_load_returns(tmp_path, toy_step):
    value = {"acc": np.float32(0.5), "n": [np.int64(3), (1, "a")], "state": OrderedDict(w=torch.ones(1)), "t": None}
    built = cached(toy_step, {"a": 1}, lambda: value, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = cached(toy_step, {"a": 1}, lambda: None, tmp_path)
    for v in (built, loaded):  # the same types, built or loaded
        assert type(v["acc"]) is float and type(v["n"][0]) is int and v["n"][1] == (1, "a")
        assert type(v["state"]) is dict and torch.equal(v["state"]["w"], torch.ones(1)) and v["t"] is None
    with pytest.raises(TypeError, match=r"cache: cannot store the value of step 'step'\['df'\], a pandas.*DataFrame"):
        cached(toy_step, {"a": 2}, lambda: {"df": pd.DataFrame({"x": [1]})}, tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1


def test_every_steps_value_loads_weights_only(tmp_path, monkeypatch):
    """Each step the library caches, built once, is read back with weights_only=True, no rebuild."""
    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path)
    prof = Profile(name="tiny", ann=ANNConfig(dataset="synthetic_fmnist", epochs=1, train_subset=256),
                   threshold=ThresholdConfig(vp_epochs=1, clip_epochs=1),
                   calibration=CalibrationConfig(epochs=1, subset=64, T=(2,)),
                   evaluation=EvalConfig(test_subset=64, T_max=4, report_T=(2, 4)))
    own = OwnNetworkConfig(train_subset=64, epochs=1)

    def run():
        tables = calibration_study(prof, methods=("none", "cosine"), progress=False)
        return tables, train_functional_net(own, "synthetic_fmnist", progress=False)[1]

    first = run()
    steps = {p.name.split("-")[0] for p in tmp_path.glob("*.pt")}
    assert steps == set(cache.STEP_CODE), steps
    monkeypatch.setattr(cache, "atomic_save", lambda *a: pytest.fail("a cached step was rebuilt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = run()
    for name, table in first[0].items():
        pd.testing.assert_frame_equal(table, second[0][name], obj=name)
    pd.testing.assert_frame_equal(first[1], second[1])


def test_training_learns_synthetic_data():
    torch.manual_seed(0)
    x, y = synthetic_dataset("fmnist", 512, noise=2.0)
    xt, yt = synthetic_dataset("fmnist", 256, noise=2.0, seed=5)
    model = Net4()
    before = evaluate_ann(model, xt, yt)
    hist = train_ann(model, (x, y), epochs=2, lr=1e-3, batch_size=64, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert evaluate_ann(model, xt, yt) > max(0.5, before + 0.3)


def test_divergence_names_step_epoch_and_last_loss():
    x, y = synthetic_dataset("fmnist", 64)
    model = Net4()
    calls = {"n": 0}

    def blow_up(model, logits, ce):
        calls["n"] += 1
        return torch.tensor(float("nan")) if calls["n"] > 1 else torch.tensor(0.0)

    with pytest.raises(DivergenceError, match=r"finetune: loss became nan in epoch 1; last finite loss \d"):
        train_ann(model, (x, y), 1, batch_size=32, extra_loss=blow_up, step_name="finetune", progress=False)


_CONCURRENT_BUILD = """
import sys, time
from pathlib import Path
from negspike import cache
cache.STEP_CODE["step"] = ()
folder, log = Path(sys.argv[1]), Path(sys.argv[2])
def build():
    with open(log, "a") as fh:
        fh.write("built\\n")
    time.sleep(1.0)  # long enough for the other process to find the step missing
    return {"x": 1}
print(cache.cached("step", {"k": 1}, build, folder))
"""


def test_two_processes_build_a_shared_step_once(tmp_path):
    """make -j2 and nbval -n 2 run chapters side by side: the second process waits for the first's file."""
    import subprocess
    import sys

    script = tmp_path / "build.py"
    script.write_text(_CONCURRENT_BUILD)
    log = tmp_path / "log.txt"
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(log)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all("{'x': 1}" in o for o in outs)
    assert log.read_text().count("built") == 1, "both processes built the step"
