"""The ``bertctr`` command line: thin wrappers over the library.

Commands: ``worker``, ``stats``, ``health``, ``schemas export``, ``stack up``,
``topics create``, ``demo``, ``simulate``. Output meant for programs is JSON on stdout
(``--json``); logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import RedisError

from bertctr.api_cli import add_api_command
from bertctr.demo_config import DemoConfig
from bertctr.encoder_cli import add_encoder_commands
from schemas.settings import Settings
from wiring.connections import redact

__all__ = [
    "build_parser",
    "cmd_demo",
    "cmd_health",
    "cmd_schemas_export",
    "cmd_simulate",
    "cmd_stack_up",
    "cmd_stats",
    "cmd_topics_create",
    "cmd_worker",
    "format_stats",
    "format_summary",
    "main",
    "read_health",
    "read_stats",
    "run_async",
]

log = logging.getLogger("bertctr")
T = TypeVar("T")
if TYPE_CHECKING:  # argparse's class is generic only to type checkers
    from bertctr.harness.workers import WorkerFleet

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def run_async(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine in a private loop, leaving the thread's loop alone (Faust needs it)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.kafka_bootstrap:
        print(
            "error: set BERTCTR_KAFKA_BOOTSTRAP (or run `bertctr stack up` first)", file=sys.stderr
        )
        return 2
    from streams.kafka.admin import ensure_topics
    from streams.worker import run_worker

    if args.role is not None:
        settings = settings.model_copy(update={"worker_role": args.role})
    run_async(lambda: ensure_topics(settings))
    # Faust reads its own argv; give it none of ours.
    sys.argv = sys.argv[:1]
    run_worker(settings, loglevel=args.loglevel)
    return 0


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.admin import ensure_topics

    created = run_async(lambda: ensure_topics(settings))
    print(json.dumps({"created": created}))
    return 0


async def read_stats(
    settings: Settings, item: str | None, segment: str | None, view: str = "live"
) -> dict[str, Any]:
    """The document ``bertctr stats --json`` prints (see :func:`streams.readers.read_stats`)."""
    from schemas.keys import KeySpace
    from streams import readers
    from wiring.connections import async_redis

    client = async_redis(settings)
    try:
        return await readers.read_stats(
            client, KeySpace(settings.redis_prefix), item, segment, view
        )
    finally:
        await client.aclose()


def format_stats(stats: dict[str, Any]) -> str:
    def row(name: str, c: dict[str, Any]) -> str:
        ctr = f"{c['ctr']:.4f}" if c["ctr"] is not None else "-"
        return f"{name:<48} {c['impressions']:>10} {c['clicks']:>8} {ctr:>8}"

    lines = [f"{'scope':<48} {'impr':>10} {'clicks':>8} {'ctr':>8}", row("total", stats["total"])]
    for item, c in stats["items"].items():
        lines.append(row(f"item {item}", c))
        for variant, vc in c.get("variants", {}).items():
            lines.append(row(f"  variant {variant}", vc))
    for seg, c in stats["segments"].items():
        lines.append(row(f"segment {seg}", c))
    model = stats.get("model")
    if model:

        def num(key: str) -> str:
            value = model.get(key)
            return "-" if value is None else f"{value:.4f}"

        lines.append(
            f"model {model.get('model')}: {model['count']} examples, logloss {num('logloss')}, "
            f"NE {num('ne')}, AUC {num('auc')}, calibration {num('calibration')}"
        )
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    stats = run_async(lambda: read_stats(settings, args.item, args.segment, args.view))
    print(json.dumps(stats, sort_keys=True) if args.json else format_stats(stats))
    return 0


async def read_health(settings: Settings) -> list[dict[str, Any]]:
    """Every worker's health report in Redis (see :func:`streams.readers.read_health`)."""
    from schemas.keys import KeySpace
    from streams import readers
    from wiring.connections import async_redis

    client = async_redis(settings)
    try:
        return await readers.read_health(client, KeySpace(settings.redis_prefix))
    finally:
        await client.aclose()


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """Judge the workers' health reports; exit 0 healthy, 1 unhealthy, 3 no report."""
    from streams.health.progress import assess, read_local_report

    if args.local:
        local = read_local_report(Path(settings.data_dir))
        reports = [local] if local is not None else []
    else:
        reports = run_async(lambda: read_health(settings))
    max_stall = args.max_stall_s if args.max_stall_s is not None else settings.health_max_stall_s
    now = time.time()
    workers = []
    for report in reports:
        problems = assess(report, now, max_stall)
        workers.append({**report, "healthy": not problems, "problems": problems})
    healthy = bool(workers) and all(w["healthy"] for w in workers)
    if args.json:
        print(json.dumps({"healthy": healthy, "workers": workers}, sort_keys=True))
    elif not workers:
        print("no worker health report found (is a worker running with this prefix?)")
    for w in [] if args.json else workers:
        state = "healthy" if w["healthy"] else "UNHEALTHY"
        print(f"{w.get('worker')}: {state}, report {now - float(w.get('at', 0)):.0f}s old")
        for problem in w["problems"]:
            print(f"  - {problem}")
    if not workers:
        return 3
    return 0 if healthy else 1


def cmd_schemas_export(args: argparse.Namespace, settings: Settings) -> int:
    from schemas import export_json_schemas

    for path in export_json_schemas(Path(args.dir)):
        print(path)
    return 0


def cmd_stack_up(args: argparse.Namespace, settings: Settings) -> int:
    from bertctr.harness.stack import start_stack

    # The handler goes in first: a SIGTERM that arrives while the broker is
    # starting (or right after the exports are printed) must still stop it.
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stack = start_stack(settings.kafka_bootstrap, settings.redis_url)
    try:
        for key, value in stack.env().items():
            print(f"export {key}={value}", flush=True)
        print(f"# started: {', '.join(stack.started) or 'nothing'}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    finally:
        stack.close()
    return 0


def _embeddings_line(e: dict[str, Any]) -> str:
    if not e.get("enabled"):
        return "off (learned without image and title embeddings)"
    versions = ", ".join(f"{k} v{v}" for k, v in sorted((e.get("versions") or {}).items()))
    computed = sum((e.get("computed") or {}).values())
    return f"{versions}; {computed} computed by Triton, {e.get('failures', 0)} failed"


def format_summary(s: dict[str, Any]) -> str:
    def f(v: Any, fmt: str = ".4f") -> str:
        return "-" if v is None else format(v, fmt)

    return "\n".join(
        [
            f"bertctr demo (seed {s['seed']}): {s['published']} messages, "
            f"{s['events_per_s']} events/s through the stack",
            f"  impressions {s['impressions']}, clicks {s['clicks']} "
            f"({s['late_clicks']} late), labelled {s['labelled']}, "
            f"dead-lettered {s['dead_lettered']}",
            f"  model {s['model']}: logloss {f(s['logloss'])}  NE {f(s['ne'])}  "
            f"AUC {f(s['auc'])}  calibration {f(s['calibration'], '.3f')}",
            f"  oracle:        logloss {f(s['oracle_logloss'])}  NE {f(s['oracle_ne'])}  "
            f"AUC {f(s['oracle_auc'])}",
            f"  ranking CTR lift over a random variant: model {s['ranking_ctr_lift']:+.1%}, "
            f"oracle {s['oracle_ranking_ctr_lift']:+.1%}",
            f"  embeddings: {_embeddings_line(s.get('embeddings') or {})}",
            *_encoder_lines(s.get("encoder")),
            f"  live counters: BERTCTR_REDIS_PREFIX={s['redis_prefix']} bertctr stats",
        ]
    )


def _encoder_lines(encoder: dict[str, Any] | None) -> list[str]:
    """The fine-tuning cycle and what the stream decided (nothing without encoders)."""
    if not encoder:
        return []
    return [
        f"  encoder loop: fine-tuning {encoder.get('finetune_outcome', 'not run')} "
        f"({encoder.get('finetune_seconds', '-')} s); champion {encoder.get('champion')} "
        f"(v{encoder.get('champion_version')}), promotions {encoder.get('promotions', 0)}, "
        f"retirements {encoder.get('retirements', 0)}, "
        f"judging {encoder.get('challenger') or 'nothing'}"
    ]


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bertctr.demo import run_demo

    cfg = DemoConfig(
        events=args.events, seed=args.seed, speed=args.speed, encoders=not args.no_encoders
    )

    def progress(line: str) -> None:
        print(f"[demo] {line}", file=sys.stderr, flush=True)

    def report(summary: dict[str, Any], fleet: WorkerFleet | None = None) -> None:
        print(format_summary(summary), flush=True)
        if fleet is None:
            print("see it live: bertctr demo --serve (or make serve) keeps the API and its page up")
        if args.json:
            print(json.dumps(summary, sort_keys=True), flush=True)
        if fleet is not None:
            serve_until_stopped(fleet, settings)

    if args.serve:
        run_demo(settings, cfg, progress, then=report)
    else:
        report(run_demo(settings, cfg, progress))
    return 0


def serve_until_stopped(fleet: WorkerFleet, settings: Settings) -> None:
    """``bertctr api`` on the demo's data, with its URL printed, until SIGINT/SIGTERM."""
    from bertctr.harness.api import ApiServer

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    port = settings.api_port
    with ApiServer(fleet.env(), fleet.directory / "api.log", port=port) as api:
        print(f"live page: {api.url}/  (API docs: {api.url}/docs); Ctrl-C stops it", flush=True)
        stop.wait()


def _time_arg(text: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC if it names no zone)."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def cmd_finetune(args: argparse.Namespace, settings: Settings) -> int:
    """Train, gate, publish and announce a new image-encoder version (see bertctr.finetune)."""
    from bertctr.finetune import JobConfig, parse_duration, run_every, run_once

    cfg = JobConfig(
        since=args.since,
        until=args.until,
        hours=args.hours,
        seed=args.seed,
        dim=args.dim,
        min_clicks=args.min_clicks or settings.finetune_min_clicks,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        init_head=Path(args.init_head) if args.init_head else None,
        serve_timeout_s=args.serve_timeout_s,
        progress=args.progress,
    )
    if args.every:
        return run_async(lambda: run_every(settings, cfg, parse_duration(args.every)))
    code, message = run_async(lambda: run_once(settings, cfg))
    print(message, file=sys.stderr if code else sys.stdout, flush=True)
    return code


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Write simulated traffic as JSON lines (topic, key, value) or publish it."""
    from simulator import SimConfig, Simulator

    sim = Simulator(
        SimConfig(
            seed=args.seed,
            impressions_per_s=args.rate,
            attribution_window_s=settings.attribution_window_s,
        )
    )
    if args.images:
        sim.render_catalogue(Path(args.images))
    messages = list(sim.messages(args.events))
    if args.publish:
        from bertctr.harness.kafka import publish_paced

        bootstrap = settings.kafka_bootstrap
        if not bootstrap:
            print("error: --publish needs BERTCTR_KAFKA_BOOTSTRAP", file=sys.stderr)
            return 2
        timed = [(m.ts, (settings.topic(m.topic), m.key, m.value)) for m in messages]
        run_async(lambda: publish_paced(bootstrap, timed, speed=args.speed, total=len(timed)))
    else:
        for m in messages:
            print(
                json.dumps(
                    {
                        "topic": m.topic,
                        "key": m.key.decode() if m.key else None,
                        "value": m.value.decode("utf-8", "replace"),
                        "kind": m.kind,
                    }
                )
            )
    print(json.dumps(sim.expected_counts), file=sys.stderr)
    return 0


def _add_worker(sub: Subparsers) -> None:
    worker = sub.add_parser(
        "worker", help="run one worker (join, live counters, and a bid to be the one learner)"
    )
    worker.add_argument("--loglevel", default="info")
    worker.add_argument(
        "--role",
        choices=("all", "join", "learner"),
        default=None,
        help="what this worker runs (overrides BERTCTR_WORKER_ROLE; default all): join and "
        "counters on its partitions, and/or a bid for the learner lease",
    )
    worker.set_defaults(func=cmd_worker)


def _add_stats(sub: Subparsers) -> None:
    stats = sub.add_parser("stats", help="live CTR counters from Redis")
    stats.add_argument("--item")
    stats.add_argument("--segment", help="segment key, e.g. device=mobile,geo=DE,taste=t1")
    stats.add_argument(
        "--view",
        choices=["live", "settled"],
        default="live",
        help="live: counted on arrival (default); settled: counted from labels",
    )
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)


def _add_health(sub: Subparsers) -> None:
    health = sub.add_parser(
        "health", help="are the workers making progress? exit 0 healthy, 1 not, 3 no report"
    )
    health.add_argument(
        "--local",
        action="store_true",
        help="judge only this machine's worker (its BERTCTR_DATA_DIR report), not Redis",
    )
    health.add_argument("--max-stall-s", type=float, help="default BERTCTR_HEALTH_MAX_STALL_S")
    health.add_argument("--json", action="store_true")
    health.set_defaults(func=cmd_health)


def _add_schemas_and_stack(sub: Subparsers) -> None:
    schemas = sub.add_parser("schemas", help="event contract")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    export = schemas_sub.add_parser("export", help="write JSON Schema files")
    export.add_argument("dir")
    export.set_defaults(func=cmd_schemas_export)

    stack = sub.add_parser("stack", help="embedded broker and Redis")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True)
    up = stack_sub.add_parser("up", help="start what is not given; Ctrl-C stops it")
    up.set_defaults(func=cmd_stack_up)


def _add_demo(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="the whole system on simulated traffic")
    demo.add_argument(
        "--events", type=int, default=DemoConfig.events, help="impressions to simulate"
    )
    demo.add_argument("--seed", type=int, default=DemoConfig.seed)
    demo.add_argument(
        "--speed",
        type=float,
        default=DemoConfig.speed,
        help="simulated seconds per wall second (0 = flat out)",
    )
    demo.add_argument(
        "--no-encoders",
        action="store_true",
        help="learn without image and title embeddings (no Triton): the baseline",
    )
    demo.add_argument("--json", action="store_true", help="last stdout line: JSON summary")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep everything running and serve the API and the live page "
        "(BERTCTR_API_PORT) until Ctrl-C",
    )
    demo.set_defaults(func=cmd_demo)


def _add_finetune(sub: Subparsers) -> None:
    finetune = sub.add_parser(
        "finetune",
        help="train a new image-encoder version on clicks; publish and announce it if better "
        "(exit 0 published, 3 refused, 4 not served)",
    )
    finetune.add_argument("--since", type=_time_arg, help="window start (epoch s or ISO)")
    finetune.add_argument("--until", type=_time_arg, help="window end (default: now)")
    finetune.add_argument("--hours", type=float, help="the last H hours (instead of --since)")
    finetune.add_argument("--seed", type=int, default=0)
    finetune.add_argument("--dim", type=int, help="embedding width (default: the current head's)")
    finetune.add_argument("--min-clicks", type=int, help="default BERTCTR_FINETUNE_MIN_CLICKS")
    finetune.add_argument("--report-dir", help="default <repository>/reports/<UTC time>")
    finetune.add_argument("--init-head", help="head .npz to start from (default: the champion's)")
    finetune.add_argument("--serve-timeout-s", type=float, default=180.0)
    finetune.add_argument("--every", help="repeat on a schedule: e.g. 6h, 30m, 1d")
    finetune.add_argument("--progress", action="store_true", help="progress bar while training")
    finetune.set_defaults(func=cmd_finetune)


def _add_simulate(sub: Subparsers) -> None:
    simulate = sub.add_parser("simulate", help="simulated traffic: print or publish it")
    simulate.add_argument("--events", type=int, default=10_000)
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument(
        "--rate", type=float, default=5.0, help="impressions per simulated second"
    )
    simulate.add_argument("--images", help="directory to render the catalogue PNGs into")
    simulate.add_argument(
        "--publish",
        action="store_true",
        help="publish to BERTCTR_KAFKA_BOOTSTRAP instead of printing",
    )
    simulate.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="simulated seconds per wall second when publishing; 0 = max",
    )
    simulate.set_defaults(func=cmd_simulate)


def _add_topics(sub: Subparsers) -> None:
    topics = sub.add_parser("topics", help="Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create all topics with BERTCTR_PARTITIONS")
    create.set_defaults(func=cmd_topics_create)


def build_parser() -> argparse.ArgumentParser:
    """The ``bertctr`` command line: one small function per command below."""
    parser = argparse.ArgumentParser(prog="bertctr", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", help="log level for stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_worker,
        _add_stats,
        _add_health,
        _add_schemas_and_stack,
        _add_demo,
        _add_finetune,
        _add_simulate,
        _add_topics,
    ):
        add(sub)
    add_encoder_commands(sub)
    add_api_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings()
    try:
        result: int = args.func(args, settings)
    except RedisError as exc:  # a clear line, not a traceback; the URL without its password
        print(
            f"bertctr {args.command}: Redis at {redact(settings.redis_url)}: {exc}", file=sys.stderr
        )
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
