"""``bertctr ope`` without services: units from labelled impressions, the window, the output."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from bertctr.cli.main import build_parser
from bertctr.cli.ope import logged_units, parse_since, render_table, rewards_model
from online_ctr.ope import UniformPolicy, evaluate
from schemas.events import Impression, LabelledImpression, Segment


def labelled(n: int, variant: str, propensity: float | None, clicked: bool) -> LabelledImpression:
    imp = Impression(
        event_id=f"e{n}",
        impression_id=f"i{n}",
        ts=1000.0 + n,
        item_id="item",
        image_id=f"img-{variant}",
        variant=variant,
        title=f"title {variant}",
        position=0,
        segment=Segment(device="mobile", geo="DE"),
        propensity=propensity,
    )
    return LabelledImpression.from_impression(
        imp, clicked=clicked, click_delay_s=None, late=False, labelled_at=imp.ts
    )


def test_units_score_every_shown_variant_and_skip_impressions_without_propensity() -> None:
    examples = [
        labelled(0, "v0", 0.5, True),
        labelled(1, "v1", 0.5, False),
        labelled(2, "v2", None, True),  # no propensity: not a candidate, not a unit
    ]
    asked: list[list[tuple[str, str, str]]] = []

    def score(segment: Segment, ts: float, candidates: Sequence[Impression]) -> list[float]:
        asked.append([(c.variant, c.image_id, c.title) for c in candidates])
        return [0.1 if c.variant == "v0" else 0.3 for c in candidates]

    units = logged_units(examples, score)
    assert [u.shown for u in units] == ["v0", "v1"]
    assert units[0].candidates == ("v0", "v1") and units[0].predicted == (0.1, 0.3)
    assert units[0].segment == "device=mobile,geo=DE" and units[0].reward == 1.0
    # each candidate is scored as the impression it would have been: its own image and title
    assert asked[0] == [("v0", "img-v0", "title v0"), ("v1", "img-v1", "title v1")]


def test_since_takes_durations_times_and_iso() -> None:
    assert parse_since("30m", now=7200.0) == 5400.0
    assert parse_since("1767225600.5") == 1767225600.5
    assert parse_since("2026-01-01T00:00:00Z") == 1767225600.0
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_report_renders_as_a_table_and_as_the_documented_json() -> None:
    examples = [labelled(n, "v0" if n % 2 else "v1", 0.5, n % 3 == 0) for n in range(20)]
    units = logged_units(examples, lambda s, t, cs: [0.2] * len(cs))
    report = evaluate(units, UniformPolicy(), min_impressions=10)
    table = render_table(report)
    assert table.splitlines()[0].startswith("policy uniform: 20 logged impressions")
    rows = [line.split()[0] for line in table.splitlines()[2:]]
    assert rows == ["ips", "snips", "dr", "sndr", "dros"]
    doc = json.loads(json.dumps(report.as_dict()))
    assert set(doc) == {"policy", "n", "logged_ctr", "estimators"}
    assert set(doc["estimators"]["dr"]) == {"estimate", "ci_low", "ci_high", "n", "ess"}


def test_the_command_is_registered() -> None:
    args = build_parser().parse_args(["ope", "--policy", "variant=v0", "--since", "1h", "--json"])
    assert (args.policy, args.json, args.min_impressions) == ("variant=v0", True, 500)


def test_reward_model_option_and_the_cells_it_fits() -> None:
    args = build_parser().parse_args(["ope", "--policy", "uniform"])
    assert (args.reward_model, args.cell_fields) == ("served", "taste")
    args = build_parser().parse_args(
        ["ope", "--policy", "uniform", "--reward-model", "cells", "--cell-fields", "taste,device"]
    )
    assert (args.reward_model, args.cell_fields) == ("cells", "taste,device")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ope", "--policy", "uniform", "--reward-model", "oracle"])

    # v0 clicked every third time, v1 never: the cells tell them apart, the served q is kept
    examples = [
        labelled(n, "v0" if n % 2 else "v1", 0.5, n % 2 == 1 and n % 3 == 0) for n in range(200)
    ]
    units = logged_units(examples, lambda s, t, cs: [0.2] * len(cs))
    assert rewards_model(units, "served") is None
    q = rewards_model(units, "cells", ["device"])
    assert q is not None and len(q) == len(units)
    assert all(row[0] > row[1] for row in q)  # candidates sorted: v0, v1
    report = evaluate(units, UniformPolicy(), min_impressions=10, rewards_model=q)
    served = evaluate(units, UniformPolicy(), min_impressions=10)
    assert report.estimates["dr"].value != served.estimates["dr"].value
    with pytest.raises(ValueError, match="unknown reward model"):
        rewards_model(units, "oracle")
