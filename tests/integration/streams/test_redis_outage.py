"""Redis down for a while: labels wait, nothing is lost, nothing is counted twice.

The worker talks to a private redis-server (append-only file, so a restart
keeps what was written); it is stopped while traffic flows and started again
on the same port.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bertctr.harness.kafka import publish
from bertctr.harness.procs import free_port, stop_process, wait_for_port
from bertctr.harness.workers import REPLAY
from schemas.topics import CLICKS, IMPRESSIONS, full_name
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration


def start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, 10)
    return proc


def batch(prefix: str, first: int, n: int, base: float) -> list[Any]:
    msgs = []
    for i in range(first, first + n):
        imp = {
            "event_id": f"e{i}",
            "impression_id": f"i{i}",
            "ts": base + i,
            "item_id": "a",
            "image_id": "img",
            "position": 0,
            "segment": {"device": "mobile", "geo": "DE"},
        }
        msgs.append((full_name(prefix, IMPRESSIONS), f"i{i}".encode(), json.dumps(imp).encode()))
        if i % 4 == 0:
            click = {"event_id": f"c{i}", "impression_id": f"i{i}", "ts": base + i + 1}
            msgs.append((full_name(prefix, CLICKS), f"i{i}".encode(), json.dumps(click).encode()))
    return msgs


async def test_counters_survive_a_redis_outage(worker_env: WorkerEnv) -> None:
    port = free_port()
    redis_dir = worker_env.tmp / "redis"
    redis_dir.mkdir()
    redis_proc = start_redis(port, redis_dir)
    url = f"redis://127.0.0.1:{port}/0"
    worker_env.overrides.update(
        {
            "BERTCTR_REDIS_URL": url,
            "BERTCTR_ATTRIBUTION_WINDOW_S": "30",
            **REPLAY,
            "BERTCTR_CHECKPOINT_DIR": str(worker_env.tmp / "ckpt"),
        }
    )
    prefix, boot = worker_env.topic_prefix, worker_env.stack.kafka_bootstrap
    base = time.time() - 100_000

    def total() -> tuple[int, int]:
        try:
            stats = json.loads(worker_env.cli("stats", "--json"))
        except subprocess.CalledProcessError:
            return (-1, -1)
        return stats["total"]["impressions"], stats["total"]["clicks"]

    try:
        worker_env.cli("topics", "create")
        worker_env.start_worker()
        await publish(boot, batch(prefix, 0, 40, base))
        assert wait_until(lambda: total() == (40, 10), 90), worker_env.worker_logs()

        stop_process(redis_proc)  # Redis goes away...
        await publish(boot, batch(prefix, 40, 40, base + 10_000))
        time.sleep(8)  # ...while labels for the second batch are produced
        assert "redis unavailable" in worker_env.worker_logs()

        redis_proc = start_redis(port, redis_dir)  # ...and comes back
        assert wait_until(lambda: total() == (80, 20), 90), worker_env.worker_logs()
        time.sleep(2)
        assert total() == (80, 20)
    finally:
        stop_process(redis_proc)
