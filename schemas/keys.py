"""Redis key layout of the live counters (documented in the README).

Pure string building, no Redis import, so dashboards' expectations are unit
tested. Two views of the same counters are kept, with prefix ``P``
(``BERTCTR_REDIS_PREFIX``, default ``bertctr:``) and ``V`` the view's root:

* the **live** view (``V`` = ``ctr``), what dashboards read: an impression
  counts when the join accepts it, a click when it first attaches to its
  impression, both in the minute of the impression's time;
* the **settled** view (``V`` = ``settled``): counted from the labels, so an
  unclicked impression counts only once its attribution window has closed.
  It is what the model learns from; the two agree once every window closed.

==============================================  ===================================
key                                             what
==============================================  ===================================
``P V:total``                                   hash ``impressions``, ``clicks``
``P V:item:<item>``                             same, per item
``P V:variant:<item>:<variant>``                same, per (item, variant)
``P V:segment:<segment>``                       same, per segment key
``P V:ivs:<item>:<variant>:<segment>``          same, per (item, variant, segment)
``P V:<scope>:m:<minute>``                      same, per minute of impression time
``P clock`` / ``P settled:clock``               newest impression time counted
``P idx:items`` / ``P idx:segments``            sets of the ids seen (both views)
``P idx:variants:<item>``                       set of an item's variants
``P idx:media:<item>``                          hash: variant -> its last image (JSON)
``P seen:<label_id>``                           dedup marker of an applied label
``P seen:live:<impression_id>:<kind>``          dedup marker of a live count
``P health:<worker>``                           a worker's health report (JSON)
``P workers``                                   sorted set: worker ids by last report time
``P model:metrics``                             the model's progressive metrics (JSON)
``P model:history``                             list: the metrics over time, oldest first
``P learner:lease``                             the learner lease: its holder's token
``P learner:epoch``                             counter: one more at every lease taken
``P emb:<model>:<version>:<item>``              a cached embedding (float32 bytes)
``P desc:<model>:<version>:<image>``            what is in an image: tags, attributes (JSON)
``P encoder:status``                            champion, challenger, comparison (JSON)
``P encoder:decisions``                         hash: promotion decisions by kind
``P encoder:finetune``                          the last fine-tuning job (JSON)
==============================================  ===================================

``<segment>`` is :meth:`schemas.events.Segment.key`, e.g.
``device=mobile,geo=DE,taste=t1``; ``<minute>`` is ``floor(ts / 60)``.

``model:history`` holds one compact point (JSON ``{"t", "count", "logloss",
"ne", "auc", "calibration"}``, ``t`` the wall time) at most every
:data:`MODEL_HISTORY_EVERY_S` seconds, trimmed to the newest
:data:`MODEL_HISTORY_LEN` (8 hours): what the live page plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "HEALTH_TTL_S",
    "LIVE",
    "MODEL_HISTORY_EVERY_S",
    "MODEL_HISTORY_LEN",
    "SETTLED",
    "TOTAL_SCOPE",
    "VIEWS",
    "KeySpace",
    "View",
    "item_scope",
    "item_variant_segment_scope",
    "minute_of",
    "scopes",
    "segment_scope",
    "variant_scope",
]

View = Literal["live", "settled"]
LIVE: View = "live"
SETTLED: View = "settled"
VIEWS: tuple[View, ...] = (LIVE, SETTLED)
_ROOT = {LIVE: "ctr", SETTLED: "settled"}
#: wall seconds between two points of ``model:history``
#: how long a health report outlives its worker in Redis
HEALTH_TTL_S = 3600

MODEL_HISTORY_EVERY_S = 10.0
#: points ``model:history`` keeps (8 hours at one per 10 s)
MODEL_HISTORY_LEN = 2880


@dataclass(frozen=True)
class KeySpace:
    """Builds every key under one prefix."""

    prefix: str = "bertctr:"

    def counter(self, scope: str, view: View = LIVE) -> str:
        return f"{self.prefix}{_ROOT[view]}:{scope}"

    def minute_bucket(self, scope: str, minute: int, view: View = LIVE) -> str:
        return f"{self.prefix}{_ROOT[view]}:{scope}:m:{minute}"

    def seen(self, label_id: str) -> str:
        return f"{self.prefix}seen:{label_id}"

    def seen_live(self, impression_id: str, kind: str) -> str:
        return f"{self.prefix}seen:live:{impression_id}:{kind}"

    def view_clock(self, view: View = LIVE) -> str:
        return self.clock if view == LIVE else f"{self.prefix}settled:clock"

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

    def variant_media(self, item_id: str) -> str:
        """Hash of an item's variants to the image and title last shown (JSON).

        Written with the live counters, so ``GET /ab`` can ask the model for
        each variant's predicted CTR without the caller naming its image.
        """
        return f"{self.prefix}idx:media:{item_id}"

    def health(self, worker_id: str) -> str:
        return f"{self.prefix}health:{worker_id}"

    def embedding(self, model: str, version: int | str, item_key: str) -> str:
        """One item's cached embedding (float32 bytes), per model and version."""
        return f"{self.prefix}emb:{model}:{version}:{item_key}"

    def description(self, model: str, version: int | str, image_id: str) -> str:
        """What is in one image (JSON tags and attributes), per image model and version."""
        return f"{self.prefix}desc:{model}:{version}:{image_id}"

    @property
    def model_metrics(self) -> str:
        """The learner's progressive metrics (a JSON string)."""
        return f"{self.prefix}model:metrics"

    @property
    def model_history(self) -> str:
        """List of the model's metrics over time (JSON points, oldest first, bounded)."""
        return f"{self.prefix}model:history"

    @property
    def learner_lease(self) -> str:
        """The one learner's lease: the holder's token, expiring unless renewed."""
        return f"{self.prefix}learner:lease"

    @property
    def learner_epoch(self) -> str:
        """Counts leases taken; a holder's epoch orders it after every earlier one."""
        return f"{self.prefix}learner:epoch"

    @property
    def encoder_status(self) -> str:
        """Champion, challenger and the comparison between them (JSON)."""
        return f"{self.prefix}encoder:status"

    @property
    def encoder_decisions(self) -> str:
        """Hash of promotion decisions by kind (``promote``, ``retire``)."""
        return f"{self.prefix}encoder:decisions"

    @property
    def finetune_state(self) -> str:
        """The last fine-tuning job's window end and version (JSON)."""
        return f"{self.prefix}encoder:finetune"

    @property
    def workers(self) -> str:
        """Sorted set of worker ids, scored by the time of their last health report.

        Readers find the reports through it: a SCAN for ``P health:*`` walks
        the whole keyspace, which took 26 s on a Redis holding 1.3M keys.
        """
        return f"{self.prefix}workers"


#: the scope of every impression
TOTAL_SCOPE = "total"


def item_scope(item_id: str) -> str:
    """The counter scope of one item."""
    return f"item:{item_id}"


def variant_scope(item_id: str, variant: str) -> str:
    """The counter scope of one visual variant of an item."""
    return f"variant:{item_id}:{variant}"


def segment_scope(segment: str) -> str:
    """The counter scope of one segment key."""
    return f"segment:{segment}"


def item_variant_segment_scope(item_id: str, variant: str, segment: str) -> str:
    """The counter scope of one visual variant of an item, in one segment."""
    return f"ivs:{item_id}:{variant}:{segment}"


def scopes(item_id: str, variant: str, segment: str) -> list[str]:
    """The five counter scopes one impression increments."""
    return [
        TOTAL_SCOPE,
        item_scope(item_id),
        variant_scope(item_id, variant),
        segment_scope(segment),
        item_variant_segment_scope(item_id, variant, segment),
    ]


def minute_of(ts: float) -> int:
    """The minute bucket of an epoch time."""
    return int(ts // 60)
