"""The report's PNG plots, drawn with matplotlib's Agg canvas from plain data.

Each function takes a section's data and a path, writes one PNG and returns
the path. Figures are made with :class:`matplotlib.figure.Figure` and the Agg
canvas directly (no pyplot, no global state, no display), with matplotlib's
bundled DejaVu fonts: nothing is fetched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from scipy import stats

from api.series import CtrSeriesData
from bertctr.report.data import AbItem, DriversGrid, NeData, ReliabilityBand

__all__ = [
    "MIN_POINT_IMPRESSIONS",
    "ORACLE_FROM",
    "THUMBNAIL_PX",
    "ab_plot",
    "ctr_plot",
    "drivers_heatmap",
    "ne_plot",
    "reliability_plot",
    "thumbnail",
]

#: a minute's CTR on fewer impressions is not drawn (the live page's rule)
MIN_POINT_IMPRESSIONS = 10
#: the oracle's NE is drawn from this many examples on
ORACLE_FROM = 100
#: the longest side of a thumbnail
THUMBNAIL_PX = 96
_DPI = 100


def _figure(width: float = 9.0, height: float = 4.0, right: float = 0.97) -> Figure:
    """A figure with fixed margins: a layout engine would cost a draw of every figure more."""
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.09, right=right, bottom=0.15, top=0.95, hspace=0.45)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _pooled(values: Sequence[int], width: int) -> list[int]:
    return [sum(values[i : i + width]) for i in range(0, len(values), width)]


def ctr_plot(data: CtrSeriesData, path: Path, most_points: int = 24) -> Path:
    """CTR over event time, one line per segment, all segments dashed.

    Minutes are pooled (impressions and clicks summed) so that a line has
    at most ``most_points`` points: one minute of one segment is mostly noise.
    """
    shown = [*data.series, *([data.total] if data.total is not None else [])]
    # the window starts at its first counted minute: a short run is not drawn in a corner
    busy = [i for i in range(len(data.t)) if any(s.impressions[i] for s in shown)]
    first = busy[0] if busy else 0
    width = max(1, math.ceil((len(data.t) - first) / most_points))
    fig = _figure(10.0, 4.0, right=0.62)
    ax = fig.add_subplot()
    starts = [int(t) for t in data.t[first::width]]
    when = np.array(starts, dtype="datetime64[s]")  # UTC
    for s in shown:
        imps = _pooled(s.impressions[first:], width)
        clicks = _pooled(s.clicks[first:], width)
        ctr = [
            c / n if n >= MIN_POINT_IMPRESSIONS else math.nan
            for c, n in zip(clicks, imps, strict=True)
        ]
        total = s is data.total
        ax.plot(
            when,
            ctr,
            marker="." if not total else None,
            linestyle="--" if total else "-",
            color="black" if total else None,
            linewidth=2.0 if total else 1.0,
            alpha=1.0 if total else 0.8,
            label=f"{s.name} ({s.window_impressions:,} imp.)",
        )
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    # concise: minutes as HH:MM, seconds only where the ticks need them, never a tick twice
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_xlabel(f"event time (UTC), {width}-minute buckets")
    ax.set_ylabel("CTR")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if shown:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def ne_plot(data: NeData, path: Path) -> Path:
    """The model's NE over examples learned, beside the oracle's when known."""
    fig = _figure()
    ax = fig.add_subplot()
    points = [p for p in data.points if p.get("ne") is not None]
    ax.plot(
        [p["count"] for p in points],
        [p["ne"] for p in points],
        marker=".",
        label="model (progressive NE)",
    )
    # the oracle from where the model's history starts (and 100 examples): before that
    # an NE of a handful of labels is noise that would set the axis
    first = max(ORACLE_FROM, points[0]["count"] if points else 0)
    oracle = [(n, v) for n, v in data.oracle or [] if n >= first]
    if oracle:
        ax.plot(
            [n for n, _ in oracle],
            [v for _, v in oracle],
            linestyle="--",
            color="black",
            label="oracle (the simulator's true CTRs)",
        )
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":", label="NE 1: the average CTR")
    ax.set_xlabel("examples learned")
    ax.set_ylabel("normalised entropy (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def reliability_plot(bands: Sequence[ReliabilityBand], path: Path) -> Path:
    """Observed against predicted CTR per band, dot area by examples; the diagonal is calibrated."""
    fig = _figure(5.5, 5.0)
    fig.subplots_adjust(left=0.15, bottom=0.12)
    ax = fig.add_subplot()
    top = max([0.01, *(b.predicted for b in bands), *(b.observed for b in bands)]) * 1.1
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="calibrated")
    counts = np.array([b.count for b in bands], dtype=float)
    sizes = 20 + 300 * counts / counts.max() if len(counts) else counts
    ax.scatter(
        [b.predicted for b in bands],
        [b.observed for b in bands],
        s=sizes,
        alpha=0.7,
        label="band of predictions (area: examples)",
    )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted CTR (mean of the band)")
    ax.set_ylabel("observed CTR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def ab_plot(items: Sequence[AbItem], path: Path) -> Path:
    """Each item's variants' Beta posteriors of CTR, one panel per item."""
    panels = max(1, len(items))
    fig = _figure(9.0, 2.6 * panels)
    fig.subplots_adjust(left=0.04, bottom=0.5 / (2.6 * panels), top=1 - 0.3 / (2.6 * panels))
    axes = fig.subplots(max(1, len(items)), 1, squeeze=False)[:, 0]
    for ax, item in zip(axes, items, strict=False):
        lo = min(stats.beta.ppf(0.0005, a.alpha, a.beta) for a in item.arms)
        hi = max(stats.beta.ppf(0.9995, a.alpha, a.beta) for a in item.arms)
        x = np.linspace(lo, hi, 400)
        for arm in item.arms:
            label = f"{arm.name}{' (control)' if arm.is_control else ''}: {arm.clicks}/"
            label += f"{arm.impressions:,}, P(best) {arm.chance_to_win:.0%}"
            ax.plot(x, stats.beta.pdf(x, arm.alpha, arm.beta), label=label)
        ax.set_title(f"item {item.item_id}: {item.decision}", fontsize=9, loc="left")
        ax.set_xlabel("CTR")
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)


def drivers_heatmap(grid: DriversGrid, path: Path) -> Path:
    """Effects per (segment group, attribute) on a diverging scale; ``*`` marks significance."""
    values = np.array(
        [[math.nan if v is None else v for v in row] for row in grid.effects], dtype=float
    )
    height = max(2.5, 1.2 + 0.45 * len(grid.groups))
    fig = _figure(max(5.0, 1.0 + 0.9 * len(grid.attributes)) + 2.0, height)
    fig.subplots_adjust(left=0.2, bottom=1.0 / height, right=0.9)
    ax = fig.add_subplot()
    finite = np.abs(values[np.isfinite(values)])
    # a robust bound: one wild estimate on few images must not wash the others out
    bound = float(np.quantile(finite, 0.9)) if finite.size else 1.0
    bound = bound if bound > 0 else 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_facecolor("#dddddd")  # not estimated
    for i, row in enumerate(grid.significant):
        for j, marked in enumerate(row):
            if marked:
                ax.text(j, i, "*", ha="center", va="center", fontsize=14, color="black")
    ax.set_xticks(range(len(grid.attributes)), grid.attributes, rotation=30, ha="right")
    ax.set_yticks(range(len(grid.groups)), grid.groups)
    fig.colorbar(image, ax=ax, label=grid.label)
    return _save(fig, path)


def thumbnail(data: bytes, path: Path, size: int = THUMBNAIL_PX) -> Path:
    """The image shrunk to ``size`` px on its longest side, as PNG (``OSError``: unreadable)."""
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((size, size))
        path.parent.mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(path, format="PNG")
    return path
