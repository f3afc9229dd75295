"""The live page (``GET /``) in a real headless Chromium, on a real worker's data.

Simulated traffic goes through a broker, one worker and Redis; ``bertctr
api`` serves the page; Debian's ``chromium`` (installed by
``tests/browser/ensure_chromium.sh``, never a browser download) opens it,
driven by Playwright. The charts must fill with data, the page must log no
error, and a screenshot is left at :data:`SCREENSHOT` for people to look at.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from bertctr.harness.api import ApiServer
from bertctr.harness.kafka import publish
from bertctr.harness.workers import REPLAY
from schemas.keys import KeySpace
from schemas.topics import full_name
from simulator import SimConfig, Simulator
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path(os.environ.get("BERTCTR_CHROMIUM", "/usr/bin/chromium"))
ENSURE = ROOT / "tests" / "browser" / "ensure_chromium.sh"
#: where the screenshot is left (``var/`` is git-ignored)
SCREENSHOT = ROOT / "var" / "screenshots" / "dashboard.png"
EVENTS = 3000
#: an encoder status (``bertctr stats --json`` ``encoder``) while version 3 calibrates,
#: version 2 having been retired
CALIBRATING = {
    "champion": "image_encoder",
    "champion_version": 1,
    "challenger": "image_encoder.v3",
    "challenger_version": 3,
    "calibrating": True,
    "comparison": {"n": 0, "mean": None, "std": None, "lo": -1.0, "hi": 1.0},
    "counts": {"promote": 0, "retire": 1},
    "decisions": [],
    "last_decision": {
        "decision": "retire",
        "challenger": "image_encoder.v2",
        "champion": "image_encoder",
        "n": 30000,
        "reason": "not better",
    },
}
#: the page's charts and what each shows
CHARTS = ("chart-ctr-segment", "chart-ctr-variant", "chart-model")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """The system Chromium, installed with apt when missing."""
    if not CHROMIUM.exists():
        out = subprocess.run(
            [str(ENSURE)], capture_output=True, text=True, timeout=600, check=False
        )
        assert out.returncode == 0, f"could not install chromium:\n{out.stdout}\n{out.stderr}"
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing after {ENSURE}"
    return CHROMIUM


def publish_traffic(env: WorkerEnv) -> Simulator:
    """3,000 simulated impressions (and their clicks, duplicates, malformed messages),
    dated over the last 40 minutes, published flat out."""
    start = time.time() - 2400
    sim = Simulator(SimConfig(seed=11, n_items=6, impressions_per_s=2.0, start_ts=start))
    messages = [
        (full_name(env.topic_prefix, m.topic), m.key, m.value) for m in sim.messages(EVENTS)
    ]
    asyncio.run(publish(env.stack.kafka_bootstrap, messages))
    return sim


@pytest.fixture
def api(worker_env: WorkerEnv) -> Iterator[ApiServer]:
    """A worker that has counted and learned the traffic, and the API over its Redis."""
    worker_env.overrides.update({**REPLAY, "BERTCTR_CHECKPOINT_IDLE_S": "1"})
    worker_env.cli("topics", "create")
    worker_env.start_worker()
    publish_traffic(worker_env)
    server = ApiServer(worker_env.env(), worker_env.tmp / "api.log").start()
    try:
        yield server
    finally:
        server.stop()


def data_ready(api: ApiServer) -> bool:
    """Counters per minute and two points of the model's history are in Redis."""
    segments = api.get("/series/ctr?by=segment")
    model = api.get("/series/model")
    return bool(segments["series"]) and len(model["points"]) >= 2


def chart_points(page: Page, chart: str) -> int:
    return int(page.get_attribute(f"#{chart}", "data-points") or 0)


def test_the_live_page_shows_the_system_in_chromium(
    chromium: Path, api: ApiServer, worker_env: WorkerEnv
) -> None:
    assert wait_until(lambda: data_ready(api), timeout_s=90, interval_s=1), (
        api.get("/series/model"),
        worker_env.logs(),
    )
    served = set(api.get("/openapi.json")["paths"])
    has_fleet = "/fleet" in served
    has_ab = any(p.startswith("/ab/") for p in served)
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text} at {msg.location}")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            requests: list[str] = []
            page.on("request", lambda req: requests.append(req.url))
            page.goto(f"{api.url}/?refresh=1", wait_until="load")
            # three refreshes: the throughput needs two fleet polls
            page.wait_for_function(
                "Number(document.body.dataset.refreshes || 0) >= 3", timeout=30_000
            )
            points = {chart: chart_points(page, chart) for chart in CHARTS}
            assert all(n > 0 for n in points.values()), points
            drawn: dict[str, Any] = page.evaluate(
                """() => Object.fromEntries(Object.entries(window.bertctr.charts)
                     .map(([id, u]) => [id, {rows: u.data.length, length: u.data[0].length,
                                             labels: u.series.slice(1).map(s => s.label)}]))"""
            )
            for chart in CHARTS:
                assert drawn[chart]["length"] > 0, drawn
            # by segment: all segments together, then the busiest (at most 12)
            assert drawn["chart-ctr-segment"]["labels"][0] == "all segments"
            assert 2 <= len(drawn["chart-ctr-segment"]["labels"]) <= 13
            assert drawn["chart-model"]["labels"] == ["NE", "AUC", "calibration"]
            assert drawn["chart-model"]["length"] >= 2

            # another item from the selector: the variant chart follows it
            options = page.eval_on_selector_all(
                "#item-select option", "els => els.map(e => e.value).filter(Boolean)"
            )
            assert len(options) == 6, options  # the simulated catalogue
            page.select_option("#item-select", options[-1])
            page.wait_for_function(
                "(item) => { const u = window.bertctr.charts['chart-ctr-variant'];"
                " return u && u.series[1].label === 'item ' + item; }",
                arg=options[-1],
                timeout=10_000,
            )
            assert chart_points(page, "chart-ctr-variant") > 0
            if has_ab:  # the A/B view follows the chosen item too
                page.wait_for_function(
                    "(item) => document.getElementById('ab-item').textContent === item"
                    " && document.getElementById('panel-ab').classList.contains('has-data')",
                    arg=options[-1],
                    timeout=10_000,
                )

            status = page.text_content("#status") or ""
            assert "problem" not in (page.get_attribute("#status", "class") or ""), status
            panels = {
                "workers": page.get_attribute("#panel-workers", "class") or "",
                "throughput": page.get_attribute("#panel-throughput", "class") or "",
                "dead letters": page.get_attribute("#panel-dead-letters", "class") or "",
                "ab": page.get_attribute("#panel-ab", "class") or "",
            }
            if has_fleet:
                for name in ("workers", "throughput", "dead letters"):
                    assert "has-data" in panels[name], (name, status)
                assert page.locator("#worker-table tbody tr").count() == 1
            else:  # not served (yet): "no data yet", and nothing requested in vain
                assert "/fleet" in status and "has-data" not in panels["workers"]
                assert not [u for u in requests if u.rstrip("/").endswith("/fleet")], requests
            if has_ab:
                assert "has-data" in panels["ab"], status
                assert page.locator("#ab-table tbody tr").count() >= 2
            else:
                assert "has-data" not in panels["ab"]
            assert page.locator("#panel-model .empty").is_hidden()

            # the encoder panel while a new version calibrates, as a worker with
            # Triton writes it (this worker has none, so nothing overwrites it)
            client = redis.Redis.from_url(worker_env.stack.redis_url)
            try:
                client.set(
                    KeySpace(worker_env.redis_prefix).encoder_status, json.dumps(CALIBRATING)
                )
            finally:
                client.close()
            page.wait_for_function(
                "(document.getElementById('encoder-facts').textContent || '')"
                ".includes('fitting the map')",
                timeout=30_000,
            )
            facts = page.text_content("#encoder-facts") or ""
            assert "image_encoder.v3" in facts and "retire image_encoder.v2" in facts, facts
            # nothing from outside the server
            assert all(u.startswith(api.url) or u.startswith("data:") for u in requests), requests

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            print(f"screenshot: {SCREENSHOT}")
        finally:
            browser.close()
    assert errors == [], errors
