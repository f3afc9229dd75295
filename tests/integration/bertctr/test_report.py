"""``bertctr report`` on a real run: the demo's report and the command's, in a real Chromium.

A short ``bertctr demo`` (no encoders: the real broker, one worker, Redis)
fills Redis and writes its report with the simulator's oracle and the
rendered catalogue's thumbnails; ``bertctr report`` then reads the same
prefix. Both pages must hold every section, their plots valid PNGs, the
sections the run fed with data (CTR, NE, reliability, images, A/B); the
demo's page opens in Debian's headless ``chromium`` (installed by
``tests/browser/ensure_chromium.sh``) without a console error or a broken
image, and leaves ``build/screenshots/report.png``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from PIL import Image
from playwright.sync_api import ConsoleMessage, sync_playwright

from bertctr.harness.stack import EmbeddedStack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path(os.environ.get("BERTCTR_CHROMIUM", "/usr/bin/chromium"))
ENSURE = ROOT / "tests" / "browser" / "ensure_chromium.sh"
SCREENSHOT = ROOT / "build" / "screenshots" / "report.png"
EVENTS = 1500
SEED = 5
CLI = [sys.executable, "-m", "bertctr.cli"]
#: sections a run without encoders fills
FED = ("ctr", "ne", "reliability", "images", "ab")
SECTIONS = ("ctr", "ne", "reliability", "images", "ab", "encoder", "drivers", "ope", "quality")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """The system Chromium, installed with apt when missing (as the live page's test does)."""
    if not CHROMIUM.exists():
        out = subprocess.run(
            [str(ENSURE)], capture_output=True, text=True, timeout=600, check=False
        )
        assert out.returncode == 0, f"could not install chromium:\n{out.stdout}\n{out.stderr}"
    return CHROMIUM


def _sections(html: str) -> dict[str, str]:
    found = re.findall(r'<section id="([a-z]+)">(.*?)</section>', html, flags=re.S)
    return dict(found)


def _check_page(page: Path, thumbnails: bool = True) -> dict[str, str]:
    html = page.read_text()
    sections = _sections(html)
    assert tuple(sections) == SECTIONS
    for name in FED:
        assert "not available" not in sections[name], (name, sections[name][:300])
    for src in re.findall(r'<img[^>]* src="([^"]+)"', html):
        with Image.open(page.parent / src) as image:
            image.verify()
            assert image.format == "PNG", src
    # the demo has the rendered catalogue; the command, without BERTCTR_IMAGE_DIR, says so
    assert ('src="thumbs/' in sections["images"]) is thumbnails
    assert ("no image" in sections["images"]) is not thumbnails
    return sections


@pytest.mark.timeout(600)
def test_the_demo_and_the_command_write_a_report_chromium_opens(
    stack: EmbeddedStack, chromium: Path, tmp_path: Path
) -> None:
    env = {**os.environ, **stack.env()}
    demo = [*CLI, "demo", "--no-encoders", "--events", str(EVENTS), "--seed", str(SEED)]
    demo += ["--speed", "100", "--json", "--report-dir", str(tmp_path / "demo")]
    out = subprocess.run(demo, env=env, capture_output=True, timeout=540, check=False)
    assert out.returncode == 0, out.stderr.decode()[-4000:]
    stdout = out.stdout.decode()
    summary = json.loads(stdout.strip().splitlines()[-1])
    prefix = summary["redis_prefix"]
    client = redis.Redis.from_url(stack.redis_url)
    try:
        page = Path(summary["report"])
        assert page == tmp_path / "demo" / "index.html"
        assert f"report: {page}" in stdout
        sections = _check_page(page)
        assert "The dashed line is the oracle" in sections["ne"]

        cli = [*CLI, "report", str(tmp_path / "cli"), "--since", "1d", "--json"]
        cli_env = {**env, "BERTCTR_REDIS_PREFIX": prefix}
        cli_env.pop("BERTCTR_IMAGE_DIR", None)
        made = subprocess.run(cli, env=cli_env, capture_output=True, timeout=120, check=False)
        assert made.returncode == 0, made.stderr.decode()[-4000:]
        cli_page = Path(json.loads(made.stdout)["report"])
        assert cli_page == tmp_path / "cli" / "index.html"
        cli_sections = _check_page(cli_page, thumbnails=False)
        assert "No oracle" in cli_sections["ne"]
        # no simulator and no Triton: the describer's cache cannot be named, and it says so
        assert "BERTCTR_TRITON_URL unset" in cli_sections["drivers"]
    finally:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()

    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text}")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            view = browser.new_page(viewport={"width": 1200, "height": 900})
            view.on("console", on_console)
            view.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            view.on("requestfailed", lambda req: errors.append(f"failed: {req.url}"))
            view.goto(page.as_uri(), wait_until="load")
            broken = view.evaluate(
                "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                ".map(i => i.src)"
            )
            assert broken == []
            assert view.locator("section").count() == len(SECTIONS)
            assert view.locator("img.thumb").count() >= 2
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            view.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert SCREENSHOT.stat().st_size > 10_000
