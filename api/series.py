"""Time series for the live page: CTR per minute by segment or variant, the model over time.

Read from what the workers already keep in Redis (:mod:`schemas.keys`):

* **CTR per minute** from the minute buckets of the counters
  (``<view>:<scope>:m:<minute>``, kept 2 hours), over the ``minutes`` that
  end at the view's clock (the newest impression time counted: event time,
  so a replay of simulated time plots as it happened). Only the ``limit``
  scopes with the most impressions (all time) get a series, so a page stays
  readable and a request stays cheap however many segments there are;
  ``omitted`` says how many were left out.
* **the model over time** from ``model:history``, the bounded list of
  compact metric points the learner appends (one per 10 s of wall time,
  each with the event time the model had reached, its ``watermark``),
  plus the current metrics document and the encoder's status.
* **the images behind the charts**: each variant's image (``idx:media``,
  the image it was last shown with) beside its series, and the top and
  bottom images of a segment (:func:`read_segment_images`): every
  (item, variant) cell of the :data:`MAX_ITEMS` busiest items, ranked by a
  CTR shrunk towards the segment's own (see :func:`rank_images`), so an
  image is never "best" on two lucky impressions.

Every reader takes an open client and returns plain data; an absent or
unreadable key is "no data yet", never an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis

from schemas.keys import (
    MODEL_HISTORY_LEN,
    SETTLED,
    TOTAL_SCOPE,
    KeySpace,
    View,
    item_scope,
    item_variant_segment_scope,
    minute_of,
    segment_scope,
    variant_scope,
)
from streams.readers import read_json

__all__ = [
    "MAX_CANDIDATES",
    "MAX_IMAGES",
    "MAX_ITEMS",
    "MAX_MINUTES",
    "MAX_SERIES",
    "PRIOR_STRENGTH",
    "CtrSeriesData",
    "ImageCell",
    "ImageRanking",
    "ScopeSeries",
    "model_series",
    "rank_images",
    "read_ctr_series",
    "read_model_series",
    "read_segment_images",
]

#: the longest window (minute buckets live 2 hours)
MAX_MINUTES = 120
#: the most series one response carries
MAX_SERIES = 12
#: the most scopes ranked for one response (a set larger than this is cut, sorted by name)
MAX_CANDIDATES = 5000
#: the most items listed for the page's item selector, and ranked for a segment's images
MAX_ITEMS = 100
#: the most images on each side (top, bottom) of a segment's ranking
MAX_IMAGES = 10
#: pseudo-impressions at the segment's CTR that every image's ranking CTR starts from
PRIOR_STRENGTH = 100.0
#: fields of the metrics document shown as ``latest`` (its per-segment part is left out)
LATEST_FIELDS = (
    "count",
    "logloss",
    "ne",
    "auc",
    "calibration",
    "ctr",
    "model",
    "updated_at",
    "watermark",
    "buffered",
    "unscored",
)

By = Literal["segment", "variant"]


@dataclass
class ScopeSeries:
    """One scope's impressions, clicks and CTR per minute (``ctr`` ``None`` without impressions)."""

    name: str
    impressions: list[int]
    clicks: list[int]
    ctr: list[float | None]
    window_impressions: int
    window_clicks: int
    window_ctr: float | None
    #: ``by=variant``: the image the variant was last shown with (None: unknown, or a segment)
    image_id: str | None = None


@dataclass
class CtrSeriesData:
    """What ``GET /series/ctr`` returns."""

    by: By
    view: View
    item: str | None
    clock: float | None
    minutes: int
    #: start of each minute (epoch seconds), oldest first
    t: list[float] = field(default_factory=list)
    series: list[ScopeSeries] = field(default_factory=list)
    #: all segments together (``by=segment``) or the whole item (``by=variant``)
    total: ScopeSeries | None = None
    omitted: int = 0
    #: ``by=variant``: known items, most impressions first (the page's item selector)
    items: list[dict[str, Any]] = field(default_factory=list)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: bytes | str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _ratio(clicks: int, impressions: int) -> float | None:
    return clicks / impressions if impressions else None


async def _clock(client: aioredis.Redis, keys: KeySpace, view: View) -> float | None:
    raw = await client.get(keys.view_clock(view))
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


async def _totals(
    client: aioredis.Redis, keys: KeySpace, scopes: Sequence[str], view: View
) -> list[tuple[int, int]]:
    """(impressions, clicks) of each scope, all time."""
    if not scopes:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for scope in scopes:
            pipe.hmget(keys.counter(scope, view), ["impressions", "clicks"])
        raw = await pipe.execute()
    return [(_int(imp), _int(clk)) for imp, clk in raw]


async def _ranked(
    client: aioredis.Redis,
    keys: KeySpace,
    names: Sequence[str],
    scope_of: Callable[[str], str],
    view: View,
) -> list[tuple[str, int, int]]:
    """(name, impressions, clicks) of each name's scope, most impressions first."""
    chosen = sorted(names)[:MAX_CANDIDATES]
    totals = await _totals(client, keys, [scope_of(n) for n in chosen], view)
    rows = [(n, imp, clk) for n, (imp, clk) in zip(chosen, totals, strict=True)]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


async def _members(client: aioredis.Redis, key: str) -> list[str]:
    return [_text(m) for m in await client.smembers(key)]


async def _buckets(
    client: aioredis.Redis,
    keys: KeySpace,
    named: Sequence[tuple[str, str]],
    minutes: Sequence[int],
    view: View,
) -> list[ScopeSeries]:
    """Per-minute series of each (name, scope)."""
    if not named or not minutes:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for _, scope in named:
            for minute in minutes:
                pipe.hmget(keys.minute_bucket(scope, minute, view), ["impressions", "clicks"])
        raw = await pipe.execute()
    out = []
    width = len(minutes)
    for i, (name, _) in enumerate(named):
        chunk = raw[i * width : (i + 1) * width]
        imps = [_int(imp) for imp, _ in chunk]
        clks = [_int(clk) for _, clk in chunk]
        window_imps, window_clks = sum(imps), sum(clks)
        out.append(
            ScopeSeries(
                name=name,
                impressions=imps,
                clicks=clks,
                ctr=[_ratio(c, n) for n, c in zip(imps, clks, strict=True)],
                window_impressions=window_imps,
                window_clicks=window_clks,
                window_ctr=_ratio(window_clks, window_imps),
            )
        )
    return out


async def read_ctr_series(
    client: aioredis.Redis,
    keys: KeySpace,
    by: By = "segment",
    item: str | None = None,
    minutes: int = 60,
    limit: int = MAX_SERIES,
    view: str = "live",
) -> CtrSeriesData:
    """Per-minute impressions, clicks and CTR of the top segments, or of one item's variants.

    ``by="variant"`` without ``item`` takes the item with the most
    impressions. ``minutes`` is clipped to 1..:data:`MAX_MINUTES` and
    ``limit`` to 1..:data:`MAX_SERIES`.
    """
    chosen_view: View = SETTLED if view == SETTLED else "live"
    minutes = max(1, min(int(minutes), MAX_MINUTES))
    limit = max(1, min(int(limit), MAX_SERIES))
    data = CtrSeriesData(by=by, view=chosen_view, item=item, clock=None, minutes=minutes)
    if by == "variant":
        ranked_items = await _ranked(
            client, keys, await _members(client, keys.items_index), item_scope, chosen_view
        )
        data.items = [
            {"item_id": name, "impressions": imp, "clicks": clk}
            for name, imp, clk in ranked_items[:MAX_ITEMS]
        ]
        if item is None and ranked_items:
            data.item = ranked_items[0][0]
    data.clock = await _clock(client, keys, chosen_view)
    if data.clock is None:
        return data
    last = minute_of(data.clock)
    window = list(range(last - minutes + 1, last + 1))
    data.t = [float(m * 60) for m in window]
    scope_of: Callable[[str], str]
    if by == "segment":
        names = await _members(client, keys.segments_index)
        scope_of = segment_scope
        total = ("all segments", TOTAL_SCOPE)
    elif data.item is not None:
        item_id = data.item
        names = await _members(client, keys.variants_index(item_id))

        def scope_of(variant: str) -> str:
            return variant_scope(item_id, variant)

        total = (f"item {item_id}", item_scope(item_id))
    else:
        return data
    ranked = await _ranked(client, keys, names, scope_of, chosen_view)
    top = ranked[:limit]
    data.omitted = len(names) - len(top)
    named = [(name, scope_of(name)) for name, _, _ in top]
    series = await _buckets(client, keys, [*named, total], window, chosen_view)
    data.series, data.total = series[:-1], series[-1]
    if by == "variant" and data.item is not None:
        media = _media(await client.hgetall(keys.variant_media(data.item)))
        for s in data.series:
            s.image_id = media.get(s.name, (None, ""))[0]
    return data


def _media(raw: dict[Any, Any]) -> dict[str, tuple[str, str]]:
    """``idx:media`` of an item: variant -> (image id, title); unreadable entries left out."""
    out = {}
    for name, blob in raw.items():
        try:
            doc = json.loads(blob)
            image_id, title = doc["image_id"], doc.get("title", "")
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(image_id, str) and image_id:
            out[_text(name)] = (image_id, title if isinstance(title, str) else "")
    return out


@dataclass
class ImageCell:
    """One (item, variant) in one segment (or all): its image, counts and ranking CTR."""

    item_id: str
    variant: str
    image_id: str | None
    title: str
    impressions: int
    clicks: int
    ctr: float | None
    #: the posterior mean CTR the ranking sorts by (see :func:`rank_images`)
    score: float


@dataclass
class ImageRanking:
    """What ``GET /series/images`` returns: a segment's best and worst images."""

    segment: str | None
    view: View
    min_impressions: int
    prior_strength: float
    #: the CTR of every cell counted together (None: nothing counted)
    prior_ctr: float | None = None
    #: items whose cells were ranked (the busiest, at most :data:`MAX_ITEMS`)
    items_considered: int = 0
    #: cells with at least ``min_impressions``: the ones ranked
    candidates: int = 0
    top: list[ImageCell] = field(default_factory=list)
    bottom: list[ImageCell] = field(default_factory=list)


#: (item, variant, image id, title, impressions, clicks)
Cell = tuple[str, str, str | None, str, int, int]


def rank_images(
    cells: Sequence[Cell],
    n: int,
    min_impressions: int,
    strength: float = PRIOR_STRENGTH,
) -> tuple[float | None, list[ImageCell], list[ImageCell]]:
    """(prior CTR, top ``n``, bottom ``n``) of the cells with ``min_impressions`` or more.

    Each cell is ranked by its posterior mean CTR under a Beta prior worth
    ``strength`` impressions at the CTR of all ``cells`` together (empirical
    Bayes): ``(clicks + strength * prior) / (impressions + strength)``. Two
    clicks on two impressions do not make an image the best; a hundred
    clicks on a thousand might. Top and bottom never share a cell; with
    fewer than ``2 n`` candidates the better half is the top.

    >>> cells = [("a", "v0", "a0", "", 2, 2), ("b", "v0", "b0", "", 1000, 100),
    ...          ("c", "v0", "c0", "", 1000, 10), ("d", "v0", "d0", "", 500, 20)]
    >>> prior, top, bottom = rank_images(cells, n=1, min_impressions=1)
    >>> round(prior, 4), [c.item_id for c in top], [c.item_id for c in bottom]
    (0.0528, ['b'], ['c'])
    """
    shown = sum(c[4] for c in cells)
    prior = sum(c[5] for c in cells) / shown if shown else None
    if prior is None or n < 1:
        return prior, [], []
    ranked = sorted(
        (
            ImageCell(
                item_id=item,
                variant=variant,
                image_id=image_id,
                title=title,
                impressions=imps,
                clicks=clicks,
                ctr=_ratio(clicks, imps),
                score=(clicks + strength * prior) / (imps + strength),
            )
            for item, variant, image_id, title, imps, clicks in cells
            if imps >= min_impressions
        ),
        key=lambda c: (-c.score, -c.impressions, c.item_id, c.variant),
    )
    top_n = min(n, (len(ranked) + 1) // 2)
    bottom_n = min(n, len(ranked) - top_n)
    bottom = ranked[len(ranked) - bottom_n :][::-1]
    return prior, ranked[:top_n], bottom


async def read_segment_images(
    client: aioredis.Redis,
    keys: KeySpace,
    segment: str | None = None,
    n: int = 3,
    min_impressions: int = 10,
    view: str = "live",
) -> ImageRanking:
    """The ``n`` best and worst images (item variants) of ``segment`` (None: all segments).

    Only the :data:`MAX_ITEMS` items with the most impressions are read, so a
    request stays cheap however large the catalogue; see :func:`rank_images`
    for the order. An unknown segment ranks nothing (no error).
    """
    chosen_view: View = SETTLED if view == SETTLED else "live"
    n = max(1, min(int(n), MAX_IMAGES))
    min_impressions = max(1, int(min_impressions))
    out = ImageRanking(segment, chosen_view, min_impressions, PRIOR_STRENGTH)
    ranked_items = await _ranked(
        client, keys, await _members(client, keys.items_index), item_scope, chosen_view
    )
    items = [name for name, imps, _ in ranked_items[:MAX_ITEMS] if imps > 0]
    out.items_considered = len(items)
    if not items:
        return out
    async with client.pipeline(transaction=False) as pipe:
        for item_id in items:
            pipe.smembers(keys.variants_index(item_id))
            pipe.hgetall(keys.variant_media(item_id))
        raw = await pipe.execute()
    pairs: list[tuple[str, str, str | None, str]] = []
    for i, item_id in enumerate(items):
        media = _media(raw[2 * i + 1])
        for variant in sorted(_text(v) for v in raw[2 * i]):
            image_id, title = media.get(variant, (None, ""))
            pairs.append((item_id, variant, image_id, title))

    def scope(item_id: str, variant: str) -> str:
        if segment is None:
            return variant_scope(item_id, variant)
        return item_variant_segment_scope(item_id, variant, segment)

    totals = await _totals(client, keys, [scope(p[0], p[1]) for p in pairs], chosen_view)
    cells = [(*p, imps, min(clicks, imps)) for p, (imps, clicks) in zip(pairs, totals, strict=True)]
    out.prior_ctr, out.top, out.bottom = rank_images(cells, n, min_impressions)
    out.candidates = sum(1 for c in cells if c[4] >= min_impressions)
    return out


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _point(raw: bytes | str) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    t = _finite(doc.get("t"))
    count = _finite(doc.get("count"))
    if t is None or count is None:
        return None
    return {
        "t": t,
        "count": int(count),
        **{
            name: _finite(doc.get(name))
            for name in ("logloss", "ne", "auc", "calibration", "watermark")
        },
    }


def model_series(raw_points: Sequence[bytes | str]) -> list[dict[str, Any]]:
    """The readable points of ``model:history``, oldest first (unreadable ones skipped).

    >>> [point] = model_series(['{"t": 1, "count": 5, "ne": 0.9}', 'junk', '{"t": 2}'])
    >>> point["t"], point["count"], point["ne"], point["auc"], point["watermark"]
    (1.0, 5, 0.9, None, None)
    """
    return [p for p in (_point(r) for r in raw_points) if p is not None]


async def read_model_series(
    client: aioredis.Redis, keys: KeySpace, points: int = 360
) -> dict[str, Any]:
    """The newest ``points`` of the model's history, its current metrics and the encoder status."""
    points = max(1, min(int(points), MODEL_HISTORY_LEN))
    raw = await client.lrange(keys.model_history, -points, -1)
    metrics = await read_json(client, keys.model_metrics)
    latest = None
    if isinstance(metrics, dict):
        latest = {name: metrics.get(name) for name in LATEST_FIELDS}
        for name in ("logloss", "ne", "auc", "calibration", "ctr", "updated_at", "watermark"):
            latest[name] = _finite(latest[name])
    encoder = await read_json(client, keys.encoder_status)
    return {
        "points": model_series(raw),
        "latest": latest,
        "encoder": encoder if isinstance(encoder, dict) else None,
    }
