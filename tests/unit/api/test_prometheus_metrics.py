"""Metrics without services: the fleet summary, the expositions, the worker's and Triton's counters.

The fleet is summarised from hand-made health reports shaped like
:class:`~streams.health.reporter.HealthReporter`'s; expositions are parsed
back with prometheus_client's own parser, so what is checked is what a
Prometheus server reads.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from api.ctr_counters import CtrCounters
from api.fleet import FleetView, summarise
from api.telemetry import UNMATCHED, ApiMetrics, RequestTimer
from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.breaker import CircuitBreaker
from encoder_server.client.errors import EncoderUnavailable
from encoder_server.client.triton_client import BREAKER_OPEN, RequestOutcome, TritonEmbeddingClient
from schemas.events import Impression, LabelledImpression
from schemas.metric_names import API_METRICS, BUILD_INFO, PROCESS, WORKER_METRICS, MetricName
from schemas.topics import JOIN_TICKS, full_name
from streams.join.agent import JoinCounts
from streams.kafka.deadletter import DeadLetterTally
from streams.telemetry import WorkerTelemetry

ROOT = Path(__file__).resolve().parents[3]
NOW = 10_000.0
IMP, CLK, LAB = "p-impressions", "p-clicks", "p-labelled"


def row(processed: int | None, lag: int | None, committed: int | None = None) -> dict[str, Any]:
    """One partition row as :meth:`streams.health.progress.Progress.report` writes it."""
    return {
        "processed": processed,
        "highwater": None if lag is None else (processed or 0) + 1 + lag,
        "committed": committed,
        "lag": lag,
        "stalled_s": 0.0,
    }


def join_counts(**kw: Any) -> dict[str, Any]:
    counts = JoinCounts(**kw)
    return counts.as_dict()


def report(worker: str, at: float, partitions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "worker": worker,
        "host": "h",
        "pid": 1,
        "at": at,
        "started_at": at - 100,
        "interval_s": 5.0,
        "partitions": partitions,
        "books": {},
        **extra,
    }


def reports() -> list[dict[str, Any]]:
    tally = DeadLetterTally()
    tally.add("embedding_failed")
    tally.add("schema_violation")
    a_join = join_counts(
        impressions=90,
        clicks=9,
        duplicates=2,
        repeat_clicks=1,
        labels=12,
        positive=7,
        negative=4,
        late=1,
        rejected={"invalid_json": 3, "schema_violation": 1},
    )
    a = report(
        "w-a",
        NOW - 1,
        {
            "join": {f"{IMP}:0": row(49, 0), f"{CLK}:0": row(4, 2)},
            "counters": {f"{LAB}:0": row(19, 0)},
            "learner": {f"{LAB}:0": row(9, 10)},
        },
        join=a_join,
        dead_letters=tally.merged(a_join["rejected"]),
    )
    # an older report (written before dead_letters were reported) of a worker
    # that also held partition 0 of clicks, and is stale now
    b_join = join_counts(
        impressions=10, labels=3, positive=1, negative=2, rejected={"invalid_json": 2}
    )
    b = report(
        "w-b",
        NOW - 100,
        {
            "join": {f"{IMP}:1": row(None, 5, committed=30), f"{CLK}:0": row(2, 7)},
            "counters": {f"{LAB}:1": row(None, None)},
        },
        join=b_join,
    )
    return [a, b]


def test_the_summary_sums_workers_and_takes_positions_and_lag_right() -> None:
    fleet = summarise(reports(), NOW, max_stall_s=60)
    a, b = fleet.workers
    assert (a.worker, a.healthy, a.problems, a.age_s) == ("w-a", True, [], 1.0)
    assert b.worker == "w-b" and not b.healthy and "no report for 100s" in b.problems[0]
    assert (fleet.healthy, fleet.unhealthy) == (1, 1)
    # next offset to handle, the furthest agent per partition, summed over partitions
    assert fleet.processed == {IMP: 50 + 30, CLK: 5, LAB: 20}
    # lag per agent; a partition two reports have comes from the fresher one
    assert fleet.lag == {
        ("counters", LAB, 0): 0,
        ("join", CLK, 0): 2,
        ("join", IMP, 0): 0,
        ("join", IMP, 1): 5,
        ("learner", LAB, 0): 10,
    }
    assert fleet.dead_letters == {"embedding_failed": 1, "invalid_json": 5, "schema_violation": 2}
    assert fleet.labels == {"positive": 8, "negative": 6, "late": 1}
    assert fleet.join["impressions"] == 100 and fleet.join["labels"] == 15
    assert fleet.join["rejected"] == {"invalid_json": 5, "schema_violation": 1}


def test_the_fleet_document_has_exactly_the_promised_shape() -> None:
    doc = summarise(reports(), NOW, max_stall_s=60).document()
    assert set(doc) == {
        "at",
        "workers",
        "processed",
        "events",
        "lag",
        "dead_letters",
        "labels",
        "join",
    }
    assert doc["at"] == NOW
    assert [set(w) for w in doc["workers"]] == [{"worker", "age_s", "healthy", "problems"}] * 2
    assert doc["lag"] == {f"{CLK}:0": 2, f"{IMP}:0": 0, f"{IMP}:1": 5, f"{LAB}:0": 10}
    assert doc["labels"] == {"positive": 8, "negative": 6, "late": 1}
    assert doc["processed"] == {CLK: 5, IMP: 80, LAB: 20}
    assert summarise([], NOW, 60).document() == {
        "at": NOW,
        "workers": [],
        "processed": {},
        "events": {"impressions": 0, "clicks": 0, "labelled": 0},
        "lag": {},
        "dead_letters": {},
        "labels": {"positive": 0, "negative": 0, "late": 0},
        "join": {},
    }


def test_events_leave_out_ticks_and_watermark_records() -> None:
    """An idle stream: ticks and watermark records move offsets, but no event happens."""
    before = summarise(reports(), NOW, max_stall_s=60)
    assert before.events == {"impressions": 100, "clicks": 9, "labelled": 15}
    idle = reports()
    ticks = full_name("p-", JOIN_TICKS)
    for r in idle:
        r["at"] += 5
        for rows in r["partitions"].values():
            for tp, part in list(rows.items()):
                if tp.startswith(LAB) and part["processed"] is not None:
                    part["processed"] += 20  # 4 watermark records a second, for 5 s
        r["partitions"]["join"][f"{ticks}:0"] = row(40, 0)
    after = summarise(idle, NOW + 5, max_stall_s=60)
    assert after.processed[LAB] > before.processed[LAB] and ticks in after.processed
    assert after.events == before.events
    assert after.document()["events"] == before.document()["events"]


def test_a_malformed_report_counts_nothing_instead_of_failing() -> None:
    odd = {"worker": "w-x", "at": "yesterday", "partitions": {"join": {"nocolon": {}}}, "join": 3}
    fleet = summarise([odd, {"partitions": {"join": {"t:1": "row"}}}], NOW, 60)
    assert [w.worker for w in fleet.workers] == ["?", "w-x"]
    assert not any(w.healthy for w in fleet.workers)
    assert fleet.processed == {} and fleet.lag == {} and fleet.dead_letters == {}


MODEL = {
    "count": 1200,
    "logloss": 0.31,
    "ne": 0.87,
    "auc": 0.71,
    "calibration": 1.04,
    "ctr": 0.1,
    "segments": {"device=mobile": {"count": 3}},
    "model": "ftrl",
    "updated_at": NOW - 2,
    "unscored": 4,
}
ENCODER = {
    "champion": "image_encoder.v2",
    "challenger": "image_encoder.v3",
    "champion_version": 2,
    "challenger_version": None,  # not known to this worker's embedder yet
    "comparison": {"n": 50},
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def family_names(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


def declared(metrics: tuple[MetricName, ...]) -> set[str]:
    return {m.family for m in metrics}


def test_the_api_exposition_carries_the_fleet_model_and_encoder() -> None:
    metrics = ApiMetrics()
    view = FleetView(summarise(reports(), NOW, 60), MODEL, ENCODER, {"promote": 1, "retire": 2})
    body, content_type = metrics.render(view)
    assert content_type.startswith("text/plain")
    text = body.decode()
    got = samples(text)
    assert got[("bertctr_redis_up", ())] == 1
    assert got[("bertctr_workers", (("state", "healthy"),))] == 1
    assert got[("bertctr_workers", (("state", "unhealthy"),))] == 1
    assert got[("bertctr_events_processed_total", (("topic", IMP),))] == 80
    lag = ("bertctr_consumer_lag", (("agent", "learner"), ("partition", "0"), ("topic", LAB)))
    assert got[lag] == 10
    dead = ("bertctr_dead_letters_total", (("reason", "invalid_json"), ("worker", "w-b")))
    assert got[dead] == 2  # w-b's from its join's rejected
    assert got[("bertctr_labels_total", (("kind", "late"), ("worker", "w-a")))] == 1
    assert got[("bertctr_join_events_total", (("kind", "clicks"), ("worker", "w-a")))] == 9
    assert got[("bertctr_model_ne", ())] == pytest.approx(0.87)
    assert got[("bertctr_model_examples", ())] == 1200
    assert got[("bertctr_model_updated_timestamp_seconds", ())] == NOW - 2
    assert got[("bertctr_encoder_version", (("role", "champion"),))] == 2
    assert got[("bertctr_encoder_version", (("role", "challenger"),))] == 3  # from its name
    assert got[("bertctr_encoder_decisions", (("decision", "retire"),))] == 2
    # every family exported is declared in schemas.metric_names, and every declared one exported
    assert family_names(text) == declared(API_METRICS)
    # the view is used for one rendering only
    assert "bertctr_workers" not in metrics.render(FleetView(None))[0].decode()


def test_without_redis_only_the_apis_own_metrics_and_redis_up_0() -> None:
    body, _ = ApiMetrics().render(FleetView(None))
    text = body.decode()
    assert samples(text)[("bertctr_redis_up", ())] == 0
    assert family_names(text) == {
        "bertctr_redis_up",
        "bertctr_api_request_seconds",
        "bertctr_triton_request_seconds",
        "bertctr_triton_failures",
        BUILD_INFO.family,
        *(m.family for m in PROCESS),
    }


def test_ctr_counters_by_view_segment_and_variant() -> None:
    stats = {
        "total": {"impressions": 100, "clicks": 7},
        "segments": {f"geo=G{i}": {"impressions": 10 * i, "clicks": i} for i in range(1, 5)},
        "items": {
            "a": {"variants": {"v0": {"impressions": 30, "clicks": 1}, "v1": {"impressions": 5}}},
            "b": {"variants": {"v0": {"impressions": 20, "clicks": 3}}},
        },
    }
    live = CtrCounters.from_stats(stats, max_series=2)
    settled = CtrCounters.from_stats({**stats, "total": {"impressions": 90, "clicks": 6}}, 2)
    view = FleetView(summarise([], NOW, 60), ctr={"live": live, "settled": settled})
    got = samples(ApiMetrics().render(view)[0].decode())
    assert got[("bertctr_impressions_total", (("view", "live"),))] == 100
    assert got[("bertctr_clicks_total", (("view", "settled"),))] == 6
    seg = "bertctr_segment_impressions_total"
    kept = sorted(dict(labels)["segment"] for name, labels in got if name == seg)
    assert kept == ["geo=G3", "geo=G3", "geo=G4", "geo=G4"]  # the 2 largest, in both views
    assert got[("bertctr_segment_clicks_total", (("segment", "geo=G4"), ("view", "live")))] == 4
    variant = ("bertctr_variant_impressions_total", (("variant", "v0"), ("view", "live")))
    assert got[variant] == 50  # summed over items a and b
    assert got[("bertctr_variant_clicks_total", (("variant", "v0"), ("view", "live")))] == 4


def test_build_info_and_process_metrics_say_what_runs() -> None:
    got = samples(ApiMetrics().render(FleetView(None))[0].decode())
    (info,) = [labels for name, labels in got if name == "bertctr_build_info"]
    assert dict(info)["role"] == "api" and dict(info)["python"].startswith("3.11")
    assert got[("bertctr_build_info", info)] == 1
    assert got[("process_resident_memory_bytes", ())] > 10_000_000
    assert 0 < got[("process_start_time_seconds", ())] <= time.time()


def test_undefined_model_figures_have_no_sample() -> None:
    cold = {"count": 0, "logloss": None, "ne": None, "auc": None, "calibration": None, "ctr": None}
    body, _ = ApiMetrics().render(FleetView(summarise([], NOW, 60), cold, None, {}))
    got = samples(body.decode())
    assert got[("bertctr_model_examples", ())] == 0
    assert not any(name == "bertctr_model_ne" for name, _ in got)
    assert not any(name == "bertctr_encoder_version" for name, _ in got)


def test_openmetrics_is_served_to_whoever_asks_for_it() -> None:
    _, content_type = ApiMetrics().render(FleetView(None), "application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")


def test_requests_are_timed_by_route_template_not_by_path() -> None:
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(RequestTimer)
    metrics = ApiMetrics()
    app.state.bertctr = SimpleNamespace(metrics=metrics)
    with TestClient(app, raise_server_exceptions=False) as client:
        for name in ("a", "b", "c"):
            assert client.get(f"/items/{name}?x=1").status_code == 200
        assert client.get("/nowhere/at/all").status_code == 404
        assert client.get("/boom").status_code == 500
    got = samples(metrics.render(FleetView(None))[0].decode())
    count = "bertctr_api_request_seconds_count"
    assert got[(count, (("method", "GET"), ("route", "/items/{item}"), ("status", "200")))] == 3
    assert got[(count, (("method", "GET"), ("route", UNMATCHED), ("status", "404")))] == 1
    assert got[(count, (("method", "GET"), ("route", "/boom"), ("status", "500")))] == 1
    routes = {dict(labels)["route"] for name, labels in got if name == count}
    assert routes == {"/items/{item}", UNMATCHED, "/boom"}


# --- a worker's own metrics -----------------------------------------------------------


class Message:
    def __init__(self, topic: str) -> None:
        self.topic = topic


def events(*topics: str) -> list[Any]:
    return [SimpleNamespace(message=Message(t)) for t in topics]


def labelled(i: int, clicked: bool, late: bool = False) -> LabelledImpression:
    imp = Impression(
        event_id=f"e{i}",
        impression_id=f"i{i}",
        ts=1.0,
        item_id="a",
        image_id="img",
        position=0,
        segment={"device": "mobile", "geo": "DE"},
    )
    return LabelledImpression.from_impression(
        imp, clicked=clicked, click_delay_s=None, late=late, labelled_at=1.0
    )


def test_join_counts_labels_by_kind() -> None:
    counts = JoinCounts()
    for i, (clicked, late) in enumerate([(False, False), (True, False), (True, True), (0, 0)]):
        counts.label(labelled(i, bool(clicked), bool(late)))
    d = counts.as_dict()
    assert (d["labels"], d["positive"], d["negative"], d["late"]) == (4, 1, 2, 1)


def worker_telemetry() -> tuple[WorkerTelemetry, JoinCounts, DeadLetterTally]:
    counts, tally = JoinCounts(), DeadLetterTally()
    telemetry = WorkerTelemetry(counts, lambda: tally.merged(counts.rejected))
    return telemetry, counts, tally


def test_the_worker_counts_messages_dead_letters_labels_and_model() -> None:
    telemetry, counts, tally = worker_telemetry()
    telemetry.handled("join", events(IMP, IMP, CLK))
    telemetry.handled("join", events(IMP))
    telemetry.handled("counters", events(LAB, LAB))
    counts.reject("invalid_json")
    counts.reject("invalid_json")
    tally.add("embedding_failed")
    for i in range(3):
        counts.label(labelled(i, clicked=i == 0))
    telemetry.observe_model(MODEL)
    text = telemetry.exposition().decode()
    got = samples(text)
    messages = "bertctr_worker_messages_total"
    assert got[(messages, (("agent", "join"), ("topic", IMP)))] == 3
    assert got[(messages, (("agent", "join"), ("topic", CLK)))] == 1
    assert got[(messages, (("agent", "counters"), ("topic", LAB)))] == 2
    dead = "bertctr_worker_dead_letters_total"
    assert got[(dead, (("reason", "invalid_json"),))] == 2
    assert got[(dead, (("reason", "embedding_failed"),))] == 1
    labels = "bertctr_worker_labels_total"
    assert [got[(labels, (("kind", k),))] for k in ("positive", "negative", "late")] == [1, 2, 0]
    assert got[("bertctr_worker_model_auc", ())] == pytest.approx(0.71)
    assert family_names(text) == declared(WORKER_METRICS)


def test_the_worker_serves_its_metrics_over_http() -> None:
    telemetry, counts, _ = worker_telemetry()
    counts.reject("too_large")
    server, thread = telemetry.serve(0, "127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert samples(text)[("bertctr_worker_dead_letters_total", (("reason", "too_large"),))] == 1


# --- the Triton client's observer ------------------------------------------------------


class Stub:
    """tritonclient's aio client, failing with the given statuses first."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses

    async def get_model_metadata(self, model: str, client_timeout: float) -> Any:
        if self.statuses:
            raise InferenceServerException("nope", status=self.statuses.pop(0))
        return SimpleNamespace(versions=("1", "2"))

    async def close(self) -> None:
        pass


async def test_the_triton_client_reports_every_request_and_refusal() -> None:
    seen: list[RequestOutcome] = []
    client = TritonEmbeddingClient(
        "unused:1", retries=1, backoff_s=0.001, breaker=CircuitBreaker(2, 60.0), timeout_s=1
    )
    client.observer = seen.append
    client._triton = Stub(["StatusCode.UNAVAILABLE"])
    assert await client.version(f"{IMAGE_ENCODER}.v2") == 2
    assert [(o.model, o.call, o.failure) for o in seen] == [
        (IMAGE_ENCODER, "metadata", "unavailable"),
        (IMAGE_ENCODER, "metadata", None),
    ]
    assert all(o.seconds is not None and o.seconds >= 0 for o in seen)
    seen.clear()
    client._triton = Stub(["StatusCode.UNAVAILABLE"] * 5)
    with pytest.raises(EncoderUnavailable):
        await client.version(IMAGE_ENCODER)  # two failures open the breaker
    with pytest.raises(EncoderUnavailable, match="circuit breaker open"):
        await client.version(IMAGE_ENCODER)
    assert [o.failure for o in seen] == ["unavailable", "unavailable", BREAKER_OPEN]
    assert seen[-1].seconds is None


async def test_a_broken_observer_never_fails_a_request() -> None:
    def broken(outcome: RequestOutcome) -> None:
        raise ValueError("observer bug")

    client = TritonEmbeddingClient("unused:1", retries=0, timeout_s=1, observer=broken)
    client._triton = Stub([])
    assert await client.version(IMAGE_ENCODER) == 2


async def test_triton_metrics_feed_the_workers_exposition() -> None:
    telemetry, _, _ = worker_telemetry()
    client = TritonEmbeddingClient(
        "unused:1", retries=1, backoff_s=0.001, timeout_s=1, observer=telemetry.triton
    )
    client._triton = Stub(["StatusCode.DEADLINE_EXCEEDED"])
    await client.version(IMAGE_ENCODER)
    got = samples(telemetry.exposition().decode())
    labels = (("call", "metadata"), ("model", IMAGE_ENCODER))
    assert got[("bertctr_triton_request_seconds_count", labels)] == 2
    failures = (("call", "metadata"), ("model", IMAGE_ENCODER), ("reason", "deadline_exceeded"))
    assert got[("bertctr_triton_failures_total", failures)] == 1


# --- the contract's documentation -------------------------------------------------------


def test_the_readme_documents_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [m.name for m in {*API_METRICS, *WORKER_METRICS} if m.name not in readme]
    assert missing == []
