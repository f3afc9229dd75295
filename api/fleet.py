"""The fleet as the workers' health reports tell it: one summary for ``/fleet`` and ``/metrics``.

Pure: :func:`summarise` takes the reports (as :func:`streams.readers.read_health`
returns them), the time and the stall limit, and gives a :class:`Fleet`;
:meth:`Fleet.document` is the JSON of ``GET /fleet`` and :func:`families`
the Prometheus families of ``GET /metrics``, so the live page and Grafana
can never disagree. Metric names are :mod:`schemas.metric_names`'.

How reports are combined:

* **processed** (per topic): a partition's position is the next offset to
  handle (``processed + 1``, or the committed offset before the first
  message); per partition the furthest agent and report count, summed over
  the partitions of the topic. Offsets only grow, so this is a counter
  whose ``rate()`` is messages per second, whichever worker holds the
  partition now.
* **lag** (per agent and partition): from the freshest report that has it.
* **dead letters, labels, join counts**: each worker's own since it started
  (a counter per worker; Prometheus handles a restart as a counter reset),
  summed over workers in the document. A report without ``dead_letters``
  (written before they were reported) stands in with its join's ``rejected``.
* **events** (the live page's throughput): impressions and clicks the joins
  accepted and labels they emitted, summed over workers. Unlike
  **processed**, internal records never count: the join's ticks
  (``join-ticks``) and its watermark records on ``labelled`` move offsets
  about once a second per partition while no traffic flows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from api.ctr_counters import CtrCounters, ctr_families
from api.quality_view import quality_families
from schemas.metric_names import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    ENCODER_DECISIONS,
    ENCODER_VERSION,
    EVENTS_PROCESSED,
    JOIN_EVENTS,
    LABEL_KINDS,
    LABELS,
    MODEL,
    MODEL_UNSCORED,
    MODEL_UPDATED,
    REDIS_UP,
    WORKER_REPORT_AGE,
    WORKERS,
)
from streams.health.progress import assess
from streams.telemetry import Metric, counter_family, gauge_family, model_families

__all__ = [
    "EVENT_KINDS",
    "JOIN_KINDS",
    "Fleet",
    "FleetDocument",
    "FleetView",
    "WorkerState",
    "WorkerSummary",
    "families",
    "summarise",
]

#: join counts exported as ``bertctr_join_events_total{kind}``
JOIN_KINDS = ("impressions", "clicks", "duplicates", "repeat_clicks")
#: what ``events`` counts: business records only (never ticks or watermark records)
EVENT_KINDS = ("impressions", "clicks", "labelled")
_SERVED_VERSION = re.compile(r"\.v(\d+)$")


def _number(value: Any) -> float | None:
    """A number from a report; None for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int:
    """A count from a report; anything else counts 0."""
    number = _number(value)
    return int(number) if number is not None else 0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _counts(value: Any) -> dict[str, int]:
    """A ``{name: count}`` mapping from a report; anything else is empty."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): _int(v) for k, v in value.items()}


@dataclass(frozen=True)
class WorkerState:
    """One worker, judged, with its own counts since it started."""

    worker: str
    age_s: float
    healthy: bool
    problems: list[str]
    join: dict[str, Any]
    dead_letters: dict[str, int]
    labels: dict[str, int]


@dataclass(frozen=True)
class Fleet:
    """Every worker's report, combined (see the module docstring)."""

    at: float
    workers: list[WorkerState] = field(default_factory=list)
    #: topic -> messages consumed (sum over its partitions of the next offset)
    processed: dict[str, int] = field(default_factory=dict)
    #: (agent, topic, partition) -> messages waiting
    lag: dict[tuple[str, str, int], int] = field(default_factory=dict)

    @property
    def healthy(self) -> int:
        return sum(w.healthy for w in self.workers)

    @property
    def unhealthy(self) -> int:
        return len(self.workers) - self.healthy

    @property
    def dead_letters(self) -> dict[str, int]:
        """Dead letters by reason, all workers."""
        return _sum_counts(w.dead_letters for w in self.workers)

    @property
    def labels(self) -> dict[str, int]:
        """Labels by kind (positive, negative, late), all workers."""
        return {k: sum(w.labels.get(k, 0) for w in self.workers) for k in LABEL_KINDS}

    @property
    def join(self) -> dict[str, Any]:
        """The workers' join counts summed (``rejected`` summed by reason)."""
        out: dict[str, Any] = {}
        for w in self.workers:
            for key, value in w.join.items():
                if isinstance(value, Mapping):
                    out[key] = _sum_counts([out.get(key, {}), _counts(value)])
                else:
                    out[key] = out.get(key, 0) + _int(value)
        return dict(sorted(out.items()))

    @property
    def events(self) -> dict[str, int]:
        """Impressions and clicks the joins accepted, labels they emitted: all workers.

        Internal records (join ticks, watermark records) are not events, so
        an idle stream counts none, however its offsets move.
        """
        return {
            "impressions": sum(_int(w.join.get("impressions")) for w in self.workers),
            "clicks": sum(_int(w.join.get("clicks")) for w in self.workers),
            "labelled": sum(sum(w.labels.values()) for w in self.workers),
        }

    def lag_by_partition(self) -> dict[str, int]:
        """``"<topic>:<partition>"`` -> the most any agent has waiting there."""
        out: dict[str, int] = {}
        for (_, topic, partition), lag in sorted(self.lag.items()):
            key = f"{topic}:{partition}"
            out[key] = max(out.get(key, 0), lag)
        return out

    def document(self) -> dict[str, Any]:
        """The body of ``GET /fleet`` (:class:`FleetDocument`)."""
        return {
            "at": self.at,
            "workers": [
                {
                    "worker": w.worker,
                    "age_s": w.age_s,
                    "healthy": w.healthy,
                    "problems": list(w.problems),
                }
                for w in self.workers
            ],
            "processed": dict(sorted(self.processed.items())),
            "events": self.events,
            "lag": self.lag_by_partition(),
            "dead_letters": self.dead_letters,
            "labels": self.labels,
            "join": self.join,
        }


def _sum_counts(parts: Iterator[dict[str, int]] | Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for key, n in part.items():
            out[key] = out.get(key, 0) + n
    return dict(sorted(out.items()))


def _split(tp: str) -> tuple[str, int] | None:
    topic, _, partition = tp.rpartition(":")
    try:
        return (topic, int(partition)) if topic else None
    except ValueError:
        return None


def summarise(reports: Sequence[Mapping[str, Any]], now: float, max_stall_s: float) -> Fleet:
    """Combine the workers' health reports, each judged by ``streams.health.progress.assess``."""
    workers = []
    positions: dict[tuple[str, int], int] = {}
    lag: dict[tuple[str, str, int], tuple[float, int]] = {}
    for report in reports:
        at = _number(report.get("at")) or 0.0
        try:
            problems = assess(report, now, max_stall_s)
        except (TypeError, ValueError, AttributeError) as exc:
            problems = [f"malformed health report: {exc}"]
        join = _mapping(report.get("join"))
        dead = report.get("dead_letters")
        workers.append(
            WorkerState(
                worker=str(report.get("worker", "?")),
                age_s=round(max(0.0, now - at), 3),
                healthy=not problems,
                problems=problems,
                join=dict(join),
                dead_letters=dict(
                    sorted(
                        _counts(dead if isinstance(dead, Mapping) else join.get("rejected")).items()
                    )
                ),
                labels={k: _int(join.get(k)) for k in LABEL_KINDS},
            )
        )
        for agent, rows in _mapping(report.get("partitions")).items():
            for tp, row in _mapping(rows).items():
                where = _split(str(tp))
                if where is None or not isinstance(row, Mapping):
                    continue
                handled, committed = row.get("processed"), row.get("committed")
                if isinstance(handled, int) and not isinstance(handled, bool):
                    position: int | None = handled + 1
                elif isinstance(committed, int) and not isinstance(committed, bool):
                    position = committed
                else:
                    position = None
                if position is not None:
                    positions[where] = max(positions.get(where, 0), position)
                waiting = row.get("lag")
                key = (str(agent), *where)
                if isinstance(waiting, int) and (key not in lag or lag[key][0] <= at):
                    lag[key] = (at, waiting)
    processed: dict[str, int] = {}
    for (topic, _), position in sorted(positions.items()):
        processed[topic] = processed.get(topic, 0) + position
    return Fleet(
        at=now,
        workers=sorted(workers, key=lambda w: w.worker),
        processed=processed,
        lag={key: waiting for key, (_, waiting) in sorted(lag.items())},
    )


# --- GET /fleet's body ---------------------------------------------------------------


class WorkerSummary(BaseModel):
    """One worker as ``bertctr health`` judges it."""

    worker: str
    age_s: float = Field(description="Seconds since its last health report.")
    healthy: bool
    problems: list[str]


class FleetDocument(BaseModel):
    """The fleet from the workers' health reports: what ``GET /metrics`` exports, as JSON."""

    at: float = Field(description="When this summary was made (epoch s).")
    workers: list[WorkerSummary]
    processed: dict[str, int] = Field(
        description="Topic -> messages consumed (sum over partitions of the next offset), "
        "internal records (join ticks, watermark records) included."
    )
    events: dict[str, int] = Field(
        description="impressions and clicks the joins accepted, labelled: labels they emitted; "
        "each worker's since it started, summed. Internal records never count."
    )
    lag: dict[str, int] = Field(description="'<topic>:<partition>' -> messages waiting.")
    dead_letters: dict[str, int] = Field(description="Reason -> messages dead-lettered.")
    labels: dict[str, int] = Field(description="positive, negative and late labels emitted.")
    join: dict[str, int | dict[str, int]] = Field(
        description="The workers' join counts summed (rejected: by reason)."
    )


# --- GET /metrics ------------------------------------------------------------------


@dataclass(frozen=True)
class FleetView:
    """What one scrape read from Redis; ``fleet`` is None when Redis could not be read."""

    fleet: Fleet | None
    model: Mapping[str, Any] | None = None
    encoder: Mapping[str, Any] | None = None
    decisions: Mapping[str, int] = field(default_factory=dict)
    #: CTR counters by view (``live``, ``settled``)
    ctr: Mapping[str, CtrCounters] = field(default_factory=dict)


def _version(status: Mapping[str, Any], role: str) -> int | None:
    """The served version number of the champion or challenger (None: none, or unknown)."""
    name = status.get(role)
    if not isinstance(name, str):
        return None
    number = status.get(f"{role}_version")
    if isinstance(number, int) and not isinstance(number, bool):
        return number
    found = _SERVED_VERSION.search(name)
    return int(found.group(1)) if found else None


def families(view: FleetView) -> Iterator[Metric]:
    """The fleet's Prometheus families (the API's own metrics are registered apart)."""
    yield gauge_family(REDIS_UP, [((), 1.0 if view.fleet is not None else 0.0)])
    fleet = view.fleet
    if fleet is None:
        return
    yield gauge_family(WORKERS, [(("healthy",), fleet.healthy), (("unhealthy",), fleet.unhealthy)])
    yield gauge_family(WORKER_REPORT_AGE, (((w.worker,), w.age_s) for w in fleet.workers))
    yield counter_family(EVENTS_PROCESSED, (((t,), n) for t, n in fleet.processed.items()))
    yield gauge_family(CONSUMER_LAG, (((a, t, str(p)), n) for (a, t, p), n in fleet.lag.items()))
    yield counter_family(
        DEAD_LETTERS,
        (((w.worker, r), n) for w in fleet.workers for r, n in w.dead_letters.items()),
    )
    yield counter_family(
        LABELS, (((w.worker, k), w.labels.get(k, 0)) for w in fleet.workers for k in LABEL_KINDS)
    )
    yield counter_family(
        JOIN_EVENTS,
        (((w.worker, k), _int(w.join.get(k))) for w in fleet.workers for k in JOIN_KINDS),
    )
    model = view.model
    yield from model_families(model, MODEL)
    for metric, key in ((MODEL_UNSCORED, "unscored"), (MODEL_UPDATED, "updated_at")):
        number = _number((model or {}).get(key))
        yield gauge_family(metric, [((), number)] if number is not None else [])
    yield from quality_families(model)
    encoder = view.encoder or {}
    versions = [(role, _version(encoder, role)) for role in ("champion", "challenger")]
    yield gauge_family(ENCODER_VERSION, (((r,), v) for r, v in versions if v is not None))
    yield gauge_family(ENCODER_DECISIONS, (((d,), n) for d, n in sorted(view.decisions.items())))
    yield from ctr_families(view.ctr)
