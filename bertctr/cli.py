"""The ``bertctr`` command line: thin wrappers over the library.

Commands: ``worker``, ``stats``, ``schemas export``, ``stack up``, ``topics
create``, ``demo``, ``simulate``. Output meant for programs is JSON on stdout
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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bertctr.settings import Settings

log = logging.getLogger("bertctr")
T = TypeVar("T")


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
    from streams.admin import ensure_topics
    from streams.worker import run_worker

    run_async(lambda: ensure_topics(settings))
    # Faust reads its own argv; give it none of ours.
    sys.argv = sys.argv[:1]
    run_worker(settings, settings.redis_url, loglevel=args.loglevel)
    return 0


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.admin import ensure_topics

    created = run_async(lambda: ensure_topics(settings))
    print(json.dumps({"created": created}))
    return 0


async def read_stats(settings: Settings, item: str | None, segment: str | None) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from streams.counters import StatsReader
    from streams.keys import KeySpace

    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        reader = StatsReader(client, KeySpace(settings.redis_prefix))
        return await reader.snapshot(item=item, segment=segment)
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
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    stats = run_async(lambda: read_stats(settings, args.item, args.segment))
    print(json.dumps(stats, sort_keys=True) if args.json else format_stats(stats))
    return 0


def cmd_schemas_export(args: argparse.Namespace, settings: Settings) -> int:
    from schemas import export_json_schemas

    for path in export_json_schemas(Path(args.dir)):
        print(path)
    return 0


def cmd_stack_up(args: argparse.Namespace, settings: Settings) -> int:
    from bertctr.stack import start_stack

    stack = start_stack(settings.kafka_bootstrap, settings.redis_url)
    try:
        for key, value in stack.env().items():
            print(f"export {key}={value}", flush=True)
        print(f"# started: {', '.join(stack.started) or 'nothing'}; Ctrl-C stops it", flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    finally:
        stack.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertctr", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", help="log level for stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run one Faust worker (join + live counters)")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(func=cmd_worker)

    stats = sub.add_parser("stats", help="live CTR counters from Redis")
    stats.add_argument("--item")
    stats.add_argument("--segment", help="segment key, e.g. device=mobile,geo=DE,taste=t1")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)

    schemas = sub.add_parser("schemas", help="event contract")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    export = schemas_sub.add_parser("export", help="write JSON Schema files")
    export.add_argument("dir")
    export.set_defaults(func=cmd_schemas_export)

    stack = sub.add_parser("stack", help="embedded broker and Redis")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True)
    up = stack_sub.add_parser("up", help="start what is not given; Ctrl-C stops it")
    up.set_defaults(func=cmd_stack_up)

    topics = sub.add_parser("topics", help="Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create all topics with BERTCTR_PARTITIONS")
    create.set_defaults(func=cmd_topics_create)
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
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
