"""The book's experiments as functions of a profile: each returns tidy tables.

Chapters and scripts call these; every expensive step underneath is cached
(:mod:`negspike.pipeline`), and so is every simulation here, so a chapter re-runs in
seconds once its steps exist.
"""
from __future__ import annotations

from dataclasses import asdict, replace

import pandas as pd

from .cache import cached
from .convert import convert
from .pipeline import calibrated_snn, clipped_ann, converted_snn, load_split, trained_ann, variance_finetuned_ann
from .profiles import Profile
from .simulate import simulate
from .threshold import activation_thresholds, layer_statistics, learned_thresholds

__all__ = ["simulated", "smallest_T", "conversion_baselines", "threshold_study", "calibration_study"]


def _test_set(prof: Profile):
    return load_split(prof.ann.dataset, "test", prof.evaluation.test_subset, prof.ann.seed)


def simulated(prof: Profile, label: dict, make_snn, T_max: int | None = None, progress: bool = True) -> dict:
    """Simulate the SNN from ``make_snn()`` on the profile's test set, cached under ``label``.

    Returns ``{"acc": [accuracy at T=1..T_max], "layers": firing-rate records,
    "synops_per_image", "ann_macs_per_image", "seconds"}``.
    """
    T_max = T_max or prof.evaluation.T_max
    key = {"label": label, "ann": asdict(prof.ann), "evaluation": asdict(prof.evaluation), "T_max": T_max}

    def build():
        x, y = _test_set(prof)
        res = simulate(make_snn(), x, y, T_max, progress=progress)
        return {"acc": res.accuracy.tolist(), "layers": res.layers.to_dict("records"),
                "synops_per_image": res.synops_per_image, "ann_macs_per_image": res.ann_macs_per_image,
                "seconds": res.seconds}

    return cached("sim", key, build)


def smallest_T(acc: list[float], target: float) -> int | None:
    """The smallest T whose accuracy reaches ``target`` (None if none does)."""
    return next((t + 1 for t, a in enumerate(acc) if a >= target), None)


def _rows(prof: Profile, sim: dict, ann_acc: float, **labels) -> list[dict]:
    base = {"dataset": prof.ann.dataset, "model": prof.ann.model, "seed": prof.ann.seed, "profile": prof.name}
    return [{**base, **labels, "T": t + 1, "ann_acc": ann_acc, "snn_acc": a} for t, a in enumerate(sim["acc"])]


def conversion_baselines(prof: Profile, neurons=("signed", "ibt"), T_max: int | None = None, progress: bool = True):
    """Trained ANN, max-based thresholds, no calibration: accuracy against T per neuron.

    Returns ``(accuracy table, firing-rate table, ANN test accuracy)``.
    """
    ann, info = trained_ann(prof.ann, progress=progress)
    x_train = load_split(prof.ann.dataset, "train", prof.ann.train_subset, prof.ann.seed)[0]
    th = activation_thresholds(ann, x_train, "max")
    acc, rates = [], []
    for neuron in neurons:
        sim = simulated(prof, {"ann": "trained", "thresholds": "max", "neuron": neuron},
                        lambda: convert(ann, th, neuron), T_max, progress)
        acc += _rows(prof, sim, info["test_acc"], neuron=neuron, thresholds="max", calibration="none")
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

    ann_acc = pd.DataFrame([{"step": "trained", "ann_acc": ann_info["test_acc"]},
                            {"step": "variance penalty", "ann_acc": vp_info["test_acc"]},
                            {"step": "clipping", "ann_acc": clip_info["test_acc"]}])
    th_max = activation_thresholds(ann, x_train, "max")
    acc, rates = [], []
    for label, ref_acc, key, make in (
        ("without", ann_info["test_acc"], {"ann": "trained", "thresholds": "max", "neuron": "signed"},
         lambda: convert(ann, th_max, "signed")),
        ("with", clip_info["test_acc"], {"ann": "clipped", "threshold": asdict(th_cfg), "neuron": "signed"},
         lambda: convert(clip, neuron="signed")),
    ):
        sim = simulated(prof, key, make, progress=progress)
        acc += _rows(prof, sim, ref_acc, threshold_optimisation=label, neuron="signed", calibration="none")
        rates += [{**r, "threshold_optimisation": label} for r in sim["layers"]]
    return {"layers": pd.DataFrame(layers), "eta": pd.DataFrame(eta), "ann_acc": ann_acc,
            "snn_acc": pd.DataFrame(acc), "firing_rates": pd.DataFrame(rates)}


def calibration_study(prof: Profile, methods=("none", "layerwise", "average", "cosine", "sigmoid"),
                      progress: bool = True) -> dict[str, pd.DataFrame]:
    """SNN accuracy against T without calibration, with layer-wise calibration, and with
    joint calibration under each weighting; loss histories; smallest T within 0.1 points."""
    cfg, th_cfg, cal = prof.ann, prof.threshold, prof.calibration
    _, clip_info = clipped_ann(cfg, th_cfg, progress=progress)
    ann_acc = clip_info["test_acc"]
    acc, losses, summary = [], [], []
    for method in methods:
        if method == "none":
            key = {"ann": "clipped", "threshold": asdict(th_cfg), "neuron": cal.neuron, "v_init": cal.v_init}
            make = lambda: converted_snn(cfg, th_cfg, cal.neuron, progress, cal.v_init)[1]  # noqa: E731
        else:
            c = replace(cal, method="layerwise") if method == "layerwise" else replace(cal, method="joint", weighting=method)
            key = {"calibrated": asdict(c), "threshold": asdict(th_cfg)}
            snn, hist = calibrated_snn(cfg, th_cfg, c, progress=progress)
            losses.append(hist.assign(calibration=method))
            make = lambda snn=snn: snn  # noqa: E731
        sim = simulated(prof, key, make, progress=progress)
        acc += _rows(prof, sim, ann_acc, calibration=method, neuron=cal.neuron)
        summary.append({"calibration": method, "ann_acc": ann_acc,
                        **{f"snn_acc_T{t}": sim["acc"][t - 1] for t in prof.evaluation.report_T},
                        "T_within_0.1": smallest_T(sim["acc"], ann_acc - 0.001)})
    return {"snn_acc": pd.DataFrame(acc), "loss": pd.concat(losses) if losses else pd.DataFrame(),
            "summary": pd.DataFrame(summary)}
