"""``bertctr stack up`` starts a real broker, says how to reach it, and stops it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from bertctr.harness.procs import stop_process

pytestmark = pytest.mark.integration


def test_stack_up_prints_exports_and_stops_cleanly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BERTCTR_KAFKA_BOOTSTRAP"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bertctr.cli", "stack", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        exports: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while len(exports) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            if line.startswith("export "):
                key, value = line[len("export ") :].strip().split("=", 1)
                exports[key] = value
        host, port = exports["BERTCTR_KAFKA_BOOTSTRAP"].rsplit(":", 1)
        assert host == "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=2):
            pass
        assert exports["BERTCTR_REDIS_URL"]
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        time.sleep(0.5)
        with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
            pass
    finally:
        stop_process(proc)
