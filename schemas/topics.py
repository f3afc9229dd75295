"""Topic names in one place: producers, agents and tests all use these."""

from __future__ import annotations

from schemas.settings import Settings

IMPRESSIONS = "impressions"
CLICKS = "clicks"
LABELLED = "labelled"
DEAD_LETTER = "dead-letter"
#: Internal: one tick per partition per interval, so an idle partition's
#: watermark still advances and expiries are written in agent context.
JOIN_TICKS = "join-ticks"

#: Topics that must exist, with the configured partition count, before any
#: worker starts (Tansu would auto-create them with its own default count).
ALL_TOPICS = (IMPRESSIONS, CLICKS, LABELLED, DEAD_LETTER, JOIN_TICKS)


def full_names(settings: Settings) -> dict[str, str]:
    """Logical topic name -> name on the broker (with ``BERTCTR_TOPIC_PREFIX``)."""
    return {name: settings.topic(name) for name in ALL_TOPICS}
