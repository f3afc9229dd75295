"""The Prometheus metrics bertctr exports: names, kinds, labels. A contract with dashboards.

Every metric any process exports is declared here and built from here, so
the Grafana dashboard (``deploy/grafana/dashboards/bertctr.json``), alerts and
the README can be checked against one list. Two sources:

* ``bertctr api`` (``GET /metrics``) exports the **fleet** as Redis shows it,
  read at scrape time: every worker's health report (positions, lag, dead
  letters, labels), the model metrics the learner publishes, the encoder
  duel's status; plus its own request latency and its own Triton client.
* ``bertctr worker`` with ``BERTCTR_METRICS_PORT`` exports what **that
  process** did since it started (``bertctr_worker_*``), its learner's model
  metrics and its own Triton client.

Names from the two sources differ on purpose (``bertctr_dead_letters_total``
is the fleet's from the reports, ``bertctr_worker_dead_letters_total`` one
process's), so a dashboard summing a name never counts a thing twice. The
Triton client's metrics have one name in both: each process reports its own
client, told apart by Prometheus' ``job`` and ``instance`` labels.

Counters are named as exposed (``..._total``); :attr:`MetricName.series` lists
the sample names a query may use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "API_METRICS",
    "API_REQUEST_SECONDS",
    "BUILD_INFO",
    "CLICKS",
    "CONSUMER_LAG",
    "CTR_COUNTERS",
    "DEAD_LETTERS",
    "ENCODER_DECISIONS",
    "ENCODER_VERSION",
    "EVENTS_PROCESSED",
    "IMPRESSIONS",
    "JOIN_EVENTS",
    "LABELS",
    "LABEL_KINDS",
    "MODEL",
    "MODEL_FIGURES",
    "MODEL_UNSCORED",
    "MODEL_UPDATED",
    "PROCESS",
    "REDIS_UP",
    "SEGMENT_CLICKS",
    "SEGMENT_IMPRESSIONS",
    "SEGMENT_QUALITY",
    "SEGMENT_QUALITY_FIGURES",
    "SEGMENT_QUALITY_FLAG",
    "TRITON_FAILURES",
    "TRITON_REQUEST_SECONDS",
    "VARIANT_CLICKS",
    "VARIANT_IMPRESSIONS",
    "WORKERS",
    "WORKER_DEAD_LETTERS",
    "WORKER_LABELS",
    "WORKER_MESSAGES",
    "WORKER_METRICS",
    "WORKER_MODEL",
    "WORKER_REPORT_AGE",
    "MetricKind",
    "MetricName",
]

MetricKind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricName:
    """One exported metric: its name as exposed, kind, label names and help text."""

    name: str
    kind: MetricKind
    labels: tuple[str, ...]
    help: str

    def __post_init__(self) -> None:
        if (self.kind == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")

    @property
    def family(self) -> str:
        """The family name (a counter's without ``_total``), as parsers report it."""
        return self.name.removesuffix("_total") if self.kind == "counter" else self.name

    @property
    def series(self) -> tuple[str, ...]:
        """The sample names a query may use."""
        if self.kind == "histogram":
            return tuple(f"{self.name}{s}" for s in ("_bucket", "_sum", "_count"))
        return (self.name,)


# --- the fleet, from Redis (bertctr api) ------------------------------------------

WORKERS = MetricName(
    "bertctr_workers",
    "gauge",
    ("state",),
    "Workers with a health report, by state (healthy, unhealthy) as bertctr health judges them.",
)
WORKER_REPORT_AGE = MetricName(
    "bertctr_worker_report_age_seconds",
    "gauge",
    ("worker",),
    "Age of each worker's last health report.",
)
EVENTS_PROCESSED = MetricName(
    "bertctr_events_processed_total",
    "counter",
    ("topic",),
    "Messages of each topic consumed by the fleet: the sum over partitions of the next offset "
    "to handle (the furthest agent's); rate() is messages per second.",
)
CONSUMER_LAG = MetricName(
    "bertctr_consumer_lag",
    "gauge",
    ("agent", "topic", "partition"),
    "Messages waiting in each partition for each agent (high watermark - next offset).",
)
DEAD_LETTERS = MetricName(
    "bertctr_dead_letters_total",
    "counter",
    ("worker", "reason"),
    "Messages each worker dead-lettered since it started, by reason.",
)
LABELS = MetricName(
    "bertctr_labels_total",
    "counter",
    ("worker", "kind"),
    "Labels each worker's join emitted since it started, by kind (positive, negative, late).",
)
JOIN_EVENTS = MetricName(
    "bertctr_join_events_total",
    "counter",
    ("worker", "kind"),
    "What each worker's join did with its input since it started: impressions and clicks "
    "accepted, duplicates and repeat clicks dropped.",
)
REDIS_UP = MetricName(
    "bertctr_redis_up",
    "gauge",
    (),
    "1 when this scrape could read Redis (the fleet metrics are current), else 0.",
)

#: the learner's metrics snapshot key -> (name suffix, help)
MODEL_FIGURES: dict[str, tuple[str, str]] = {
    "count": ("examples", "Examples scored by the champion before it learned them."),
    "logloss": ("logloss", "Progressive log loss (nats per example)."),
    "ne": ("ne", "Normalised entropy: log loss / entropy of the observed CTR (< 1 beats it)."),
    "auc": ("auc", "Progressive ROC AUC."),
    "calibration": ("calibration", "Mean predicted CTR / observed CTR (1 is calibrated)."),
    "ctr": ("ctr", "Observed CTR of the examples scored."),
}
#: the fleet's model metrics (what the learner last published to Redis), by snapshot key
MODEL: dict[str, MetricName] = {
    key: MetricName(f"bertctr_model_{suffix}", "gauge", (), help_)
    for key, (suffix, help_) in MODEL_FIGURES.items()
}
MODEL_UNSCORED = MetricName(
    "bertctr_model_unscored",
    "gauge",
    (),
    "Examples learned without being scored (the reorder buffer flushed with no watermark).",
)
MODEL_UPDATED = MetricName(
    "bertctr_model_updated_timestamp_seconds",
    "gauge",
    (),
    "When the learner last published its metrics (epoch seconds).",
)
#: the learner's per-audience quality (``quality`` of its metrics): figure key -> (name, help)
SEGMENT_QUALITY_FIGURES: dict[str, tuple[str, str]] = {
    "ne": ("bertctr_segment_ne", "NE of the segment field value over the quality window."),
    "calibration": (
        "bertctr_segment_calibration",
        "Predicted / observed clicks of the segment field value over the quality window.",
    ),
    "auc": ("bertctr_segment_auc", "ROC AUC of the segment field value over the quality window."),
    "share": (
        "bertctr_segment_share",
        "The segment field value's share of the quality window's impressions.",
    ),
}
#: per-segment-value quality gauges, for the values judged (enough data)
SEGMENT_QUALITY: dict[str, MetricName] = {
    key: MetricName(name, "gauge", ("field", "value"), help_)
    for key, (name, help_) in SEGMENT_QUALITY_FIGURES.items()
}
SEGMENT_QUALITY_FLAG = MetricName(
    "bertctr_segment_quality_flag",
    "gauge",
    ("field", "value", "reason"),
    "1 when the segment field value is flagged for the reason (calibration_low, "
    "calibration_high, ne), else 0; for the values judged (enough impressions and clicks).",
)
ENCODER_VERSION = MetricName(
    "bertctr_encoder_version",
    "gauge",
    ("role",),
    "Version of the image encoder the model embeds with (role champion), and of the one "
    "judged in shadow (role challenger, absent when none).",
)
ENCODER_DECISIONS = MetricName(
    "bertctr_encoder_decisions",
    "gauge",
    ("decision",),
    "Encoder decisions in the duel's remembered history, by kind (promote, retire).",
)

# --- the business: CTR counters (bertctr api, from the Redis counters) -------------

IMPRESSIONS = MetricName(
    "bertctr_impressions_total",
    "counter",
    ("view",),
    "Impressions counted (view live: on arrival; settled: from labels).",
)
CLICKS = MetricName(
    "bertctr_clicks_total", "counter", ("view",), "Clicks counted, by view (as impressions)."
)
SEGMENT_IMPRESSIONS = MetricName(
    "bertctr_segment_impressions_total",
    "counter",
    ("view", "segment"),
    "Impressions per segment key, for the segments with the most impressions.",
)
SEGMENT_CLICKS = MetricName(
    "bertctr_segment_clicks_total",
    "counter",
    ("view", "segment"),
    "Clicks per segment key, for the segments with the most impressions.",
)
VARIANT_IMPRESSIONS = MetricName(
    "bertctr_variant_impressions_total",
    "counter",
    ("view", "variant"),
    "Impressions per visual variant name summed over items, for the most shown variants.",
)
VARIANT_CLICKS = MetricName(
    "bertctr_variant_clicks_total",
    "counter",
    ("view", "variant"),
    "Clicks per visual variant name summed over items, for the most shown variants.",
)
#: impressions and clicks, by scope: what a CTR panel divides
CTR_COUNTERS: tuple[MetricName, ...] = (
    IMPRESSIONS,
    CLICKS,
    SEGMENT_IMPRESSIONS,
    SEGMENT_CLICKS,
    VARIANT_IMPRESSIONS,
    VARIANT_CLICKS,
)

# --- every process with an embedder -----------------------------------------------

TRITON_REQUEST_SECONDS = MetricName(
    "bertctr_triton_request_seconds",
    "histogram",
    ("model", "call"),
    "Seconds of each request this process's Triton client sent (retries included), by base "
    "model and call (infer, metadata, config).",
)
TRITON_FAILURES = MetricName(
    "bertctr_triton_failures_total",
    "counter",
    ("model", "call", "reason"),
    "Failed Triton requests of this process's client, by reason (the gRPC status, or "
    "breaker_open when the circuit breaker refused to send).",
)

# --- every process (bertctr api, bertctr worker) ------------------------------------

BUILD_INFO = MetricName(
    "bertctr_build_info",
    "gauge",
    ("version", "python", "role"),
    "Always 1; the labels say which bertctr version and Python run this process, and its "
    "role (api, or the worker's BERTCTR_WORKER_ROLE).",
)
#: the standard process metrics (prometheus_client's ProcessCollector, on Linux)
PROCESS: tuple[MetricName, ...] = (
    MetricName("process_cpu_seconds_total", "counter", (), "CPU seconds this process used."),
    MetricName("process_resident_memory_bytes", "gauge", (), "Resident memory in bytes."),
    MetricName("process_virtual_memory_bytes", "gauge", (), "Virtual memory in bytes."),
    MetricName("process_start_time_seconds", "gauge", (), "Start time, epoch seconds."),
    MetricName("process_open_fds", "gauge", (), "Open file descriptors."),
    MetricName("process_max_fds", "gauge", (), "Maximum open file descriptors."),
)

# --- the API's own -----------------------------------------------------------------

API_REQUEST_SECONDS = MetricName(
    "bertctr_api_request_seconds",
    "histogram",
    ("method", "route", "status"),
    "Seconds to answer each HTTP request, by method, route template and status.",
)

# --- one worker process (bertctr worker, BERTCTR_METRICS_PORT) ---------------------

WORKER_MESSAGES = MetricName(
    "bertctr_worker_messages_total",
    "counter",
    ("agent", "topic"),
    "Messages this worker's agents handled, by agent and topic.",
)
WORKER_DEAD_LETTERS = MetricName(
    "bertctr_worker_dead_letters_total",
    "counter",
    ("reason",),
    "Messages this worker dead-lettered, by reason.",
)
WORKER_LABELS = MetricName(
    "bertctr_worker_labels_total",
    "counter",
    ("kind",),
    "Labels this worker's join emitted, by kind (positive, negative, late).",
)
#: this worker's learner's model metrics, by snapshot key
WORKER_MODEL: dict[str, MetricName] = {
    key: MetricName(f"bertctr_worker_model_{suffix}", "gauge", (), help_)
    for key, (suffix, help_) in MODEL_FIGURES.items()
}

#: the kinds of label (``kind`` of the label metrics)
LABEL_KINDS = ("positive", "negative", "late")

API_METRICS: tuple[MetricName, ...] = (
    WORKERS,
    WORKER_REPORT_AGE,
    EVENTS_PROCESSED,
    CONSUMER_LAG,
    DEAD_LETTERS,
    LABELS,
    JOIN_EVENTS,
    REDIS_UP,
    *MODEL.values(),
    MODEL_UNSCORED,
    MODEL_UPDATED,
    *SEGMENT_QUALITY.values(),
    SEGMENT_QUALITY_FLAG,
    ENCODER_VERSION,
    ENCODER_DECISIONS,
    *CTR_COUNTERS,
    TRITON_REQUEST_SECONDS,
    TRITON_FAILURES,
    API_REQUEST_SECONDS,
    BUILD_INFO,
    *PROCESS,
)
WORKER_METRICS: tuple[MetricName, ...] = (
    WORKER_MESSAGES,
    WORKER_DEAD_LETTERS,
    WORKER_LABELS,
    *WORKER_MODEL.values(),
    TRITON_REQUEST_SECONDS,
    TRITON_FAILURES,
    BUILD_INFO,
    *PROCESS,
)
