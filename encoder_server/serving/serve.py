"""Serving encoders on the real Triton Inference Server, through PyTriton.

Each :class:`~encoder_server.base.Encoder` becomes one Triton model: its
``name`` is the model name and its ``version`` the model version, so a new
projection head is visible to every client as a new version. Inputs and
outputs are the tensors of :func:`schemas.tensors.encoder_io`, the spec the
exported ``config.pbtxt`` and the client also read:

* input ``image`` or ``text``: BYTES ``[batch, 1]``;
* output ``embedding``: FP32 ``[batch, dim]``;
* output ``error``: BYTES ``[batch, 1]``, empty for a good row.

Dynamic batching is on: requests from several stream workers that arrive
within ``queue_delay_us`` of each other run as one forward pass, which is
where a CPU (or GPU) encoder gets its throughput.

Why the inference function runs in this process: PyTriton starts
``tritonserver`` as a child process whose Python backend is only a thin
proxy; requests come back here over shared memory, so the model is loaded
once, by the same code the tests call in-process.

The libpython fix, and why it needs no re-exec. The Python-backend stub
(a grandchild: this process -> ``tritonserver`` -> stub) links
``libpython3.11.so``. With a pyenv interpreter the system library is found
first and the stub dies at model load with ``'_thread.RLock' object has no
attribute '_recursion_count'``. The stub must find *this* interpreter's
library, in ``sysconfig.get_config_var("LIBDIR")``. ``LD_LIBRARY_PATH`` is
read by the dynamic loader only when a process starts, but the process that
needs it is the stub, not this one: PyTriton spawns ``tritonserver`` with a
copy of ``os.environ`` taken at start time, so amending ``os.environ`` here
before :func:`serve` starts Triton is enough (measured: the model loads; without
it the error above). :func:`libpython_env` does that; re-executing this
process would only redo work.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
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
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from encoder_server.base import Encoder
from schemas.tensors import encoder_io

__all__ = [
    "DEFAULT_QUEUE_DELAY_US",
    "LiveBind",
    "ServerAddresses",
    "VersionSource",
    "announce",
    "bind_encoder",
    "bind_live",
    "encoder_parameters",
    "head_fingerprint",
    "infer_function",
    "libpython_env",
    "serve",
    "stop_on_signals",
    "triton_config",
    "use_own_libpython",
    "watch",
]

log = logging.getLogger(__name__)

#: How long Triton's dynamic batcher holds a request to merge it with others.
#: 2 ms is small next to a forward pass (tens of ms on CPU) and long enough
#: to merge the requests several workers send at the same moment.
DEFAULT_QUEUE_DELAY_US = 2000

#: what PyTriton calls: the requests of one dynamic batch in, one output dict per request out
InferFn = Callable[[list[Any]], list[dict[str, npt.NDArray[Any]]]]


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


def head_fingerprint(encoder: Encoder) -> str:
    """16 hex digits naming exactly what this version computes.

    Version numbers are chosen by people and get reused (every ``encoder
    fit-projection`` defaults to version 2), so the embedding cache keys on
    this too: a re-fitted head under an old number must never be served
    vectors cached for the previous one. It hashes the encoder's class, name,
    version, dimension, input size, the head's feature set and its arrays.
    """
    digest = hashlib.blake2b(digest_size=8)
    for part in (
        type(encoder).__qualname__,
        encoder.name,
        str(encoder.version),
        str(encoder.dim),
        str(getattr(encoder, "input_size", "")),
    ):
        digest.update(part.encode() + b"\0")
    projection = getattr(encoder, "projection", None)
    for name in ("kind", "features", "mean", "components"):
        value = getattr(projection, name, None)
        if isinstance(value, np.ndarray):
            digest.update(np.ascontiguousarray(value, dtype=np.float32).tobytes())
        elif value is not None:
            digest.update(str(value).encode() + b"\0")
    return digest.hexdigest()


def encoder_parameters(encoder: Encoder) -> dict[str, str]:
    """Model-config ``parameters`` that say which head this version is.

    Triton shows them in the model config, so an operator can tell a random
    version-1 head from a fitted PCA version-2 head without reading files,
    and the embedding client reads ``bertctr_fingerprint`` for its cache keys.
    """
    params = {
        "bertctr_dim": str(encoder.dim),
        "bertctr_modality": encoder.modality,
        "bertctr_fingerprint": head_fingerprint(encoder),
    }
    projection = getattr(encoder, "projection", None)
    if projection is not None:
        params["bertctr_projection_kind"] = str(getattr(projection, "kind", ""))
        params["bertctr_projection_version"] = str(getattr(projection, "version", ""))
        params["bertctr_projection_note"] = str(getattr(projection, "note", ""))
        params["bertctr_projection_features"] = str(getattr(projection, "features", ""))
    return params


def infer_function(encoder: Encoder) -> InferFn:
    """The batched inference callable for one encoder (plain numpy in and out).

    The input arrives as an object array ``[n, 1]`` of ``bytes``; errors go
    back UTF-8 encoded, one per row, so a bad item fails alone.
    """
    from pytriton.decorators import batch

    io = encoder_io(encoder.modality, encoder.dim)

    @batch  # type: ignore[untyped-decorator]
    def infer(**inputs: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        items = [bytes(row[0]) for row in inputs[io.input.name]]
        encoded = encoder.encode(items)
        errors = np.array([[e.encode("utf-8")] for e in encoded.errors], dtype=io.error.dtype)
        return {
            io.embedding.name: np.ascontiguousarray(encoded.embeddings, dtype=io.embedding.dtype),
            io.error.name: errors.reshape(io.error.batch_shape(len(items))),
        }

    result: InferFn = infer
    return result


def _publish_parameters(triton: Any, encoder: Encoder) -> None:
    """Add :func:`encoder_parameters` to the bound model's config.

    PyTriton's public ``ModelConfig`` has no ``parameters`` field; its
    generated config only carries its own backend parameters (which its proxy
    reads by key and ignores the rest). We add ours to the cached
    ``TritonModelConfig`` before Triton loads it. This uses PyTriton
    internals, so a failure is logged, never fatal: versions stay visible as
    Triton model versions either way.
    """
    try:
        for model in triton._model_manager.models:
            if model.model_name == encoder.name and model.model_version == encoder.version:
                model._get_triton_model_config().backend_parameters.update(
                    encoder_parameters(encoder)
                )
                return
    except AttributeError as exc:  # a PyTriton release with other internals
        log.warning("cannot add parameters to %s's model config: %s", encoder.name, exc)


def bind_encoder(
    triton: Any,
    encoder: Encoder,
    max_batch_size: int = 64,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
) -> None:
    """Bind one encoder to a ``pytriton.triton.Triton`` as model ``encoder.name``.

    Parameters
    ----------
    triton:
        A ``Triton`` (not yet started, or started: PyTriton loads it then).
    max_batch_size:
        Largest batch Triton forms (and accepts in one request).
    queue_delay_us:
        Dynamic batcher's ``max_queue_delay_microseconds``.
    """
    triton.bind(
        model_name=encoder.name,
        model_version=encoder.version,
        infer_func=infer_function(encoder),
        **_declaration(encoder, max_batch_size, queue_delay_us),
        strict=True,
    )
    _publish_parameters(triton, encoder)


def _declaration(encoder: Encoder, max_batch_size: int, queue_delay_us: int) -> dict[str, Any]:
    """PyTriton's ``inputs``, ``outputs`` and ``config`` for one encoder (the binding's kwargs)."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    io = encoder_io(encoder.modality, encoder.dim)
    return {
        # BYTES is numpy object: PyTriton declares it TYPE_STRING, as it does bytes
        "inputs": [Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in io.inputs],
        "outputs": [Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in io.outputs],
        "config": ModelConfig(
            max_batch_size=max_batch_size,
            batcher=DynamicBatcher(max_queue_delay_microseconds=queue_delay_us),
        ),
    }


def bind_live(
    triton: Any,
    encoder: Encoder,
    name: str,
    max_batch_size: int = 64,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
) -> str:
    """Load ``encoder`` into the running Triton as model ``name``; return its fingerprint.

    Why not ``triton.bind``: after ``run()`` it loads the model at once, before
    :func:`_publish_parameters` could add the config parameters clients read
    the version's fingerprint from. So the PyTriton ``Model`` is built here as
    ``bind`` builds it, given its parameters, then handed to the model manager
    to load (PyTriton internals, like :func:`_publish_parameters`).

    The models already served keep answering while it loads: it is a new
    model name (see :func:`~encoder_server.base.served_name`), loaded through
    Triton's repository API into its own Python-backend stub. If the load
    fails, the model is forgotten again (:func:`_forget`), so the server and
    its other models carry on, and the error is raised.
    """
    from pytriton.models.model import Model

    model = Model(
        model_name=name,
        model_version=encoder.version,
        inference_fn=infer_function(encoder),
        **_declaration(encoder, max_batch_size, queue_delay_us),
        workspace=triton._workspace,
        triton_context=triton._triton_context,
        strict=True,
    )
    model.on_model_event(triton._on_model_event)
    parameters = encoder_parameters(encoder)
    model._get_triton_model_config().backend_parameters.update(parameters)
    try:
        triton._model_manager.add_model(model, load_model=True)
    except BaseException:
        _forget(triton, model)
        raise
    return parameters["bertctr_fingerprint"]


def _forget(triton: Any, model: Any) -> None:
    """Undo a failed live load, best effort, every step on its own.

    ``Triton.is_alive`` (which :func:`watch` checks) is false while any
    registered model has no live handler, so a model left registered after a
    failed load would stop the whole server. Triton may also hold a half-set-up
    model under the name, which is unloaded.
    """
    from pytriton.client import ModelClient

    key = (model.model_name.lower(), model.model_version)
    with contextlib.suppress(Exception):
        triton._model_manager._models.pop(key, None)
    with contextlib.suppress(Exception):
        model.clean()
    try:
        # PyTriton restricts the repository API to its own access token
        with ModelClient(triton._url, model.model_name, access_token=triton._access_token) as c:
            c.unload_model()
    except Exception as exc:  # best effort: the load's own error is the one to report
        log.warning("could not unload %s after its failed load: %s", model.model_name, exc)


#: loads an encoder into the running Triton under a model name, returns its fingerprint
LiveBind = Callable[[Encoder, str], str]


class VersionSource(Protocol):
    """Versions served beside the base encoders (see ``serving.loader.VersionPoller``)."""

    def poll(self, bind: LiveBind) -> Mapping[str, int]:
        """Serve every new version through ``bind``; return those now served, name -> version.

        Must not raise for a bad version: one failed load never stops the server.
        """
        ...


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


def serve(
    encoders: Sequence[Encoder],
    grpc_port: int = 8001,
    http_port: int = 8000,
    metrics_port: int = 8002,
    *,
    host: str = "127.0.0.1",
    max_batch_size: int = 64,
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US,
    on_ready: Callable[[ServerAddresses], None] | None = None,
    stop: threading.Event | None = None,
    versions: VersionSource | None = None,
    poll_s: float = 2.0,
) -> None:
    """Serve ``encoders`` on Triton until SIGTERM/SIGINT (or ``stop`` is set).

    ``on_ready`` is called once every model is loaded (the CLI prints the
    readiness line from it), including the ``versions`` there are at start;
    then ``versions`` is polled every ``poll_s`` seconds and what it finds is
    loaded live (:func:`bind_live`). Must run in the main thread when it is
    to install the signal handlers.
    """
    from pytriton.triton import Triton

    started = time.perf_counter()
    use_own_libpython()
    stopping = stop or threading.Event()
    config = triton_config(host, (grpc_port, http_port, metrics_port), versions is not None)
    with stop_on_signals(stopping):
        triton = Triton(config=config)
        try:
            for encoder in encoders:
                bind_encoder(triton, encoder, max_batch_size, queue_delay_us)
            triton.run()
            poll = _poller(triton, versions, max_batch_size, queue_delay_us)
            served = poll() if poll is not None else {}
            ready = announce(encoders, host, (grpc_port, http_port, metrics_port), started, served)
            if on_ready is not None:
                on_ready(ready)
            watch(triton, stopping, poll, poll_s)
        finally:
            triton.stop()
            log.info("Triton stopped")


def _poller(
    triton: Any, versions: VersionSource | None, max_batch_size: int, queue_delay_us: int
) -> Callable[[], Mapping[str, int]] | None:
    """``versions.poll`` bound to this Triton (None without a version source)."""
    if versions is None:
        return None
    bind = functools.partial(
        bind_live, triton, max_batch_size=max_batch_size, queue_delay_us=queue_delay_us
    )
    return lambda: versions.poll(bind)
