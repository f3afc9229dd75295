"""``bertctr ope``: what CTR another policy would have earned on the logged impressions.

Reads the ``labelled`` topic (every impression whose attribution window has
closed, as ``bertctr finetune`` does), keeps those that carry a
``propensity``, scores every candidate variant of each with the served
model (the newest snapshot's champion, embeddings through the cache and
Triton when ``BERTCTR_TRITON_URL`` is set), and estimates the target
policy's CTR with IPS, SNIPS and the doubly robust family (DR, SNDR, DRos;
:mod:`online_ctr.ope`). DR's reward model ``q`` is the served model, or with
``--reward-model cells`` shrunk cell click rates cross-fitted on the same
window (then the served model is loaded only for ``--policy model``).
An item's candidates are the variants shown for it, with a propensity, in
the window. Exit 0 with the estimates, 3 when the estimate is refused (too
few impressions, no overlap; the reason on stderr), 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence

from bertctr.cli.common import Subparsers, run_async
from bertctr.times import is_duration, parse_duration, parse_time
from online_ctr.learner import Embedding
from online_ctr.ope import (
    DEFAULT_GROUP_FIELDS,
    DEFAULT_MIN_IMPRESSIONS,
    LoggedImpression,
    OpeRefused,
    OpeReport,
    TooFewImpressions,
    cross_fitted_rewards,
    evaluate,
    parse_policy,
)
from schemas.events import Impression, LabelledImpression, Segment
from schemas.settings import Settings

__all__ = [
    "REWARD_MODELS",
    "add_commands",
    "candidates_by_item",
    "cmd_ope",
    "logged_units",
    "parse_since",
    "rewards_model",
]

log = logging.getLogger(__name__)

#: the served model's click probabilities of candidates for a segment at a time
Scorer = Callable[[Segment, float, Sequence[Impression]], list[float]]

#: DR's reward model: the served model's predictions, or cross-fitted cell rates
REWARD_MODELS = ("served", "cells")


def parse_since(text: str, now: float | None = None) -> float:
    """``6h``, ``30m``, ``1d``, ``90s``: that long before now; else epoch seconds or ISO 8601.

    >>> parse_since("2h", now=10_000.0)
    2800.0
    >>> parse_since("1767225600")
    1767225600.0
    """
    if is_duration(text):
        return (time.time() if now is None else now) - parse_duration(text)
    return parse_time(text)


def candidates_by_item(examples: Sequence[Impression]) -> dict[str, list[Impression]]:
    """Each item's variants (one example impression each, by variant name), as shown."""
    out: dict[str, dict[str, Impression]] = {}
    for e in examples:
        out.setdefault(e.item_id, {}).setdefault(e.variant, e)
    return {item: [by[v] for v in sorted(by)] for item, by in out.items()}


def logged_units(examples: Sequence[LabelledImpression], score: Scorer) -> list[LoggedImpression]:
    """The propensity-carrying ``examples`` as logged units, every candidate scored by ``score``."""
    kept = [e for e in examples if e.propensity is not None and e.propensity > 0]
    items = candidates_by_item(kept)
    units = []
    for e in kept:
        shown_as = items[e.item_id]
        candidates = [
            e.model_copy(
                update={
                    "variant": c.variant,
                    "image_id": c.image_id,
                    "image_url": c.image_url,
                    "title": c.title,
                }
            )
            for c in shown_as
        ]
        q = score(e.segment, e.ts, candidates)
        units.append(
            LoggedImpression(
                segment=e.segment.key(),
                item_id=e.item_id,
                candidates=tuple(c.variant for c in shown_as),
                shown=e.variant,
                propensity=float(e.propensity or 0.0),
                reward=float(e.clicked),
                predicted=tuple(min(max(p, 0.0), 1.0) for p in q),
            )
        )
    return units


def rewards_model(
    units: Sequence[LoggedImpression], kind: str, fields: Sequence[str] = DEFAULT_GROUP_FIELDS
) -> list[tuple[float, ...]] | None:
    """DR's ``q`` for ``units``: ``None`` (the units' served predictions) or cross-fitted cells."""
    if kind == "served":
        return None
    if kind == "cells":
        return cross_fitted_rewards(units, group=tuple(fields))
    raise ValueError(f"unknown reward model {kind!r}; one of: {', '.join(REWARD_MODELS)}")


def _unscored(segment: Segment, ts: float, candidates: Sequence[Impression]) -> list[float]:
    """No served model: every candidate 0 (cells as ``q``, a policy that reads no model)."""
    return [0.0] * len(candidates)


async def _scorer(settings: Settings, examples: Sequence[LabelledImpression]) -> Scorer:
    """The served model's scorer, with each candidate image's embeddings looked up once."""
    from online_ctr.frozen import batch_predictor
    from wiring.embedding import embed_once
    from wiring.models import champion_of, model_store

    store = model_store(settings)
    newest = store.newest()
    if newest is None:
        raise LookupError("no model snapshot yet: has a worker learned and saved one?")
    champion = champion_of(store.load(newest).learner)
    predict = batch_predictor(champion.learner)
    log.info("scoring with snapshot %s (image model %s)", newest, champion.image_model)
    found: dict[tuple[str, str], tuple[Embedding, Embedding]] = {}
    if settings.triton_url:
        distinct = {(e.image_id, e.title): e for e in examples}
        embedded = await embed_once(settings, list(distinct.values()), champion.image_model)
        found = {key: (f.image, f.title) for key, f in zip(distinct, embedded, strict=True)}

    def score(segment: Segment, ts: float, candidates: Sequence[Impression]) -> list[float]:
        emb = [found.get((c.image_id, c.title), (None, None)) for c in candidates]
        return predict(segment, ts, candidates, [i for i, _ in emb], [t for _, t in emb])

    return score


def render_table(report: OpeReport) -> str:
    """The report as a small table, one row per estimator."""
    lines = [
        f"policy {report.policy}: {report.n} logged impressions with a propensity, "
        f"logged CTR {report.logged_ctr:.4%}",
        f"{'estimator':<10}{'estimate':>10}{'95% low':>10}{'95% high':>10}{'n':>9}{'ess':>10}",
    ]
    for name, e in report.estimates.items():
        lines.append(
            f"{name:<10}{e.value:>10.4%}{e.ci_low:>10.4%}{e.ci_high:>10.4%}{e.n:>9}{e.ess:>10.1f}"
        )
    return "\n".join(lines)


async def _run(settings: Settings, args: argparse.Namespace) -> OpeReport:
    from bertctr.finetune_data import Window, complete, read_window

    window = Window(args.since, None)
    examples = complete(await read_window(settings, window), settings.attribution_window_s)
    with_propensity = [e for e in examples if e.propensity is not None and e.propensity > 0]
    log.info(
        "%d of %d labelled impressions carry a propensity", len(with_propensity), len(examples)
    )
    if len(with_propensity) < max(args.min_impressions, 2):  # refuse before loading a model
        raise TooFewImpressions(len(with_propensity), max(args.min_impressions, 2))
    needs_model = args.reward_model == "served" or args.policy == "model"
    scorer = await _scorer(settings, with_propensity) if needs_model else _unscored
    units = logged_units(with_propensity, scorer)
    policy = parse_policy(args.policy, units)
    fields = [f.strip() for f in args.cell_fields.split(",") if f.strip()]
    return evaluate(
        units,
        policy,
        min_impressions=args.min_impressions,
        rewards_model=rewards_model(units, args.reward_model, fields),
    )


def cmd_ope(args: argparse.Namespace, settings: Settings) -> int:
    """Estimate the target policy's CTR from the logged propensities (see the module docstring)."""
    if not settings.kafka_bootstrap:
        print("bertctr ope: BERTCTR_KAFKA_BOOTSTRAP must be set", file=sys.stderr)
        return 2
    try:
        parse_policy(args.policy)  # a misspelt policy fails before reading anything
        report = run_async(lambda: _run(settings, args))
    except OpeRefused as exc:
        print(f"bertctr ope: refused: {exc.reason}", file=sys.stderr)
        return 3
    except (LookupError, ValueError) as exc:
        print(f"bertctr ope: {exc}", file=sys.stderr)
        return 2
    out = json.dumps(report.as_dict()) if args.json else render_table(report)
    print(out)
    return 0


def add_commands(sub: Subparsers) -> None:
    """Add ``ope`` to the ``bertctr`` parser."""
    ope = sub.add_parser(
        "ope",
        help="off-policy evaluation: the CTR another policy would have earned on the logged "
        "impressions that carry a propensity (exit 0 estimated, 3 refused, 2 cannot run)",
    )
    ope.add_argument(
        "--policy",
        required=True,
        help="the policy to evaluate: model (greedy on the served model), thompson "
        "(the allocator on the window's counts), uniform, or variant=NAME",
    )
    ope.add_argument(
        "--since",
        type=parse_since,
        help="labels from this time on: epoch seconds, ISO 8601, or a duration back from "
        "now (6h, 30m, 1d); default: all the topic holds",
    )
    ope.add_argument(
        "--min-impressions",
        type=int,
        default=DEFAULT_MIN_IMPRESSIONS,
        help="refuse with fewer propensity-carrying impressions (default %(default)s)",
    )
    ope.add_argument(
        "--reward-model",
        choices=REWARD_MODELS,
        default="served",
        help="DR's reward model: served (the served model's predictions; in-sample) or cells "
        "(shrunk click rates per item x variant x segment group, cross-fitted on the window: "
        "no model snapshot needed unless --policy model) (default %(default)s)",
    )
    ope.add_argument(
        "--cell-fields",
        default=",".join(DEFAULT_GROUP_FIELDS),
        help="segment fields of the cells' middle level, comma-separated (default %(default)s)",
    )
    ope.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ope.set_defaults(func=cmd_ope)
