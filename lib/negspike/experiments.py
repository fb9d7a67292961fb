"""The book's experiments as functions of a profile: each returns tidy tables.

Chapters and scripts call these; every expensive step underneath is cached
(:mod:`negspike.pipeline`), and so is every simulation here, so a chapter re-runs in
seconds once its steps exist.
"""
from __future__ import annotations

import time
from dataclasses import asdict, replace

import pandas as pd
import torch
from torch import nn

from .cache import cached
from .convert import convert
from .depth import layer_diagnosis
from .matched import curve_rows, pair_rows, summary_row
from .pipeline import (ANNConfig, CalibrationConfig, ThresholdConfig, calibrated_snn, clipped_ann, converted_snn,
                       load_split, trained_ann, variance_finetuned_ann)
from .profiles import Profile
from .simulate import simulate
from .tails import layer_statistics
from .threshold import activation_thresholds, learned_thresholds
from .train import correct_per_image
from .variance_penalty import bn_variance_penalty

__all__ = ["sim_key", "max_threshold_label", "clipped_label", "calibrated_label", "simulation", "simulated",
           "conversion_baselines", "threshold_study", "OWN_METHODS", "study_methods", "study_calibration", "study_simulation",
           "calibration_study", "SEED_METHODS", "seed_study", "cifar_study",
           "CIFAR_METHODS", "ann_correct"]


# Labels: how the simulated SNN was made from the ANN of the key. One function per kind of
# SNN the library simulates, so that every study (and chapter) that simulates it shares its cache.

def max_threshold_label(neuron: str, v_init: float = 0.0) -> dict:
    """The trained ANN converted with max-based thresholds to ``neuron``, membranes from ``v_init * P_th``."""
    return {"ann": "trained", "thresholds": "max", "neuron": neuron, "v_init": v_init}


def clipped_label(th: ThresholdConfig, neuron: str, v_init: float = 0.0) -> dict:
    """:func:`negspike.pipeline.converted_snn` of ``th`` (learned thresholds), no calibration."""
    return {"ann": "clipped", "threshold": asdict(th), "neuron": neuron, "v_init": v_init}


def calibrated_label(th: ThresholdConfig, cal: CalibrationConfig) -> dict:
    """:func:`negspike.pipeline.calibrated_snn` of ``th`` and ``cal``."""
    return {"calibrated": asdict(cal), "threshold": asdict(th)}


def sim_key(ann: ANNConfig, label: dict, test_subset: int | None, T_max: int, images_seed: int | None = None) -> dict:
    """The cache key of a simulation (step ``"sim"``): the SNN (``label`` and its ANN), the test
    images (``test_subset`` of the ANN's dataset, drawn with its seed or ``images_seed``) and the
    steps simulated."""
    key = {"label": label, "ann": asdict(ann), "test_subset": test_subset, "T_max": T_max}
    if images_seed is not None and images_seed != ann.seed:  # the ANN's own draw keeps its older key
        key["images_seed"] = images_seed
    return key


def simulation(ann: ANNConfig, label: dict, make_snn, test_subset: int | None, T_max: int,
               progress: bool = True, images_seed: int | None = None) -> dict:
    """Simulate the SNN from ``make_snn()`` for ``T_max`` steps on the test images of ``ann``'s
    dataset (``test_subset`` of them, drawn with ``images_seed``, default the ANN's seed), cached
    under :func:`sim_key`.

    Returns ``{"acc": [accuracy at T=1..T_max], "correct": [T_max, images] bool (which
    images are right at each T, for matched comparisons), "layers": firing-rate records,
    "synops_per_image", "ann_macs_per_image", "seconds"}``.
    """

    def build():
        x, y = load_split(ann.dataset, "test", test_subset, ann.seed if images_seed is None else images_seed)
        return _simulate_record(make_snn(), x, y, T_max, progress)

    return cached("sim", sim_key(ann, label, test_subset, T_max, images_seed), build)


def simulated(prof: Profile, label: dict, make_snn, T_max: int | None = None, progress: bool = True,
              images_seed: int | None = None) -> dict:
    """:func:`simulation` on the profile's test images (or those drawn with ``images_seed``), up to
    ``T_max`` (default: the profile's)."""
    return simulation(prof.ann, label, make_snn, prof.evaluation.test_subset, T_max or prof.evaluation.T_max, progress,
                      images_seed)


def _simulate_record(snn, x, y, T_max: int, progress: bool) -> dict:
    res = simulate(snn, x, y, T_max, progress=progress)
    return {"acc": res.accuracy.tolist(), "correct": res.correct, "layers": res.layers.to_dict("records"),
            "synops_per_image": res.synops_per_image, "ann_macs_per_image": res.ann_macs_per_image,
            "seconds": res.seconds}


def _test_set(prof: Profile):
    """The profile's simulated test images: those of every :func:`simulated` call."""
    return load_split(prof.ann.dataset, "test", prof.evaluation.test_subset, prof.ann.seed)


def ann_correct(prof: Profile, model: nn.Module) -> torch.Tensor:
    """Which of the profile's simulated test images ``model`` gets right: the ANN side of
    every matched comparison (the SNNs of :func:`simulated` run on the same images)."""
    return correct_per_image(model, *_test_set(prof))


def _rows(prof: Profile, sim: dict, ann_right, ann_acc_all_test: float, **labels) -> list[dict]:
    base = {"dataset": prof.ann.dataset, "model": prof.ann.model, "seed": prof.ann.seed, "profile": prof.name}
    return curve_rows(sim, ann_right, **base, **labels, ann_acc_all_test=ann_acc_all_test)


def conversion_baselines(prof: Profile, neurons=("signed", "ibt"), T_max: int | None = None, progress: bool = True,
                         v_init: float = 0.0):
    """Trained ANN, max-based thresholds, no calibration: accuracy against T per neuron.

    ``v_init`` starts every membrane at ``v_init * P_th`` (0 by default, as the classic
    conversions do); the accuracy rows record it in a ``v_init`` column.
    Returns ``(accuracy table, firing-rate table, ANN accuracy on the whole test set)``; the
    table's ``ann_acc`` is the ANN on the simulated images (``ann_acc_all_test``: whole set).
    """
    ann, info = trained_ann(prof.ann, progress=progress)
    right = ann_correct(prof, ann)
    x_train = load_split(prof.ann.dataset, "train", prof.ann.train_subset, prof.ann.seed)[0]
    th = activation_thresholds(ann, x_train, "max")
    acc, rates = [], []
    for neuron in neurons:
        sim = simulated(prof, max_threshold_label(neuron, v_init), lambda: convert(ann, th, neuron, v_init=v_init),
                        T_max, progress)
        acc += _rows(prof, sim, right, info["test_acc"], neuron=neuron, thresholds="max", calibration="none",
                     v_init=v_init)
        rates += [{**r, "neuron": neuron} for r in sim["layers"]]
    return pd.DataFrame(acc), pd.DataFrame(rates), info["test_acc"]


def threshold_study(prof: Profile, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Threshold optimisation: per-layer tails and thresholds, ANN accuracy per step, and
    the signed SNN with and without threshold optimisation (firing rates, accuracy)."""
    cfg, th_cfg = prof.ann, prof.threshold
    x_train = load_split(cfg.dataset, "train", cfg.train_subset, cfg.seed)[0]
    x_stats = x_train[:10000]
    ann, ann_info = trained_ann(cfg, progress=progress)
    vp, vp_info = variance_finetuned_ann(cfg, th_cfg, progress=progress)
    clip, clip_info = clipped_ann(cfg, th_cfg, progress=progress)

    layers = []
    for stage, model in (("trained", ann), ("variance penalty", vp)):
        st = layer_statistics(model, x_stats)
        th = activation_thresholds(model, x_train, "max")
        layers += [{"stage": stage, "layer": n, "tail": s["tail"], "theta_p": th[n].theta_p,
                    "theta_n": th[n].theta_n, "thresholds": "max"} for n, s in st.items()]
    st = layer_statistics(clip, x_stats)
    layers += [{"stage": "clipping", "layer": n, "tail": st[n]["tail"], "theta_p": t.theta_p, "theta_n": t.theta_n,
                "thresholds": "learned"} for n, t in learned_thresholds(clip).items()]
    eta = [{"epoch": h["epoch"], "layer": k[4:], "eta": v} for h in vp_info["history"] for k, v in h.items()
           if k.startswith("eta_")]

    steps = (("trained", ann, ann_info), ("variance penalty", vp, vp_info), ("clipping", clip, clip_info))
    right = {step: ann_correct(prof, net) for step, net, _ in steps}  # each ANN on the simulated images
    ann_acc = pd.DataFrame([{"step": step, "ann_acc_all_test": info["test_acc"],
                             "ann_acc": right[step].double().mean().item(), "test_images": right[step].numel()}
                            for step, _, info in steps])
    th_max = activation_thresholds(ann, x_train, "max")
    acc, rates = [], []
    for label, ref, ref_info, snn_label, make in (
        ("without", "trained", ann_info, max_threshold_label("signed"), lambda: convert(ann, th_max, "signed")),
        ("with", "clipping", clip_info, clipped_label(th_cfg, "signed"), lambda: convert(clip, neuron="signed")),
    ):
        sim = simulated(prof, snn_label, make, progress=progress)
        acc += _rows(prof, sim, right[ref], ref_info["test_acc"], threshold_optimisation=label,
                     neuron="signed", calibration="none")
        rates += [{**r, "threshold_optimisation": label} for r in sim["layers"]]
    return {"layers": pd.DataFrame(layers), "eta": pd.DataFrame(eta), "ann_acc": ann_acc,
            "snn_acc": pd.DataFrame(acc), "firing_rates": pd.DataFrame(rates)}


# The book's own neuron (``evaluation.own_neuron``, not the paper's) beside the reproduction:
# the same clipped ANN converted to it, and calibrated with the cosine weighting.
OWN_METHODS = {"own_none": "none", "own_cosine": "cosine"}


def study_methods(prof: Profile) -> tuple[str, ...]:
    """The calibrations of :func:`calibration_study`: the paper's, then the own neuron's if the profile names one."""
    paper = ("none", "layerwise", "average", "cosine", "sigmoid")
    return paper + (tuple(OWN_METHODS) if prof.evaluation.own_neuron else ())


def study_calibration(prof: Profile, method: str) -> CalibrationConfig:
    """The calibration settings of ``method`` in :func:`calibration_study` (for ``"none"``: the
    conversion's neuron and start)."""
    cal = prof.calibration
    if method in OWN_METHODS:
        if not prof.evaluation.own_neuron:
            raise ValueError(f"method {method!r} needs evaluation.own_neuron in profile {prof.name!r}")
        cal, method = replace(cal, neuron=prof.evaluation.own_neuron), OWN_METHODS[method]
    if method in ("none", "layerwise"):
        return replace(cal, method="layerwise") if method == "layerwise" else cal
    return replace(cal, method="joint", weighting=method)


def study_simulation(prof: Profile, method: str, progress: bool = True,
                     images_seed: int | None = None) -> tuple[dict, pd.DataFrame | None]:
    """The cached simulation of the SNN that :func:`calibration_study` names ``method`` (the
    clipped ANN converted, or also calibrated as :func:`study_calibration` says) and its
    calibration's loss history (None when not calibrated), so that every chapter showing
    that SNN shares one cache entry. ``images_seed``: see :func:`simulation`."""
    cfg, th_cfg = prof.ann, prof.threshold
    cal = study_calibration(prof, method)
    if OWN_METHODS.get(method, method) == "none":
        make = lambda: converted_snn(cfg, th_cfg, cal.neuron, progress, cal.v_init)[1]  # noqa: E731
        return simulated(prof, clipped_label(th_cfg, cal.neuron, cal.v_init), make, progress=progress,
                         images_seed=images_seed), None
    snn, hist = calibrated_snn(cfg, th_cfg, cal, progress=progress)
    return simulated(prof, calibrated_label(th_cfg, cal), lambda: snn, progress=progress, images_seed=images_seed), hist


# The headline rows whose seed-to-seed spread seed_study measures: the converted SNN and the
# paper's proposed calibration (joint, cosine weighting), each against its clipped ANN.
SEED_METHODS = ("none", "cosine")


def seed_study(prof: Profile, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The headline rows again for each seed of ``(prof.ann.seed, *prof.evaluation.seeds)``:
    the ANN trained, threshold-optimised, converted and calibrated afresh with that seed
    (training order, initialisation, calibration images), all evaluated on the profile's
    test images, so that the spread between seeds is the training's alone. A run seeds its
    stages with ``seed`` to ``seed + 3`` (and draws ``train_subset`` with ``seed``), so
    seeds closer than 4 apart would share random streams between stages.

    Returns ``"runs"`` (per seed and method, the matched curve rows at ``report_T``),
    ``"summary"`` (per seed and method, :func:`~negspike.matched.summary_row`) and
    ``"spread"`` (per method and ``report_T``: mean, standard deviation, smallest and
    largest over the seeds of the ANN's and the SNN's accuracy and of the gap, beside the
    mean single-run standard error of the SNN's accuracy).
    """
    ev = prof.evaluation
    seeds = (prof.ann.seed, *[s for s in ev.seeds if s != prof.ann.seed])
    x, y = _test_set(prof)
    runs, summary = [], []
    for seed in seeds:
        run = replace(prof, ann=replace(prof.ann, seed=seed))
        clip, info = clipped_ann(run.ann, run.threshold, progress=progress)
        right = correct_per_image(clip, x, y)
        for method in SEED_METHODS:
            sim, _ = study_simulation(run, method, progress, images_seed=prof.ann.seed)
            labels = dict(seed=seed, calibration=method, ann_acc_all_test=info["test_acc"])
            runs += [r for r in curve_rows(sim, right, **labels) if r["T"] in ev.report_T]
            summary.append(summary_row(sim, right, ev.report_T, 0.001, **labels))
    runs = pd.DataFrame(runs)
    stats = {"ann_acc": "ann", "snn_acc": "snn", "gap": "gap"}
    spread = runs.groupby(["calibration", "T"], sort=False).agg(
        seeds=("seed", "nunique"),
        **{f"{short}_{f}": (col, f) for col, short in stats.items() for f in ("mean", "std", "min", "max")},
        snn_se_mean=("snn_se", "mean")).reset_index()
    return {"runs": runs, "summary": pd.DataFrame(summary), "spread": spread}


def calibration_study(prof: Profile, methods: tuple[str, ...] | None = None,
                      progress: bool = True) -> dict[str, pd.DataFrame]:
    """SNN accuracy against T without calibration, with layer-wise calibration, and with
    joint calibration under each weighting (``methods``, default :func:`study_methods`:
    with the book's own neuron, ``own_none`` and ``own_cosine``, when the profile names
    one); loss histories; smallest T within 0.1 points.

    Every comparison is on the simulated test images: ``ann_acc`` is the clipped ANN on
    them (``ann_acc_all_test``: on the whole test set), the ``summary``'s smallest T comes
    with the range the noise allows, and ``pairs`` has paired differences between methods
    (each joint weighting against layer-wise and against none; cosine against the other
    weightings; the own neuron against the paper's) at the profile's ``report_T``.
    """
    cfg, th_cfg = prof.ann, prof.threshold
    clip, clip_info = clipped_ann(cfg, th_cfg, progress=progress)
    right = ann_correct(prof, clip)
    acc, losses, summary, sims = [], [], [], {}
    for method in study_methods(prof) if methods is None else methods:
        sim, hist = study_simulation(prof, method, progress)
        sims[method] = sim
        if hist is not None:
            losses.append(hist.assign(calibration=method))
        acc += _rows(prof, sim, right, clip_info["test_acc"], calibration=method,
                     neuron=study_calibration(prof, method).neuron)
        summary.append(summary_row(sim, right, prof.evaluation.report_T, 0.001, calibration=method,
                                   ann_acc_all_test=clip_info["test_acc"]))
    pairs = []
    for a, b in _CALIBRATION_PAIRS:
        if a in sims and b in sims:
            pairs += pair_rows(a, sims[a], b, sims[b], prof.evaluation.report_T)
    return {"snn_acc": pd.DataFrame(acc), "loss": pd.concat(losses) if losses else pd.DataFrame(),
            "summary": pd.DataFrame(summary), "pairs": pd.DataFrame(pairs)}


# The paired comparisons of calibration_study: what each claim of the paper compares, then
# the book's own neuron against the paper's, uncalibrated and calibrated.
_CALIBRATION_PAIRS = [(w, "layerwise") for w in ("average", "cosine", "sigmoid")] + \
    [(w, "none") for w in ("layerwise", "average", "cosine", "sigmoid")] + [("cosine", "average"), ("cosine", "sigmoid")] + \
    [("own_none", "none"), ("own_cosine", "cosine"), ("own_cosine", "own_none")]


# The rows of the paper's Tables 2 and 3, as this library names them.
# "two_stage" is the baseline of the paper's tables: IBT neurons calibrated layer by layer;
# "layerwise" keeps the signed neuron, so that it differs from "joint" in the calibration only.
# "own" and "own_none" are this book's rows, not the paper's: its own neuron (CifarConfig.own_neuron).
CIFAR_METHODS = {"none": "converted, no calibration (signed neuron)",
                 "layerwise": "layer-wise calibration (signed neuron)",
                 "two_stage": "two-stage (IBT neuron, layer-wise calibration)",
                 "joint": "proposed (signed neuron, joint calibration)",
                 "own_none": "book's own neuron, no calibration (not the paper's)",
                 "own": "book's own neuron, joint calibration (not the paper's)"}

def cifar_study(prof: Profile, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The CIFAR-10 chapter (the paper's Tables 2 and 3) under ``prof.cifar``.

    For each model: train the ANN (SGD, crop and flip), fine-tune it with the batch-norm
    form of the variance penalty, train clipping layers, convert it with signed neurons,
    then calibrate it with each of ``methods`` (``"two_stage"``: an IBT conversion
    calibrated layer by layer, the paper's baseline; ``"joint"``: joint calibration with
    the cosine weighting; ``"layerwise"``: the signed conversion calibrated layer by layer),
    separately at each ``T`` of ``calibration_T``; simulate every SNN up to
    ``T_max`` on the test set. Returns the tables ``summary`` (model, method, T, ANN, SNN,
    delta: the paper's format; ANN and SNN on the same test images, with standard errors and
    the gap's paired 95% interval), ``snn_acc`` (accuracy against T), ``pairs`` (proposed
    against two-stage and layer-wise at each T, and proposed at the first T against
    two-stage at the last, on the same images), ``ann_acc`` (after each training step), ``settings`` (the profile's), ``layers`` (tail and learned
    thresholds per layer), ``bn_eta`` (the batch-norm form of eta per BN layer before and
    after the variance penalty), ``depth`` (:func:`~negspike.depth.layer_diagnosis` of the
    converted and calibrated SNNs, per layer and T), ``budget`` (each calibration's held-out
    checks: accuracy against optimiser steps, beside the ANN's) and ``seconds`` (wall time of each step
    in this call: long where it computed, short where it read the cache).
    """
    c = prof.cifar
    if c is None:
        raise ValueError(f"profile {prof.name!r} has no 'cifar' section")
    th_cfg = c.threshold_config()
    x_test, y_test = load_split(c.dataset, "test", c.test_subset, c.seed)
    summary, curves, pairs, ann_rows, layer_rows, eta_rows, times, depth_rows, budget = ([] for _ in range(9))
    for model in c.models:
        cfg = c.ann_config(model)
        start = time.perf_counter()
        ann, ann_info = trained_ann(cfg, progress=progress)
        vp, vp_info = variance_finetuned_ann(cfg, th_cfg, progress=progress)
        clip, clip_info = clipped_ann(cfg, th_cfg, progress=progress)
        times.append({"model": model, "step": "ANN and threshold optimisation", "seconds": time.perf_counter() - start})
        # Δacc in the tables compares the ANN and the SNN on the same test images (x_test).
        steps = (("trained", ann, ann_info), ("variance penalty", vp, vp_info), ("clipping", clip, clip_info))
        step_right = {step: correct_per_image(net, x_test, y_test) for step, net, _ in steps}
        ann_rows += [{"model": model, "step": step, "epochs": len(info["history"]), "ann_acc_all_test": info["test_acc"],
                      "ann_acc": step_right[step].double().mean().item(), "test_images": len(y_test)}
                     for step, _, info in steps]
        right = step_right["clipping"]  # the clipped ANN is the one converted
        x_stats = load_split(c.dataset, "train", min(2000, c.train_subset or 2000), c.seed)[0]
        layer_rows += _cifar_layer_rows(model, ann, vp, clip, x_stats)
        eta_rows += _cifar_eta_rows(model, ann, vp, th_cfg.vp_eps)
        sims, makers = _cifar_snn_runs(prof, model, cfg, th_cfg, right, summary, curves, times, budget, progress)
        pairs += _cifar_pairs(sims, c.calibration_T, model=model, dataset=c.dataset, width=c.width)
        start = time.perf_counter()
        depth_rows += _cifar_depth_rows(model, clip, makers, x_test[:c.depth_images], sorted({*c.calibration_T, c.T_max}))
        times.append({"model": model, "step": "layer diagnosis", "seconds": time.perf_counter() - start})
    settings = pd.DataFrame([{"profile": prof.name, **{k: (list(v) if isinstance(v, tuple) else v)
                                                        for k, v in asdict(c).items()}}])
    rank = {**{m: i for i, m in enumerate(c.models)}, **{m: i for i, m in enumerate(CIFAR_METHODS)}}
    summary = pd.DataFrame(summary).sort_values(["model", "T", "calibration"], key=lambda col: col.map(rank)
                                                if col.name != "T" else col, kind="stable")
    return {"summary": summary.reset_index(drop=True), "snn_acc": pd.DataFrame(curves), "pairs": pd.DataFrame(pairs),
            "ann_acc": pd.DataFrame(ann_rows), "layers": pd.DataFrame(layer_rows), "bn_eta": pd.DataFrame(eta_rows),
            "depth": pd.DataFrame(depth_rows), "budget": pd.DataFrame(budget), "seconds": pd.DataFrame(times),
            "settings": settings}


def _cifar_snn_runs(prof: Profile, model: str, cfg: ANNConfig, th_cfg: ThresholdConfig, right: torch.Tensor,
                    summary: list, curves: list, times: list, budget: list, progress: bool) -> tuple[dict, dict]:
    """Convert and calibrate one CIFAR-10 model with each method at each T and simulate every
    SNN on the test images; appends to ``summary``, ``curves``, ``times`` and ``budget`` (the
    calibrations' held-out checks) and returns the simulations and the functions that make
    each SNN, by ``(method, T)``."""
    c = prof.cifar
    sims, makers = {}, {}
    runs = [("none", None)] + ([("own_none", None)] if "own" in c.methods else []) + \
        [(m, T) for T in c.calibration_T for m in CIFAR_METHODS if m in c.methods]
    for method, T in runs:
        start = time.perf_counter()
        if T is None:  # converted, not calibrated: the neuron and start of the joint calibrations
            conv = c.calibration_config("own" if method == "own_none" else "joint", c.calibration_T[0])
            snn_label = clipped_label(th_cfg, conv.neuron, conv.v_init)
            make = lambda cfg=cfg, conv=conv: (  # noqa: E731
                converted_snn(cfg, th_cfg, conv.neuron, progress, conv.v_init)[1])
        else:
            cal = c.calibration_config(method, T)
            snn_label = calibrated_label(th_cfg, cal)
            snn, hist = calibrated_snn(cfg, th_cfg, cal, progress=progress)
            budget += [{"model": model, "calibration": method, "calibrated_T": T, **r}
                       for r in hist.attrs["holdout"]]
            make = lambda snn=snn: snn  # noqa: E731
        # the images of x_test: cfg has the dataset and seed of c
        sim = simulation(cfg, snn_label, make, c.test_subset, c.T_max, progress)
        times.append({"model": model, "step": f"{method} T={T}" if T else "conversion",
                      "seconds": time.perf_counter() - start})
        sims[method, T], makers[method, T] = sim, make
        label = {"model": model, "dataset": c.dataset, "width": c.width, "calibration": method,
                 "calibrated_T": T, "profile": prof.name}
        rows = curve_rows(sim, right, **label)
        curves += rows
        for t in c.calibration_T if T is None else (T,):
            r = rows[t - 1]
            summary.append({"model": model, "dataset": c.dataset, "width": c.width,
                            "method": CIFAR_METHODS[method], "calibration": method, "T": t,
                            **{k: r[k] for k in ("ann_acc", "ann_se", "snn_acc", "snn_se")},
                            "delta_acc": r["gap"], "delta_low": r["gap_low"], "delta_high": r["gap_high"],
                            "test_images": r["test_images"], "profile": prof.name})
    return sims, makers


def _cifar_depth_rows(model: str, clip: nn.Module, makers: dict, x: torch.Tensor, Ts: list[int]) -> list[dict]:
    """:func:`~negspike.depth.layer_diagnosis` of the converted SNNs and of those calibrated at the
    largest calibrated T, each against the clipped ANN, on the images ``x``."""
    if not len(x):
        return []
    T_cal = max(T for _, T in makers if T is not None)
    keys = [k for k in makers if k[1] is None or (k[1] == T_cal and k[0] in ("joint", "own", "two_stage"))]
    return [{"model": model, "calibration": method, "calibrated_T": T, **r}
            for method, T in keys for r in layer_diagnosis(makers[method, T](), clip, x, Ts).to_dict("records")]


def _cifar_layer_rows(model: str, ann: nn.Module, vp: nn.Module, clip: nn.Module, x_stats: torch.Tensor) -> list[dict]:
    """Each layer's tail and extremes before and after the variance penalty, beside the
    thresholds the clipping step learned."""
    learned = learned_thresholds(clip)
    return [{"model": model, "stage": stage, "layer": n, "tail": st["tail"], "max": st["max"], "min": st["min"],
             "theta_p": learned[n].theta_p, "theta_n": learned[n].theta_n}
            for stage, net in (("trained", ann), ("variance penalty", vp))
            for n, st in layer_statistics(net, x_stats).items()]


def _cifar_eta_rows(model: str, ann: nn.Module, vp: nn.Module, eps: float) -> list[dict]:
    """The batch-norm form of eta of every BN layer, before and after the variance penalty."""
    return [{"model": model, "bn": n, "eta_trained": bn_variance_penalty(bn_a, eps).item(),
             "eta_variance_penalty": bn_variance_penalty(bn_v, eps).item()}
            for (n, bn_a), (_, bn_v) in zip(_batch_norms(ann), _batch_norms(vp))]


def _cifar_pairs(sims: dict, Ts, **labels) -> list[dict]:
    """Proposed against two-stage and layer-wise, and the own neuron against proposed and
    two-stage, at each T; proposed at the first T against two-stage at the last (the paper: "the proposed algorithm at T = 4 is better than the
    two-stage algorithm at T = 8"), each from the SNN calibrated at that T."""
    rows = []
    for a, other in (("joint", "two_stage"), ("joint", "layerwise"), ("own", "joint"), ("own", "two_stage")):
        for T in Ts:
            if (a, T) in sims and (other, T) in sims:
                rows += pair_rows(a, sims[a, T], other, sims[other, T], [T], **labels)
    lo, hi = min(Ts), max(Ts)
    if lo != hi and ("joint", lo) in sims and ("two_stage", hi) in sims:
        rows += pair_rows("joint", sims["joint", lo], "two_stage", sims["two_stage", hi], [(lo, hi)], **labels)
    return rows


def _batch_norms(model) -> list:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

