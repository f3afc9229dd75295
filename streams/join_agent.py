"""The join agent: decode, hand to the pure :class:`~streams.join.JoinBook`, emit.

Impressions, clicks and ticks are one co-partitioned source, so partition
``p`` of all three lands on the same worker and one book per partition sees
every event of its impressions. The book's state is mirrored into a Faust
table (changelog-backed), from which a book is rebuilt after a restart or a
rebalance.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from faust.types import TP

from schemas.events import Click, Impression
from streams import topics
from streams.app import StreamApp
from streams.deadletter import dead_letter, send_dead_letter
from streams.decode import DecodeError, decode
from streams.join import CLICK_INPUT, IMPRESSION_INPUT, Effects, JoinBook, JoinConfig

log = logging.getLogger(__name__)

#: Table key of a partition's clock, so a rebuilt book resumes its watermark.
CLOCK_KEY = "__clock__:{partition}"


def join_config(stream: StreamApp) -> JoinConfig:
    s = stream.settings
    return JoinConfig(
        window_s=s.attribution_window_s,
        max_lateness_s=s.max_lateness_s,
        orphan_grace_s=s.effective_orphan_grace_s,
        horizon_s=s.late_click_horizon_s,
        idle_after_s=s.idle_after_s,
        idle_clock_rate=s.idle_clock_rate,
    )


class JoinAgent:
    """Per-worker join logic; one :class:`JoinBook` per assigned partition."""

    def __init__(self, stream: StreamApp) -> None:
        self.stream = stream
        self.config = join_config(stream)
        self.books: dict[int, JoinBook] = {}
        #: (topic, partition) -> offset of the last message handled
        self.positions: dict[tuple[str, int], int] = {}
        names = topics.full_names(stream.settings)
        self.kind_of_topic = {
            names[topics.IMPRESSIONS]: topics.IMPRESSIONS,
            names[topics.CLICKS]: topics.CLICKS,
            names[topics.JOIN_TICKS]: topics.JOIN_TICKS,
        }

    def forget_books(self) -> None:
        """Drop in-memory books (on rebalance); they are rebuilt from the table."""
        self.books.clear()

    def book(self, partition: int) -> JoinBook:
        book = self.books.get(partition)
        if book is None:
            table = self.stream.join_table
            clock_key = CLOCK_KEY.format(partition=partition)
            states = {
                key: value
                for key, value in table.data.items()
                if isinstance(value, dict) and value.get("p") == partition and key != clock_key
            }
            book = JoinBook.restore(partition, self.config, states)
            clock = table.data.get(clock_key)
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
            self.books[partition] = book
        return book

    async def handle(self, event: Any) -> None:
        """Process one message; never raises for bad input."""
        message = event.message
        kind = self.kind_of_topic.get(message.topic)
        book = self.book(message.partition)
        wall = time.time()
        if kind != topics.JOIN_TICKS:
            self.positions[(message.topic, message.partition)] = message.offset
        try:
            if kind == topics.IMPRESSIONS:
                effects = book.on_impression(decode(Impression, message.value, message.key), wall)
            elif kind == topics.CLICKS:
                effects = book.on_click(decode(Click, message.value, message.key), wall)
            else:
                effects = book.on_tick(wall, behind=self.behind(message.partition))
                self.stream.join_table[CLOCK_KEY.format(partition=message.partition)] = {
                    "p": -1,
                    "max_event_ts": book.clock.max_event_ts,
                    "inputs": dict(book.clock.inputs),
                    "watermark": book.clock.watermark if book.clock.max_event_ts else None,
                }
        except DecodeError as exc:
            await send_dead_letter(self.stream.dead_letter, exc.reason, exc.detail, message)
            return
        except Exception:  # a bug must not stop the stream: park the message
            log.exception(
                "join failed on %s[%d]@%d", message.topic, message.partition, message.offset
            )
            await send_dead_letter(
                self.stream.dead_letter, "internal_error", traceback.format_exc(), message
            )
            return
        await self.apply(effects, message)

    def behind(self, partition: int) -> set[str]:
        """The inputs (impressions, clicks) of ``partition`` with messages not yet handled."""
        consumer = self.stream.app.consumer
        names = topics.full_names(self.stream.settings)
        lagging = set()
        for logical, name in ((topics.IMPRESSIONS, IMPRESSION_INPUT), (topics.CLICKS, CLICK_INPUT)):
            topic = names[logical]
            try:
                highwater = consumer.highwater(TP(topic, partition))
            except Exception:  # no fetch yet: unknown means "not known to be behind"
                continue
            if highwater is not None and highwater > self.positions.get((topic, partition), -1) + 1:
                lagging.add(name)
        return lagging

    async def apply(self, effects: Effects, message: Any) -> None:
        """Mirror state into the table, then emit labels and rejections."""
        table = self.stream.join_table
        for iid, state in effects.upserts.items():
            if state is None:
                table.pop(iid, None)
            else:
                table[iid] = state
        for labelled in effects.labelled:
            await self.stream.labelled.send(
                key=labelled.impression_id.encode(), value=labelled.model_dump_json().encode()
            )
        for rejected in effects.rejected:
            source = topics.IMPRESSIONS if isinstance(rejected.event, Impression) else topics.CLICKS
            record = dead_letter(
                reason=rejected.reason,
                detail=rejected.detail,
                topic=self.stream.settings.topic(source),
                partition=message.partition,
                offset=None,
                key=rejected.event.impression_id.encode(),
                value=rejected.event.model_dump_json().encode(),
            )
            await self.stream.dead_letter.send(
                key=record.key.encode() if record.key else None,
                value=record.model_dump_json().encode(),
            )
