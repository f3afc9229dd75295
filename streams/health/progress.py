"""Liveness of a worker: is every assigned partition making progress?

Faust's most reported failure is a consumer that silently stops: the
process runs, the group is stable, and one agent waits forever on something
(a dead dependency, a lost future, a bug). Nothing crashes, so nothing
restarts. Each agent therefore marks every message it has handled in a
:class:`Progress`, and a timer turns that, with the consumer's high
watermarks and committed offsets, into a report per worker (JSON, in Redis
at ``P health:<worker>`` and in ``<data_dir>/health.json``) that
``bertctr health`` judges.

A partition is **stalled** when messages have been waiting in it for more
than ``BERTCTR_HEALTH_MAX_STALL_S`` without its agent handling any: its
``stalled_s`` counts from the first report that saw it waiting after its
last progress (about the age of the oldest unprocessed message, measured at
report granularity). A report older than a few intervals means the event
loop itself is blocked, or the worker is gone.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HEALTH_FILE",
    "PartitionState",
    "Progress",
    "assess",
    "default_worker_id",
    "read_local_report",
    "write_local_report",
]

#: name of the local report in the worker's data directory
HEALTH_FILE = "health.json"

#: A report this many intervals old (and at least this many seconds) is stale.
STALE_INTERVALS = 3
STALE_MIN_S = 15.0


def default_worker_id() -> str:
    """``<hostname>-<pid>``: unique per process, readable on a dashboard."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class PartitionState:
    """Progress of one agent on one topic partition."""

    #: offset of the last message handled (None: none yet in this process)
    processed: int | None = None
    #: wall time the agent last handled a message here
    progressed_at: float | None = None
    #: wall time a report first saw messages waiting since the last progress
    waiting_since: float | None = None


@dataclass
class Progress:
    """What each agent handled, per topic partition, and when."""

    partitions: dict[str, dict[tuple[str, int], PartitionState]] = field(default_factory=dict)

    def mark(self, agent: str, topic: str, partition: int, offset: int, now: float) -> None:
        """``agent`` handled the message at ``offset`` of ``topic[partition]``."""
        state = self.partitions.setdefault(agent, {}).setdefault(
            (topic, partition), PartitionState()
        )
        if state.processed is None or offset > state.processed:
            state.processed = offset
            state.progressed_at = now
            state.waiting_since = None

    def forget(self) -> None:
        """Drop all positions (on rebalance: partitions are read again from commits)."""
        self.partitions.clear()

    def forget_partitions(self, agent: str, tps: Iterable[tuple[str, int]]) -> None:
        """Drop ``agent``'s positions of ``tps`` (revoked: read again from commits)."""
        states = self.partitions.get(agent, {})
        for tp in tps:
            states.pop(tp, None)

    def report(
        self,
        assigned: Mapping[str, Iterable[tuple[str, int]]],
        highwater: Callable[[str, int], int | None],
        committed: Callable[[str, int], int | None],
        now: float,
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """Per agent, per assigned ``topic:partition``: offsets, lag and ``stalled_s``."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for agent, tps in assigned.items():
            states = self.partitions.setdefault(agent, {})
            rows = {}
            for topic, partition in sorted(tps):
                state = states.setdefault((topic, partition), PartitionState())
                high = highwater(topic, partition)
                commit = committed(topic, partition)
                next_offset = state.processed + 1 if state.processed is not None else (commit or 0)
                lag = None if high is None else max(0, high - next_offset)
                if lag:
                    if state.waiting_since is None:
                        state.waiting_since = now
                    stalled = now - state.waiting_since
                else:
                    state.waiting_since = None
                    stalled = 0.0
                rows[f"{topic}:{partition}"] = {
                    "processed": state.processed,
                    "highwater": high,
                    "committed": commit,
                    "lag": lag,
                    "stalled_s": round(stalled, 3),
                }
            out[agent] = rows
        return out


def assess(report: Mapping[str, Any], now: float, max_stall_s: float) -> list[str]:
    """The problems of one worker's report (empty: healthy)."""
    problems = []
    interval = float(report.get("interval_s", 5.0))
    age = now - float(report.get("at", 0.0))
    if age > max(STALE_INTERVALS * interval, STALE_MIN_S):
        problems.append(f"no report for {age:.0f}s (event loop blocked, or worker gone)")
    for agent, rows in sorted((report.get("partitions") or {}).items()):
        for tp, row in sorted(rows.items()):
            stalled = float(row.get("stalled_s") or 0.0)
            if stalled > max_stall_s:
                problems.append(
                    f"{agent} stalled on {tp} for {stalled:.0f}s with {row.get('lag')} waiting"
                )
    return problems


def write_local_report(data_dir: Path, report: Mapping[str, Any]) -> None:
    """Atomically replace ``<data_dir>/health.json`` (read by ``bertctr health --local``)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{HEALTH_FILE}.tmp"
    tmp.write_text(json.dumps(report, sort_keys=True))
    tmp.replace(data_dir / HEALTH_FILE)


def read_local_report(data_dir: Path) -> dict[str, Any] | None:
    """The local report, or None if this data directory has none."""
    path = data_dir / HEALTH_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
