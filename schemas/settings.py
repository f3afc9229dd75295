"""Settings from the environment (prefix ``BERTCTR_``), via pydantic-settings.

One object, built once per process, passed down explicitly: nothing reads the
environment at import time, so tests can run several configurations side by
side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_of"]


class Settings(BaseSettings):
    """Every knob of a bertctr process. Field ``x`` is ``BERTCTR_X`` in the env."""

    model_config = SettingsConfigDict(env_prefix="BERTCTR_", extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port of the Kafka broker; unset means start an embedded Tansu broker.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client connects: TLS (SSL), SASL, or both (SASL_SSL).",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="Never logged or printed (shown as '**********')."
    )
    kafka_ssl_cafile: str | None = Field(
        default=None, description="CA bundle to verify the brokers (default: the system's)."
    )
    kafka_ssl_certfile: str | None = Field(default=None, description="Client certificate (mTLS).")
    kafka_ssl_keyfile: str | None = Field(default=None, description="Client key (mTLS).")
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_username: str | None = Field(
        default=None, description="Redis ACL user (AUTH user password); default: 'default'."
    )
    redis_password: SecretStr | None = Field(
        default=None,
        description="Redis AUTH password (requirepass or ACL); overrides one in the URL. "
        "Never logged or printed.",
    )
    redis_ssl_ca_certs: str | None = Field(
        default=None, description="CA bundle for a rediss:// (TLS) URL (default: the system's)."
    )
    redis_ssl_certfile: str | None = Field(default=None, description="Client certificate (mTLS).")
    redis_ssl_keyfile: str | None = Field(default=None, description="Client key (mTLS).")
    redis_prefix: str = "bertctr:"
    topic_prefix: str = ""
    partitions: int = Field(default=4, ge=1, le=1024)
    app_id: str = "bertctr"

    attribution_window_s: float = Field(default=1800.0, gt=0)
    max_lateness_s: float = Field(
        default=60.0,
        ge=0,
        description="How far event time may run behind the newest event of an input "
        "(impressions or clicks) of a partition before an impression is judged expired "
        "(bounded out-of-orderness).",
    )
    orphan_grace_s: float | None = Field(
        default=None,
        description="How long a click waits for its impression; defaults to the window.",
    )
    late_click_horizon_s: float = Field(
        default=86_400.0,
        gt=0,
        description="How long a labelled impression is remembered for duplicates and late clicks.",
    )
    idle_after_s: float = Field(
        default=2.0,
        ge=0,
        description="Wall seconds without events before an input (impressions or clicks) "
        "of a partition, read to its end, is idle.",
    )
    idle_clock_rate: float = Field(
        default=1.0,
        gt=0,
        description="Event seconds the clock of an idle input advances per wall "
        "second. 1.0 in production; replays of simulated time set it higher.",
    )
    tick_interval_s: float = Field(default=1.0, gt=0)
    max_future_skew_s: float = Field(
        default=300.0,
        ge=0,
        description="How far an event's time may be ahead of the worker's wall clock; "
        "anything further is dead-lettered as future_timestamp and never moves the "
        "watermark. Replays of simulated time raise it.",
    )

    replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of every topic bertctr creates (bertctr topics create, and "
        "the join table's changelog): 1 for one broker, 3 on a production cluster (with "
        "the brokers' min.insync.replicas=2, and acks=all, which the workers use).",
    )
    session_timeout_s: float = Field(default=30.0, gt=0)
    max_poll_records: int = Field(default=500, ge=1)
    web_port: int = Field(default=0, ge=0, description="Faust web port; 0 picks a free one.")
    data_dir: str = Field(default="var/worker", description="Faust table data directory.")

    model: str = Field(default="default", description="Online model variant to learn.")
    content_cross_fields: str = Field(
        default="auto",
        pattern=r"^(auto|[^,=]*(=ids)?(,[^,=]*(=ids)?)*)$",
        description="Segment fields crossed with content (item and variant ids, title "
        "tokens, image embedding) in a new model: 'auto' (every field beyond device and "
        "geo while it has 2 to content_cross_max_values distinct values), or "
        "comma-separated names, 'name=ids' for the ids only ('device=ids,taste' is the "
        "spec before auto). A resumed checkpoint keeps the crosses it learned with.",
    )
    content_cross_max_values: int = Field(
        default=50,
        ge=2,
        description="Under content_cross_fields=auto, a segment field that shows more "
        "distinct values than this is never crossed with content again.",
    )
    checkpoint_dir: str = "var/checkpoints"
    checkpoint_interval_s: float = Field(default=30.0, gt=0)
    checkpoint_idle_s: float = Field(
        default=2.0,
        gt=0,
        description="Wall seconds without labelled examples before the learner checkpoints "
        "(and metrics are published) whatever the interval.",
    )
    checkpoint_key: str = Field(
        default="bertctr-dev-checkpoint-key",
        description="HMAC key checkpoints are signed with; set a secret one in production.",
    )
    metrics_interval_s: float = Field(default=1.0, gt=0)
    learner_flush_idle_s: float = Field(
        default=600.0,
        gt=0,
        description="Wall seconds without any watermark progress before the learner "
        "learns its reorder buffer anyway; those examples are learned but not scored "
        "(model.unscored), so progressive metrics stay honest.",
    )
    quality_window: int = Field(
        default=20000,
        ge=100,
        description="Per-audience quality: the newest this many scored examples (a sliding "
        "window by example count) are judged per segment field value.",
    )
    quality_min_impressions: int = Field(
        default=500,
        ge=1,
        description="A segment field value is judged (may be flagged) only with at least this "
        "many impressions in the quality window.",
    )
    quality_min_clicks: int = Field(
        default=10,
        ge=1,
        description="... and at least this many clicks in the window.",
    )
    quality_calibration_low: float = Field(
        default=0.8,
        gt=0,
        description="Flag a segment value whose calibration (predicted / observed clicks) "
        "falls below this.",
    )
    quality_calibration_high: float = Field(
        default=1.25,
        gt=0,
        description="Flag a segment value whose calibration rises above this.",
    )
    quality_ne_margin: float = Field(
        default=0.05,
        ge=0,
        description="Flag a segment value whose NE exceeds the whole model's NE (same "
        "window) by more than this.",
    )
    quality_max_values: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Values tracked per segment field; further ones share __other__ (bounds "
        "memory and the /metrics label cardinality).",
    )
    health_interval_s: float = Field(
        default=5.0, gt=0, description="How often a worker writes its health report."
    )
    health_max_stall_s: float = Field(
        default=60.0,
        gt=0,
        description="A partition whose messages wait this long without progress makes "
        "its worker unhealthy (bertctr health).",
    )
    worker_id: str | None = Field(
        default=None,
        description="Name of this worker in health reports; defaults to <hostname>-<pid>.",
    )
    worker_role: Literal["all", "join", "learner"] = Field(
        default="all",
        description="What a worker runs: 'all' (join and counters on its share of the "
        "partitions, and a bid for the learner lease), 'join' (join and counters only), "
        "'learner' (only the bid: a dedicated learner or its standby).",
    )
    learner_lease_s: float = Field(
        default=15.0,
        gt=0,
        description="The learner lease in Redis: one worker holds it and learns every "
        "labelled partition into the one model; it renews every third of this, and a "
        "standby takes over this long after the holder stops renewing.",
    )

    triton_url: str | None = Field(
        default=None,
        description="host:port of Triton's gRPC endpoint serving image_encoder and "
        "text_encoder; unset means the learner learns without embeddings.",
    )
    triton_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of one infer call.")
    triton_retries: int = Field(default=3, ge=0, description="Retries of a failed infer call.")
    triton_backoff_s: float = Field(default=0.2, gt=0, description="First retry delay (doubles).")
    triton_max_batch: int = Field(default=32, ge=1, description="Items per infer request.")
    triton_batch_window_ms: float = Field(
        default=5.0, ge=0, description="How long the client gathers concurrent requests."
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failed calls that open the circuit breaker."
    )
    breaker_reset_s: float = Field(
        default=5.0, gt=0, description="How long an open breaker waits before one trial call."
    )
    embedding_retry_max_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between retries while Triton is unavailable; examples "
        "wait (the stream is paused, Kafka keeps them) and are never learned without.",
    )
    promotion_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Error rate of the champion/challenger comparison of encoder versions "
        "(always valid: it holds however often the comparison is checked).",
    )
    promotion_margin: float = Field(
        default=0.0,
        ge=0,
        description="Log-loss advantage per example (nats) a challenger must significantly "
        "exceed to be promoted.",
    )
    promotion_clip: float = Field(
        default=1.0,
        gt=0,
        description="Paired log-loss differences are clipped to +-this many nats before the "
        "comparison counts them: the interval's width has a term proportional to it, and "
        "two CTR models that differ only in their encoder rarely differ by more than a "
        "fraction of a nat on one example (clipped ones are counted in `clipped`).",
    )
    promotion_min_examples: int = Field(
        default=500, ge=0, description="Paired examples before any promotion decision."
    )
    promotion_max_examples: int = Field(
        default=200_000,
        ge=1,
        description="Paired examples after which an undecided challenger is retired.",
    )
    encoder_repository: str = Field(
        default="var/encoders",
        description="Encoder version repository: bertctr finetune publishes heads here, "
        "bertctr encoder serve --repository serves them.",
    )
    finetune_min_clicks: int = Field(
        default=200,
        ge=1,
        description="Fewest clicks in the training window for bertctr finetune to train.",
    )
    api_host: str = Field(default="127.0.0.1", description="Address bertctr api listens on.")
    api_port: int = Field(default=8080, ge=0, le=65535, description="Port of bertctr api.")
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes bertctr api serves with (uvicorn workers sharing the port); each "
        "loads its own copy of the model.",
    )
    api_model_poll_s: float = Field(
        default=5.0,
        gt=0,
        description="How often bertctr api looks for a newer model snapshot to serve.",
    )
    api_max_candidates: int = Field(
        default=1000, ge=1, description="Most candidates one POST /score may rank."
    )
    metrics_max_series: int = Field(
        default=20,
        ge=0,
        description="bertctr api's /metrics: CTR counters of at most this many segments and "
        "variant names (those with the most impressions).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port a worker serves Prometheus metrics on (GET /metrics); unset: none.",
    )
    image_dir: str | None = Field(
        default=None, description="Local image store: <image_id>.png|jpg|jpeg|webp files."
    )
    image_url_prefixes: str = Field(
        default="",
        description="Comma-separated http(s) URL prefixes image_url may start with; "
        "an image_url outside them is refused.",
    )
    image_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    image_fetch_timeout_s: float = Field(default=5.0, gt=0)
    clip_path: str | None = Field(
        default=None,
        description="Local CLIP checkpoint (transformers format); switches both encoders to it.",
    )
    clip_tag_labels: str = Field(
        default="shoe,bag,lamp,mug,chair,dress,shirt,watch,phone,car,food,furniture,toy,book,"
        "jewellery,cosmetics,text banner,person,animal,landscape",
        description="Comma-separated labels the image describer scores zero-shot when a CLIP "
        "checkpoint is configured (BERTCTR_CLIP_PATH); they replace the ImageNet object tags.",
    )
    tag_top_k: int = Field(
        default=5, ge=1, le=50, description="Tags the image describer keeps per image, best first."
    )

    @model_validator(mode="after")
    def _margin_inside_clip(self) -> Settings:
        """A margin the clipped differences can never exceed would never promote anything."""
        if self.promotion_margin >= self.promotion_clip:
            raise ValueError(
                f"promotion_margin ({self.promotion_margin}) must be below "
                f"promotion_clip ({self.promotion_clip}): clipped differences never exceed it"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings a process started with environment ``env`` reads.

        For a parent that builds a child's environment (the demo, the
        harness) and must agree with the child on every setting.
        """
        prefix = "BERTCTR_"
        given = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
        return cls.model_validate(given)

    @property
    def effective_orphan_grace_s(self) -> float:
        return self.orphan_grace_s if self.orphan_grace_s is not None else self.attribution_window_s

    @property
    def url_prefixes(self) -> tuple[str, ...]:
        """The allow-listed image URL prefixes, parsed."""
        return tuple(p.strip() for p in self.image_url_prefixes.split(",") if p.strip())

    def topic(self, name: str) -> str:
        """Full topic name, with the configured prefix."""
        from schemas.topics import full_name

        return full_name(self.topic_prefix, name)


def default_of(name: str) -> Any:
    """The default of setting ``name``: for pure code that mirrors a setting
    (the join's :class:`~streams.join.clock.JoinConfig`) without repeating its value."""
    return Settings.model_fields[name].default
