"""What ``GET /items/{item_id}`` gathers: one item's variants, counts, verdicts, descriptions.

The counters are read as :mod:`api.ab_view` reads them (``idx:variants``,
``idx:media``, the ``ivs:<item>:<variant>:<segment>`` cells). A/B verdicts
are per **segment group** (``taste=t2``, ``device=mobile``, ``all``: each
segment's cells added up to every group it belongs to), because a team
shows a variant to an audience, not to one of 48 segment keys, and a group
has the traffic to decide. Tags and measured attributes come from the image
describer's cache (:func:`encoder_server.client.describer.read_descriptions`)
under the served image encoder's cache tag, through a small port so the
route never needs Triton itself to answer: without an encoder, or for an
image not described yet, they are null and the response says why.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.ab_view import ALL, read_item
from api.state import ApiState
from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.describer import read_descriptions
from encoder_server.client.errors import EncoderUnavailable
from encoder_server.description import Description
from online_ctr.ab import Arm, DecisionRule, Prior
from online_ctr.ab.decision import Verdict, decide
from online_ctr.insights import Drivers, group_fields, segment_groups
from schemas.keys import KeySpace, View

__all__ = [
    "NO_ENCODER",
    "CachedDescriptions",
    "DescriptionSource",
    "DriverMemo",
    "group_verdicts",
    "item_known",
]

log = logging.getLogger(__name__)

#: why tags and attributes are null when the API has no image encoder to name the cache tag
NO_ENCODER = (
    "no image encoder configured (BERTCTR_TRITON_URL unset): tags and attributes are read "
    "from the image describer's cache under the served encoder's version"
)
#: segment groups judged per item at most (the busiest; ``all`` always)
MAX_GROUPS = 30


class DescriptionSource(Protocol):
    """Where ``/items`` finds images' tags and attributes (the describer's cache)."""

    async def descriptions(
        self, image_ids: Sequence[str]
    ) -> tuple[Mapping[str, Description], str | None]:
        """(the known descriptions, why none can be had at all or None)."""
        ...


class CachedDescriptions:
    """The describer's Redis cache, under the cache tags ``tags()`` names, first found wins.

    ``tags()`` returns (tags to try in order, why there are none or None).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        tags: Callable[[], Awaitable[tuple[list[str], str | None]]],
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.tags = tags

    @classmethod
    def of_state(cls, state: ApiState) -> CachedDescriptions:
        """The API's own: the tags ``/explain`` reads (:mod:`api.attribute_source`).

        The champion's image encoder version, then the base ``image_encoder``
        (a promoted head has no describer of its own; tags and attributes come
        from the backbone and the pixels, which a new head does not change).
        """
        embedder = state.embedder
        current = state.watcher.current
        champion = current.image_model if current is not None else IMAGE_ENCODER

        async def tags() -> tuple[list[str], str | None]:
            if embedder is None:
                return [], NO_ENCODER
            found: list[str] = []
            failure = None
            for model in dict.fromkeys([champion, IMAGE_ENCODER]):
                try:
                    found.append(await embedder.cache_tag(model))
                except EncoderUnavailable as exc:
                    failure = f"image encoder unavailable: {exc}"
            return found, None if found else failure

        return cls(state.redis, state.settings.redis_prefix, tags)

    async def descriptions(
        self, image_ids: Sequence[str]
    ) -> tuple[Mapping[str, Description], str | None]:
        tags, reason = await self.tags()
        if not tags:
            return {}, reason
        found: dict[str, Description] = {}
        for tag in tags:
            rest = [i for i in image_ids if i not in found]
            if not rest:
                break
            try:
                found.update(await read_descriptions(self.redis, rest, tag, prefix=self.prefix))
            except (RedisError, OSError) as exc:
                log.warning("description cache unreadable: %s", exc)
                return {}, f"description cache unreadable: {exc}"
        if found or not image_ids:
            return found, None
        return found, f"not described yet (encoder {', '.join(tags)})"


async def item_known(client: aioredis.Redis, keys: KeySpace, item_id: str) -> bool:
    """Whether the counters ever saw ``item_id`` (it has variants or is indexed)."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.sismember(keys.items_index, item_id)
        pipe.scard(keys.variants_index(item_id))
        indexed, variants = await pipe.execute()
    return bool(indexed) or int(variants) > 0


def _by_group(by_segment: Mapping[str, list[Arm]]) -> dict[str, list[Arm]]:
    """Each segment's arms added up to every segment group it belongs to (``all`` too)."""
    totals: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for segment, arms in by_segment.items():
        fields = group_fields(segment) if segment != ALL else None
        if not fields:
            continue
        for group in segment_groups(fields):
            for arm in arms:
                cell = totals[group][arm.name]
                cell[0] += arm.impressions
                cell[1] += arm.clicks
    return {g: [Arm(n, i, c) for n, (i, c) in sorted(v.items())] for g, v in totals.items()}


async def group_verdicts(
    client: aioredis.Redis,
    keys: KeySpace,
    item_id: str,
    control: str | None,
    rule: DecisionRule,
    adaptive: bool = False,
    max_groups: int = MAX_GROUPS,
) -> list[Verdict]:
    """The item's A/B verdict (settled counts) for ``all`` and its busiest segment groups.

    Priors as ``GET /ab``: the item's pooled prior for ``all``, each group's
    pooled CTR smoothed towards it. With a fixed split the sample ratio is
    checked in every group (random assignment splits each audience alike);
    ``adaptive`` (a bandit chose the variants) judges each against its own
    observed split, as ``GET /ab?allocation=adaptive`` does.
    """
    cells = await read_item(client, keys, item_id, "settled", None, 1_000_000)
    groups = _by_group(cells.by_segment)
    groups[ALL] = cells.overall
    ranked = sorted(
        (g for g in groups if g != ALL and sum(a.impressions for a in groups[g]) > 0),
        key=lambda g: (-sum(a.impressions for a in groups[g]), g),
    )
    item_prior = rule.pooled_prior(cells.overall, source="item pooled")
    out = []
    for group in [ALL, *ranked[: max_groups - 1]]:
        arms = groups[group]
        if not arms:
            continue
        prior: Prior = (
            item_prior
            if group == ALL
            else rule.pooled_prior(arms, parent=item_prior, source="segment pooled")
        )
        shares = _observed(arms) if adaptive else None
        out.append(
            decide(arms, rule, segment=group, control=control, prior=prior, expected_shares=shares)
        )
    return out


def _observed(arms: list[Arm]) -> list[float]:
    total = sum(a.impressions for a in arms) or 1
    return [max(a.impressions, 1e-9) / total for a in arms]


@dataclass
class DriverMemo:
    """The last drivers estimate per (view, q), reused for ``ttl_s``: one fit serves many items."""

    ttl_s: float = 30.0

    def __post_init__(self) -> None:
        self._kept: dict[tuple[View, float], tuple[float, Drivers]] = {}

    def get(self, view: View, q: float) -> Drivers | None:
        kept = self._kept.get((view, q))
        if kept is None or time.monotonic() - kept[0] > self.ttl_s:
            return None
        return kept[1]

    def put(self, view: View, q: float, drivers: Drivers) -> None:
        self._kept[(view, q)] = (time.monotonic(), drivers)
