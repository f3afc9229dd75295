"""``bertctr demo``: the whole system on simulated traffic, with a summary.

Starts the embedded stack, the encoders on Triton (``bertctr encoder
serve``, with PCA projection heads fitted on the rendered catalogue), one
``bertctr worker`` and the simulator; publishes a bounded amount of traffic
at a replay speed; waits until every impression is labelled and learned;
then compares the model's progressive metrics and ranking lift with the
simulator's oracle. ``encoders=False`` runs the same without embeddings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bertctr.simulate import publish_messages
from bertctr.stack import EmbeddedStack, start_stack, stop_process
from encoder_server.launcher import EncoderServer, start_encoder_server
from schemas.events import RECORD_HEADER
from schemas.settings import Settings
from simulator.catalogue import CatalogueEntry

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class DemoConfig:
    events: int = 50_000
    seed: int = 7
    #: one worker: each worker learns its own model from the partitions it
    #: owns, and the demo judges one model (multi-worker learning is later work)
    workers: int = 1
    partitions: int = 4
    timeout_s: float = 900.0
    ranking_requests: int = 3000
    #: simulated seconds per wall second; 0 publishes flat out
    speed: float = 200.0
    #: 5/s spreads 50k impressions over ~2.8 simulated hours, several
    #: attribution windows, so negatives and positives interleave as in production
    impressions_per_s: float = 5.0
    #: serve the encoders on Triton and learn with image and title embeddings
    encoders: bool = True
    #: dimensions of the PCA heads fitted on the catalogue (see bench_embeddings);
    #: the image head is fitted on multi-scale features, within items
    image_dim: int = 8
    text_dim: int = 8


@dataclass
class LabelLog:
    """What the demo reads back from ``labelled`` and ``dead-letter``."""

    labels: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_labels(self) -> int:
        return sum(1 for m in self.labels if not m["late"])


def demo_env(
    stack: EmbeddedStack, settings: Settings, cfg: DemoConfig, tmp: Path
) -> dict[str, str]:
    """Worker environment: a fresh topic/key namespace for this run.

    Simulated time runs ``speed`` times faster than the wall clock: the
    lateness bound (in event time) covers several wall seconds of skew between
    the two topics, and an idle partition's clock advances at the replay
    speed, so the end of the run expires in (window + lateness) / speed wall
    seconds, as it would have live. Published flat out (``speed`` 0), the topics' event
    times can drift apart by the whole run, so the bound must cover it all.
    """
    # 30 wall seconds of skew between the topics of a partition, in event
    # time. 3 s (600 simulated seconds at 200x) was too little on a loaded
    # 2-core machine: a click could arrive after its impression had expired
    # and the counts of one seed differed between runs.
    lateness = max(600.0, 30.0 * cfg.speed) if cfg.speed > 0 else 10 * 86_400.0
    run = uuid.uuid4().hex[:6]
    return {
        **os.environ,
        **stack.env(),
        "BERTCTR_TOPIC_PREFIX": f"demo-{run}-",
        "BERTCTR_REDIS_PREFIX": f"{settings.redis_prefix}demo:{run}:",
        "BERTCTR_APP_ID": f"bertctr-demo-{run}",
        "BERTCTR_PARTITIONS": str(cfg.partitions),
        "BERTCTR_ATTRIBUTION_WINDOW_S": str(settings.attribution_window_s),
        "BERTCTR_MAX_LATENESS_S": str(lateness),
        "BERTCTR_IDLE_AFTER_S": "2",
        "BERTCTR_IDLE_CLOCK_RATE": str(cfg.speed if cfg.speed > 0 else 1_000_000),
        # simulated time is not the wall clock: its events may be dated anywhere
        "BERTCTR_MAX_FUTURE_SKEW_S": "1e10",
        "BERTCTR_SESSION_TIMEOUT_S": "10",
        "BERTCTR_DATA_DIR": str(tmp / "data"),
        "BERTCTR_CHECKPOINT_DIR": str(tmp / "checkpoints"),
        "BERTCTR_CHECKPOINT_INTERVAL_S": "15",
    }


async def read_outputs(
    bootstrap: str,
    prefix: str,
    expected_base: int,
    timeout_s: float,
    progress: Progress,
    settle_s: float = 3.0,
) -> LabelLog:
    """Read labelled + dead-letter until every impression has its label, then settle."""
    consumer = AIOKafkaConsumer(
        f"{prefix}labelled",
        f"{prefix}dead-letter",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    out = LabelLog()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    settle_until: float | None = None
    last_report = 0.0
    try:
        while loop.time() < (settle_until or deadline):
            batch = await consumer.getmany(timeout_ms=250, max_records=5000)
            for tp, records in batch.items():
                target = out.labels if tp.topic.endswith("labelled") else out.dead
                # skip control records (the join's watermarks on labelled)
                events = (r for r in records if not any(h == RECORD_HEADER for h, _ in r.headers))
                target.extend(json.loads(r.value) for r in events)
            if settle_until is None and out.base_labels >= expected_base:
                settle_until = loop.time() + settle_s
            if loop.time() - last_report > 5:
                last_report = loop.time()
                progress(f"labelled {out.base_labels}/{expected_base} impressions")
    finally:
        await consumer.stop()
    if out.base_labels < expected_base:
        raise TimeoutError(f"only {out.base_labels}/{expected_base} impressions labelled")
    return out


def fit_heads(
    tmp: Path, catalogue: list[CatalogueEntry], cfg: DemoConfig, progress: Progress
) -> list[str]:
    """PCA heads on the catalogue's images and titles; ``encoder serve`` options.

    The image head is fitted the way ``bench/bench_embeddings.py`` measured
    best: on multi-scale features, with directions from how each item's
    variants differ (``--groups``: image id -> item id).
    """
    image_head, text_head = tmp / "image_head.npz", tmp / "text_head.npz"
    titles_file, groups_file = tmp / "titles.txt", tmp / "groups.json"
    titles_file.write_text("\n".join(sorted({e.title for e in catalogue})) + "\n")
    groups_file.write_text(json.dumps({e.image_id: e.item_id for e in catalogue}))
    fit = [sys.executable, "-m", "bertctr.cli", "encoder", "fit-projection"]
    for extra in (
        [
            "--images",
            str(tmp / "images"),
            "--features",
            "multiscale",
            "--groups",
            str(groups_file),
            "--dim",
            str(cfg.image_dim),
            "--out",
            str(image_head),
        ],
        ["--titles-file", str(titles_file), "--dim", str(cfg.text_dim), "--out", str(text_head)],
    ):
        subprocess.run([*fit, *extra], check=True, capture_output=True)
    progress(f"fitted PCA heads ({cfg.image_dim}-d image, {cfg.text_dim}-d title)")
    return ["--image-projection", str(image_head), "--text-projection", str(text_head)]


def run_demo(settings: Settings, cfg: DemoConfig, progress: Progress) -> dict[str, Any]:
    """Run the demo end to end and return the summary dict."""
    from bertctr.evaluation import evaluate_run
    from simulator import SimConfig, Simulator

    sim = Simulator(
        SimConfig(
            seed=cfg.seed,
            impressions_per_s=cfg.impressions_per_s,
            attribution_window_s=settings.attribution_window_s,
        )
    )
    tmp = Path(tempfile.mkdtemp(prefix="bertctr-demo-"))
    sim.render_catalogue(tmp / "images")
    messages = list(sim.messages(cfg.events))
    expected = sim.expected_counts
    progress(
        f"simulated {len(messages)} messages for {expected['impressions']} impressions "
        f"(images in {tmp / 'images'})"
    )
    stack = start_stack(settings.kafka_bootstrap, settings.redis_url)
    workers: list[subprocess.Popen[bytes]] = []
    encoders: EncoderServer | None = None
    try:
        env = demo_env(stack, settings, cfg, tmp)
        if cfg.encoders:
            heads = fit_heads(tmp, sim.catalogue, cfg, progress)
            encoders = start_encoder_server(heads, log_dir=tmp)
            env["BERTCTR_TRITON_URL"] = encoders.grpc_url
            env["BERTCTR_IMAGE_DIR"] = str(tmp / "images")
            progress(f"encoders served by Triton at {encoders.grpc_url}")
        prefix = env["BERTCTR_TOPIC_PREFIX"]
        subprocess.run(
            [sys.executable, "-m", "bertctr.cli", "topics", "create"],
            env=env,
            check=True,
            capture_output=True,
        )
        for i in range(cfg.workers):
            logf = open(tmp / f"worker-{i}.log", "wb")  # noqa: SIM115
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bertctr.cli", "worker"],
                    env=env,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        progress(f"{cfg.workers} worker(s) started; logs in {tmp}")
        t0 = time.monotonic()
        asyncio.run(publish_messages(stack.kafka_bootstrap, prefix, messages, cfg.speed, progress))
        outputs = asyncio.run(
            read_outputs(
                stack.kafka_bootstrap, prefix, expected["impressions"], cfg.timeout_s, progress
            )
        )
        elapsed = time.monotonic() - t0
        progress("all impressions labelled; waiting for the model to catch up")
        summary = evaluate_run(sim, outputs, env, len(outputs.labels), cfg, progress)
        summary["events_per_s"] = round(len(messages) / elapsed, 1)
        summary["published"] = len(messages)
        summary["redis_prefix"] = env["BERTCTR_REDIS_PREFIX"]
        summary["seed"] = cfg.seed
        return summary
    finally:
        for proc in workers:
            stop_process(proc, timeout_s=10)
        if encoders is not None:
            encoders.stop()
        stack.close()
