"""A stalled agent makes its worker unhealthy: ``bertctr health`` says so and exits 1.

The learner is blocked the way production blocks it: Triton is unreachable,
so it waits (and must wait: nothing is learned without its embedding) while
the join and the counters go on. A silent stall like this is what the health
report exists to expose.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from bertctr.harness.kafka import publish
from bertctr.harness.procs import free_port
from bertctr.harness.workers import REPLAY
from schemas.topics import IMPRESSIONS, LABELLED
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration


def test_a_blocked_learner_is_reported_unhealthy(worker_env: WorkerEnv, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(images / "img-sku-1.png")
    worker_env.overrides.update(
        {
            **REPLAY,
            "BERTCTR_ATTRIBUTION_WINDOW_S": "5",
            "BERTCTR_TRITON_URL": f"127.0.0.1:{free_port()}",  # nothing listens there
            "BERTCTR_TRITON_TIMEOUT_S": "1",
            "BERTCTR_IMAGE_DIR": str(images),
            "BERTCTR_HEALTH_INTERVAL_S": "1",
            "BERTCTR_HEALTH_MAX_STALL_S": "4",
        }
    )
    worker_env.cli("topics", "create")
    worker_env.start_worker()
    # idle and caught up: healthy
    worker_env.wait_healthy()
    code, report = worker_env.health()
    assert code == 0 and report["healthy"] and len(report["workers"]) == 1

    base = time.time() - 100
    messages = []
    for i in range(20):
        event = {
            "event_id": f"ev-{i}",
            "impression_id": f"imp-{i}",
            "ts": base + i,
            "item_id": "sku-1",
            "image_id": "img-sku-1",
            "title": "red shoe",
            "position": 0,
            "segment": {"device": "mobile", "geo": "DE"},
        }
        messages.append(
            (worker_env.topic(IMPRESSIONS), f"imp-{i}".encode(), json.dumps(event).encode())
        )
    asyncio.run(publish(worker_env.stack.kafka_bootstrap, messages))

    # the counters go on (the settled view counts the 20 negatives) ...
    def settled() -> int:
        stats = json.loads(worker_env.cli("stats", "--json", "--view", "settled"))
        return int(stats["total"]["impressions"])

    assert wait_until(lambda: settled() == 20, timeout_s=60), worker_env.worker_logs()
    # ... while the learner waits for Triton, and the report says so
    assert wait_until(lambda: worker_env.health()[0] == 1, timeout_s=60), worker_env.health()
    code, report = worker_env.health()
    (worker,) = report["workers"]
    assert code == 1 and not report["healthy"] and not worker["healthy"]
    labelled = worker_env.topic(LABELLED)
    assert any(p.startswith(f"learner stalled on {labelled}:") for p in worker["problems"])
    assert not any(p.startswith(("join", "counters")) for p in worker["problems"])
    stalled = [row for row in worker["partitions"]["learner"].values() if row["stalled_s"] > 4]
    assert stalled and all(row["lag"] > 0 for row in stalled)

    def counters_caught_up() -> bool:
        # watermark records keep coming: a report can catch one in flight
        (now,) = worker_env.health()[1]["workers"]
        return all(row["lag"] == 0 for row in now["partitions"]["counters"].values())

    assert wait_until(counters_caught_up, timeout_s=20), worker_env.health()
    # the worker's own data directory tells the same (compose's health check)
    local = subprocess.run(
        [sys.executable, "-m", "bertctr.cli", "health", "--local"],
        env=worker_env.env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert local.returncode == 1 and b"learner stalled" in local.stdout
