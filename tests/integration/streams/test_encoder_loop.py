"""The loop, on the real broker, Redis and Triton: fine-tune, serve, challenge, decide.

One ``bertctr encoder serve --repository DIR`` serves the simulator's
catalogue with the built-in random image head. A world where images decide
much of each click (``visual_taste``) makes a click-trained head clearly
better than that head, so the loop's outcome is not a coin toss:

* ``bertctr finetune`` on the first part of the traffic publishes a new
  version; the running Triton serves it beside the old one; it is announced;
  the workers train a challenger on it in shadow and promote it; scoring
  then uses it. A job whose repository no server watches publishes but is
  "not served" (exit 4) and announces nothing;
* a corrupted version (its head maps every image to nothing) is retired,
  never promoted, and a worker killed in the middle of that comparison
  resumes it from its checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from bertctr.harness.encoders import EncoderServer, start_encoder_server
from bertctr.harness.kafka import consume, publish, publish_paced
from bertctr.harness.procs import bertctr_command
from bertctr.harness.workers import replay_settings
from encoder_server.base import IMAGE_ENCODER
from encoder_server.projection import Projection
from encoder_server.serving.repository import EncoderRepository
from online_ctr.promotion.duel import EncoderDuel
from online_ctr.store import FileModelStore
from schemas.events import EncoderVersion
from schemas.keys import KeySpace
from schemas.settings import Settings
from schemas.topics import ENCODER_VERSIONS
from simulator import SimConfig, Simulator
from tests.integration.conftest import WorkerEnv, wait_until

pytestmark = pytest.mark.integration

#: a world in which the image decides much of each click, and clicks are common
WORLD = SimConfig(seed=3, n_items=12, impressions_per_s=5.0, visual_taste=8.0, base_logit=-1.8)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("catalogue")
    Simulator(WORLD).render_catalogue(directory)
    return directory


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> EncoderRepository:
    return EncoderRepository(tmp_path_factory.mktemp("encoders"))


@pytest.fixture(scope="module")
def triton(repository: EncoderRepository) -> Iterator[EncoderServer]:
    server = start_encoder_server(["--repository", str(repository.root), "--poll-s", "0.5"])
    try:
        yield server
    finally:
        server.stop()


#: simulated seconds per wall second: 5 impressions/s simulated is 250/s
#: published, what one worker learns beside a challenger on this machine. The
#: traffic keeps flowing while the job trains (as in production, and as the
#: demo does): a replayed stream that paused would see its idle clock run
#: ahead of the events that follow
SPEED = 50.0


def loop_env(
    env: WorkerEnv, triton: EncoderServer, images: Path, repository: EncoderRepository
) -> None:
    env.overrides.update(
        {
            **replay_settings(SPEED, 30 * SPEED),
            "BERTCTR_TRITON_URL": triton.grpc_url,
            "BERTCTR_IMAGE_DIR": str(images),
            "BERTCTR_ENCODER_REPOSITORY": str(repository.root),
            "BERTCTR_CHECKPOINT_INTERVAL_S": "3",
            "BERTCTR_PROMOTION_MIN_EXAMPLES": "200",
        }
    )


class Traffic:
    """Simulated impressions published at :data:`SPEED` in the background, until stopped."""

    def __init__(self, env: WorkerEnv, sim: Simulator) -> None:
        self.env, self.sim = env, sim
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            # flush=False: consecutive chunks form one ordered stream (a flushed
            # chunk would end with clicks hours ahead, and pacing would wait for them)
            chunk = [
                (m.ts, (self.env.topic(m.topic), m.key, m.value))
                for m in self.sim.messages(2000, flush=False)
            ]
            asyncio.run(publish_paced(self.env.stack.kafka_bootstrap, chunk, speed=SPEED))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)


@pytest.fixture
def start_traffic() -> Iterator[Callable[[WorkerEnv], Traffic]]:
    """Starts :class:`Traffic` for a test; stops it whatever the test's outcome."""
    started: list[Traffic] = []

    def start(env: WorkerEnv) -> Traffic:
        started.append(Traffic(env, Simulator(WORLD)))
        return started[-1]

    try:
        yield start
    finally:
        for traffic in started:
            traffic.stop()


def redis_json(env: WorkerEnv, key: str) -> dict[str, Any]:
    client = redis.Redis.from_url(env.stack.redis_url)
    try:
        raw = client.get(key)
    finally:
        client.close()
    return json.loads(raw) if raw is not None else {}


def learned(env: WorkerEnv) -> int:
    return int(redis_json(env, KeySpace(env.redis_prefix).model_metrics).get("count", 0))


def encoder(env: WorkerEnv) -> dict[str, Any]:
    return redis_json(env, KeySpace(env.redis_prefix).encoder_status)


def finetune(env: WorkerEnv, *args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bertctr_command("finetune", "--seed", "1", "--min-clicks", "50", *args),
        env={**env.env(), **overrides},
        capture_output=True,
        text=True,
        timeout=600,
    )


def announcements(env: WorkerEnv, expected: int) -> list[dict[str, Any]]:
    return asyncio.run(
        consume(env.stack.kafka_bootstrap, env.topic(ENCODER_VERSIONS), expected, 30, 2)
    )


@pytest.mark.timeout(900)
def test_finetune_serves_a_better_head_and_the_stream_promotes_it(
    worker_env: WorkerEnv,
    triton: EncoderServer,
    images: Path,
    repository: EncoderRepository,
    start_traffic: Callable[[WorkerEnv], Traffic],
    tmp_path: Path,
) -> None:
    loop_env(worker_env, triton, images, repository)
    worker_env.cli("topics", "create")
    worker_env.start_worker()
    traffic = start_traffic(worker_env)
    assert wait_until(lambda: learned(worker_env) >= 8000, 240), worker_env.logs()

    # published where no server looks: not served, not announced
    nobody = finetune(
        worker_env, "--serve-timeout-s", "5", BERTCTR_ENCODER_REPOSITORY=str(tmp_path / "unwatched")
    )
    assert nobody.returncode == 4, nobody.stderr
    assert "not served" in nobody.stderr and "not announced" in nobody.stderr
    assert announcements(worker_env, 1) == []

    job = finetune(worker_env, "--report-dir", str(tmp_path / "report"))
    assert job.returncode == 0, job.stderr + job.stdout
    assert "published image_encoder.v2" in job.stdout
    version = repository.versions(IMAGE_ENCODER)[-1]
    assert version.served_name == "image_encoder.v2" and version.parent is None
    status = repository.status(IMAGE_ENCODER, version.version)
    assert status is not None and status.state == "ready"
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["holdout"]["after"]["log_loss"] < report["holdout"]["before"]["log_loss"]
    assert (tmp_path / "report" / "loss_curve.png").stat().st_size > 0
    [announced] = announcements(worker_env, 1)
    assert EncoderVersion.model_validate(announced).served_name == "image_encoder.v2"

    assert wait_until(lambda: encoder(worker_env).get("challenger") == "image_encoder.v2", 60)
    assert wait_until(lambda: encoder(worker_env).get("counts", {}).get("promote") == 1, 300), (
        encoder(worker_env),
        worker_env.logs(),
    )
    status_now = encoder(worker_env)
    assert status_now["champion"] == "image_encoder.v2" and status_now["champion_version"] == 2
    decision = status_now["last_decision"]
    assert decision["decision"] == "promote" and decision["lo"] > 0
    stats = json.loads(worker_env.cli("stats", "--json"))
    assert stats["encoder"]["champion"] == "image_encoder.v2"
    traffic.stop()
    # the next job starts where this one ended
    state = json.loads((repository.root / "finetune-state.json").read_text())
    assert state["version"] == 2 and state["outcome"] == "published"


@pytest.mark.timeout(900)
def test_a_corrupted_version_is_retired_and_a_restart_keeps_the_comparison(
    worker_env: WorkerEnv,
    triton: EncoderServer,
    images: Path,
    repository: EncoderRepository,
    start_traffic: Callable[[WorkerEnv], Traffic],
) -> None:
    loop_env(worker_env, triton, images, repository)
    worker_env.overrides["BERTCTR_PROMOTION_MAX_EXAMPLES"] = "6000"
    worker_env.cli("topics", "create")
    worker_env.start_worker("first")
    traffic = start_traffic(worker_env)
    assert wait_until(lambda: learned(worker_env) >= 2000, 240), worker_env.logs()

    # a head that maps every image to nothing: no information at all
    dead_head = Projection(
        components=np.zeros((8, 1280), dtype=np.float32),
        mean=np.zeros(1280, dtype=np.float32),
        version=1,
        kind="corrupted",
        note="all zeros",
    )
    info = repository.publish(IMAGE_ENCODER, dead_head, parent=None, training={"test": True})
    assert wait_until(lambda: repository.status(IMAGE_ENCODER, info.version) is not None, 60)
    record = EncoderVersion(
        model=IMAGE_ENCODER,
        version=info.version,
        served_name=info.served_name,
        fingerprint=info.fingerprint[:64],
        created_at=time.time(),
    )
    asyncio.run(
        publish(
            worker_env.stack.kafka_bootstrap,
            [
                (
                    worker_env.topic(ENCODER_VERSIONS),
                    b"image_encoder",
                    record.model_dump_json().encode(),
                )
            ],
        )
    )
    assert wait_until(lambda: encoder(worker_env).get("challenger") == info.served_name, 60)

    settings = Settings.from_env(worker_env.env())
    store = FileModelStore(settings.checkpoint_dir, settings.checkpoint_key.encode())

    def compared_in_checkpoint() -> int:
        snapshot = store.latest()
        if snapshot is None:
            return 0
        duel = EncoderDuel.adopt(snapshot.learner)
        return duel.comparison.n if duel.comparison is not None else 0

    assert wait_until(lambda: compared_in_checkpoint() >= 300, 180), encoder(worker_env)
    worker_env.kill_worker("first")
    at_kill = compared_in_checkpoint()
    assert at_kill >= 300
    worker_env.start_worker("second")
    assert wait_until(lambda: encoder(worker_env).get("counts", {}).get("retire") == 1, 300), (
        encoder(worker_env),
        worker_env.logs(),
    )
    final = encoder(worker_env)
    assert final["champion"] == IMAGE_ENCODER and final["counts"]["promote"] == 0
    decision = final["last_decision"]
    assert decision["challenger"] == info.served_name and decision["decision"] == "retire"
    # the comparison went on from the checkpoint, not from zero
    assert decision["n"] >= at_kill
    traffic.stop()
