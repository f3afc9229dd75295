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

This module is the model side: how an encoder becomes a Triton model
(:func:`bind_encoder`, :func:`bind_live`, and :func:`serve`, which binds the
encoders and runs the server). The process side (environment, listening
config, signals, readiness line, liveness) is
:mod:`encoder_server.serving.process`; its names are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from encoder_server.base import Encoder
from encoder_server.serving.process import (
    ServerAddresses,
    announce,
    libpython_env,
    stop_on_signals,
    triton_config,
    use_own_libpython,
    watch,
)
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

    ``Triton.is_alive`` (which :func:`~encoder_server.serving.process.watch`
    checks) is false while any registered model has no live handler, so a
    model left registered after a failed load would stop the whole server.
    Triton may also hold a half-set-up model under the name, which is unloaded.
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
    describe: bool = True,
) -> None:
    """Serve ``encoders`` on Triton until SIGTERM/SIGINT (or ``stop`` is set).

    With ``describe``, the first image encoder that can describe images is
    also served as ``image_describer`` (:mod:`encoder_server.serving.describe`),
    tagging with ``BERTCTR_CLIP_TAG_LABELS`` when it is CLIP.

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
            if describe:
                _bind_describer(triton, encoders, max_batch_size, queue_delay_us)
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


def _bind_describer(
    triton: Any, encoders: Sequence[Encoder], max_batch_size: int, queue_delay_us: int
) -> None:
    """Bind the describer of the first image encoder that describes, if any."""
    from encoder_server.serving.describe import bind_describer, describes
    from schemas.settings import Settings

    for encoder in encoders:
        if describes(encoder):
            settings = Settings()
            labels = [x.strip() for x in settings.clip_tag_labels.split(",") if x.strip()]
            bind_describer(
                triton,
                encoder,
                labels,
                settings.tag_top_k,
                max_batch_size,
                queue_delay_us,
                encoder_parameters(encoder),
            )
            return


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
