"""Bounded state: peak RSS of one worker after 100k and after 1M impressions.

Runs one ``bertctr worker`` (join, counters, learner without embeddings) on
the embedded broker and feeds it simulated traffic flat out. Pending
impressions expire with their window, remembered labels and dedup markers
with the late-click horizon, the learner's label ids with its dedup horizon;
so once the stream is older than the horizon the worker's memory must stop
growing. The horizon is shortened (``--horizon``, event seconds) so that the
first checkpoint already lies past it: what is measured is the steady state,
not the warm-up.

Prints the worker's peak RSS when the settled counters reach each checkpoint,
the ratio of the last to the first (goal: under 1.2) and a JSON line. Both
checkpoints are taken while traffic still flows (10% more is published than
the last one), so neither includes the burst of expiries when a stream ends
and the idle clock closes every open window at once.

    .venv/bin/python bench/bench_state.py                 # 100k and 1M impressions
    .venv/bin/python bench/bench_state.py --quick         # 50k and 200k
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import redis

from bertctr.harness.kafka import Message, publish
from bertctr.harness.stack import start_stack
from bertctr.harness.workers import Namespace, WorkerFleet, replay_settings
from schemas.keys import SETTLED, KeySpace
from simulator import SimConfig, Simulator

CHUNK = 25_000


class RssSampler(threading.Thread):
    """Samples a process's resident set size every ``interval_s``; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.interval_s)

    def stop(self) -> None:
        self._stop.set()


def traffic(ns: Namespace, sim: Simulator, n: int) -> Iterator[Message]:
    """``n`` impressions (with clicks and faults), simulated lazily in chunks."""
    done = 0
    while done < n:
        size = min(CHUNK, n - done)
        done += size
        for m in sim.messages(size, flush=done >= n):
            yield ns.topic(m.topic), m.key, m.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="impressions in all")
    parser.add_argument("--first", type=int, default=100_000, help="the first checkpoint")
    parser.add_argument("--quick", action="store_true", help="50k and 200k impressions")
    parser.add_argument("--window", type=float, default=300.0, help="attribution window, s")
    parser.add_argument("--horizon", type=float, default=600.0, help="late-click horizon, s")
    parser.add_argument("--rate", type=float, default=50.0, help="impressions per sim second")
    args = parser.parse_args()
    if args.quick:
        args.events, args.first = 200_000, 50_000
    span = args.first / args.rate
    print(
        f"first checkpoint spans {span:.0f} simulated s; window {args.window:.0f} s, "
        f"horizon {args.horizon:.0f} s (state is steady once the stream is older than both)"
    )
    stack = start_stack(None, os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    fleet = WorkerFleet(
        stack, Path(tempfile.mkdtemp(prefix="bench-state-")), Namespace.fresh("state", "bench:")
    )
    fleet.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": str(args.window),
            "BERTCTR_LATE_CLICK_HORIZON_S": str(args.horizon),
            **replay_settings(1000.0, 60.0),
        }
    )
    sim = Simulator(
        SimConfig(seed=7, impressions_per_s=args.rate, attribution_window_s=args.window)
    )
    client = redis.Redis.from_url(stack.redis_url)
    settled_total = KeySpace(fleet.namespace.redis_prefix).counter("total", SETTLED)
    try:
        fleet.cli("topics", "create")
        worker = fleet.start_worker()
        sampler = RssSampler(worker.pid)
        sampler.start()
        t0 = time.monotonic()
        stream = traffic(fleet.namespace, sim, args.events + args.events // 10)
        publisher = threading.Thread(
            target=lambda: asyncio.run(publish(stack.kafka_bootstrap, stream, linger_ms=20)),
            daemon=True,
        )
        publisher.start()
        marks: list[tuple[int, float, float]] = []
        for target in (args.first, args.events):
            while int(client.hget(settled_total, "impressions") or 0) < target:
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker died; see {fleet.log_path('w0')}")
                time.sleep(0.5)
            marks.append((target, sampler.peak / 2**20, time.monotonic() - t0))
            print(
                f"after {target:>9,} impressions: peak RSS {marks[-1][1]:7.1f} MiB "
                f"({marks[-1][2]:.0f} s)"
            )
        sampler.stop()
        ratio = marks[-1][1] / marks[0][1]
        rate = args.events / marks[-1][2]
        print(f"ratio {ratio:.3f} (goal < 1.2); {rate:.0f} impressions/s through the worker")
        print(
            json.dumps(
                {
                    "impressions": [m[0] for m in marks],
                    "peak_rss_mb": [round(m[1], 1) for m in marks],
                    "ratio": round(ratio, 3),
                    "impressions_per_s": round(rate, 1),
                }
            )
        )
    finally:
        fleet.close()
        client.close()
        stack.close()


if __name__ == "__main__":
    main()
