"""End to end on a real Tansu broker and real Redis: producers -> worker -> outputs.

Publishes a known mix (in-window, late and out-of-order clicks, duplicates,
a repeat click, orphan clicks, a conflicting impression and 20 malformed
messages) with aiokafka, runs ``bertctr worker`` as a subprocess and checks
the exact labelled output, the exact dead letters, the exact Redis counters
and the ``bertctr stats --json`` output.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from bertctr.harness.kafka import consume, publish
from bertctr.harness.workers import REPLAY
from schemas.topics import CLICKS, DEAD_LETTER, IMPRESSIONS, LABELLED, full_name
from tests.integration.conftest import WorkerEnv

pytestmark = pytest.mark.integration

WINDOW_S = 60.0
SEGMENTS = [{"device": "mobile", "geo": "DE"}, {"device": "desktop", "geo": "US", "taste": "t1"}]


@dataclass
class Scenario:
    """Published messages plus the output the rules of the join imply."""

    messages: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    expected_labels: set[str] = field(default_factory=set)
    expected_dead: Counter[str] = field(default_factory=Counter)
    impressions: dict[str, dict[str, Any]] = field(default_factory=dict)
    clicked: set[str] = field(default_factory=set)
    duplicates: int = 0


def seg_key(seg: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(seg.items()))


def build(prefix: str, n: int = 40) -> Scenario:
    sc = Scenario()
    imp_t, clk_t = full_name(prefix, IMPRESSIONS), full_name(prefix, CLICKS)
    base = time.time() - 3600

    def send(topic: str, key: str | bytes | None, value: dict[str, Any] | bytes) -> None:
        k = key.encode() if isinstance(key, str) else key
        v = value if isinstance(value, bytes) else json.dumps(value).encode()
        sc.messages.append((topic, k, v))

    for i in range(n):
        iid = f"imp-{i}"
        imp: dict[str, Any] = {
            "event_id": f"ev-imp-{i}",
            "impression_id": iid,
            "ts": base + i * 0.5,
            "item_id": f"item-{i % 3}",
            "image_id": f"img-{i % 3}-{i % 2}",
            "variant": f"v{i % 2}",
            "title": "red shoe",
            "position": i % 5,
            "segment": SEGMENTS[i % 2],
        }
        sc.impressions[iid] = imp
        click = {"event_id": f"ev-clk-{i}", "impression_id": iid}
        if i % 10 == 7:  # out of order: click published before its impression
            send(clk_t, iid, {**click, "ts": imp["ts"] + 2})
            sc.clicked.add(iid)
            sc.expected_labels.add(f"{iid}:pos")
        send(imp_t, iid, imp)
        if i % 8 == 1:  # duplicate impression (same event_id)
            send(imp_t, iid, imp)
            sc.duplicates += 1
        if i % 4 == 0:  # click inside the window
            send(clk_t, iid, {**click, "ts": imp["ts"] + 5})
            sc.clicked.add(iid)
            sc.expected_labels.add(f"{iid}:pos")
            if i in (0, 4):  # duplicate click
                send(clk_t, iid, {**click, "ts": imp["ts"] + 5})
                sc.duplicates += 1
            if i == 8:  # a second, distinct click: adds nothing
                send(clk_t, iid, {**click, "event_id": "ev-clk-8b", "ts": imp["ts"] + 9})
        elif i % 10 == 3:  # late click: negative then late correction
            send(clk_t, iid, {**click, "ts": imp["ts"] + 150})
            sc.clicked.add(iid)
            sc.expected_labels |= {f"{iid}:neg", f"{iid}:late"}
        elif i % 10 != 7:
            sc.expected_labels.add(f"{iid}:neg")

    for j in range(3):  # orphan clicks: no impression ever comes
        send(
            clk_t,
            f"ghost-{j}",
            {"event_id": f"ev-ghost-{j}", "impression_id": f"ghost-{j}", "ts": base + j},
        )
    sc.expected_dead["orphan_click"] = 3
    conflict = {**sc.impressions["imp-5"], "event_id": "ev-imp-5-other"}
    send(imp_t, "imp-5", conflict)
    sc.expected_dead["conflicting_impression"] = 1

    good_click = {"event_id": "x", "impression_id": "imp-0", "ts": base}
    malformed: list[tuple[str, str | None, bytes | dict[str, Any], str]] = []
    for j in range(6):
        malformed.append((imp_t, f"bad-{j}", b"{not json" + bytes([j]), "invalid_json"))
    for _ in range(2):
        malformed.append((clk_t, None, b"\xff\xfe\x00garbage", "invalid_json"))
    for j in range(4):
        bad = dict(sc.impressions["imp-1"])
        del bad["segment"]
        bad["event_id"] = f"bad-imp-{j}"
        malformed.append((imp_t, "imp-1", bad, "schema_violation"))
    for j in range(3):
        bad = {**sc.impressions["imp-2"], "position": -1 - j, "event_id": f"neg-{j}"}
        malformed.append((imp_t, "imp-2", bad, "schema_violation"))
    malformed.append((clk_t, "imp-0", {**good_click, "ts": "yesterday"}, "schema_violation"))
    malformed.append((clk_t, "imp-0", {**good_click, "ts": -5.0}, "schema_violation"))
    malformed.append((clk_t, "imp-0", {**good_click, "extra": 1}, "schema_violation"))
    malformed.append((clk_t, "other-key", good_click, "key_mismatch"))
    malformed.append((imp_t, "imp-3", b"", "invalid_json"))
    assert len(malformed) == 20
    for topic, key, value, reason in malformed:
        send(topic, key, value)
        sc.expected_dead[reason] += 1
    return sc


def expected_counters(sc: Scenario) -> dict[str, tuple[int, int]]:
    counts: Counter[str] = Counter()
    for iid, imp in sc.impressions.items():
        seg = seg_key(imp["segment"])
        scopes = [
            "total",
            f"item:{imp['item_id']}",
            f"variant:{imp['item_id']}:{imp['variant']}",
            f"segment:{seg}",
            f"ivs:{imp['item_id']}:{imp['variant']}:{seg}",
        ]
        for s in scopes:
            counts[f"{s}|i"] += 1
            counts[f"{s}|c"] += int(iid in sc.clicked)
    scopes_seen = {k.split("|")[0] for k in counts}
    return {s: (counts[f"{s}|i"], counts[f"{s}|c"]) for s in scopes_seen}


async def test_join_labels_counts_and_dead_letters_exactly(worker_env: WorkerEnv) -> None:
    worker_env.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": str(WINDOW_S),
            **REPLAY,
        }
    )
    sc = build(worker_env.topic_prefix)
    worker_env.cli("topics", "create")
    worker_env.start_worker()
    bootstrap = worker_env.stack.kafka_bootstrap
    await publish(bootstrap, sc.messages)

    labelled = await consume(
        bootstrap, worker_env.topic(LABELLED), len(sc.expected_labels), timeout_s=120
    )
    dead = await consume(
        bootstrap, worker_env.topic(DEAD_LETTER), sum(sc.expected_dead.values()), timeout_s=30
    )
    logs = worker_env.worker_logs()

    label_ids = [m["label_id"] for m in labelled]
    assert len(label_ids) == len(set(label_ids)), "a label was emitted twice"
    assert set(label_ids) == sc.expected_labels, logs
    for m in labelled:
        assert m == {
            **sc.impressions[m["impression_id"]],
            "schema_version": 1,
            "user_id": None,
            "propensity": None,
            "image_url": None,
            "label_id": m["label_id"],
            "clicked": m["clicked"],
            "click_delay_s": m["click_delay_s"],
            "late": m["late"],
            "labelled_at": m["labelled_at"],
        }
        assert m["clicked"] == (not m["label_id"].endswith(":neg"))
        assert m["late"] == m["label_id"].endswith(":late")
        if m["clicked"]:
            assert m["click_delay_s"] in (2.0, 5.0, 150.0)

    assert Counter(d["reason"] for d in dead) == sc.expected_dead
    for d in dead:
        assert d["value"] is not None or d["value_b64"] is not None
        if d["reason"] != "orphan_click" and d["reason"] != "conflicting_impression":
            assert d["offset"] is not None and d["partition"] is not None

    # Accounting: every unique impression got exactly one non-late label, every
    # unique click a positive (in window or late), every other message a dead letter.
    non_late = [i for i in label_ids if not i.endswith(":late")]
    assert sorted(i.rsplit(":", 1)[0] for i in non_late) == sorted(sc.impressions)
    positives = [i for i in label_ids if not i.endswith(":neg")]
    assert len(positives) == len(sc.clicked)
    published = len(sc.messages)
    repeat_clicks = 1
    accounted = len(sc.impressions) + len(sc.clicked) + sc.duplicates + repeat_clicks + len(dead)
    assert accounted == published

    # Redis counters, read back through the CLI a dashboard script would use.
    expected = expected_counters(sc)

    def counters_done() -> bool:
        stats = json.loads(worker_env.cli("stats", "--json"))
        return bool(
            stats["total"]["impressions"] == expected["total"][0]
            and stats["total"]["clicks"] == expected["total"][1]
        )

    from tests.integration.conftest import wait_until

    assert wait_until(counters_done, 30), logs
    stats = json.loads(worker_env.cli("stats", "--json"))
    assert (stats["total"]["impressions"], stats["total"]["clicks"]) == expected["total"]
    for item, c in stats["items"].items():
        assert (c["impressions"], c["clicks"]) == expected[f"item:{item}"]
        for variant, vc in c["variants"].items():
            assert (vc["impressions"], vc["clicks"]) == expected[f"variant:{item}:{variant}"]
    assert len(stats["items"]) == 3
    for seg, c in stats["segments"].items():
        assert (c["impressions"], c["clicks"]) == expected[f"segment:{seg}"]
    assert set(stats["segments"]) == {seg_key(s) for s in SEGMENTS}
    assert stats["total"]["ctr"] == pytest.approx(expected["total"][1] / expected["total"][0])
    # The hour window holds everything (all events are within an hour of the clock).
    assert stats["total"]["last_hour"]["impressions"] == expected["total"][0]

    seg = seg_key(SEGMENTS[1])
    narrowed = json.loads(worker_env.cli("stats", "--item", "item-1", "--segment", seg, "--json"))
    assert list(narrowed["items"]) == ["item-1"]
    assert list(narrowed["segments"]) == [seg]
    for variant, vc in narrowed["items"]["item-1"]["variants"].items():
        cell = vc["segments"][seg]
        assert (cell["impressions"], cell["clicks"]) == expected.get(
            f"ivs:item-1:{variant}:{seg}", (0, 0)
        )
