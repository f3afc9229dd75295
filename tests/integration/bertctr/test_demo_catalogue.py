"""``bertctr demo --world catalogue``: the loop on a small shop where items launch.

The real broker, Redis and Triton, one worker, the fine-tuning cycle: every
message accounted for on a world with Zipf popularity and launches, and the
cold-start ranking (items no impression has shown) judged beside the oracle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from bertctr.demo_config import DemoConfig
from bertctr.harness.stack import EmbeddedStack
from schemas.topics import IMPRESSIONS
from simulator import Simulator

pytestmark = pytest.mark.integration

EVENTS = 6000
SEED = 5
ITEMS = 80


@pytest.mark.timeout(600)
def test_demo_runs_the_loop_on_a_world_with_launches(stack: EmbeddedStack) -> None:
    env = {**os.environ, **stack.env()}
    cmd = [sys.executable, "-m", "bertctr.cli", "demo", "--world", "catalogue"]
    cmd += ["--items", str(ITEMS), "--events", str(EVENTS), "--seed", str(SEED)]
    cmd += ["--speed", "100", "--json"]
    out = subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
    stdout = out.stdout.decode()
    assert out.returncode == 0, out.stderr.decode()[-4000:]
    summary = json.loads(stdout.strip().splitlines()[-1])

    config = DemoConfig(events=EVENTS, seed=SEED, world="catalogue", items=ITEMS).sim_config()
    sim = Simulator(config)
    items = [
        json.loads(m.value)["item_id"]
        for m in sim.messages(EVENTS)
        if m.topic == IMPRESSIONS and m.kind == "impression"
    ]
    expected = sim.expected_counts
    assert summary["impressions"] == expected["impressions"] == EVENTS
    assert summary["clicks"] == expected["clicks"]
    assert summary["labelled"] == EVENTS + expected["late_clicks"]
    assert summary["dead_lettered"] == expected["malformed"]
    # items launched during the run were shown (and none before its launch)
    launched = {i for i in items if (sim.item_launch_ts(i) or 0.0) > sim.config.start_ts}
    assert launched
    client = redis.Redis.from_url(stack.redis_url)
    for key in client.scan_iter(match=f"{summary['redis_prefix']}*", count=1000):
        client.delete(key)
    client.close()

    # the cycle ran and says how it ended
    assert summary["encoder"]["finetune_outcome"] in ("published", "refused")
    assert "fine-tun" in stdout
    # cold start: items not launched yet, ranked by their pictures and titles only
    cold, oracle_cold = (
        summary["cold_start_ranking_ctr_lift"],
        summary["oracle_cold_start_ranking_ctr_lift"],
    )
    assert oracle_cold > 0.1
    assert -oracle_cold < cold < oracle_cold + 0.05
    assert "cold start (items not launched yet)" in stdout
