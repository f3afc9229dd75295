"""Metrics as Prometheus scrapes them, from a real worker, a real API and the real Redis.

* A worker with ``BERTCTR_METRICS_PORT`` gets traffic with a few bad
  messages; its ``/metrics`` must count exactly what was published, by
  topic, dead-letter reason and label kind, and its learner's metrics.
  ``bertctr api``'s ``/metrics`` and ``/fleet`` must show the same run from
  Redis: positions, lag, dead letters, labels, model metrics.
* The Grafana dashboard queries only series these real expositions carry.
* The API's registry over hand-written Redis documents shaped like the real
  ones (made by the real classes), scraped through FastAPI's TestClient.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from bertctr.harness.api import ApiServer
from bertctr.harness.kafka import publish
from bertctr.harness.procs import free_port
from bertctr.harness.stack import EmbeddedStack
from bertctr.harness.workers import REPLAY
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.promotion.duel import EncoderDuel
from online_ctr.store import FileModelStore
from schemas import Impression, LabelledImpression
from schemas.keys import KeySpace
from schemas.settings import Settings
from schemas.topics import CLICKS, IMPRESSIONS, LABELLED, full_name
from streams.health.progress import Progress
from streams.join.agent import JoinCounts
from streams.kafka.deadletter import DeadLetterTally
from streams.learner.promotion import Promotion
from streams.telemetry import WorkerTelemetry
from tests.integration.conftest import WorkerEnv, wait_until
from tests.unit.deploy.test_monitoring import DASHBOARD, dashboard_metrics

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, set[str]]:
    """(samples by name and sorted labels, every series name a query may use)."""
    samples: Samples = {}
    series: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            series.add(f"{family.name}_total")
        elif family.type == "histogram":
            series.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        else:
            series.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, series


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def impression(i: int, ts: float) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "impression_id": f"imp-{i}",
        "ts": ts,
        "item_id": f"sku-{i % 3}",
        "image_id": f"img-{i % 3}",
        "title": "red shoe",
        "position": 0,
        "segment": {"device": "mobile", "geo": "DE"},
    }


N_IMPRESSIONS = 40
CLICKED = range(0, N_IMPRESSIONS, 5)  # 8 positives, 32 negatives


def traffic(env: WorkerEnv) -> list[tuple[str, bytes | None, bytes]]:
    imps, clicks = env.topic(IMPRESSIONS), env.topic(CLICKS)
    base = time.time() - 100
    messages: list[tuple[str, bytes | None, bytes]] = []
    for i in range(N_IMPRESSIONS):
        key = f"imp-{i}".encode()
        messages.append((imps, key, json.dumps(impression(i, base + i)).encode()))
        if i in CLICKED:
            click = {"event_id": f"c-{i}", "impression_id": f"imp-{i}", "ts": base + i + 2}
            messages.append((clicks, key, json.dumps(click).encode()))
    # the bad ones: two not JSON, one without required fields, one keyed wrongly
    messages += [
        (imps, b"imp-x", b"{not json"),
        (imps, b"imp-y", b"\xff\xfe"),
        (clicks, b"imp-z", json.dumps({"event_id": "c-z"}).encode()),
        (imps, b"imp-other", json.dumps(impression(99, base)).encode()),
    ]
    return messages


EXPECTED_DEAD = {"invalid_json": 2, "schema_violation": 1, "key_mismatch": 1}


def test_worker_and_api_metrics_count_what_was_published(
    worker_env: WorkerEnv, tmp_path: Path
) -> None:
    port = free_port()
    worker_env.overrides.update(
        {
            **REPLAY,
            "BERTCTR_ATTRIBUTION_WINDOW_S": "5",
            "BERTCTR_HEALTH_INTERVAL_S": "1",
            "BERTCTR_CHECKPOINT_IDLE_S": "1",
            "BERTCTR_METRICS_PORT": str(port),
        }
    )
    worker_env.cli("topics", "create")
    worker_env.start_worker()
    worker_url = f"http://127.0.0.1:{port}/metrics"
    assert wait_until(lambda: _answers(worker_url), timeout_s=60), worker_env.logs()
    asyncio.run(publish(worker_env.stack.kafka_bootstrap, traffic(worker_env)))
    imps, clicks = worker_env.topic(IMPRESSIONS), worker_env.topic(CLICKS)
    labelled = worker_env.topic(LABELLED)
    messages = "bertctr_worker_messages_total"
    last: list[Samples] = []

    def counted() -> bool:
        got, _ = parse(scrape(worker_url))
        last[:] = [got]
        # the counters and the learner read labelled with consumers of their own
        return (
            value(got, "bertctr_worker_labels_total", kind="negative") == 32
            and (value(got, "bertctr_worker_model_examples") or 0) >= N_IMPRESSIONS
            and (value(got, messages, agent="counters", topic=labelled) or 0) >= N_IMPRESSIONS
            and (value(got, messages, agent="learner", topic=labelled) or 0) >= N_IMPRESSIONS
        )

    assert wait_until(counted, timeout_s=60), (last, worker_env.logs())
    got, worker_series = parse(scrape(worker_url))
    messages = "bertctr_worker_messages_total"
    assert value(got, messages, agent="join", topic=imps) == N_IMPRESSIONS + 3
    assert value(got, messages, agent="join", topic=clicks) == len(CLICKED) + 1
    # the counters and the learner each read every label (and watermark records)
    assert (value(got, messages, agent="counters", topic=labelled) or 0) >= N_IMPRESSIONS
    dead = {
        dict(labels)["reason"]: n
        for (name, labels), n in got.items()
        if name == "bertctr_worker_dead_letters_total"
    }
    assert dead == EXPECTED_DEAD
    kinds = {k: value(got, "bertctr_worker_labels_total", kind=k) for k in ("positive", "late")}
    assert kinds == {"positive": len(CLICKED), "late": 0}
    assert 0 < (value(got, "bertctr_worker_model_auc") or 0) <= 1

    # the API tells the same run from Redis
    with ApiServer(worker_env.env(), tmp_path / "api.log") as api:

        def reported() -> bool:
            status, text = api.request("GET", "/metrics")
            fleet, _ = parse(text)
            last[:] = [fleet]
            return (
                status == 200
                and value(fleet, "bertctr_events_processed_total", topic=imps) == N_IMPRESSIONS + 3
                and value(fleet, "bertctr_labels_total", worker=_worker(fleet), kind="negative")
                == 32
            )

        assert wait_until(reported, timeout_s=30), (last, api.logs())
        fleet, api_series = parse(api.request("GET", "/metrics")[1])
        worker = _worker(fleet)
        assert value(fleet, "bertctr_workers", state="healthy") == 1
        assert value(fleet, "bertctr_redis_up") == 1
        assert value(fleet, "bertctr_events_processed_total", topic=clicks) == len(CLICKED) + 1
        for reason, n in EXPECTED_DEAD.items():
            assert value(fleet, "bertctr_dead_letters_total", worker=worker, reason=reason) == n
        lags = {
            (d["agent"], d["topic"]): n
            for (name, labels), n in fleet.items()
            if name == "bertctr_consumer_lag"
            for d in [dict(labels)]
        }
        assert lags[("join", imps)] == 0 and ("learner", labelled) in lags
        assert (value(fleet, "bertctr_model_examples") or 0) >= N_IMPRESSIONS
        assert value(fleet, "bertctr_model_ne") is not None
        assert value(fleet, "bertctr_join_events_total", worker=worker, kind="clicks") == len(
            CLICKED
        )
        # the API timed the requests it answered, by route template
        count = "bertctr_api_request_seconds_count"
        assert (value(fleet, count, method="GET", route="/metrics", status="200") or 0) >= 1

        doc = api.get("/fleet")
        assert doc["processed"][imps] == N_IMPRESSIONS + 3
        assert doc["dead_letters"] == EXPECTED_DEAD
        assert doc["labels"] == {"positive": len(CLICKED), "negative": 32, "late": 0}
        assert [w["worker"] for w in doc["workers"]] == [worker]
        assert doc["workers"][0]["healthy"] is True
        assert doc["join"]["rejected"] == EXPECTED_DEAD

    # every series a dashboard panel queries is in what the processes really serve
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard_metrics(dashboard) - (worker_series | api_series) == set()


def _answers(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True


def _worker(samples: Samples) -> str:
    for name, labels in samples:
        if name == "bertctr_worker_report_age_seconds":
            return dict(labels)["worker"]
    return ""


# --- the API's registry over Redis documents made by the real classes --------------------


T0 = 1_700_000_000.0


def learned_duel() -> EncoderDuel:
    """A duel whose champion scored and learned 60 examples, judging a challenger."""
    duel = EncoderDuel(Learner(make_model(), window_s=10.0), "image_encoder.v1")
    for i in range(60):
        imp = Impression.model_validate(impression(i, T0 + i))
        labelled = LabelledImpression.from_impression(
            imp, clicked=i % 4 == 0, click_delay_s=None, late=False, labelled_at=T0 + i
        )
        duel.submit(labelled, "labelled:0")
    duel.advance("labelled:0", T0 + 100)
    duel.challenge("image_encoder.v2")
    return duel


def health_report(worker: str, topic_prefix: str) -> dict[str, Any]:
    """A report as HealthReporter.build writes it, from the real parts it reads."""
    progress = Progress()
    imps, labelled = full_name(topic_prefix, IMPRESSIONS), full_name(topic_prefix, LABELLED)
    progress.mark("join", imps, 0, 41, T0)
    progress.mark("learner", labelled, 0, 9, T0)
    counts = JoinCounts(impressions=42, clicks=5)
    for i in range(6):
        imp = Impression.model_validate(impression(i, T0))
        counts.label(
            LabelledImpression.from_impression(
                imp, clicked=i < 2, click_delay_s=None, late=i == 5, labelled_at=T0
            )
        )
    counts.reject("invalid_json")
    tally = DeadLetterTally()
    tally.add("embedding_failed")
    now = time.time()
    return {
        "worker": worker,
        "host": "h",
        "pid": 1,
        "at": now,
        "started_at": now - 60,
        "interval_s": 5.0,
        "partitions": progress.report(
            {"join": [(imps, 0)], "counters": [(labelled, 0)], "learner": [(labelled, 0)]},
            highwater=lambda t, p: 42 if t == imps else 30,
            committed=lambda t, p: 0,
            now=now,
        ),
        "join": counts.as_dict(),
        "dead_letters": tally.merged(counts.rejected),
        "books": {},
    }


@pytest.fixture
def redis_prefix(stack: EmbeddedStack) -> Iterator[str]:
    prefix = f"test:metrics:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(stack.redis_url)
    try:
        found = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if found:
            client.delete(*found)
    finally:
        client.close()


def test_the_api_exports_redis_documents_shaped_like_the_real_ones(
    stack: EmbeddedStack, redis_prefix: str, tmp_path: Path
) -> None:
    keys = KeySpace(redis_prefix)
    duel = learned_duel()
    status = Promotion(Settings(kafka_bootstrap=None)).status(duel, None)
    metrics = duel.champion.metrics.snapshot()
    metrics.update({"model": "default", "updated_at": time.time(), "unscored": 0, "buffered": 0})
    report = health_report("w-1", "p-")
    imps, labelled = full_name("p-", IMPRESSIONS), full_name("p-", LABELLED)
    client = redis.Redis.from_url(stack.redis_url)
    try:
        client.set(keys.model_metrics, json.dumps(metrics))
        client.set(keys.encoder_status, json.dumps(status))
        client.hset(keys.encoder_decisions, mapping=dict(duel.counts().items()))
        client.set(keys.health("w-1"), json.dumps(report))
        client.zadd(keys.workers, {"w-1": report["at"]})
    finally:
        client.close()
    settings = Settings(
        redis_url=stack.redis_url, redis_prefix=redis_prefix, checkpoint_dir=str(tmp_path)
    )
    app = create_app(settings, FileModelStore(tmp_path, b"key"))
    with TestClient(app) as http:
        http.get("/ctr", params={"item": "sku-1"})
        response = http.get("/metrics")
        doc = http.get("/fleet").json()
    assert response.status_code == 200
    got, series = parse(response.text)
    assert value(got, "bertctr_model_examples") == 60
    assert value(got, "bertctr_model_auc") == pytest.approx(metrics["auc"])
    assert value(got, "bertctr_encoder_version", role="champion") == 1
    assert value(got, "bertctr_encoder_version", role="challenger") == 2
    assert value(got, "bertctr_encoder_decisions", decision="promote") == 0
    assert value(got, "bertctr_events_processed_total", topic=imps) == 42
    assert value(got, "bertctr_events_processed_total", topic=labelled) == 10
    assert value(got, "bertctr_consumer_lag", agent="learner", topic=labelled, partition="0") == 20
    assert value(got, "bertctr_labels_total", worker="w-1", kind="late") == 1
    assert value(got, "bertctr_dead_letters_total", worker="w-1", reason="embedding_failed") == 1
    routes = {dict(labels).get("route") for name, labels in got if name.startswith("bertctr_api")}
    assert routes == {"/ctr"}  # the template, not /ctr?item=sku-1; /metrics is still running
    assert doc["labels"] == {"positive": 2, "negative": 3, "late": 1}
    assert doc["dead_letters"] == {"embedding_failed": 1, "invalid_json": 1}
    assert doc["lag"] == {f"{imps}:0": 0, f"{labelled}:0": 30}
    # the dashboard's series: these, and a worker's own (made from the same real parts)
    telemetry = WorkerTelemetry(JoinCounts(), lambda: {"invalid_json": 1})
    telemetry.handled("join", [])
    telemetry.observe_model(metrics)
    _, worker_series = parse(telemetry.exposition().decode())
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard_metrics(dashboard) - (series | worker_series) == set()
