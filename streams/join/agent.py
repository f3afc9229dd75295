"""The join agent: decode, hand to the pure :class:`~streams.join.book.JoinBook`, emit.

Impressions, clicks and ticks are one co-partitioned source, so partition
``p`` of all three lands on the same worker and one book per partition sees
every event of its impressions. The book's state is mirrored into the join's
changelog (:class:`~streams.join.state.JoinStateLog`), from which a book is
rebuilt when its partition is assigned to this worker.

The agent works on batches (a :class:`~streams.kafka.group_feed.GroupFeed` poll)
and writes a batch's effects in an order that makes a crash at any point
safe under at-least-once delivery (the feed commits the batch's offsets only
after this returns):

1. live counts to Redis (idempotent: a replay is absorbed by their markers);
2. labels and dead letters to Kafka, waiting until the broker has them;
3. the join state to its changelog, waiting likewise;
4. watermark records (after the labels of their partition, see
   :class:`~schemas.events.WatermarkRecord`).

A crash before 3 replays the batch onto a book that never saw it, so every
effect is produced again and deduplicated downstream by label id; state is
never ahead of what was emitted. While Redis is down the batch is retried
with backoff: the join waits, Kafka keeps the events, nothing is lost. A
batch that fails anyway (Kafka gone) drops its partitions' books, which are
rebuilt from the changelog before the batch is read again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from redis.exceptions import RedisError

from schemas import topics
from schemas.events import (
    RECORD_HEADER,
    WATERMARK_RECORD,
    Click,
    Impression,
    LabelledImpression,
    WatermarkRecord,
)
from schemas.settings import Settings
from streams.join.book import Effects, JoinBook, LiveCount
from streams.join.clock import CLICK_INPUT, IMPRESSION_INPUT, JoinConfig
from streams.join.state import JoinStateLog
from streams.kafka.decode import DecodeError, decode
from streams.kafka.emitter import Emitter

__all__ = ["CLOCK_KEY", "JoinAgent", "JoinCounts", "join_config"]

log = logging.getLogger(__name__)

#: Table key of a partition's clock, so a rebuilt book resumes its watermark.
CLOCK_KEY = "__clock__:{partition}"
#: Seconds between retries of a failed live-counter write grow to this bound.
MAX_BACKOFF_S = 5.0

ApplyLive = Callable[[Sequence[LiveCount]], Awaitable[int]]
#: ``(topic, partition) -> offset`` of the input's high watermark / committed offset
OffsetOf = Callable[[str, int], int | None]


def _unknown(topic: str, partition: int) -> int | None:
    return None


def join_config(settings: Settings) -> JoinConfig:
    """The join's time rules from the settings."""
    s = settings
    return JoinConfig(
        window_s=s.attribution_window_s,
        max_lateness_s=s.max_lateness_s,
        orphan_grace_s=s.effective_orphan_grace_s,
        horizon_s=s.late_click_horizon_s,
        idle_after_s=s.idle_after_s,
        idle_clock_rate=s.idle_clock_rate,
        max_future_skew_s=s.max_future_skew_s,
    )


@dataclass
class JoinCounts:
    """What the join did with its input since the worker started (health, accounting).

    ``labels`` is ``positive + negative + late`` (a late correction is the
    positive of an impression whose negative was already emitted);
    ``rejected`` counts the join's dead letters by reason.
    """

    impressions: int = 0
    clicks: int = 0
    duplicates: int = 0
    repeat_clicks: int = 0
    labels: int = 0
    positive: int = 0
    negative: int = 0
    late: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def label(self, labelled: LabelledImpression) -> None:
        self.labels += 1
        if labelled.late:
            self.late += 1
        elif labelled.clicked:
            self.positive += 1
        else:
            self.negative += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "duplicates": self.duplicates,
            "repeat_clicks": self.repeat_clicks,
            "labels": self.labels,
            "positive": self.positive,
            "negative": self.negative,
            "late": self.late,
            "rejected": dict(sorted(self.rejected.items())),
        }


@dataclass(frozen=True)
class _Refused:
    """A message (or a waiting event) to dead-letter, and where it came from."""

    reason: str
    detail: str
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    #: the message's own offset; None for an event that waited (an orphan click)
    offset: int | None


@dataclass
class _Batch:
    """A batch's effects, gathered before anything is written."""

    #: (partition, label or watermark record), in the order they were decided
    labelled: list[tuple[int, LabelledImpression | WatermarkRecord]] = field(default_factory=list)
    live: list[LiveCount] = field(default_factory=list)
    #: table key -> (partition, new state or None to delete it)
    upserts: dict[str, tuple[int, dict[str, Any] | None]] = field(default_factory=dict)
    dead: list[_Refused] = field(default_factory=list)


class JoinAgent:
    """Per-worker join logic; one :class:`JoinBook` per assigned partition."""

    def __init__(
        self,
        settings: Settings,
        emitter: Emitter,
        state: JoinStateLog,
        apply_live: ApplyLive,
    ) -> None:
        self.settings = settings
        self.config = join_config(settings)
        self.emitter = emitter
        self.state = state
        self.apply_live = apply_live
        self.books: dict[int, JoinBook] = {}
        #: (topic, partition) -> offset of the last message handled
        self.positions: dict[tuple[str, int], int] = {}
        #: partition -> the last watermark sent as a record
        self._sent_watermarks: dict[int, float | None] = {}
        self.counts = JoinCounts()
        names = topics.full_names(settings.topic_prefix)
        self.labelled_topic = names[topics.LABELLED]
        self.kind_of_topic = {
            names[topics.IMPRESSIONS]: topics.IMPRESSIONS,
            names[topics.CLICKS]: topics.CLICKS,
            names[topics.JOIN_TICKS]: topics.JOIN_TICKS,
        }
        self._input_topics = (
            (names[topics.IMPRESSIONS], IMPRESSION_INPUT),
            (names[topics.CLICKS], CLICK_INPUT),
        )
        #: where the inputs end and where a restart would read them from;
        #: the worker points these at its join feed
        self.highwater: OffsetOf = _unknown
        self.committed: OffsetOf = _unknown

    def book_status(self) -> dict[str, dict[str, Any]]:
        """Per partition: states held, watermark and each input's newest event time."""
        out = {}
        for partition, book in sorted(self.books.items()):
            wm = book.clock.watermark
            out[str(partition)] = {
                "states": len(book),
                "watermark": wm if wm > float("-inf") else None,
                "inputs": dict(book.clock.inputs),
            }
        return out

    # -- partitions coming and going ------------------------------------------

    async def assigned(self, tps: set[TopicPartition]) -> None:
        """Have a book for each assigned partition, as its changelog says it is.

        A book kept from an earlier assignment stays when nobody wrote its
        changelog since; any other is rebuilt from the changelog, before a
        record of its partition is handled (the feed holds its lock).
        """
        partitions = {tp.partition for tp in tps}
        for partition in set(self.books) - partitions:
            del self.books[partition]
        ends = await self.state.ends(partitions) if partitions else {}
        stale = {
            p for p in partitions if p not in self.books or not self.state.unchanged(p, ends[p])
        }
        for p in stale:
            self.books.pop(p, None)
        restored = await self.state.restore(stale)
        for partition, states in restored.items():
            self.books[partition] = self._rebuild(partition, states)

    async def revoked(self, tps: set[TopicPartition]) -> None:
        """Forget where the revoked partitions were read; their books wait for :meth:`assigned`.

        Positions go: a partition that comes back is read again from its
        committed offset, and a stale position would call it caught up.
        """
        partitions = {tp.partition for tp in tps}
        for key in [k for k in self.positions if k[1] in partitions]:
            del self.positions[key]
        for partition in partitions:
            self._sent_watermarks.pop(partition, None)

    def _drop(self, partitions: set[int]) -> None:
        """Forget books that may be ahead of their changelog (a batch failed midway)."""
        for partition in partitions:
            self.books.pop(partition, None)
            self.state.end.pop(partition, None)
            self._sent_watermarks.pop(partition, None)
        for key in [k for k in self.positions if k[1] in partitions]:
            del self.positions[key]

    def _rebuild(self, partition: int, table: dict[str, Any]) -> JoinBook:
        clock_key = CLOCK_KEY.format(partition=partition)
        states = {
            key: value
            for key, value in table.items()
            if isinstance(value, dict) and value.get("p") == partition and key != clock_key
        }
        book = JoinBook.restore(partition, self.config, states)
        clock = table.get(clock_key)
        if isinstance(clock, dict) and clock.get("max_event_ts") is not None:
            watermark = clock.get("watermark")
            # clocks persisted before per-input times had only the maximum
            inputs = clock.get("inputs") or {IMPRESSION_INPUT: clock["max_event_ts"]}
            book.clock.restore(
                {str(k): float(v) for k, v in inputs.items()},
                float(watermark) if watermark is not None else None,
                wall=time.time(),
            )
        log.info("join book for partition %d restored with %d states", partition, len(book))
        return book

    def book(self, partition: int) -> JoinBook:
        book = self.books.get(partition)
        if book is None:
            book = self.books[partition] = JoinBook.restore(partition, self.config, {})
        return book

    # -- one batch ----------------------------------------------------------------

    async def handle_batch(self, records: Sequence[Any]) -> None:
        """Process a batch of consumed records; never raises for bad input.

        It raises only when Kafka does not take the batch's effects; the
        books of its partitions are then dropped (they may be ahead of
        their changelog) and rebuilt before the batch is read again.
        """
        batch = _Batch()
        try:
            for record in records:
                self._step(record, batch)
            await self._apply_live(batch.live)
            await self._emit(batch)
            await self.state.write(batch.upserts)
        except BaseException:
            self._drop({record.partition for record in records})
            raise

    def _step(self, message: Any, batch: _Batch) -> None:
        """One message through its book; its effects go into ``batch``."""
        kind = self.kind_of_topic.get(message.topic)
        partition = message.partition
        wall = time.time()
        if kind != topics.JOIN_TICKS:
            self.positions[(message.topic, partition)] = message.offset
        try:
            book = self.book(partition)
            behind = self.behind(partition)
            if kind == topics.IMPRESSIONS:
                impression = decode(Impression, message.value, message.key, keyed=True)
                effects = book.on_impression(impression, wall, behind)
            elif kind == topics.CLICKS:
                click = decode(Click, message.value, message.key, keyed=True)
                effects = book.on_click(click, wall, behind)
            else:
                effects = book.on_tick(wall, behind=behind)
                self._persist_clock(book, batch)
        except DecodeError as exc:
            self._dead_message(batch, exc.reason, exc.detail, message)
            return
        except Exception:  # a bug must not stop the stream: park the message
            log.exception("join failed on %s[%d]@%d", message.topic, partition, message.offset)
            self._dead_message(batch, "internal_error", traceback.format_exc(), message)
            return
        self._collect(effects, message, kind, batch)
        if kind == topics.JOIN_TICKS:
            self._maybe_watermark(book, batch)

    def _collect(self, effects: Effects, message: Any, kind: str | None, batch: _Batch) -> None:
        c = self.counts
        if effects.outcome == "accepted":
            if kind == topics.IMPRESSIONS:
                c.impressions += 1
            else:
                c.clicks += 1
        c.duplicates += effects.duplicates
        c.repeat_clicks += effects.repeat_clicks
        for labelled in effects.labelled:
            c.label(labelled)
        batch.labelled.extend((message.partition, lab) for lab in effects.labelled)
        batch.live.extend(effects.live)
        for iid, state in effects.upserts.items():
            batch.upserts[iid] = (message.partition, state)
        for rejected in effects.rejected:
            c.reject(rejected.reason)
            source = topics.IMPRESSIONS if isinstance(rejected.event, Impression) else topics.CLICKS
            # a refused event is this message; an orphan click expiring now
            # was consumed earlier, at an offset not kept here
            own = effects.outcome == "rejected" and rejected.reason != "orphan_click"
            batch.dead.append(
                _Refused(
                    reason=rejected.reason,
                    detail=rejected.detail,
                    key=rejected.event.impression_id.encode(),
                    value=rejected.event.model_dump_json().encode(),
                    topic=self.settings.topic(source),
                    partition=message.partition,
                    offset=message.offset if own else None,
                )
            )

    def _dead_message(self, batch: _Batch, reason: str, detail: str, message: Any) -> None:
        self.counts.reject(reason)
        batch.dead.append(
            _Refused(
                reason=reason,
                detail=detail,
                key=message.key,
                value=message.value,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
        )

    def _persist_clock(self, book: JoinBook, batch: _Batch) -> None:
        batch.upserts[CLOCK_KEY.format(partition=book.partition)] = (
            book.partition,
            {
                "p": -1,
                "max_event_ts": book.clock.max_event_ts,
                "inputs": dict(book.clock.inputs),
                "watermark": book.clock.watermark if book.clock.max_event_ts else None,
            },
        )

    def _maybe_watermark(self, book: JoinBook, batch: _Batch) -> None:
        """Queue a watermark record for ``book``'s partition if its watermark moved."""
        watermark = book.clock.watermark if book.clock.watermark > float("-inf") else None
        partition = book.partition
        if partition in self._sent_watermarks and self._sent_watermarks[partition] == watermark:
            return
        self._sent_watermarks[partition] = watermark
        record = WatermarkRecord(partition=partition, watermark=watermark, emitted_at=time.time())
        batch.labelled.append((partition, record))

    # -- writing ------------------------------------------------------------------

    async def _apply_live(self, live: Sequence[LiveCount]) -> None:
        """Write live counts until Redis takes them; an outage only delays the join."""
        delay = 0.1
        while live:
            try:
                await self.apply_live(live)
                return
            except (RedisError, OSError) as exc:
                log.warning(
                    "redis unavailable (%s); retrying %d live counts in %.1fs",
                    exc,
                    len(live),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(MAX_BACKOFF_S, delay * 2)

    async def _emit(self, batch: _Batch) -> None:
        """Send labels, watermark records and dead letters; wait until the broker has them."""
        send = self.emitter.send
        topic = self.labelled_topic
        pending = []
        for partition, record in batch.labelled:
            if isinstance(record, WatermarkRecord):
                fut = await send(
                    topic,
                    record.model_dump_json().encode(),
                    partition=partition,
                    headers=[(RECORD_HEADER, WATERMARK_RECORD.encode())],
                )
            else:
                fut = await send(
                    topic,
                    record.model_dump_json().encode(),
                    key=record.impression_id.encode(),
                    partition=partition,
                )
            pending.append(fut)
        for r in batch.dead:
            fut = await self.emitter.dead_letter(
                r.reason,
                r.detail,
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                value=r.value,
            )
            pending.append(fut)
        await self.emitter.flush_all(pending)

    # -- where the inputs are -----------------------------------------------------

    def behind(self, partition: int) -> set[str]:
        """The inputs (impressions, clicks) of ``partition`` not known to be read to their end.

        An input is behind while its high watermark is unknown (nothing
        fetched yet) or beyond the next offset to handle: the offset after
        the last one handled here, or, before any, the committed offset.
        """
        lagging = set()
        for topic, name in self._input_topics:
            highwater = self.highwater(topic, partition)
            handled = self.positions.get((topic, partition))
            if handled is not None:
                next_offset = handled + 1
            else:
                next_offset = self.committed(topic, partition) or 0
            if highwater is None or highwater > next_offset:
                lagging.add(name)
        return lagging
