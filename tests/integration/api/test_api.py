"""``bertctr api`` against a real worker, broker, Redis and the model it saved.

One scenario for the module (a worker learning real traffic takes a while):
traffic is published, labelled, counted and learned; then the API, started
as the process a user starts, must give the numbers ``bertctr stats`` gives,
score with exactly the model in the store, pick up a newer snapshot without
a restart, refuse bad requests with clear 4xx, and pass contract tests
generated from its own OpenAPI document (schemathesis).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bertctr.harness.api import ApiServer
from bertctr.harness.kafka import consume, publish
from bertctr.harness.stack import EmbeddedStack
from bertctr.harness.workers import REPLAY, Namespace
from online_ctr.promotion.duel import serving_learner
from online_ctr.store import FileModelStore
from schemas.events import Impression
from schemas.topics import CLICKS, IMPRESSIONS, LABELLED, full_name
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration

SEGMENTS = [
    {"device": "mobile", "geo": "DE", "taste": "t0"},
    {"device": "desktop", "geo": "FR", "taste": "t1"},
]
MAX_CANDIDATES = 50


def impression(i: int, ts: float) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i}",
        "impression_id": f"imp-{i}",
        "ts": ts,
        "item_id": f"item-{i % 3}",
        "image_id": f"img-{i % 3}-{(i // 3) % 2}",
        "variant": f"v{(i // 3) % 2}",
        "title": "blue mug" if i % 2 else "red lamp",
        "position": i % 3,
        "segment": SEGMENTS[(i // 6) % 2],
    }


def clicked(i: int) -> bool:
    """Variant v1 is clicked far more by taste t1: a pattern the model must learn."""
    imp = impression(i, 0.0)
    if imp["variant"] == "v1" and imp["segment"]["taste"] == "t1":
        return (i * 7) % 10 < 5
    return (i * 7) % 10 == 0


def traffic(prefix: str, first: int, n: int, base: float) -> tuple[list[Any], int]:
    msgs: list[Any] = []
    for i in range(first, first + n):
        imp = impression(i, base + i)
        key = f"imp-{i}".encode()
        msgs.append((full_name(prefix, IMPRESSIONS), key, json.dumps(imp).encode()))
        if clicked(i):
            click = {"event_id": f"c-{i}", "impression_id": f"imp-{i}", "ts": imp["ts"] + 2}
            msgs.append((full_name(prefix, CLICKS), key, json.dumps(click).encode()))
    return msgs, n


@dataclass
class Scenario:
    env: WorkerEnv
    api: ApiServer
    labels: int
    base: float

    def store(self) -> FileModelStore:
        settings = self.env.env()
        return FileModelStore(
            settings["BERTCTR_CHECKPOINT_DIR"],
            settings.get("BERTCTR_CHECKPOINT_KEY", "bertctr-dev-checkpoint-key").encode(),
        )

    def model_count(self) -> int:
        stats = json.loads(self.env.cli("stats", "--json"))
        return int((stats["model"] or {}).get("count", 0))

    def learn(self, first: int, n: int) -> None:
        """Publish ``n`` more impressions; wait until labelled, learned and snapshotted."""
        boot = self.env.stack.kafka_bootstrap
        msgs, _ = traffic(self.env.topic_prefix, first, n, self.base)
        asyncio.run(publish(boot, msgs))
        self.labels += n
        labelled = full_name(self.env.topic_prefix, LABELLED)
        asyncio.run(consume(boot, labelled, self.labels, timeout_s=120, settle_s=1))
        assert wait_until(lambda: self.model_count() >= self.labels, 90), self.env.logs()

        def saved() -> bool:
            snapshot = self.store().latest()
            return snapshot is not None and serving_learner(snapshot.learner).learned >= self.labels

        assert wait_until(saved, 60), self.env.logs()


@pytest.fixture(scope="module")
def scenario(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("api")
    env = WorkerEnv(stack, tmp, Namespace.fresh("api", redis_root="test:"))
    env.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": "30",
            **REPLAY,
            # REPLAY's 2000x idle clock passes the late-click horizon (a day) after 43 idle
            # wall seconds, and the schemathesis run between two batches takes longer, so a
            # later batch would be refused as too_old; at 100x windows still close in 0.3 s
            "BERTCTR_IDLE_CLOCK_RATE": "100",
            "BERTCTR_CHECKPOINT_IDLE_S": "1",
            "BERTCTR_API_MODEL_POLL_S": "0.5",
            "BERTCTR_API_MAX_CANDIDATES": str(MAX_CANDIDATES),
        }
    )
    try:
        env.cli("topics", "create")
        env.start_worker()
        s = Scenario(env, ApiServer(env.env(), tmp / "api.log"), 0, time.time() - 100_000)
        s.learn(0, 360)
        s.api.start()
        yield s
    finally:
        if "s" in locals():
            s.api.stop()
        env.close()


def test_ctr_gives_the_numbers_of_bertctr_stats(scenario: Scenario) -> None:
    stats = json.loads(scenario.env.cli("stats", "--json"))
    body = scenario.api.get("/ctr")
    for key in ("view", "clock", "total", "items", "segments"):
        assert body[key] == stats[key], key
    assert body["selected"]["scope"] == "total"
    assert body["selected"]["impressions"] == stats["total"]["impressions"] == scenario.labels

    seg = "device=desktop,geo=FR,taste=t1"
    narrow = json.loads(scenario.env.cli("stats", "--json", "--item", "item-1", "--segment", seg))
    body = scenario.api.get(f"/ctr?item=item-1&variant=v1&segment={seg}&window=all")
    cell = narrow["items"]["item-1"]["variants"]["v1"]["segments"][seg]
    assert list(body["items"]["item-1"]["variants"]) == ["v1"]
    assert body["selected"]["scope"] == "item-variant-segment"
    picked = {k: body["selected"][k] for k in ("impressions", "clicks", "ctr")}
    assert picked == {k: cell[k] for k in ("impressions", "clicks", "ctr")}
    assert cell["impressions"] > 0 and cell["clicks"] > 0

    minute = scenario.api.get(f"/ctr?item=item-1&variant=v1&segment={seg}&window=minute")
    assert minute["selected"]["impressions"] == cell["last_minute"]["impressions"]
    across = scenario.api.get("/ctr?variant=v1")["selected"]
    v1 = [entry["variants"]["v1"] for entry in stats["items"].values()]
    assert across["scope"] == "variant-across-items"
    assert across["impressions"] == sum(c["impressions"] for c in v1) > 0
    assert across["clicks"] == sum(c["clicks"] for c in v1)


def test_ctr_filters_narrow_the_answer_and_unknown_items_are_404(scenario: Scenario) -> None:
    everything = scenario.api.get("/ctr")
    status, missing = scenario.api.request("GET", "/ctr?item=nope")
    assert status == 404 and "nope" in missing["detail"]
    status, missing = scenario.api.request("GET", "/ctr?item=item-1&variant=nope")
    assert status == 404 and "nope" in missing["detail"]
    one_item = scenario.api.get("/ctr?item=item-1")
    assert list(one_item["items"]) == ["item-1"] and one_item["segments"] == {}
    assert len(json.dumps(one_item)) < len(json.dumps(everything))
    # a partial segment rolls up every segment that has its fields
    seg = "device=desktop,geo=FR,taste=t1"
    whole = scenario.api.get(f"/ctr?segment={seg}")["selected"]
    partial = scenario.api.get("/ctr?segment=geo=FR")["selected"]
    assert partial["segments_matched"] == 1 and whole["segments_matched"] is None
    assert (partial["impressions"], partial["clicks"]) == (whole["impressions"], whole["clicks"])
    by_device = scenario.api.get("/ctr?segment=device=desktop")["selected"]
    assert by_device["impressions"] == whole["impressions"] > 0
    both = [everything["segments"][s]["impressions"] for s in everything["segments"]]
    taste = scenario.api.get("/ctr?segment=taste=t1")["selected"]["impressions"]
    assert 0 < taste < sum(both)
    cell = scenario.api.get("/ctr?item=item-1&variant=v1&segment=geo=FR")["selected"]
    exact = scenario.api.get(f"/ctr?item=item-1&variant=v1&segment={seg}")["selected"]
    assert cell["impressions"] == exact["impressions"] > 0
    assert scenario.api.get("/ctr?segment=geo=BR")["selected"]["impressions"] == 0
    # a variant across items in a partial segment adds up each matched segment's cells
    across = scenario.api.get("/ctr?variant=v1&segment=geo=FR")["selected"]
    exact_across = scenario.api.get(f"/ctr?variant=v1&segment={seg}")["selected"]
    assert across["scope"] == "variant-across-items" and across["segments_matched"] == 1
    assert across["impressions"] == exact_across["impressions"] > 0


def candidates(n: int) -> list[dict[str, Any]]:
    return [
        {
            "item_id": f"item-{i % 3}",
            "image_id": f"img-{i % 3}-{i % 2}",
            "variant": f"v{i % 2}",
            "title": "blue mug",
            "position": 0,
        }
        for i in range(n)
    ]


def test_score_ranks_with_exactly_the_stored_champion(scenario: Scenario) -> None:
    segment = SEGMENTS[1]
    ts = scenario.base + 10_000
    status, body = scenario.api.request(
        "POST", "/score", {"segment": segment, "candidates": candidates(6), "ts": ts}
    )
    assert status == 200, body
    snapshot = scenario.store().latest()
    assert snapshot is not None
    learner = serving_learner(snapshot.learner)
    assert body["model"]["snapshot"] == snapshot.name
    assert body["model"]["learned"] == learner.learned >= scenario.labels
    assert body["model"]["image_encoder"] is None  # no Triton configured here

    scores = body["scores"]
    assert [s["rank"] for s in scores] == [1, 2, 3, 4, 5, 6]
    assert [s["ctr"] for s in scores] == sorted((s["ctr"] for s in scores), reverse=True)
    for s in scores:
        imp = Impression.model_validate(
            {
                **{k: s[k] for k in ("item_id", "image_id", "variant", "title", "position")},
                "event_id": "x",
                "impression_id": "x",
                "ts": ts,
                "segment": segment,
            }
        )
        assert s["ctr"] == pytest.approx(learner.predict(imp), rel=1e-12)
        assert s["embedding"] == "no encoder configured"
    # the pattern in the traffic: for taste t1, each item's v1 ranks above its v0
    rank = {(s["item_id"], s["variant"]): s["rank"] for s in scores}
    for item in ("item-0", "item-1", "item-2"):
        assert rank[(item, "v1")] < rank[(item, "v0")], scores


def test_bad_requests_get_clear_4xx(scenario: Scenario) -> None:
    ok = {"segment": SEGMENTS[0], "candidates": candidates(2)}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**ok, "candidates": []}, 422, "candidates"),
        ({**ok, "candidates": [{**candidates(1)[0], "colour": "red"}]}, 422, "colour"),
        ({**ok, "candidates": [{**candidates(1)[0], "item_id": ""}]}, 422, "item_id"),
        ({**ok, "candidates": [{**candidates(1)[0], "position": -1}]}, 422, "position"),
        ({**ok, "candidates": [{**candidates(1)[0], "position": True}]}, 422, "position"),
        ({**ok, "segment": {"device": "mobile"}}, 422, "geo"),
        ({**ok, "candidates": candidates(1001)}, 422, "candidates"),
        ({**ok, "candidates": candidates(MAX_CANDIDATES + 1)}, 422, "at most 50"),
        ({**ok, "ts": 1.7e12}, 422, "ts"),
        ({**ok, "candidates": [{**candidates(1)[0], "item_id": "   "}]}, 422, "item_id"),
        ({**ok, "candidates": [{**candidates(1)[0], "image_id": "a\x00b"}]}, 422, "image_id"),
    ]
    for body, expected, mention in cases:
        status, problem = scenario.api.request("POST", "/score", body)
        assert status == expected, (body, problem)
        assert mention in json.dumps(problem), problem
    status, _ = scenario.api.request("POST", "/score", b"not json")
    assert status == 422


def test_error_bodies_are_small_and_docs_and_openapi_are_served_and_counted(
    scenario: Scenario,
) -> None:
    """A 10 MB invalid request gets a few-KB 422; /docs needs no CDN; its routes are named."""
    huge = [{**c, "title": "t" * 10_000, "item_id": " "} for c in candidates(MAX_CANDIDATES)]
    status, problem = scenario.api.request(
        "POST", "/score", {"segment": SEGMENTS[0], "candidates": huge}
    )
    assert status == 422
    assert len(json.dumps(problem)) < 50_000, len(json.dumps(problem))
    assert "item_id" in json.dumps(problem)
    status, page = scenario.api.request("GET", "/docs")
    assert status == 200 and "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn." not in page
    assert scenario.api.get("/openapi.json")["info"]["title"] == "bertctr"
    status, metrics = scenario.api.request("GET", "/metrics")
    assert status == 200
    assert 'route="/openapi.json"' in metrics and 'route="/docs"' in metrics


def test_several_api_workers_serve_the_same_answers(scenario: Scenario) -> None:
    """``bertctr api --workers 2``: two processes on one port, each with the same model."""
    body = {"segment": SEGMENTS[1], "candidates": candidates(6)}
    _, single = scenario.api.request("POST", "/score", body)
    log = scenario.env.directory / "api-workers.log"
    with ApiServer(scenario.env.env(), log, workers=2) as api:
        assert wait_until(lambda: api.logs().count("Application startup complete") == 2, 30)
        assert api.logs().count("Started server process") == 2
        assert wait_until(lambda: api.request("GET", "/readyz")[0] == 200, 30), api.logs()
        for _ in range(6):  # whichever process answers, the model and the ranking are the same
            status, answer = api.request("POST", "/score", body)
            assert status == 200, answer
            assert answer["scores"] == single["scores"]
            assert answer["model"]["snapshot"] == single["model"]["snapshot"]


def test_readiness_reports_redis_and_model(scenario: Scenario) -> None:
    status, body = scenario.api.request("GET", "/readyz")
    assert status == 200, body
    assert body["ready"] is True
    assert body["checks"]["redis"]["ok"] and body["checks"]["model"]["ok"]
    assert scenario.api.get("/healthz") == {"status": "ok"}


def test_contract_tests_from_the_openapi_document(scenario: Scenario) -> None:
    """schemathesis generates valid and invalid requests from ``openapi.json`` as served."""
    report = scenario.env.directory / "schemathesis.txt"
    cmd = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{scenario.api.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        "7",
        "--workers",
        "1",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    report.write_text(out.stdout + out.stderr)
    assert out.returncode == 0, (out.stdout[-6000:], scenario.api.logs())


def test_a_newer_snapshot_is_served_without_a_restart(scenario: Scenario) -> None:
    before = scenario.api.request(
        "POST", "/score", {"segment": SEGMENTS[0], "candidates": candidates(2)}
    )[1]["model"]
    scenario.learn(1000, 120)
    pid = scenario.api.proc.pid if scenario.api.proc else None

    def newer() -> bool:
        status, body = scenario.api.request(
            "POST", "/score", {"segment": SEGMENTS[0], "candidates": candidates(2)}
        )
        return status == 200 and body["model"]["learned"] >= scenario.labels

    assert wait_until(newer, 30), scenario.api.logs()
    after = scenario.api.request(
        "POST", "/score", {"segment": SEGMENTS[0], "candidates": candidates(2)}
    )[1]["model"]
    assert after["snapshot"] != before["snapshot"]
    assert after["learned"] > before["learned"]
    assert scenario.api.proc is not None and scenario.api.proc.pid == pid


def test_without_a_model_scoring_is_unavailable_but_counters_answer(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    env = WorkerEnv(stack, tmp_path, Namespace.fresh("api0", redis_root="test:"))
    with ApiServer(env.env(), tmp_path / "api.log") as api:
        status, body = api.request(
            "POST", "/score", {"segment": SEGMENTS[0], "candidates": candidates(1)}
        )
        assert status == 503 and "no model" in body["detail"]
        status, ready = api.request("GET", "/readyz")
        assert status == 503 and ready["checks"]["model"]["ok"] is False
        assert ready["checks"]["redis"]["ok"] is True
        assert api.get("/ctr")["selected"] == {
            "scope": "total",
            "window": "all",
            "impressions": 0,
            "clicks": 0,
            "ctr": None,
            "segments_matched": None,
        }
    env.close()


def test_ab_view_of_learned_traffic(scenario: Scenario) -> None:
    seg = "device=desktop,geo=FR,taste=t1"
    settled = json.loads(
        scenario.env.cli(
            "stats", "--json", "--view", "settled", "--item", "item-1", "--segment", seg
        )
    )
    body = scenario.api.get("/ab/item-1")
    by_segment = {s["segment"]: s for s in body["segments"]}
    assert set(by_segment) == {"all", seg, "device=mobile,geo=DE,taste=t0"}
    cell = by_segment[seg]
    assert cell["decision"] == "keep_testing" and "fewer than 200" in cell["message"]
    arms = {a["name"]: a for a in cell["arms"]}
    for v in ("v0", "v1"):
        counted = settled["items"]["item-1"]["variants"][v]["segments"][seg]
        assert (arms[v]["impressions"], arms[v]["clicks"]) == (
            counted["impressions"],
            counted["clicks"],
        )
        n, c = counted["impressions"], counted["clicks"]
        # the segment's pooled prior, stated in the body (was a flat Beta(1, 1))
        prior = cell["prior"]
        assert prior["source"] == "segment pooled" and 0 < prior["mean"] < 1
        assert prior["alpha"] == pytest.approx(prior["mean"] * prior["strength"])
        expected_mean = (c + prior["alpha"]) / (n + prior["strength"])
        assert arms[v]["posterior_mean"] == pytest.approx(expected_mean)
        assert arms[v]["ci_low"] < arms[v]["posterior_mean"] < arms[v]["ci_high"]
    item_prior = by_segment["all"]["prior"]
    assert item_prior["source"] == "item pooled" and item_prior["strength"] == 100.0
    pooled = by_segment["all"]["arms"]
    clicks, shown = sum(a["clicks"] for a in pooled), sum(a["impressions"] for a in pooled)
    assert item_prior["mean"] == pytest.approx((clicks + 1) / (shown + 2))
    # the control (v0 by default), the uplift over it, one verdict per segment
    assert body["control"] == "v0" and cell["control"] == "v0"
    assert arms["v0"]["is_control"] and arms["v0"]["uplift"] is None
    assert arms["v1"]["uplift"] > 0 and arms["v1"]["uplift_ci_low"] > 0
    assert arms["v1"]["uplift_ci_low"] < arms["v1"]["uplift"] < arms["v1"]["uplift_ci_high"]
    assert arms["v1"]["chance_to_beat_control"] == pytest.approx(arms["v1"]["chance_to_win"])
    assert all("decision" not in arm for arm in cell["arms"])
    size = cell["sample_size"]
    assert size["control"] == "v0" and size["arm"] == "v1" and size["needed_per_arm"] > 0
    assert size["more_per_arm"] == max(
        size["needed_per_arm"] - min(arms["v0"]["impressions"], arms["v1"]["impressions"]), 0
    )
    assert {"prior_strength", "power", "min_effect"} <= set(body["rule"])
    other = scenario.api.get("/ab/item-1?control=v1")
    assert other["control"] == "v1"
    flipped = {s["segment"]: s for s in other["segments"]}[seg]
    assert {a["name"]: a for a in flipped["arms"]}["v0"]["uplift"] < 0
    status, problem = scenario.api.request("GET", "/ab/item-1?control=nope")
    assert status == 404 and "not a variant" in problem["detail"]
    assert arms["v1"]["chance_to_win"] > 0.99
    assert arms["v1"]["chance_to_win"] + arms["v0"]["chance_to_win"] == pytest.approx(1.0)
    # the model's opinion beside the counts, for the image each variant was shown with
    assert arms["v1"]["predicted_ctr"] is not None
    assert 0 < arms["v1"]["predicted_ctr"] < 1
    assert arms["v1"]["predicted_ctr"] > arms["v0"]["predicted_ctr"]
    assert by_segment["all"]["arms"][0]["predicted_ctr"] is None
    # "all", the name the body gives the aggregate, may be asked for by name (was a 500)
    status, only_all = scenario.api.request("GET", "/ab/item-1?segment=all")
    assert status == 200, only_all
    assert [s["segment"] for s in only_all["segments"]] == ["all"]
    assert only_all["segments"][0]["arms"] == by_segment["all"]["arms"]

    picks = [
        scenario.api.request("POST", "/ab/item-1/allocate", {"segment": SEGMENTS[1]})[1]
        for _ in range(5)
    ]
    for pick in picks:
        assert pick["segment"] == seg
        assert sum(pick["probabilities"].values()) == pytest.approx(1.0)
        assert pick["propensity"] == pytest.approx(pick["probabilities"][pick["variant"]])
        assert pick["probabilities"]["v1"] > 0.99
        assert pick["unseen"] == [] and pick["warnings"] == []
        assert pick["prior"]["source"] == "segment pooled"
    floor = scenario.api.request(
        "POST", "/ab/item-1/allocate", {"segment": SEGMENTS[1], "min_propensity": 0.2}
    )[1]
    assert min(floor["probabilities"].values()) >= 0.2 - 1e-9
    # a variant never counted (a typo) gets a warning and at most the exploration share
    status, typo = scenario.api.request(
        "POST", "/ab/item-1/allocate", {"segment": SEGMENTS[1], "variants": ["v0", "zz"]}
    )
    assert status == 200, typo
    assert typo["exploration_share"] == 0.1 and typo["unseen"] == ["zz"]
    assert typo["probabilities"]["zz"] <= 0.1 + 1e-12  # was 92.6%
    assert any("'zz'" in w and "never counted" in w for w in typo["warnings"])
    status, problem = scenario.api.request(
        "POST", "/ab/no-such-item/allocate", {"segment": SEGMENTS[1]}
    )
    assert status == 404 and "no variants" in problem["detail"]


def test_ab_verdicts_winner_and_sample_ratio_mismatch(stack: EmbeddedStack, tmp_path: Path) -> None:
    """Counts written through the real counters; the verdicts of the documented rule."""
    import redis.asyncio as aioredis

    from schemas.events import LabelledImpression
    from schemas.keys import KeySpace
    from streams.counters.redis_counters import RedisCounters

    env = WorkerEnv(stack, tmp_path, Namespace.fresh("ab", redis_root="test:"))
    seg = {"device": "mobile", "geo": "DE"}

    def labels(item: str, variant: str, n: int, clicks: int) -> list[LabelledImpression]:
        out = []
        for i in range(n):
            imp = Impression(
                event_id=f"{item}-{variant}-{i}",
                impression_id=f"{item}-{variant}-{i}",
                ts=1_800_000_000.0 + i,
                item_id=item,
                image_id=f"{item}-{variant}",
                variant=variant,
                position=0,
                segment=seg,
            )
            out.append(
                LabelledImpression.from_impression(
                    imp, clicked=i < clicks, click_delay_s=None, late=False, labelled_at=imp.ts
                )
            )
        return out

    async def write() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        counters = RedisCounters(client, KeySpace(env.redis_prefix))
        await counters.apply(labels("win", "a", 4000, 120) + labels("win", "b", 4000, 220))
        await counters.apply(labels("srm", "a", 4000, 120) + labels("srm", "b", 3000, 90))
        await client.aclose()

    asyncio.run(write())
    key = "device=mobile,geo=DE"
    try:
        with ApiServer(env.env(), tmp_path / "api.log") as api:
            win = {s["segment"]: s for s in api.get("/ab/win")["segments"]}[key]
            assert win["decision"] == "winner" and win["winner"] == "b", win
            assert win["message"].startswith(f"variant b wins for segment {key}")
            assert "over control 'a'" in win["message"] and win["control"] == "a"
            assert "rarely real" in " ".join(win["warnings"])  # +83% is implausible
            b = {a["name"]: a for a in win["arms"]}["b"]
            assert b["uplift_ci_low"] > 0 and b["chance_to_beat_control"] > 0.975
            assert win["sample_size"]["more_per_arm"] == 0  # decided: nothing more needed

            # a typo among the variants asked for: a warning, and 10% at most
            status, pick = api.request(
                "POST", "/ab/win/allocate", {"segment": seg, "variants": ["a", "zz"]}
            )
            assert status == 200, pick
            assert pick["probabilities"]["zz"] <= 0.1 + 1e-12
            assert pick["probabilities"]["a"] >= 0.9 - 1e-12
            assert pick["unseen"] == ["zz"] and len(pick["warnings"]) == 2
            status, fresh = api.request(
                "POST", "/ab/win/allocate", {"segment": {"device": "desktop", "geo": "US"}}
            )
            assert status == 200 and fresh["unseen"] == ["a", "b"]
            assert fresh["probabilities"] == pytest.approx({"a": 0.5, "b": 0.5})
            assert "the prior's alone" in " ".join(fresh["warnings"])

            srm = {s["segment"]: s for s in api.get("/ab/srm")["segments"]}[key]
            assert srm["decision"] == "srm_mismatch" and srm["srm"]["mismatch"] is True
            assert srm["srm"]["p_value"] < 0.001
            adaptive = api.get("/ab/srm?allocation=adaptive")["segments"]
            assert {s["segment"]: s for s in adaptive}[key]["srm"] is None
            assert {s["segment"]: s for s in adaptive}[key]["decision"] == "keep_testing"
    finally:
        env.close()
