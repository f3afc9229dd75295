"""What ``GET /ab/{item_id}`` and its allocator read: per-variant counts of one item, per segment.

The maths is pure (:mod:`online_ctr.ab`); this module gathers its input
from the counters: the item's variants (``idx:variants``), the segments
seen, and the ``ivs:<item>:<variant>:<segment>`` cells. The **settled**
view is the default: an impression counts there only once its attribution
window closed, so a variant shown a lot in the last half hour is not made to
look worse by clicks that have not arrived yet (the live view would).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from online_ctr.ab import Arm
from schemas.events import Segment
from schemas.keys import KeySpace, View

__all__ = ["ItemCells", "VariantMedia", "read_item", "segment_of_key"]


@dataclass(frozen=True)
class VariantMedia:
    """The image and title a variant was last shown with (to ask the model about it)."""

    image_id: str
    title: str
    image_url: str | None


@dataclass(frozen=True)
class ItemCells:
    """One item's arms per segment (:data:`ALL`: every segment together), and its media.

    ``overall`` is every segment together whichever segments were asked for:
    the item's pooled CTR, which every segment's prior borrows from.
    """

    variants: list[str]
    by_segment: dict[str, list[Arm]]
    media: dict[str, VariantMedia]
    overall: list[Arm]


#: the name of every segment together, in responses and as a ``segment`` asked for
ALL = "all"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def segment_of_key(key: str) -> Segment | None:
    """The segment behind a canonical key ``device=mobile,geo=DE``; None if it is not one."""
    try:
        fields = dict(part.split("=", 1) for part in key.split(","))
        return Segment.model_validate(fields)
    except ValueError:
        return None


def _arm(name: str, raw: list[Any]) -> Arm:
    impressions, clicks = (int(v or 0) for v in raw)
    # a click can be counted before its impression settles; never more clicks than shown
    return Arm(name, impressions, min(clicks, impressions))


async def read_item(
    client: aioredis.Redis,
    keys: KeySpace,
    item_id: str,
    view: View,
    segment: str | None,
    max_segments: int,
) -> ItemCells:
    """Counts of ``item_id``'s variants: overall (``"all"``) and per segment.

    Without ``segment``: the ``max_segments`` segments with the most
    impressions of this item; with it, that one only (:data:`ALL`: the overall counts only).
    """
    variants = sorted(_text(v) for v in await client.smembers(keys.variants_index(item_id)))
    if segment == ALL:
        segments: list[str] = []
    elif segment is not None:
        segments = [segment]
    else:
        segments = sorted(_text(s) for s in await client.smembers(keys.segments_index))
    fields = ["impressions", "clicks"]
    async with client.pipeline(transaction=False) as pipe:
        for v in variants:
            pipe.hmget(keys.counter(f"variant:{item_id}:{v}", view), fields)
            for s in segments:
                pipe.hmget(keys.counter(f"ivs:{item_id}:{v}:{s}", view), fields)
        pipe.hgetall(keys.variant_media(item_id))
        raw = await pipe.execute()
    media_raw: dict[Any, Any] = raw.pop()
    per_variant = 1 + len(segments)
    by_segment: dict[str, list[Arm]] = {ALL: []}
    for s in segments:
        by_segment[s] = []
    for i, v in enumerate(variants):
        chunk = raw[i * per_variant : (i + 1) * per_variant]
        by_segment[ALL].append(_arm(v, chunk[0]))
        for s, cell in zip(segments, chunk[1:], strict=True):
            by_segment[s].append(_arm(v, cell))
    shown = [s for s in segments if sum(a.impressions for a in by_segment[s]) > 0]
    shown.sort(key=lambda s: -sum(a.impressions for a in by_segment[s]))
    kept = {ALL: by_segment[ALL]} if segment in (None, ALL) else {}
    for s in shown[:max_segments] if segment is None else segments:
        kept[s] = by_segment[s]
    media = {}
    for name, blob in media_raw.items():
        try:
            m = json.loads(blob)
            media[_text(name)] = VariantMedia(m["image_id"], m.get("title", ""), m.get("image_url"))
        except (ValueError, KeyError, TypeError):
            continue
    return ItemCells(variants, kept, media, by_segment[ALL])
