"""Figures of the chapter "CIFAR-10: VGG-16 and ResNet-18" (``book/cifar10.ipynb``), and the
bookkeeping that turns its tables (:func:`negspike.experiments.cifar_study`) into labels, tables
for display and the prose of its hidden cells."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ..book import diff_text, pct, pm, points
from ..data import cifar10_jpeg_candidates
from ..experiments import CIFAR_METHODS
from ..matched import reading
from ..plots import COLORS, FIG_WIDTH, METHOD_COLORS, zoom_limits
from ..stats import accuracy_se

__all__ = ["NAMES", "DATA_TEXT", "model_name", "short", "bn_eta", "tails", "thresholds", "accuracy_vs_T",
           "beside_paper", "pairs_table", "pair_of", "comparison_text", "settings_text", "folding_text", "caveats_text"]

NAMES = {"vgg16": "VGG-16", "resnet18": "ResNet-18"}

#: What each dataset name of a run means for reading its numbers.
DATA_TEXT = {
    "cifar10": "CIFAR-10 (torchvision)",
    "cifar10_jpeg": "the lossy JPEG copy of CIFAR-10 (dataset `cifar10_jpeg`, quality 75), **not comparable** to "
                    "published CIFAR-10 numbers",
    "synthetic_cifar10": "synthetic CIFAR-shaped data (a test stand-in: the accuracies mean nothing)",
}


def model_name(name: str) -> str:
    """A model's name as the book writes it: ``'vgg16'`` -> ``'VGG-16'`` (other names as they are)."""
    return NAMES.get(name, name)


def short(method: str) -> str:
    """The short name of a calibration method: 'proposed', 'two-stage', ..."""
    return CIFAR_METHODS[method].split(" (")[0]


def _per_layer(frame: pd.DataFrame, ylabel: str, xlabel: str, height: float, suptitle: str) -> tuple[Figure, list]:
    """One panel per model of ``frame`` (column ``model``, in order of appearance), sharing the y-axis."""
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(FIG_WIDTH, height), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], models):
        ax.set(xlabel=xlabel, ylabel=ylabel if ax is axes[0][0] else None, title=model_name(name))
    fig.suptitle(suptitle)
    return fig, list(zip(axes[0], models))


def bn_eta(eta: pd.DataFrame) -> Figure:
    """eta_BN of every batch-norm layer per model, trained and after the variance penalty, on a log
    axis (table ``cifar10_bn_eta``)."""
    fig, panels = _per_layer(eta, r"$\eta_{BN}$", "batch-norm layer", 3.6,
                             "Batch-norm form of the variance penalty, per layer (input to output)")
    for ax, name in panels:
        e = eta[eta["model"] == name].reset_index(drop=True)
        ax.semilogy(e.index + 1, e["eta_trained"], "o-", color=COLORS["ann"], label="trained")
        ax.semilogy(e.index + 1, e["eta_variance_penalty"], "s-", color=COLORS["signed"],
                    label="after variance penalty")
        ax.legend()
    return fig


def tails(tails: pd.DataFrame) -> Figure:
    """Tail length (max |a| over the 99th percentile) of each activation layer per model, trained and
    after the variance penalty (index model, layer; columns ``trained``, ``variance penalty``)."""
    fig, panels = _per_layer(tails.reset_index(), "tail: max |a| / 99th pct", "activation layer", 3.4,
                             "Tail length of each activation layer (input to output)")
    for ax, name in panels:
        t = tails.loc[name].reset_index(drop=True)
        ax.plot(t.index + 1, t["trained"], "o-", color=COLORS["ann"], label="trained")
        ax.plot(t.index + 1, t["variance penalty"], "s-", color=COLORS["signed"], label="after variance penalty")
        ax.legend()
    return fig


def thresholds(lay: pd.DataFrame) -> Figure:
    """The thresholds theta_P and theta_N of every spiking layer per model (rows of ``cifar10_layers``
    of one stage), each panel with its own y-axis."""
    models = list(dict.fromkeys(lay["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(FIG_WIDTH, 3.6), squeeze=False)
    for ax, name in zip(axes[0], models):
        d = lay[lay["model"] == name].reset_index(drop=True)
        ax.plot(d.index + 1, d["theta_p"], "o-", color=COLORS["positive"], label=r"$\theta_P$ (learned)")
        ax.plot(d.index + 1, d["theta_n"], "s-", color=COLORS["negative"], label=r"$\theta_N$ (learned)")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set(xlabel="spiking layer", ylabel="threshold" if ax is axes[0][0] else None, title=model_name(name))
        ax.legend()
    fig.suptitle("Thresholds learned by the clipping layers (input to output)")
    return fig


def accuracy_vs_T(acc: pd.DataFrame, source: str) -> Figure:
    """SNN accuracy against T, one panel per model, one curve per calibration and calibrated T (solid
    at the larger T), with the ANN on the same images (table ``cifar10_snn_acc`` of profile ``source``)."""
    models = list(dict.fromkeys(acc["model"]))
    fig, axes = plt.subplots(len(models), 1, figsize=(FIG_WIDTH, 3.6 * len(models)), squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], models):
        d = acc[acc["model"] == name]
        for (method, T_cal), g in d.groupby(["calibration", "calibrated_T"], dropna=False, sort=False):
            label = short(method) if pd.isna(T_cal) else f"{short(method)}, T={int(T_cal)}"
            ls = "-" if pd.isna(T_cal) or T_cal == max(d["calibrated_T"].dropna()) else "--"
            ax.plot(g["T"], 100 * g["snn_acc"], ls=ls, marker=".", color=METHOD_COLORS[method], label=label)
        ann = d["ann_acc"].iloc[0]  # the ANN on the simulated test images
        ax.axhline(100 * ann, color=COLORS["ann"], ls="--", lw=1.2, label="its ANN, same images")
        ax.set(ylabel="test accuracy (%)", title=f"{model_name(name)} (ANN {pct(ann)} on the same images)",
               ylim=zoom_limits(100 * pd.concat([d["snn_acc"], d["ann_acc"]]), pad=0.08, floor=0, ceil=100))
    axes[-1][0].set_xlabel("time steps T")
    # one legend for both panels, below them, so that no curve is hidden
    axes[-1][0].legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, -0.2),
                       ncol=3, fontsize=9.5)
    fig.suptitle(f"SNN accuracy against T ({source} profile; solid: calibrated at the larger T)")
    return fig


# Tables for display and the prose of the chapter's hidden cells.

def beside_paper(both: pd.DataFrame) -> pd.DataFrame:
    """One model's rows of ``cifar10_summary`` merged with the paper's Tables 2 and 3, for display:
    our accuracies ± standard error and Δacc with its 95% interval beside the paper's numbers."""
    return pd.DataFrame({
        "T": both["T"], "method": both["method"],
        "our ANN": [pm(r.ann_acc, r.ann_se) for r in both.itertuples()],
        "our SNN": [pm(r.snn_acc, r.snn_se) for r in both.itertuples()],
        "our Δacc (95% interval)": [f"{points(r.delta_acc)} ({points(r.delta_low)} to {points(r.delta_high)})"
                                    for r in both.itertuples()],
        "paper ANN": both["paper ANN"], "paper SNN": both["paper SNN"], "paper Δacc": both["paper Δacc"],
    }).set_index(["T", "method"])


def pairs_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """The paired comparisons of ``cifar10_pairs`` for display: difference and 95% interval in points,
    McNemar's p and which method the interval favours."""
    return pd.DataFrame({
        "model": [model_name(m) for m in pairs["model"]],
        "comparison": [f"{short(r.a)}, T={r.T_a} − {short(r.b)}, T={r.T_b}" for r in pairs.itertuples()],
        "difference": [f"{100 * r.diff:+.2f}" for r in pairs.itertuples()],
        "95% interval": [f"{100 * r.low:+.2f} to {100 * r.high:+.2f}" for r in pairs.itertuples()],
        "p (McNemar)": pairs["p_value"],
        "reading": [reading(r, short(r["a"]), short(r["b"])) for _, r in pairs.iterrows()],
    })


def pair_of(pairs: pd.DataFrame, model: str, a: str, T_a: int, b: str, T_b: int) -> pd.Series | None:
    """The paired comparison of ``a`` at ``T_a`` with ``b`` at ``T_b`` (a row of ``pairs``), or None."""
    if pairs.empty:
        return None
    m = pairs[(pairs["model"] == model) & (pairs["a"] == a) & (pairs["T_a"] == T_a) & (pairs["b"] == b)
              & (pairs["T_b"] == T_b)]
    return None if m.empty else m.iloc[0]


def _model_text(s: pd.DataFrame, pairs: pd.DataFrame, name: str, Ts: list) -> str:
    """One model's line of :func:`comparison_text` (``s``: the summary indexed by model, T, calibration)."""
    parts = []
    for T in Ts:
        here = [m for m in ("joint", "two_stage", "layerwise", "none", "own", "own_none") if (name, T, m) in s.index]
        part = f"at $T = {T}$ " + ", ".join(
            f"{short(m)} {pm(s.loc[(name, T, m), 'snn_acc'], s.loc[(name, T, m), 'snn_se'])}%" for m in here)
        p = pair_of(pairs, name, "joint", T, "two_stage", T)
        if p is not None:
            part += f"; proposed minus two-stage {diff_text(p)}"
        q = pair_of(pairs, name, "joint", T, "layerwise", T)
        if q is not None and "two_stage" in here:
            lw, ts = s.loc[(name, T, "layerwise"), "snn_acc"], s.loc[(name, T, "two_stage"), "snn_acc"]
            part += (f"; of this, the joint calibration (proposed minus signed neurons calibrated layer by layer) "
                     f"accounts for {diff_text(q)}, the neuron (layer-wise minus two-stage) for the remaining "
                     f"{100 * (lw - ts):+.2f} points (no paired interval computed for that part)")
        o = pair_of(pairs, name, "own", T, "joint", T)
        if o is not None:
            part += f"; the book's own neuron (joint calibration) minus proposed {diff_text(o)}"
        parts.append(part)
    cross = pair_of(pairs, name, "joint", Ts[0], "two_stage", Ts[-1]) if len(Ts) > 1 else None
    return (f"- **{model_name(name)}**: " + "; ".join(parts) + "."
            + (f" The paper's claim that the proposed method at $T = {Ts[0]}$ beats the two-stage method at "
               f"$T = {Ts[-1]}$: here {diff_text(cross)}." if cross is not None else ""))


def comparison_text(summary: pd.DataFrame, pairs: pd.DataFrame, S: pd.Series, n_images: int) -> str:
    """The methods compared in prose (Markdown), per model and T, from ``cifar10_summary``, ``cifar10_pairs``
    and the run's settings ``S`` (a row of ``cifar10_settings``) on ``n_images`` test images."""
    s = summary.set_index(["model", "T", "calibration"])
    Ts = sorted(summary["T"].unique())
    text = [_model_text(s, pairs, name, Ts) for name in dict.fromkeys(summary["model"])]
    epochs_cal, subset_cal = int(S["calibration_epochs"]), S["calibration_subset"]
    cal_steps = (f"{epochs_cal * math.ceil(int(subset_cal) / int(S['calibration_batch_size']))} Adam steps"
                 if not pd.isna(subset_cal) else f"{epochs_cal} epoch(s) of Adam steps")
    same_T = pairs[(pairs["b"] == "two_stage") & (pairs["T_a"] == pairs["T_b"])] if len(pairs) else pairs
    ahead = same_T[same_T["diff"] < 0] if len(same_T) else same_T
    if len(ahead):
        beyond = ahead[ahead["high"] < 0]
        text.append(
            "\nWhere the two-stage baseline comes out ahead ("
            + (", ".join(f"{model_name(r.model)} at $T = {r.T_a}$" for r in beyond.itertuples())
               + " beyond the noise" if len(beyond) else "within noise everywhere")
            + "), note what each calibration may change here: its first stage shifts every neuron's initial membrane "
            "by the mean ANN-SNN difference measured on the calibration images, a correction fitted per neuron, while "
            f"joint calibration changes weights and biases only, with {cal_steps} at learning rate "
            f"{S['calibration_lr']:g}.")
    if n_images:
        se = 100 * summary["snn_se"].max()
        text.append(f"\nWith {n_images} test images one image is {100 / n_images:.2f} points, and an accuracy's "
                    f"standard error is up to {se:.2f} points here; differences between methods are paired on the "
                    "same images, and their 95% intervals above say which of them the noise cannot decide.")
    return "\n".join(text)


def settings_text(S: pd.Series, source: str, n_images: int) -> str:
    """One line on the run behind the tables: profile, data (with the file of the JPEG copy), width,
    epochs and test images (``S``: a row of ``cifar10_settings``)."""
    dataset = S["dataset"]
    data_file = next((str(p) for p in cifar10_jpeg_candidates() if p.is_file()), "not found on this machine") \
        if dataset == "cifar10_jpeg" else None
    return (f"profile **{source}**, data: {DATA_TEXT.get(dataset, dataset)}"
            + (f" (file `{data_file}`)" if data_file else "")
            + f", models at width {float(S['width']):g} of the paper's, {int(S['epochs'])} training epochs, "
            f"{n_images} test images")


def folding_text(fold_table: pd.DataFrame, err_columns: list[str], T_demo, n_inputs: int) -> str:
    """The folding demonstration in prose (Markdown): the folded ANN's change of the logits, how many
    classes the untrained ANNs answer, and the SNN readout's error at each T of ``T_demo``."""
    worst = [fold_table[c].max() for c in err_columns]
    classes = fold_table[f"ANN classes ({n_inputs} inputs)"]
    spread = fold_table["logit spread between inputs / |logit|"]
    return (
        f"Folding changes the logits by at most {fold_table.iloc[:, 0].max():.1e} (float rounding). The untrained ANNs "
        "answer " + " and ".join(f"{k} class{'es' if k != 1 else ''} ({m})" for m, k in classes.items())
        + f" for the {n_inputs} random inputs, and their logits differ between inputs by "
        + " and ".join(f"{s:.1e}" for s in spread) + " of their size"
        + (": an SNN that answered one class for every input would agree with such an ANN almost always, so decisions "
           "are not compared." if classes.min() <= 2 else ".")
        + " The SNN's readout is compared with the logits instead: its mean error, relative to the mean "
        "$|$logit$|$, is " + ", ".join(f"{w:.3f}" for w in worst)
        + f" at T = {', '.join(map(str, T_demo))} (the worse of the two models)"
        + (": it falls with T, and calibration is there to reach a small error with fewer steps."
           if all(a > b for a, b in zip(worst, worst[1:])) else "."))


def caveats_text(S: pd.Series, n_images: int) -> str:
    """What separates this run from the paper's setting, as a Markdown list (``S``: a row of
    ``cifar10_settings``; ``n_images``: the test images simulated)."""
    dataset, width = S["dataset"], float(S["width"])
    items = []
    if dataset == "cifar10_jpeg":
        items.append("the data is the lossy JPEG copy, on which models lose about 2-3 points according to the "
                     "copy's README")
    elif dataset != "cifar10":
        items.append(f"the data is `{dataset}`, not CIFAR-10: the accuracies say nothing about CIFAR-10")
    if width != 1.0:
        items.append(f"the models have {width:g} of the paper's channels, about {width ** 2:.3g} of its "
                     "multiply-accumulates")
    if int(S["epochs"]) < 100:
        items.append(f"the ANNs trained for {int(S['epochs'])} epoch(s) instead of the hundreds a CIFAR-10 model "
                     "usually needs")
    if not pd.isna(S["calibration_subset"]) and int(S["calibration_subset"]) < 10000:
        items.append(f"each calibration saw {int(S['calibration_subset'])} training images for "
                     f"{int(S['calibration_epochs'])} epoch(s) in batches of {int(S['calibration_batch_size'])}")
    if n_images < 10000:
        items.append(f"the SNNs were evaluated on {n_images} of the 10,000 test images")
    items.append("the paper does not state its CIFAR training recipe, calibration epochs or learning rates; "
                 "ours are the profile's")
    return "In this run:\n\n" + "\n".join(f"- {t};" for t in items[:-1]) + f"\n- {items[-1]}."


def budget(checks: pd.DataFrame) -> Figure:
    """Accuracy on the held-out training images against the optimiser steps of each joint
    calibration (table ``cifar10_budget``), one panel per model, the ANN on the same images dashed;
    the state kept at the end is circled."""
    joint = checks[checks["after"].str.match(r"^(start|step \d+)$")].copy()
    joint["steps"] = joint["after"].str.extract(r"(\d+)").fillna(0).astype(int)[0]
    joint = joint[joint["calibration"] != "two_stage"]
    models = list(dict.fromkeys(joint["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(FIG_WIDTH, 3.8), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], models):
        d = joint[joint["model"] == name]
        for (method, T), g in d.groupby(["calibration", "calibrated_T"], sort=False):
            ax.plot(g["steps"], 100 * g["holdout_acc"], marker=".", ls="-" if T == d["calibrated_T"].max() else "--",
                    color=METHOD_COLORS[method], label=f"{short(method)}, T={int(T)}")
            kept = g[g["kept"]]
            ax.plot(kept["steps"], 100 * kept["holdout_acc"], "o", mfc="none", ms=9, color=METHOD_COLORS[method])
        ax.axhline(100 * d["ann_holdout_acc"].iloc[0], color=COLORS["ann"], ls="--", lw=1.2, label="ANN, same images")
        ax.set(title=model_name(name), xlabel="Adam steps of calibration",
               ylabel="held-out accuracy (%)" if ax is axes[0][0] else None)
    axes[0][0].set_ylim(top=100 * joint["ann_holdout_acc"].max() + 3)  # every panel's ANN line in view
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Gap against calibration budget ({int(joint['holdout_images'].iloc[0])} held-out training images; "
                 "circled: the state kept)")
    return fig


def budget_text(checks: pd.DataFrame) -> str:
    """Each calibration's held-out accuracy at the start and in the state it kept, beside the ANN's
    (Markdown list, from ``cifar10_budget``)."""
    lines = []
    for (name, method, T), g in checks.groupby(["model", "calibration", "calibrated_T"], sort=False):
        start, kept = g.iloc[0], g[g["kept"]].iloc[0]
        lines.append(f"- {model_name(name)}, {short(method)} at $T = {int(T)}$: {pct(start['holdout_acc'])} before "
                     f"calibration, {pct(kept['holdout_acc'])} kept (after {kept['after']}), ANN "
                     f"{pct(start['ann_holdout_acc'])}; best of {len(g)} checks")
    n = int(checks["holdout_images"].iloc[0])
    se = 100 * accuracy_se(0.7, n)
    lines.append(f"\nWith {n} held-out images an accuracy near 70% has a standard error of about {se:.1f} points, so the "
                 "checks tell large changes from small ones only, and the best of several checks is an optimistic "
                 "estimate of the state it picks. They only choose which state to keep; the test images of the "
                 "tables above, which no check sees, measure it.")
    return "\n".join(lines)
