"""``bertctr topics create``, ``schemas export`` and ``stack up``: setting a system up."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from pathlib import Path

from bertctr.cli.common import Subparsers, run_async
from schemas.settings import Settings

__all__ = ["add_commands", "cmd_schemas_export", "cmd_stack_up", "cmd_topics_create"]


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.admin import ensure_topics

    created = run_async(lambda: ensure_topics(settings))
    print(json.dumps({"created": created}))
    return 0


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


def _add_topics(sub: Subparsers) -> None:
    topics = sub.add_parser("topics", help="Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create all topics with BERTCTR_PARTITIONS")
    create.set_defaults(func=cmd_topics_create)


def add_commands(sub: Subparsers) -> None:
    """Add this module's commands to the ``bertctr`` parser."""
    _add_schemas_and_stack(sub)
    _add_topics(sub)
