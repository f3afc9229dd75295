"""RedisCounters against the real Redis server: exact, idempotent, windowed."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bertctr.harness.stack import EmbeddedStack
from schemas import Impression, LabelledImpression
from schemas.keys import KeySpace
from streams.counters.redis_counters import SCRIPT_EVENTS, RedisCounters, StatsReader
from streams.join.book import LiveCount

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(stack: EmbeddedStack) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(stack.redis_url)
    yield c
    await c.aclose()


def label(
    i: int, ts: float, clicked: bool, late: bool = False, item: str = "a"
) -> LabelledImpression:
    imp = Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=ts,
        item_id=item,
        image_id="img",
        variant="v1",
        position=0,
        segment={"device": "mobile", "geo": "DE"},
    )
    return LabelledImpression.from_impression(
        imp, clicked=clicked, click_delay_s=None, late=late, labelled_at=ts
    )


async def test_replayed_labels_change_nothing_and_windows_follow_the_clock(
    client: aioredis.Redis,
) -> None:
    keys = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
    counters = RedisCounters(client, keys)
    t0 = 1_800_000_000.0
    batch = [
        label(0, t0 - 7200, True),
        label(1, t0 - 1800, False),
        label(2, t0 - 30, True),
        label(3, t0, False),
        label(1, t0 - 1800, True, late=True),
    ]
    try:
        assert await counters.apply(batch) == 5
        assert await counters.apply(batch) == 0  # a replay is a no-op
        stats = await StatsReader(client, keys, "settled").snapshot()
        assert stats["clock"] == t0
        total = stats["total"]
        assert (total["impressions"], total["clicks"]) == (4, 3)
        assert total["ctr"] == 0.75
        hour = total["last_hour"]
        assert (hour["impressions"], hour["clicks"]) == (3, 2)
        minute = total["last_minute"]
        assert (minute["impressions"], minute["clicks"]) == (1, 0)
        assert stats["items"]["a"]["variants"]["v1"]["impressions"] == 4
        assert stats["segments"]["device=mobile,geo=DE"]["clicks"] == 3
    finally:
        found = [k async for k in client.scan_iter(match=f"{keys.prefix}*")]
        if found:
            await client.delete(*found)


async def test_live_counts_apply_once_and_leave_the_settled_view_alone(
    client: aioredis.Redis,
) -> None:
    keys = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
    counters = RedisCounters(client, keys)
    t0 = 1_800_000_000.0
    imps = [label(i, t0 + i, False) for i in range(4)]
    counts = [LiveCount(imp, "impression") for imp in imps]
    counts += [LiveCount(imps[1], "click"), LiveCount(imps[1], "click")]
    try:
        assert await counters.apply_live(counts) == 5  # the second click is a replay
        assert await counters.apply_live(counts) == 0
        live = await StatsReader(client, keys).snapshot()
        assert live["view"] == "live" and live["clock"] == t0 + 3
        assert (live["total"]["impressions"], live["total"]["clicks"]) == (4, 1)
        settled = await StatsReader(client, keys, "settled").snapshot()
        assert settled["total"]["impressions"] == 0 and settled["clock"] is None
    finally:
        found = [k async for k in client.scan_iter(match=f"{keys.prefix}*")]
        if found:
            await client.delete(*found)


async def _dump(client: aioredis.Redis, prefix: str) -> dict[str, object]:
    """Every key under ``prefix`` (prefix removed) with its value, by type."""
    out: dict[str, object] = {}
    async for raw in client.scan_iter(match=f"{prefix}*", count=1000):
        key = raw.decode()
        found = await client.type(key)
        kind = found.decode() if isinstance(found, bytes) else str(found)
        if kind == "hash":
            value: object = await client.hgetall(key)
        elif kind == "set":
            value = await client.smembers(key)
        else:
            value = await client.get(key)
        out[key.removeprefix(prefix)] = value
    return out


async def test_a_batch_applies_exactly_what_one_event_at_a_time_does(
    client: aioredis.Redis,
) -> None:
    """Batched scripts (sums per key, several calls per batch) change no count."""
    rnd = random.Random(5)
    t0 = 1_800_000_000.0
    labels = []
    for _ in range(SCRIPT_EVENTS * 3 + 17):
        j = rnd.randrange(600)  # repeats: replays inside one batch
        labels.append(label(j, t0 - rnd.uniform(0, 5000), rnd.random() < 0.2, item=f"it{j % 7}"))
        if rnd.random() < 0.05:
            labels.append(label(j, t0 - 10, True, late=True, item=f"it{j % 7}"))
    lives = [LiveCount(lab, "impression") for lab in labels[:500]]
    lives += [LiveCount(lab, "click") for lab in labels[:500] if lab.clicked]
    batched = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
    single = KeySpace(f"test:{uuid.uuid4().hex[:8]}:")
    try:
        many = RedisCounters(client, batched)
        applied = await many.apply(labels) + await many.apply_live(lives)
        one = RedisCounters(client, single)
        applied_one = 0
        for lab in labels:
            applied_one += await one.apply([lab])
        for live in lives:
            applied_one += await one.apply_live([live])
        assert applied == applied_one < len(labels) + len(lives)
        got, want = await _dump(client, batched.prefix), await _dump(client, single.prefix)
        assert got.keys() == want.keys() and len(got) > 100
        assert got == want
        assert await many.apply(labels) == 0  # and a replay of the batch is a no-op
    finally:
        for ks in (batched, single):
            found = [k async for k in client.scan_iter(match=f"{ks.prefix}*")]
            if found:
                await client.delete(*found)
