"""One function per section of the report: plain data in, a titled piece of HTML out.

A section's plots are written as PNG files under the report's folder and
referenced by relative paths, so ``index.html`` and its images move
together. Data that is :class:`~bertctr.report.data.Unavailable` becomes
"not available: <reason>"; a section never raises for missing data. All
text from Redis or callers is escaped (:func:`html.escape`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from api.series import CtrSeriesData, ImageCell
from bertctr.report import plots
from bertctr.report.data import (
    AbItem,
    DriversGrid,
    EncoderHistory,
    ImagesData,
    NeData,
    ReliabilityBand,
    Unavailable,
)

__all__ = [
    "PLOTS_DIR",
    "THUMBS_DIR",
    "Section",
    "ab_section",
    "ctr_section",
    "drivers_section",
    "encoder_section",
    "images_section",
    "ne_section",
    "ope_section",
    "quality_section",
    "reliability_section",
    "table",
    "unavailable",
]

log = logging.getLogger(__name__)

#: folders beside ``index.html``
PLOTS_DIR = "plots"
THUMBS_DIR = "thumbs"


@dataclass(frozen=True)
class Section:
    """A titled part of the page; ``body`` is HTML, already escaped."""

    id: str
    title: str
    body: str
    available: bool = True


def unavailable(section_id: str, title: str, reason: str) -> Section:
    """The section that says why it has nothing to show."""
    body = f'<p class="missing">not available: {escape(reason)}</p>'
    return Section(section_id, title, body, available=False)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of dict rows (columns: as given, else every key in order of appearance)."""
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(src: str, alt: str, css: str = "plot") -> str:
    return f'<img class="{css}" src="{escape(src)}" alt="{escape(alt)}">'


def _when(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts):
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ctr_section(data: CtrSeriesData | Unavailable, out: Path) -> Section:
    """CTR per minute of event time for the busiest segments, and all segments together."""
    sid, title = "ctr", "CTR over time per segment"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    if not data.t or (data.total is not None and data.total.window_impressions == 0):
        return unavailable(sid, title, "no impressions counted in the window")
    plots.ctr_plot(data, out / PLOTS_DIR / "ctr.png")
    rows = [
        {
            "segment": s.name,
            "impressions": s.window_impressions,
            "clicks": s.window_clicks,
            "CTR": s.window_ctr,
        }
        for s in [*data.series, *([data.total] if data.total is not None else [])]
    ]
    body = (
        f"<p>The live counters' minute buckets ({escape(data.view)} view), "
        f"{data.minutes} minutes of event time ending {_when(data.clock)}; the "
        f"{len(data.series)} segments with the most impressions"
        f"{f' ({data.omitted} more left out)' if data.omitted else ''}. A minute with fewer "
        f"than {plots.MIN_POINT_IMPRESSIONS} impressions is not drawn.</p>"
        + _img(f"{PLOTS_DIR}/ctr.png", "CTR per minute by segment")
        + table(rows)
    )
    return Section(sid, title, body)


def ne_section(data: NeData | Unavailable, out: Path) -> Section:
    """The model's progressive NE as it learned, beside the oracle's on a simulation."""
    sid, title = "ne", "Model quality over time (NE)"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    if not any(p.get("ne") is not None for p in data.points):
        return unavailable(sid, title, "the model's history has no NE yet")
    plots.ne_plot(data, out / PLOTS_DIR / "ne.png")
    oracle = (
        f" The dashed line is the oracle: the simulator's true click probabilities scored on "
        f"the same labels (final NE {data.oracle[-1][1]:.4f}); the gap is what the model "
        "has left to learn."
        if data.oracle
        else " No oracle: this run is not a simulation (the demo passes the simulator's)."
    )
    latest = f" Latest NE {data.latest_ne:.4f}." if data.latest_ne is not None else ""
    body = (
        "<p>Normalised entropy (log loss over the entropy of the observed CTR; 1 is no "
        "better than predicting the average) of the online model's progressive validation, "
        f"from <code>model:history</code> ({len(data.points)} points).{latest}{oracle}</p>"
        + _img(f"{PLOTS_DIR}/ne.png", "NE over examples learned")
    )
    return Section(sid, title, body)


def reliability_section(data: Sequence[ReliabilityBand] | Unavailable, out: Path) -> Section:
    """Predicted against observed CTR per band of predictions."""
    sid, title = "reliability", "Reliability diagram"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    if not data:
        return unavailable(sid, title, "the model has scored no examples yet")
    plots.reliability_plot(data, out / PLOTS_DIR / "reliability.png")
    rows = [
        {"predicted CTR": b.predicted, "observed CTR": b.observed, "examples": round(b.count)}
        for b in data
    ]
    body = (
        "<p>Every example the model scored before learning it, grouped by its predicted "
        "CTR (bands of 0.5 logit): a calibrated model's points lie on the diagonal. From "
        "the <code>reliability</code> rows of <code>model:metrics</code>.</p>"
        + _img(f"{PLOTS_DIR}/reliability.png", "reliability diagram", "plot square")
        + table(rows)
    )
    return Section(sid, title, body)


def _thumb_name(image_id: str) -> str:
    # a file name from any identifier: ids may hold characters a path should not
    return hashlib.sha256(image_id.encode()).hexdigest()[:24] + ".png"


def _image_card(cell: ImageCell, data: ImagesData, out: Path) -> str:
    picture = '<div class="nothumb">no image</div>'
    if cell.image_id is not None and cell.image_id in data.images:
        name = f"{THUMBS_DIR}/{_thumb_name(cell.image_id)}"
        try:
            plots.thumbnail(data.images[cell.image_id], out / name)
            picture = _img(name, cell.image_id, "thumb")
        except OSError as exc:
            log.warning("no thumbnail for %r: %s", cell.image_id, exc)
    if data.tags is None:
        tags = "tags: not computed"
    else:
        found = data.tags.get(cell.image_id or "")
        tags = "tags: " + (", ".join(found) if found else "not described yet")
    ctr = "-" if cell.ctr is None else f"{cell.ctr:.2%}"
    return (
        f'<figure class="card">{picture}<figcaption><b>{escape(cell.item_id)}</b> '
        f"{escape(cell.variant)}<br>{escape(cell.title)}<br>CTR {ctr} on "
        f"{cell.impressions:,} (ranked {cell.score:.2%})<br>"
        f'<span class="tags">{escape(tags)}</span></figcaption></figure>'
    )


def images_section(data: ImagesData | Unavailable, out: Path) -> Section:
    """The best and worst images (item variants), all segments together, with thumbnails."""
    sid, title = "images", "Top and bottom images"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    ranking = data.ranking
    if not ranking.top:
        return unavailable(
            sid, title, f"no image has {ranking.min_impressions} impressions or more yet"
        )
    prior = "-" if ranking.prior_ctr is None else f"{ranking.prior_ctr:.2%}"
    cards = {
        side: "".join(_image_card(c, data, out) for c in cells)
        for side, cells in (("top", ranking.top), ("bottom", ranking.bottom))
    }
    body = (
        f"<p>Item variants of the {ranking.items_considered} busiest items with at least "
        f"{ranking.min_impressions} impressions ({ranking.candidates} candidates), ranked by "
        f"their CTR shrunk towards the CTR of them all ({prior}, worth "
        f"{ranking.prior_strength:g} impressions), so two lucky clicks do not make a best "
        f'image.</p><h3>Best</h3><div class="cards">{cards["top"]}</div>'
        f'<h3>Worst</h3><div class="cards">{cards["bottom"]}</div>'
    )
    return Section(sid, title, body)


def ab_section(data: Sequence[AbItem] | Unavailable, out: Path) -> Section:
    """Posteriors of the variants of the busiest items, with each test's verdict."""
    sid, title = "ab", "A/B posteriors of the top items"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    tested = [item for item in data if len(item.arms) > 1]
    if not tested:
        return unavailable(sid, title, "no item with two or more variants shown yet")
    plots.ab_plot(tested, out / PLOTS_DIR / "ab.png")
    rows = [
        {
            "item": item.item_id,
            "variant": arm.name + (" (control)" if arm.is_control else ""),
            "impressions": arm.impressions,
            "clicks": arm.clicks,
            "posterior mean": arm.alpha / (arm.alpha + arm.beta),
            "chance to win": arm.chance_to_win,
            "uplift": arm.uplift,
            "uplift 95% low": arm.uplift_ci_low,
            "uplift 95% high": arm.uplift_ci_high,
            "verdict": item.message if i == 0 else "",
        }
        for item in tested
        for i, arm in enumerate(item.arms)
    ]
    body = (
        "<p>Each variant's Beta posterior of CTR over every segment (settled counts, the "
        "item's pooled prior), as <code>GET /ab/{item_id}</code> judges it, for the items "
        "with the most impressions.</p>"
        + _img(f"{PLOTS_DIR}/ab.png", "posteriors of each variant's CTR")
        + table(rows)
    )
    return Section(sid, title, body)


def encoder_section(data: EncoderHistory | Unavailable) -> Section:
    """Who serves, what the stream decided about each challenger, and the last fine-tuning."""
    sid, title = "encoder", "Encoder versions"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    if data.status is None and data.finetune is None and not data.counts:
        return unavailable(sid, title, "no encoder status: the workers learn without embeddings")
    status = data.status or {}
    parts = [
        "<p>From <code>encoder:status</code>, <code>encoder:decisions</code> and "
        "<code>encoder:finetune</code>.</p>",
        table(
            [
                {
                    "champion": status.get("champion"),
                    "champion version": status.get("champion_version"),
                    "challenger": status.get("challenger"),
                    "challenger version": status.get("challenger_version"),
                    "promotions": data.counts.get("promote", 0),
                    "retirements": data.counts.get("retire", 0),
                }
            ]
        ),
    ]
    decisions = [d for d in status.get("decisions") or [] if isinstance(d, dict)]
    if decisions:
        rows = [
            {
                "at": _when(d.get("at")),
                "decision": d.get("decision"),
                "champion": d.get("champion"),
                "challenger": d.get("challenger"),
                "reason": d.get("reason"),
                "examples": d.get("n"),
                "advantage": d.get("mean"),
                "low": d.get("lo"),
                "high": d.get("hi"),
            }
            for d in decisions
        ]
        parts += ["<h3>Decisions (oldest first)</h3>", table(rows)]
    else:
        parts.append("<p>No challenger has been decided yet.</p>")
    if data.finetune is not None:
        job = {**data.finetune}
        for key in ("at", "until"):
            if isinstance(job.get(key), int | float):
                job[key] = _when(float(job[key]))
        parts += ["<h3>Last fine-tuning job</h3>", table([job])]
    else:
        parts.append("<p>No fine-tuning job recorded.</p>")
    return Section(sid, title, "".join(parts))


def drivers_section(data: DriversGrid | Unavailable, out: Path) -> Section:
    """What drives clicks per audience: the heatmap of effects, significant ones marked."""
    sid, title = "drivers", "Drivers of clicks"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    if not data.groups or not data.attributes:
        return unavailable(sid, title, "no effect was estimated")
    plots.drivers_heatmap(data, out / PLOTS_DIR / "drivers.png")
    marked = sum(v for row in data.significant for v in row)
    level = f" at q = {data.q:g}" if data.q is not None else ""
    body = (
        f"<p>The {escape(data.label)} of each image attribute per segment group (numeric: "
        "+1 sd; a tag: present vs absent or vs the average level), estimated as "
        f"<code>GET /explain</code> does; <b>*</b> marks the {marked} significant after "
        f"Benjamini-Hochberg false-discovery-rate control{level}.</p>"
        + _img(f"{PLOTS_DIR}/drivers.png", "drivers heatmap")
    )
    return Section(sid, title, body)


def ope_section(data: Sequence[dict[str, Any]] | Unavailable) -> Section:
    """Off-policy estimates of other rankers from the logged propensities."""
    sid, title = "ope", "Off-policy evaluation"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    if not data:
        return unavailable(sid, title, "no policy was evaluated")
    body = "<p>Estimated CTR of each policy from the logged traffic (<code>bertctr ope</code>).</p>"
    return Section(sid, title, body + table(data))


def quality_section(data: Sequence[dict[str, Any]] | Unavailable) -> Section:
    """The model's quality per audience, with its flags."""
    sid, title = "quality", "Quality per audience"
    if isinstance(data, Unavailable):
        return unavailable(sid, title, data.reason)
    if not data:
        return unavailable(sid, title, "no segment has enough examples yet")
    body = "<p>Progressive NE, calibration and AUC per segment value, and what is flagged.</p>"
    return Section(sid, title, body + table(data))
