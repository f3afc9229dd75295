"""``GET /ctr``: live counters and CTR from Redis, the numbers ``bertctr stats --json`` prints.

The body is the stats document (the same reader builds both), narrowed to
the item, variant and segment asked for, plus ``selected``: the counts of
the narrowest scope asked for, in the chosen ``window`` (all time, the
last hour or the last minute of event time), so a dashboard tile needs one
number, not a walk through the document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.state import ApiState, api_state
from streams.readers import read_stats

__all__ = ["router"]

router = APIRouter(tags=["counters"])

Window = Literal["all", "hour", "minute"]
_WINDOW_KEY = {"hour": "last_hour", "minute": "last_minute"}
_Name = Annotated[str | None, Query(min_length=1, max_length=1024)]


class Counts(BaseModel):
    """Impressions, clicks and their ratio (``null`` without impressions)."""

    impressions: int
    clicks: int
    ctr: float | None


class Selected(Counts):
    """The counts of the narrowest scope asked for, in the chosen window."""

    scope: str = Field(
        description="total, item, variant, segment, item-variant-segment or variant-across-items."
    )
    window: Window


class CtrResponse(BaseModel):
    """The ``bertctr stats --json`` document, narrowed, plus ``selected``."""

    view: str
    clock: float | None = Field(description="Newest impression time counted (epoch s).")
    total: dict[str, Any]
    items: dict[str, Any]
    segments: dict[str, Any]
    model: dict[str, Any] | None
    encoder: dict[str, Any] | None
    selected: Selected


def _pick(
    stats: dict[str, Any], item: str | None, variant: str | None, segment: str | None
) -> tuple[str, dict[str, Any]]:
    """(scope kind, its counts) for the narrowest scope asked for."""
    if item is None and variant is not None:
        return "variant-across-items", _summed(stats, variant, segment)
    if item is None:
        if segment is None:
            return "total", stats["total"]
        return "segment", stats["segments"].get(segment, {})
    entry = stats["items"].get(item, {})
    if variant is None:
        return "item", entry
    cell = entry.get("variants", {}).get(variant, {})
    if segment is None:
        return "variant", cell
    return "item-variant-segment", cell.get("segments", {}).get(segment, {})


def _summed(stats: dict[str, Any], variant: str, segment: str | None) -> dict[str, Any]:
    """One variant name's counts summed over items (e.g. every ``grayscale`` variant)."""
    cells = [e.get("variants", {}).get(variant) for e in stats["items"].values()]
    if segment is not None:
        cells = [c.get("segments", {}).get(segment) if c else None for c in cells]
    found = [c for c in cells if c]
    out: dict[str, Any] = {}
    for window in ("", "last_hour", "last_minute"):
        parts = [c.get(window, {}) if window else c for c in found]
        imp = sum(int(p.get("impressions", 0)) for p in parts)
        clk = sum(int(p.get("clicks", 0)) for p in parts)
        summary = {"impressions": imp, "clicks": clk, "ctr": clk / imp if imp else None}
        if window:
            out[window] = summary
        else:
            out.update(summary)
    return out


def _in_window(counts: dict[str, Any], window: Window) -> dict[str, Any]:
    chosen = counts.get(_WINDOW_KEY[window], {}) if window != "all" else counts
    return {
        "impressions": int(chosen.get("impressions", 0)),
        "clicks": int(chosen.get("clicks", 0)),
        "ctr": chosen.get("ctr"),
    }


@router.get("/ctr", response_model=CtrResponse)
async def ctr(
    state: Annotated[ApiState, Depends(api_state)],
    item: _Name = None,
    variant: _Name = None,
    segment: _Name = None,
    window: Window = "all",
    view: Literal["live", "settled"] = "live",
) -> dict[str, Any]:
    """Live CTR by item, visual variant and audience segment.

    ``segment`` is the canonical segment key (``device=mobile,geo=DE``).
    ``variant`` without ``item`` sums that variant name over items. Unknown
    names give zero counts, not 404: a dashboard asking before the first
    impression is not an error.
    """
    stats = await read_stats(state.redis, state.keys, item, segment, view)
    if variant is not None and item is None and segment is not None:
        # the per-segment cells of every item are read only when an item is named
        stats = await read_stats(state.redis, state.keys, None, segment, view)
    if variant is not None:
        for entry in stats["items"].values():
            entry["variants"] = {v: c for v, c in entry.get("variants", {}).items() if v == variant}
    scope, counts = _pick(stats, item, variant, segment)
    stats["selected"] = {"scope": scope, "window": window, **_in_window(counts, window)}
    return stats
