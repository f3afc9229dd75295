"""``GET /metrics`` (Prometheus) and ``GET /fleet`` (the same numbers as JSON, for the live page).

Both read Redis at request time (the workers' health reports, the learner's
metrics, the encoder duel's status) and summarise it with the one pure
:func:`api.fleet.summarise`. ``/metrics`` answers even while Redis does not:
``bertctr_redis_up`` is then 0 and only the API's own metrics are current.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from redis.exceptions import RedisError

from api.contracts import Problem
from api.ctr_counters import CtrCounters
from api.fleet import Fleet, FleetDocument, FleetView, summarise
from api.state import ApiState, api_state
from streams.readers import read_decisions, read_health, read_json, read_stats

__all__ = ["READ_TIMEOUT_S", "read_fleet", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])

#: how long one scrape may wait for Redis
READ_TIMEOUT_S = 5.0


async def _read(state: ApiState) -> FleetView:
    client, keys = state.redis, state.keys
    reports = await read_health(client, keys)
    fleet = summarise(reports, time.time(), state.settings.health_max_stall_s)
    return FleetView(
        fleet=fleet,
        model=await read_json(client, keys.model_metrics),
        encoder=await read_json(client, keys.encoder_status),
        decisions=await read_decisions(client, keys),
        ctr={
            view: CtrCounters.from_stats(
                await read_stats(client, keys, view=view), state.settings.metrics_max_series
            )
            for view in ("live", "settled")
        },
    )


async def read_fleet(state: ApiState) -> FleetView:
    """The fleet as Redis shows it now; ``fleet`` None when Redis cannot be read."""
    try:
        return await asyncio.wait_for(_read(state), READ_TIMEOUT_S)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("fleet metrics unavailable: %s", exc)
        return FleetView(fleet=None)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """Prometheus exposition: the fleet (from Redis) and this API's own metrics."""
    view = await read_fleet(state)
    body, content_type = state.metrics.render(view, request.headers.get("accept"))
    return Response(content=body, media_type=content_type)


@router.get(
    "/fleet",
    response_model=FleetDocument,
    responses={503: {"model": Problem, "description": "Redis cannot be read."}},
)
async def fleet(state: Annotated[ApiState, Depends(api_state)]) -> dict[str, object]:
    """Workers, their health, throughput, lag, dead letters and labels: ``/metrics`` as JSON.

    Built from the workers' health reports like ``bertctr health``; counts
    are each worker's since it started, summed.
    """
    view = await read_fleet(state)
    summary: Fleet | None = view.fleet
    if summary is None:
        raise HTTPException(status_code=503, detail="Redis cannot be read")
    return summary.document()
