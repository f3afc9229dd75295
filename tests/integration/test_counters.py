"""RedisCounters against the real Redis server: exact, idempotent, windowed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bertctr.harness.stack import EmbeddedStack
from schemas import Impression, LabelledImpression
from schemas.keys import KeySpace
from streams.counters import RedisCounters, StatsReader
from streams.join import LiveCount

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
