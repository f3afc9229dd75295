"""RedisCounters' dedup markers, without a Redis server.

The counters' exactness rests on which key each increment claims before it
counts: ``seen:<label_id>`` for a settled label (so a late correction of an
impression, ``<id>:late``, is a new fact beside its ``<id>:neg``), and
``seen:live:<impression_id>:<kind>`` for a live count. A fake of the narrow
Redis surface the class uses (``register_script``, a pipeline, ``execute``)
runs the script's documented KEYS/ARGV layout in Python: claim the marker
(SET NX EX), and only if it was new add the deltas to the counter hashes and
minute buckets, the item, segment and variant indexes, the variant's media,
and move the view's clock. The Lua itself runs against real Redis in
tests/integration/streams/test_counters.py.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast

from schemas.events import Impression, LabelledImpression
from schemas.keys import LIVE, SETTLED, KeySpace, View, minute_of, scopes
from streams.counters.redis_counters import MINUTE_BUCKET_TTL_S, SCRIPT_EVENTS, RedisCounters
from streams.join.book import LiveCount

KEYS = KeySpace("t:")
#: KEYS per event after the three shared ones: seen, N counters, N minute buckets,
#: the variants index and the variant-media hash; ARGV per event after three: 8
ARGS_PER_EVENT = 8


class FakeRedis:
    """In-memory stand-in for the calls RedisCounters makes: markers, hashes, sets."""

    def __init__(self) -> None:
        #: dedup marker -> its expiry in seconds
        self.markers: dict[str, int] = {}
        self.hashes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.expiry: dict[str, int] = {}
        self.sets: dict[str, set[str]] = defaultdict(set)
        self.media: dict[str, dict[str, str]] = defaultdict(dict)
        self.strings: dict[str, str] = {}
        self.script_calls = 0

    def register_script(self, source: str) -> FakeScript:
        assert "SET" in source and "NX" in source  # the script claims a marker first
        return FakeScript(self)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        assert transaction is False
        return FakePipeline()

    def run(self, keys: Sequence[str], args: Sequence[Any]) -> int:
        """The Lua script of ``redis_counters``, event by event."""
        self.script_calls += 1
        seen_ttl, bucket_ttl, events = int(args[0]), int(args[1]), int(args[2])
        assert seen_ttl > 0 and bucket_ttl > 0
        ki, ai = 3, 3
        applied = 0
        newest: str | None = None
        for _ in range(events):
            d_imp, d_click, ts, n = (
                int(args[ai]),
                int(args[ai + 1]),
                args[ai + 2],
                int(args[ai + 3]),
            )
            item, variant, segment, media = (str(a) for a in args[ai + 4 : ai + 8])
            seen = keys[ki]
            if seen not in self.markers:
                self.markers[seen] = seen_ttl
                applied += 1
                for i, key in enumerate(keys[ki + 1 : ki + 1 + 2 * n]):
                    self.hashes[key]["impressions"] += d_imp
                    self.hashes[key]["clicks"] += d_click
                    if i >= n:  # a minute bucket
                        self.expiry[key] = bucket_ttl
                self.sets[keys[1]].add(item)
                self.sets[keys[2]].add(segment)
                self.sets[keys[ki + 2 * n + 1]].add(variant)
                if media:
                    self.media[keys[ki + 2 * n + 2]][variant] = media
                if newest is None or float(ts) > float(newest):
                    newest = ts
            ki += 2 * n + 3
            ai += ARGS_PER_EVENT
        assert ki == len(keys) and ai == len(args), "KEYS/ARGV layout out of step"
        clock = self.strings.get(keys[0])
        if newest is not None and (clock is None or float(newest) > float(clock)):
            self.strings[keys[0]] = newest
        return applied

    def total(self, view: View) -> tuple[int, int]:
        counts = self.hashes.get(KEYS.counter("total", view), {})
        return counts.get("impressions", 0), counts.get("clicks", 0)


class FakePipeline:
    def __init__(self) -> None:
        self.queued: list[tuple[FakeRedis, Sequence[str], Sequence[Any]]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def execute(self) -> list[int]:
        results = [redis.run(keys, args) for redis, keys, args in self.queued]
        self.queued.clear()
        return results


class FakeScript:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis

    async def __call__(
        self, keys: Sequence[str], args: Sequence[Any], client: FakePipeline
    ) -> FakePipeline:
        client.queued.append((self.redis, list(keys), list(args)))
        return client


TS = 1_800_000_000.0


def impression(i: int, ts: float = TS, **extra: Any) -> Impression:
    fields: dict[str, Any] = {
        "event_id": f"e{i}",
        "impression_id": f"i{i}",
        "ts": ts,
        "item_id": "a",
        "image_id": "img",
        "variant": "v1",
        "position": 0,
        "segment": {"device": "mobile", "geo": "DE"},
    }
    return Impression.model_validate(fields | extra)


def label(i: int, *, clicked: bool, late: bool = False, ts: float = TS) -> LabelledImpression:
    return LabelledImpression.from_impression(
        impression(i, ts), clicked=clicked, click_delay_s=None, late=late, labelled_at=0.0
    )


def counters(**kwargs: Any) -> tuple[RedisCounters, FakeRedis]:
    fake = FakeRedis()
    return RedisCounters(cast(Any, fake), KEYS, **kwargs), fake


async def test_a_late_correction_is_not_deduplicated_against_its_negative() -> None:
    """Two labels of one impression are two facts: each claims its own marker."""
    c, fake = counters()
    negative, late = label(1, clicked=False), label(1, clicked=True, late=True)
    assert negative.impression_id == late.impression_id
    assert await c.apply([negative]) == 1
    assert await c.apply([late]) == 1
    assert fake.total(SETTLED) == (1, 1)  # one impression, and its click
    assert set(fake.markers) == {KEYS.seen("i1:neg"), KEYS.seen("i1:late")}


async def test_a_replayed_label_changes_nothing() -> None:
    c, fake = counters()
    batch = [label(1, clicked=False), label(2, clicked=True), label(1, clicked=True, late=True)]
    assert await c.apply(batch) == 3
    assert fake.total(SETTLED) == (2, 2)
    # at-least-once delivery: the same labels again, alone and within one batch
    assert await c.apply(batch) == 0
    assert await c.apply([label(2, clicked=True), label(2, clicked=True)]) == 0
    assert fake.total(SETTLED) == (2, 2)
    assert set(fake.markers) == {KEYS.seen(lab.label_id) for lab in batch}


async def test_each_label_claims_the_marker_of_its_label_id() -> None:
    c, fake = counters()
    one = label(7, clicked=True)
    await c.apply([one])
    assert set(fake.markers) == {KEYS.seen("i7:pos")} == {KEYS.seen(one.label_id)}
    assert fake.markers[KEYS.seen("i7:pos")] == 7 * 86_400  # kept a week by default
    # every counter scope of the label moved, total and its minute, in the settled view only
    minute = minute_of(TS)
    for scope in scopes("a", "v1", one.segment.key()):
        assert fake.hashes[KEYS.counter(scope, SETTLED)] == {"impressions": 1, "clicks": 1}
        bucket = KEYS.minute_bucket(scope, minute, SETTLED)
        assert fake.hashes[bucket] == {"impressions": 1, "clicks": 1}
        assert fake.expiry[bucket] == MINUTE_BUCKET_TTL_S
        assert KEYS.counter(scope, LIVE) not in fake.hashes
    assert fake.sets[KEYS.items_index] == {"a"}
    assert fake.sets[KEYS.segments_index] == {"device=mobile,geo=DE"}
    assert fake.sets[KEYS.variants_index("a")] == {"v1"}
    assert fake.strings == {KEYS.view_clock(SETTLED): repr(TS)}
    assert fake.media == {}  # labels never set a variant's media: the live view does


async def test_the_view_clock_is_the_newest_event_time_applied() -> None:
    c, fake = counters(seen_ttl_s=60.5)
    await c.apply([label(1, clicked=False, ts=TS + 30), label(2, clicked=False, ts=TS - 30)])
    assert fake.strings == {KEYS.view_clock(SETTLED): repr(TS + 30)}
    await c.apply([label(3, clicked=False, ts=TS + 10)])  # older: the clock stays
    assert fake.strings == {KEYS.view_clock(SETTLED): repr(TS + 30)}
    assert set(fake.markers.values()) == {60}


async def test_live_counts_claim_one_marker_per_impression_and_kind() -> None:
    c, fake = counters()
    imp = impression(3)
    counts = [LiveCount(imp, "impression"), LiveCount(imp, "click")]
    assert await c.apply_live(counts[:1]) == 1
    assert fake.total(LIVE) == (1, 0)  # an impression, no click yet
    assert await c.apply_live(counts) == 1
    assert fake.total(LIVE) == (1, 1)
    assert set(fake.markers) == {KEYS.seen_live("i3", "impression"), KEYS.seen_live("i3", "click")}
    assert fake.strings == {KEYS.view_clock(LIVE): repr(TS)}
    assert await c.apply_live(counts) == 0  # replayed
    assert fake.total(LIVE) == (1, 1)
    # the live markers are apart from the labels' markers: the settled view still counts
    assert await c.apply([label(3, clicked=True)]) == 1
    assert fake.total(SETTLED) == (1, 1)


async def test_a_large_batch_is_cut_into_script_calls_and_summed() -> None:
    c, fake = counters()
    batch = [label(i, clicked=i % 3 == 0) for i in range(SCRIPT_EVENTS + 5)]
    assert await c.apply(batch) == len(batch)
    assert fake.script_calls == 2
    assert fake.total(SETTLED) == (len(batch), sum(1 for i in range(len(batch)) if i % 3 == 0))
    assert await c.apply([]) == 0 and fake.script_calls == 2


async def test_a_live_impression_records_its_variant_media_and_a_click_does_not() -> None:
    c, fake = counters()
    plain = impression(1, title="red shoe")
    await c.apply_live([LiveCount(plain, "impression")])
    assert fake.media == {
        KEYS.variant_media("a"): {"v1": '{"image_id":"img","title":"red shoe"}'},
    }
    hosted = impression(2, image_url="https://img.example/2.png", variant="v2")
    await c.apply_live([LiveCount(hosted, "click"), LiveCount(hosted, "impression")])
    media = fake.media[KEYS.variant_media("a")]
    assert json.loads(media["v2"]) == {
        "image_id": "img",
        "title": "",
        "image_url": "https://img.example/2.png",
    }
    assert media["v2"] == '{"image_id":"img","title":"","image_url":"https://img.example/2.png"}'
    assert fake.sets[KEYS.variants_index("a")] == {"v1", "v2"}
    # a click alone names its variant but carries no media
    await c.apply_live([LiveCount(impression(3, variant="v3", title="x"), "click")])
    assert "v3" not in fake.media[KEYS.variant_media("a")]
    assert fake.sets[KEYS.variants_index("a")] == {"v1", "v2", "v3"}
