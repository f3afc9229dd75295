"""``bertctr stats`` in plain text lists the audience values the learner flagged."""

from __future__ import annotations

from typing import Any

from bertctr.cli.stream import format_stats


def _stats(quality: dict[str, Any] | None) -> dict[str, Any]:
    model: dict[str, Any] = {"model": "default", "count": 900, "logloss": 0.2, "ne": 0.9}
    if quality is not None:
        model["quality"] = quality
    counts = {"impressions": 900, "clicks": 30, "ctr": 30 / 900}
    return {"total": counts, "items": {}, "segments": {}, "model": model}


def test_flagged_values_are_listed_with_their_reasons_and_figures() -> None:
    quality = {
        "segments": [
            {
                "field": "geo",
                "value": "BR",
                "flags": ["calibration_high"],
                "calibration": 1.61,
                "ne": 0.97,
                "count": 400,
                "clicks": 12,
            },
            {
                "field": "geo",
                "value": "DE",
                "flags": [],
                "calibration": 1.0,
                "ne": 0.9,
                "count": 500,
                "clicks": 18,
            },
        ]
    }
    text = format_stats(_stats(quality))
    lines = text.splitlines()
    assert "quality: 1 audience value(s) flagged" in lines
    (flagged,) = [line for line in lines if line.strip().startswith("flagged")]
    assert "geo=BR: calibration_high" in flagged and "calibration 1.610" in flagged
    assert "400 impressions" in flagged and "geo=DE" not in text


def test_nothing_flagged_says_so_and_no_quality_block_says_nothing() -> None:
    calm = {"segments": [{"field": "geo", "value": "DE", "flags": [], "count": 5}]}
    assert "quality: no audience value flagged (1 values)" in format_stats(_stats(calm))
    assert "quality" not in format_stats(_stats(None))
