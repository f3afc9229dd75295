"""What dashboards read back from Redis: counters, model metrics, health reports.

``bertctr stats``, ``bertctr health`` and the HTTP API (``GET /ctr``,
``/metrics``, the live page) must show the same numbers, so they share these
readers instead of each walking the key layout of :mod:`schemas.keys`.
Every reader takes an open client: the CLI opens one per command, the API
keeps one for its lifetime.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import redis.asyncio as aioredis

from schemas.keys import HEALTH_TTL_S, SETTLED, KeySpace, View
from streams.counters.redis_counters import StatsReader

__all__ = ["read_decisions", "read_health", "read_json", "read_stats"]


async def read_json(client: aioredis.Redis, key: str) -> Any:
    """The JSON document at ``key``; ``None`` when absent or not JSON."""
    raw = await client.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def read_stats(
    client: aioredis.Redis,
    keys: KeySpace,
    item: str | None = None,
    segment: str | None = None,
    view: str = "live",
) -> dict[str, Any]:
    """Counters (optionally one item and/or segment), model metrics and encoder status.

    The document ``bertctr stats --json`` prints and ``GET /ctr`` returns.
    """
    chosen: View = SETTLED if view == SETTLED else "live"
    stats = await StatsReader(client, keys, chosen).snapshot(item=item, segment=segment)
    model = await read_json(client, keys.model_metrics)
    if isinstance(model, dict) and segment is not None:
        model["segments"] = {k: v for k, v in model.get("segments", {}).items() if k == segment}
    stats["model"] = model
    stats["encoder"] = await read_json(client, keys.encoder_status)
    return stats


async def read_health(client: aioredis.Redis, keys: KeySpace) -> list[dict[str, Any]]:
    """Every worker's health report, found through the workers index.

    A report that has expired (its worker died over an hour ago) drops its
    worker from the index.
    """
    workers = [
        w.decode() if isinstance(w, bytes) else str(w)
        for w in await client.zrange(keys.workers, 0, -1)
    ]
    raws = await client.mget([keys.health(w) for w in workers]) if workers else []
    reports = []
    for raw in raws:
        if raw is not None:
            with contextlib.suppress(ValueError):
                reports.append(json.loads(raw))
    await client.zremrangebyscore(keys.workers, "-inf", time.time() - HEALTH_TTL_S)
    return sorted(reports, key=lambda r: str(r.get("worker")))


async def read_decisions(client: aioredis.Redis, keys: KeySpace) -> dict[str, int]:
    """Encoder promotion decisions by kind (``promote``, ``retire``); empty before any."""
    raw = await client.hgetall(keys.encoder_decisions)
    out = {}
    for kind, count in raw.items():
        name = kind.decode() if isinstance(kind, bytes) else str(kind)
        with contextlib.suppress(ValueError):
            out[name] = int(count)
    return dict(sorted(out.items()))
