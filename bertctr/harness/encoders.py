"""Start ``bertctr encoder serve`` (real Triton, real encoders) as a child process.

Used by the demo and the integration tests, which need a real Triton they
can stop, kill and restart. :func:`start_encoder_server` picks free ports once and keeps them, so
:meth:`EncoderServer.restart` brings the server back where clients expect it
(the outage tests need exactly that). The server runs in its own process
group (``tritonserver`` and its Python-backend stubs are its children, in the
same group), is asked to stop with SIGTERM, and the whole group is killed if
it does not stop in time, so no test leaves a Triton behind.

Startup (both models loaded, ready line printed) takes about 10 s on the
2-core CI machine, so test suites share one server per module or session.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from bertctr.harness.procs import bertctr_command, free_ports, kill_group, spawn
from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER

__all__ = ["EncoderServer", "start_encoder_server"]

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


class EncoderServer:
    """A ``bertctr encoder serve`` subprocess on fixed loopback ports."""

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.extra_args = list(extra_args)
        self.env = dict(os.environ if env is None else env)
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self.http_url = f"127.0.0.1:{self.http_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="bertctr-triton-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.starts = 0

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f"serve-{self.starts}.out"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"serve-{self.starts}.err"

    def logs(self, tail: int = 6000) -> str:
        """The current run's stderr (our logs and Triton's), for failure messages."""
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")[-tail:]

    def start(self, timeout_s: float = STARTUP_TIMEOUT_S) -> EncoderServer:
        """Start the server and wait until both models answer ready."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        self.starts += 1
        cmd = bertctr_command(
            "--log-level",
            "INFO",
            "encoder",
            "serve",
            "--grpc-port",
            str(self.grpc_port),
            "--http-port",
            str(self.http_port),
            "--metrics-port",
            str(self.metrics_port),
            *self.extra_args,
        )
        self.proc = spawn(cmd, self.env, self.stdout_path, stderr_path=self.stderr_path)
        started = time.monotonic()
        try:
            self._wait_ready(started + timeout_s)
        except BaseException:
            self.stop()
            raise
        self.ready["measured_startup_s"] = round(time.monotonic() - started, 2)
        log.info(
            "encoder server ready at %s in %.1fs (pid %d, logs in %s)",
            self.grpc_url,
            self.ready["measured_startup_s"],
            self.proc.pid,
            self.log_dir,
        )
        return self

    def _wait_ready(self, deadline: float) -> None:
        if self.proc is None:
            raise RuntimeError("not started")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"encoder server exited with {self.proc.returncode}:\n{self.logs()}"
                )
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"ready"' in line:
                    self.ready = json.loads(line)
            if self.ready and self._models_ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"encoder server not ready in time:\n{self.logs()}")

    def _models_ready(self) -> bool:
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            return all(client.is_model_ready(m) for m in (IMAGE_ENCODER, TEXT_ENCODER))
        except InferenceServerException:  # connection refused while Triton starts
            return False
        finally:
            client.close()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the server, SIGKILL its whole process group after ``timeout_s``."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout_s)
        # Triton, its stubs and PyTriton's helpers share the group: none may outlive it.
        kill_group(proc)

    def kill(self) -> None:
        """SIGKILL the whole group at once (an abrupt outage)."""
        if self.proc is not None:
            kill_group(self.proc)

    def restart(self, timeout_s: float = STARTUP_TIMEOUT_S) -> EncoderServer:
        """Stop and start again on the same ports."""
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> EncoderServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_encoder_server(
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    log_dir: Path | None = None,
) -> EncoderServer:
    """Start ``bertctr encoder serve`` on free ports; return once both models are ready.

    ``extra_args`` go to ``encoder serve`` (e.g. ``["--image-projection", path]``);
    ``env`` replaces the environment (default: this process's); the server's
    stdout/stderr go to ``serve-N.out|err`` in ``log_dir`` (default: a new
    temporary directory).
    """
    return EncoderServer(extra_args, env, log_dir).start()
