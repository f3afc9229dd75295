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
from streams.join.book import LiveCount

__all__ = ["RedisCounters", "StatsReader", "StatsStore", "deltas"]

log = logging.getLogger(__name__)

MINUTE_BUCKET_TTL_S = 2 * 3600

#: Events per script call: one call is atomic and blocks Redis while it runs,
#: so a batch is cut into calls of at most this many events.
SCRIPT_EVENTS = 256

#: One call applies a batch of events, each at most once.
#:
#: KEYS: clock, items idx, segments idx, then per event: seen, its N counter
#: keys, its N minute keys, its variants idx, its variant-media hash.
#: ARGV: seen ttl, bucket ttl, number of events, then per event: d_impressions,
#: d_clicks, ts, N, item_id, variant, segment, media (JSON, or '' to leave it).
#:
#: An event whose dedup marker already exists changes nothing. The others'
#: increments are summed per key in Lua first, so a key that many events of
#: the batch touch (the total, a popular item) costs one HINCRBY per field,
#: not one per event; set members are added once each, and a variant's media
#: is set in event order (the last one wins, as event by event).
_APPLY_LUA = """
local seen_ttl = tonumber(ARGV[1])
local bucket_ttl = tonumber(ARGV[2])
local events = tonumber(ARGV[3])
local sums, order, buckets, members, member_order = {}, {}, {}, {}, {}
local function add_member(key, member)
  local k = key .. '\0' .. member
  if not members[k] then
    members[k] = true
    member_order[#member_order + 1] = {key, member}
  end
end
local applied = 0
local newest, newest_arg = nil, nil
local ki, ai = 4, 4
for _ = 1, events do
  local di = tonumber(ARGV[ai])
  local dc = tonumber(ARGV[ai + 1])
  local ts = tonumber(ARGV[ai + 2])
  local n = tonumber(ARGV[ai + 3])
  if redis.call('SET', KEYS[ki], '1', 'NX', 'EX', seen_ttl) then
    applied = applied + 1
    for i = 1, 2 * n do
      local key = KEYS[ki + i]
      local acc = sums[key]
      if not acc then
        acc = {0, 0}
        sums[key] = acc
        order[#order + 1] = key
      end
      acc[1] = acc[1] + di
      acc[2] = acc[2] + dc
      if i > n then
        buckets[key] = true
      end
    end
    add_member(KEYS[2], ARGV[ai + 4])
    add_member(KEYS[3], ARGV[ai + 6])
    add_member(KEYS[ki + 2 * n + 1], ARGV[ai + 5])
    if ARGV[ai + 7] ~= '' then
      redis.call('HSET', KEYS[ki + 2 * n + 2], ARGV[ai + 5], ARGV[ai + 7])
    end
    if newest == nil or ts > newest then
      newest, newest_arg = ts, ARGV[ai + 2]
    end
  end
  ki = ki + 2 * n + 3
  ai = ai + 8
end
for _, key in ipairs(order) do
  local acc = sums[key]
  if acc[1] ~= 0 then
    redis.call('HINCRBY', key, 'impressions', acc[1])
  end
  if acc[2] ~= 0 then
    redis.call('HINCRBY', key, 'clicks', acc[2])
  end
  if buckets[key] then
    redis.call('EXPIRE', key, bucket_ttl)
  end
end
for _, pair in ipairs(member_order) do
  redis.call('SADD', pair[1], pair[2])
end
if newest ~= nil then
  local clock = tonumber(redis.call('GET', KEYS[1]) or '-1')
  if newest > clock then
    redis.call('SET', KEYS[1], newest_arg)
  end
end
return applied
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
        """Apply live counts (:class:`~streams.join.book.LiveCount`); return how many were new."""
        calls: list[tuple[str, Impression, int, int]] = []
        for count in counts:
            imp = count.impression
            seen = self._keys.seen_live(imp.impression_id, count.kind)
            d_imp, d_click = (1, 0) if count.kind == "impression" else (0, 1)
            calls.append((seen, imp, d_imp, d_click))
        return await self._run(calls, LIVE)

    async def _run(self, calls: list[tuple[str, Impression, int, int]], view: View) -> int:
        """Apply ``calls`` in script calls of :data:`SCRIPT_EVENTS`, pipelined in one round trip."""
        if not calls:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for start in range(0, len(calls), SCRIPT_EVENTS):
                keys, args = self._script_args(calls[start : start + SCRIPT_EVENTS], view)
                await self._script(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return sum(int(r) for r in results)

    def _script_args(
        self, calls: Sequence[tuple[str, Impression, int, int]], view: View
    ) -> tuple[list[str], list[Any]]:
        k = self._keys
        keys: list[str] = [k.view_clock(view), k.items_index, k.segments_index]
        args: list[Any] = [self._seen_ttl, MINUTE_BUCKET_TTL_S, len(calls)]
        for seen, event, d_imp, d_click in calls:
            segment = event.segment.key()
            scope_list = scopes(event.item_id, event.variant, segment)
            minute = minute_of(event.ts)
            keys.append(seen)
            keys += [k.counter(s, view) for s in scope_list]
            keys += [k.minute_bucket(s, minute, view) for s in scope_list]
            keys += [k.variants_index(event.item_id), k.variant_media(event.item_id)]
            args += [
                d_imp,
                d_click,
                repr(event.ts),
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
