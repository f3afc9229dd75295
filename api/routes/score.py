"""``POST /score``: the champion model's predicted CTR of each candidate, best first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.exceptions import RequestValidationError

from api.contracts import Problem, ScoreRequest, ScoreResponse
from api.scoring import ModelUnavailable, TooManyCandidates
from api.state import ApiState, api_state

__all__ = ["router"]

router = APIRouter(tags=["scoring"])


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses={
        400: {"model": Problem, "description": "The body is not JSON."},
        503: {"model": Problem, "description": "No model has been saved yet."},
    },
)
async def score(request: ScoreRequest, state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """Rank up to 1,000 candidates for one segment (sorted, best first).

    Scores come from the champion of the newest model snapshot (never from
    a challenger in shadow), with embeddings from the cache or Triton.
    Nothing here changes the model.
    """
    try:
        scored = await state.scorer.score(request)
    except TooManyCandidates as exc:
        # the served document states this server's limit (maxItems), so going
        # over it is a validation error like any other: 422, in the same shape
        error = {"type": "too_long", "loc": ["body", "candidates"], "msg": str(exc)}
        raise RequestValidationError([error]) from exc
    except ModelUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    # built by the scorer from validated parts: serialised once, without the
    # second validation FastAPI gives a returned model (a third of a 100-candidate reply)
    return Response(scored.json(), media_type="application/json")
