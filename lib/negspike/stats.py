"""Uncertainty of accuracies and of differences measured on the same test images.

An accuracy on ``n`` images has a binomial standard error ``sqrt(p (1 - p) / n)``: about
0.6 points on 2,000 images near 92%. Two classifiers scored on the *same* images (an ANN
and its SNN, or two calibrations) disagree on few images, so their difference is known
much better than the two separate errors suggest: the paired standard error uses the
per-image differences, and McNemar's exact test looks only at the images where they
disagree. All functions take per-image correctness (boolean tensors or arrays), which
:func:`negspike.simulate.simulate` (``correct``) and
:func:`negspike.train.correct_per_image` provide.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Z95", "accuracy_se", "PairedDifference", "paired_difference", "mcnemar_p", "TWithin", "t_within"]

#: Two-sided 95% quantile of the normal distribution.
Z95 = 1.959963984540054


def _as_bool(a, name: str) -> np.ndarray:
    arr = np.asarray(a.cpu() if hasattr(a, "cpu") else a).astype(bool)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of per-image results, got shape {arr.shape}")
    return arr


def accuracy_se(acc: float, n: int) -> float:
    """Binomial standard error of an accuracy ``acc`` (a fraction) measured on ``n`` images."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= acc <= 1.0:
        raise ValueError(f"acc must be a fraction in [0, 1], got {acc}")
    return math.sqrt(acc * (1.0 - acc) / n)


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` images only the first gets right, ``c`` only the second.

    Under "both are equally accurate" each disagreement goes either way with probability
    1/2, so ``min(b, c)`` is binomial(b + c, 1/2) in the tail.
    """
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * _binom_tail_le(min(b, c), n, 0.5))


def _binom_tail_le(k: int, m: int, p: float) -> float:
    """P(X <= k) for X ~ binomial(m, p), summed in log space (m can be thousands)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= m else 0.0
    i = np.arange(k + 1)
    log_fact = _log_factorials(m)
    terms = log_fact[m] - log_fact[i] - log_fact[m - i] + i * math.log(p) + (m - i) * math.log1p(-p)
    top = terms.max()
    return float(min(1.0, math.exp(top) * np.exp(terms - top).sum()))


@functools.lru_cache(maxsize=8)
def _log_factorials(m: int) -> np.ndarray:
    """log(j!) for j = 0..m."""
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, m + 1)))])


def _clopper_pearson(k: int, m: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion, ``k`` successes in ``m``."""

    def decreasing_root(f, target: float) -> float:  # f falls from 1 to 0 on [0, 1]: bisection
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
        return (lo + hi) / 2

    # high: P(X <= k | p) = alpha/2; low: P(X >= k | p) = alpha/2, i.e. P(m - X <= m - k | 1 - p) = alpha/2
    high = 1.0 if k == m else decreasing_root(lambda p: _binom_tail_le(k, m, p), alpha / 2)
    low = 0.0 if k == 0 else 1.0 - decreasing_root(lambda q: _binom_tail_le(m - k, m, q), alpha / 2)
    return low, high


@dataclass(frozen=True)
class PairedDifference:
    """``acc_a - acc_b`` on the same ``n`` images, with its paired standard error, 95% interval
    and McNemar p-value; ``only_a`` / ``only_b`` count the images only one of them gets right.

    The interval is exact and agrees with McNemar's test: given the ``m = only_a + only_b``
    images on which A and B disagree, ``only_a`` is binomial(m, pi) and the difference is
    ``m / n * (2 pi - 1)``; the Clopper-Pearson interval of pi gives the interval of the
    difference, which excludes 0 exactly when the test's p-value is below 0.05. (The normal
    interval ``diff +- 1.96 se`` is too narrow when few images disagree.)
    """

    diff: float
    se: float
    low: float
    high: float
    p_value: float
    only_a: int
    only_b: int
    n: int

    def excludes_zero(self) -> bool:
        """True when the 95% interval lies entirely on one side of zero."""
        return self.low > 0 or self.high < 0


def paired_difference(correct_a, correct_b) -> PairedDifference:
    """Accuracy of A minus accuracy of B on the same images, with paired uncertainty."""
    a, b = _as_bool(correct_a, "correct_a"), _as_bool(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs the same images: {a.size} against {b.size} results")
    d = a.astype(float) - b.astype(float)
    n = d.size
    diff = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    m = only_a + only_b
    if m == 0:
        low = high = 0.0
    else:
        pl, ph = _clopper_pearson(only_a, m)
        low, high = m / n * (2 * pl - 1), m / n * (2 * ph - 1)
    return PairedDifference(diff, se, low, high, mcnemar_p(only_a, only_b), only_a, only_b, n)


@dataclass(frozen=True)
class TWithin:
    """The smallest T at which an SNN comes within ``margin`` of its ANN, with the range noise allows.

    ``T``: first T whose measured gap (ANN - SNN, same images) is at most ``margin``;
    ``earliest``: first T whose gap is not significantly above ``margin`` (lower end of the
    95% interval at or below it); ``latest``: first T from which the gap is significantly
    at most ``margin`` (upper end at or below it) at that T and every later one.
    ``None`` where no simulated T qualifies.
    """

    T: int | None
    earliest: int | None
    latest: int | None
    margin: float

    def text(self, t_max: int) -> str:
        """``"10 (8 to 14)"``: the measured T and the range; ``">t_max"`` beyond the simulated T."""
        f = lambda t: f">{t_max}" if t is None else str(t)  # noqa: E731
        return ("not reached" if self.T is None else str(self.T)) + f" ({f(self.earliest)} to {f(self.latest)})"

    @classmethod
    def from_gaps(cls, gaps, lows, highs, margin: float = 0.001) -> "TWithin":
        """The rule itself, from the gap ANN - SNN at T = 1, 2, ... and its 95% interval."""
        first = lambda ok: next((t + 1 for t, o in enumerate(ok) if o), None)  # noqa: E731
        point, earliest = first(g <= margin for g in gaps), first(lo <= margin for lo in lows)
        latest = None
        for t in range(len(highs) - 1, -1, -1):  # the first T from which every later T is confidently within
            if not highs[t] <= margin:
                break
            latest = t + 1
        return cls(point, earliest, latest, margin)


def t_within(snn_correct, ann_correct, margin: float = 0.001) -> TWithin:
    """:class:`TWithin` for an SNN's ``correct[T-1, image]`` and the ANN's ``correct[image]``.

    A criterion on a single curve is decided by noise when the curve crawls along the ANN
    (one image is 0.05 points on 2,000 images); the interval says which T the data allow.
    """
    snn = np.asarray(snn_correct.cpu() if hasattr(snn_correct, "cpu") else snn_correct).astype(bool)
    ann = _as_bool(ann_correct, "ann_correct")
    if snn.ndim != 2 or snn.shape[1] != ann.size:
        raise ValueError(f"snn_correct must be [T, {ann.size}] for {ann.size} images, got shape {snn.shape}")
    pairs = [paired_difference(ann, snn[t]) for t in range(snn.shape[0])]
    return TWithin.from_gaps([p.diff for p in pairs], [p.low for p in pairs], [p.high for p in pairs], margin)
