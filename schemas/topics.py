"""Topic names in one place: producers, agents, the harness and tests all use these.

A topic's name on the broker is ``BERTCTR_TOPIC_PREFIX`` + its logical name
(:func:`full_name`); nothing else builds one.
"""

from __future__ import annotations

__all__ = [
    "ALL_TOPICS",
    "CLICKS",
    "DEAD_LETTER",
    "ENCODER_VERSIONS",
    "IMPRESSIONS",
    "JOIN_STATE",
    "JOIN_TICKS",
    "LABELLED",
    "full_name",
    "full_names",
    "join_changelog",
]

IMPRESSIONS = "impressions"
CLICKS = "clicks"
LABELLED = "labelled"
DEAD_LETTER = "dead-letter"
#: Internal: one tick per partition per interval, so an idle partition's
#: watermark still advances and expiries are written in agent context.
JOIN_TICKS = "join-ticks"
#: Control: new encoder versions, announced by ``bertctr finetune`` (read by every worker).
ENCODER_VERSIONS = "encoder-versions"
#: The join's state; its changelog topic is :func:`join_changelog` (the name
#: Faust gave it when the join ran as a Faust table, so old state carries over).
JOIN_STATE = "join-state"

#: Topics that must exist, with the configured partition count, before any
#: worker starts (Tansu would auto-create them with its own default count).
ALL_TOPICS = (IMPRESSIONS, CLICKS, LABELLED, DEAD_LETTER, JOIN_TICKS, ENCODER_VERSIONS)


def full_name(prefix: str, name: str) -> str:
    """The broker's name of logical topic ``name`` under ``prefix``."""
    return f"{prefix}{name}"


def full_names(prefix: str) -> dict[str, str]:
    """Logical topic name -> name on the broker, under ``prefix``."""
    return {name: full_name(prefix, name) for name in ALL_TOPICS}


def join_changelog(app_id: str, prefix: str) -> str:
    """The join state's changelog topic: one partition per join partition, compacted."""
    return f"{app_id}-{full_name(prefix, JOIN_STATE)}-changelog"
