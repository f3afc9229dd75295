"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its job).

Liveness must not depend on anything outside the process, or an orchestrator
restarts a healthy API whenever Redis blinks; readiness checks what a
request needs: Redis, a loaded model and, when configured, Triton.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.state import ApiState, api_state
from encoder_server.base import IMAGE_ENCODER

__all__ = ["router"]

router = APIRouter(tags=["health"])

#: how long one readiness check may take
CHECK_TIMEOUT_S = 2.0


class Liveness(BaseModel):
    """The process is up and its event loop answers."""

    status: str


class Readiness(BaseModel):
    """Each dependency's state; ``ready`` only when every check passes."""

    ready: bool
    checks: dict[str, Any]


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """Liveness: answers while the event loop runs."""
    return Liveness(status="ok")


async def _check(name: str, probe: Any) -> tuple[str, dict[str, Any]]:
    try:
        detail = await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
        return name, {"ok": True, **(detail or {})}
    except Exception as exc:  # any failure is "not ready", reported by kind only
        return name, {"ok": False, "error": type(exc).__name__}


async def _redis(state: ApiState) -> dict[str, Any]:
    await state.redis.ping()
    return {}


async def _model(state: ApiState) -> dict[str, Any]:
    model = state.scorer.model()
    return {"snapshot": model.snapshot, "learned": model.learner.learned}


async def _triton(state: ApiState) -> dict[str, Any]:
    assert state.embedder is not None
    return {"image_encoder_version": await state.embedder.version(IMAGE_ENCODER)}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is not ready."}},
)
async def readyz(state: Annotated[ApiState, Depends(api_state)]) -> JSONResponse:
    """Readiness: Redis answers, a model is loaded, Triton answers (when configured)."""
    probes = [_check("redis", _redis(state)), _check("model", _model(state))]
    if state.embedder is not None:
        probes.append(_check("triton", _triton(state)))
    checks = dict(await asyncio.gather(*probes))
    ready = all(c["ok"] for c in checks.values())
    body = Readiness(ready=ready, checks=checks).model_dump()
    return JSONResponse(body, status_code=200 if ready else 503)
