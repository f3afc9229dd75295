"""``GET /series/ctr``, ``GET /series/model`` and ``GET /series/images``: what the live page plots.

All read what the workers already keep in Redis (see :mod:`api.series`):
the counters' minute buckets, the bounded history of the model's metrics,
and the counters per (item, variant, segment) with each variant's image.
Nothing yet is "no data" (empty lists, ``null``), never an error.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.series import (
    MAX_IMAGES,
    MAX_ITEMS,
    MAX_MINUTES,
    MAX_SERIES,
    PRIOR_STRENGTH,
    read_ctr_series,
    read_model_series,
    read_segment_images,
)
from api.state import ApiState, api_state
from schemas.keys import MODEL_HISTORY_EVERY_S, MODEL_HISTORY_LEN

__all__ = ["router"]

router = APIRouter(tags=["series"])


class ScopeSeries(BaseModel):
    """One segment's (or variant's) counts per minute, aligned with ``t``."""

    name: str = Field(description="The segment key, or the variant name.")
    impressions: list[int]
    clicks: list[int]
    ctr: list[float | None] = Field(description="clicks / impressions; null without impressions.")
    window_impressions: int = Field(description="Impressions in the whole window.")
    window_clicks: int
    window_ctr: float | None
    image_id: str | None = Field(
        default=None,
        description="by=variant: the image the variant was last shown with (GET "
        "/images/{image_id}); null for segments, or when unknown.",
    )


class ItemRef(BaseModel):
    """An item that has impressions, with its all-time counts."""

    item_id: str
    impressions: int
    clicks: int


class CtrSeries(BaseModel):
    """Impressions, clicks and CTR per minute of event time."""

    by: Literal["segment", "variant"]
    view: Literal["live", "settled"]
    item: str | None = Field(
        description="The item whose variants are shown (by=variant); the item with the most "
        "impressions when none was asked for."
    )
    clock: float | None = Field(
        description="Newest impression time counted (epoch s); null before any."
    )
    minutes: int
    t: list[float] = Field(description="Start of each minute (epoch s), oldest first.")
    series: list[ScopeSeries] = Field(
        description=f"At most {MAX_SERIES}: the scopes with the most impressions (all time)."
    )
    total: ScopeSeries | None = Field(
        description="All segments together (by=segment), or the whole item (by=variant)."
    )
    omitted: int = Field(description="Scopes left out by the limit.")
    items: list[ItemRef] = Field(
        description=f"by=variant: items with the most impressions first (at most {MAX_ITEMS})."
    )


class ModelPoint(BaseModel):
    """The model's progressive metrics at one wall time, and the event time it had reached."""

    t: float = Field(description="Wall time (epoch s) the point was written.")
    count: int = Field(description="Examples scored so far.")
    logloss: float | None
    ne: float | None = Field(description="Normalised entropy: log loss / entropy of the CTR.")
    auc: float | None
    calibration: float | None = Field(description="Mean prediction / observed CTR.")
    watermark: float | None = Field(
        default=None,
        description="Event time (epoch s) the model had reached at t: the join's watermark, "
        "the clock of GET /series/ctr (simulated time in a replay such as bertctr demo), "
        "behind its newest impression by the lateness bound. Null before the first "
        "watermark, and in points written before this field existed.",
    )


class ModelLatest(BaseModel):
    """The current metrics document (``bertctr stats``' ``model``), without its segments."""

    count: int | None = None
    logloss: float | None = None
    ne: float | None = None
    auc: float | None = None
    calibration: float | None = None
    ctr: float | None = None
    model: str | None = None
    updated_at: float | None = None
    watermark: float | None = None
    buffered: int | None = None
    unscored: int | None = None


class ModelSeries(BaseModel):
    """The model's metrics over time, now, and the encoder it learns with."""

    points: list[ModelPoint] = Field(
        description=f"Oldest first; one per {MODEL_HISTORY_EVERY_S:g} s of wall time at most."
    )
    latest: ModelLatest | None
    encoder: dict[str, Any] | None = Field(
        description="Champion, challenger, comparison and decisions (as in GET /ctr); null "
        "when the workers learn without embeddings."
    )


class RankedImage(BaseModel):
    """One visual variant of an item in the segment asked for."""

    item_id: str
    variant: str
    image_id: str | None = Field(
        description="The image the variant was last shown with (GET /images/{image_id})."
    )
    title: str
    impressions: int
    clicks: int
    ctr: float | None = Field(description="clicks / impressions, as counted.")
    score: float = Field(
        description="The CTR ranked by: the posterior mean under a Beta prior worth "
        "prior_strength impressions at prior_ctr."
    )


class SegmentImages(BaseModel):
    """The best and worst images of a segment, by a CTR that two lucky clicks cannot top."""

    segment: str | None = Field(description="The segment key; null: all segments together.")
    view: Literal["live", "settled"]
    min_impressions: int = Field(description="Cells with fewer impressions are not ranked.")
    prior_strength: float = Field(
        description=f"Impressions the prior is worth ({PRIOR_STRENGTH:g}), at prior_ctr."
    )
    prior_ctr: float | None = Field(
        description="CTR of every cell considered together; null when none was counted."
    )
    items_considered: int = Field(
        description=f"Items whose variants were ranked: the busiest, at most {MAX_ITEMS}."
    )
    candidates: int = Field(description="(item, variant) cells with at least min_impressions.")
    top: list[RankedImage] = Field(description="Best first.")
    bottom: list[RankedImage] = Field(description="Worst first; never one of top.")


@router.get("/series/ctr", response_model=CtrSeries)
async def ctr_series(
    state: Annotated[ApiState, Depends(api_state)],
    by: Literal["segment", "variant"] = "segment",
    item: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    minutes: Annotated[int, Query(ge=1, le=MAX_MINUTES)] = 60,
    limit: Annotated[int, Query(ge=1, le=MAX_SERIES)] = MAX_SERIES,
    view: Literal["live", "settled"] = "live",
) -> dict[str, Any]:
    """Live CTR per minute by audience segment, or by visual variant of one item.

    The window is the ``minutes`` (at most 120: buckets live 2 hours) that end
    at the newest impression counted, in event time. ``by=variant`` shows
    ``item`` (default: the item with the most impressions) and lists the
    items to choose from.
    """
    data = await read_ctr_series(state.redis, state.keys, by, item, minutes, limit, view)
    return asdict(data)


@router.get("/series/images", response_model=SegmentImages)
async def segment_images(
    state: Annotated[ApiState, Depends(api_state)],
    segment: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    n: Annotated[int, Query(ge=1, le=MAX_IMAGES)] = 3,
    min_impressions: Annotated[int, Query(ge=1)] = 10,
    view: Literal["live", "settled"] = "live",
) -> dict[str, Any]:
    """The ``n`` best and ``n`` worst images of a segment (default: all segments together).

    Candidates are the visual variants of the items with the most
    impressions, each counted in ``segment`` (a whole segment key), with at
    least ``min_impressions``. They are ranked by their posterior mean CTR
    under a Beta prior worth 100 impressions at the CTR of all
    candidates together, so a variant clicked twice in two impressions does
    not top the list. An unknown segment ranks nothing.
    """
    data = await read_segment_images(state.redis, state.keys, segment, n, min_impressions, view)
    return asdict(data)


@router.get("/series/model", response_model=ModelSeries)
async def model_series(
    state: Annotated[ApiState, Depends(api_state)],
    points: Annotated[int, Query(ge=1, le=MODEL_HISTORY_LEN)] = 360,
) -> dict[str, Any]:
    """The online model's NE, AUC and calibration over time (the newest ``points``).

    The learner appends a point at most every 10 s of wall time and keeps
    the newest 2,880 (8 hours); ``latest`` is the document it rewrites every
    ``BERTCTR_METRICS_INTERVAL_S``.
    """
    return await read_model_series(state.redis, state.keys, points)
