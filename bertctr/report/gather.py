"""Gather a report's data from Redis and the image store, through the API's own readers.

CTR series, the model's history and the top and bottom images come from
:mod:`api.series` (what the live page reads), the A/B cells from
:mod:`api.ab_view` with the maths of :mod:`online_ctr.ab` (as ``GET /ab``
judges), the encoder's state from :mod:`streams.readers`. Each source is
read on its own: one that is absent or unreadable becomes
:class:`~bertctr.report.data.Unavailable` with its reason, never an error
for the whole report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api.ab_view import ALL, read_item
from api.quality_view import quality_block
from api.routes.explain import read_cells
from api.series import (
    MAX_MINUTES,
    CtrSeriesData,
    read_ctr_series,
    read_model_series,
    read_segment_images,
)
from bertctr.report.data import (
    AbArm,
    AbItem,
    DriversGrid,
    EncoderHistory,
    ImagesData,
    NeData,
    ReliabilityBand,
    ReportData,
    Unavailable,
)
from bertctr.report.since import Since
from encoder_server.client.errors import ImageUnavailable, StoreUnavailable
from encoder_server.client.image_store import ImageStore
from online_ctr.ab import DecisionRule, decide
from online_ctr.insights import (
    AttributeSource,
    CellCount,
    ImageAttributes,
    estimate_drivers,
    roll_up,
)
from schemas.keys import MODEL_HISTORY_LEN, SETTLED, KeySpace
from streams.readers import read_decisions, read_json

__all__ = [
    "AB_ITEMS",
    "CTR_SERIES",
    "DRIVER_ATTRIBUTES",
    "QUALITY_ROWS",
    "TOP_IMAGES",
    "TagReader",
    "drivers_grid",
    "gather_report",
]

log = logging.getLogger(__name__)

#: segments drawn in the CTR chart (the busiest)
CTR_SERIES = 6
#: best and worst images shown
TOP_IMAGES = 5
#: items whose A/B posteriors are drawn (the busiest)
AB_ITEMS = 3
#: attributes in the drivers heatmap (the strongest anywhere)
DRIVER_ATTRIBUTES = 12
#: segment values in the quality table (flagged first, then the busiest)
QUALITY_ROWS = 30
#: the quality figures shown, in order
QUALITY_COLUMNS = ("field", "value", "count", "clicks", "share", "ne", "calibration", "auc")
#: why the OPE section is empty unless a caller passes estimates
NO_OPE = "no off-policy estimates given (bertctr report --ope FILE: bertctr ope --json output)"
#: the rule ``GET /ab`` judges with (its defaults)
RULE = DecisionRule()

T = TypeVar("T")
#: image ids -> their tags (those known); the tags cache's reader
TagReader = Callable[[list[str]], Awaitable[dict[str, list[str]]]]
#: no ``--since``: everything kept
EVERYTHING = Since()


async def _guarded(what: str, read: Callable[[], Awaitable[T | Unavailable]]) -> T | Unavailable:
    """One source's data, or why not (Redis down, a malformed document)."""
    try:
        return await read()
    except (RedisError, OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("report: cannot read %s: %s", what, exc)
        return Unavailable(f"could not read {what}: {type(exc).__name__}: {exc}")


async def _ctr(client: aioredis.Redis, keys: KeySpace, since: Since) -> CtrSeriesData | Unavailable:
    clock_probe = await read_ctr_series(client, keys, "segment", minutes=1, limit=1)
    if clock_probe.clock is None:
        return Unavailable("no impressions counted yet (no counters under this prefix)")
    minutes = since.minutes(clock_probe.clock, MAX_MINUTES)
    return await read_ctr_series(client, keys, "segment", minutes=minutes, limit=CTR_SERIES)


async def _ne(
    client: aioredis.Redis,
    keys: KeySpace,
    since: Since,
    oracle: list[tuple[int, float]] | None,
    now: float,
) -> NeData | Unavailable:
    series = await read_model_series(client, keys, points=MODEL_HISTORY_LEN)
    points = series["points"]
    start = since.start(now)
    if start is not None:
        points = [p for p in points if p["t"] >= start]
    if not points:
        return Unavailable("no model history in Redis for this window (no learner published)")
    latest = series["latest"] or {}
    return NeData(points=points, oracle=oracle, latest_ne=latest.get("ne"))


async def _reliability(
    client: aioredis.Redis, keys: KeySpace
) -> list[ReliabilityBand] | Unavailable:
    metrics = await read_json(client, keys.model_metrics)
    if not isinstance(metrics, dict):
        return Unavailable("no model metrics in Redis (no learner published)")
    rows = metrics.get("reliability")
    if not isinstance(rows, list):
        return Unavailable("the learner's metrics carry no reliability rows (an older learner)")
    return [
        ReliabilityBand(float(r["predicted"]), float(r["observed"]), float(r["count"]))
        for r in rows
    ]


async def _images(
    client: aioredis.Redis,
    keys: KeySpace,
    store: ImageStore | None,
    tag_reader: TagReader | None,
) -> ImagesData:
    ranking = await read_segment_images(client, keys, None, n=TOP_IMAGES)
    shown = [c.image_id for c in [*ranking.top, *ranking.bottom] if c.image_id is not None]
    # no image of them described: the tags were not computed (a describer would have)
    tags = (await tag_reader(shown) or None) if tag_reader is not None else None
    images: dict[str, bytes] = {}
    for cell in [*ranking.top, *ranking.bottom]:
        if store is None or cell.image_id is None:
            continue
        try:
            images[cell.image_id] = await store.fetch(cell.image_id, None)
        except (ImageUnavailable, StoreUnavailable) as exc:
            log.info("report: no image for %r: %s", cell.image_id, exc)
    return ImagesData(ranking=ranking, images=images, tags=tags)


def _control(variants: list[str]) -> str | None:
    """``GET /ab``'s default control: ``v0`` if the item has it, else its first variant."""
    if "v0" in variants:
        return "v0"
    return variants[0] if variants else None


async def _ab(client: aioredis.Redis, keys: KeySpace) -> list[AbItem] | Unavailable:
    busiest = await read_ctr_series(client, keys, "variant", minutes=1, limit=1)
    if not busiest.items:
        return Unavailable("no item has impressions yet")
    out = []
    for entry in busiest.items[:AB_ITEMS]:
        item_id = entry["item_id"]
        cells = await read_item(client, keys, item_id, SETTLED, ALL, 1)
        arms = cells.overall
        if len(arms) < 2:
            continue
        prior = RULE.pooled_prior(arms, source="item pooled")
        control = _control(cells.variants)
        verdict = decide(arms, RULE, segment=ALL, control=control, prior=prior)
        out.append(
            AbItem(
                item_id=item_id,
                decision=verdict.decision,
                message=verdict.message,
                arms=[
                    AbArm(
                        name=s.name,
                        impressions=s.impressions,
                        clicks=s.clicks,
                        alpha=prior.alpha + s.clicks,
                        beta=prior.beta + s.impressions - s.clicks,
                        chance_to_win=s.chance_to_win,
                        is_control=s.is_control,
                        uplift=s.uplift,
                        uplift_ci_low=s.uplift_ci_low,
                        uplift_ci_high=s.uplift_ci_high,
                    )
                    for s in verdict.arms
                ],
            )
        )
    return out


async def _drivers(
    client: aioredis.Redis, keys: KeySpace, source: AttributeSource | None
) -> DriversGrid | Unavailable:
    """``GET /explain``'s estimate over every group, as a grid of lifts (significant marked)."""
    if source is None or source.unavailable_reason is not None:
        reason = source.unavailable_reason if source is not None else None
        return Unavailable(reason or "no image attribute source (the attribute cache is not wired)")
    cells, _ = await read_cells(client, keys, "live")
    if not cells:
        return Unavailable("no impressions counted yet")
    images = sorted({c.image_id for c in cells})
    return drivers_grid(cells, await source.attributes(images), len(images))


def drivers_grid(
    cells: Sequence[CellCount], attributes: Mapping[str, ImageAttributes], images: int = 0
) -> DriversGrid | Unavailable:
    """The drivers of clicks in ``cells`` (:func:`estimate_drivers`) as the heatmap's grid.

    ``images``: how many images were asked about (for the reason when none is known).
    """
    if not attributes:
        return Unavailable(
            f"no attributes known for any of the {images} counted images (from the describer's "
            "cache: none of them described yet under the champion's image encoder)"
        )
    drivers = estimate_drivers(roll_up(cells), attributes)
    groups = sorted({e.group for e in drivers.effects})
    if not groups:
        skipped = sorted({g.skipped for g in drivers.groups if g.skipped})
        return Unavailable("no segment group could be fitted: " + "; ".join(skipped))
    # attributes significant somewhere first, then by their strongest effect anywhere
    rank: dict[str, tuple[int, float]] = {}
    for e in drivers.effects:
        hits, size = rank.get(e.attribute, (0, 0.0))
        rank[e.attribute] = (hits + e.significant, max(size, abs(e.log_odds)))
    names = sorted(rank, key=lambda a: (-rank[a][0], -rank[a][1], a))[:DRIVER_ATTRIBUTES]
    found = {(e.group, e.attribute): e for e in drivers.effects}
    return DriversGrid(
        groups=groups,
        attributes=names,
        effects=[
            [found[(g, a)].log_odds if (g, a) in found else None for a in names] for g in groups
        ],
        significant=[
            [(g, a) in found and found[(g, a)].significant for a in names] for g in groups
        ],
        label="effect on click log-odds",
        q=drivers.q,
    )


async def _quality(client: aioredis.Redis, keys: KeySpace) -> list[dict[str, Any]] | Unavailable:
    """The learner's per-audience quality block (``GET /quality``'s source)."""
    metrics = await read_json(client, keys.model_metrics)
    block = quality_block(metrics if isinstance(metrics, dict) else None)
    if block is None:
        return Unavailable("the learner's metrics carry no quality block (none published yet)")
    rows = [r for r in block["segments"] if isinstance(r, dict)]
    rows.sort(key=lambda r: (not r.get("flags"), -float(r.get("count") or 0)))
    return [
        {
            **{c: r.get(c) for c in QUALITY_COLUMNS},
            "flags": ", ".join(r.get("flags") or []) or ("-" if r.get("judged") else "not judged"),
        }
        for r in rows[:QUALITY_ROWS]
    ]


async def _encoder(client: aioredis.Redis, keys: KeySpace) -> EncoderHistory:
    status = await read_json(client, keys.encoder_status)
    finetune = await read_json(client, keys.finetune_state)
    return EncoderHistory(
        status=status if isinstance(status, dict) else None,
        counts=await read_decisions(client, keys),
        finetune=finetune if isinstance(finetune, dict) else None,
    )


async def gather_report(
    client: aioredis.Redis,
    keys: KeySpace,
    *,
    since: Since = EVERYTHING,
    image_store: ImageStore | None = None,
    tag_reader: TagReader | None = None,
    attributes: AttributeSource | None = None,
    oracle: list[tuple[int, float]] | None = None,
    ope: list[dict[str, Any]] | Unavailable | None = None,
    title: str = "bertctr report",
) -> ReportData:
    """Everything the report shows, read from Redis (and the image store for thumbnails).

    ``oracle``: the simulator's NE curve (:func:`~bertctr.report.oracle.oracle_ne_curve`),
    known only to a simulation. ``tag_reader``: the tags of images (None: tags
    were not computed). ``attributes``: the images' attributes for the
    drivers of clicks (None: not available). ``ope``: rows of off-policy
    estimates, when the caller has them.
    """
    now = time.time()

    async def images() -> ImagesData:
        return await _images(client, keys, image_store, tag_reader)

    async def encoder() -> EncoderHistory:
        return await _encoder(client, keys)

    return ReportData(
        title=title,
        generated_at=now,
        window=since.describe(),
        redis_prefix=keys.prefix,
        ctr=await _guarded("the CTR counters", lambda: _ctr(client, keys, since)),
        ne=await _guarded("the model history", lambda: _ne(client, keys, since, oracle, now)),
        reliability=await _guarded("the model metrics", lambda: _reliability(client, keys)),
        images=await _guarded("the image ranking", images),
        ab=await _guarded("the A/B counters", lambda: _ab(client, keys)),
        encoder=await _guarded("the encoder status", encoder),
        drivers=await _guarded("the drivers of clicks", lambda: _drivers(client, keys, attributes)),
        ope=ope if ope is not None else Unavailable(NO_OPE),
        quality=await _guarded("the per-audience quality", lambda: _quality(client, keys)),
    )
