"""Write a report: every section's plots and ``index.html`` into one folder."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from bertctr.report import sections as s
from bertctr.report.data import ReportData
from bertctr.report.page import render_page

__all__ = ["build_sections", "write_report"]

log = logging.getLogger(__name__)


def build_sections(data: ReportData, out: Path) -> list[s.Section]:
    """Every section in page order, its plots written under ``out``."""
    return [
        s.ctr_section(data.ctr, out),
        s.ne_section(data.ne, out),
        s.reliability_section(data.reliability, out),
        s.images_section(data.images, out),
        s.ab_section(data.ab, out),
        s.encoder_section(data.encoder),
        s.drivers_section(data.drivers, out),
        s.ope_section(data.ope),
        s.quality_section(data.quality),
    ]


def write_report(data: ReportData, out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` and its PNGs (``plots/``, ``thumbs/``); return the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(data, out)
    when = datetime.fromtimestamp(data.generated_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    meta = [
        f"generated {when}; Redis prefix {data.redis_prefix}; window: {data.window}",
        f"{sum(x.available for x in sections)} of {len(sections)} sections have data",
    ]
    page = out / "index.html"
    page.write_text(render_page(data.title, meta, sections), encoding="utf-8")
    log.info("report written to %s", page)
    return page
