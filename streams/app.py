"""The Faust application: broker settings, topics and the join table.

Built by a function, never at import time, so a process can hold its own
settings and tests can build apps against their own broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from schemas import topics
from schemas.settings import Settings
from streams.connections import faust_credentials

__all__ = ["StreamApp", "create_app"]


@dataclass
class StreamApp:
    """The Faust app with the topics and table the agents use."""

    app: faust.App
    settings: Settings
    #: impressions + clicks + join-ticks as one co-partitioned source
    join_source: Any
    ticks: Any
    labelled: Any
    dead_letter: Any
    join_table: Any


def create_app(settings: Settings) -> StreamApp:
    """A Faust app for ``settings``; agents are attached by :mod:`streams.agents`.

    A dedicated learner (``BERTCTR_WORKER_ROLE=learner``) gets no join table
    and its own group id: it must never join the join's consumer group, where
    it would be handed join partitions it does not process.
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

    def raw_topic(name: str) -> Any:
        return app.topic(
            settings.topic(name),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    join_table = (
        app.Table(
            topics.full_name(settings.topic_prefix, topics.JOIN_STATE),
            default=None,
            partitions=settings.partitions,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
        )
        if joins
        else None
    )
    return StreamApp(
        app=app,
        settings=settings,
        join_source=app.topic(
            settings.topic(topics.IMPRESSIONS),
            settings.topic(topics.CLICKS),
            settings.topic(topics.JOIN_TICKS),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        ),
        ticks=raw_topic(topics.JOIN_TICKS),
        labelled=raw_topic(topics.LABELLED),
        dead_letter=raw_topic(topics.DEAD_LETTER),
        join_table=join_table,
    )
