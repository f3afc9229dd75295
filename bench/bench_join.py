"""Join throughput: pure state machine, and end to end through a worker on Tansu.

Prints events/s for
  1. decode only (pydantic validation of the raw JSON): the in-process baseline;
  2. decode + JoinBook (the pure join);
  3. end to end: aiokafka producer -> Tansu -> ``bertctr worker`` (join + Redis
     counters) -> ``labelled`` topic, timed until the last label is read;
  4. the same broker round trip with a plain aiokafka consume->produce loop
     and no join: the end-to-end baseline (both time publish + processing).

Run: ``.venv/bin/python bench/bench_join.py [--events N]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bertctr.harness.kafka import Message, publish, read_topics
from bertctr.harness.stack import start_stack
from bertctr.harness.synthetic import make_events
from bertctr.harness.workers import Namespace, WorkerFleet
from schemas import Click, Impression
from schemas.topics import CLICKS, IMPRESSIONS, LABELLED
from streams.join.book import JoinBook
from streams.join.clock import JoinConfig
from streams.kafka.decode import decode

WINDOW_S = 60.0


def bench_pure(events: list[tuple[str, bytes, bytes]]) -> tuple[float, float]:
    t0 = time.perf_counter()
    for kind, _key, value in events:
        decode(Impression if kind == IMPRESSIONS else Click, value)
    decode_s = time.perf_counter() - t0
    cfg = JoinConfig(window_s=WINDOW_S, max_lateness_s=30, orphan_grace_s=WINDOW_S)
    book = JoinBook(0, cfg)
    labels = 0
    wall = time.time()  # the events are an hour old: no future timestamps
    t0 = time.perf_counter()
    for kind, _key, value in events:
        if kind == IMPRESSIONS:
            fx = book.on_impression(decode(Impression, value), wall)
        else:
            fx = book.on_click(decode(Click, value), wall)
        labels += len(fx.labelled)
    labels += len(book.on_tick(wall + 1e9).labelled)
    assert labels >= sum(1 for kind, _, _ in events if kind == IMPRESSIONS)
    join_s = time.perf_counter() - t0
    return len(events) / decode_s, len(events) / join_s


async def count_until(bootstrap: str, topic: str, expected: int, timeout_s: float) -> float:
    """Read ``topic`` until ``expected`` events; return the time the last arrived."""
    result = await read_topics(
        bootstrap, [topic], lambda r: len(r.of(topic)) >= expected, timeout_s, settle_s=0
    )
    if len(result.of(topic)) < expected or result.last_at is None:
        raise RuntimeError(f"only {len(result.of(topic))}/{expected} messages on {topic}")
    return result.last_at


async def passthrough(bootstrap: str, source: list[str], sink: str, expected: int) -> None:
    """Baseline: consume both topics and produce one message per impression, no join."""
    consumer = AIOKafkaConsumer(
        *source,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=f"pt-{uuid.uuid4()}",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    done = 0
    try:
        while done < expected:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batch.values():
                for r in records:
                    if r.topic == source[0]:
                        await producer.send(sink, r.value, key=r.key)
                        done += 1
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()


async def create_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 4, 1) for n in names])
    finally:
        await admin.close()


def bench_end_to_end(events: list[tuple[str, bytes, bytes]], n_imps: int) -> dict[str, float]:
    stack = start_stack(None, os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    fleet = WorkerFleet(
        stack, Path(tempfile.mkdtemp(prefix="bench-join-")), Namespace.fresh("bench", "bench:")
    )
    fleet.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": str(WINDOW_S),
            "BERTCTR_MAX_LATENESS_S": "30",
            "BERTCTR_IDLE_AFTER_S": "0.5",
            "BERTCTR_IDLE_CLOCK_RATE": "1000",
        }
    )
    result: dict[str, float] = {}

    def routed(ns: Namespace, evs: list[tuple[str, bytes, bytes]]) -> list[Message]:
        return [(ns.topic(kind), key, value) for kind, key, value in evs]

    try:
        # Baseline first: plain consume -> produce loop on the same broker.
        pt = Namespace.fresh("pt")
        asyncio.run(
            create_topics(
                stack.kafka_bootstrap, [pt.topic(t) for t in (IMPRESSIONS, CLICKS, LABELLED)]
            )
        )

        async def baseline() -> None:
            await asyncio.gather(
                passthrough(
                    stack.kafka_bootstrap,
                    [pt.topic(IMPRESSIONS), pt.topic(CLICKS)],
                    pt.topic(LABELLED),
                    n_imps,
                ),
                publish(stack.kafka_bootstrap, routed(pt, events), linger_ms=5),
            )

        t0 = time.monotonic()
        asyncio.run(baseline())
        result["passthrough_events_per_s"] = len(events) / (time.monotonic() - t0)

        fleet.cli("topics", "create")
        fleet.start_worker()
        labelled = fleet.topic(LABELLED)
        # Warm up: wait until the worker has labelled a first batch, so
        # the figure is steady-state processing, not start-up.
        warm = make_events(200, seed=99)
        warm = [(k, b"w" + key, v.replace(b'"imp-', b'"wimp-')) for k, key, v in warm]
        warm_labels = sum(1 for k, _, _ in warm if k == IMPRESSIONS)
        asyncio.run(publish(stack.kafka_bootstrap, routed(fleet.namespace, warm), linger_ms=5))
        asyncio.run(count_until(stack.kafka_bootstrap, labelled, warm_labels, timeout_s=120))
        t0 = time.monotonic()
        asyncio.run(publish(stack.kafka_bootstrap, routed(fleet.namespace, events), linger_ms=5))
        t_end = asyncio.run(
            count_until(stack.kafka_bootstrap, labelled, n_imps + warm_labels, timeout_s=600)
        )
        result["worker_events_per_s"] = len(events) / (t_end - t0)
    finally:
        fleet.close()
        stack.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="impressions")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    events = make_events(args.events)
    decode_rate, join_rate = bench_pure(events)
    print(f"events (impressions + clicks): {len(events)}")
    print(f"decode only              : {decode_rate:10.0f} events/s   (baseline)")
    print(
        f"decode + pure join       : {join_rate:10.0f} events/s   "
        f"({join_rate / decode_rate:.2f}x of decode only)"
    )
    if not args.skip_e2e:
        e2e = bench_end_to_end(events, args.events)
        base = e2e["passthrough_events_per_s"]
        full = e2e["worker_events_per_s"]
        print(f"aiokafka passthrough     : {base:10.0f} events/s   (end-to-end baseline)")
        print(
            f"bertctr worker end to end: {full:10.0f} events/s   "
            f"({full / base:.2f}x of passthrough)"
        )


if __name__ == "__main__":
    main()
