"""The whole pipeline's speed, against batched Kafka baselines on the same broker, in one run.

Rows (events = impressions + clicks; every rate is measured the same way:
from the first publish until the last output, with the producer publishing
flat out concurrently, as a burst arrives in production):

* ``consume``: a batched aiokafka consumer (``getmany``) that decodes every
  event with the project's decoder: the ceiling of reading;
* ``passthrough``: batched consume -> produce (one send per impression,
  acks awaited per batch, not per message): the ceiling of a Kafka stage;
* ``e2e, 1 worker`` / ``2 workers``: ``bertctr worker`` processes (join,
  live and settled counters, the one learner; no Triton) until the last
  label is on ``labelled`` and the model has learned every example;
* ``click -> counter``: clicks published at a fixed total rate, and the
  time until the live counter has counted each (its dedup marker appears
  in Redis), p50 and p99;
* ``click -> counter floor``: the same click timing against
  ``latency_floor.py``, a process that only consumes and sets each click's
  marker (no join, no labels, no learner): the broker's, Redis's and the
  measurement's share of the latency;
* ``learner``: the learner alone in process, predicting then learning each
  example with 8-d image and title embeddings (cached: no Triton);
* peak RSS of each worker process during the end-to-end rows;
* ``cpu_us_per_event_1_worker_*``: CPU microseconds per event that the
  worker, the broker, Redis and this script (publisher and reader) each
  spent during the 1-worker row, beside its wall microseconds per event
  (``_wall``): on two cores, what the others take the worker cannot have;
* ``worker_ready_s``: seconds from starting ``bertctr worker`` (the default
  session timeout, 30 s) on a broker with events waiting until the live
  total counter in Redis first counts one (the median of ``--ready-runs``);
  ``broker_group_delay_s``: how long a bare aiokafka consumer with the same
  session timeout takes to join a fresh group on the same broker, the part
  of a worker's start that the broker imposes (Tansu holds a fresh group's
  first join for half the session timeout).

The last stdout line is one JSON object. Goals (issue 13): e2e for one
worker >= 10,000 events/s and >= 0.5x the batched passthrough, click ->
counter p99 < 250 ms at 1,000 events/s.

``--before PATH`` also runs the two end-to-end rows and the click latency
with the workers of another checkout of the project (``git worktree add /tmp/before <commit>``),
on the same broker in the same run: the before/after of a change. A
checkout from before the learner lease (one model per worker) is awaited
for its labels only with two workers, as it has no one model to wait for.

``--only ready`` runs the start-up rows alone (with ``--before``, the
other checkout's worker too, started on the same broker in turn).

Run: ``.venv/bin/python bench/bench_pipeline.py [--events 20000] [--quick] [--before PATH]
[--only ready] [--ready-runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import psutil
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bertctr.cli.progress import Progress
from bertctr.demo import learned
from bertctr.harness.kafka import Message, publish, read_topics
from bertctr.harness.stack import EmbeddedStack, start_stack
from bertctr.harness.synthetic import RawEvent, make_events
from bertctr.harness.workers import Namespace, WorkerFleet
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from schemas import Click, Impression, LabelledImpression
from schemas.keys import TOTAL_SCOPE, KeySpace
from schemas.topics import CLICKS, IMPRESSIONS, LABELLED
from streams.kafka.decode import decode

WINDOW_S = 60.0
#: progress on stderr: bars over the rows and the labels on a terminal, plain lines otherwise
SHOW = Progress(prefix="[bench_pipeline] ")


def routed(ns: Namespace, events: Sequence[RawEvent]) -> list[Message]:
    return [(ns.topic(kind), key, value) for kind, key, value in events]


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def consume_decode(bootstrap: str, topics: list[str], expected: int) -> None:
    """The reading ceiling: batched consume, every event decoded."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen = 0
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                model = Impression if tp.topic == topics[0] else Click
                for r in records:
                    decode(model, r.value)
                seen += len(records)
    finally:
        await consumer.stop()


async def passthrough(bootstrap: str, source: list[str], sink: str, expected: int) -> None:
    """The stage ceiling: batched consume -> produce, acks awaited per batch."""
    consumer = AIOKafkaConsumer(
        *source, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await consumer.start()
    await producer.start()
    done = 0
    try:
        while done < expected:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            sends = [
                await producer.send(sink, r.value, key=r.key)
                for tp, records in batch.items()
                if tp.topic == source[0]
                for r in records
            ]
            if sends:
                await asyncio.gather(*sends)
            done += len(sends)
    finally:
        await consumer.stop()
        await producer.stop()


def ceilings(stack: EmbeddedStack, events: list[RawEvent], partitions: int) -> dict[str, float]:
    n_imps = sum(1 for kind, _, _ in events if kind == IMPRESSIONS)
    out = {}
    for name in ("consume", "passthrough"):
        ns = Namespace.fresh(name[:2])
        names = [ns.topic(t) for t in (IMPRESSIONS, CLICKS, LABELLED)]
        asyncio.run(create_topics(stack.kafka_bootstrap, names, partitions))

        async def run(ns: Namespace = ns, name: str = name, names: list[str] = names) -> None:
            work = (
                consume_decode(stack.kafka_bootstrap, names[:2], len(events))
                if name == "consume"
                else passthrough(stack.kafka_bootstrap, names[:2], names[2], n_imps)
            )
            await asyncio.gather(work, publish(stack.kafka_bootstrap, routed(ns, events)))

        t0 = time.monotonic()
        asyncio.run(run())
        out[name] = len(events) / (time.monotonic() - t0)
    return out


class RssWatch:
    """Peak RSS of a set of processes (and their children), sampled in a thread."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid in list(self.pids):
                try:
                    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
                    rss = max(p.memory_info().rss for p in procs) / 2**20
                except psutil.Error:
                    continue
                self.peak_mb = max(self.peak_mb, rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class CpuSplit:
    """CPU seconds that each named process (with its children) spent over a timed span.

    The end-to-end rows share two cores with the broker, Redis and this
    script's publisher; where those cores go (microseconds per event, each
    process) says how much of the gap to the goal a faster worker could close.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}

    def _seconds(self, name: str) -> float:
        """CPU seconds of one named process and its children that are not named themselves.

        The broker and the workers are children of this script: counted
        under their own names, never again under ``bench``.
        """
        named = set(self.pids.values())
        try:
            root = psutil.Process(self.pids[name])
            procs = [root]
            if name != "bench":
                procs += [p for p in root.children(recursive=True) if p.pid not in named]
            total = 0.0
            for proc in procs:
                times = proc.cpu_times()
                total += times.user + times.system
            return total
        except psutil.Error:
            return float("nan")

    def start(self) -> None:
        self._start = {name: self._seconds(name) for name in self.pids}

    def us_per_event(self, events: int) -> dict[str, float]:
        return {
            name: round((self._seconds(name) - self._start[name]) / events * 1e6, 1)
            for name in self.pids
        }


def redis_pid(url: str) -> int | None:
    """The Redis server's pid when it runs on this machine (it says so in INFO)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        pid = int(client.info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()
    return pid if psutil.pid_exists(pid) else None


def new_fleet(stack: EmbeddedStack, partitions: int, tree: str | None = None) -> WorkerFleet:
    fleet = WorkerFleet(
        stack,
        Path(tempfile.mkdtemp(prefix="bench-pipeline-")),
        Namespace.fresh("pipe", "bench:"),
        partitions=partitions,
    )
    fleet.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": str(WINDOW_S),
            "BERTCTR_MAX_LATENESS_S": "30",
            "BERTCTR_IDLE_AFTER_S": "0.5",
            "BERTCTR_IDLE_CLOCK_RATE": "1000",
        }
    )
    if tree is not None:  # the workers (and the CLI) of another checkout
        fleet.overrides["PYTHONPATH"] = tree
    fleet.cli("topics", "create")
    return fleet


def settle(fleet: WorkerFleet, workers: int, warm_learned: int, timeout_s: float = 120) -> None:
    """Wait until every worker joins its own partitions and the warm-up is learned.

    A rebalance (a worker joining late) or a learner still resuming inside
    the timed part would measure the group's start, not its speed.
    """
    deadline = time.monotonic() + timeout_s

    def joining() -> int:
        _, report = fleet.health()
        return sum(1 for w in report.get("workers", []) if (w.get("partitions") or {}).get("join"))

    while time.monotonic() < deadline and joining() < workers:
        time.sleep(0.5)
    while time.monotonic() < deadline and learned(fleet) < warm_learned:
        time.sleep(0.1)


def end_to_end(
    stack: EmbeddedStack,
    events: list[RawEvent],
    workers: int,
    partitions: int,
    rss: RssWatch,
    tree: str | None = None,
    cpu: dict[str, float] | None = None,
) -> tuple[float, WorkerFleet]:
    """Events/s through ``workers`` workers; returns the fleet still running.

    ``cpu``, when given, receives each process's CPU microseconds per event
    over the timed span (``CpuSplit``).
    """
    fleet = new_fleet(stack, partitions, tree)
    pids: dict[str, int] = {}
    for i in range(workers):
        pids[f"worker_w{i}"] = fleet.start_worker(f"w{i}").pid
        rss.pids.append(pids[f"worker_w{i}"])
    if stack.broker_pid is not None:
        pids["broker"] = stack.broker_pid
    server = redis_pid(stack.redis_url)
    if server is not None:
        pids["redis"] = server
    pids["bench"] = os.getpid()
    split = CpuSplit(pids)
    labelled = fleet.topic(LABELLED)
    warm = make_events(400, seed=99, tag="warm-")
    warm_labels = sum(1 for k, _, _ in warm if k == IMPRESSIONS)
    asyncio.run(publish(stack.kafka_bootstrap, routed(fleet.namespace, warm)))
    asyncio.run(
        read_topics(
            stack.kafka_bootstrap,
            [labelled],
            lambda r: len(r.of(labelled)) >= warm_labels,
            180,
            settle_s=0,
        )
    )
    settle(fleet, workers, warm_labels if workers == 1 or tree is None else 0)
    n_imps = sum(1 for k, _, _ in events if k == IMPRESSIONS)
    total = n_imps + warm_labels
    bar = SHOW.bar(f"{workers} worker(s): labelled", total, unit="labels")
    t0 = time.monotonic()
    split.start()
    asyncio.run(publish(stack.kafka_bootstrap, routed(fleet.namespace, events)))
    asyncio.run(
        read_topics(
            stack.kafka_bootstrap,
            [labelled],
            lambda r: len(r.of(labelled)) >= total,
            900,
            settle_s=0,
            progress=lambda r: bar.update_to(len(r.of(labelled))),
        )
    )
    bar.close()
    if workers == 1 or tree is None:
        # a baseline from before the learner lease has one model per worker,
        # and the shared metrics key holds whichever wrote last: not awaited
        deadline = time.monotonic() + 900
        while learned(fleet) < total and time.monotonic() < deadline:
            time.sleep(0.05)
    elapsed = time.monotonic() - t0
    if cpu is not None:
        cpu.update(split.us_per_event(len(events)))
        cpu["wall"] = round(elapsed / len(events) * 1e6, 1)
    return len(events) / elapsed, fleet


def latency_traffic(fleet: WorkerFleet, rate: float, seconds: float) -> list[tuple[float, Message]]:
    """(send offset s, message): impressions at ``rate`` in all, a fifth clicked 0.5 s later."""
    base = time.time() - 600
    rnd = random.Random(3)
    timed: list[tuple[float, Message]] = []
    for i in range(int(rate * seconds / 1.2)):
        t = i * 1.2 / rate
        iid = f"lat-{i}"
        imp = {
            "event_id": f"le{i}",
            "impression_id": iid,
            "ts": base + t,
            "item_id": "item-1",
            "image_id": "img-1",
            "variant": "v1",
            "position": 0,
            "segment": {"device": "mobile", "geo": "DE"},
        }
        timed.append((t, (fleet.topic(IMPRESSIONS), iid.encode(), json.dumps(imp).encode())))
        if rnd.random() < 0.2:
            click = {"event_id": f"lc{i}", "impression_id": iid, "ts": base + t + 0.5}
            value = json.dumps(click).encode()
            timed.append((t + 0.5, (fleet.topic(CLICKS), iid.encode(), value)))
    timed.sort(key=lambda x: x[0])
    return timed


def click_latency(fleet: WorkerFleet, rate: float, seconds: float) -> list[float]:
    """ms from each click's send to its live count (its dedup marker) in Redis."""
    timed = latency_traffic(fleet, rate, seconds)
    keys = KeySpace(fleet.namespace.redis_prefix)
    clicks_topic = fleet.topic(CLICKS)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}

    async def poll(done: asyncio.Event) -> None:
        client = aioredis.Redis.from_url(fleet.stack.redis_url)
        give_up = float("inf")
        try:
            while time.monotonic() < give_up:
                waiting = [iid for iid in sent if iid not in seen]
                if done.is_set():
                    if not waiting:
                        return
                    give_up = min(give_up, time.monotonic() + 30)
                if waiting:
                    async with client.pipeline(transaction=False) as pipe:
                        for iid in waiting:
                            pipe.exists(keys.seen_live(iid, "click"))
                        found = await pipe.execute()
                    now = time.monotonic()
                    seen.update({iid: now for iid, hit in zip(waiting, found, strict=True) if hit})
                await asyncio.sleep(0.005)
        finally:
            await client.aclose()

    async def run() -> None:
        done = asyncio.Event()
        poller = asyncio.create_task(poll(done))
        producer = AIOKafkaProducer(bootstrap_servers=fleet.stack.kafka_bootstrap, linger_ms=1)
        await producer.start()
        start = time.monotonic()
        try:
            for at, (topic, key, value) in timed:
                delay = start + at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await producer.send(topic, value, key=key)
                if topic == clicks_topic and key is not None:
                    sent[key.decode()] = time.monotonic()
            await producer.flush()
        finally:
            await producer.stop()
        done.set()
        await poller

    asyncio.run(run())
    return [(seen[k] - sent[k]) * 1000.0 for k in sent if k in seen]


def latency_floor(
    stack: EmbeddedStack, partitions: int, rate: float, seconds: float
) -> list[float]:
    """The same click timing against ``latency_floor.py``: consume and mark, nothing else."""
    fleet = new_fleet(stack, partitions)
    ns = fleet.namespace
    script = Path(__file__).with_name("latency_floor.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = [stack.kafka_bootstrap, stack.redis_url, ns.topic_prefix, ns.redis_prefix]
    proc = subprocess.Popen([sys.executable, str(script), *args], env=env)
    try:
        time.sleep(8)  # joined its group, at the end of both topics
        return click_latency(fleet, rate, seconds)
    finally:
        proc.terminate()
        proc.wait(10)
        fleet.close()


#: the worker's default session timeout, for the start-up rows (the fleet's is 10 s)
READY_SESSION_TIMEOUT_S = 30.0


async def bare_join_s(bootstrap: str, topic: str, session_timeout_s: float) -> float:
    """Seconds a bare aiokafka consumer takes from start to its first assignment (fresh group)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-join-{random.getrandbits(32):08x}",
        session_timeout_ms=int(session_timeout_s * 1000),
        heartbeat_interval_ms=int(min(3.0, session_timeout_s / 3) * 1000),
    )
    t0 = time.monotonic()
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=20)
        return time.monotonic() - t0
    finally:
        await consumer.stop()


def first_count_s(fleet: WorkerFleet, timeout_s: float = 120.0) -> float:
    """Start a worker; seconds until the live total counter in Redis first counts an impression."""
    import redis

    client = redis.Redis.from_url(fleet.stack.redis_url)
    total = KeySpace(fleet.namespace.redis_prefix).counter(TOTAL_SCOPE)
    try:
        # started from its own directory: ``python -m`` puts the working directory
        # first on sys.path, ahead of a --before tree's PYTHONPATH
        here = os.getcwd()
        os.chdir(fleet.directory)
        try:
            t0 = time.monotonic()
            fleet.start_worker("ready")
        finally:
            os.chdir(here)
        while time.monotonic() - t0 < timeout_s:
            if client.hget(total, "impressions"):
                return time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError(f"no event counted within {timeout_s} s:\n{fleet.logs()}")
    finally:
        client.close()


def worker_ready(
    stack: EmbeddedStack, partitions: int, runs: int, tree: str | None = None
) -> list[float]:
    """Seconds from each worker's start to its first counted event, events waiting on the broker."""
    out = []
    for _ in range(runs):
        fleet = new_fleet(stack, partitions, tree)
        fleet.overrides["BERTCTR_SESSION_TIMEOUT_S"] = str(READY_SESSION_TIMEOUT_S)
        try:
            waiting = make_events(200, seed=7, tag="ready-")
            asyncio.run(publish(stack.kafka_bootstrap, routed(fleet.namespace, waiting)))
            out.append(first_count_s(fleet))
        finally:
            fleet.close()
    return out


def ready_rows(
    stack: EmbeddedStack, partitions: int, runs: int, before: str | None
) -> dict[str, object]:
    """``worker_ready_s`` (median of ``runs``) beside ``broker_group_delay_s``, same broker."""
    ns = Namespace.fresh("join")
    asyncio.run(create_topics(stack.kafka_bootstrap, [ns.topic(IMPRESSIONS)], partitions))
    delay = asyncio.run(
        bare_join_s(stack.kafka_bootstrap, ns.topic(IMPRESSIONS), READY_SESSION_TIMEOUT_S)
    )
    ready = worker_ready(stack, partitions, runs)
    out: dict[str, object] = {
        "broker_group_delay_s": round(delay, 2),
        "worker_ready_s": round(float(np.median(ready)), 2),
        "worker_ready_runs_s": [round(r, 2) for r in ready],
    }
    if before is not None:
        old = worker_ready(stack, partitions, runs, before)
        out["before_worker_ready_s"] = round(float(np.median(old)), 2)
        out["before_worker_ready_runs_s"] = [round(r, 2) for r in old]
    return out


def learner_rate(n: int) -> float:
    """The learner alone: predict then learn, 8-d image and title embeddings from a dict."""
    rnd = random.Random(0)
    vectors = {f"img-{i}": tuple(rnd.gauss(0, 1) for _ in range(8)) for i in range(200)}
    title = tuple(rnd.gauss(0, 1) for _ in range(8))
    examples = []
    for kind, _, value in make_events(n, seed=5):
        if kind == IMPRESSIONS:
            imp = decode(Impression, value)
            examples.append(
                LabelledImpression.from_impression(
                    imp,
                    clicked=rnd.random() < 0.05,
                    click_delay_s=None,
                    late=False,
                    labelled_at=imp.ts,
                )
            )
    learner = Learner(make_model(with_content=True))
    t0 = time.perf_counter()
    for ex in examples:
        learner.predict_then_learn(ex, vectors[ex.image_id], title)
    return len(examples) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="impressions per row")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--latency-rate", type=float, default=1000.0, help="events/s")
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="a short run (5,000 impressions)")
    parser.add_argument(
        "--before", default=None, help="a checkout whose workers run the e2e rows as a baseline"
    )
    parser.add_argument(
        "--only", choices=["ready"], default=None, help="run only these rows (ready: start-up)"
    )
    parser.add_argument(
        "--ready-runs", type=int, default=3, help="worker starts timed (the median is reported)"
    )
    args = parser.parse_args()
    if args.only == "ready":
        only_ready(args.partitions, args.ready_runs, args.before)
        return
    n = 5_000 if args.quick else args.events
    seconds = 5.0 if args.quick else args.latency_seconds
    events = make_events(n)
    stack = start_stack(None, os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    rss = RssWatch()
    fleets: list[WorkerFleet] = []
    names = ["ceilings", "e2e 1 worker", "click latency", "latency floor", "e2e 2 workers"]
    names.append("worker ready")
    if args.before is not None:
        names += ["before: 1 worker", "before: 2 workers"]
    rows = SHOW.bar("rows", len(names) + 1, unit="rows")  # and the learner alone

    def row(done: str) -> None:
        rows.set_postfix(done=done)
        rows.update()

    try:
        ceiling = ceilings(stack, events, args.partitions)
        row("ceilings")
        cpu1: dict[str, float] = {}
        e2e1, fleet = end_to_end(stack, events, 1, args.partitions, rss, cpu=cpu1)
        fleets.append(fleet)
        row("e2e 1 worker")
        latencies = click_latency(fleet, args.latency_rate, seconds)
        fleet.close()
        row("click latency")
        floor = latency_floor(stack, args.partitions, args.latency_rate, seconds)
        row("latency floor")
        e2e2, fleet2 = end_to_end(stack, events, 2, args.partitions, rss)
        fleets.append(fleet2)
        fleet2.close()
        row("e2e 2 workers")
        ready = ready_rows(stack, args.partitions, args.ready_runs, args.before)
        row("worker ready")
        before: dict[str, float] = {}
        if args.before is not None:
            for workers in (1, 2):
                watch = RssWatch()
                rate, old = end_to_end(stack, events, workers, args.partitions, watch, args.before)
                fleets.append(old)
                if workers == 1:
                    old_lat = np.array(click_latency(old, args.latency_rate, seconds) or [np.nan])
                    before["before_click_to_counter_p50_ms"] = round(
                        float(np.percentile(old_lat, 50)), 1
                    )
                    before["before_click_to_counter_p99_ms"] = round(
                        float(np.percentile(old_lat, 99)), 1
                    )
                watch.stop()
                before["before_peak_rss_mb"] = max(
                    before.get("before_peak_rss_mb", 0.0), round(watch.peak_mb, 1)
                )
                old.close()
                before[f"before_e2e_events_per_s_{workers}_worker{'s' if workers > 1 else ''}"] = (
                    round(rate)
                )
                row(f"before: {workers} worker{'s' if workers > 1 else ''}")
    finally:
        rss.stop()
        for f in fleets:
            f.close()
        stack.close()
    lrate = learner_rate(n)
    row("learner")
    rows.close()
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    result = {
        "events": len(events),
        "consume_events_per_s": round(ceiling["consume"]),
        "passthrough_events_per_s": round(ceiling["passthrough"]),
        "e2e_events_per_s_1_worker": round(e2e1),
        "e2e_events_per_s_2_workers": round(e2e2),
        "e2e_1_worker_over_passthrough": round(e2e1 / ceiling["passthrough"], 3),
        "click_to_counter_p50_ms": round(float(np.percentile(lat, 50)), 1),
        "click_to_counter_p99_ms": round(float(np.percentile(lat, 99)), 1),
        "clicks_timed": len(latencies),
        "floor_click_to_counter_p50_ms": round(float(np.percentile(floor or [np.nan], 50)), 1),
        "floor_click_to_counter_p99_ms": round(float(np.percentile(floor or [np.nan], 99)), 1),
        "learner_events_per_s": round(lrate),
        "peak_rss_mb": round(rss.peak_mb, 1),
        # CPU µs per event of each process during the 1-worker row, and its
        # wall µs per event: two cores give 2 x wall to share
        **{f"cpu_us_per_event_1_worker_{name}": v for name, v in cpu1.items()},
        **ready,
        **before,
    }
    report(result)


def report(result: Mapping[str, object]) -> None:
    """The table, then the one JSON line."""
    print(f"\n{'row':<36} {'value':>12}")
    for key, value in result.items():
        print(f"{key:<36} {value!s:>12}")
    print(json.dumps(result))


def only_ready(partitions: int, runs: int, before: str | None) -> None:
    """``--only ready``: the start-up rows on a broker of their own."""
    stack = start_stack(None, os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        result = ready_rows(stack, partitions, runs, before)
    finally:
        stack.close()
    report(result)


if __name__ == "__main__":
    main()
