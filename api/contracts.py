"""Request and response bodies of the HTTP API: the part of ``openapi.json`` clients build on.

Candidates reuse the event contract's field types (:mod:`schemas.events`),
so whatever a producer may put in an impression, a ranking service may ask
a score for, under the same limits; unknown fields are refused (a typo is a
4xx, not a silently ignored option).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import EpochSeconds, Identifier, ImageUrl, Position, Segment, Title

__all__ = [
    "MAX_CANDIDATES",
    "Candidate",
    "ModelInfo",
    "Problem",
    "ScoreRequest",
    "ScoreResponse",
    "ScoredCandidate",
]

#: the most candidates one request may carry (``BERTCTR_API_MAX_CANDIDATES`` may lower it)
MAX_CANDIDATES = 1000


class Candidate(BaseModel):
    """One image that could be shown: the impression it would become, less its ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: Identifier
    image_id: Identifier
    image_url: ImageUrl | None = Field(default=None, description="As Impression.image_url.")
    variant: Identifier = "default"
    title: Title = ""
    position: Position = 0


class ScoreRequest(BaseModel):
    """A segment context and the candidates to rank for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: Segment
    candidates: list[Candidate] = Field(min_length=1, max_length=MAX_CANDIDATES)
    ts: EpochSeconds | None = Field(
        default=None,
        description="When the candidates would be shown (epoch seconds; the hour of day "
        "is a feature); default: now.",
    )


class ScoredCandidate(Candidate):
    """A candidate with the champion model's predicted CTR."""

    ctr: float = Field(ge=0, le=1, description="Predicted click probability.")
    rank: int = Field(ge=1, description="1 is the best.")
    embedding: str = Field(
        description="'ok' when image and title embeddings were used; otherwise why not "
        "(the candidate is then scored without them)."
    )


class ModelInfo(BaseModel):
    """Which model and encoder versions produced the scores."""

    snapshot: str
    saved_at: float
    name: str | None
    learned: int
    image_encoder: str | None = Field(
        description="Served image encoder version the champion learned with; None "
        "when the model learns without embeddings."
    )


class ScoreResponse(BaseModel):
    """Candidates sorted by predicted CTR, best first."""

    scores: list[ScoredCandidate]
    model: ModelInfo


class Problem(BaseModel):
    """An error: what was wrong, for a human."""

    detail: Any
