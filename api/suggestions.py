"""Concrete suggestions for one item, from its A/B verdicts and the audience drivers.

Pure: what ``GET /items/{item_id}`` already computed goes in, sentences with
their figures come out, so the page and any client read the same advice and
a test can check every wording. Two sources, each stated in the suggestion:

* ``ab``: a segment group's A/B verdict is ``winner`` (the rule of
  :mod:`online_ctr.ab`: chance to win, risk and an uplift interval that
  excludes 0): "show variant b to taste group t2: +18% [+6%, +31%] over
  control 'a'". A group whose winner is the one every audience already gets
  is not repeated.
* ``driver``: a significant effect of ``/explain`` (after Benjamini-Hochberg)
  on which this item's variants differ: "brighter variants win with device
  group mobile (brightness +21% per +1 sd [+12%, +31%]); here variant b is
  the brightest (0.71)". Associations on logged traffic, as ``/explain`` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from online_ctr.ab.decision import Verdict
from online_ctr.insights import ALL, Effect, ImageAttributes

__all__ = ["MAX_DRIVER_SUGGESTIONS", "Suggestion", "ab_suggestions", "driver_suggestions"]

#: driver suggestions per item at most (the strongest effects)
MAX_DRIVER_SUGGESTIONS = 5

#: numeric attribute -> (phrase when more wins, when less wins, superlative of more, of less)
PHRASES: dict[str, tuple[str, str, str, str]] = {
    "brightness": ("brighter variants", "darker variants", "brightest", "darkest"),
    "contrast": (
        "higher-contrast variants", "lower-contrast variants", "most contrasted", "least contrasted"
    ),
    "colourfulness": (
        "more colourful variants", "less colourful variants", "most colourful", "least colourful"
    ),
    "sharpness": ("sharper variants", "softer variants", "sharpest", "softest"),
    "text": (
        "variants with more text", "variants with less text", "one with most text",
        "one with least text",
    ),
    "scale": (
        "variants with a larger subject", "variants with a smaller subject",
        "one with the largest subject", "one with the smallest subject",
    ),
    "clutter": ("more cluttered variants", "cleaner variants", "most cluttered", "cleanest"),
}  # fmt: skip


@dataclass(frozen=True)
class Suggestion:
    """One piece of advice, the audience it is for, and the figure behind it."""

    source: Literal["ab", "driver"]
    segment: str
    variant: str | None
    text: str
    lift: float | None
    lift_low: float | None
    lift_high: float | None


def audience(group: str) -> str:
    """How a segment group reads in a sentence.

    >>> audience("taste=t2"), audience("all"), audience("device=mobile,geo=DE")
    ('taste group t2', 'every audience', 'segment device=mobile,geo=DE')
    """
    if group == ALL:
        return "every audience"
    field, sep, value = group.partition("=")
    if sep and "," not in group:
        return f"{field} group {value}"
    return f"segment {group}"


def _pct(x: float) -> str:
    return f"{100 * x:+.0f}%"


def _interval(low: float, high: float) -> str:
    return f"[{_pct(low)}, {_pct(high)}]"


def ab_suggestions(verdicts: Sequence[Verdict]) -> list[Suggestion]:
    """One suggestion per segment group with a winner, best uplift first (``all`` leads)."""
    overall = next((v.winner for v in verdicts if v.segment == ALL), None)
    out: list[Suggestion] = []
    for verdict in verdicts:
        if verdict.decision != "winner" or verdict.winner is None:
            continue
        if verdict.segment != ALL and verdict.winner == overall:
            continue  # every audience already gets it
        who = audience(verdict.segment)
        winner = next(a for a in verdict.arms if a.name == verdict.winner)
        if winner.is_control or winner.uplift is None:
            out.append(
                Suggestion(
                    "ab",
                    verdict.segment,
                    winner.name,
                    f"keep variant {winner.name} for {who}: it beats every other variant",
                    None,
                    None,
                    None,
                )
            )
            continue
        low, high = winner.uplift_ci_low, winner.uplift_ci_high
        assert low is not None and high is not None  # set with the uplift
        text = (
            f"show variant {winner.name} to {who}: {_pct(winner.uplift)} "
            f"{_interval(low, high)} over control {verdict.control!r}"
        )
        out.append(Suggestion("ab", verdict.segment, winner.name, text, winner.uplift, low, high))
    out.sort(key=lambda s: (s.segment != ALL, -(s.lift or 0.0)))
    return out


def _numeric(group: str, effect: Effect, values: Mapping[str, float]) -> tuple[str, str] | None:
    """(variant, sentence) for a numeric effect, if the variants differ on it."""
    if len(values) < 2 or max(values.values()) == min(values.values()):
        return None
    more_wins = effect.log_odds > 0
    name = effect.attribute
    up, down, most, least = PHRASES.get(
        name, (f"variants with higher {name}", f"variants with lower {name}",
               f"one with the highest {name}", f"one with the lowest {name}")
    )  # fmt: skip
    pick = max if more_wins else min
    best = pick(sorted(values), key=lambda v: values[v])
    text = (
        f"{up if more_wins else down} win with {audience(group)} ({name} {_pct(effect.lift)} "
        f"per +1 sd {_interval(effect.lift_low, effect.lift_high)}); here variant {best} is "
        f"the {most if more_wins else least} ({values[best]:.2f})"
    )
    return best, text


def _tag(group: str, effect: Effect, tags: Mapping[str, frozenset[str]]) -> tuple[str, str] | None:
    """(variant, sentence) for a tag effect, if some variants carry it and some do not."""
    name = effect.attribute
    carry = sorted(v for v, t in tags.items() if name in t)
    lack = sorted(v for v, t in tags.items() if name not in t)
    if not carry or not lack:
        return None
    family = "=" in name
    unit = "vs the average level" if family else "present vs absent"
    with_it = effect.log_odds > 0
    chosen = carry if with_it else lack
    if family:
        phrase = f"{name} variants" if with_it else f"variants other than {name}"
    else:
        phrase = f"variants {'with' if with_it else 'without'} {name}"
    text = (
        f"{phrase} win with {audience(group)} ({name} {_pct(effect.lift)} {unit} "
        f"{_interval(effect.lift_low, effect.lift_high)}); here variant(s) {', '.join(chosen)}"
    )
    return chosen[0], text


def driver_suggestions(
    effects: Sequence[Effect],
    variants: Mapping[str, ImageAttributes],
    limit: int = MAX_DRIVER_SUGGESTIONS,
) -> list[Suggestion]:
    """Suggestions from the significant effects (any group) the item's variants differ on.

    ``variants`` maps each variant to its image's attributes (variants
    without known attributes left out). Strongest effects first.
    """
    ranked = sorted((e for e in effects if e.significant), key=lambda e: -abs(e.log_odds))
    out: list[Suggestion] = []
    for effect in ranked:
        group = effect.group
        if effect.kind == "numeric":
            values = {
                v: float(a.numeric[effect.attribute])
                for v, a in variants.items()
                if effect.attribute in a.numeric
            }
            found = _numeric(group, effect, values)
        else:
            found = _tag(group, effect, {v: a.tags for v, a in variants.items()})
        if found is None:
            continue
        variant, text = found
        out.append(
            Suggestion(
                "driver", group, variant, text, effect.lift, effect.lift_low, effect.lift_high
            )
        )
        if len(out) >= limit:
            break
    return out
