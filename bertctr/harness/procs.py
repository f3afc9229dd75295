"""Child processes and ports: the one place that starts and stops them.

Every process the harness starts (Tansu, workers, the encoder server) runs
in its own process group, so stopping it also stops what it started
(Triton's stubs, Faust's helpers), and a process that ignores SIGTERM (a
Faust worker sometimes hangs there) is killed after a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HarnessError",
    "bertctr_command",
    "free_port",
    "free_ports",
    "kill_group",
    "spawn",
    "stop_process",
    "wait_for_port",
]


class HarnessError(RuntimeError):
    """A process the harness started did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports on ``host`` that were free a moment ago.

    Every socket stays bound until all are picked: ``free_port()`` called
    three times can hand out the same port twice (a closed, never connected
    port is free again at once), and Triton refuses to start when its gRPC,
    HTTP and metrics ports collide (it prints its usage and exits; a CI run
    failed that way).
    """
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Return once something accepts connections on ``host:port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise HarnessError(f"nothing listening on {host}:{port} after {timeout_s}s")


def bertctr_command(*args: str) -> list[str]:
    """``bertctr ARGS`` run by this interpreter (works without the console script)."""
    return [sys.executable, "-m", "bertctr.cli", *args]


def spawn(
    cmd: Sequence[str],
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    stderr_path: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group, output appended to ``log_path``.

    ``stderr_path`` splits stderr from stdout (servers that print a readiness
    line on stdout); without it both go to ``log_path`` (or nowhere).
    """
    out: Any = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    err: Any = open(stderr_path, "ab") if stderr_path else subprocess.STDOUT  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(cmd),
            env=dict(os.environ if env is None else env),
            stdout=out,
            stderr=err,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        for stream in (out, err):
            if hasattr(stream, "close"):
                stream.close()


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process and its group at once (an abrupt crash)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it after ``timeout_s``.

    The group is killed even when the leader exits in time, so nothing it
    started outlives it.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    kill_group(proc)
