"""The impression/click join as a pure state machine (no Kafka, no Faust).

One :class:`JoinBook` holds the join state of one partition. Events go in,
:class:`Effects` come out: labelled examples to emit, messages to dead-letter,
and state upserts for the durable table that mirrors the book. Keeping this
pure is what lets the rules below be unit-tested exhaustively and makes the
Faust agent a thin shell around it.

Rules (all decided in event time, so the output does not depend on the
interleaving of the two topics as long as events arrive within the bounded
lateness):

* an impression waits until ``ts + window``; a click inside the window makes a
  positive, expiry with no click makes a negative;
* a click after the window on an impression whose negative is out produces a
  *late correction* (a positive with ``late=True``); if the impression is still
  waiting, the negative and the correction are emitted together, which is what
  perfectly timely processing would have produced;
* a click before its impression waits ``orphan_grace_s`` for it; if it never
  comes the click is dead-lettered as ``orphan_click``;
* events repeated with the same ``event_id`` are counted once; a second click
  on an already clicked impression adds nothing (CTR counts clicked
  impressions, so it never exceeds 1);
* a labelled impression is remembered for ``late_click_horizon_s`` so that
  duplicates and late clicks still find it, then forgotten.

Expiry is driven by a watermark: the newest event time of the partition's
slower input (impressions or clicks) minus ``max_lateness_s``. An input that
has not been seen yet holds the watermark back until it is known to be empty
(read to its end and quiet for ``idle_after_s``): a worker that reads a burst
of impressions before the first click of its partition must not expire them.
While an input is idle its time keeps advancing at ``idle_clock_rate``
event-seconds per wall-second, so expiry never waits for traffic that is not
coming, and never sleeps per event (see :mod:`streams.join.clock`).

Producers' clocks are not trusted. An event more than ``max_future_skew_s``
ahead of the worker's wall clock is refused as ``future_timestamp`` before it
can move the watermark (one such event would otherwise expire every pending
impression of its partition at once). An event older than the watermark by
the late-click horizon or more is refused as ``too_old``: the join no longer
remembers that time, so it could neither deduplicate it nor attach it.

Besides labels the join reports what the live counters count at once (see
:class:`LiveCount`): an impression when it is accepted, a click when it
first attaches to its impression, both at the impression's time.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.events import Click, Impression, LabelledImpression
from streams.join.clock import CLICK_INPUT, IMPRESSION_INPUT, JoinConfig, PartitionClock

__all__ = [
    "Effects",
    "JoinBook",
    "JoinState",
    "LiveCount",
    "Rejected",
    "Status",
]

Status = Literal["pending", "orphan", "negative", "positive", "corrected"]


@dataclass(frozen=True)
class LiveCount:
    """What the live counters add for one impression: its arrival or its first click.

    Counted when it happens, at the impression's time, so a dashboard sees
    impressions and clicks as they arrive rather than when the window of an
    impression closes. ``kind`` is ``"impression"`` or ``"click"``; each is
    applied at most once per impression (the counters deduplicate on it).
    """

    impression: Impression
    kind: Literal["impression", "click"]


@dataclass(frozen=True)
class Rejected:
    """A message the join refuses, with the reason it goes to dead-letter."""

    reason: str
    detail: str
    event: Impression | Click


@dataclass
class Effects:
    """What one step of the join asks the outside world to do."""

    labelled: list[LabelledImpression] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    #: impression_id -> new state (a JSON-able dict) or None to delete it.
    upserts: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    #: live counter increments, in the order they happened
    live: list[LiveCount] = field(default_factory=list)
    #: events dropped because their event_id was already seen
    duplicates: int = 0
    #: distinct clicks on an impression that was already clicked (add nothing)
    repeat_clicks: int = 0
    #: what happened to the event itself: ``accepted``, ``duplicate``,
    #: ``repeat`` (a further distinct click), ``rejected`` or ``""`` (a tick)
    outcome: str = ""

    def extend(self, other: Effects) -> None:
        self.labelled.extend(other.labelled)
        self.rejected.extend(other.rejected)
        self.upserts.update(other.upserts)
        self.live.extend(other.live)
        self.duplicates += other.duplicates
        self.repeat_clicks += other.repeat_clicks


@dataclass
class JoinState:
    """What the join remembers about one impression_id."""

    partition: int
    status: Status
    deadline: float
    impression: Impression | None = None
    click: Click | None = None
    click_event_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "p": self.partition,
            "status": self.status,
            "deadline": self.deadline,
            "imp": self.impression.model_dump(mode="json") if self.impression else None,
            "click": self.click.model_dump(mode="json") if self.click else None,
            "click_eids": list(self.click_event_ids),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JoinState:
        return cls(
            partition=int(data["p"]),
            status=data["status"],
            deadline=float(data["deadline"]),
            impression=Impression.model_validate(data["imp"]) if data.get("imp") else None,
            click=Click.model_validate(data["click"]) if data.get("click") else None,
            click_event_ids=list(data.get("click_eids", [])),
        )


class JoinBook:
    """Join state of one partition: the rules of the module docstring."""

    def __init__(self, partition: int, config: JoinConfig) -> None:
        self.partition = partition
        self.config = config
        self.clock = PartitionClock(config)
        self._states: dict[str, JoinState] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, impression_id: str) -> JoinState | None:
        return self._states.get(impression_id)

    @classmethod
    def restore(
        cls, partition: int, config: JoinConfig, states: dict[str, dict[str, Any]]
    ) -> JoinBook:
        """Rebuild a book from the durable table's states of this partition."""
        book = cls(partition, config)
        for impression_id, data in states.items():
            state = JoinState.from_json(data)
            book._states[impression_id] = state
            book._schedule(impression_id, state.deadline)
        return book

    # -- inputs -----------------------------------------------------------------

    def on_impression(
        self, impression: Impression, wall: float, behind: Collection[str] = ()
    ) -> Effects:
        """Handle one valid impression; may expire others as the clock moves.

        ``behind`` names the inputs with unread messages (see :meth:`on_tick`).
        """
        effects, state = self._arrive(impression, wall, behind, IMPRESSION_INPUT)
        if effects.outcome == "rejected":
            return effects
        iid = impression.impression_id
        if state is None:
            state = JoinState(
                partition=self.partition,
                status="pending",
                deadline=impression.ts + self.config.window_s,
                impression=impression,
            )
            self._put(iid, state, effects)
            effects.live.append(LiveCount(impression, "impression"))
        elif state.impression is not None:
            if state.impression.event_id == impression.event_id:
                effects.duplicates += 1
                effects.outcome = "duplicate"
            else:
                effects.outcome = "rejected"
                effects.rejected.append(
                    Rejected(
                        "conflicting_impression",
                        f"impression_id {iid!r} already used by event "
                        f"{state.impression.event_id!r}",
                        impression,
                    )
                )
        else:  # a click was waiting for this impression
            state.impression = impression
            effects.live.append(LiveCount(impression, "impression"))
            self._label_with_click(iid, state, effects)
        effects.extend(self.expire(wall))
        return effects

    def on_click(self, click: Click, wall: float, behind: Collection[str] = ()) -> Effects:
        """Handle one valid click; may expire others as the clock moves."""
        effects, state = self._arrive(click, wall, behind, CLICK_INPUT)
        if effects.outcome == "rejected":
            return effects
        iid = click.impression_id
        if state is None:
            state = JoinState(
                partition=self.partition,
                status="orphan",
                deadline=click.ts + self.config.orphan_grace_s,
                click=click,
                click_event_ids=[click.event_id],
            )
            self._put(iid, state, effects)
        elif click.event_id in state.click_event_ids:
            effects.duplicates += 1
            effects.outcome = "duplicate"
        else:
            state.click_event_ids.append(click.event_id)
            if state.status == "pending":
                state.click = click
                self._label_with_click(iid, state, effects)
            elif state.status == "negative":
                state.click = click
                assert state.impression is not None
                effects.live.append(LiveCount(state.impression, "click"))
                self._emit_late(state, effects)
                state.status = "corrected"
                self._put(iid, state, effects)
            else:  # a further click on a clicked impression (or orphan): adds nothing
                orphan = state.status == "orphan"
                if orphan and state.click is not None and click.ts < state.click.ts:
                    state.click = click  # the impression's first click is the one kept
                effects.repeat_clicks += 1
                effects.outcome = "repeat"
                self._put(iid, state, effects)
        effects.extend(self.expire(wall))
        return effects

    def _arrive(
        self, event: Impression | Click, wall: float, behind: Collection[str], source: str
    ) -> tuple[Effects, JoinState | None]:
        """How every event opens: refused if its time cannot be trusted, else the clock moves.

        The clock moves before the event is handled, so a label decided by
        this event carries a finite watermark even on a freshly restored book.
        Returns the effects so far (outcome ``rejected`` or ``accepted``) and
        the impression's state, if the book holds one.
        """
        effects = Effects(outcome="accepted")
        if self._refuse_time(event, wall, effects):
            return effects, None
        self.clock.hold(wall, behind)
        self.clock.observe(event.ts, wall, source)
        return effects, self._states.get(event.impression_id)

    def _refuse_time(self, event: Impression | Click, wall: float, effects: Effects) -> bool:
        """Refuse an event whose time the join cannot trust or no longer covers."""
        c = self.config
        effects.outcome = "rejected"
        if event.ts > wall + c.max_future_skew_s:
            effects.rejected.append(
                Rejected(
                    "future_timestamp",
                    f"ts {event.ts:.3f} is {event.ts - wall:.0f}s ahead of the worker's clock "
                    f"(BERTCTR_MAX_FUTURE_SKEW_S={c.max_future_skew_s:g})",
                    event,
                )
            )
            return True
        if event.ts + c.horizon_s <= self.clock.watermark:
            effects.rejected.append(
                Rejected(
                    "too_old",
                    f"ts {event.ts:.3f} is {self.clock.watermark - event.ts:.0f}s behind the "
                    f"partition's watermark, past the late-click horizon "
                    f"(BERTCTR_LATE_CLICK_HORIZON_S={c.horizon_s:g})",
                    event,
                )
            )
            return True
        effects.outcome = "accepted"
        return False

    def on_tick(self, wall: float, behind: Collection[str] = ()) -> Effects:
        """Advance the clock without an event (idle inputs still expire).

        ``behind`` names the inputs with unread messages: they are lagging,
        not idle, so their clocks must not run ahead of the events still
        waiting, or impressions would expire before their clicks are read.
        An input that is read to its end may idle meanwhile.
        """
        if behind:
            self.clock.hold(wall, behind)
        return self.expire(wall)

    def expire(self, wall: float) -> Effects:
        """Act on every state whose deadline the watermark has passed."""
        effects = Effects()
        watermark = self.clock.advance(wall)
        while self._deadlines and self._deadlines[0][0] <= watermark:
            deadline, iid = heapq.heappop(self._deadlines)
            state = self._states.get(iid)
            if state is None or state.deadline != deadline:
                continue  # stale heap entry: the state moved on
            if state.status == "pending":
                self._emit_negative(state, effects)
                state.status = "negative"
                self._remember(iid, state, effects)
            elif state.status == "orphan":
                assert state.click is not None
                effects.rejected.append(
                    Rejected(
                        "orphan_click",
                        f"no impression {iid!r} within {self.config.orphan_grace_s:g}s "
                        "of the click",
                        state.click,
                    )
                )
                self._forget(iid, effects)
            else:
                self._forget(iid, effects)
        return effects

    # -- helpers ----------------------------------------------------------------

    def _label_with_click(self, iid: str, state: JoinState, effects: Effects) -> None:
        assert state.impression is not None and state.click is not None
        effects.live.append(LiveCount(state.impression, "click"))
        delay = max(0.0, state.click.ts - state.impression.ts)
        if delay <= self.config.window_s:
            effects.labelled.append(
                LabelledImpression.from_impression(
                    state.impression,
                    clicked=True,
                    click_delay_s=delay,
                    late=False,
                    labelled_at=self.clock.watermark,
                )
            )
            state.status = "positive"
        else:
            self._emit_negative(state, effects)
            self._emit_late(state, effects)
            state.status = "corrected"
        self._remember(iid, state, effects)

    def _emit_negative(self, state: JoinState, effects: Effects) -> None:
        assert state.impression is not None
        effects.labelled.append(
            LabelledImpression.from_impression(
                state.impression,
                clicked=False,
                click_delay_s=None,
                late=False,
                labelled_at=self.clock.watermark,
            )
        )

    def _emit_late(self, state: JoinState, effects: Effects) -> None:
        assert state.impression is not None and state.click is not None
        effects.labelled.append(
            LabelledImpression.from_impression(
                state.impression,
                clicked=True,
                click_delay_s=max(0.0, state.click.ts - state.impression.ts),
                late=True,
                labelled_at=self.clock.watermark,
            )
        )

    def _remember(self, iid: str, state: JoinState, effects: Effects) -> None:
        """Keep a labelled impression until the horizon, for duplicates and late clicks."""
        assert state.impression is not None
        state.deadline = state.impression.ts + self.config.horizon_s
        self._put(iid, state, effects)

    def _put(self, iid: str, state: JoinState, effects: Effects) -> None:
        self._states[iid] = state
        self._schedule(iid, state.deadline)
        effects.upserts[iid] = state.to_json()

    def _schedule(self, iid: str, deadline: float) -> None:
        if self._scheduled.get(iid) != deadline:
            self._scheduled[iid] = deadline
            heapq.heappush(self._deadlines, (deadline, iid))

    def _forget(self, iid: str, effects: Effects) -> None:
        self._states.pop(iid, None)
        self._scheduled.pop(iid, None)
        effects.upserts[iid] = None
