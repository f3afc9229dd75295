"""The Faust application that hosts a worker's tasks and timers.

Built by a function, never at import time, so a process can hold its own
settings and tests can build apps against their own broker. It consumes no
topic itself: the join and the counters read theirs through
:class:`~streams.kafka.group_feed.GroupFeed` and the learner through its own
consumer; Faust runs them, the timers and the process's lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from schemas.settings import Settings
from wiring.connections import kafka_ssl_context

__all__ = ["StreamApp", "create_app", "faust_credentials"]


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

    Each role has its own app id (Faust's group id), so a dedicated learner
    never shares a group with the join's workers.
    """
    if not settings.kafka_bootstrap:
        raise ValueError("BERTCTR_KAFKA_BOOTSTRAP must be set for a worker")
    joins = settings.worker_role != "learner"
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
    return StreamApp(app=app, settings=settings)
