"""Prometheus metrics of a process: its Triton client's, and a worker's own.

Names, kinds and labels are :mod:`schemas.metric_names`'. Every process keeps
its metrics in a :class:`~prometheus_client.CollectorRegistry` of its own,
never prometheus_client's global one, so several apps (or a worker's parts
and an API) in one test process never clash.

A worker (``BERTCTR_METRICS_PORT`` set) serves ``GET /metrics`` from a thread
(:func:`prometheus_client.start_http_server`), not from Faust's web server:
the worker runs Faust with its web server off, which would otherwise also
serve Faust's own pages (table contents among them) and need its own port
settings; and a thread keeps answering while the event loop is blocked, the
very failure the health report exists for, so a scrape then shows frozen
counters instead of failing.

The hot path stays as it was: the agents already count what they do per
batch (:class:`~streams.join.agent.JoinCounts`, the
:class:`~streams.kafka.deadletter.DeadLetterTally`), and those are read at scrape
time; the only addition is one dictionary update per topic per batch
(:meth:`WorkerTelemetry.handled`). The learner's metrics are copied on the
event loop by a timer (:meth:`WorkerTelemetry.observe_model`), never read
from the scrape thread while the model learns.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import platform
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from encoder_server.client.triton_client import RequestOutcome
from schemas.metric_names import (
    BUILD_INFO,
    LABEL_KINDS,
    TRITON_FAILURES,
    TRITON_REQUEST_SECONDS,
    WORKER_DEAD_LETTERS,
    WORKER_LABELS,
    WORKER_MESSAGES,
    WORKER_MODEL,
    MetricName,
)

if TYPE_CHECKING:  # the API reads these families without loading the join
    from streams.join.agent import JoinCounts

__all__ = [
    "TRITON_BUCKETS",
    "Metric",
    "TritonMetrics",
    "WorkerTelemetry",
    "counter_family",
    "gauge_family",
    "model_families",
    "process_metrics",
]

log = logging.getLogger(__name__)

#: seconds: a batched infer takes milliseconds on a GPU, a deadline is seconds
TRITON_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: what collectors here yield
Metric = GaugeMetricFamily | CounterMetricFamily


def process_metrics(registry: CollectorRegistry, role: str) -> None:
    """Register ``bertctr_build_info`` and the standard ``process_*`` metrics on ``registry``."""
    info = Gauge(BUILD_INFO.name, BUILD_INFO.help, BUILD_INFO.labels, registry=registry)
    info.labels(_version(), platform.python_version(), role).set(1)
    ProcessCollector(registry=registry)


def _version() -> str:
    try:
        return importlib.metadata.version("bertctr")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def gauge_family(
    metric: MetricName, rows: Iterable[tuple[tuple[str, ...], float]]
) -> GaugeMetricFamily:
    """A gauge family of ``metric`` with one sample per ``(label values, value)``."""
    family = GaugeMetricFamily(metric.name, metric.help, labels=list(metric.labels))
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def counter_family(
    metric: MetricName, rows: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily:
    """A counter family of ``metric`` with one sample per ``(label values, value)``."""
    family = CounterMetricFamily(metric.name, metric.help, labels=list(metric.labels))
    for labels, value in rows:
        family.add_metric(list(labels), value)
    return family


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def model_families(
    snapshot: Mapping[str, Any] | None, names: Mapping[str, MetricName]
) -> list[GaugeMetricFamily]:
    """One gauge per figure of a learner's metrics snapshot (an undefined figure: no sample)."""
    out = []
    for key, metric in names.items():
        value = _number((snapshot or {}).get(key))
        out.append(gauge_family(metric, [((), value)] if value is not None else []))
    return out


class TritonMetrics:
    """A :class:`~encoder_server.client.triton_client.RequestObserver` that feeds Prometheus.

    Latency of every request sent (retries included), and every failure by
    reason; a request the breaker refused is a failure without a latency.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            TRITON_REQUEST_SECONDS.name,
            TRITON_REQUEST_SECONDS.help,
            TRITON_REQUEST_SECONDS.labels,
            registry=registry,
            buckets=TRITON_BUCKETS,
        )
        self.failures = Counter(
            TRITON_FAILURES.name, TRITON_FAILURES.help, TRITON_FAILURES.labels, registry=registry
        )

    def __call__(self, outcome: RequestOutcome) -> None:
        if outcome.seconds is not None:
            self.seconds.labels(outcome.model, outcome.call).observe(outcome.seconds)
        if outcome.failure is not None:
            self.failures.labels(outcome.model, outcome.call, outcome.failure).inc()


class WorkerTelemetry(Collector):
    """One worker's metrics (``bertctr_worker_*`` and its Triton client's).

    Parameters
    ----------
    join
        The join's counts (labels by kind are read from them at scrape time).
    dead_letters
        Every dead letter of the worker by reason (the join's and the others').
    """

    def __init__(
        self,
        join: JoinCounts,
        dead_letters: Callable[[], Mapping[str, int]],
        role: str = "all",
    ) -> None:
        self.join = join
        self.dead_letters = dead_letters
        self.registry = CollectorRegistry()
        self.triton = TritonMetrics(self.registry)
        process_metrics(self.registry, role)
        #: (agent, topic) -> messages handled
        self.messages: dict[tuple[str, str], int] = {}
        #: the learner's last metrics snapshot (copied on the event loop)
        self.model: dict[str, Any] | None = None
        self.registry.register(self)

    def handled(self, agent: str, events: Iterable[Any]) -> None:
        """``agent`` handled a batch of ``events`` (Faust events: ``.message.topic``)."""
        per_topic: dict[str, int] = {}
        for event in events:
            topic = event.message.topic
            per_topic[topic] = per_topic.get(topic, 0) + 1
        for topic, n in per_topic.items():
            key = (agent, topic)
            self.messages[key] = self.messages.get(key, 0) + n

    def observe_model(self, snapshot: Mapping[str, Any]) -> None:
        """Keep the learner's metrics for the next scrape (call it on the event loop)."""
        self.model = dict(snapshot)

    def collect(self) -> Iterator[Metric]:
        # runs on the scrape thread: copy each dictionary before walking it
        messages = dict(self.messages)
        yield counter_family(
            WORKER_MESSAGES, ((labels, n) for labels, n in sorted(messages.items()))
        )
        dead = dict(self.dead_letters())
        yield counter_family(WORKER_DEAD_LETTERS, (((r,), n) for r, n in sorted(dead.items())))
        counts = self.join
        by_kind = {"positive": counts.positive, "negative": counts.negative, "late": counts.late}
        yield counter_family(WORKER_LABELS, (((k,), by_kind[k]) for k in LABEL_KINDS))
        yield from model_families(self.model, WORKER_MODEL)

    def exposition(self) -> bytes:
        """The text a scrape gets (for tests and logs)."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> tuple[WSGIServer, threading.Thread]:
        """Serve ``GET /metrics`` on ``addr:port`` from a daemon thread (port 0: any free one)."""
        server, thread = start_http_server(port, addr, registry=self.registry)
        log.info("worker metrics on http://%s:%d/metrics", addr, server.server_port)
        return server, thread
