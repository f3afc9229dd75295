"""``bertctr report OUT_DIR``: the run's HTML report, from the live data in Redis."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertctr.cli.common import Subparsers
from schemas.settings import Settings

__all__ = ["add_commands", "cmd_report"]


def _since(text: str) -> str:
    from bertctr.report import parse_since

    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from bertctr.report.make import make_report

    page = make_report(
        settings,
        Path(args.out_dir),
        since=args.since,
        title=args.title,
        tags_version=args.tags_version,
        ope_file=args.ope,
    )
    print(json.dumps({"report": str(page)}) if args.json else f"report: {page}", flush=True)
    return 0


def add_commands(sub: Subparsers) -> None:
    """Add ``report`` to the ``bertctr`` parser."""
    report = sub.add_parser(
        "report",
        help="write OUT_DIR/index.html: CTR, NE, reliability, images, A/B, encoders",
    )
    report.add_argument("out_dir", metavar="OUT_DIR", help="folder for index.html and its PNGs")
    report.add_argument(
        "--since",
        type=_since,
        default=None,
        help="window: a duration back from each source's clock (90s, 30m, 2h, 1d) or a time "
        "(epoch seconds, ISO 8601); default: everything kept",
    )
    report.add_argument("--title", default="bertctr report", help="the page's title")
    report.add_argument(
        "--tags-version",
        default=None,
        metavar="TAG",
        help="the image encoder's cache tag (e.g. 1-9f3c...) whose cached descriptions "
        "give the images' tags; without it the tags are 'not computed'",
    )
    report.add_argument(
        "--ope",
        default=None,
        metavar="FILE",
        help="bertctr ope --json output (one document, a list, or one per line) for the "
        "off-policy evaluation table",
    )
    report.add_argument("--json", action="store_true", help='print {"report": PATH}')
    report.set_defaults(func=cmd_report)
