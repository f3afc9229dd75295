"""Redis key layout of the live counters (documented in the README).

Pure string building, no Redis import, so dashboards' expectations are unit
tested. With prefix ``P`` (``BERTCTR_REDIS_PREFIX``, default ``bertctr:``):

==============================================  ===================================
key                                             what
==============================================  ===================================
``P ctr:total``                                 hash ``impressions``, ``clicks``
``P ctr:item:<item>``                           same, per item
``P ctr:variant:<item>:<variant>``              same, per (item, variant)
``P ctr:segment:<segment>``                     same, per segment key
``P ctr:ivs:<item>:<variant>:<segment>``        same, per (item, variant, segment)
``P ctr:<scope>:m:<minute>``                    same, per minute of impression time
``P idx:items`` / ``P idx:segments``            sets of the ids seen
``P idx:variants:<item>``                       set of an item's variants
``P clock``                                     newest impression time counted
``P seen:<label_id>``                           dedup marker of an applied label
==============================================  ===================================

``<segment>`` is :meth:`schemas.events.Segment.key`, e.g.
``device=mobile,geo=DE,taste=t1``; ``<minute>`` is ``floor(ts / 60)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeySpace:
    """Builds every key under one prefix."""

    prefix: str = "bertctr:"

    def counter(self, scope: str) -> str:
        return f"{self.prefix}ctr:{scope}"

    def minute_bucket(self, scope: str, minute: int) -> str:
        return f"{self.prefix}ctr:{scope}:m:{minute}"

    def seen(self, label_id: str) -> str:
        return f"{self.prefix}seen:{label_id}"

    @property
    def clock(self) -> str:
        return f"{self.prefix}clock"

    @property
    def items_index(self) -> str:
        return f"{self.prefix}idx:items"

    @property
    def segments_index(self) -> str:
        return f"{self.prefix}idx:segments"

    def variants_index(self, item_id: str) -> str:
        return f"{self.prefix}idx:variants:{item_id}"


def scopes(item_id: str, variant: str, segment: str) -> list[str]:
    """The five counter scopes one labelled impression increments."""
    return [
        "total",
        f"item:{item_id}",
        f"variant:{item_id}:{variant}",
        f"segment:{segment}",
        f"ivs:{item_id}:{variant}:{segment}",
    ]


def minute_of(ts: float) -> int:
    """The minute bucket of an epoch time."""
    return int(ts // 60)
