"""Small helpers the book's chapters share, so that a chapter's cells show its idea."""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .profiles import Profile, load_profile

__all__ = ["Chapter", "start_chapter", "show", "pct", "pm", "pm_format", "points", "diff_text", "t_range", "at_T", "duration", "run_times"]


@dataclass(frozen=True)
class Chapter:
    """One run of a chapter (:func:`start_chapter`): its name, its profile and its clock."""

    name: str
    prof: Profile
    started: float

    @property
    def profile(self) -> str:
        """The profile's name: results go to ``results/<profile>/``."""
        return self.prof.name

    @property
    def results(self) -> Path:
        """``results/<profile>/``, where the chapter writes its tables."""
        from .results import RESULTS_DIR

        return RESULTS_DIR / self.profile

    def savefig(self, fig, name: str) -> Path:
        """Save ``fig`` as ``results/<profile>/figures/<name>``; returns the path."""
        from .plots import figure_path, savefig

        return savefig(fig, figure_path(self.profile, name))

    def run_times(self) -> str:
        """The closing "Run time" paragraph: this run's time and the recorded ones (:func:`run_times`)."""
        return run_times(self.name, self.profile, time.perf_counter() - self.started)


def start_chapter(name: str, profile: str, threads: int | None = None) -> Chapter:
    """What every chapter does first: read the profile (``NEGSPIKE_PROFILE``, which nbval sets,
    wins over the papermill parameter ``profile``), set the book's plot style, create
    ``results/<profile>/`` and start the clock. ``threads`` caps torch's threads (small demos)."""
    import torch

    from .plots import use_style

    prof = load_profile(os.environ.get("NEGSPIKE_PROFILE", profile))
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    use_style()
    if threads is not None:
        torch.set_num_threads(threads)
    chapter = Chapter(name, prof, time.perf_counter())
    chapter.results.mkdir(parents=True, exist_ok=True)
    return chapter


def show(df: pd.DataFrame, fmt=None, precision: int = 3) -> None:
    """Display ``df`` as a table without pandas' row numbers (a named index becomes the first
    column(s)). ``fmt``: one format for every number column, or a dict of formats by column."""
    from IPython.display import display

    if df.index.names != [None]:
        df = df.reset_index()
    if isinstance(df.columns, pd.MultiIndex):
        df = df.set_axis([", ".join(str(p) for p in c if p != "") for c in df.columns], axis=1)
    if fmt is not None and not isinstance(fmt, dict):  # one format for the numbers, none for the label columns
        fmt = {c: fmt for c in df.columns if pd.api.types.is_numeric_dtype(df[c])}
    display(df.style.hide(axis="index").format(fmt, precision=precision, na_rep="–"))


# Numbers in prose and tables: one format for the whole book.

def pct(x) -> str:
    """A fraction as a percentage, ``'92.45%'``, or a dash when missing."""
    return "–" if x is None or pd.isna(x) else f"{100 * x:.2f}%"


def pm(acc, se) -> str:
    """An accuracy and its standard error in percent, ``'87.50 ± 0.74'``, or a dash when missing."""
    return "–" if acc is None or pd.isna(acc) else f"{100 * acc:.2f} ± {100 * se:.2f}"


def pm_format(n: int):
    """A table format (for :func:`show`) of accuracies measured on ``n`` images: :func:`pm` with
    the standard error that ``n`` allows."""
    from .stats import accuracy_se

    return lambda v: pm(v, accuracy_se(v, n)) if not pd.isna(v) else "–"


def points(x) -> str:
    """A difference of fractions in percentage points, ``'1.25'``, or a dash when missing."""
    return "–" if x is None or pd.isna(x) else f"{100 * x:.2f}"


def diff_text(r) -> str:
    """A paired difference (a row of a ``pairs`` table, or a dict with diff, low, high) in points
    with its 95% interval; says when the interval contains 0."""
    if r is None:
        return "not compared at this $T$"
    noise = r["low"] <= 0 <= r["high"]
    return (f"{100 * r['diff']:+.2f} points (95% interval {100 * r['low']:+.2f} to {100 * r['high']:+.2f}"
            + (", within noise)" if noise else ")"))


def _within(row, pts: str):
    """The :class:`~negspike.stats.TWithin` stored in a summary row's ``T_within_<pts>`` columns."""
    from .stats import TWithin

    t, lo, hi = (row[f"T_within_{pts}{s}"] for s in ("", "_earliest", "_latest"))
    as_int = lambda v: None if v is None or pd.isna(v) else int(v)  # noqa: E731
    return TWithin(as_int(t), as_int(lo), as_int(hi), float(pts) / 100)


def t_range(row, t_max: int, pts: str = "0.1") -> str:
    """The smallest T within ``pts`` points of the ANN (same images) and, in brackets, the range
    of T the noise allows (columns ``T_within_<pts>``, ``_earliest``, ``_latest`` of a summary
    row, :func:`negspike.matched.summary_row`); ``'>t_max'``: beyond the simulated T."""
    return _within(row, pts).text(t_max)


def at_T(row, t_max: int, pts: str = "0.1") -> str:
    """Prose for :func:`t_range`: ``'at $T = 10$ (8 to 14)'``, or that the curve never got there."""
    w = _within(row, pts)
    if w.T is None:
        return f"not within $T \\le {t_max}$" + ("" if w.earliest is None else f" (the noise allows $T = {w.earliest}$)")
    return f"at $T = {w.T}$" + w.text(t_max)[len(str(w.T)):]  # the range in brackets after the point


def duration(seconds: float) -> str:
    """``'42 s'``, ``'4.9 min'`` or ``'1.3 h'``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run_times(chapter: str, profile: str, body_seconds: float) -> str:
    """This run's time and every time recorded for ``chapter`` on this machine, as one Markdown
    paragraph: ``body_seconds`` (the chapter's cells so far), and per profile the last
    ``make reproduce`` time in ``results/<profile>/chapter_times/<chapter>.csv`` (whole notebook,
    kernel start-up included)."""
    import datetime as dt

    from .results import RESULTS_DIR

    text = f"This run (profile `{profile}`): the chapter's cells took {duration(body_seconds)}."
    recorded = []
    for path in sorted(RESULTS_DIR.glob(f"*/chapter_times/{chapter}.csv")):
        t = pd.read_csv(path)
        if len(t):
            when = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d")
            recorded.append(f"`{path.parent.parent.name}` {duration(float(t['seconds'].iloc[-1]))} ({when})")
    return text + (" Recorded on this machine by `make reproduce` (whole notebook, kernel start-up included): "
                   + ", ".join(recorded) + "." if recorded else " No earlier `make reproduce` run of it is recorded "
                   "on this machine.")
