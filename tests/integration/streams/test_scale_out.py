"""N workers, one model, on the real broker and Redis.

The same simulated stream is run, paced as live traffic, once through one
worker (the reference, shared by the module) and then through groups that
change mid-stream:

* two workers, a third joining at 30% of the stream and the one holding the
  learner lease SIGKILLed at 60% (its join partitions and the model move at
  once), then back to two;
* two join workers beside a dedicated learner and its standby, the learner
  SIGKILLed mid-stream.

Each must end with one model that learned every labelled example exactly
once (its count equals the labels the simulator implies), a progressive NE
within 0.01 of the one-worker run, and counters equal to the simulator's
exact totals in both views.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from bertctr.harness.kafka import publish_paced
from bertctr.harness.stack import EmbeddedStack
from bertctr.harness.workers import Namespace, replay_settings
from schemas.keys import KeySpace
from simulator import SimConfig, Simulator
from simulator.messages import SimMessage
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration

IMPRESSIONS = 5000
#: a short window keeps the stream's tail (clicks up to four windows late) short
WINDOW_S = 300.0
#: simulated seconds per wall second: 5 impressions/s simulated is 250/s
SPEED = 50.0


def stream() -> tuple[list[SimMessage], dict[str, int]]:
    sim = Simulator(SimConfig(seed=11, impressions_per_s=5.0, attribution_window_s=WINDOW_S))
    messages = list(sim.messages(IMPRESSIONS))
    return messages, sim.expected_counts


def configure(env: WorkerEnv) -> None:
    env.overrides.update(
        {
            **replay_settings(SPEED, 20 * SPEED),
            "BERTCTR_ATTRIBUTION_WINDOW_S": str(WINDOW_S),
            "BERTCTR_CHECKPOINT_INTERVAL_S": "2",
        }
    )
    env.cli("topics", "create")


def publish(env: WorkerEnv, messages: Sequence[SimMessage]) -> None:
    paced = [(m.ts, (env.topic(m.topic), m.key, m.value)) for m in messages]
    asyncio.run(publish_paced(env.stack.kafka_bootstrap, paced, speed=SPEED))


def redis_json(env: WorkerEnv, key: str) -> Any:
    client = redis.Redis.from_url(env.stack.redis_url)
    try:
        raw = client.get(key)
        return json.loads(raw) if raw is not None else None
    finally:
        client.close()


def model(env: WorkerEnv) -> dict[str, Any]:
    return redis_json(env, KeySpace(env.redis_prefix).model_metrics) or {}


def holder(env: WorkerEnv) -> str | None:
    client = redis.Redis.from_url(env.stack.redis_url)
    try:
        raw = client.get(KeySpace(env.redis_prefix).learner_lease)
        return raw.decode() if isinstance(raw, bytes) else raw
    finally:
        client.close()


def joins(env: WorkerEnv, worker: str) -> bool:
    """Whether ``worker`` reports join partitions of its own (the group has settled)."""
    _, report = env.health()
    return any(
        w["worker"] == worker and (w.get("partitions") or {}).get("join")
        for w in report.get("workers", [])
    )


def totals(env: WorkerEnv, view: str) -> dict[str, int]:
    stats = json.loads(env.cli("stats", "--json", "--view", view))
    return {k: int(v) for k, v in stats["total"].items() if k in ("impressions", "clicks")}


@pytest.fixture(scope="module")
def reference(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The one-worker run's model metrics on the whole stream."""
    messages, expected = stream()
    labelled = IMPRESSIONS + expected["late_clicks"]
    env = WorkerEnv(stack, tmp_path_factory.mktemp("reference"), Namespace.fresh("ref", "test:"))
    try:
        configure(env)
        env.start_worker("solo", named=True)
        publish(env, messages)
        assert wait_until(lambda: model(env).get("count") == labelled, 180), (
            model(env).get("count"),
            labelled,
            env.logs(),
        )
        return model(env)
    finally:
        env.close()


def wait_for_one_model(
    env: WorkerEnv, reference: dict[str, Any], labelled: int, exact: dict[str, int], killed: str
) -> dict[str, Any]:
    """The guarantees after a change of the group: one model, every example once, exact counts."""
    assert wait_until(lambda: model(env).get("count") == labelled, 240), (
        model(env).get("count"),
        labelled,
        env.logs(),
    )
    final = model(env)
    # one model: another worker took the lease over (a new epoch)
    assert final["learner"]["epoch"] >= 2, final["learner"]
    assert final["learner"]["holder"].split("/")[0] != killed
    # every example learned exactly once, through the changes: no more come
    assert not wait_until(lambda: model(env).get("count") != labelled, 10), model(env)
    assert final["count"] == labelled == reference["count"]
    assert abs(final["ne"] - reference["ne"]) < 0.01, (final["ne"], reference["ne"])
    # exact counters in both views
    assert wait_until(lambda: totals(env, "settled") == exact, 60), totals(env, "settled")
    assert totals(env, "live") == exact
    return final


@pytest.mark.timeout(900)
def test_a_worker_joins_and_the_lease_holder_dies_and_nothing_is_lost(
    worker_env: WorkerEnv, reference: dict[str, Any]
) -> None:
    """Join partitions and the model move mid-stream: 2 workers, then 3, then 2 (SIGKILL)."""
    messages, expected = stream()
    labelled = IMPRESSIONS + expected["late_clicks"]
    exact = {"impressions": IMPRESSIONS, "clicks": expected["clicks"]}
    configure(worker_env)
    for name in ("w0", "w1"):
        worker_env.start_worker(name, named=True)
    assert wait_until(lambda: joins(worker_env, "w0") and joins(worker_env, "w1"), 120)
    third, kill_at = int(len(messages) * 0.3), int(len(messages) * 0.6)
    publish(worker_env, messages[:third])
    # a worker joins mid-stream: partitions move between live workers
    worker_env.start_worker("w2", named=True)
    publish(worker_env, messages[third:kill_at])
    assert wait_until(lambda: joins(worker_env, "w2"), 120), worker_env.logs()
    # the worker holding the lease dies: its join partitions and the model move
    leader = holder(worker_env)
    assert leader is not None, worker_env.logs()
    killed = leader.split("/")[0]
    assert killed in ("w0", "w1", "w2")
    worker_env.kill_worker(killed)
    publish(worker_env, messages[kill_at:])
    wait_for_one_model(worker_env, reference, labelled, exact, killed)
    # nothing refused: every click found its impression through the moves
    _, report = worker_env.health()
    rejected: dict[str, int] = {}
    for w in report["workers"]:
        for reason, n in (w.get("join") or {}).get("rejected", {}).items():
            rejected[reason] = rejected.get(reason, 0) + n
    assert not rejected.get("orphan_click"), rejected


@pytest.mark.timeout(900)
def test_the_learner_dies_and_the_one_model_learns_every_example_once(
    worker_env: WorkerEnv, reference: dict[str, Any]
) -> None:
    """Two join workers, a dedicated learner and its standby; the learner is SIGKILLed."""
    messages, expected = stream()
    labelled = IMPRESSIONS + expected["late_clicks"]
    exact = {"impressions": IMPRESSIONS, "clicks": expected["clicks"]}
    configure(worker_env)
    worker_env.start_worker("w0", named=True, role="join")
    worker_env.start_worker("w1", named=True, role="join")
    worker_env.start_worker("l0", named=True, role="learner")
    worker_env.start_worker("l1", named=True, role="learner")
    assert wait_until(lambda: joins(worker_env, "w0") and joins(worker_env, "w1"), 120)
    second = int(len(messages) * 0.6)
    publish(worker_env, messages[:second])
    assert wait_until(lambda: (model(worker_env).get("count") or 0) > 0, 60), worker_env.logs()
    leader = holder(worker_env)
    assert leader is not None, worker_env.logs()
    killed = leader.split("/")[0]
    assert killed in ("l0", "l1")
    worker_env.kill_worker(killed)
    publish(worker_env, messages[second:])
    final = wait_for_one_model(worker_env, reference, labelled, exact, killed)
    # the survivors: one learns, the other stands by
    _, report = worker_env.health()
    roles = {w["worker"]: (w["learner"] or {}).get("role") for w in report["workers"]}
    assert roles[final["learner"]["holder"].split("/")[0]] == "learner", report
    # join workers never bid (a report can be between writes: those present)
    joiners = {w: role for w, role in roles.items() if w in ("w0", "w1")}
    assert joiners and all(role is None for role in joiners.values()), report


@pytest.mark.timeout(600)
def test_a_dedicated_learner_and_its_standby_beside_a_join_worker(worker_env: WorkerEnv) -> None:
    """``--role learner`` never joins the join's group; ``--role join`` never learns."""
    messages = stream()[0][: IMPRESSIONS // 4]
    shown = {json.loads(m.value)["impression_id"] for m in messages if m.kind == "impression"}
    impressions = len(shown)
    clicked = {json.loads(m.value)["impression_id"] for m in messages if m.kind == "click"} & shown
    configure(worker_env)
    worker_env.start_worker("joiner", named=True, role="join")
    worker_env.start_worker("learner-a", named=True, role="learner")
    assert wait_until(lambda: holder(worker_env) is not None, 60), worker_env.logs()
    worker_env.start_worker("learner-b", named=True, role="learner")
    publish(worker_env, messages)
    assert wait_until(lambda: totals(worker_env, "settled")["impressions"] == impressions, 120), (
        totals(worker_env, "settled"),
        worker_env.logs(),
    )
    assert wait_until(lambda: (model(worker_env).get("count") or 0) >= impressions, 60)
    assert totals(worker_env, "live") == {"impressions": impressions, "clicks": len(clicked)}
    assert model(worker_env)["learner"]["holder"].startswith("learner-a/")
    _, report = worker_env.health()
    by_id = {w["worker"]: w for w in report["workers"]}
    assert by_id["joiner"]["learner"] is None and by_id["joiner"]["partitions"]["join"]
    assert by_id["learner-a"]["learner"]["role"] == "learner"
    assert by_id["learner-b"]["learner"]["role"] == "standby"
    assert not by_id["learner-b"]["partitions"].get("join")
