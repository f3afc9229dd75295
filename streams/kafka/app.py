"""The Faust application that hosts a worker's tasks and timers.

Built by a function, never at import time, so a process can hold its own
settings and tests can build apps against their own broker. It consumes no
topic itself: the join and the counters read theirs through
:class:`~streams.kafka.group_feed.GroupFeed` and the learner through its own
consumer, and the worker's own producer is :class:`~streams.kafka.emitter.Emitter`;
Faust runs them, the timers and the process's lifecycle.

So Faust starts no Kafka client of its own (:class:`TasksOnly`). Its consumer
would join a consumer group (the app id's, for its leader topic) before the
worker counted anything: a fresh group's first join waits out the broker's
join delay (Tansu: half the session timeout, 15 s by default), and only
then did Faust start the tasks whose feeds pay that delay again for their
own groups. Without it the feeds start at once, and a worker counts within
one join delay of starting (``worker_ready_s`` in ``bench/bench_pipeline.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.app.base import BootStrategy

from schemas.settings import Settings
from wiring.connections import kafka_ssl_context

__all__ = ["StreamApp", "TasksOnly", "create_app", "faust_credentials"]


class TasksOnly(BootStrategy):
    """Faust's boot strategy for an app that only hosts tasks and timers: no Kafka clients.

    Faust's own consumer, leader assignor, table manager and producer are
    left out; its documented way to do so is a ``BootStrategy`` subclass.
    """

    enable_kafka = False


@dataclass
class StreamApp:
    """The Faust app and the settings it was built from."""

    app: faust.App
    settings: Settings


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's ``broker_credentials`` for the settings (``None``: plaintext)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kafka_ssl_context(settings))
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        ssl_context=kafka_ssl_context(settings) if protocol == "SASL_SSL" else None,
        mechanism=settings.kafka_sasl_mechanism,
    )


def create_app(settings: Settings) -> StreamApp:
    """A Faust app for ``settings``; tasks and timers are attached by :mod:`streams.agents`.

    Each role has its own app id, so a dedicated learner's app is never
    mistaken for the join's. The app starts no Kafka client (:class:`TasksOnly`):
    no consumer group is joined for an app that consumes nothing.
    """
    if not settings.kafka_bootstrap:
        raise ValueError("BERTCTR_KAFKA_BOOTSTRAP must be set for a worker")
    joins = settings.worker_role != "learner"
    # The broker_*, consumer_*, producer_*, topic_* and table_* settings below are
    # inert while TasksOnly keeps Faust's Kafka clients off. They are kept: Faust
    # still builds (never starts) its consumer from them, and they are what a
    # Faust topic or table would need if one is ever added (with Kafka back on).
    app = faust.App(
        settings.app_id if joins else f"{settings.app_id}-learner",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        broker_max_poll_records=settings.max_poll_records,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        stream_wait_empty=False,
        broker_credentials=faust_credentials(settings),
    )
    app.boot_strategy = TasksOnly(app)
    return StreamApp(app=app, settings=settings)
