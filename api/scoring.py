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
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from api.contracts import ModelInfo, ScoreRequest, ScoreResponse
from api.serving import ModelWatcher, ServedModel
from encoder_server.client.embedder import Embeddable, Embedder, ExampleEmbeddings

__all__ = ["CandidateScorer", "ModelUnavailable", "Scored", "TooManyCandidates"]

log = logging.getLogger(__name__)


class ModelUnavailable(RuntimeError):
    """No model snapshot has been loaded yet (the learner has not saved one)."""


class TooManyCandidates(ValueError):
    """More candidates than ``BERTCTR_API_MAX_CANDIDATES`` allows."""


@dataclass(frozen=True)
class Scored:
    """A request's candidates with their scores: a :class:`ScoreResponse` before it is built.

    ``order`` lists the candidates' indices best first; ``ctr`` and
    ``embedding`` are in request order.
    """

    request: ScoreRequest
    ctr: list[float]
    embedding: list[str]
    order: list[int]
    #: the reply's ``model`` block (a validated :class:`ModelInfo`, dumped)
    model: dict[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        """The reply's ``scores``: each candidate's fields, ``ctr``, ``rank`` and ``embedding``."""
        candidates = self.request.candidates
        ctr, why = self.ctr, self.embedding
        # the candidates were validated with the request and the rest is ours:
        # their fields as they are (``__dict__``), in the order ScoredCandidate declares
        return [
            {**candidates[i].__dict__, "ctr": ctr[i], "rank": rank, "embedding": why[i]}
            for rank, i in enumerate(self.order, start=1)
        ]

    def json(self) -> bytes:
        """The reply's JSON, as ``ScoreResponse.model_dump_json`` writes it.

        Written straight from dicts by pydantic's serialiser: a hundred
        :class:`~api.contracts.ScoredCandidate` objects built and dumped cost
        more than the model's scoring.
        """
        return to_json({"scores": self.rows(), "model": self.model})

    def response(self) -> ScoreResponse:
        """The reply as the validated :class:`ScoreResponse` (for tests and callers in process)."""
        return ScoreResponse.model_validate({"scores": self.rows(), "model": self.model})


class CandidateScorer:
    """Scores requests with the watcher's current model and, if configured, embeddings."""

    def __init__(
        self, watcher: ModelWatcher, embedder: Embedder | None, max_candidates: int
    ) -> None:
        self.watcher = watcher
        self.embedder = embedder
        self.max_candidates = max_candidates
        #: the ``model`` block of the model last described
        self._described: tuple[ServedModel, dict[str, Any]] | None = None

    def model(self) -> ServedModel:
        """The model to score with; raises :class:`ModelUnavailable` before the first one."""
        model = self.watcher.current
        if model is None:
            raise ModelUnavailable("no model snapshot yet: has a worker learned and saved one?")
        return model

    async def embeddings(
        self, candidates: Sequence[Embeddable], image_model: str
    ) -> list[ExampleEmbeddings]:
        """Embeddings per candidate; a transient failure scores all without them."""
        if self.embedder is None:
            return [ExampleEmbeddings(None, None, "no encoder configured")] * len(candidates)
        try:
            return await self.embedder.embed(candidates, image_model=image_model)
        except Exception as exc:  # Triton down, breaker open: degrade, never fail the request
            log.warning("scoring without embeddings: %s", exc)
            reason = f"encoder unavailable: {type(exc).__name__}"
            return [ExampleEmbeddings(None, None, reason)] * len(candidates)

    def describe(self, model: ServedModel) -> dict[str, Any]:
        """The reply's ``model`` block (validated once per served model)."""
        if self._described is None or self._described[0] is not model:
            image_encoder = model.image_model if self.embedder is not None else None
            info = ModelInfo(**model.describe(), image_encoder=image_encoder)
            self._described = (model, info.model_dump())
        return self._described[1]

    async def score(self, request: ScoreRequest) -> Scored:
        """The candidates with their predicted CTR, best first (ties keep request order).

        The candidates are embedded and scored as they are: the model sees
        the features of the impressions they would become (segment and time
        from the request), all of them at once (:func:`online_ctr.frozen.batch_predictor`).
        """
        candidates = request.candidates
        if len(candidates) > self.max_candidates:
            raise TooManyCandidates(
                f"{len(candidates)} candidates; at most {self.max_candidates} per request"
            )
        model = self.model()
        ts = request.ts if request.ts is not None else time.time()
        found = await self.embeddings(candidates, model.image_model)
        ctr = model.predict_many(
            request.segment, ts, candidates, [f.image for f in found], [f.title for f in found]
        )
        order = sorted(range(len(ctr)), key=lambda i: (-ctr[i], i))
        return Scored(
            request=request,
            ctr=ctr,
            embedding=[f.error or "ok" for f in found],
            order=order,
            model=self.describe(model),
        )
