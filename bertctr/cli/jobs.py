"""``bertctr finetune`` and ``simulate``: the retrain job and simulated traffic."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertctr.cli.common import Subparsers, run_async
from bertctr.cli.progress import Bar, Progress
from bertctr.times import parse_time
from schemas.settings import Settings

__all__ = ["add_commands", "cmd_finetune", "cmd_simulate"]


def _time_arg(text: str) -> float:
    """Epoch seconds, or an ISO 8601 time (UTC if it names no zone)."""
    return parse_time(text)


def cmd_finetune(args: argparse.Namespace, settings: Settings) -> int:
    """Train, gate, publish and announce a new image-encoder version (see bertctr.finetune)."""
    from bertctr.finetune import JobConfig, parse_duration, run_every, run_once

    show = Progress(prefix="[finetune] ")

    def epochs(total: int) -> Bar:
        return show.bar("fine-tune head", total, unit="epochs")

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
        progress=None if args.no_progress else epochs,
        notes=None if args.no_progress else show.say,
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
        with Progress().bar("published", len(timed), unit="messages") as bar:
            run_async(
                lambda: publish_paced(bootstrap, timed, speed=args.speed, progress=bar.update_to)
            )
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
    finetune.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (default: a bar in a terminal, plain lines otherwise)",
    )
    # progress is shown by default now; the old opt-in flag is still accepted
    finetune.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
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


def add_commands(sub: Subparsers) -> None:
    """Add this module's commands to the ``bertctr`` parser."""
    _add_finetune(sub)
    _add_simulate(sub)
