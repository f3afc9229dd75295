"""Redis key building and counter deltas (what dashboards rely on)."""

from __future__ import annotations

from schemas import Impression, LabelledImpression
from schemas.keys import KeySpace, minute_of, scopes
from streams.counters.redis_counters import deltas


def test_key_layout() -> None:
    k = KeySpace("bc:")
    assert k.counter("total") == "bc:ctr:total"
    assert k.counter("item:sku-1") == "bc:ctr:item:sku-1"
    assert k.minute_bucket("total", 5) == "bc:ctr:total:m:5"
    assert k.seen("i1:pos") == "bc:seen:i1:pos"
    assert (k.clock, k.items_index, k.segments_index) == (
        "bc:clock",
        "bc:idx:items",
        "bc:idx:segments",
    )
    assert k.variants_index("sku-1") == "bc:idx:variants:sku-1"


def test_scopes_and_minutes() -> None:
    assert scopes("a", "v1", "device=m,geo=DE") == [
        "total",
        "item:a",
        "variant:a:v1",
        "segment:device=m,geo=DE",
        "ivs:a:v1:device=m,geo=DE",
    ]
    assert minute_of(119.9) == 1 and minute_of(120.0) == 2


def test_deltas_late_correction_adds_only_a_click() -> None:
    imp = Impression(
        event_id="e",
        impression_id="i",
        ts=1,
        item_id="a",
        image_id="b",
        position=0,
        segment={"device": "m", "geo": "DE"},
    )

    def lab(clicked: bool, late: bool) -> LabelledImpression:
        return LabelledImpression.from_impression(
            imp, clicked=clicked, click_delay_s=None, late=late, labelled_at=0
        )

    assert deltas(lab(False, False)) == (1, 0)
    assert deltas(lab(True, False)) == (1, 1)
    assert deltas(lab(True, True)) == (0, 1)


def test_settled_view_and_live_markers_have_their_own_keys() -> None:
    k = KeySpace("bc:")
    assert k.counter("total", "settled") == "bc:settled:total"
    assert k.minute_bucket("item:a", 7, "settled") == "bc:settled:item:a:m:7"
    assert k.view_clock("settled") == "bc:settled:clock" and k.view_clock("live") == "bc:clock"
    assert k.seen_live("i1", "click") == "bc:seen:live:i1:click"


def test_model_and_cache_keys_follow_the_documented_layout() -> None:
    k = KeySpace("bc:")
    assert k.model_metrics == "bc:model:metrics"
    assert k.embedding("image_encoder", 3, "img-1") == "bc:emb:image_encoder:3:img-1"
    assert k.health("w1") == "bc:health:w1" and k.workers == "bc:workers"
