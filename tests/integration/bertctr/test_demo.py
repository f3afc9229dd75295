"""``bertctr demo`` end to end on a small run: exact accounting, and it learns.

Bounds are looser than the 50k-impression benchmark but still fail for a
model that learns nothing (its ranking lift would be about 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from bertctr.harness.stack import EmbeddedStack
from schemas.topics import IMPRESSIONS
from simulator import SimConfig, Simulator

pytestmark = pytest.mark.integration

EVENTS = 6000
SEED = 5
DEMO = [sys.executable, "-m", "bertctr.cli", "demo"]


def test_demo_accounts_for_every_message_and_learns(stack: EmbeddedStack) -> None:
    env = {**os.environ, **stack.env()}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertctr.cli",
            "demo",
            "--events",
            str(EVENTS),
            "--seed",
            str(SEED),
            "--speed",
            "100",
            "--json",
        ],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    stdout = out.stdout.decode()
    assert out.returncode == 0, out.stderr.decode()[-4000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    for key in (
        "impressions",
        "clicks",
        "labelled",
        "dead_lettered",
        "logloss",
        "ne",
        "oracle_ne",
        "auc",
        "oracle_auc",
        "events_per_s",
        "ranking_ctr_lift",
        "oracle_ranking_ctr_lift",
    ):
        assert key in summary, key

    sim = Simulator(SimConfig(seed=SEED, impressions_per_s=5.0))
    shown = {
        json.loads(m.value)["image_id"]
        for m in sim.messages(EVENTS)
        if m.topic == IMPRESSIONS and m.kind == "impression"
    }
    expected = sim.expected_counts
    assert summary["impressions"] == expected["impressions"] == EVENTS
    assert summary["clicks"] == expected["clicks"]
    assert summary["late_clicks"] == expected["late_clicks"]
    assert summary["labelled"] == EVENTS + expected["late_clicks"]
    assert summary["dead_lettered"] == expected["malformed"]
    assert "model default" in stdout  # the human summary precedes the JSON line

    # The demo's counters and model metrics stay readable with `bertctr stats`.
    stats_env = {**env, "BERTCTR_REDIS_PREFIX": summary["redis_prefix"]}
    stats = json.loads(
        subprocess.run(
            [sys.executable, "-m", "bertctr.cli", "stats", "--json"],
            env=stats_env,
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
    )
    assert stats["total"]["impressions"] == EVENTS
    assert stats["total"]["clicks"] == expected["clicks"]
    assert stats["model"]["count"] == summary["labelled"]
    # Learned with embeddings from Triton: each catalogue image embedded once.
    embeddings = stats["model"]["embeddings"]
    assert embeddings["enabled"] and embeddings["failures"] == 0
    assert embeddings["versions"] == {"image_encoder": 2, "text_encoder": 2}  # fitted PCA heads
    assert embeddings["computed"]["image_encoder"] == len(shown)
    assert stats["model"]["ne"] == summary["ne"]
    assert len(stats["model"]["segments"]) > 10
    client = redis.Redis.from_url(stack.redis_url)
    for key in client.scan_iter(match=f"{summary['redis_prefix']}*", count=1000):
        client.delete(key)
    client.close()

    assert 0.5 < summary["auc"] < summary["oracle_auc"] + 0.05
    assert summary["ne"] < 1.1
    # A model that learns nothing scores every variant alike and shows the
    # first one: 0.053 lift on these requests. Learned runs measured 0.15-0.28.
    assert summary["ranking_ctr_lift"] > 0.10
    assert summary["oracle_ranking_ctr_lift"] > summary["ranking_ctr_lift"] - 0.05


def test_progressive_metrics_stay_honest_on_a_short_quiet_stream(stack: EmbeddedStack) -> None:
    """4,000 impressions over ~800 simulated seconds, then nothing: the model may
    not look better than the truth. Learning the reorder buffer once the stream
    went quiet (windows still open) used to report NE 0.44 and AUC 0.98 against
    an oracle NE of 0.89: positives judged before the negatives of their time."""
    env = {**os.environ, **stack.env()}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bertctr.cli",
            "demo",
            "--json",
            "--events",
            "4000",
            "--no-encoders",
        ],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()[-4000:]
    summary = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert summary["ne"] > summary["oracle_ne"] - 0.01, summary
    assert summary["auc"] < summary["oracle_auc"] + 0.03, summary
    assert 0.7 < summary["calibration"] < 1.3, summary
    stats = json.loads(
        subprocess.run(
            [sys.executable, "-m", "bertctr.cli", "stats", "--json"],
            env={**env, "BERTCTR_REDIS_PREFIX": summary["redis_prefix"]},
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
    )
    model = stats["model"]
    assert model["count"] == summary["labelled"] and model["unscored"] == 0
    assert model["buffered"] == 0
    client = redis.Redis.from_url(stack.redis_url)
    for key in client.scan_iter(match=f"{summary['redis_prefix']}*", count=1000):
        client.delete(key)
    client.close()


def test_demo_serve_keeps_the_api_and_page_up_until_interrupted(stack: EmbeddedStack) -> None:
    """``bertctr demo --serve`` (``make serve``): summary, then the URL of a live API."""
    import signal
    import time
    import urllib.request

    from bertctr.harness.procs import free_port

    port = free_port()
    env = {**os.environ, **stack.env(), "BERTCTR_API_PORT": str(port)}
    cmd = [*DEMO, "--serve", "--json", "--events", "1500", "--no-encoders"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 400
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            assert line, f"demo ended early: {lines}"
            lines.append(line)
            if line.startswith("live page:"):
                break
        url = f"http://127.0.0.1:{port}"
        assert lines[-1].split()[2] == f"{url}/", lines[-1]
        summary = json.loads(lines[-2])
        with urllib.request.urlopen(f"{url}/ctr", timeout=10) as resp:
            ctr = json.loads(resp.read())
        assert ctr["total"]["impressions"] == summary["impressions"]
        with urllib.request.urlopen(f"{url}/", timeout=10) as resp:
            assert b"bertctr" in resp.read()
        with urllib.request.urlopen(f"{url}/readyz", timeout=10) as resp:
            assert json.loads(resp.read())["ready"] is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client = redis.Redis.from_url(stack.redis_url)
        prefix = next((json.loads(s)["redis_prefix"] for s in lines if s.startswith("{")), None)
        if prefix:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
        client.close()
