"""Live CTR counters in Redis: idempotent writes and the dashboard read side.

Two views (see :mod:`schemas.keys`): the **live** one is written by the join
agent as impressions and clicks arrive (:meth:`RedisCounters.apply_live`),
the **settled** one by the counter agent from labels
(:meth:`RedisCounters.apply`). Every increment is one Lua script call that
first claims a dedup marker (``seen:<label_id>``, or
``seen:live:<impression_id>:<kind>``): a replayed message (at-least-once
delivery, a worker restarted before committing) then changes nothing, which
keeps the counters exact without Kafka transactions (Tansu has none).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis

from schemas.events import Impression, LabelledImpression
from schemas.keys import LIVE, SETTLED, KeySpace, View, minute_of, scopes
from streams.join import LiveCount

__all__ = ["RedisCounters", "StatsReader", "StatsStore", "deltas"]

log = logging.getLogger(__name__)

MINUTE_BUCKET_TTL_S = 2 * 3600

#: KEYS: seen, clock, N counter keys, N minute keys, items idx, segments idx,
#: variants idx, variant media. ARGV: seen ttl, d_impressions, d_clicks, ts,
#: bucket ttl, N, item_id, variant, segment, media (JSON, or '' to leave it).
_APPLY_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
local n = tonumber(ARGV[6])
local di = tonumber(ARGV[2])
local dc = tonumber(ARGV[3])
for i = 1, n do
  local total = KEYS[2 + i]
  local bucket = KEYS[2 + n + i]
  if di ~= 0 then
    redis.call('HINCRBY', total, 'impressions', di)
    redis.call('HINCRBY', bucket, 'impressions', di)
  end
  if dc ~= 0 then
    redis.call('HINCRBY', total, 'clicks', dc)
    redis.call('HINCRBY', bucket, 'clicks', dc)
  end
  redis.call('EXPIRE', bucket, tonumber(ARGV[5]))
end
redis.call('SADD', KEYS[3 + 2 * n], ARGV[7])
redis.call('SADD', KEYS[4 + 2 * n], ARGV[9])
redis.call('SADD', KEYS[5 + 2 * n], ARGV[8])
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[6 + 2 * n], ARGV[8], ARGV[10])
end
local clock = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[4]) > clock then
  redis.call('SET', KEYS[2], ARGV[4])
end
return 1
"""


class StatsStore(Protocol):
    """Port for the counters; the Redis adapter below is the real one."""

    async def apply(self, labelled: Sequence[LabelledImpression]) -> int: ...

    async def apply_live(self, counts: Sequence[LiveCount]) -> int: ...


def deltas(labelled: LabelledImpression) -> tuple[int, int]:
    """(impressions, clicks) a label adds: a late correction adds only a click."""
    if labelled.late:
        return 0, 1
    return 1, int(labelled.clicked)


class RedisCounters:
    """Applies labels and live counts to the counters, once each."""

    def __init__(
        self, client: aioredis.Redis, keys: KeySpace, seen_ttl_s: float = 7 * 86_400
    ) -> None:
        self._client = client
        self._keys = keys
        self._seen_ttl = int(seen_ttl_s)
        self._script = client.register_script(_APPLY_LUA)

    async def apply(self, labelled: Sequence[LabelledImpression]) -> int:
        """Apply labels to the settled view in one round trip; return how many were new."""
        calls: list[tuple[str, Impression, int, int]] = []
        for event in labelled:
            d_imp, d_click = deltas(event)
            calls.append((self._keys.seen(event.label_id), event, d_imp, d_click))
        return await self._run(calls, SETTLED)

    async def apply_live(self, counts: Sequence[LiveCount]) -> int:
        """Apply live counts (see :class:`~streams.join.LiveCount`); return how many were new."""
        calls: list[tuple[str, Impression, int, int]] = []
        for count in counts:
            imp = count.impression
            seen = self._keys.seen_live(imp.impression_id, count.kind)
            d_imp, d_click = (1, 0) if count.kind == "impression" else (0, 1)
            calls.append((seen, imp, d_imp, d_click))
        return await self._run(calls, LIVE)

    async def _run(self, calls: list[tuple[str, Impression, int, int]], view: View) -> int:
        if not calls:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for seen, event, d_imp, d_click in calls:
                keys, args = self._script_args(seen, event, d_imp, d_click, view)
                await self._script(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return sum(int(r) for r in results)

    def _script_args(
        self, seen: str, event: Impression, d_imp: int, d_click: int, view: View
    ) -> tuple[list[str], list[Any]]:
        k = self._keys
        segment = event.segment.key()
        scope_list = scopes(event.item_id, event.variant, segment)
        minute = minute_of(event.ts)
        keys = [seen, k.view_clock(view)]
        keys += [k.counter(s, view) for s in scope_list]
        keys += [k.minute_bucket(s, minute, view) for s in scope_list]
        keys += [k.items_index, k.segments_index, k.variants_index(event.item_id)]
        keys.append(k.variant_media(event.item_id))
        args: list[Any] = [
            self._seen_ttl,
            d_imp,
            d_click,
            repr(event.ts),
            MINUTE_BUCKET_TTL_S,
            len(scope_list),
            event.item_id,
            event.variant,
            segment,
            _media(event) if view == LIVE and d_imp else "",
        ]
        return keys, args


def _media(event: Impression) -> str:
    """What the API needs to score a variant later (``GET /ab``): its image and title."""
    media = {"image_id": event.image_id, "title": event.title}
    if event.image_url:
        media["image_url"] = event.image_url
    return json.dumps(media, separators=(",", ":"))


def _ctr(impressions: int, clicks: int) -> float | None:
    return clicks / impressions if impressions else None


class StatsReader:
    """Reads counters back for ``bertctr stats`` and dashboards."""

    def __init__(self, client: aioredis.Redis, keys: KeySpace, view: View = LIVE) -> None:
        self._client = client
        self._keys = keys
        self._view = view

    async def _counts(self, scope_list: Iterable[str], clock: float | None) -> list[dict[str, Any]]:
        scope_list = list(scope_list)
        minute = minute_of(clock) if clock is not None else None
        async with self._client.pipeline(transaction=False) as pipe:
            for scope in scope_list:
                pipe.hmget(self._keys.counter(scope, self._view), ["impressions", "clicks"])
                if minute is not None:
                    for m in range(minute - 59, minute + 1):
                        bucket = self._keys.minute_bucket(scope, m, self._view)
                        pipe.hmget(bucket, ["impressions", "clicks"])
            raw = await pipe.execute()
        per_scope = 1 + (60 if minute is not None else 0)
        out = []
        for i, _ in enumerate(scope_list):
            chunk = raw[i * per_scope : (i + 1) * per_scope]
            total = _pair(chunk[0])
            entry: dict[str, Any] = _summary(*total)
            buckets = [_pair(c) for c in chunk[1:]]
            last_hour = (sum(b[0] for b in buckets), sum(b[1] for b in buckets))
            last_minute = buckets[-1] if buckets else (0, 0)
            entry["last_minute"] = _summary(*last_minute)
            entry["last_hour"] = _summary(*last_hour)
            out.append(entry)
        return out

    async def snapshot(self, item: str | None = None, segment: str | None = None) -> dict[str, Any]:
        """All counters, optionally narrowed to one item and/or one segment."""
        k = self._keys
        raw_clock = await self._client.get(k.view_clock(self._view))
        clock = float(raw_clock) if raw_clock is not None else None
        items = sorted(_text(m) for m in await self._client.smembers(k.items_index))
        segments = sorted(_text(m) for m in await self._client.smembers(k.segments_index))
        if item is not None:
            items = [i for i in items if i == item]
        if segment is not None:
            segments = [s for s in segments if s == segment]
        variants = {
            i: sorted(_text(v) for v in await self._client.smembers(k.variants_index(i)))
            for i in items
        }
        (total,) = await self._counts(["total"], clock)
        item_counts = await self._counts([f"item:{i}" for i in items], clock)
        seg_counts = await self._counts([f"segment:{s}" for s in segments], clock)
        result: dict[str, Any] = {
            "view": self._view,
            "clock": clock,
            "total": total,
            "items": {},
            "segments": dict(zip(segments, seg_counts, strict=True)),
        }
        for i, counts in zip(items, item_counts, strict=True):
            var_counts = await self._counts([f"variant:{i}:{v}" for v in variants[i]], clock)
            counts["variants"] = dict(zip(variants[i], var_counts, strict=True))
            if item is not None or segment is not None:
                for v, vc in counts["variants"].items():
                    cells = await self._counts([f"ivs:{i}:{v}:{s}" for s in segments], clock)
                    vc["segments"] = dict(zip(segments, cells, strict=True))
            result["items"][i] = counts
        return result


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pair(values: list[bytes | str | None]) -> tuple[int, int]:
    imp, clk = values
    return int(imp or 0), int(clk or 0)


def _summary(impressions: int, clicks: int) -> dict[str, Any]:
    return {"impressions": impressions, "clicks": clicks, "ctr": _ctr(impressions, clicks)}
