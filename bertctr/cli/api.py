"""``bertctr api``: serve the HTTP API, or write its OpenAPI document.

Host, port and worker processes come from ``BERTCTR_API_HOST`` /
``BERTCTR_API_PORT`` / ``BERTCTR_API_WORKERS`` unless given; the server stops
cleanly on SIGINT/SIGTERM (uvicorn's own handling). With more than one
worker, uvicorn's supervisor runs that many processes on one socket, each
building the app from the environment (:func:`api.app.app_from_env`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from schemas.settings import Settings

__all__ = ["add_api_command", "cmd_api"]


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until stopped; with ``--openapi PATH`` write the document and exit."""
    from api.app import create_app

    if args.openapi:
        doc = create_app(settings).openapi()
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
        if args.openapi == "-":
            sys.stdout.write(text)
        else:
            Path(args.openapi).write_text(text)
        return 0
    import uvicorn

    host = args.host or settings.api_host
    port = args.port if args.port is not None else settings.api_port
    workers = args.workers if args.workers is not None else settings.api_workers
    if workers > 1:
        # each worker process builds its own app (and model copy) from the environment
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=args.log_level_api,
            access_log=False,
        )
        return 0
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=args.log_level_api,
        access_log=False,
    )
    return 0


def add_api_command(sub: Any) -> None:
    """Register ``bertctr api`` on the CLI's subparsers."""
    api = sub.add_parser("api", help="HTTP API: /score, /ctr, /ab, /metrics, /healthz, the page")
    api.add_argument("--host", help="default BERTCTR_API_HOST (127.0.0.1)")
    api.add_argument("--port", type=int, help="default BERTCTR_API_PORT (8080)")
    api.add_argument(
        "--openapi", metavar="PATH", help="write the OpenAPI document to PATH ('-': stdout), exit"
    )
    api.add_argument(
        "--workers",
        type=int,
        help="processes serving the port (default BERTCTR_API_WORKERS, 1); each holds a model",
    )
    api.add_argument("--log-level-api", default="info", help="uvicorn's log level")
    api.set_defaults(func=cmd_api)
