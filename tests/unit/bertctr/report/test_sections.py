"""Sections and plots one by one: each PNG valid, empty data said as such, not drawn."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from PIL import Image

from api.series import CtrSeriesData
from bertctr.report import plots
from bertctr.report import sections as s
from bertctr.report.data import EncoderHistory, NeData, ReportData, Unavailable
from bertctr.report.ope import read_ope_file
from bertctr.report.oracle import oracle_ne_curve
from bertctr.report.since import Since, parse_since
from online_ctr.metrics import GroupMetrics, ProgressiveMetrics
from tests.unit.bertctr.report.conftest import png_bytes


def _valid_png(path: Path) -> tuple[int, int]:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        return image.size


def test_each_plot_writes_a_valid_png(full_data: ReportData, tmp_path: Path) -> None:
    assert isinstance(full_data.ctr, CtrSeriesData) and isinstance(full_data.ne, NeData)
    assert isinstance(full_data.reliability, list) and isinstance(full_data.ab, list)
    assert not isinstance(full_data.drivers, Unavailable)
    written = [
        plots.ctr_plot(full_data.ctr, tmp_path / "a" / "ctr.png"),
        plots.ne_plot(full_data.ne, tmp_path / "ne.png"),
        plots.reliability_plot(full_data.reliability, tmp_path / "rel.png"),
        plots.ab_plot(full_data.ab[:1], tmp_path / "ab.png"),
        plots.drivers_heatmap(full_data.drivers, tmp_path / "drivers.png"),
    ]
    for path in written:
        width, height = _valid_png(path)
        assert width >= 400 and height >= 200


def test_thumbnail_keeps_the_aspect_and_refuses_junk(tmp_path: Path) -> None:
    path = plots.thumbnail(png_bytes(size=(300, 150)), tmp_path / "t.png")
    with Image.open(path) as image:
        assert image.size == (96, 48)
    with pytest.raises(OSError):
        plots.thumbnail(b"<svg/>", tmp_path / "bad.png")


def test_a_window_without_impressions_is_not_drawn(ctr_data: CtrSeriesData, tmp_path: Path) -> None:
    assert ctr_data.total is not None
    ctr_data.total.window_impressions = 0
    section = s.ctr_section(ctr_data, tmp_path)
    assert not section.available and "no impressions counted in the window" in section.body
    assert not (tmp_path / s.PLOTS_DIR / "ctr.png").exists()


def test_ne_without_an_oracle_says_so(tmp_path: Path) -> None:
    data = NeData(points=[{"t": 1.0, "count": 10, "ne": 0.95}], oracle=None)
    section = s.ne_section(data, tmp_path)
    assert section.available and "No oracle" in section.body
    empty = s.ne_section(NeData(points=[{"t": 1.0, "count": 0, "ne": None}]), tmp_path)
    assert not empty.available


def test_ab_with_single_variant_items_is_not_available(tmp_path: Path) -> None:
    assert not s.ab_section([], tmp_path).available
    assert not s.reliability_section([], tmp_path).available


def test_encoder_without_any_state_is_not_available() -> None:
    section = s.encoder_section(EncoderHistory(status=None, counts={}, finetune=None))
    assert not section.available and "without embeddings" in section.body
    only_job = s.encoder_section(EncoderHistory(None, {}, {"outcome": "refused", "at": 0.0}))
    assert only_job.available and "refused" in only_job.body and "1970-01-01" in only_job.body


def test_table_formats_and_escapes() -> None:
    html = s.table([{"a": 0.123456, "b": None}, {"a": 12345, "c": "<x>"}])
    assert "<th>a</th><th>b</th><th>c</th>" in html
    assert "0.1235" in html and "12,345" in html and "&lt;x&gt;" in html and "<x>" not in html


def test_oracle_curve_ends_at_the_metrics_ne() -> None:
    rng = random.Random(3)
    pairs = [(p, rng.random() < p) for p in (rng.uniform(0.01, 0.2) for _ in range(5000))]
    curve = oracle_ne_curve(pairs, points=50)
    assert 45 <= len(curve) <= 51 and curve[-1][0] == 5000
    assert [n for n, _ in curve] == sorted(n for n, _ in curve)
    metrics = GroupMetrics()
    for p, y in pairs:
        metrics.update(p, y)
    assert curve[-1][1] == pytest.approx(metrics.snapshot()["ne"])
    assert oracle_ne_curve([]) == []


def test_reliability_rows_of_calibrated_predictions_lie_on_the_diagonal() -> None:
    rng = random.Random(5)
    metrics = ProgressiveMetrics()
    for _ in range(40_000):
        p = rng.choice([0.02, 0.1, 0.3])
        metrics.update(p, rng.random() < p)
    rows = metrics.snapshot()["reliability"]
    assert len(rows) == 3 and sum(r["count"] for r in rows) == 40_000
    for row in rows:
        assert row["predicted"] == pytest.approx(row["observed"], rel=0.1)
        assert any(math.isclose(row["predicted"], p, rel_tol=0.01) for p in (0.02, 0.1, 0.3))


def test_since_parses_durations_times_and_refuses_junk() -> None:
    assert parse_since("2h") == Since(duration_s=7200.0)
    assert parse_since("2026-01-01T00:00:00+00:00").at == 1_767_225_600.0
    assert parse_since("90s").minutes(1000.0, 120) == 2
    assert Since(at=0.0).minutes(1e9, 120) == 120
    for bad in ("yesterday", "nan", "5w", ""):
        with pytest.raises(ValueError):
            parse_since(bad)


def test_ope_rows_from_bertctr_ope_documents(tmp_path: Path) -> None:
    doc = {
        "policy": "variant=v1",
        "n": 1200,
        "logged_ctr": 0.03,
        "estimators": {
            name: {"estimate": 0.04, "ci_low": 0.03, "ci_high": 0.05, "n": 1200, "ess": 300.0}
            for name in ("ips", "snips", "dr")
        },
    }
    lines = tmp_path / "ope.jsonl"
    lines.write_text(json.dumps(doc) + "\n" + json.dumps({**doc, "policy": "uniform"}) + "\n")
    rows = read_ope_file(lines)
    assert [(r["policy"], r["estimator"]) for r in rows][:3] == [
        ("variant=v1", "ips"),
        ("variant=v1", "snips"),
        ("variant=v1", "dr"),
    ]
    assert len(rows) == 6 and rows[0]["estimate"] == 0.04 and rows[0]["ESS"] == 300.0
    single = tmp_path / "one.json"
    single.write_text(json.dumps(doc))
    assert read_ope_file(single) == rows[:3]
    section = s.ope_section(rows)
    assert section.available and "variant=v1" in section.body
    junk = tmp_path / "junk.json"
    junk.write_text('{"policy": "x"}')
    with pytest.raises(ValueError):
        read_ope_file(junk)
