"""Tidy rows that compare an SNN with its ANN, or two SNNs, on the same test images.

Every ANN-versus-SNN number the studies write comes from here, so each table pairs an
SNN accuracy with the ANN's accuracy on exactly the images the SNN was simulated on
(``ann_acc``), next to its uncertainty. A full-test-set ANN accuracy, where a table shows
one too, sits in a column named ``ann_acc_all_test``.
"""
from __future__ import annotations

import pandas as pd
import torch

from .stats import TWithin, accuracy_se, paired_difference

__all__ = ["MATCHED_COLUMNS", "curve_rows", "summary_row", "pair_rows", "pair_at", "reading"]

#: Columns of every accuracy-against-T table the studies write.
MATCHED_COLUMNS = ("T", "test_images", "ann_acc", "ann_se", "snn_acc", "snn_se", "gap", "gap_low", "gap_high")


def _correct(sim: dict) -> torch.Tensor:
    """``sim["correct"]`` (``[T_max, images]``, bool) of a cached simulation record."""
    c = sim.get("correct")
    if c is None:
        raise ValueError("this simulation record has no per-image results ('correct'); it predates matched "
                         "comparisons and is rebuilt when its step is run again")
    return torch.as_tensor(c).bool()


def curve_rows(sim: dict, ann_correct: torch.Tensor, **labels) -> list[dict]:
    """One row per T: ANN and SNN accuracy on the same images with standard errors, and the
    gap ``ann_acc - snn_acc`` with its paired 95% interval (``gap_low``, ``gap_high``)."""
    snn = _correct(sim)
    n = snn.shape[1]
    if ann_correct.numel() != n:
        raise ValueError(f"the ANN was scored on {ann_correct.numel()} images, the SNN simulated on {n}")
    ann_acc = ann_correct.double().mean().item()
    rows = []
    for t in range(snn.shape[0]):
        p = paired_difference(ann_correct, snn[t])
        snn_acc = snn[t].double().mean().item()
        rows.append({**labels, "T": t + 1, "test_images": n, "ann_acc": ann_acc, "ann_se": accuracy_se(ann_acc, n),
                     "snn_acc": snn_acc, "snn_se": accuracy_se(snn_acc, n), "gap": p.diff, "gap_low": p.low,
                     "gap_high": p.high})
    return rows


def summary_row(sim: dict, ann_correct: torch.Tensor, report_T, margin: float = 0.001, **labels) -> dict:
    """Accuracy at each ``report_T`` and the smallest T within ``margin`` of the ANN (same
    images), with the range of T the noise allows (:class:`negspike.stats.TWithin`)."""
    rows = curve_rows(sim, ann_correct)
    w = TWithin.from_gaps([r["gap"] for r in rows], [r["gap_low"] for r in rows], [r["gap_high"] for r in rows], margin)
    pts = f"{100 * margin:g}"
    row = {**labels, **{k: rows[0][k] for k in ("test_images", "ann_acc", "ann_se")}}
    row.update({f"snn_acc_T{t}": rows[t - 1]["snn_acc"] for t in report_T if t <= len(rows)})
    row.update({f"T_within_{pts}": w.T, f"T_within_{pts}_earliest": w.earliest, f"T_within_{pts}_latest": w.latest})
    return row


def pair_rows(a: str, sim_a: dict, b: str, sim_b: dict, Ts, **labels) -> list[dict]:
    """``acc(a) - acc(b)`` at each T of ``Ts`` (or at a pair ``(T_a, T_b)``) on the same images,
    with the paired standard error, 95% interval and McNemar p-value."""
    ca, cb = _correct(sim_a), _correct(sim_b)
    if ca.shape[1] != cb.shape[1]:
        raise ValueError(f"{a} and {b} were simulated on different image sets ({ca.shape[1]} and {cb.shape[1]})")
    rows = []
    for T in Ts:
        ta, tb = T if isinstance(T, tuple) else (T, T)
        if ta > ca.shape[0] or tb > cb.shape[0]:
            continue
        p = paired_difference(ca[ta - 1], cb[tb - 1])
        rows.append({**labels, "a": a, "T_a": ta, "b": b, "T_b": tb, "test_images": p.n,
                     "acc_a": ca[ta - 1].double().mean().item(), "acc_b": cb[tb - 1].double().mean().item(),
                     "diff": p.diff, "se": p.se, "low": p.low, "high": p.high, "p_value": p.p_value,
                     "only_a": p.only_a, "only_b": p.only_b})
    return rows


def pair_at(pairs: pd.DataFrame, a: str, b: str, T: int) -> pd.Series | None:
    """The row of a pairs table (:func:`pair_rows`) comparing ``a`` with ``b``, both at ``T``;
    None when the table has no such comparison."""
    if pairs.empty:
        return None
    m = pairs[(pairs["a"] == a) & (pairs["b"] == b) & (pairs["T_a"] == T) & (pairs["T_b"] == T)]
    return None if m.empty else m.iloc[0]


def reading(row, a: str, b: str) -> str:
    """Which of ``a`` and ``b`` a pairs row's 95% interval favours, or ``'within noise'``."""
    if row["low"] <= 0 <= row["high"]:
        return "within noise"
    return f"{a} better" if row["diff"] > 0 else f"{b} better"
