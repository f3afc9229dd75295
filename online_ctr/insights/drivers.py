"""What drives clicks, per audience: every group's effects, FDR-controlled together.

The estimate is an association on logged traffic. It is causal only as far
as the shown variant was randomised within an item (the simulator and an
A/B test draw it at random; a ranker that favours bright shots for mobile
does not), which is why the default compares variants *within* items: that
contrast is the randomised one, while between items any appeal that goes
with a look is confounded with it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from online_ctr.insights.attributes import ImageAttributes
from online_ctr.insights.design import Kind, build_design
from online_ctr.insights.fdr import DEFAULT_Q, bh_q_values
from online_ctr.insights.groups import GroupCount
from online_ctr.insights.regression import RawEffect, fit_group

__all__ = ["MIN_CLICKS", "Drivers", "Effect", "GroupFit", "estimate_drivers"]

log = logging.getLogger(__name__)

#: a group with fewer clicks is not fitted (its effects would be all noise)
MIN_CLICKS = 30


@dataclass(frozen=True)
class Effect:
    """One attribute's effect on one audience's CTR."""

    group: str
    attribute: str
    kind: Kind
    #: +1 of this many units of the attribute (numeric); ``None`` for tags
    sd: float | None
    #: change in click log-odds; ``lift`` is the same as relative CTR change
    log_odds: float
    se: float
    lift: float
    lift_low: float
    lift_high: float
    p_value: float
    q_value: float
    significant: bool
    impressions: int
    clicks: int
    images: int
    images_with: int


@dataclass(frozen=True)
class GroupFit:
    """What one group's regression stood on (or why it was not fitted)."""

    group: str
    impressions: int
    clicks: int
    images: int
    items: int
    unmeasured: int
    skipped: str | None = None


@dataclass(frozen=True)
class Drivers:
    """Every group's effects, BH-controlled over all of them at ``q``."""

    q: float
    within_items: bool
    effects: list[Effect] = field(default_factory=list)
    groups: list[GroupFit] = field(default_factory=list)

    def for_group(self, group: str) -> list[Effect]:
        """``group``'s effects, strongest first (by |log-odds|)."""
        chosen = [e for e in self.effects if e.group == group]
        return sorted(chosen, key=lambda e: -abs(e.log_odds))


def _fit(
    group: str,
    counts: Sequence[GroupCount],
    attributes: Mapping[str, ImageAttributes],
    within_items: bool,
    min_clicks: int,
) -> tuple[GroupFit, list[RawEffect]]:
    design = build_design(group, counts, attributes, within_items=within_items)
    if design is None:
        imps = sum(c.impressions for c in counts)
        clicks = sum(c.clicks for c in counts)
        unmeasured = sum(1 for c in counts if c.impressions > 0)
        fit = GroupFit(group, imps, clicks, 0, 0, unmeasured, "no image of it has attributes")
        return fit, []
    fit = GroupFit(
        group, design.impressions, design.clicks, design.images, design.n_items, design.unmeasured
    )
    if design.clicks < min_clicks:
        return GroupFit(**{**fit.__dict__, "skipped": f"fewer than {min_clicks} clicks"}), []
    if design.n_items < 2:
        return GroupFit(**{**fit.__dict__, "skipped": "fewer than 2 items"}), []
    return fit, fit_group(design)


def estimate_drivers(
    counts: Sequence[GroupCount],
    attributes: Mapping[str, ImageAttributes],
    *,
    q: float = DEFAULT_Q,
    within_items: bool = True,
    min_clicks: int = MIN_CLICKS,
) -> Drivers:
    """Effects of every attribute in every group of ``counts``; BH over all at ``q``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    by_group: dict[str, list[GroupCount]] = defaultdict(list)
    for c in counts:
        by_group[c.group].append(c)
    fits: list[GroupFit] = []
    raw: list[tuple[GroupFit, RawEffect]] = []
    for group in sorted(by_group):
        fit, effects = _fit(group, by_group[group], attributes, within_items, min_clicks)
        fits.append(fit)
        raw.extend((fit, e) for e in effects)
    q_values = bh_q_values([e.p_value for _, e in raw])
    effects_out = []
    for (fit, e), q_value in zip(raw, q_values, strict=True):
        low, high = e.lift_interval
        effects_out.append(
            Effect(
                group=fit.group,
                attribute=e.contrast.attribute,
                kind=e.contrast.kind,
                sd=e.contrast.sd,
                log_odds=e.log_odds,
                se=e.se,
                lift=e.lift,
                lift_low=low,
                lift_high=high,
                p_value=e.p_value,
                q_value=q_value,
                significant=q_value <= q,
                impressions=fit.impressions,
                clicks=fit.clicks,
                images=fit.images,
                images_with=e.contrast.images_with,
            )
        )
    log.info(
        "drivers: %d effects in %d groups, %d significant at q=%.2f",
        len(effects_out),
        len(fits),
        sum(e.significant for e in effects_out),
        q,
    )
    return Drivers(q=q, within_items=within_items, effects=effects_out, groups=fits)
