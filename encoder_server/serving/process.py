"""The Triton server process: its environment, listening config, signals, readiness, liveness.

:func:`encoder_server.serving.serve.serve` binds the encoders (the model
side) and runs the server with what is here (the process side): where it
listens and how readiness is judged (:func:`triton_config`), the
``LD_LIBRARY_PATH`` its Python-backend stub needs (:func:`use_own_libpython`),
stopping on SIGTERM/SIGINT (:func:`stop_on_signals`), the readiness line
once every model is loaded (:func:`announce`, :class:`ServerAddresses`) and
the wait that fails when Triton or a model dies (:func:`watch`). Nothing
here knows how an encoder becomes a Triton model.

The libpython fix, and why it needs no re-exec. The Python-backend stub
(a grandchild: this process -> ``tritonserver`` -> stub) links
``libpython3.11.so``. With a pyenv interpreter the system library is found
first and the stub dies at model load with ``'_thread.RLock' object has no
attribute '_recursion_count'``. The stub must find *this* interpreter's
library, in ``sysconfig.get_config_var("LIBDIR")``. ``LD_LIBRARY_PATH`` is
read by the dynamic loader only when a process starts, but the process that
needs it is the stub, not this one: PyTriton spawns ``tritonserver`` with a
copy of ``os.environ`` taken at start time, so amending ``os.environ`` here
before :func:`~encoder_server.serving.serve.serve` starts Triton is enough
(measured: the model loads; without it the error above). :func:`libpython_env`
does that; re-executing this process would only redo work.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

from encoder_server.base import Encoder

__all__ = [
    "ServerAddresses",
    "announce",
    "libpython_env",
    "stop_on_signals",
    "triton_config",
    "use_own_libpython",
    "watch",
]

log = logging.getLogger(__name__)


def libpython_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """``env`` with this interpreter's ``LIBDIR`` first on ``LD_LIBRARY_PATH``.

    Returns ``None`` when it is already there (or the interpreter has no
    ``LIBDIR``), so callers can tell whether anything changed.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir:
        return None
    current = env.get("LD_LIBRARY_PATH", "")
    if libdir in current.split(os.pathsep):
        return None
    amended = dict(env)
    amended["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, current) if p)
    return amended


@dataclass(frozen=True)
class ServerAddresses:
    """Where a running server listens, and what it serves (the readiness line)."""

    grpc_url: str
    http_url: str
    metrics_url: str
    models: dict[str, int]
    startup_s: float

    def to_json(self) -> str:
        return json.dumps({"ready": True, **asdict(self)}, sort_keys=True)


def use_own_libpython() -> None:
    """Point the Python-backend stub at this interpreter's libpython (see :func:`libpython_env`)."""
    amended = libpython_env(os.environ)
    if amended is not None:
        os.environ["LD_LIBRARY_PATH"] = amended["LD_LIBRARY_PATH"]
        log.info("LD_LIBRARY_PATH=%s (for the Python-backend stub)", amended["LD_LIBRARY_PATH"])


@contextlib.contextmanager
def stop_on_signals(stopping: threading.Event) -> Iterator[None]:
    """Set ``stopping`` on SIGTERM/SIGINT while inside; restore the old handlers after.

    Only the main thread may install handlers; elsewhere only ``stopping`` stops.
    """
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping Triton", signum)
            stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def announce(
    encoders: Sequence[Encoder],
    host: str,
    ports: tuple[int, int, int],
    started: float,
    served: Mapping[str, int] | None = None,
) -> ServerAddresses:
    """Where the server listens and what it serves, logged once every model is loaded.

    ``served``: repository versions already loaded, by served name.
    """
    grpc_port, http_port, metrics_port = ports
    ready = ServerAddresses(
        grpc_url=f"{host}:{grpc_port}",
        http_url=f"{host}:{http_port}",
        metrics_url=f"http://{host}:{metrics_port}/metrics",
        models={e.name: e.version for e in encoders} | dict(served or {}),
        startup_s=round(time.perf_counter() - started, 2),
    )
    log.info(
        "serving %s on grpc %s, http %s, metrics %s (started in %.1fs)",
        ", ".join(
            [f"{e.name} v{e.version} (dim {e.dim})" for e in encoders]
            + [f"{name} v{version}" for name, version in (served or {}).items()]
        ),
        ready.grpc_url,
        ready.http_url,
        ready.metrics_url,
        ready.startup_s,
    )
    return ready


def watch(
    triton: Any,
    stopping: threading.Event,
    tick: Callable[[], object] | None = None,
    tick_s: float = 2.0,
) -> None:
    """Block until ``stopping`` is set; fail if Triton or a model dies first.

    ``tick`` (polling the version repository) runs every ``tick_s`` seconds
    in this thread, between liveness checks: it may take seconds (a model
    load) while Triton keeps answering from its own threads.
    """
    next_tick = time.monotonic() + tick_s
    while not stopping.wait(min(1.0, tick_s)):
        if not triton.is_alive():
            raise RuntimeError("Triton or one of its models stopped unexpectedly")
        if tick is not None and time.monotonic() >= next_tick:
            tick()
            next_tick = time.monotonic() + tick_s


def triton_config(host: str, ports: tuple[int, int, int], live_loads: bool) -> Any:
    """PyTriton's ``TritonConfig``: where to listen, and readiness for ``live_loads``.

    With models loaded live (``live_loads``), ``/v2/health/ready`` must not
    depend on any one model: Triton's default strict readiness is false while
    a model loads, and for ever after a load failed (the failed state stays;
    unloading the model does not clear it: measured with PyTriton 0.7's
    tritonserver 2.51). A probe would then pull a healthy server, and every
    later load would time out, as PyTriton waits for a ready server before
    each. Clients ask ``/v2/models/<name>/ready`` for a model instead.
    """
    from pytriton.triton import TritonConfig

    grpc_port, http_port, metrics_port = ports
    return TritonConfig(
        grpc_address=host,
        grpc_port=grpc_port,
        http_address=host,
        http_port=http_port,
        metrics_address=host,
        metrics_port=metrics_port,
        exit_on_error=True,
        strict_readiness=False if live_loads else None,
    )
