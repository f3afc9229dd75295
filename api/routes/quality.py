"""``GET /quality``: the model's quality per audience, with its flags.

Reads the ``quality`` block the learner publishes in ``P model:metrics``
(see :mod:`api.quality_view`): per segment field value (``device=mobile``,
``geo=DE``, ``taste=t1``, ...) NE, calibration, AUC and share of the
quality window's impressions, and the reasons it is flagged. For the live
page and ``bertctr report``. Nothing published yet is "no data"
(``available: false``), never an error; only an unreadable Redis is a 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from api.contracts import Problem
from api.quality_view import quality_block
from api.state import ApiState, api_state
from streams.readers import read_json

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["quality"])

#: how long one request may wait for Redis
READ_TIMEOUT_S = 5.0


class Figures(BaseModel):
    """Progressive figures over the quality window (null where undefined)."""

    count: int = Field(description="Impressions scored in the window.")
    clicks: int
    ne: float | None = Field(description="Normalised entropy (log loss / entropy of the CTR).")
    calibration: float | None = Field(description="Predicted clicks / observed clicks.")
    auc: float | None
    ctr: float | None
    logloss: float | None


class SegmentQualityFigures(Figures):
    """One segment field value's figures, and why it is flagged."""

    field: str = Field(description="The segment field (device, geo, taste, ...).")
    value: str = Field(description="Its value; __other__ pools values past the cap.")
    share: float | None = Field(description="Share of the window's impressions.")
    judged: bool = Field(description="Enough impressions and clicks to be flagged.")
    flags: list[str] = Field(description="calibration_low, calibration_high and/or ne.")


class QualityRulesDoc(BaseModel):
    """The BERTCTR_QUALITY_* settings the learner judged with."""

    window: int
    min_impressions: int
    min_clicks: int
    calibration_low: float
    calibration_high: float
    ne_margin: float
    max_values: int


class QualityDocument(BaseModel):
    """The model's quality per segment field value over its sliding window."""

    available: bool = Field(description="False until the learner has published quality.")
    model: str | None = None
    updated_at: float | None = Field(default=None, description="When it was published.")
    window: int | None = Field(default=None, description="Examples the window holds at most.")
    examples: int = Field(default=0, description="Examples in the window now.")
    rules: QualityRulesDoc | None = None
    overall: Figures | None = Field(default=None, description="The whole model, same window.")
    segments: list[SegmentQualityFigures] = Field(default_factory=list)
    flagged: list[str] = Field(
        default_factory=list, description="`field=value` of every flagged segment value."
    )


@router.get(
    "/quality",
    response_model=QualityDocument,
    responses={503: {"model": Problem, "description": "Redis cannot be read."}},
)
async def quality(
    state: Annotated[ApiState, Depends(api_state)],
    field: Annotated[str | None, Query(max_length=64, description="Only this field.")] = None,
    flagged: Annotated[bool, Query(description="Only flagged segment values.")] = False,
) -> dict[str, Any]:
    """NE, calibration, AUC and share per segment field value, with flags (see README)."""
    try:
        model = await asyncio.wait_for(
            read_json(state.redis, state.keys.model_metrics), READ_TIMEOUT_S
        )
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("model metrics unavailable: %s", exc)
        raise HTTPException(status_code=503, detail="Redis cannot be read") from exc
    model = model if isinstance(model, dict) else None
    block = quality_block(model)
    if model is None or block is None:
        return {"available": False}
    segments = [
        s
        for s in block["segments"]
        if (field is None or s.get("field") == field) and (not flagged or s.get("flags"))
    ]
    return {
        "available": True,
        "model": model.get("model"),
        "updated_at": model.get("updated_at"),
        "window": block.get("window"),
        "examples": block.get("examples", 0),
        "rules": block.get("rules"),
        "overall": block.get("overall"),
        "segments": segments,
        "flagged": [f"{s['field']}={s['value']}" for s in block["segments"] if s.get("flags")],
    }
