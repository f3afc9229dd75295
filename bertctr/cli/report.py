"""``bertctr report OUT_DIR``: the run's HTML report, from the live data in Redis."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertctr.cli.common import Subparsers, run_async
from schemas.keys import KeySpace
from schemas.settings import Settings

__all__ = ["add_commands", "cmd_report", "make_report"]


def make_report(
    settings: Settings,
    out_dir: Path,
    *,
    since: str | None = None,
    title: str = "bertctr report",
    oracle: list[tuple[int, float]] | None = None,
    image_dir: str | None = None,
) -> Path:
    """Gather from ``settings``' Redis (prefix, image store) and write ``out_dir/index.html``.

    ``image_dir`` overrides ``BERTCTR_IMAGE_DIR`` for thumbnails; ``oracle``
    is the simulator's NE curve (the demo's).
    """
    from bertctr.report import Since, gather_report, parse_since, write_report
    from encoder_server.client.image_store import LocalImageStore
    from wiring.connections import async_redis

    window = parse_since(since) if since else Since()
    directory = image_dir or settings.image_dir
    store = LocalImageStore(directory, settings.image_max_bytes) if directory else None

    async def gather() -> Path:
        client = async_redis(settings)
        try:
            data = await gather_report(
                client,
                KeySpace(settings.redis_prefix),
                since=window,
                image_store=store,
                oracle=oracle,
                title=title,
            )
        finally:
            await client.aclose()
        return write_report(data, out_dir)

    return run_async(gather)


def _since(text: str) -> str:
    from bertctr.report import parse_since

    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    page = make_report(settings, Path(args.out_dir), since=args.since, title=args.title)
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
    report.add_argument("--json", action="store_true", help='print {"report": PATH}')
    report.set_defaults(func=cmd_report)
