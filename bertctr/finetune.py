"""``bertctr finetune``: the periodic retrain job that closes the loop.

One run:

1. **Window.** Labelled examples with ``labelled_at`` in ``[since, until)``:
   ``--since``/``--until`` (epoch seconds), or the last ``--hours``, or by
   default everything since the previous run's ``until`` (recorded in
   ``<repository>/finetune-state.json`` and in Redis), or everything.
2. **Champion.** The serving CTR model from the model store (the workers'
   newest snapshot) and the encoder version it embeds with.
3. **Training set and head** (:mod:`bertctr.finetune_data`,
   :func:`encoder_server.training.finetune.train_head`): a projection head on the
   frozen backbone's multi-scale features, trained on click log loss over the
   champion's logit, conditioned on the audience groups the model crosses.
4. **Gate** (:func:`encoder_server.training.finetune.should_publish`): too few clicks,
   or no significant held-out improvement, and the job refuses with a clear
   message and exit code 3. The report is written either way.
5. **Publish** the head as the next version in the encoder repository
   (``BERTCTR_ENCODER_REPOSITORY``) and wait until the running Triton
   (``bertctr encoder serve --repository``) serves it beside the current one;
   if it fails to load or is not served in time, exit code 4 and nothing is
   announced (the old version keeps serving either way).
6. **Announce** it on ``encoder-versions``; workers train a challenger in
   shadow and promote it only if it wins online.

``--every DURATION`` repeats the run on a schedule (a refused or failed run
waits for the next one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bertctr.finetune_data import Window, complete, gather, read_window
from bertctr.times import parse_duration
from encoder_server.base import IMAGE_ENCODER
from encoder_server.projection import Projection
from encoder_server.serving.repository import EncoderRepository, VersionInfo
from encoder_server.training.finetune import (
    EpochBars,
    FinetuneResult,
    HeadTrainingConfig,
    should_publish,
    train_head,
)
from encoder_server.training.report import write_report
from online_ctr.learner import Learner
from online_ctr.promotion.duel import EncoderDuel, serving_learner
from schemas import topics
from schemas.events import EncoderVersion
from schemas.keys import KeySpace
from schemas.settings import Settings
from wiring.connections import kafka_client_options
from wiring.models import champion_of, fresh_learner, model_store

__all__ = [
    "EXIT_NOT_SERVED",
    "EXIT_PUBLISHED",
    "EXIT_REFUSED",
    "JobConfig",
    "parse_duration",
    "run_every",
    "run_once",
]

log = logging.getLogger(__name__)

EXIT_PUBLISHED = 0
#: too little data, or the head is not better: nothing published
EXIT_REFUSED = 3
#: published, but the running Triton did not serve it: not announced
EXIT_NOT_SERVED = 4
STATE_FILE = "finetune-state.json"


@dataclass
class JobConfig:
    """One run's choices (the CLI's options)."""

    since: float | None = None
    until: float | None = None
    hours: float | None = None
    seed: int = 0
    dim: int | None = None
    min_clicks: int = 200
    report_dir: Path | None = None
    init_head: Path | None = None
    serve_timeout_s: float = 180.0
    #: makes the bar over the training epochs (the CLI's: a tqdm bar in a
    #: terminal, plain lines otherwise); ``None``: none
    progress: EpochBars | None = None
    #: where each step of the run is told as it starts (the CLI's progress);
    #: ``None``: logged at INFO
    notes: Callable[[str], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _state_path(settings: Settings) -> Path:
    return Path(settings.encoder_repository) / STATE_FILE


def resolve_window(settings: Settings, cfg: JobConfig, now: float) -> Window:
    """The window to train on (see step 1 of the module docstring)."""
    until = cfg.until if cfg.until is not None else now
    if cfg.since is not None:
        return Window(cfg.since, until)
    if cfg.hours is not None:
        return Window(until - cfg.hours * 3600.0, until)
    try:
        state = json.loads(_state_path(settings).read_text())
        return Window(float(state["until"]), until)
    except (OSError, ValueError, KeyError, TypeError):
        return Window(None, until)


@dataclass(frozen=True)
class Champion:
    """The serving model's encoder, and the model the window is replayed through."""

    #: a copy of the model as it was before the window (see bertctr.finetune_data)
    replay: Learner
    #: the served model name the champion embeds with
    model: str
    #: its repository version, if it is one (the parent of what is trained now)
    version: int | None
    #: its head, to start training from (None: a random start)
    head: Projection | None


def load_champion(
    settings: Settings, repo: EncoderRepository, window: Window, init: Path | None
) -> Champion:
    """Which encoder serves now, and the newest snapshot from before ``window``."""
    store = model_store(settings)
    newest = store.latest()
    if newest is None:
        raise RuntimeError(f"no model snapshot in {settings.checkpoint_dir}: has a worker run?")
    duel = EncoderDuel.adopt(newest.learner, IMAGE_ENCODER)
    model = champion_of(duel).image_model
    before = [i for i in store.list() if window.since is not None and i.created_at <= window.since]
    replay = (
        serving_learner(store.load(before[-1].name).learner) if before else fresh_learner(settings)
    )
    log.info(
        "replaying the window through %s",
        f"snapshot {before[-1].name}" if before else "a fresh model (no snapshot before it)",
    )
    version = None
    head = Projection.load(init) if init is not None else None
    for info in repo.versions(IMAGE_ENCODER):
        if info.served_name == model:
            version = info.version
            if head is None:
                head, _ = repo.load(IMAGE_ENCODER, info.version)
    return Champion(replay, model, version, head)


async def wait_until_served(
    repo: EncoderRepository, info: VersionInfo, timeout_s: float
) -> tuple[bool, str]:
    """Whether the server loaded ``info`` (its ``status.json``), and why not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = repo.status(info.model, info.version)
        if status is not None and status.state == "ready":
            return True, f"served as {info.served_name}"
        if status is not None and status.state == "failed":
            return False, f"the server could not load it: {status.error}"
        await asyncio.sleep(0.5)
    return False, (
        f"not served within {timeout_s:.0f}s: is `bertctr encoder serve --repository "
        f"{repo.root}` running?"
    )


async def announce(settings: Settings, info: VersionInfo, result: FinetuneResult) -> None:
    """Publish the :class:`EncoderVersion` record on ``encoder-versions``."""
    if not settings.kafka_bootstrap:
        raise ValueError("BERTCTR_KAFKA_BOOTSTRAP must be set")
    record = EncoderVersion(
        model=info.model,
        version=info.version,
        served_name=info.served_name,
        parent=info.parent,
        fingerprint=info.fingerprint[:64],
        created_at=time.time(),
        window=dict(info.training.get("window", {})),
        metrics=_metrics(result),
        examples=int(result.splits["train"].examples),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, **kafka_client_options(settings), acks="all"
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topic(topics.ENCODER_VERSIONS),
            record.model_dump_json().encode(),
            key=info.model.encode(),
        )
    finally:
        await producer.stop()
    log.info("announced %s v%d on %s", info.model, info.version, topics.ENCODER_VERSIONS)


def _metrics(result: FinetuneResult) -> dict[str, float]:
    return {
        "holdout_logloss_before": result.before.log_loss,
        "holdout_logloss_after": result.after.log_loss,
        "holdout_auc_before": result.before.auc,
        "holdout_auc_after": result.after.auc,
    }


async def record_state(
    settings: Settings, window: Window, version: int | None, outcome: str
) -> None:
    """Remember this run's window end ("since the last job"), on disk and in Redis."""
    state = {"until": window.until, "version": version, "outcome": outcome, "at": time.time()}
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))
    from redis.exceptions import RedisError

    from wiring.connections import async_redis

    client = async_redis(settings)
    try:
        await client.set(KeySpace(settings.redis_prefix).finetune_state, json.dumps(state))
    except (RedisError, OSError) as exc:
        log.warning("could not record the job in Redis: %s", exc)
    finally:
        await client.aclose()


def _report_dir(settings: Settings, cfg: JobConfig) -> Path:
    if cfg.report_dir is not None:
        return cfg.report_dir
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(settings.encoder_repository) / "reports" / stamp


def _note(cfg: JobConfig, line: str) -> None:
    if cfg.notes is not None:
        cfg.notes(line)
    else:
        log.info("%s", line)


async def run_once(settings: Settings, cfg: JobConfig) -> tuple[int, str]:
    """One run (see the module docstring); returns (exit code, what happened)."""
    repo = EncoderRepository(settings.encoder_repository)
    window = resolve_window(settings, cfg, time.time())
    _note(cfg, f"reading the labelled examples of the window {window.to_dict()}")
    examples = complete(await read_window(settings, window), settings.attribution_window_s)
    clicks = sum(1 for e in examples if e.clicked)
    if clicks < cfg.min_clicks:
        message = (
            f"refused: {clicks} clicks in {len(examples)} complete examples of the window "
            f"{window.to_dict()}; at least {cfg.min_clicks} needed (BERTCTR_FINETUNE_MIN_CLICKS)"
        )
        return EXIT_REFUSED, message
    champion = load_champion(settings, repo, window, cfg.init_head)
    _note(cfg, f"{len(examples)} examples, {clicks} clicks: gathering features and offsets")
    data = await gather(settings, examples, champion.replay, champion.model)
    _note(cfg, "training the head")
    result = await asyncio.to_thread(
        train_head,
        data,
        HeadTrainingConfig(dim=cfg.dim, seed=cfg.seed),
        init=champion.head,
        progress=cfg.progress,
    )
    report = _report_dir(settings, cfg)
    write_report(result, report, {**window.to_dict(), "champion": champion.model})
    ok, why = should_publish(result, cfg.min_clicks)
    if not ok:
        return EXIT_REFUSED, f"refused: {why} (report in {report})"
    training = {
        "window": window.to_dict(),
        "metrics": _metrics(result),
        "examples": int(result.splits["train"].examples),
        "seed": cfg.seed,
        "report": str(report),
    }
    info = repo.publish(IMAGE_ENCODER, result.projection, champion.version, training)
    _note(cfg, f"published {info.served_name} ({why}); waiting until Triton serves it")
    served, how = await wait_until_served(repo, info, cfg.serve_timeout_s)
    if not served:
        await record_state(settings, window, None, "not served")
        return EXIT_NOT_SERVED, f"published v{info.version} but {how}; not announced"
    await announce(settings, info, result)
    await record_state(settings, window, info.version, "published")
    return EXIT_PUBLISHED, f"published {info.served_name} ({why}); report in {report}"


async def run_every(settings: Settings, cfg: JobConfig, every_s: float) -> int:
    """Run, then again every ``every_s`` seconds, until stopped; errors wait for the next."""
    while True:
        started = time.monotonic()
        try:
            code, message = await run_once(settings, cfg)
            log.info("finetune run: exit %d: %s", code, message)
        except Exception:  # one failed run must not end the schedule
            log.exception("finetune run failed; next run in %.0fs", every_s)
        await asyncio.sleep(max(0.0, every_s - (time.monotonic() - started)))
