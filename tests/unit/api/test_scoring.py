"""``POST /score``'s scorer: exactly the learner's predictions, all candidates at once (fakes)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.contracts import ScoreRequest
from api.routes import score
from api.scoring import CandidateScorer, Scored
from api.serving import ModelWatcher
from api.state import api_state
from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoded
from encoder_server.client.embedder import Embedder, ExampleEmbeddings
from encoder_server.client.triton_client import InMemoryEmbeddingClient
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.store import FileModelStore
from schemas.events import Impression
from simulator import SimConfig, Simulator
from simulator.labelled import labelled_stream

KEY = b"test-key"


def encode(items: Sequence[bytes]) -> Encoded:
    """A 6-d embedding from a digest of the bytes (the same bytes, the same vector)."""
    rows = [np.frombuffer(hashlib.blake2b(i, digest_size=6).digest(), np.uint8) for i in items]
    return Encoded((np.asarray(rows, dtype=np.float32) - 128) / 64, [""] * len(items))


class Images:
    async def fetch(self, image_id: str, image_url: str | None) -> bytes:
        return image_id.encode()


def embedder() -> Embedder:
    client = InMemoryEmbeddingClient(functions={IMAGE_ENCODER: encode, TEXT_ENCODER: encode})
    return Embedder(client, Images(), memo_size=1000)


def as_impression(request: ScoreRequest, i: int, ts: float) -> Impression:
    c = request.candidates[i]
    return Impression(
        event_id="e", impression_id="i", ts=ts, segment=request.segment, **c.model_dump()
    )


def embed(impressions: list[Impression]) -> list[ExampleEmbeddings]:
    async def run() -> list[ExampleEmbeddings]:
        e = embedder()
        try:
            return await e.embed(impressions)
        finally:
            await e.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimConfig(seed=4, n_items=15))


def learned(sim: Simulator, tmp: Path, name: str) -> tuple[Learner, ModelWatcher]:
    learner = Learner(make_model(name, with_content=True))
    stream = labelled_stream(sim, 2000)
    found = embed([e.impression for e in stream])
    for e, f in zip(stream, found, strict=True):
        learner.predict_then_learn(e.labelled(), f.image, f.title)
    store = FileModelStore(tmp, KEY)
    store.save(learner, {}, {"model": name})
    watcher = ModelWatcher(store)
    assert watcher.refresh()
    return learner, watcher


def request_of(sim: Simulator, n: int, ts: float | None = 1_767_300_000.0) -> ScoreRequest:
    entries = [sim.catalogue[(7 * i) % len(sim.catalogue)] for i in range(n)]
    candidates = [
        {"item_id": e.item_id, "image_id": e.image_id, "variant": e.variant, "title": e.title,
         "position": i % 12}
        for i, e in enumerate(entries)
    ]  # fmt: skip
    candidates.append(dict(candidates[0]))  # the same candidate twice: a tie
    return ScoreRequest.model_validate(
        {"segment": {"device": "mobile", "geo": "DE", "taste": "t1"}, "candidates": candidates,
         "ts": ts}
    )  # fmt: skip


def scored(scorer: CandidateScorer, request: ScoreRequest) -> Scored:
    async def run() -> Scored:
        try:
            return await scorer.score(request)
        finally:
            if scorer.embedder is not None:
                await scorer.embedder.close()

    return asyncio.run(run())


@pytest.mark.parametrize("name", ["ftrl", "bayes"])
def test_scores_are_the_learners_one_by_one(sim: Simulator, tmp_path: Path, name: str) -> None:
    learner, watcher = learned(sim, tmp_path, name)
    request = request_of(sim, 100)
    assert request.ts is not None
    impressions = [as_impression(request, i, request.ts) for i in range(len(request.candidates))]
    found = embed(impressions)
    expected = [
        learner.predict(imp, f.image, f.title) for imp, f in zip(impressions, found, strict=True)
    ]

    result = scored(CandidateScorer(watcher, embedder(), 1000), request)

    assert result.ctr == pytest.approx(expected, rel=0, abs=1e-12)
    assert len(set(result.ctr)) > 50
    assert result.embedding == ["ok"] * len(expected)
    response = result.response()
    assert [s.rank for s in response.scores] == list(range(1, len(expected) + 1))
    ctrs = [s.ctr for s in response.scores]
    assert ctrs == sorted(ctrs, reverse=True)
    first, last = result.order.index(0), result.order.index(len(expected) - 1)
    assert result.ctr[0] == result.ctr[-1] and first < last  # a tie keeps request order
    assert response.model.name == name and response.model.learned == learner.learned
    assert response.model.image_encoder == IMAGE_ENCODER
    # written straight from dicts, the reply is byte for byte what the model would write
    assert result.json() == response.model_dump_json().encode()


def test_an_encoder_outage_scores_without_embeddings(sim: Simulator, tmp_path: Path) -> None:
    learner, watcher = learned(sim, tmp_path, "ftrl")
    request = request_of(sim, 20, ts=None)
    down = embedder()
    assert isinstance(down.client, InMemoryEmbeddingClient)
    down.client.available = False

    result = scored(CandidateScorer(watcher, down, 1000), request)

    assert set(result.embedding) == {"encoder unavailable: EncoderUnavailable"}
    ts = 1_767_300_000.0  # any time: without embeddings the hour is all that differs
    for i, p in enumerate(result.ctr):
        imp = as_impression(request, i, ts)
        hours = {learner.predict(imp.model_copy(update={"ts": ts + h * 3600})) for h in range(24)}
        assert min(abs(p - q) for q in hours) < 1e-12
    no_encoder = scored(CandidateScorer(watcher, None, 1000), request)
    assert set(no_encoder.embedding) == {"no encoder configured"}
    assert no_encoder.response().model.image_encoder is None


def test_the_route_answers_the_scorers_json(sim: Simulator, tmp_path: Path) -> None:
    _, watcher = learned(sim, tmp_path, "ftrl")
    request = request_of(sim, 30)
    app = FastAPI()
    app.include_router(score.router)
    scorer = CandidateScorer(watcher, embedder(), 1000)
    app.dependency_overrides[api_state] = lambda: SimpleNamespace(scorer=scorer)
    with TestClient(app) as client:
        reply = client.post("/score", json=request.model_dump(mode="json"))
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    expected = scored(CandidateScorer(watcher, embedder(), 1000), request)
    assert json.loads(reply.content) == json.loads(expected.json())
