"""10,000+ bad messages interleaved with good traffic: nothing lost, nothing crashes.

Every message of the committed corpus (``tests/corpus/bad_events.jsonl``) is
published 160 times with its own impression id, shuffled into a stream of
good impressions and clicks, together with what only the join can judge:
orphan clicks, clocks far in the future, events older than the horizon,
conflicting impression ids, duplicates and repeat clicks. Then every message
must be accounted for exactly once: labelled, dead-lettered with its reason,
or dropped on purpose (a duplicate or a repeat click), and the good labels
and counters must be exactly what the good traffic alone implies.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest

from bertctr.harness.kafka import consume, publish
from bertctr.harness.workers import REPLAY
from schemas.topics import CLICKS, DEAD_LETTER, IMPRESSIONS, LABELLED
from tests.corpus import load_corpus, payload
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration

COPIES = 160
GOOD_IMPRESSIONS = 2000
SEGMENTS = [{"device": "mobile", "geo": "DE"}, {"device": "desktop", "geo": "US", "taste": "t2"}]

Message = tuple[str, bytes | None, bytes | None]


def good_traffic(
    env: WorkerEnv, base: float
) -> tuple[list[Message], list[Message], dict[str, int]]:
    """Good impressions (every 10th clicked) and the join-level faults, in time order,
    and then events from long before the late-click horizon."""
    imp_t, clk_t = env.topic(IMPRESSIONS), env.topic(CLICKS)
    out: list[Message] = []
    expect: Counter[str] = Counter()

    def send(topic: str, event: dict[str, Any]) -> None:
        out.append((topic, event["impression_id"].encode(), json.dumps(event).encode()))

    for i in range(GOOD_IMPRESSIONS):
        iid, ts = f"good-{i}", base + i * 0.5
        imp = {
            "event_id": f"ev-{iid}",
            "impression_id": iid,
            "ts": ts,
            "item_id": f"sku-{i % 7}",
            "image_id": f"img-{i % 7}",
            "variant": f"v{i % 3}",
            "position": i % 5,
            "segment": SEGMENTS[i % 2],
        }
        send(imp_t, imp)
        if i % 50 == 3:  # a producer retry: the same event again
            send(imp_t, imp)
            expect["duplicates"] += 1
        if i % 10 == 0:
            send(clk_t, {"event_id": f"ev-c-{iid}", "impression_id": iid, "ts": ts + 2})
            expect["clicked"] += 1
            if i % 100 == 0:  # a second, distinct click: adds nothing
                send(clk_t, {"event_id": f"ev-c2-{iid}", "impression_id": iid, "ts": ts + 3})
                expect["repeat_clicks"] += 1
        if i % 100 == 7:  # an impression id reused by another event
            send(imp_t, {**imp, "event_id": f"ev-other-{iid}"})
            expect["conflicting_impression"] += 1
        if i % 100 == 11:  # a click whose impression never comes
            send(clk_t, {"event_id": f"ev-o-{i}", "impression_id": f"orphan-{i}", "ts": ts})
            expect["orphan_click"] += 1
        if i % 200 == 13:  # a broken clock, 10^7 s ahead
            send(imp_t, {**imp, "impression_id": f"future-{i}", "ts": time.time() + 1e7})
            send(clk_t, {"event_id": f"ev-f-{i}", "impression_id": f"future-{i}", "ts": 2e9})
            expect["future_timestamp"] += 2
    # events from long before the late-click horizon
    main, out = out, []
    for j in range(20):
        old = {**imp, "impression_id": f"old-{j}", "event_id": f"ev-old-{j}", "ts": 1000.0 + j}
        send(imp_t, old)
        send(clk_t, {"event_id": f"ev-old-c-{j}", "impression_id": f"old-{j}", "ts": 1001.0 + j})
        expect["too_old"] += 2
    return main, out, dict(expect)


def bad_traffic(env: WorkerEnv) -> tuple[list[Message], Counter[str]]:
    out: list[Message] = []
    reasons: Counter[str] = Counter()
    for row in load_corpus():
        for j in range(COPIES):
            key, value = payload(row, iid=f"bad-{row['kind']}-{j}")
            out.append((env.topic(row["topic"]), key, value))
            reasons[row["reason"]] += 1
    return out, reasons


def interleave(good: list[Message], bad: list[Message], seed: int = 0) -> list[Message]:
    """Shuffle ``bad`` into ``good``, each keeping its own order."""
    rng = random.Random(seed)
    slots = [0] * len(good) + [1] * len(bad)
    rng.shuffle(slots)
    sources = [iter(good), iter(bad)]
    return [next(sources[s]) for s in slots]


def test_every_message_is_labelled_dead_lettered_or_dropped_on_purpose(
    worker_env: WorkerEnv,
) -> None:
    worker_env.overrides.update(
        {
            **REPLAY,
            "BERTCTR_ATTRIBUTION_WINDOW_S": "5",
            "BERTCTR_HEALTH_INTERVAL_S": "1",
        }
    )
    base = time.time() - 3000
    good, old, expect = good_traffic(worker_env, base)
    bad, bad_reasons = bad_traffic(worker_env)
    assert len(bad) >= 10_000
    messages = interleave(good, bad)
    worker_env.cli("topics", "create")
    proc = worker_env.start_worker()
    bootstrap = worker_env.stack.kafka_bootstrap
    asyncio.run(publish(bootstrap, messages))
    # Old events are judged against the partition's running clock, so they
    # come once the worker has read the rest (before, a partition whose
    # inputs are unread has no watermark to be too old for).
    labels = asyncio.run(consume(bootstrap, worker_env.topic(LABELLED), GOOD_IMPRESSIONS, 180))
    asyncio.run(publish(bootstrap, old))
    messages += old

    expected_dead = Counter(bad_reasons)
    for reason in ("conflicting_impression", "orphan_click", "future_timestamp", "too_old"):
        expected_dead[reason] += expect[reason]
    dead = asyncio.run(
        consume(bootstrap, worker_env.topic(DEAD_LETTER), sum(expected_dead.values()), 120)
    )
    labels = asyncio.run(consume(bootstrap, worker_env.topic(LABELLED), GOOD_IMPRESSIONS, 30))
    logs = worker_env.worker_logs()

    # the good labels are exactly what the good traffic implies
    label_ids = [m["label_id"] for m in labels]
    assert len(label_ids) == len(set(label_ids)) == GOOD_IMPRESSIONS, logs
    assert {lid for lid in label_ids if lid.endswith(":pos")} == {
        f"good-{i}:pos" for i in range(0, GOOD_IMPRESSIONS, 10)
    }
    assert all(lid.startswith("good-") and not lid.endswith(":late") for lid in label_ids)

    # every bad message is dead-lettered once, with its reason and its origin
    assert Counter(d["reason"] for d in dead) == expected_dead
    origins = [(d["topic"], d["partition"], d["offset"]) for d in dead if d["offset"] is not None]
    assert len(origins) == len(set(origins))
    kept = [d for d in dead if d["reason"] != "empty_value"]
    assert all((d["value"] is None) != (d["value_b64"] is None) for d in kept)

    # the accounting is exact: published = dead-lettered at their offset
    # + accepted impressions + accepted clicks + duplicates + repeat clicks
    def join_counts() -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "bertctr.cli", "health", "--json"],
            env=worker_env.env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        return dict(json.loads(out.stdout)["workers"][0]["join"])

    def settled() -> bool:
        c = join_counts()
        n = int(c["impressions"] + c["clicks"] + c["duplicates"] + c["repeat_clicks"])
        return n + len(origins) == len(messages)

    assert wait_until(settled, timeout_s=30), (join_counts(), len(origins), len(messages))
    counts = join_counts()
    assert counts["impressions"] == GOOD_IMPRESSIONS
    assert counts["clicks"] == expect["clicked"] + expect["orphan_click"]
    assert counts["duplicates"] == expect["duplicates"]
    assert counts["repeat_clicks"] == expect["repeat_clicks"]
    assert counts["rejected"] == dict(sorted(expected_dead.items()))

    # counters: both views equal the good traffic's totals
    for view in ("live", "settled"):
        stats = json.loads(worker_env.cli("stats", "--json", "--view", view))
        total = stats["total"]
        assert (total["impressions"], total["clicks"]) == (GOOD_IMPRESSIONS, expect["clicked"])
        assert set(stats["items"]) == {f"sku-{k}" for k in range(7)}

    # and no agent crashed or restarted on the way
    assert proc.poll() is None
    assert "Restarting dead" not in logs and "Traceback" not in logs
