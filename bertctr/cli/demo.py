"""``bertctr demo``: the whole system on simulated traffic, and its summary."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any

from bertctr.cli.common import Subparsers
from bertctr.cli.progress import Progress
from bertctr.demo_config import DemoConfig
from schemas.settings import Settings
from simulator.config import WORLDS

__all__ = ["add_commands", "cmd_demo", "format_summary", "wait_until_stopped"]


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
            *(
                [
                    f"  cold start (items not launched yet): model "
                    f"{s['cold_start_ranking_ctr_lift']:+.1%}, oracle "
                    f"{s['oracle_cold_start_ranking_ctr_lift']:+.1%}"
                ]
                if s.get("cold_start_ranking_ctr_lift") is not None
                else []
            ),
            f"  embeddings: {_embeddings_line(s.get('embeddings') or {})}",
            *_encoder_lines(s.get("encoder")),
            f"  live counters: BERTCTR_REDIS_PREFIX={s['redis_prefix']} bertctr stats",
            *([f"  report: {s['report']}"] if s.get("report") else []),
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
        events=args.events,
        seed=args.seed,
        speed=args.speed,
        encoders=not args.no_encoders,
        world=args.world,
        items=args.items,
    )
    show = Progress(prefix="[demo] ")
    # SIGTERM ends the demo as Ctrl-C does, so its processes are stopped on the way out
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    def serving(url: str) -> None:
        print(f"live page: {url}/  (API docs: {url}/docs); Ctrl-C stops it", flush=True)
        if cfg.speed > 0:
            show.say(
                f"event times are simulated, replayed at {cfg.speed:g}x: the page's clock "
                "and CTR charts run in simulated time"
            )

    def report(summary: dict[str, Any]) -> None:
        print(format_summary(summary), flush=True)
        if not args.serve:
            print("see it live: bertctr demo --serve (or make serve) keeps the API and its page up")
        if args.json:
            print(json.dumps(summary, sort_keys=True), flush=True)
        if args.serve:
            show.say("the demo is done; still serving its data until Ctrl-C")
            wait_until_stopped()

    try:
        run_demo(
            settings,
            cfg,
            show,
            serving=serving if args.serve else None,
            then=report,
            report=not args.no_report,
            report_dir=args.report_dir,
        )
    except KeyboardInterrupt:  # its processes are stopped by now
        show.say("stopped")
        # --serve runs until it is stopped: that is how it ends, during the demo or after
        return 0 if args.serve else 130
    return 0


def wait_until_stopped() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _add_demo(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="the whole system on simulated traffic")
    demo.add_argument(
        "--events", type=int, default=DemoConfig.events, help="impressions to simulate"
    )
    demo.add_argument("--seed", type=int, default=DemoConfig.seed)
    demo.add_argument(
        "--world",
        choices=sorted(WORLDS),
        default=DemoConfig.world,
        help="small: 40 items x 4 variants; catalogue: a shop of 2,000 items with Zipf "
        "popularity, items launching as the traffic flows, and cold-start ranking",
    )
    demo.add_argument(
        "--items", type=int, default=None, help="items of the world (default: the world's own)"
    )
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
        "--report-dir",
        type=Path,
        default=None,
        help="where bertctr report writes the run's page (default: report/ in the demo's "
        "temporary folder); its path is printed with the summary",
    )
    demo.add_argument("--no-report", action="store_true", help="write no report")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="serve the API and the live page (BERTCTR_API_PORT) from before the traffic "
        "starts, and keep everything running after the summary until Ctrl-C",
    )
    demo.set_defaults(func=cmd_demo)


def add_commands(sub: Subparsers) -> None:
    """Add this module's commands to the ``bertctr`` parser."""
    _add_demo(sub)
