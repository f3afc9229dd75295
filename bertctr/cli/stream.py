"""``bertctr worker``, ``stats`` and ``health``: run a worker, read what the workers wrote."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bertctr.cli.common import Subparsers, run_async
from schemas.settings import Settings

__all__ = [
    "add_commands",
    "cmd_health",
    "cmd_stats",
    "cmd_worker",
    "format_stats",
    "read_health",
    "read_stats",
]


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
        lines.extend(_flagged_lines(model))
    return "\n".join(lines)


def _flagged_lines(model: dict[str, Any]) -> list[str]:
    """One line per flagged audience value of the model's quality block (``model.quality``)."""
    from api.quality_view import quality_block

    block = quality_block(model)
    if block is None:
        return []
    flagged = [s for s in block["segments"] if isinstance(s, dict) and s.get("flags")]
    if not flagged:
        return [f"quality: no audience value flagged ({len(block['segments'])} values)"]

    def num(s: dict[str, Any], key: str) -> str:
        value = s.get(key)
        return "-" if not isinstance(value, int | float) else f"{value:.3f}"

    lines = [f"quality: {len(flagged)} audience value(s) flagged"]
    for s in flagged:
        lines.append(
            f"  flagged {s.get('field')}={s.get('value')}: {', '.join(map(str, s['flags']))} "
            f"(calibration {num(s, 'calibration')}, NE {num(s, 'ne')}, "
            f"{s.get('count', 0)} impressions, {s.get('clicks', 0)} clicks)"
        )
    return lines


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


def add_commands(sub: Subparsers) -> None:
    """Add this module's commands to the ``bertctr`` parser."""
    _add_worker(sub)
    _add_stats(sub)
    _add_health(sub)
