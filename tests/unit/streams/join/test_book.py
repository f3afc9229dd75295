"""The join state machine as pure code: every rule, with hypothesis for order independence."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Click, Impression
from streams.join.book import Effects, JoinBook
from streams.join.clock import JoinConfig

CFG = JoinConfig(
    window_s=60,
    max_lateness_s=10,
    orphan_grace_s=30,
    horizon_s=1000,
    idle_after_s=1,
    idle_clock_rate=1.0,
)


def imp(i: int, ts: float, event_id: str | None = None) -> Impression:
    return Impression(
        event_id=event_id or f"e-imp-{i}",
        impression_id=f"i{i}",
        ts=ts,
        item_id="item",
        image_id="img",
        position=0,
        segment={"device": "mobile", "geo": "DE"},
    )


def click(i: int, ts: float, event_id: str | None = None) -> Click:
    return Click(event_id=event_id or f"e-clk-{i}", impression_id=f"i{i}", ts=ts)


def labels(effects: Effects) -> list[str]:
    return [lab.label_id for lab in effects.labelled]


def test_click_in_window_is_a_positive_with_its_delay() -> None:
    book = JoinBook(0, CFG)
    assert labels(book.on_impression(imp(1, 100), wall=0)) == []
    fx = book.on_click(click(1, 130), wall=0)
    assert labels(fx) == ["i1:pos"]
    assert fx.labelled[0].clicked and fx.labelled[0].click_delay_s == 30
    assert not fx.labelled[0].late


def test_expiry_makes_a_negative_once_the_watermark_passes() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    # by wall 5 the clicks input, never seen and not behind, is known empty;
    # window ends at 160; watermark = newest ts - lateness
    assert labels(book.on_impression(imp(2, 169), wall=5)) == []
    fx = book.on_impression(imp(3, 171), wall=5)
    assert labels(fx) == ["i1:neg"]
    assert not fx.labelled[0].clicked and fx.labelled[0].click_delay_s is None


def test_idle_partition_expires_by_wall_clock_advance() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=1000)
    assert labels(book.on_tick(wall=1050)) == []  # watermark 90 + 49 = 139
    assert labels(book.on_tick(wall=1072)) == ["i1:neg"]  # 90 + 71 = 161 > 160


def test_watermark_never_goes_back() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    book.on_tick(wall=100)
    wm = book.clock.watermark
    book.on_impression(imp(2, 50), wall=101)
    assert book.clock.watermark >= wm


def test_late_click_after_negative_is_a_correction() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    assert labels(book.on_tick(wall=100)) == ["i1:neg"]
    fx = book.on_click(click(1, 300), wall=100)
    assert labels(fx) == ["i1:late"]
    assert fx.labelled[0].late and fx.labelled[0].clicked and fx.labelled[0].click_delay_s == 200


def test_a_click_exactly_at_the_end_of_the_window_is_a_positive() -> None:
    """The window is closed: a click ``window_s`` after its impression still counts."""
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    fx = book.on_click(click(1, 160), wall=0)
    assert labels(fx) == ["i1:pos"] and fx.labelled[0].click_delay_s == 60
    # the same when the click is read before its impression
    book = JoinBook(0, CFG)
    book.on_click(click(2, 160), wall=0)
    fx = book.on_impression(imp(2, 100), wall=0)
    assert labels(fx) == ["i2:pos"] and fx.labelled[0].click_delay_s == 60
    # and just past it, a negative and its correction
    book = JoinBook(0, CFG)
    book.on_impression(imp(3, 100), wall=0)
    assert labels(book.on_click(click(3, 160.001), wall=0)) == ["i3:neg", "i3:late"]


def test_click_past_window_before_expiry_gives_negative_and_correction() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    assert labels(book.on_click(click(1, 165), wall=0)) == ["i1:neg", "i1:late"]


def test_out_of_order_click_joins_its_impression() -> None:
    book = JoinBook(0, CFG)
    assert labels(book.on_click(click(1, 105), wall=0)) == []
    fx = book.on_impression(imp(1, 100), wall=0)
    assert labels(fx) == ["i1:pos"] and fx.labelled[0].click_delay_s == 5


def test_duplicates_by_event_id_count_once() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    assert book.on_impression(imp(1, 100), wall=0).duplicates == 1
    assert labels(book.on_click(click(1, 110), wall=0)) == ["i1:pos"]
    fx = book.on_click(click(1, 110), wall=0)
    assert fx.duplicates == 1 and labels(fx) == []
    # a labelled impression is remembered: a replayed impression is still a duplicate
    assert book.on_impression(imp(1, 100), wall=0).duplicates == 1


def test_second_distinct_click_adds_no_label() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    book.on_click(click(1, 110), wall=0)
    fx = book.on_click(click(1, 120, event_id="another"), wall=0)
    assert labels(fx) == [] and fx.duplicates == 0


def test_orphan_click_is_rejected_after_grace() -> None:
    book = JoinBook(0, CFG)
    assert book.on_click(click(9, 100), wall=0).rejected == []
    fx = book.on_tick(wall=100)  # watermark 90 + 99 > 130
    assert [r.reason for r in fx.rejected] == ["orphan_click"]
    assert fx.rejected[0].event.impression_id == "i9"
    assert len(book) == 0


def test_conflicting_impression_id_is_rejected() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    fx = book.on_impression(imp(1, 100, event_id="other"), wall=0)
    assert [r.reason for r in fx.rejected] == ["conflicting_impression"]


def test_state_is_forgotten_after_the_horizon() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    assert len(book) == 1
    # watermark 90 + 1999: past the window (160), so the negative goes out, and
    # past the horizon (100 + 1000), so the state is deleted in the same tick
    fx = book.on_tick(wall=2000)
    assert labels(fx) == ["i1:neg"]
    assert fx.upserts == {"i1": None}  # the durable table is told to delete it
    assert len(book) == 0 and book.get("i1") is None
    # nothing is left to expire: a later tick has no effect at all
    again = book.on_tick(wall=2000)
    assert again.upserts == {} and labels(again) == [] and again.rejected == []


def test_a_state_inside_the_horizon_is_kept() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    fx = book.on_tick(wall=1000)  # watermark 90 + 999 = 1089 < 1100: negative, not forgotten
    assert labels(fx) == ["i1:neg"]
    assert fx.upserts["i1"] is not None and fx.upserts["i1"]["status"] == "negative"
    assert len(book) == 1


def test_restore_from_upserts_continues_the_same_way() -> None:
    book = JoinBook(0, CFG)
    table: dict[str, Any] = {}
    for fx in (book.on_impression(imp(1, 100), wall=0), book.on_click(click(2, 101), wall=0)):
        for key, value in fx.upserts.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
    restored = JoinBook.restore(0, CFG, table)
    restored.clock.restore(book.clock.inputs, book.clock.watermark, wall=0)
    assert labels(restored.on_click(click(1, 110), wall=0)) == ["i1:pos"]
    assert labels(restored.on_impression(imp(2, 100), wall=0)) == ["i2:pos"]


events = st.lists(
    st.tuples(st.integers(0, 5), st.floats(0, 50), st.booleans(), st.floats(0, 120)),
    min_size=1,
    max_size=12,
    unique_by=lambda t: t[0],
)


@settings(max_examples=200, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_labels_do_not_depend_on_arrival_order(spec: Any, rnd: Any) -> None:
    """Within the lateness bound, any interleaving gives the same labels."""
    cfg = JoinConfig(
        window_s=60,
        max_lateness_s=500,
        orphan_grace_s=60,
        horizon_s=10_000,
        idle_after_s=0,
        idle_clock_rate=1.0,
    )
    stream: list[Impression | Click] = []
    for i, ts, clicked, delay in spec:
        stream.append(imp(i, ts))
        if clicked:
            stream.append(click(i, ts + delay))

    def run(order: list[Impression | Click]) -> list[str]:
        book = JoinBook(0, cfg)
        out: list[str] = []
        for ev in order:
            fx = book.on_impression(ev, 0) if isinstance(ev, Impression) else book.on_click(ev, 0)
            out += labels(fx)
        out += labels(book.on_tick(wall=10_000))
        return out

    shuffled = list(stream)
    rnd.shuffle(shuffled)
    # exactly these labels, each once: none missing, none extra, none twice
    expected: list[str] = []
    for i, ts, clicked, delay in spec:
        if not clicked:
            expected.append(f"i{i}:neg")
        elif (ts + delay) - ts <= 60:  # the delay as the join sees it, after rounding
            expected.append(f"i{i}:pos")
        else:
            expected += [f"i{i}:neg", f"i{i}:late"]
    assert sorted(run(stream)) == sorted(expected)
    assert sorted(run(shuffled)) == sorted(expected)


def test_lagging_partition_is_not_idle() -> None:
    """Unread messages mean 'behind', not 'idle': the clock must wait for them."""
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=1000)
    assert labels(book.on_tick(wall=1100, behind={"impressions"})) == []
    assert book.clock.watermark == 90
    # once caught up, idle time counts from the last hold
    assert labels(book.on_tick(wall=1150, behind=())) == []
    assert labels(book.on_tick(wall=1172, behind=())) == ["i1:neg"]


def test_impressions_read_ahead_of_clicks_do_not_expire_their_clicks() -> None:
    """The watermark is the slower input's: a lagging clicks topic holds expiry back."""
    book = JoinBook(0, CFG)
    book.on_click(click(9, 50), wall=0)  # clicks are read up to ts 50 so far
    book.on_impression(imp(1, 100), wall=0)
    for i, ts in enumerate(range(110, 400, 10), start=10):
        assert "i1:neg" not in labels(book.on_impression(imp(i, ts), wall=0))
    assert book.clock.watermark == 40  # clicks' 50 - lateness, not impressions' 390 - 10
    # the click of i1, inside its window, arrives late in wall time: still a positive
    assert labels(book.on_click(click(1, 130), wall=0)) == ["i1:pos"]


def test_a_quiet_clicks_topic_goes_idle_and_stops_holding_expiry() -> None:
    book = JoinBook(0, CFG)
    book.on_click(click(9, 50), wall=1000)
    book.on_impression(imp(1, 100), wall=1000)
    # clicks quiet since wall 1000: idle after 1 s, then +1 event-s per wall-s
    assert labels(book.on_impression(imp(2, 300), wall=1100)) == []  # min(290, 40+99)=139
    assert labels(book.on_impression(imp(3, 300), wall=1122)) == ["i1:neg"]  # 40+121=161


def test_only_the_lagging_input_is_held() -> None:
    """Clicks still arriving must not keep an impressions topic read to its end from idling."""
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=1000)
    book.on_click(click(9, 500), wall=1000)
    assert labels(book.on_tick(wall=1050, behind={"clicks"})) == []  # 90 + 49 = 139
    assert labels(book.on_tick(wall=1072, behind={"clicks"})) == ["i1:neg"]  # 90 + 71


def test_restored_clock_counts_idle_time_from_the_restore() -> None:
    """After a restart a caught-up partition must not jump its watermark ahead."""
    book = JoinBook(0, CFG)
    table: dict[str, Any] = {}
    for key, value in book.on_impression(imp(1, 100), wall=0).upserts.items():
        table[key] = value
    restored = JoinBook.restore(0, CFG, table)
    restored.clock.restore(dict(book.clock.inputs), book.clock.watermark, wall=5000)
    assert labels(restored.on_tick(wall=5010, behind=())) == []  # 90 + 9 = 99
    assert labels(restored.on_tick(wall=5072, behind=())) == ["i1:neg"]  # 90 + 71


# -- issue 9: unseen inputs, producers' clocks, live counts ---------------------


def test_an_unseen_input_holds_the_watermark_while_it_is_behind() -> None:
    """A burst of impressions read before the first click must not expire them."""
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0, behind={"clicks"})
    # far past the window in impression time, and long after idle_after_s:
    # clicks are still unread (behind), so nothing may expire
    fx = book.on_impression(imp(2, 10_000), wall=50, behind={"clicks"})
    assert labels(fx) == [] and book.clock.watermark == float("-inf")
    assert labels(book.on_tick(wall=60, behind={"clicks"})) == []
    # the click of impression 1, 1 s after it, is then still a positive
    assert labels(book.on_click(click(1, 101), wall=61)) == ["i1:pos"]


def test_an_unseen_input_known_empty_stops_holding() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    book.on_impression(imp(2, 200), wall=0)
    assert book.clock.watermark == float("-inf")
    # clicks are read to their end (not behind) and quiet for idle_after_s
    fx = book.on_tick(wall=1.5)
    assert labels(fx) == ["i1:neg"]


def test_a_future_event_is_refused_and_moves_nothing() -> None:
    book = JoinBook(0, CFG)
    wall = 1_000.0
    book.on_impression(imp(1, 990), wall=wall)
    book.on_click(click(9, 991), wall=wall)  # clicks seen
    before = book.clock.watermark
    fx = book.on_impression(imp(2, wall + 1e7), wall=wall)
    assert [r.reason for r in fx.rejected] == ["future_timestamp"]
    assert "ahead of the worker's clock" in fx.rejected[0].detail
    fx = book.on_click(click(2, wall + 1e7), wall=wall)
    assert [r.reason for r in fx.rejected] == ["future_timestamp"]
    assert book.clock.watermark == before and book.get("i2") is None
    # within the skew bound an event is fine
    assert book.on_impression(imp(3, wall + 200), wall=wall).rejected == []
    # and the genuine click still joins its impression
    assert labels(book.on_click(click(1, 995), wall=wall)) == ["i1:pos"]


def test_an_event_older_than_the_horizon_is_refused() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 5_000), wall=10_000)
    book.on_click(click(1, 5_001), wall=10_000)
    assert book.clock.watermark == 4_990
    fx = book.on_impression(imp(2, 4_990 - CFG.horizon_s), wall=10_000)
    assert [r.reason for r in fx.rejected] == ["too_old"]
    fx = book.on_click(click(3, 3_000), wall=10_000)
    assert [r.reason for r in fx.rejected] == ["too_old"]
    # an old impression inside the horizon is labelled at once (its window closed)
    fx = book.on_impression(imp(4, 4_500), wall=10_000)
    assert fx.rejected == [] and labels(fx) == ["i4:neg"]


def live(effects: Effects) -> list[tuple[str, str]]:
    return [(c.impression.impression_id, c.kind) for c in effects.live]


def test_live_counts_impressions_on_arrival_and_clicks_once() -> None:
    book = JoinBook(0, CFG)
    assert live(book.on_impression(imp(1, 100), wall=0)) == [("i1", "impression")]
    assert live(book.on_impression(imp(1, 100), wall=0)) == []  # duplicate
    assert live(book.on_click(click(1, 110), wall=0)) == [("i1", "click")]
    fx = book.on_click(click(1, 111, event_id="other"), wall=0)
    assert live(fx) == [] and fx.repeat_clicks == 1
    # a click that waited for its impression counts both when it arrives
    assert live(book.on_click(click(2, 120), wall=0)) == []
    assert live(book.on_impression(imp(2, 115), wall=0)) == [
        ("i2", "impression"),
        ("i2", "click"),
    ]
    # a late click counts its click when it arrives
    book.on_impression(imp(3, 130), wall=0)
    book.on_impression(imp(4, 300), wall=0)
    book.on_click(click(4, 301), wall=0)  # watermark 290: i3 expired
    assert live(book.on_click(click(3, 290), wall=0)) == [("i3", "click")]


def test_a_click_after_the_negative_counts_live_once_and_corrects_once() -> None:
    book = JoinBook(0, CFG)
    book.on_impression(imp(1, 100), wall=0)
    assert labels(book.on_tick(wall=100)) == ["i1:neg"]  # the window closed, no click
    fx = book.on_click(click(1, 300), wall=100)
    assert labels(fx) == ["i1:late"] and live(fx) == [("i1", "click")]
    assert fx.outcome == "accepted" and fx.upserts["i1"] is not None
    assert fx.upserts["i1"]["status"] == "corrected"
    # a further click adds nothing: no second correction, no second live click
    fx = book.on_click(click(1, 310, event_id="again"), wall=100)
    assert labels(fx) == [] and live(fx) == []
    assert (fx.repeat_clicks, fx.duplicates, fx.outcome) == (1, 0, "repeat")
    # and a replayed click is a duplicate
    fx = book.on_click(click(1, 300), wall=100)
    assert labels(fx) == [] and live(fx) == []
    assert (fx.repeat_clicks, fx.duplicates, fx.outcome) == (0, 1, "duplicate")


def test_of_clicks_waiting_for_their_impression_the_earliest_is_kept() -> None:
    book = JoinBook(0, CFG)
    assert book.on_click(click(1, 130), wall=0).outcome == "accepted"
    replay = book.on_click(click(1, 130), wall=0)
    assert (replay.duplicates, replay.outcome) == (1, "duplicate")
    fx = book.on_click(click(1, 105, event_id="earlier"), wall=0)
    assert (fx.repeat_clicks, fx.outcome) == (1, "repeat")
    assert fx.upserts["i1"] is not None and fx.upserts["i1"]["click"]["event_id"] == "earlier"
    later = book.on_click(click(1, 140, event_id="later"), wall=0)
    assert later.upserts["i1"] is not None
    assert later.upserts["i1"]["click"]["event_id"] == "earlier"  # a later one replaces nothing
    fx = book.on_impression(imp(1, 100), wall=0)
    assert labels(fx) == ["i1:pos"] and fx.labelled[0].click_delay_s == 5
