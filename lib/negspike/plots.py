"""One visual style for the book's figures, and small helpers to save them.

Every chapter calls :func:`use_style` once, before its first plot, so that all figures
share fonts, colours, grid and resolution. Colours for the recurring actors of the book
(IF neuron, signed neuron, IBT, the ANN reference, error bounds) are fixed in
:data:`COLORS` so that "the signed neuron" has the same colour in every chapter.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .results import atomic_write

__all__ = ["COLORS", "PALETTE", "RESULTS_DIR", "use_style", "savefig", "figure_path", "sawtooth", "STAGE_COLORS",
           "threshold_histogram"]

#: The seaborn palette of the book (colour-blind safe).
PALETTE = "colorblind"

_pal = sns.color_palette(PALETTE)
#: Fixed colours for the book's recurring curves.
COLORS: dict[str, tuple[float, float, float]] = {
    "ann": (0.2, 0.2, 0.2),  # the ANN reference (ReLU, Leaky ReLU)
    "if": _pal[0],  # IF neuron
    "signed": _pal[2],  # signed IF neuron with adjustable negative threshold
    "ibt": _pal[1],  # IBT neuron
    "bound": _pal[3],  # error bounds, thresholds
    "membrane": _pal[4],  # membrane potential traces
    "positive": _pal[0],  # positive spikes
    "negative": _pal[3],  # negative spikes
}

#: ``results/`` at the repository root (the library is installed editable from ``lib/``).
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results"


def use_style(dpi: int = 110, context: str = "notebook") -> None:
    """Set the book's plotting style: seaborn ``whitegrid``, the colour-blind palette, ``dpi``.

    Call it once at the top of a chapter; it changes matplotlib's global ``rcParams``.
    """
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    mpl.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": 2 * dpi,
            "savefig.bbox": "tight",
            "figure.figsize": (6.4, 3.8),
            "figure.constrained_layout.use": True,
            "axes.titlesize": "medium",
            "axes.titleweight": "bold",
            "legend.frameon": True,
            "legend.framealpha": 0.9,
            "lines.linewidth": 1.8,
        }
    )


def figure_path(profile: str, name: str) -> Path:
    """Where a chapter's figure goes in a reproduction run: ``results/<profile>/figures/<name>``."""
    if not name or Path(name).name != name:
        raise ValueError(f"figure name must be a plain file name, got {name!r}")
    return RESULTS_DIR / profile / "figures" / name


def savefig(fig: plt.Figure, path: str | Path, **kwargs) -> Path:
    """Save ``fig`` to ``path`` atomically, creating missing parent folders; returns the path.

    The format follows the suffix (``.png`` when there is none). Keyword arguments go to
    :meth:`matplotlib.figure.Figure.savefig`.
    """
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, **kwargs))


def sawtooth(
    v0: float, v_temp: Sequence[float], v_after: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a membrane trace that shows integration and reset as separate strokes.

    ``v0`` is the membrane before the first step, ``v_temp[t]`` the temporary membrane after
    integrating the input of step ``t + 1`` (eq. 1) and ``v_after[t]`` the membrane after
    the reset of that step (eq. 3). Returns ``(x, y)`` for ``ax.plot(x, y)``: the trace
    climbs from ``v(t-1)`` to ``v_temp(t)`` between steps ``t - 1`` and ``t`` and drops
    vertically to ``v(t)`` at step ``t`` when the neuron spikes.
    """
    v_temp = np.asarray(v_temp, dtype=float).ravel()
    v_after = np.asarray(v_after, dtype=float).ravel()
    if v_temp.shape != v_after.shape:
        raise ValueError(f"v_temp and v_after differ in length: {v_temp.shape} vs {v_after.shape}")
    steps = np.arange(1, len(v_temp) + 1, dtype=float)
    x = np.concatenate([[0.0], np.repeat(steps, 2)])
    y = np.concatenate([[float(v0)], np.column_stack([v_temp, v_after]).ravel()])
    return x, y


#: Colours of the steps of threshold optimisation (and of "without" / "with" it).
STAGE_COLORS: dict[str, tuple[float, float, float]] = {
    "trained": COLORS["ann"],
    "variance penalty": _pal[4],
    "clipping": COLORS["signed"],
    "without": COLORS["ann"],
    "with": COLORS["signed"],
}

_MARK_STYLES = [("-", _pal[3]), ("--", _pal[1]), ("-.", _pal[0]), (":", _pal[4]), ((0, (1, 3)), _pal[7])]


def threshold_histogram(
    ax: plt.Axes,
    values,
    marks: dict[str, tuple[float | None, float | None]] | None = None,
    bins: int = 80,
    color=None,
    label: str | None = None,
    alpha: float = 0.75,
    log: bool = True,
) -> plt.Axes:
    """Histogram of activation values with a log count axis and threshold marks.

    ``marks`` maps a label to a ``(positive, negative)`` pair of thresholds (either may be
    ``None``); both of a pair are drawn as vertical lines of one style, with one legend
    entry per label. Returns ``ax``.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite values to draw")
    ax.hist(v, bins=bins, color=color, alpha=alpha, label=label, log=log, histtype="stepfilled",
            edgecolor=color, linewidth=0.6)
    for i, (name, pair) in enumerate((marks or {}).items()):
        ls, c = _MARK_STYLES[i % len(_MARK_STYLES)]
        first = True
        for x in pair:
            if x is None:
                continue
            ax.axvline(float(x), ls=ls, color=c, lw=1.3, label=name if first else None)
            first = False
    ax.set(xlabel="activation value", ylabel="count (log scale)" if log else "count")
    return ax
