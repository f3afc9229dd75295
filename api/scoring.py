"""``POST /score``: rank candidate images for a segment with the champion model.

Embeddings come the way the learner got them (Redis cache first, Triton on
a miss, the champion's image encoder version). A candidate whose embedding
cannot be had (image missing, Triton down, breaker open) is still scored,
without it, and says why in ``embedding``: a ranking service would rather
get a slightly worse score than none, and it can see which ones they are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from api.contracts import ModelInfo, ScoredCandidate, ScoreRequest, ScoreResponse
from api.serving import ModelWatcher, ServedModel
from encoder_server.client.embedder import Embedder, ExampleEmbeddings
from schemas.events import Impression

__all__ = ["CandidateScorer", "ModelUnavailable", "TooManyCandidates", "impressions_of"]

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No model snapshot has been loaded yet (the learner has not saved one)."""


class TooManyCandidates(ValueError):
    """More candidates than ``BERTCTR_API_MAX_CANDIDATES`` allows."""


def impressions_of(request: ScoreRequest, ts: float) -> list[Impression]:
    """The impressions the candidates would become, so the model sees its own features.

    A candidate has an impression's fields less its ids, time and segment;
    both were validated with the request, so nothing is validated again.
    """
    return [
        Impression.model_construct(
            event_id=f"score-{i}",
            impression_id=f"score-{i}",
            ts=ts,
            segment=request.segment,
            **dict(c),
        )
        for i, c in enumerate(request.candidates)
    ]


class CandidateScorer:
    """Scores requests with the watcher's current model and, if configured, embeddings."""

    def __init__(
        self, watcher: ModelWatcher, embedder: Embedder | None, max_candidates: int
    ) -> None:
        self.watcher = watcher
        self.embedder = embedder
        self.max_candidates = max_candidates

    def model(self) -> ServedModel:
        """The model to score with; raises :class:`ModelUnavailable` before the first one."""
        model = self.watcher.current
        if model is None:
            raise ModelUnavailable("no model snapshot yet: has a worker learned and saved one?")
        return model

    async def embeddings(
        self, impressions: Sequence[Impression], image_model: str
    ) -> list[ExampleEmbeddings]:
        """Embeddings per impression; a transient failure scores all without them."""
        if self.embedder is None:
            return [ExampleEmbeddings(None, None, "no encoder configured")] * len(impressions)
        try:
            return await self.embedder.embed(impressions, image_model=image_model)
        except Exception as exc:  # Triton down, breaker open: degrade, never fail the request
            log.warning("scoring without embeddings: %s", exc)
            reason = f"encoder unavailable: {type(exc).__name__}"
            return [ExampleEmbeddings(None, None, reason)] * len(impressions)

    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """The candidates with their predicted CTR, best first (ties keep request order)."""
        if len(request.candidates) > self.max_candidates:
            raise TooManyCandidates(
                f"{len(request.candidates)} candidates; at most {self.max_candidates} per request"
            )
        model = self.model()
        ts = request.ts if request.ts is not None else time.time()
        impressions = impressions_of(request, ts)
        found = await self.embeddings(impressions, model.image_model)
        features, predict = model.learner.features, model.predict
        scored = [
            (predict(features(imp, f.image, f.title)), i, f.error or "ok")
            for i, (imp, f) in enumerate(zip(impressions, found, strict=True))
        ]
        scored.sort(key=lambda s: (-s[0], s[1]))
        # the candidates were validated with the request and the rest is ours:
        # construct without validating 100 objects again
        out = [
            ScoredCandidate.model_construct(
                **dict(request.candidates[i]), ctr=p, rank=rank, embedding=why
            )
            for rank, (p, i, why) in enumerate(scored, start=1)
        ]
        info = ModelInfo(
            **model.describe(),
            image_encoder=model.image_model if self.embedder is not None else None,
        )
        return ScoreResponse(scores=out, model=info)
