"""``bertctr demo``: the whole system on simulated traffic, with a summary.

Starts the embedded stack, the encoders on Triton (``bertctr encoder
serve``, with PCA projection heads fitted on the rendered catalogue), one
``bertctr worker`` and the simulator; publishes a bounded amount of traffic
at a replay speed; waits until every impression is labelled and learned;
then compares the model's progressive metrics and ranking lift with the
simulator's oracle (:mod:`bertctr.evaluation`). ``encoders=False`` runs the
same without embeddings. Processes, topics and Kafka I/O go through
:mod:`bertctr.harness`, as in the tests and benchmarks.

With ``serving`` (``bertctr demo --serve``) the API and its live page
(``bertctr api``) start before the first event is published, so the page
moves with the traffic; they run until ``then`` returns. The demo never
writes to a stream itself: it tells a :class:`~bertctr.cli.progress.Progress`
(a bar in a terminal, plain lines otherwise) what it is doing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from bertctr.demo_config import DemoConfig
from bertctr.evaluation import evaluate_run
from bertctr.harness.api import ApiServer
from bertctr.harness.encoders import EncoderServer, start_encoder_server
from bertctr.harness.kafka import ReadResult, publish_paced, read_topics
from bertctr.harness.procs import bertctr_command
from bertctr.harness.stack import EmbeddedStack, start_stack
from bertctr.harness.workers import Namespace, WorkerFleet, replay_settings
from schemas import topics
from schemas.keys import KeySpace
from schemas.settings import Settings
from simulator import SimMessage, Simulator
from simulator.catalogue import CatalogueEntry

if TYPE_CHECKING:
    from bertctr.cli.progress import Progress as Show

__all__ = ["DemoConfig", "LabelLog", "demo_fleet", "run_demo", "write_demo_report"]

#: told what the demo is doing, one line at a time
Progress = Callable[[str], None]


@dataclass
class LabelLog:
    """What the demo reads back from ``labelled`` and ``dead-letter``."""

    labels: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_labels(self) -> int:
        return sum(1 for m in self.labels if not m["late"])


def demo_fleet(stack: EmbeddedStack, settings: Settings, cfg: DemoConfig, tmp: Path) -> WorkerFleet:
    """The demo's workers: a fresh topic/key namespace, simulated time replayed.

    Simulated time runs ``speed`` times faster than the wall clock, so the
    lateness bound (in event time) must cover several wall seconds of skew
    between the two topics: 30 wall seconds (3 s, 600 simulated seconds at
    200x, was too little on a loaded 2-core machine: a click could arrive
    after its impression had expired and the counts of one seed differed
    between runs). Published flat out (``speed`` 0), the topics' event times
    can drift apart by the whole run, so the bound must cover it all.
    """
    lateness = max(600.0, 30.0 * cfg.speed) if cfg.speed > 0 else 10 * 86_400.0
    fleet = WorkerFleet(
        stack,
        tmp,
        Namespace.fresh("demo", redis_root=settings.redis_prefix),
        partitions=cfg.partitions,
    )
    fleet.overrides.update(
        {
            "BERTCTR_ATTRIBUTION_WINDOW_S": str(settings.attribution_window_s),
            **replay_settings(cfg.speed, lateness),
            "BERTCTR_CHECKPOINT_INTERVAL_S": "15",
        }
    )
    return fleet


def read_outputs(fleet: WorkerFleet, expected_base: int, timeout_s: float, show: Show) -> LabelLog:
    """Read labelled + dead-letter until every impression has its label, then settle."""
    labelled, dead = fleet.topic(topics.LABELLED), fleet.topic(topics.DEAD_LETTER)

    def base_labels(r: ReadResult) -> int:
        return sum(1 for m in r.of(labelled) if not m["late"])

    with show.bar("labelled", expected_base, unit="impressions") as bar:
        result = asyncio.run(
            read_topics(
                fleet.stack.kafka_bootstrap,
                [labelled, dead],
                lambda r: base_labels(r) >= expected_base,
                timeout_s,
                progress=lambda r: bar.update_to(base_labels(r)),
            )
        )
    out = LabelLog(labels=result.of(labelled), dead=result.of(dead))
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
    fit = bertctr_command("encoder", "fit-projection")
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


def simulate(
    settings: Settings, cfg: DemoConfig, tmp: Path, progress: Progress
) -> tuple[Simulator, list[SimMessage]]:
    """The simulator, its rendered catalogue and the messages to publish."""
    sim = Simulator(cfg.sim_config(settings.attribution_window_s))
    sim.render_catalogue(tmp / "images")
    messages = list(sim.messages(cfg.events))
    progress(
        f"simulated {len(messages)} messages for {sim.expected_counts['impressions']} "
        f"impressions (images in {tmp / 'images'})"
    )
    return sim, messages


def serve_encoders(
    tmp: Path, sim: Simulator, cfg: DemoConfig, fleet: WorkerFleet, progress: Progress
) -> EncoderServer:
    """Fit the heads, serve both encoders on Triton, point the workers at it."""
    heads = fit_heads(tmp, sim.catalogue, cfg, progress)
    repository = tmp / "encoders"
    encoders = start_encoder_server([*heads, "--repository", str(repository)], log_dir=tmp)
    fleet.overrides["BERTCTR_TRITON_URL"] = encoders.grpc_url
    fleet.overrides["BERTCTR_IMAGE_DIR"] = str(tmp / "images")
    fleet.overrides["BERTCTR_ENCODER_REPOSITORY"] = str(repository)
    progress(f"encoders served by Triton at {encoders.grpc_url}")
    return encoders


def publish(
    fleet: WorkerFleet, messages: list[SimMessage], speed: float, sent: Callable[[int], None]
) -> None:
    """Publish the simulated traffic into the fleet's topics at the replay speed."""
    timed = ((m.ts, (fleet.topic(m.topic), m.key, m.value)) for m in messages)
    asyncio.run(publish_paced(fleet.stack.kafka_bootstrap, timed, speed=speed, progress=sent))


def learned(fleet: WorkerFleet) -> int:
    """Examples the learner has learned so far (its published metrics)."""
    client = redis.Redis.from_url(fleet.stack.redis_url)
    try:
        raw = client.get(KeySpace(fleet.namespace.redis_prefix).model_metrics)
        return int(json.loads(raw)["count"]) if raw is not None else 0
    finally:
        client.close()


def finetune_cycle(
    fleet: WorkerFleet, cfg: DemoConfig, impressions: int, progress: Progress
) -> dict[str, Any]:
    """Once ``finetune_at`` of the impressions are learned, run ``bertctr finetune`` once.

    The traffic keeps flowing meanwhile, as in production: the job trains
    on what is labelled when it starts, publishes and announces the new
    version if it passes its gate, and the stream takes it from there.
    """
    target = int(cfg.finetune_at * impressions)
    deadline = time.monotonic() + cfg.timeout_s
    while learned(fleet) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the learner did not reach {target} examples")
        time.sleep(1.0)
    progress(f"{target} impressions learned: fine-tuning the image encoder on them")
    t0 = time.monotonic()
    command = ["finetune", "--seed", str(cfg.seed), "--min-clicks", str(cfg.finetune_min_clicks)]
    head = fleet.directory / "image_head.npz"  # the served head: training starts from it
    if head.exists():
        command += ["--init-head", str(head)]
    try:
        out = subprocess.run(
            bertctr_command(*command),
            env=fleet.env(),
            capture_output=True,
            timeout=cfg.timeout_s,
        )
    except subprocess.TimeoutExpired:
        # the job is killed (subprocess.run does), the traffic and the summary go on
        seconds = round(time.monotonic() - t0, 1)
        progress(f"finetune timed out after {seconds}s; the PCA head stays champion")
        return {"finetune_outcome": "timed out", "finetune_seconds": seconds}
    seconds = round(time.monotonic() - t0, 1)
    message = (out.stdout or out.stderr).decode(errors="replace").strip().splitlines()
    outcome = {0: "published", 3: "refused", 4: "not served"}.get(out.returncode, "failed")
    progress(f"finetune {outcome} in {seconds}s: {message[-1] if message else ''}")
    return {"finetune_outcome": outcome, "finetune_seconds": seconds}


def encoder_summary(fleet: WorkerFleet, finetune: dict[str, Any]) -> dict[str, Any]:
    """The ``encoder`` part of the summary: who serves, and what the stream decided."""
    client = redis.Redis.from_url(fleet.stack.redis_url)
    try:
        raw = client.get(KeySpace(fleet.namespace.redis_prefix).encoder_status)
    finally:
        client.close()
    status = json.loads(raw) if raw is not None else {}
    counts = status.get("counts", {})
    return {
        "champion": status.get("champion"),
        "champion_version": status.get("champion_version"),
        "challenger": status.get("challenger"),
        "promotions": counts.get("promote", 0),
        "retirements": counts.get("retire", 0),
        "comparison": status.get("comparison") or status.get("last_decision"),
        **finetune,
    }


def summarise(
    sim: Simulator,
    outputs: LabelLog,
    fleet: WorkerFleet,
    cfg: DemoConfig,
    progress: Progress,
) -> dict[str, Any]:
    """Counts from the topics, the model's figures beside the oracle's."""
    progress("all impressions labelled; waiting for the model to catch up")
    judged = evaluate_run(
        sim,
        outputs.labels,
        Settings.from_env(fleet.env()),
        ranking_requests=cfg.ranking_requests,
        seed=cfg.seed,
        timeout_s=cfg.timeout_s,
        progress=progress,
    )
    return {
        "impressions": outputs.base_labels,
        "clicks": sum(1 for m in outputs.labels if m["clicked"]),
        "late_clicks": sum(1 for m in outputs.labels if m["late"]),
        "labelled": len(outputs.labels),
        "dead_lettered": len(outputs.dead),
        **judged,
        "redis_prefix": fleet.namespace.redis_prefix,
        "seed": cfg.seed,
    }


def write_demo_report(
    sim: Simulator, outputs: LabelLog, fleet: WorkerFleet, out: Path, progress: Progress
) -> Path:
    """``bertctr report`` on the run's data, with what only the simulator knows.

    The oracle's NE, scored on the labels in the order they were read (as
    the learner met them), and the catalogue's attributes for the drivers
    of clicks; thumbnails from the rendered catalogue.
    """
    from bertctr.report import make_report, oracle_ne_curve
    from online_ctr.insights import ImageAttributes, StaticAttributes

    t0 = time.monotonic()
    attributes = StaticAttributes(  # the simulator's own attributes stand for measured ones
        {
            e.image_id: ImageAttributes(e.image_id, e.numeric(), frozenset({f"colour={e.colour}"}))
            for e in sim.catalogue
        }
    )
    oracle = oracle_ne_curve(
        (sim.true_p[m["impression_id"]], bool(m["clicked"])) for m in outputs.labels
    )
    page = make_report(
        Settings.from_env(fleet.env()),
        out,
        title=f"bertctr demo report (seed {sim.config.seed})",
        oracle=oracle,
        image_dir=str(fleet.directory / "images"),
        attributes=attributes,
    )
    progress(f"report written in {time.monotonic() - t0:.1f}s: {page}")
    return page


def serve_api(fleet: WorkerFleet, port: int | None, show: Show) -> ApiServer:
    """``bertctr api`` on the fleet's data (port ``None``: a free one), answering."""
    api = ApiServer(fleet.env(), fleet.directory / "api.log", port=port).start()
    show.say(f"API and live page up (log in {api.log_path})")
    return api


def run_demo(
    settings: Settings,
    cfg: DemoConfig,
    show: Show,
    *,
    serving: Callable[[str], None] | None = None,
    then: Callable[[dict[str, Any]], None] | None = None,
    report: bool = False,
    report_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the demo end to end and return the summary dict.

    ``serving``: serve the API and its live page (``bertctr api`` on
    ``settings.api_port``, the fleet's data) from before the first event is
    published; ``serving`` is called with its URL once it answers. ``then``
    is called with the summary while everything still runs (the API, the
    workers, Triton, the broker): ``bertctr demo --serve`` waits there until
    it is stopped. ``report``: write ``bertctr report`` of the run into
    ``report_dir`` (default: ``report/`` in the demo's folder) before
    ``then``; the summary's ``report`` is the page's path.
    """
    tmp = Path(tempfile.mkdtemp(prefix="bertctr-demo-"))
    sim, messages = simulate(settings, cfg, tmp, show.say)
    stack = start_stack(settings.kafka_bootstrap, settings.redis_url)
    fleet = demo_fleet(stack, settings, cfg, tmp)
    encoders: EncoderServer | None = None
    api: ApiServer | None = None
    try:
        if cfg.encoders:
            encoders = serve_encoders(tmp, sim, cfg, fleet, show.say)
        fleet.cli("topics", "create")
        for i in range(cfg.workers):
            fleet.start_worker(f"{i}")
        show.say(f"{cfg.workers} worker(s) started; logs in {tmp}")
        if serving is not None:
            api = serve_api(fleet, settings.api_port, show)
            serving(api.url)
        t0 = time.monotonic()
        expected = sim.expected_counts["impressions"]
        traffic = show.bar("traffic", len(messages), unit="messages")
        publisher = threading.Thread(
            target=publish, args=(fleet, messages, cfg.speed, traffic.update_to), daemon=True
        )
        publisher.start()
        finetune: dict[str, Any] = {}
        try:
            if cfg.encoders and cfg.finetune:
                finetune = finetune_cycle(fleet, cfg, expected, show.say)
            publisher.join()
        finally:
            traffic.close()
        outputs = read_outputs(fleet, expected, cfg.timeout_s, show)
        elapsed = time.monotonic() - t0
        summary = summarise(sim, outputs, fleet, cfg, show.say)
        summary["events_per_s"] = round(len(messages) / elapsed, 1)
        summary["published"] = len(messages)
        if cfg.encoders:
            summary["encoder"] = encoder_summary(fleet, finetune)
        if report:
            out = report_dir or tmp / "report"
            summary["report"] = str(write_demo_report(sim, outputs, fleet, out, show.say))
        if then is not None:
            then(summary)
        return summary
    finally:
        if api is not None:
            api.stop()
        fleet.stop()
        if encoders is not None:
            encoders.stop()
        stack.close()
