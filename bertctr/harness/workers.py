"""Workers in their own namespace on a shared broker and Redis.

A :class:`WorkerFleet` gives one run (a test, a demo, a benchmark) its own
topics, Redis keys and consumer group on a stack that others may share, and
starts ``bertctr worker`` processes and ``bertctr`` commands with exactly
that environment, so what is run is what a user runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bertctr.harness.procs import bertctr_command, kill_group, spawn, stop_process
from bertctr.harness.stack import EmbeddedStack
from schemas.topics import ALL_TOPICS, full_name

__all__ = ["REPLAY", "Namespace", "WorkerFleet", "replay_settings"]

#: Join settings for traffic dated in the past and published flat out: a
#: generous lateness bound, and an idle input's clock running 2000x, so
#: windows close within wall seconds once publishing stops.
REPLAY = {
    "BERTCTR_MAX_LATENESS_S": "1000",
    "BERTCTR_IDLE_AFTER_S": "1",
    "BERTCTR_IDLE_CLOCK_RATE": "2000",
}


def replay_settings(speed: float, lateness_s: float) -> dict[str, str]:
    """Settings for simulated time replayed ``speed`` times faster than the wall clock.

    An idle input's clock advances at the replay speed, so the end of a run
    expires in (window + lateness) / speed wall seconds, as it would have
    live (``speed`` 0, flat out, gets a very fast clock); simulated events
    may be dated anywhere, so the future-skew guard is off.
    """
    return {
        "BERTCTR_MAX_LATENESS_S": str(lateness_s),
        "BERTCTR_IDLE_AFTER_S": "2",
        "BERTCTR_IDLE_CLOCK_RATE": str(speed if speed > 0 else 1_000_000),
        "BERTCTR_MAX_FUTURE_SKEW_S": "1e10",
    }


@dataclass(frozen=True)
class Namespace:
    """Topic prefix, Redis key prefix and consumer group of one run."""

    topic_prefix: str
    redis_prefix: str
    app_id: str

    @classmethod
    def fresh(cls, kind: str, redis_root: str = "") -> Namespace:
        """A new namespace named ``<kind>-<random tag>``; keys under ``redis_root``."""
        tag = uuid.uuid4().hex[:8]
        return cls(
            topic_prefix=f"{kind}-{tag}-",
            redis_prefix=f"{redis_root}{kind}:{tag}:",
            app_id=f"bertctr-{kind}-{tag}",
        )

    def env(self) -> dict[str, str]:
        return {
            "BERTCTR_TOPIC_PREFIX": self.topic_prefix,
            "BERTCTR_REDIS_PREFIX": self.redis_prefix,
            "BERTCTR_APP_ID": self.app_id,
        }

    def topic(self, name: str) -> str:
        """Full name of the logical topic ``name`` (one of :data:`ALL_TOPICS`)."""
        if name not in ALL_TOPICS:
            raise ValueError(f"unknown topic {name!r}; expected one of {ALL_TOPICS}")
        return full_name(self.topic_prefix, name)


@dataclass
class WorkerFleet:
    """The workers of one namespace, their environment, logs and clean-up."""

    stack: EmbeddedStack
    directory: Path
    namespace: Namespace
    partitions: int = 4
    #: settings (``BERTCTR_*``) on top of the defaults; read at each start
    overrides: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The full environment of this fleet's processes."""
        env = dict(os.environ)
        env.update(self.stack.env())
        env.update(self.namespace.env())
        env.update(
            {
                "BERTCTR_PARTITIONS": str(self.partitions),
                # a killed member's partitions come back in ~10 s, not 30
                "BERTCTR_SESSION_TIMEOUT_S": "10",
                # and a killed learner's lease is taken over within ~5 s
                "BERTCTR_LEARNER_LEASE_S": "5",
                "BERTCTR_DATA_DIR": str(self.directory / "data"),
                "BERTCTR_CHECKPOINT_DIR": str(self.directory / "checkpoints"),
            }
        )
        env.update(self.overrides)
        return env

    def topic(self, name: str) -> str:
        return self.namespace.topic(name)

    def log_path(self, name: str) -> Path:
        return self.directory / f"worker-{name}.log"

    def start_worker(
        self, name: str = "w0", loglevel: str = "info", *, named: bool = False, role: str = "all"
    ) -> subprocess.Popen[bytes]:
        """Start ``bertctr worker`` named ``name`` (its log: ``worker-<name>.log``).

        ``named`` makes ``name`` its worker id too (in health reports and
        the learner lease; otherwise ``<hostname>-<pid>``).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        env = self.env()
        if named:
            env["BERTCTR_WORKER_ID"] = name
        args = ["worker", "--loglevel", loglevel]
        if role != "all":  # the default, unsaid: a baseline checkout may predate --role
            args += ["--role", role]
        proc = spawn(bertctr_command(*args), env, self.log_path(name))
        self.procs[name] = proc
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker and its group (a crash, not a shutdown)."""
        kill_group(self.procs[name])

    def stop_worker(self, name: str, timeout_s: float = 10.0) -> None:
        stop_process(self.procs[name], timeout_s=timeout_s)

    def cli(self, *args: str, timeout_s: float = 60.0) -> str:
        """Run ``bertctr ARGS`` in this namespace; its stdout (fails on a non-zero exit)."""
        out = subprocess.run(
            bertctr_command(*args),
            env=self.env(),
            capture_output=True,
            check=True,
            timeout=timeout_s,
        )
        return out.stdout.decode()

    def health(self, *args: str) -> tuple[int, dict[str, Any]]:
        """``bertctr health --json``: its exit code and its report."""
        out = subprocess.run(
            bertctr_command("health", "--json", *args),
            env=self.env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        return out.returncode, json.loads(out.stdout)

    def logs(self, tail: int = 4000) -> str:
        """The end of every worker's log, for failure messages."""
        return "\n".join(
            p.read_text(errors="replace")[-tail:]
            for p in sorted(self.directory.glob("worker-*.log"))
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every worker (SIGTERM, SIGKILL after ``timeout_s``)."""
        for proc in self.procs.values():
            stop_process(proc, timeout_s=timeout_s)

    def clear_redis(self) -> None:
        """Delete every key of this namespace."""
        client = redis.Redis.from_url(self.stack.redis_url)
        try:
            keys = list(client.scan_iter(match=f"{self.namespace.redis_prefix}*", count=1000))
            for i in range(0, len(keys), 500):
                client.delete(*keys[i : i + 500])
        finally:
            client.close()

    def close(self) -> None:
        self.stop()
        self.clear_redis()

    def __enter__(self) -> WorkerFleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
