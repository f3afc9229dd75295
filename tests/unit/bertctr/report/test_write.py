"""The report folder: every section present, valid PNGs, missing data said as such, escaping."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from bertctr.report.data import ImagesData, ReportData
from bertctr.report.write import write_report

SECTIONS = ("ctr", "ne", "reliability", "images", "ab", "encoder", "drivers", "ope", "quality")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section" and found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "img":
            self.images.append(str(found["src"]))
        if tag == "script":
            self.scripts += 1


def _parse(page: Path) -> _Page:
    parser = _Page()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_every_section_is_drawn_with_valid_pngs(full_data: ReportData, tmp_path: Path) -> None:
    page = write_report(full_data, tmp_path / "out")
    assert page == tmp_path / "out" / "index.html"
    parsed = _parse(page)
    assert parsed.ids == list(SECTIONS)
    assert parsed.scripts == 0
    html = page.read_text()
    assert "not available" not in html
    plots = {p for p in parsed.images if p.startswith("plots/")}
    assert plots == {f"plots/{n}.png" for n in ("ctr", "ne", "reliability", "ab", "drivers")}
    for src in parsed.images:
        file = page.parent / src
        assert file.stat().st_size > 1000 or src.startswith("thumbs/"), src
        with Image.open(file) as image:
            image.verify()
            assert image.format == "PNG"
    # thumbnails: the readable image only, shrunk; the unreadable and unknown ones say so
    thumbs = [p for p in parsed.images if p.startswith("thumbs/")]
    assert len(thumbs) == 1
    with Image.open(page.parent / thumbs[0]) as image:
        assert max(image.size) == 96
    assert html.count("no image") == 2
    assert html.count("tags: not computed") == 3


def test_text_from_redis_is_escaped(full_data: ReportData, tmp_path: Path) -> None:
    html = write_report(full_data, tmp_path).read_text()
    assert "<b>US</b>" not in html and "&lt;b&gt;US&lt;/b&gt;" in html
    assert "<title>test &lt;report&gt;</title>" in html


def test_missing_sources_are_said_not_available(empty_data: ReportData, tmp_path: Path) -> None:
    page = write_report(empty_data, tmp_path)
    html = page.read_text()
    parsed = _parse(page)
    assert parsed.ids == list(SECTIONS)
    assert parsed.images == []
    reasons = re.findall(r"not available: ([^<]*)</p>", html)
    assert len(reasons) == len(SECTIONS)
    assert reasons.count("nothing under this prefix") == 6
    assert "0 of 9 sections have data" in html
    assert not (tmp_path / "plots").exists()


def test_tags_are_shown_when_computed(full_data: ReportData, tmp_path: Path) -> None:
    assert isinstance(full_data.images, ImagesData)
    full_data.images.tags = {"img-1": ["cat", "outdoor"]}
    html = write_report(full_data, tmp_path).read_text()
    assert "tags: cat, outdoor" in html and "tags: not described yet" in html
    assert "tags: not computed" not in html
