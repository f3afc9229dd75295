"""``GET /ab/{item_id}``: which visual variant wins for which audience; ``POST .../allocate``.

Per segment (and ``all`` segments together): impressions, clicks, the
Beta-Binomial posterior mean with its 95% credible interval under the
pooled (empirical-Bayes) prior of the item or segment, each variant's
chance to be best and its risk, its uplift over the control variant with
a 95% interval, a sample-ratio-mismatch check, how many more impressions
per arm the current effect needs, the champion model's predicted CTR beside
the counts, and one verdict by the documented rule of :mod:`online_ctr.ab`.

The allocator answers "which variant should this user see?" by Thompson
sampling on the same posteriors, and returns the propensity the choice was
made with, for the impression to log (``Impression.propensity``). Variants
never shown in the segment share a bounded exploration share, with a warning.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.ab_view import ALL, ItemCells, read_item, segment_of_key
from api.contracts import Candidate, ModelInfo, Problem, ScoreRequest
from api.scoring import ModelUnavailable
from api.state import ApiState, api_state
from online_ctr.ab import (
    DEFAULT_EXPLORATION_SHARE,
    Arm,
    DecisionRule,
    Prior,
    allocation_probabilities,
    decide,
)
from schemas.events import Identifier, Probability, Segment

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["a/b"])

ItemId = Annotated[str, Path(min_length=1, max_length=256)]
RULE = DecisionRule()


class ArmOut(BaseModel):
    """One variant in one segment."""

    name: str
    impressions: int
    clicks: int
    ctr: float | None
    posterior_mean: float
    ci_low: float = Field(description="2.5% quantile of the posterior CTR.")
    ci_high: float = Field(description="97.5% quantile of the posterior CTR.")
    chance_to_win: float = Field(description="Posterior probability this variant is best.")
    risk: float = Field(description="Expected CTR lost by choosing it (absolute).")
    relative_risk: float = Field(description="risk / posterior_mean.")
    predicted_ctr: float | None = Field(
        description="The champion model's CTR for this variant and segment (position 0, now); "
        "null for 'all' segments or without a model."
    )
    is_control: bool = Field(description="Whether this variant is the control.")
    chance_to_beat_control: float | None = Field(
        description="Posterior probability that its CTR is above the control's (exact); "
        "null for the control."
    )
    uplift: float | None = Field(
        description="Relative uplift over the control: its posterior mean CTR over the "
        "control's, minus 1; null for the control."
    )
    uplift_ci_low: float | None = Field(
        description="2.5% quantile of the relative uplift (20,000 seeded Monte Carlo draws)."
    )
    uplift_ci_high: float | None = Field(description="97.5% quantile of the relative uplift.")


class PriorOut(BaseModel):
    """Every arm's prior: Beta(mean * strength, (1 - mean) * strength)."""

    mean: float = Field(description="The pooled CTR it is centred on.")
    strength: float = Field(
        description="Pseudo-impressions it is worth: min(rule.prior_strength (100), "
        "max(pooled impressions, the parent prior's strength (2 for an item)))."
    )
    alpha: float
    beta: float
    source: str = Field(
        description="'item pooled' (every segment and variant of the item), 'segment "
        "pooled' (the segment's variants, smoothed towards the item's prior)."
    )


class SampleSizeOut(BaseModel):
    """Impressions per arm to tell the best challenger from the control at the current effect."""

    control: str
    arm: str = Field(description="The challenger with the highest posterior mean CTR.")
    relative_effect: float = Field(description="Its posterior mean CTR over the control's, -1.")
    needed_per_arm: int = Field(
        description="Two-sided two-proportion test, normal approximation, at alpha and power."
    )
    more_per_arm: int = Field(
        description="needed_per_arm minus the impressions of the less-shown of the two (>= 0)."
    )
    alpha: float
    power: float


class SrmOut(BaseModel):
    """Chi-square test of the impressions per variant against the intended split."""

    statistic: float | None
    dof: int
    p_value: float
    mismatch: bool
    expected_shares: list[float]
    threshold: float


class SegmentVerdict(BaseModel):
    """The decision for one segment."""

    segment: str = Field(description="Segment key, or 'all'.")
    decision: Literal["keep_testing", "winner", "srm_mismatch", "no_data"]
    winner: str | None
    message: str
    arms: list[ArmOut]
    srm: SrmOut | None = Field(description="null when the allocation is adaptive.")
    method: str = Field(description="'exact' (two variants) or 'monte_carlo'.")
    warnings: list[str]
    control: str | None = Field(description="The control variant; null without variants.")
    prior: PriorOut
    sample_size: SampleSizeOut | None = Field(
        description="How many more impressions per arm the current effect needs; null with "
        "no challenger or an effect below rule.min_effect (0.1% relative)."
    )


class AbResponse(BaseModel):
    """An item's visual test, per segment."""

    item_id: str
    view: str
    allocation: str
    control: str | None = Field(description="The control variant every uplift is against.")
    segments: list[SegmentVerdict]
    model: ModelInfo | None
    rule: dict[str, Any]


class AllocateRequest(BaseModel):
    """Who is about to see the item, and (optionally) which variants may be shown."""

    model_config = ConfigDict(extra="forbid")

    segment: Segment
    variants: list[Identifier] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The variants to choose from; default: every variant seen for the item.",
    )
    min_propensity: Probability = Field(
        default=0.0,
        description="Floor on every variant's probability (keeps exploring); capped at "
        "1/number of variants.",
    )


class AllocateResponse(BaseModel):
    """The variant to show and the probability it was chosen with (log it as propensity)."""

    item_id: str
    segment: str
    variant: str
    propensity: float = Field(ge=0, le=1)
    probabilities: dict[str, float]
    unseen: list[str] = Field(
        description="Variants with no settled impressions in the segment (new, or unknown)."
    )
    exploration_share: float = Field(
        description="At most this share of the Thompson probabilities goes to the unseen "
        "variants together (min_propensity is added on top)."
    )
    prior: PriorOut
    warnings: list[str]


async def _predicted(
    state: ApiState, item_id: str, cells: ItemCells, segment: str
) -> dict[str, float]:
    """The champion's CTR per variant whose image is known, for ``segment``."""
    parsed = segment_of_key(segment)
    known = [v for v in cells.variants if v in cells.media]
    if parsed is None or not known:
        return {}
    candidates = [
        Candidate(
            item_id=item_id,
            image_id=cells.media[v].image_id,
            image_url=cells.media[v].image_url,
            variant=v,
            title=cells.media[v].title,
        )
        for v in known
    ]
    try:
        scored = await state.scorer.score(ScoreRequest(segment=parsed, candidates=candidates))
    except ModelUnavailable:
        return {}
    return {c.variant: p for c, p in zip(scored.request.candidates, scored.ctr, strict=True)}


def _verdict(
    arms: list[Arm],
    segment: str,
    adaptive: bool,
    predicted: dict[str, float],
    control: str | None,
    prior: Prior,
) -> SegmentVerdict:
    verdict = decide(arms, RULE, segment=segment, control=control, prior=prior).as_dict()
    for arm in verdict["arms"]:
        arm["predicted_ctr"] = predicted.get(arm["name"])
    if adaptive:
        verdict["srm"] = None
        if verdict["decision"] == "srm_mismatch":  # judged again without the split check
            unchecked = decide(
                arms,
                RULE,
                segment=segment,
                expected_shares=_observed(arms),
                control=control,
                prior=prior,
            )
            verdict.update(decision=unchecked.decision, winner=unchecked.winner)
            verdict["message"] = unchecked.message
    verdict.pop("rule", None)
    return SegmentVerdict.model_validate(verdict)


def _observed(arms: list[Arm]) -> list[float]:
    total = sum(a.impressions for a in arms) or 1
    return [max(a.impressions, 1e-9) / total for a in arms]


def _priors(cells: ItemCells) -> tuple[Prior, dict[str, Prior]]:
    """The item's pooled prior, and each segment's (smoothed towards the item's)."""
    item = RULE.pooled_prior(cells.overall, source="item pooled")
    by_segment = {
        seg: item if seg == ALL else RULE.pooled_prior(arms, parent=item, source="segment pooled")
        for seg, arms in cells.by_segment.items()
    }
    return item, by_segment


def _control(cells: ItemCells, asked: str | None) -> str | None:
    """The control asked for (it must be a variant), else ``v0`` if there is one, else the first."""
    if asked is not None:
        if asked not in cells.variants:
            raise HTTPException(
                status_code=404,
                detail=f"control {asked[:80]!r} is not a variant of this item "
                f"(variants: {cells.variants[:20]})",
            )
        return asked
    if "v0" in cells.variants:
        return "v0"
    return cells.variants[0] if cells.variants else None


@router.get(
    "/ab/{item_id}",
    response_model=AbResponse,
    responses={
        404: {
            "model": Problem,
            "description": "The control asked for is not a variant of the item.",
        }
    },
)
async def ab(
    item_id: ItemId,
    state: Annotated[ApiState, Depends(api_state)],
    segment: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    view: Literal["settled", "live"] = "settled",
    allocation: Annotated[
        Literal["fixed", "adaptive"],
        Query(
            description="fixed: variants were meant to get equal traffic, so the sample ratio "
            "is checked; adaptive: a bandit (POST /ab/{item_id}/allocate) chose them, so it is not."
        ),
    ] = "fixed",
    max_segments: Annotated[int, Query(ge=1, le=100)] = 20,
    control: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=256,
            description="The control variant every uplift is measured against; default v0 if "
            "the item has it, else its first variant. Not a variant of the item: 404.",
        ),
    ] = None,
) -> AbResponse:
    """Per visual variant and segment: counts, posterior, uplift over control, risk, verdict.

    Without ``segment``: every segment together (``all``) and the
    ``max_segments`` segments with the most impressions of the item.
    """
    cells = await read_item(state.redis, state.keys, item_id, view, segment, max_segments)
    chosen = _control(cells, control)
    _, priors = _priors(cells)
    verdicts = []
    for seg, arms in cells.by_segment.items():
        predicted = await _predicted(state, item_id, cells, seg) if seg != ALL else {}
        verdicts.append(
            _verdict(arms, seg, allocation == "adaptive", predicted, chosen, priors[seg])
        )
    model = state.watcher.current
    info = None
    if model is not None:
        encoder = model.image_model if state.embedder is not None else None
        info = ModelInfo(**model.describe(), image_encoder=encoder)
    return AbResponse(
        item_id=item_id,
        view=view,
        allocation=allocation,
        control=chosen,
        segments=verdicts,
        model=info,
        rule=RULE.as_dict(),
    )


@router.post(
    "/ab/{item_id}/allocate",
    response_model=AllocateResponse,
    responses={
        400: {"model": Problem, "description": "The body is not JSON."},
        404: {"model": Problem, "description": "No variants known for the item."},
    },
)
async def allocate(
    item_id: ItemId, request: AllocateRequest, state: Annotated[ApiState, Depends(api_state)]
) -> AllocateResponse:
    """Thompson sampling over the item's variants for one segment (settled counts).

    Returns the variant to show and its propensity: the exact probability
    this choice had, which the impression should carry as ``propensity``.
    Variants with no settled impressions in the segment (new, or never
    counted for the item at all: a typo?) share at most ``exploration_share``
    (10%) and are named in ``warnings``.
    """
    segment = request.segment.key()
    cells = await read_item(state.redis, state.keys, item_id, "settled", segment, 1)
    counted = {a.name: a for a in cells.by_segment.get(segment, [])}
    names = request.variants if request.variants is not None else cells.variants
    names = list(dict.fromkeys(names))
    if not names:
        raise HTTPException(status_code=404, detail=f"no variants known for item {item_id!r}")
    floor = min(request.min_propensity, 1.0 / len(names))
    arms = [counted.get(n, Arm(n, 0, 0)) for n in names]
    item_prior = RULE.pooled_prior(cells.overall, source="item pooled")
    prior = RULE.pooled_prior(arms, parent=item_prior, source="segment pooled")
    probs = allocation_probabilities(
        arms,
        min_propensity=floor,
        prior_a=prior.alpha,
        prior_b=prior.beta,
        exploration_share=DEFAULT_EXPLORATION_SHARE,
    )
    unseen = [a.name for a in arms if a.impressions == 0]
    warnings = _allocation_warnings(item_id, segment, cells.variants, names, unseen)
    for warning in warnings:
        log.debug("allocate %s: %s", item_id, warning)
    p = np.array([probs[n] for n in names])
    chosen = int(np.random.default_rng().choice(len(names), p=p / p.sum()))
    return AllocateResponse(
        item_id=item_id,
        segment=segment,
        variant=names[chosen],
        propensity=min(max(float(p[chosen]), 0.0), 1.0),
        probabilities={n: float(v) for n, v in probs.items()},
        unseen=unseen,
        exploration_share=DEFAULT_EXPLORATION_SHARE,
        prior=PriorOut.model_validate(prior.as_dict()),
        warnings=warnings,
    )


def _allocation_warnings(
    item_id: str, segment: str, known: list[str], names: list[str], unseen: list[str]
) -> list[str]:
    """Say which variants were never counted for the item, or never in this segment."""
    share = f"{100 * DEFAULT_EXPLORATION_SHARE:.0f}%"
    out = []
    unknown = [n for n in names if n not in known]
    if unknown:
        out.append(
            f"variants {unknown} were never counted for item {item_id!r} (known: "
            f"{known[:20]}): a typo, or not shown yet"
        )
    if len(unseen) == len(names):
        out.append(
            f"no variant has settled impressions in segment {segment}: the choice is "
            "the prior's alone"
        )
    elif unseen:
        out.append(
            f"variants {unseen} have no settled impressions in segment {segment}: "
            f"together they get at most {share} of the traffic (exploration share)"
        )
    return out
