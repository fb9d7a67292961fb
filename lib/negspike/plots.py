"""One visual style for the book's figures, and small helpers to save them.

Every chapter calls :func:`use_style` once, before its first plot, so that all figures
share fonts, colours, grid and resolution. Colours for the recurring actors of the book
(IF neuron, signed neuron, IBT, the ANN reference, error bounds) are fixed in
:data:`COLORS` so that "the signed neuron" has the same colour in every chapter, and
:data:`METHOD_COLORS` gives every compared method (conversion or calibration) one colour of
its own. Figures are at most :data:`FIG_WIDTH` inches wide, so that the book shows them
unscaled and their text stays readable; :func:`zoom_figure`, :func:`mark_zoom`,
:func:`zoom_limits` and :func:`settled_T` zoom on the band a text discusses while keeping
the full range in view.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from .results import RESULTS_DIR, atomic_write

__all__ = ["COLORS", "METHOD_COLORS", "METHOD_LABELS", "PALETTE", "RESULTS_DIR", "FIG_WIDTH", "use_style", "savefig", "figure_path",
           "sawtooth", "STAGE_COLORS", "threshold_histogram", "zoom_limits", "settled_T",
           "zoom_figure", "mark_zoom", "zoom_on_ann", "legend_panel"]

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
    "tracking": (0.60, 0.05, 0.10),  # dark red: the book's own tracking neuron (negspike.tracking)
    "pair": (0.45, 0.30, 0.05),  # dark brown: the book's own pair of tracking units
}

#: One colour per *method* (a conversion or calibration the book compares), the same in every chapter.
#: The keys name what is compared: neurons on untuned thresholds ("if", "ibt", "signed"), the signed
#: neuron after threshold optimisation without calibration ("none"), the calibrations ("layerwise",
#: "average", "cosine", "sigmoid"), the CIFAR-10 methods ("two_stage", "joint" = joint cosine) and the
#: peer library ("spikingjelly"). The ANN reference is dark grey and dashed wherever it is drawn.
METHOD_COLORS: dict[str, tuple[float, float, float]] = {
    "ann": COLORS["ann"],
    "if": COLORS["if"],
    "ibt": COLORS["ibt"],
    "signed": COLORS["signed"],
    "none": _pal[4],  # signed neuron, threshold optimisation, no calibration
    "layerwise": (0.0, 0.40, 0.50),  # dark teal: apart from the warm colours of IBT, two-stage and cosine
    "average": _pal[9],
    "cosine": _pal[3],  # the paper's method: joint calibration, cosine weighting
    "sigmoid": (0.33, 0.20, 0.55),  # dark violet: the palette's remaining colours are too pale on white
    "two_stage": COLORS["ibt"],  # IBT neurons + layer-wise calibration
    "joint": _pal[3],  # joint cosine calibration, as "cosine"
    "spikingjelly": _pal[7],
    "tracking": COLORS["tracking"],
    "pair": COLORS["pair"],
    # the book's own neuron (not the paper's) after threshold optimisation: uncalibrated, calibrated
    "own_none": (0.85, 0.45, 0.45),  # light red
    "own_cosine": COLORS["tracking"],
    "own": COLORS["tracking"],  # CIFAR-10: the own neuron, joint cosine calibration
}

#: One short label per method of :data:`METHOD_COLORS` (legends, tables): the same words in every chapter.
METHOD_LABELS: dict[str, str] = {
    "none": "no calibration",
    "layerwise": "layer-wise",
    "average": "joint, average",
    "cosine": "joint, cosine",
    "sigmoid": "joint, sigmoid",
    "own_none": "own neuron, no calibration",
    "own_cosine": "own neuron, joint, cosine",
}

#: Width in inches of a figure that fills the book's content column (about 750 px at the default
#: dpi of 110) without being scaled down; wider figures shrink, and their fonts with them.
FIG_WIDTH = 6.8

def use_style(dpi: int = 110, context: str = "notebook") -> None:
    """Set the book's plotting style: seaborn ``whitegrid``, the colour-blind palette, ``dpi``.

    Call it once at the top of a chapter; it changes matplotlib's global ``rcParams``. Fonts are
    sized for a figure at most :data:`FIG_WIDTH` inches wide, which the book shows unscaled, so
    tick labels and legends stay at 9.5 pt or more on the page.
    """
    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    mpl.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": 2 * dpi,
            "savefig.bbox": "tight",
            "figure.figsize": (6.4, 3.8),
            "figure.constrained_layout.use": True,
            "axes.titleweight": "bold",
            "legend.frameon": True,
            "legend.framealpha": 0.9,
            "lines.linewidth": 1.8,
            # Readable at the rendered size: no text below 9.5 pt on a figure of FIG_WIDTH inches.
            "font.size": 11,
            "axes.labelsize": 11,
            "axes.titlesize": 11.5,
            "figure.titlesize": 12,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "legend.fontsize": 9.5,
            "legend.title_fontsize": 10,
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


def zoom_limits(values, pad: float = 0.15, floor: float | None = None, ceil: float | None = None) -> tuple[float, float]:
    """Axis limits around ``values`` (NaNs ignored) with ``pad`` of their span on either side.

    ``floor`` and ``ceil`` clip the limits (for example 0 and 100 for percentages). A zero span
    gets a pad of 1 unit, so a flat curve still shows.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite values to zoom on")
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else 1.0
    lo, hi = lo - pad * span, hi + pad * span
    if floor is not None:
        lo = max(lo, floor)
    if ceil is not None:
        hi = min(hi, ceil)
    return lo, hi


def settled_T(wide, ref: float, tol: float) -> int:
    """The first T from which every curve stays within ``tol`` below ``ref``: where a zoom starts.

    ``wide`` has one row per T (its index) and one column per curve; ``ref`` and ``tol`` are in
    the curves' units (for example an ANN accuracy and 0.03). Returns the last T when no such
    T exists, so that the zoomed panel is never empty.
    """
    ok = (wide >= ref - tol).all(axis=1)
    bad = ok.index[~ok.to_numpy()]
    if len(bad) == 0:
        return int(ok.index.min())
    return int(min(bad.max() + 1, ok.index.max()))


def zoom_figure(height: float = 5.6, ratio: float = 2.6) -> tuple[plt.Figure, plt.Axes, plt.Axes]:
    """A figure of :data:`FIG_WIDTH` with a short full-range panel above a tall zoomed panel.

    Returns ``(fig, ax_full, ax_zoom)``. Draw the same curves into both, set the zoomed
    panel's limits, then call :func:`mark_zoom` so that the full-range panel shades the band
    the zoomed panel shows. A second panel, unlike an inset, hides no data.
    """
    fig, (ax_full, ax_zoom) = plt.subplots(2, 1, figsize=(FIG_WIDTH, height), height_ratios=(1, ratio))
    return fig, ax_full, ax_zoom


def mark_zoom(ax_full: plt.Axes, ax_zoom: plt.Axes) -> None:
    """Shade, in ``ax_full``, the x and y range that ``ax_zoom`` shows."""
    (x0, x1), (y0, y1) = ax_zoom.get_xlim(), ax_zoom.get_ylim()
    ax_full.add_patch(mpl.patches.Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor="0.5", alpha=0.18, lw=0,
                                            zorder=0))
    ax_full.set_title("full range (shaded: the panel below)", fontsize=10, fontweight="normal")


def zoom_on_ann(ax_full: plt.Axes, ax: plt.Axes, wide, ann_acc: float, T_max: int, title: str,
                ncol: int = 3, legend_y: float = -0.16) -> int:
    """Finish a :func:`zoom_figure` of accuracy (fractions, drawn in %) against T in both panels:
    the full panel from 0 to 100 %, the zoom from the first T at which every curve of ``wide``
    (one column per curve, T as index) stays within 3 points of ``ann_acc``, scaled to the
    curves there and the ANN; the legend below the zoom, the zoom shaded in the full panel.
    ``title`` may name ``{T_zoom}``. Returns the first T of the zoom."""
    ax_full.set(ylabel="accuracy (%)", ylim=(0, 100))
    T_zoom = settled_T(wide, ann_acc, 0.03)
    in_band = np.append(wide[wide.index >= T_zoom].to_numpy().ravel(), ann_acc)
    ax.set(xlabel="time steps T", ylabel="test accuracy (%)", xlim=(T_zoom - 0.5, T_max + 0.5),
           ylim=zoom_limits(100 * in_band, pad=0.08, ceil=100), title=title.format(T_zoom=T_zoom))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, legend_y), ncol=ncol, fontsize=9.5)
    mark_zoom(ax_full, ax)
    return T_zoom


def legend_panel(axes, title: str) -> None:
    """In a 2 x 2 grid whose fourth panel is left for it, the first panel's legend in the fourth."""
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[1, 1].axis("off")
    axes[1, 1].legend(handles, labels, loc="center", title=title)
