"""What a fine-tuning run leaves behind for a human: ``report.json`` and ``loss_curve.png``.

A head that ships changes every embedding, so whoever approves it (or asks
later why the CTR moved) needs the numbers in one file: the window it was
trained on, the examples and clicks in each time split, held-out log loss
and AUC before and after, the time and memory it took. The loss curve shows
at a glance what the numbers cannot: whether validation loss bottomed out
(early stopping did its job) or was still falling (more epochs or data would
help), and how far train and held-out loss drift apart (overfitting).

The chart is drawn with PIL alone: the project keeps plotting libraries out
of its dependencies, and two axes with three polylines need none.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from encoder_server.training.fitted import EpochLoss
from encoder_server.training.result import FinetuneResult

__all__ = ["draw_loss_curve", "write_report"]

log = logging.getLogger(__name__)

#: (name, colour) of each curve, in drawing order
_SERIES = (("train", (31, 119, 180)), ("validation", (255, 127, 14)), ("holdout", (44, 160, 44)))
_MARGIN = (70, 40, 20, 50)  # left, top, right, bottom


def write_report(
    result: FinetuneResult,
    directory: Path | str,
    window: Mapping[str, Any],
    *,
    size: tuple[int, int] = (800, 480),
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``loss_curve.png`` into ``directory`` (created if missing).

    ``window`` is whatever the job knows about its input (time range,
    topics, model version that produced the offsets); values JSON cannot
    hold (datetimes) are written as strings.

    Returns the two paths.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report = {"window": dict(window), **result.to_dict()}
    report_path = out / "report.json"
    report_path.write_text(json.dumps(report, indent=2, default=str, allow_nan=False) + "\n")
    curve_path = out / "loss_curve.png"
    draw_loss_curve(result.curve, curve_path, best_epoch=result.best_epoch, size=size)
    log.info("fine-tuning report written to %s and %s", report_path, curve_path)
    return report_path, curve_path


def draw_loss_curve(
    curve: Sequence[EpochLoss],
    path: Path | str,
    *,
    best_epoch: int | None = None,
    size: tuple[int, int] = (800, 480),
) -> None:
    """Plot train, validation and held-out log loss per epoch as a PNG of ``size`` pixels.

    A grey vertical line marks ``best_epoch``, the parameters kept.
    """
    width, height = size
    left, top, right, bottom = _MARGIN
    if width < left + right + 20 or height < top + bottom + 20:
        raise ValueError(f"size {size} leaves no room for the plot")
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    x0, y0, x1, y1 = left, top, width - right, height - bottom

    values = [v for e in curve for v in (e.train, e.validation, e.holdout) if math.isfinite(v)] or [
        0.0,
        1.0,
    ]
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or 0.01
    low, high = low - pad, high + pad
    last = max((e.epoch for e in curve), default=1) or 1

    def px(epoch: float, loss: float) -> tuple[float, float]:
        return (
            x0 + (x1 - x0) * epoch / last,
            y1 - (y1 - y0) * (loss - low) / (high - low),
        )

    # axes, ticks and tick labels
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill="black", width=1)
    for i in range(6):
        loss = low + (high - low) * i / 5
        _, y = px(0, loss)
        draw.line([(x0 - 5, y), (x0, y)], fill="black")
        draw.line([(x0 + 1, y), (x1, y)], fill=(235, 235, 235))
        _text(draw, (x0 - 8, y), f"{loss:.4f}", "black", font, "rm")
    step = max(1, math.ceil(last / 10))
    for epoch in range(0, last + 1, step):
        x, _ = px(epoch, low)
        draw.line([(x, y1), (x, y1 + 5)], fill="black")
        _text(draw, (x, y1 + 8), str(epoch), "black", font, "mt")
    _text(draw, ((x0 + x1) / 2, height - 8), "epoch", "black", font, "mb")
    _text(draw, (8, 8), "log loss (nats / example)", "black", font, "lt")

    if best_epoch is not None and 0 <= best_epoch <= last:
        x, _ = px(best_epoch, low)
        draw.line([(x, y0), (x, y1)], fill=(150, 150, 150), width=1)
        # in the top margin, clear of the curves and the legend
        _text(draw, (x1, 8), f"kept: epoch {best_epoch} (grey line)", (90, 90, 90), font, "rt")

    for row, (name, colour) in enumerate(_SERIES):
        points = [px(e.epoch, getattr(e, name)) for e in curve if math.isfinite(getattr(e, name))]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        elif points:
            x, y = points[0]
            draw.ellipse([(x - 2, y - 2), (x + 2, y + 2)], fill=colour)
        # legend, top right
        ly = y0 + 6 + 16 * row
        draw.line([(x1 - 110, ly), (x1 - 90, ly)], fill=colour, width=2)
        _text(draw, (x1 - 84, ly), name, "black", font, "lm")
    image.save(Path(path), format="PNG")


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    fill: str | tuple[int, int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    anchor: str,
) -> None:
    """Draw ``text`` anchored like PIL's two-letter anchors (``"rm"``: right, middle).

    Done by hand from the text's box because PIL's own ``anchor`` needs a
    FreeType font, and the default font is a bitmap one where FreeType is
    missing.
    """
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    x, y = xy
    x -= {"l": x0, "m": (x0 + x1) / 2, "r": x1}[anchor[0]]
    y -= {"t": y0, "m": (y0 + y1) / 2, "b": y1}[anchor[1]]
    draw.text((x, y), text, fill=fill, font=font)
