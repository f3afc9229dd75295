"""``GET /items/{item_id}``: one item's variants, how each does per audience, and what to do.

Per variant: its image (id, thumbnail path, tags and measured attributes
from the describer's cache), its CTR per segment from the counters and the
champion model's predicted CTR for the same segment (as ``POST /score``
would rank it: position 0, now). For the item: the A/B verdict per segment
group (:mod:`api.item_view`) and suggestions built from those verdicts and
from the significant drivers of ``/explain`` (:mod:`api.suggestions`).
Whatever cannot be had (no encoder, no model, no attributes) is null and the
response says why; an item the counters never saw is a 404.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from api.ab_view import ALL, ItemCells, read_item, segment_of_key
from api.contracts import Candidate, ModelInfo, Problem, ScoreRequest
from api.item_view import (
    CachedDescriptions,
    DescriptionSource,
    DriverMemo,
    group_verdicts,
    item_known,
)
from api.routes.explain import attribute_source, read_cells
from api.scoring import ModelUnavailable
from api.state import ApiState, api_state
from api.suggestions import Suggestion, ab_suggestions, driver_suggestions
from online_ctr.ab import Arm, DecisionRule
from online_ctr.ab.decision import Verdict
from online_ctr.insights import (
    DEFAULT_Q,
    AttributeSource,
    Drivers,
    ImageAttributes,
    estimate_drivers,
    roll_up,
)
from schemas.keys import View

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["items"])

RULE = DecisionRule()


class TagOut(BaseModel):
    """One tag of an image and its score (a probability)."""

    label: str
    score: float


class SegmentCtr(BaseModel):
    """One variant in one segment: counted and predicted."""

    segment: str = Field(description="Segment key, or 'all'.")
    impressions: int
    clicks: int
    ctr: float | None = Field(description="clicks / impressions; null without impressions.")
    predicted_ctr: float | None = Field(
        description="The champion's CTR for this variant's image in this segment (position "
        "0, now); null for 'all' or without a model."
    )


class VariantOut(BaseModel):
    """One visual variant of the item."""

    variant: str
    image_id: str | None = Field(description="The image it was last shown with.")
    image_url: str | None
    title: str | None
    thumbnail: str | None = Field(
        description="Path of the image on this API (GET /images/{image_id}); null without a "
        "local image store or image id."
    )
    tags: list[TagOut] | None = Field(description="Best first; null when not described.")
    tag_source: str | None = Field(description="'imagenet' or 'clip-zero-shot'.")
    attributes: dict[str, float | str] | None = Field(
        description="Measured attributes (brightness, contrast, colour, ...); null when not "
        "described."
    )
    description_missing: str | None = Field(description="Why tags are null; null when known.")
    segments: list[SegmentCtr] = Field(description="'all' first, then the busiest segments.")


class ArmVerdict(BaseModel):
    """One variant in one segment group's A/B verdict."""

    name: str
    impressions: int
    clicks: int
    posterior_mean: float
    chance_to_win: float
    is_control: bool
    uplift: float | None
    uplift_ci_low: float | None
    uplift_ci_high: float | None


class GroupVerdict(BaseModel):
    """The A/B decision for one segment group (settled counts; see GET /ab)."""

    segment: str = Field(description="Segment group (taste=t2) or 'all'.")
    decision: Literal["keep_testing", "winner", "srm_mismatch", "no_data"]
    winner: str | None
    message: str
    arms: list[ArmVerdict]


class SuggestionOut(BaseModel):
    """One concrete suggestion and the figure behind it."""

    source: Literal["ab", "driver"] = Field(
        description="'ab': a segment group's A/B winner; 'driver': a significant effect of "
        "/explain the variants differ on."
    )
    segment: str = Field(description="The segment group it is for.")
    variant: str | None
    text: str
    lift: float | None = Field(description="Relative CTR change (0.18 = +18%).")
    lift_low: float | None = Field(description="95% interval, low end.")
    lift_high: float | None = Field(description="95% interval, high end.")


class ItemResponse(BaseModel):
    """Everything known about one item's visual variants."""

    item_id: str
    view: Literal["live", "settled"] = Field(description="The counters of `segments`.")
    control: str | None = Field(description="The control every uplift is against.")
    variants: list[VariantOut]
    ab: list[GroupVerdict] = Field(description="'all' first, then the busiest groups.")
    suggestions: list[SuggestionOut]
    descriptions_unavailable: str | None = Field(
        description="Why no tags or attributes are shown; null when the cache was read."
    )
    predictions_unavailable: str | None = Field(description="Why predicted_ctr is null.")
    drivers_unavailable: str | None = Field(
        description="Why no driver suggestion could be made; null when drivers were estimated."
    )
    model: ModelInfo | None


async def description_source(request: Request) -> DescriptionSource:
    """FastAPI dependency: ``app.state.description_source`` if set, else the describer's cache."""
    source = getattr(request.app.state, "description_source", None)
    if source is not None:
        return source  # type: ignore[no-any-return]
    return CachedDescriptions.of_state(request.app.state.bertctr)


def _memo(request: Request) -> DriverMemo:
    memo = getattr(request.app.state, "item_drivers", None)
    if not isinstance(memo, DriverMemo):
        memo = request.app.state.item_drivers = DriverMemo()
    return memo


async def _predicted(
    state: ApiState, item_id: str, cells: ItemCells, segments: list[str]
) -> tuple[dict[tuple[str, str], float], str | None]:
    """The champion's CTR per (variant, segment) for the variants whose image is known."""
    known = [v for v in cells.variants if v in cells.media]
    if not known:
        return {}, "no variant's image is known (idx:media)"
    candidates = [
        Candidate(
            item_id=item_id,
            image_id=cells.media[v].image_id,
            image_url=cells.media[v].image_url,
            variant=v,
            title=cells.media[v].title,
        )
        for v in known
    ]
    out: dict[tuple[str, str], float] = {}
    for segment in segments:
        parsed = segment_of_key(segment)
        if parsed is None:
            continue
        try:
            scored = await state.scorer.score(ScoreRequest(segment=parsed, candidates=candidates))
        except ModelUnavailable:
            return {}, "no model snapshot saved yet"
        for c, p in zip(scored.request.candidates, scored.ctr, strict=True):
            out[(c.variant, segment)] = p
    return out, None


async def _drivers(
    state: ApiState, source: AttributeSource, memo: DriverMemo, view: View, q: float
) -> tuple[Drivers | None, str | None]:
    """The drivers of ``/explain`` (every group), or why there are none."""
    reason = source.unavailable_reason
    if reason is not None:
        return None, reason
    kept = memo.get(view, q)
    if kept is not None:
        return kept, None
    cells, _ = await read_cells(state.redis, state.keys, view)
    if not cells:
        return None, "no impressions counted yet"
    attributes = await source.attributes(sorted({c.image_id for c in cells}))
    if not attributes:
        return None, "no attributes known for any counted image yet"
    try:
        drivers = await asyncio.to_thread(estimate_drivers, roll_up(cells), attributes, q=q)
    except (ArithmeticError, ValueError) as exc:  # a degenerate fit: suggestions go without
        log.warning("drivers could not be estimated: %r", exc)
        return None, f"drivers could not be estimated: {exc!r}"
    memo.put(view, q, drivers)
    return drivers, None


def _ctr(arm: Arm) -> float | None:
    return arm.clicks / arm.impressions if arm.impressions else None


def _group_out(verdict: Verdict) -> GroupVerdict:
    return GroupVerdict(
        segment=verdict.segment,
        decision=verdict.decision,
        winner=verdict.winner,
        message=verdict.message,
        arms=[
            ArmVerdict(
                name=a.name,
                impressions=a.impressions,
                clicks=a.clicks,
                posterior_mean=a.posterior_mean,
                chance_to_win=a.chance_to_win,
                is_control=a.is_control,
                uplift=a.uplift,
                uplift_ci_low=a.uplift_ci_low,
                uplift_ci_high=a.uplift_ci_high,
            )
            for a in verdict.arms
        ],
    )


def _suggestion_out(s: Suggestion) -> SuggestionOut:
    return SuggestionOut(
        source=s.source,
        segment=s.segment,
        variant=s.variant,
        text=s.text,
        lift=s.lift,
        lift_low=s.lift_low,
        lift_high=s.lift_high,
    )


def _control(cells: ItemCells, asked: str | None) -> str | None:
    if asked is not None:
        if asked not in cells.variants:
            raise HTTPException(
                status_code=404, detail=f"control {asked[:80]!r} is not a variant of this item"
            )
        return asked
    if "v0" in cells.variants:
        return "v0"
    return cells.variants[0] if cells.variants else None


@router.get(
    "/items/{item_id}",
    response_model=ItemResponse,
    responses={
        404: {"model": Problem, "description": "The item was never counted, or the control "
              "asked for is not one of its variants."}
    },
)  # fmt: skip
async def item(
    request: Request,
    item_id: Annotated[str, Path(min_length=1, max_length=256)],
    state: Annotated[ApiState, Depends(api_state)],
    attributes: Annotated[AttributeSource, Depends(attribute_source)],
    descriptions: Annotated[DescriptionSource, Depends(description_source)],
    view: Literal["live", "settled"] = "live",
    max_segments: Annotated[int, Query(ge=1, le=100, description="Segments per variant.")] = 12,
    control: Annotated[
        str | None, Query(min_length=1, max_length=256, description="As in GET /ab.")
    ] = None,
    allocation: Literal["fixed", "adaptive"] = "fixed",
    q: Annotated[float, Query(gt=0, lt=1, description="FDR of the drivers.")] = DEFAULT_Q,
    drivers: Annotated[
        bool, Query(description="Estimate /explain's drivers for suggestions (one shared fit).")
    ] = True,
) -> ItemResponse:
    """An item's variants: image, tags, attributes, CTR and predicted CTR per segment,
    the A/B verdict per segment group, and suggestions (see README "Items")."""
    if not await item_known(state.redis, state.keys, item_id):
        raise HTTPException(status_code=404, detail=f"item {item_id!r} was never counted")
    cells = await read_item(state.redis, state.keys, item_id, view, None, max_segments)
    chosen = _control(cells, control)
    verdicts = await group_verdicts(
        state.redis, state.keys, item_id, chosen, RULE, adaptive=allocation == "adaptive"
    )
    segments = [s for s in cells.by_segment if s != ALL]
    predicted, predictions_unavailable = await _predicted(state, item_id, cells, segments)
    images = sorted({m.image_id for m in cells.media.values()})
    described, descriptions_unavailable = await descriptions.descriptions(images)

    suggestions = ab_suggestions(verdicts)
    drivers_unavailable: str | None = "not asked for (drivers=false)"
    if drivers:
        found, drivers_unavailable = await _drivers(state, attributes, _memo(request), view, q)
        if found is not None:
            known: dict[str, ImageAttributes] = dict(await attributes.attributes(images))
            by_variant = {
                v: known[m.image_id] for v, m in cells.media.items() if m.image_id in known
            }
            suggestions += driver_suggestions(found.effects, by_variant)

    variants = []
    for v in cells.variants:
        media = cells.media.get(v)
        image = media.image_id if media is not None else None
        d = described.get(image) if image is not None else None
        rows = [
            SegmentCtr(
                segment=s,
                impressions=arm.impressions,
                clicks=arm.clicks,
                ctr=_ctr(arm),
                predicted_ctr=predicted.get((v, s)),
            )
            for s, arms in cells.by_segment.items()
            for arm in arms
            if arm.name == v
        ]
        missing = None
        if d is None:
            missing = descriptions_unavailable or (
                "no image id known" if image is None else "not described yet"
            )
        variants.append(
            VariantOut(
                variant=v,
                image_id=image,
                image_url=media.image_url if media is not None else None,
                title=media.title if media is not None else None,
                thumbnail=(
                    f"/images/{quote(image, safe='')}"
                    if image is not None and state.images is not None
                    else None
                ),
                tags=[TagOut(label=t.label, score=t.score) for t in d.tags] if d else None,
                tag_source=d.tag_source if d else None,
                attributes=dict(d.attributes) if d else None,
                description_missing=missing,
                segments=rows,
            )
        )
    model = state.watcher.current
    info = None
    if model is not None:
        encoder = model.image_model if state.embedder is not None else None
        info = ModelInfo(**model.describe(), image_encoder=encoder)
    return ItemResponse(
        item_id=item_id,
        view=view,
        control=chosen,
        variants=variants,
        ab=[_group_out(v) for v in verdicts],
        suggestions=[_suggestion_out(s) for s in suggestions],
        descriptions_unavailable=descriptions_unavailable,
        predictions_unavailable=predictions_unavailable,
        drivers_unavailable=drivers_unavailable,
        model=info,
    )
