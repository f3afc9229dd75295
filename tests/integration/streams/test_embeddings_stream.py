"""The worker learns with embeddings from a real Triton, and a Triton outage loses nothing.

Real parts throughout: Tansu, Redis, a ``bertctr worker`` subprocess, and
``bertctr encoder serve`` (Triton with the EfficientNet-Lite0 and MiniLM
encoders) reading the simulator's rendered catalogue from a local image store.

Phase 1 uses half the catalogue plus one undecodable and one missing image:
every good example is learned, the two bad ones are dead-lettered as
``embedding_failed``. Triton is then killed and phase 2 brings the other half
(images not in the cache): nothing may be learned while Triton is down, and
after it restarts on the same port every phase-2 example is learned, once.
Triton's own inference counter shows the cache at work: after the restart
it embedded exactly the phase-2 images, though each was shown many times.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bertctr.evaluation import wait_for_snapshot
from bertctr.harness.encoders import EncoderServer, start_encoder_server
from bertctr.harness.kafka import consume, publish
from bertctr.harness.workers import REPLAY
from online_ctr.features import VARIANT_ID
from online_ctr.models.ftrl import FTRLProximalClassifier
from online_ctr.models.registry import CONTENT_VARIANT_ID_L1
from online_ctr.store import FileModelStore
from schemas.settings import Settings
from schemas.topics import CLICKS, DEAD_LETTER, IMPRESSIONS, LABELLED, full_name
from simulator import SimConfig, Simulator
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration

PER_IMAGE = 3


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    directory = tmp_path_factory.mktemp("images")
    sim = Simulator(SimConfig(seed=3, n_items=4, variants_per_item=4))
    sim.render_catalogue(directory)
    png = (directory / f"{sim.catalogue[0].image_id}.png").read_bytes()
    (directory / "broken.png").write_bytes(png[: len(png) // 3])  # truncated
    return directory, list(sim.catalogue)


@pytest.fixture(scope="module")
def triton() -> Iterator[EncoderServer]:
    server = start_encoder_server()
    try:
        yield server
    finally:
        server.stop()


def inference_count(server: EncoderServer, model: str) -> int:
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    found = re.search(rf'nv_inference_count{{model="{model}",version="\d+"}} (\d+)', text)
    return int(found.group(1)) if found else 0


def messages(
    prefix: str, entries: list[tuple[str, str, str]], first: int, base: float
) -> list[Any]:
    """PER_IMAGE impressions per (item, image, title); every fifth one clicked."""
    msgs = []
    n = first
    for item_id, image_id, title in entries:
        for k in range(PER_IMAGE):
            imp = {
                "event_id": f"ev-{n}",
                "impression_id": f"imp-{n}",
                "ts": base + n,
                "item_id": item_id,
                "image_id": image_id,
                "title": title,
                "position": k,
                "segment": {"device": "mobile", "geo": "DE", "taste": f"t{n % 2}"},
            }
            key = f"imp-{n}".encode()
            msgs.append((full_name(prefix, IMPRESSIONS), key, json.dumps(imp).encode()))
            if n % 5 == 0:
                click = {"event_id": f"c-{n}", "impression_id": f"imp-{n}", "ts": base + n + 2}
                msgs.append((full_name(prefix, CLICKS), key, json.dumps(click).encode()))
            n += 1
    return msgs


async def test_learns_with_embeddings_and_survives_a_triton_outage(
    worker_env: WorkerEnv, triton: EncoderServer, catalogue: tuple[Path, list[Any]]
) -> None:
    directory, entries = catalogue
    worker_env.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": "60",
            **REPLAY,
            "BERTCTR_CHECKPOINT_DIR": str(worker_env.tmp / "ckpt"),
            "BERTCTR_TRITON_URL": triton.grpc_url,
            "BERTCTR_IMAGE_DIR": str(directory),
            "BERTCTR_TRITON_RETRIES": "1",
            "BERTCTR_BREAKER_RESET_S": "1",
            "BERTCTR_EMBEDDING_RETRY_MAX_S": "2",
        }
    )
    boot, prefix = worker_env.stack.kafka_bootstrap, worker_env.topic_prefix
    base = time.time() - 1_000_000
    half = len(entries) // 2
    first = [(e.item_id, e.image_id, e.title) for e in entries[:half]]
    second = [(e.item_id, e.image_id, e.title) for e in entries[half:]]
    bad = [("item-x", "broken", "broken thing"), ("item-y", "missing", "missing thing")]
    worker_env.cli("topics", "create")
    worker_env.start_worker()

    def model() -> dict[str, Any]:
        return json.loads(worker_env.cli("stats", "--json"))["model"] or {}

    # Phase 1: good images learned, bad ones dead-lettered with the reason.
    msgs1 = messages(prefix, first + bad, 0, base)
    await publish(boot, msgs1)
    good1 = len(first) * PER_IMAGE
    bad1 = len(bad) * PER_IMAGE
    assert wait_until(lambda: model().get("count", 0) >= good1, 120), worker_env.worker_logs()
    dead = await consume(boot, full_name(prefix, DEAD_LETTER), bad1, timeout_s=60)
    assert len(dead) == bad1, dead
    assert {d["reason"] for d in dead} == {"embedding_failed"}
    details = {json.loads(d["value"])["image_id"]: d["detail"] for d in dead}
    assert details["broken"].startswith("bad image: truncated image"), details
    assert details["missing"].startswith("image unavailable"), details
    status = model()["embeddings"]
    assert status["enabled"] and status["versions"] == {"image_encoder": 1, "text_encoder": 1}
    assert status["computed"]["image_encoder"] == len(first)  # once per image, not per view
    assert model()["count"] == good1

    # Phase 2 while Triton is down: nothing learned, nothing lost.
    triton.kill()
    # Far ahead: while idle, phase 1's event clock kept running at 2000x.
    msgs2 = messages(prefix, second, 1000, base + 800_000)
    await publish(boot, msgs2)
    good2 = len(second) * PER_IMAGE
    labels = await consume(boot, full_name(prefix, LABELLED), good1 + bad1 + good2, timeout_s=120)
    assert len({m["label_id"] for m in labels}) == good1 + bad1 + good2
    time.sleep(3)
    assert model()["count"] == good1, "learned without embeddings while Triton was down"
    assert "embeddings unavailable" in worker_env.worker_logs()

    triton.start()
    assert wait_until(lambda: model().get("count", 0) >= good1 + good2, 120), (
        worker_env.worker_logs()
    )
    time.sleep(2)
    assert model()["count"] == good1 + good2
    # The restarted Triton embedded each phase-2 image once (its counter restarted too).
    assert inference_count(triton, "image_encoder") == len(second)
    dead = await consume(boot, full_name(prefix, DEAD_LETTER), bad1, timeout_s=10, settle_s=1)
    assert len(dead) == bad1, [(d["detail"][:12], d["partition"], d["offset"]) for d in dead]
    # Built for features with image content: variant ids are residuals.
    settings = Settings.from_env(worker_env.env())
    store = FileModelStore(settings.checkpoint_dir, settings.checkpoint_key.encode())
    learner = wait_for_snapshot(store, good1 + good2, timeout_s=60)
    assert isinstance(learner.model, FTRLProximalClassifier)
    assert learner.model.l1_overrides == {VARIANT_ID: CONTENT_VARIANT_ID_L1}
