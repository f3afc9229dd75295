"""``GET /ctr``: live counters and CTR from Redis, the numbers ``bertctr stats --json`` prints.

The body is the stats document (the same reader builds both), narrowed to
the item, variant and segment asked for, plus ``selected``: the counts of
the narrowest scope asked for, in the chosen ``window`` (all time, the
last hour or the last minute of event time), so a dashboard tile needs one
number, not a walk through the document.

A ``segment`` that names only some fields (``geo=BR``) rolls up every
counted segment that has them. An item (or an item's variant) never counted
is a 404: it is a typo far more often than a dashboard early to ask.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
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
    segments_matched: int | None = Field(
        default=None,
        description="How many counted segments a partial segment (e.g. geo=BR) rolled up; "
        "null when no segment or a whole segment key was asked for.",
    )


class NotFound(BaseModel):
    """What was not found."""

    detail: str


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
    return _rolled_up([c for c in cells if c])


def _in_window(counts: dict[str, Any], window: Window) -> dict[str, Any]:
    chosen = counts.get(_WINDOW_KEY[window], {}) if window != "all" else counts
    return {
        "impressions": int(chosen.get("impressions", 0)),
        "clicks": int(chosen.get("clicks", 0)),
        "ctr": chosen.get("ctr"),
    }


def _fields(key: str) -> dict[str, str] | None:
    """``{"geo": "BR"}`` for ``geo=BR``; None if ``key`` is not ``k=v`` pairs."""
    try:
        pairs = [part.split("=", 1) for part in key.split(",")]
        fields = {k: v for k, v in pairs}
    except ValueError:
        return None
    return fields if all(fields) and all(fields.values()) else None


def matching_segments(known: list[str], asked: str) -> list[str] | None:
    """The counted segments that ``asked`` rolls up; None if it is a whole key (or no ``k=v``).

    >>> matching_segments(["device=m,geo=BR", "device=d,geo=BR", "device=m,geo=DE"], "geo=BR")
    ['device=m,geo=BR', 'device=d,geo=BR']
    >>> matching_segments(["device=m,geo=BR"], "device=m,geo=BR") is None
    True
    >>> matching_segments(["device=m,geo=BR"], "nonsense") is None
    True
    """
    if asked in known:
        return None
    fields = _fields(asked)
    if fields is None:
        return None
    out = []
    for key in known:
        have = _fields(key) or {}
        if all(have.get(k) == v for k, v in fields.items()):
            out.append(key)
    return out


def _rolled_up(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of several cells (segments, or one variant's items) added up, in every window."""
    out: dict[str, Any] = {}
    for window in ("", "last_hour", "last_minute"):
        parts = [c.get(window, {}) if window else c for c in cells]
        imp = sum(int(p.get("impressions", 0)) for p in parts)
        clk = sum(int(p.get("clicks", 0)) for p in parts)
        summary = {"impressions": imp, "clicks": clk, "ctr": clk / imp if imp else None}
        if window:
            out[window] = summary
        else:
            out.update(summary)
    return out


def _roll_up(stats: dict[str, Any], asked: str, matched: list[str]) -> None:
    """Replace ``matched`` segments by one ``asked`` entry, at every level of ``stats``."""
    segments = stats["segments"]
    stats["segments"] = {asked: _rolled_up([segments[m] for m in matched if m in segments])}
    for entry in stats["items"].values():
        for cell in entry.get("variants", {}).values():
            if "segments" in cell:
                per = cell["segments"]
                cell["segments"] = {asked: _rolled_up([per[m] for m in matched if m in per])}


@router.get(
    "/ctr",
    response_model=CtrResponse,
    responses={
        404: {"model": NotFound, "description": "The item or its variant was never counted."}
    },
)
async def ctr(
    state: Annotated[ApiState, Depends(api_state)],
    item: _Name = None,
    variant: _Name = None,
    segment: _Name = None,
    window: Window = "all",
    view: Literal["live", "settled"] = "live",
) -> dict[str, Any]:
    """Live CTR by item, visual variant and audience segment.

    ``segment`` is the canonical segment key (``device=mobile,geo=DE``), or
    some of its fields (``geo=DE``) to add up every segment that has them.
    ``variant`` without ``item`` sums that variant name over items. An
    unknown item, or an unknown variant of a known item, is a 404; an
    unknown segment gives zero counts.
    """
    known = sorted(
        s.decode() if isinstance(s, bytes) else str(s)
        for s in await state.redis.smembers(state.keys.segments_index)
    )
    matched = matching_segments(known, segment) if segment is not None else None
    exact = segment if matched is None else None
    stats = await read_stats(state.redis, state.keys, item, exact, view)
    if item is not None and item not in stats["items"]:
        raise HTTPException(status_code=404, detail=f"item {item!r} was never counted")
    across: dict[str, Any] | None = None
    if variant is not None and item is None and matched is not None and segment is not None:
        # a variant across items in a partial segment: each matched segment's cells, added up
        parts = [
            _summed(await read_stats(state.redis, state.keys, None, m, view), variant, m)
            for m in matched
        ]
        across = _rolled_up(parts)
    if variant is not None and item is None and segment is not None:
        # the per-segment cells of every item are read only when an item is named
        stats = await read_stats(state.redis, state.keys, None, exact, view)
    if variant is not None:
        if item is not None and variant not in stats["items"][item].get("variants", {}):
            raise HTTPException(
                status_code=404, detail=f"variant {variant!r} of item {item!r} was never counted"
            )
        for entry in stats["items"].values():
            entry["variants"] = {v: c for v, c in entry.get("variants", {}).items() if v == variant}
    if matched is not None and segment is not None:
        _roll_up(stats, segment, matched)
    if item is not None or variant is not None:
        # a question about an item is not a question about every segment's totals
        stats["segments"] = {k: v for k, v in stats["segments"].items() if k == segment}
    model = stats.get("model")
    if isinstance(model, dict) and segment is None and (item is not None or variant is not None):
        model["segments"] = {}
    scope, counts = _pick(stats, item, variant, segment)
    if across is not None:
        counts = across
    stats["selected"] = {
        "scope": scope,
        "window": window,
        **_in_window(counts, window),
        "segments_matched": len(matched) if matched is not None else None,
    }
    return stats
