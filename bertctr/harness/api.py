"""``bertctr api`` as a child process, for the demo's ``--serve``, the benches and the tests.

Started with a fleet's environment (same Redis prefix, same checkpoint
directory), on a free port, and ready once ``GET /healthz`` answers.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bertctr.harness.procs import HarnessError, bertctr_command, free_port, spawn, stop_process

__all__ = ["ApiServer"]

STARTUP_TIMEOUT_S = 60.0


class ApiServer:
    """One ``bertctr api`` process; a context manager that stops it."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, port: int | None = None, workers: int = 1
    ) -> None:
        self.port = port or free_port()
        self.workers = workers
        self.env = {**env, "BERTCTR_API_HOST": "127.0.0.1", "BERTCTR_API_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> ApiServer:
        """Start the server and wait until it answers ``/healthz``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = ("api", "--workers", str(self.workers)) if self.workers > 1 else ("api",)
        self.proc = spawn(bertctr_command(*args), self.env, self.log_path)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"bertctr api exited {self.proc.returncode}:\n{self.logs()}")
            try:
                self.get("/healthz")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise HarnessError(f"bertctr api did not answer in {timeout_s}s:\n{self.logs()}")

    def request(
        self, method: str, path: str, body: Any = None, timeout_s: float = 10.0
    ) -> tuple[int, Any]:
        """(status, JSON body or text) of one request; HTTP errors are returned, not raised.

        ``body`` is sent as JSON, or as it is when it is ``bytes``.
        """
        data = (
            body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        )
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                status, raw, kind = resp.status, resp.read(), resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            status, raw, kind = exc.code, exc.read(), exc.headers.get_content_type()
        text = raw.decode("utf-8", "replace")
        return status, json.loads(text) if kind == "application/json" else text

    def get(self, path: str) -> Any:
        """The JSON body of a ``GET`` that must succeed."""
        status, body = self.request("GET", path)
        if status != 200:
            raise urllib.error.URLError(f"GET {path}: {status} {body}")
        return body

    def logs(self, tail: int = 4000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
