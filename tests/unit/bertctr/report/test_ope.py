"""The OPE table reads what ``bertctr ope --json`` really prints (its report's ``as_dict``)."""

from __future__ import annotations

import json
from pathlib import Path

from bertctr.cli.ope import logged_units
from bertctr.report import sections as s
from bertctr.report.ope import read_ope_file
from online_ctr.ope import evaluate, parse_policy
from schemas.events import Impression, LabelledImpression, Segment


def labelled(n: int) -> LabelledImpression:
    variant = "v0" if n % 2 else "v1"
    imp = Impression(
        event_id=f"e{n}",
        impression_id=f"i{n}",
        ts=1000.0 + n,
        item_id=f"item-{n % 3}",
        image_id=f"img-{variant}",
        variant=variant,
        title=f"title {variant}",
        position=0,
        segment=Segment(device="mobile", geo="DE"),
        propensity=0.5,
    )
    clicked = n % 5 == 0 if variant == "v0" else n % 7 == 0
    return LabelledImpression.from_impression(
        imp, clicked=clicked, click_delay_s=None, late=False, labelled_at=imp.ts
    )


def test_rows_from_the_commands_json_lines(tmp_path: Path) -> None:
    units = logged_units([labelled(n) for n in range(200)], lambda seg, t, cs: [0.1] * len(cs))
    policies = ("uniform", "variant=v0")
    reports = [evaluate(units, parse_policy(p, units), min_impressions=50) for p in policies]
    # what `for p in uniform variant=v0; do bertctr ope --policy $p --json; done > FILE` holds
    out = tmp_path / "ope.jsonl"
    out.write_text("".join(json.dumps(r.as_dict()) + "\n" for r in reports))
    rows = read_ope_file(out)
    assert [(r["policy"], r["estimator"]) for r in rows] == [
        (r.policy, name) for r in reports for name in ("ips", "snips", "dr", "sndr", "dros")
    ]
    for row in rows:
        report = next(r for r in reports if r.policy == row["policy"])
        estimate = report.estimates[row["estimator"]]
        assert row["impressions"] == report.n == 200
        assert row["logged CTR"] == report.logged_ctr
        assert (row["estimate"], row["95% low"], row["95% high"], row["ESS"]) == (
            estimate.value,
            estimate.ci_low,
            estimate.ci_high,
            estimate.ess,
        )
    # variant=v0 is v0's CTR (a click every 5th odd n): IPS sees only v0's half, weight 2
    v0 = next(r for r in rows if r["policy"] == "variant=v0" and r["estimator"] == "snips")
    assert abs(v0["estimate"] - sum(n % 5 == 0 for n in range(1, 200, 2)) / 100) < 1e-9
    section = s.ope_section(rows)
    assert section.available and "variant=v0" in section.body and "snips" in section.body
