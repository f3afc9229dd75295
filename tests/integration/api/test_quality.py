"""Per-audience quality from a real learner agent, through the real Redis, to /quality and /metrics.

The learner agent (its real publisher, on a real Redis client) learns a
stream in which one geo's clicks jump after the model has learned it (so
the model underpredicts it over the window) and publishes; ``bertctr api``'s
app, on the same Redis prefix, must show that value flagged on ``/quality``
and ``bertctr_segment_quality_flag``, with the same figures as the
published document. No broker: the agent is fed its feed's events directly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from api.app import create_app
from bertctr.harness.stack import EmbeddedStack
from online_ctr.store import MemoryModelStore
from schemas import Impression, LabelledImpression
from schemas.keys import KeySpace
from schemas.settings import Settings
from streams.learner.agent import LearnerAgent
from streams.readers import read_stats
from tests.integration.api.test_metrics import parse, value
from tests.unit.streams.learner.test_agent_store import FakeEvent, FakeMessage

pytestmark = pytest.mark.integration

T0 = 1_767_225_600.0
N = 3000


def example(i: int) -> LabelledImpression:
    """Geo BR: CTR 2% for the first half, then 30%; DE and FR 5% throughout."""
    geo = ("DE", "FR", "BR")[i % 3]
    ctr = 0.05 if geo != "BR" else (0.02 if i < N // 2 else 0.3)
    clicked = (i * 7919 % 1000) / 1000 < ctr  # deterministic, evenly spread
    impression = Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=T0 + i,
        item_id=f"sku-{i % 7}",
        image_id="img",
        position=i % 5,
        segment={"device": ("mobile", "desktop")[i % 2], "geo": geo},
    )
    return LabelledImpression.from_impression(
        impression, clicked=clicked, click_delay_s=None, late=False, labelled_at=T0 + i
    )


@pytest.fixture
async def published(stack: EmbeddedStack, tmp_path: Path) -> AsyncIterator[Settings]:
    prefix = f"test:quality:{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        redis_url=stack.redis_url,
        redis_prefix=prefix,
        checkpoint_dir=str(tmp_path),
        attribution_window_s=1.0,
        quality_window=1500,
        quality_min_impressions=200,
        quality_min_clicks=10,
    )
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        agent = LearnerAgent(settings, client, KeySpace(prefix), store=MemoryModelStore())
        events = [
            FakeEvent(FakeMessage("labelled", 0, i, example(i).model_dump_json().encode()))
            for i in range(N)
        ]
        for start in range(0, N, 500):
            await agent.handle_batch(events[start : start + 500])
        await agent.maybe_publish(force=True)
        yield settings
    finally:
        found = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if found:
            await client.delete(*found)
        await client.aclose()


async def test_learner_published_quality_shows_on_quality_and_metrics(
    published: Settings, tmp_path: Path
) -> None:
    raw = await _read_metrics(published)
    doc = raw["quality"]
    assert doc["examples"] == 1500  # the window, full
    client = aioredis.Redis.from_url(published.redis_url)
    try:  # bertctr stats --json's reader: the same block under model.quality
        stats = await read_stats(client, KeySpace(published.redis_prefix))
    finally:
        await client.aclose()
    assert stats["model"]["quality"] == doc
    app = create_app(published, MemoryModelStore())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        quality = (await http.get("/quality")).json()
        only_flagged = (await http.get("/quality", params={"flagged": "true"})).json()
        geo = (await http.get("/quality", params={"field": "geo"})).json()
        scrape = (await http.get("/metrics")).text
    assert quality["available"] is True
    assert quality["segments"] == doc["segments"]
    assert quality["overall"] == doc["overall"]
    br = next(s for s in quality["segments"] if (s["field"], s["value"]) == ("geo", "BR"))
    assert br["judged"] and "calibration_low" in br["flags"], br
    assert "geo=BR" in quality["flagged"]
    assert all(s["flags"] for s in only_flagged["segments"]) and only_flagged["segments"]
    assert {s["field"] for s in geo["segments"]} == {"geo"}
    samples, _ = parse(scrape)
    assert value(samples, "bertctr_segment_quality_flag", field="geo", value="BR",
                 reason="calibration_low") == 1.0  # fmt: skip
    assert value(samples, "bertctr_segment_calibration", field="geo", value="BR") == pytest.approx(
        br["calibration"]
    )
    for s in doc["segments"]:
        if s["judged"]:
            for reason in ("calibration_low", "calibration_high", "ne"):
                flag = value(samples, "bertctr_segment_quality_flag", field=s["field"],
                             value=s["value"], reason=reason)  # fmt: skip
                assert flag == (1.0 if reason in s["flags"] else 0.0), (s, reason)
        else:
            assert value(samples, "bertctr_segment_ne", field=s["field"], value=s["value"]) is None


async def test_quality_before_anything_was_published(stack: EmbeddedStack, tmp_path: Path) -> None:
    settings = Settings(
        redis_url=stack.redis_url,
        redis_prefix=f"test:quality:{uuid.uuid4().hex[:8]}:",
        checkpoint_dir=str(tmp_path),
    )
    app = create_app(settings, MemoryModelStore())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        response = await http.get("/quality")
    assert response.status_code == 200
    assert response.json()["available"] is False and response.json()["segments"] == []


async def _read_metrics(settings: Settings) -> dict[str, Any]:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        raw = await client.get(KeySpace(settings.redis_prefix).model_metrics)
    finally:
        await client.aclose()
    assert raw is not None
    doc: dict[str, Any] = json.loads(raw)
    return doc
