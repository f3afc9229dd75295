"""``GET /explain`` and ``GET /explain/{segment}``: which visual attributes move CTR, per audience.

Counts come from the live counters per (item, variant, segment), each
variant's image from ``idx:media``; each image's attributes from the app's
:class:`~online_ctr.insights.AttributeSource` (``app.state.attribute_source``,
set in :func:`api.app.create_app`). Until a source knows some of the counted
images the answer is ``available: false`` with the ``reason``, never an empty
"nothing drives clicks"; a 200, since a young stream with nothing to explain
yet is a state, not a server failure (schemathesis counts every 5xx as one).
The estimate (:func:`online_ctr.insights.estimate_drivers`) covers
every segment group at once, so q-values are the same whichever audience is
asked about. Only the :data:`MAX_ITEMS` busiest items are read, so a request
stays bounded however large the catalogue.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from api.state import ApiState, api_state
from online_ctr.insights import (
    ALL,
    DEFAULT_Q,
    AttributeSource,
    CellCount,
    Drivers,
    Effect,
    NoAttributes,
    estimate_drivers,
    group_fields,
    roll_up,
)
from schemas.keys import KeySpace, View, item_scope, item_variant_segment_scope

__all__ = ["MAX_ITEMS", "NO_SOURCE", "attribute_source", "read_cells", "router"]

router = APIRouter(tags=["insights"])

#: items read per request: the busiest by impressions
MAX_ITEMS = 500
#: why /explain is unavailable until an attribute source is wired
NO_SOURCE = "no image attribute source is configured (the attribute cache is not wired yet)"
#: effects listed per direction at most
MAX_TOP = 50


class EffectOut(BaseModel):
    """One attribute's effect on the audience's CTR."""

    attribute: str = Field(description="Numeric attribute name, or tag (e.g. colour=red).")
    kind: Literal["numeric", "tag"]
    unit: str = Field(
        description="What the lift is for: '+1 sd' of a numeric attribute, the tag 'present "
        "vs absent', or a family level 'vs the average level'."
    )
    sd: float | None = Field(description="The standard deviation (numeric), in its own units.")
    lift: float = Field(description="Relative CTR change (0.1 = +10%).")
    lift_low: float = Field(description="95% interval, low end.")
    lift_high: float = Field(description="95% interval, high end.")
    log_odds: float
    p_value: float
    q_value: float = Field(description="Benjamini-Hochberg over every (group, attribute).")
    significant: bool = Field(description="q_value <= q.")
    impressions: int = Field(description="Impressions of the group's images in the fit.")
    images: int = Field(description="Images of the group in the fit.")
    images_with: int = Field(description="Images carrying the tag (numeric: every image).")


class GroupDrivers(BaseModel):
    """The attributes that move one audience's CTR most, up and down."""

    segment: str = Field(description="The segment group (taste=t1, all) or segment key.")
    impressions: int
    clicks: int
    images: int
    items: int
    unmeasured_images: int = Field(description="Counted images without attributes (left out).")
    skipped: str | None = Field(description="Why no effect was estimated; null when fitted.")
    up: list[EffectOut] = Field(description="Positive effects, strongest first.")
    down: list[EffectOut] = Field(description="Negative effects, strongest first.")


class ExplainResponse(BaseModel):
    """What drives clicks, for one audience or every segment group."""

    view: Literal["live", "settled"]
    q: float = Field(description="The false-discovery rate significance is held to.")
    within_items: bool = Field(description="Effects compare variants of the same item.")
    items_read: int = Field(description=f"Items whose counters were read (at most {MAX_ITEMS}).")
    available: bool = Field(
        default=True, description="False when nothing can be estimated yet; `reason` says why."
    )
    reason: str | None = Field(default=None, description="Why nothing is estimated (or null).")
    groups: list[GroupDrivers]


class NotFound(BaseModel):
    """Which segment matched nothing."""

    detail: str


async def attribute_source(request: Request) -> AttributeSource:
    """FastAPI dependency: the app's attribute source (none: :class:`NoAttributes`)."""
    source = getattr(request.app.state, "attribute_source", None)
    return source if source is not None else NoAttributes(NO_SOURCE)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: bytes | str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _image_of(blob: bytes | str) -> str | None:
    try:
        image = json.loads(blob)["image_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return image if isinstance(image, str) and image else None


async def read_cells(
    client: aioredis.Redis, keys: KeySpace, view: View, max_items: int = MAX_ITEMS
) -> tuple[list[CellCount], int]:
    """(counts per (image, full segment), items read) of the busiest ``max_items`` items."""
    items = sorted(_text(i) for i in await client.smembers(keys.items_index))
    segments = sorted(_text(s) for s in await client.smembers(keys.segments_index))
    parsed = {s: f for s in segments if (f := group_fields(s))}
    async with client.pipeline(transaction=False) as pipe:
        for item in items:
            pipe.hget(keys.counter(item_scope(item), view), "impressions")
        totals = await pipe.execute()
    impressions = {i: _int(t) for i, t in zip(items, totals, strict=True)}
    busiest = sorted((i for i in items if impressions[i] > 0), key=lambda i: -impressions[i])
    busiest = busiest[:max_items]
    async with client.pipeline(transaction=False) as pipe:
        for item in busiest:
            pipe.hgetall(keys.variant_media(item))
        media = await pipe.execute()
    images: dict[tuple[str, str], str] = {}
    for item, raw in zip(busiest, media, strict=True):
        for variant, blob in raw.items():
            image = _image_of(blob)
            if image is not None:
                images[(item, _text(variant))] = image
    wanted = [(item, variant, s) for item, variant in images for s in parsed]
    async with client.pipeline(transaction=False) as pipe:
        for item, variant, segment in wanted:
            scope = item_variant_segment_scope(item, variant, segment)
            pipe.hmget(keys.counter(scope, view), ["impressions", "clicks"])
        raw_counts = await pipe.execute()
    cells = []
    for (item, variant, segment), (imps, clicks) in zip(wanted, raw_counts, strict=True):
        n, c = _int(imps), _int(clicks)
        if n > 0:
            cells.append(CellCount(item, images[(item, variant)], parsed[segment], n, min(c, n)))
    return cells, len(busiest)


def _unit(effect: Effect) -> str:
    if effect.kind == "numeric":
        return "+1 sd"
    return "vs the average level" if "=" in effect.attribute else "present vs absent"


def _effect_out(effect: Effect) -> EffectOut:
    return EffectOut(
        attribute=effect.attribute,
        kind=effect.kind,
        unit=_unit(effect),
        sd=effect.sd,
        lift=effect.lift,
        lift_low=effect.lift_low,
        lift_high=effect.lift_high,
        log_odds=effect.log_odds,
        p_value=effect.p_value,
        q_value=effect.q_value,
        significant=effect.significant,
        impressions=effect.impressions,
        images=effect.images,
        images_with=effect.images_with,
    )


def _group(drivers: Drivers, group: str, n: int, significant_only: bool) -> GroupDrivers:
    fit = next(g for g in drivers.groups if g.group == group)
    effects = [e for e in drivers.for_group(group) if e.significant or not significant_only]
    up = sorted((e for e in effects if e.log_odds > 0), key=lambda e: -e.log_odds)[:n]
    down = sorted((e for e in effects if e.log_odds < 0), key=lambda e: e.log_odds)[:n]
    return GroupDrivers(
        segment=group,
        impressions=fit.impressions,
        clicks=fit.clicks,
        images=fit.images,
        items=fit.items,
        unmeasured_images=fit.unmeasured,
        skipped=fit.skipped,
        up=[_effect_out(e) for e in up],
        down=[_effect_out(e) for e in down],
    )


class _Unavailable(Exception):
    """Nothing to estimate with yet; the reply says why (``available: false``)."""

    def __init__(self, reason: str, items_read: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.items_read = items_read


def _unavailable(view: View, q: float, why: _Unavailable) -> ExplainResponse:
    return ExplainResponse(
        view=view,
        q=q,
        within_items=True,
        items_read=why.items_read,
        available=False,
        reason=why.reason,
        groups=[],
    )


async def _explain(
    state: ApiState, source: AttributeSource, segment: str | None, q: float, view: View
) -> tuple[Drivers, int]:
    reason = source.unavailable_reason
    if reason is not None:
        raise _Unavailable(reason)
    cells, items_read = await read_cells(state.redis, state.keys, view)
    if not cells:
        raise _Unavailable("no impressions counted yet")
    images = sorted({c.image_id for c in cells})
    attributes = await source.attributes(images)
    if not attributes:
        raise _Unavailable(
            f"no attributes known for any of the {len(images)} counted images yet", items_read
        )
    counts = roll_up(cells, [segment] if segment is not None else [])
    if segment is not None and not any(c.group == segment for c in counts):
        raise HTTPException(status_code=404, detail=f"no counted segment matches {segment!r}")
    drivers = await asyncio.to_thread(estimate_drivers, counts, attributes, q=q)
    return drivers, items_read


_Q = Annotated[float, Query(gt=0, lt=1, description="False-discovery rate (Benjamini-Hochberg).")]
_N = Annotated[int, Query(ge=1, le=MAX_TOP, description="Effects per direction.")]
#: ``all`` or ``field=value`` pairs joined by commas (a segment group, or a segment key)
SEGMENT_PATTERN = r"^(all|[^=,]+=[^=,]+(,[^=,]+=[^=,]+)*)$"


@router.get("/explain", response_model=ExplainResponse)
async def explain_all(
    state: Annotated[ApiState, Depends(api_state)],
    source: Annotated[AttributeSource, Depends(attribute_source)],
    q: _Q = DEFAULT_Q,
    n: _N = 5,
    significant_only: bool = False,
    view: Literal["live", "settled"] = "live",
) -> ExplainResponse:
    """What drives clicks for every segment group (``all``, and each field's values).

    Per group, the ``n`` attributes that raise CTR most and the ``n`` that
    lower it most: relative lift per +1 sd (numeric) or per tag, a 95%
    interval, and a Benjamini-Hochberg q-value over every (group, attribute)
    pair. Effects compare variants of the same item; they are associations
    on logged traffic, causal as far as the shown variant was randomised.
    """
    try:
        drivers, items_read = await _explain(state, source, None, q, view)
    except _Unavailable as why:
        return _unavailable(view, q, why)
    groups = sorted(g.group for g in drivers.groups)
    groups.sort(key=lambda g: g != ALL)
    return ExplainResponse(
        view=view,
        q=q,
        within_items=drivers.within_items,
        items_read=items_read,
        groups=[_group(drivers, g, n, significant_only) for g in groups],
    )


@router.get(
    "/explain/{segment}",
    response_model=ExplainResponse,
    responses={404: {"model": NotFound, "description": "No segment matches."}},
)
async def explain_segment(
    state: Annotated[ApiState, Depends(api_state)],
    source: Annotated[AttributeSource, Depends(attribute_source)],
    segment: Annotated[
        str,
        Path(
            min_length=1,
            max_length=1024,
            pattern=SEGMENT_PATTERN,
            description="A segment group (taste=t1, device=mobile, all) or a segment key "
            "(device=mobile,geo=DE,taste=t1).",
        ),
    ],
    q: _Q = DEFAULT_Q,
    n: _N = 5,
    significant_only: bool = False,
    view: Literal["live", "settled"] = "live",
) -> ExplainResponse:
    """What drives clicks for one audience (see ``GET /explain``; the same q-values)."""
    if group_fields(segment) is None:  # a field named twice: no segment can match it
        raise HTTPException(status_code=404, detail=f"no counted segment matches {segment!r}")
    try:
        drivers, items_read = await _explain(state, source, segment, q, view)
    except _Unavailable as why:
        return _unavailable(view, q, why)
    return ExplainResponse(
        view=view,
        q=q,
        within_items=drivers.within_items,
        items_read=items_read,
        groups=[_group(drivers, segment, n, significant_only)],
    )
