"""The ``bertctr`` command line: thin wrappers over the library.

Commands: ``worker``, ``stats``, ``health`` (:mod:`~bertctr.cli.stream`);
``topics create``, ``schemas export``, ``stack up`` (:mod:`~bertctr.cli.admin`);
``demo`` (:mod:`~bertctr.cli.demo`); ``finetune``, ``simulate``
(:mod:`~bertctr.cli.jobs`); ``encoder ...`` (:mod:`~bertctr.cli.encoder`);
``api`` (:mod:`~bertctr.cli.api`); ``report`` (:mod:`~bertctr.cli.report`);
``ope`` (:mod:`~bertctr.cli.ope`).
Output meant for programs is JSON on stdout (``--json``); logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from redis.exceptions import RedisError

from bertctr.cli import admin, api, demo, encoder, jobs, ope, report, stream
from schemas.settings import Settings
from wiring.connections import redact

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``bertctr`` command line: each module adds its own commands."""
    parser = argparse.ArgumentParser(prog="bertctr", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", help="log level for stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (stream, demo, jobs, admin, report, ope):
        module.add_commands(sub)
    encoder.add_encoder_commands(sub)
    api.add_api_command(sub)
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
