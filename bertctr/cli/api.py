"""``bertctr api``: serve the HTTP API, or write its OpenAPI document.

Host and port come from ``BERTCTR_API_HOST`` / ``BERTCTR_API_PORT`` unless
given; the server stops cleanly on SIGINT/SIGTERM (uvicorn's own handling).
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
    api.add_argument("--log-level-api", default="info", help="uvicorn's log level")
    api.set_defaults(func=cmd_api)
