"""The embedding service as the stream sees it: one port, a Triton adapter, a fake.

:class:`EmbeddingClient` is the port: ``embed`` a batch of byte strings with a
named model, ask which ``version`` of it is served, ``close``. Code that needs
embeddings depends on the port only, so unit tests use
:class:`InMemoryEmbeddingClient` and production uses
:class:`TritonEmbeddingClient`.

Why the Triton adapter does more than call ``infer``:

* **micro-batching** (:class:`~encoder_server.client.batcher.MicroBatcher`) — many
  agents and many small batches ask at once; a request per caller would
  waste the GPU and the network. Concurrent calls for the same model are
  gathered for up to ``batch_window_s`` or until ``max_batch`` items are
  waiting, sent as one infer request, and the rows are scattered back to each
  caller. A call larger than ``max_batch`` is split.
* **bounded retries** with exponential backoff and jitter, so a blip (a
  restart, a deadline exceeded) costs latency, not an error, and many workers
  do not retry in lockstep.
* **a circuit breaker** consulted before every attempt: while Triton is down
  calls fail at once with :class:`~encoder_server.client.errors.EncoderUnavailable`
  instead of each waiting out its deadline and retries. Every failed attempt
  counts toward opening it.

**Observation** is a seam, not a dependency: give the client an
``observer`` (any callable taking a :class:`RequestOutcome`) and it hears of
every request it sends (its seconds; the failure reason, if any) and of every
request the breaker refused. The processes above turn that into Prometheus
metrics; this layer imports no metrics library.

Failures: a whole call that cannot be answered raises
:class:`~encoder_server.client.errors.EncoderUnavailable` (the caller waits and
retries; it never drops the examples). An item the model cannot encode is
not an exception: its :class:`Embedded` has ``vector=None`` and the model's
reason in ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from encoder_server.base import Encoded, Encoder, model_of
from encoder_server.client.batcher import MicroBatcher
from encoder_server.client.breaker import CircuitBreaker
from encoder_server.client.errors import EncoderUnavailable
from schemas.tensors import DESCRIPTION_OUTPUT, ENCODER_IO, IMAGE_DESCRIBER, IMAGE_DESCRIBER_IO

__all__ = [
    "BREAKER_OPEN",
    "Described",
    "Embedded",
    "EmbeddingClient",
    "EncodeFn",
    "InMemoryEmbeddingClient",
    "RequestObserver",
    "RequestOutcome",
    "TritonEmbeddingClient",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: gRPC codes that mean "our request is wrong", not "the server is unwell":
#: retrying cannot help, so they fail at once (still as EncoderUnavailable)
_NOT_RETRYABLE = frozenset(
    {
        "StatusCode.INVALID_ARGUMENT",
        "StatusCode.UNIMPLEMENTED",
        "StatusCode.PERMISSION_DENIED",
        "StatusCode.UNAUTHENTICATED",
    }
)
_MAX_MESSAGE = 2**31 - 1  # tritonclient's MAX_GRPC_MESSAGE_SIZE

#: failure reason of a request the circuit breaker did not let through
BREAKER_OPEN = "breaker_open"


@dataclass(frozen=True)
class RequestOutcome:
    """One request the Triton client sent, or was refused by its breaker."""

    #: the base model (``image_encoder`` for ``image_encoder.v3``): few values
    model: str
    #: ``infer``, ``metadata`` or ``config``
    call: str
    #: seconds the request took; ``None`` when it was never sent (breaker open)
    seconds: float | None
    #: ``None`` for a success, else the gRPC status in lower case
    #: (``unavailable``, ``deadline_exceeded``...), or :data:`BREAKER_OPEN`
    failure: str | None


#: hears every :class:`RequestOutcome`; must be quick and must not raise
RequestObserver = Callable[[RequestOutcome], None]


@dataclass(frozen=True)
class Embedded:
    """One item's result: a vector, or (``vector=None``) the reason in ``error``."""

    vector: tuple[float, ...] | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.vector is not None and not self.error


@dataclass(frozen=True)
class Described:
    """One image's result from the describer: its embedding and description (JSON), or an error."""

    vector: tuple[float, ...] | None
    description: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.vector is not None and bool(self.description) and not self.error


class EmbeddingClient(Protocol):
    """The embedding service: one result per item, in order."""

    async def embed(self, model: str, items: Sequence[bytes]) -> list[Embedded]:
        """Embed ``items`` with ``model``; raises ``EncoderUnavailable`` when it cannot."""
        ...

    async def version(self, model: str) -> int:
        """The served (highest) version of ``model``."""
        ...

    async def cache_tag(self, model: str) -> str:
        """What the served version's embeddings are cached under.

        ``<version>``, plus ``-<fingerprint>`` of the head when the server
        publishes one, so a version number reused for another head misses.
        """
        ...

    async def close(self) -> None: ...


def _from_encoded(encoded: Encoded, n: int) -> list[Embedded]:
    if len(encoded.errors) != n:
        raise EncoderUnavailable(f"encoder returned {len(encoded.errors)} rows for {n} items")
    return [
        Embedded(None, error) if error else Embedded(tuple(row.tolist()))
        for row, error in zip(encoded.embeddings, encoded.errors, strict=True)
    ]


def _described(encoded: Encoded, texts: list[str], n: int) -> list[Described]:
    if len(encoded.errors) != n or len(texts) != n:
        raise EncoderUnavailable(f"describer returned {len(texts)} rows for {n} items")
    return [
        Described(None, "", error) if error else Described(tuple(row.tolist()), text)
        for row, error, text in zip(encoded.embeddings, encoded.errors, texts, strict=True)
    ]


#: model-config parameter naming the head (see encoder_server.serving.serve.head_fingerprint)
FINGERPRINT_PARAMETER = "bertctr_fingerprint"


# --- in-memory fake --------------------------------------------------------------

#: what an in-memory model is: the ``encode`` of an :class:`Encoder`
EncodeFn = Callable[[Sequence[bytes]], Encoded]


class InMemoryEmbeddingClient:
    """An :class:`EmbeddingClient` over in-process encoders, for unit tests.

    Parameters
    ----------
    encoders
        :class:`~encoder_server.base.Encoder` objects, served under their
        ``name`` and ``version``.
    functions
        More models as plain functions ``items -> Encoded``, by model name.
    versions
        Versions of the ``functions`` models (default 1); may be changed later
        through :attr:`versions` to simulate a promotion.

    Set :attr:`available` to ``False`` to simulate an outage: every call then
    raises :class:`EncoderUnavailable`.
    """

    def __init__(
        self,
        *encoders: Encoder,
        functions: Mapping[str, EncodeFn] | None = None,
        versions: Mapping[str, int] | None = None,
    ) -> None:
        self.models: dict[str, EncodeFn] = {e.name: e.encode for e in encoders}
        self.versions: dict[str, int] = {e.name: e.version for e in encoders}
        for name, fn in (functions or {}).items():
            self.models[name] = fn
            self.versions.setdefault(name, 1)
        self.versions.update(versions or {})
        self.available = True
        self.closed = False
        #: the describer: ``items -> (Encoded, JSON descriptions)``, set by tests that need one
        self.describe_fn: Callable[[Sequence[bytes]], tuple[Encoded, list[str]]] | None = None
        #: same meaning as on TritonEmbeddingClient: one "request" per embed call
        self.infer_requests = 0
        self.items_sent = 0

    def _model(self, model: str) -> EncodeFn:
        if not self.available or self.closed:
            raise EncoderUnavailable("in-memory encoder unavailable")
        try:
            return self.models[model]
        except KeyError:
            raise EncoderUnavailable(f"unknown model {model!r}") from None

    async def embed(self, model: str, items: Sequence[bytes]) -> list[Embedded]:
        fn = self._model(model)
        if not items:
            return []
        self.infer_requests += 1
        self.items_sent += len(items)
        return _from_encoded(fn(list(items)), len(items))

    async def version(self, model: str) -> int:
        self._model(model)
        return self.versions[model]

    async def describe(self, items: Sequence[bytes]) -> list[Described]:
        """What :attr:`describe_fn` says of ``items``; unavailable without one."""
        if self.describe_fn is None or not self.available or self.closed:
            raise EncoderUnavailable("in-memory describer unavailable")
        if not items:
            return []
        self.infer_requests += 1
        self.items_sent += len(items)
        encoded, texts = self.describe_fn(list(items))
        return _described(encoded, texts, len(items))

    async def cache_tag(self, model: str) -> str:
        return str(await self.version(model))

    async def close(self) -> None:
        self.closed = True


# --- Triton -------------------------------------------------------------------------


class TritonEmbeddingClient:
    """:class:`EmbeddingClient` over Triton's gRPC API (``tritonclient.grpc.aio``).

    Parameters
    ----------
    url
        ``host:port`` of Triton's gRPC endpoint.
    timeout_s
        Deadline of one attempt (gRPC ``client_timeout``).
    retries
        Extra attempts after a failed one; backoff before attempt ``k`` is
        ``backoff_s * 2**k``, jittered to between half and all of that.
    max_batch
        Most items in one infer request (keep it at or under the model's
        ``max_batch_size``).
    batch_window_s
        How long the first waiting call waits for others to join its request.
    breaker
        Consulted before every attempt; a fresh one (5 failures, 5 s) if omitted.
    observer
        Told of every request sent or refused (see :class:`RequestOutcome`);
        may also be set later through :attr:`observer`.

    Attributes ``infer_requests`` and ``items_sent`` count infer RPCs sent and
    the items in them, retries included.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.2,
        max_batch: int = 32,
        batch_window_s: float = 0.005,
        breaker: CircuitBreaker | None = None,
        rng: random.Random | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        if timeout_s <= 0 or backoff_s < 0 or batch_window_s < 0:
            raise ValueError("timeout_s must be positive, backoff_s and batch_window_s >= 0")
        if retries < 0 or max_batch < 1:
            raise ValueError("retries must be >= 0 and max_batch >= 1")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_batch = max_batch
        self.batch_window_s = batch_window_s
        self.breaker = breaker if breaker is not None else CircuitBreaker(5, 5.0)
        self._rng = rng or random.Random()
        self._triton: Any = None
        self._batchers: dict[str, MicroBatcher[Embedded]] = {}
        self._describers: MicroBatcher[Described] | None = None
        self.infer_requests = 0
        self.items_sent = 0
        self.observer = observer

    def _client(self) -> Any:
        # made on first use, inside the running loop: never connect at import
        # or construction time
        if self._triton is None:
            from tritonclient.grpc import KeepAliveOptions
            from tritonclient.grpc.aio import InferenceServerClient

            self._triton = InferenceServerClient(
                self.url, channel_args=_channel_args(KeepAliveOptions())
            )
        return self._triton

    async def embed(self, model: str, items: Sequence[bytes]) -> list[Embedded]:
        if model_of(model) not in ENCODER_IO:
            raise ValueError(
                f"unknown encoder model {model!r}; expected one of {sorted(ENCODER_IO)}"
            )
        if not items:
            return []
        batcher = self._batchers.get(model)
        if batcher is None:
            batcher = self._batchers[model] = MicroBatcher(
                lambda batch: self._infer(model, batch), self.max_batch, self.batch_window_s
            )
        futures = [
            batcher.submit(items[i : i + self.max_batch])
            for i in range(0, len(items), self.max_batch)
        ]
        parts = await asyncio.gather(*futures, return_exceptions=True)
        out: list[Embedded] = []
        for part in parts:
            if isinstance(part, BaseException):
                raise part
            out.extend(part)
        return out

    async def describe(self, items: Sequence[bytes]) -> list[Described]:
        """Embedding and description of each image, from the ``image_describer`` model.

        One request per :attr:`max_batch` images (micro-batched like
        :meth:`embed`); the embedding path's requests are untouched.
        """
        if not items:
            return []
        batcher = self._describers
        if batcher is None:
            batcher = self._describers = MicroBatcher(
                self._infer_described, self.max_batch, self.batch_window_s
            )
        futures = [
            batcher.submit(items[i : i + self.max_batch])
            for i in range(0, len(items), self.max_batch)
        ]
        out: list[Described] = []
        for part in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(part, BaseException):
                raise part
            out.extend(part)
        return out

    async def _infer_described(self, items: list[bytes]) -> list[Described]:
        from tritonclient.grpc import InferInput, InferRequestedOutput

        io = IMAGE_DESCRIBER_IO
        shape = io.input.batch_shape(len(items))
        tensor = InferInput(io.input.name, shape, io.input.triton_dtype)
        tensor.set_data_from_numpy(np.array(items, dtype=io.input.dtype).reshape(shape))
        outputs = [InferRequestedOutput(t.name) for t in io.outputs]

        def attempt() -> Awaitable[Any]:
            self.infer_requests += 1
            self.items_sent += len(items)
            return self._client().infer(  # type: ignore[no-any-return]
                IMAGE_DESCRIBER, [tensor], outputs=outputs, client_timeout=self.timeout_s
            )

        result = await self._attempts(IMAGE_DESCRIBER, "infer", attempt, f" ({len(items)} items)")
        n = len(items)
        embeddings = result.as_numpy(io.embedding.name)
        errors = result.as_numpy(io.error.name)
        texts = result.as_numpy(DESCRIPTION_OUTPUT)
        if embeddings is None or errors is None or texts is None or texts.size != n:
            raise EncoderUnavailable(f"malformed response from {IMAGE_DESCRIBER} for {n} items")
        encoded = Encoded(
            embeddings=np.asarray(embeddings, dtype=np.float32).reshape(n, -1),
            errors=[_text(e) for e in errors.reshape(n)],
        )
        return _described(encoded, [_text(t) for t in texts.reshape(n)], n)

    async def version(self, model: str) -> int:
        metadata = await self._attempts(
            model,
            "metadata",
            lambda: self._client().get_model_metadata(model, client_timeout=self.timeout_s),
        )
        versions = [int(v) for v in metadata.versions]
        if not versions:
            raise EncoderUnavailable(f"Triton serves no version of {model!r}")
        return max(versions)

    async def cache_tag(self, model: str) -> str:
        version = await self.version(model)
        config = await self._attempts(
            model,
            "config",
            lambda: self._client().get_model_config(
                model, str(version), as_json=True, client_timeout=self.timeout_s
            ),
        )
        parameters = config.get("config", {}).get("parameters", {})
        fingerprint = parameters.get(FINGERPRINT_PARAMETER, {}).get("string_value", "")
        return f"{version}-{fingerprint}" if fingerprint else str(version)

    async def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        self._batchers.clear()
        if self._describers is not None:
            self._describers.close()
            self._describers = None
        if self._triton is not None:
            triton, self._triton = self._triton, None
            with contextlib.suppress(Exception):
                await triton.close()

    async def _infer(self, model: str, items: list[bytes]) -> list[Embedded]:
        """One infer RPC, its tensors as :data:`schemas.tensors.ENCODER_IO` declares them."""
        from tritonclient.grpc import InferInput, InferRequestedOutput

        spec = ENCODER_IO[model_of(model)].input
        shape = spec.batch_shape(len(items))
        tensor = InferInput(spec.name, shape, spec.triton_dtype)
        tensor.set_data_from_numpy(np.array(items, dtype=spec.dtype).reshape(shape))
        outputs = [InferRequestedOutput(t.name) for t in ENCODER_IO[model_of(model)].outputs]

        def attempt() -> Awaitable[Any]:
            self.infer_requests += 1
            self.items_sent += len(items)
            return self._client().infer(  # type: ignore[no-any-return]
                model, [tensor], outputs=outputs, client_timeout=self.timeout_s
            )

        result = await self._attempts(model, "infer", attempt, f" ({len(items)} items)")
        return _parse(model, result, len(items))

    async def _attempts(
        self, model: str, kind: str, call: Callable[[], Awaitable[T]], detail: str = ""
    ) -> T:
        """``call`` with the breaker, retries and backoff; EncoderUnavailable when it fails."""
        from tritonclient.utils import InferenceServerException

        what = f"{kind} on {model}{detail}"
        for attempt in range(self.retries + 1):
            if not self.breaker.allow():
                self._observe(model, kind, None, BREAKER_OPEN)
                raise EncoderUnavailable(f"{what}: circuit breaker open ({self.url})")
            started = time.perf_counter()
            try:
                result = await call()
            except InferenceServerException as exc:
                status = str(exc.status())
                self._observe(model, kind, time.perf_counter() - started, _reason(status))
                self.breaker.record_failure()
                if status in _NOT_RETRYABLE:
                    raise EncoderUnavailable(f"{what} refused: {exc}") from exc
                if attempt == self.retries:
                    raise EncoderUnavailable(
                        f"{what} failed after {attempt + 1} attempts: {exc}"
                    ) from exc
                delay = self.backoff_s * 2**attempt * self._rng.uniform(0.5, 1.0)
                log.warning("%s failed (%s); retry %d in %.2fs", what, status, attempt + 1, delay)
                await asyncio.sleep(delay)
            else:
                self._observe(model, kind, time.perf_counter() - started, None)
                self.breaker.record_success()
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, model: str, kind: str, seconds: float | None, failure: str | None) -> None:
        if self.observer is None:
            return
        try:
            self.observer(RequestOutcome(model_of(model), kind, seconds, failure))
        except Exception:  # a broken observer must never fail an embedding
            log.exception("request observer failed")


def _reason(status: str) -> str:
    """``StatusCode.UNAVAILABLE`` -> ``unavailable``; ``None`` (no status) -> ``error``."""
    name = status.rpartition(".")[2].lower()
    return name if name and name != "none" else "error"


def _channel_args(keepalive: Any) -> list[tuple[str, int]]:
    """tritonclient's channel options, plus a short reconnect backoff.

    gRPC's default reconnect backoff grows to two minutes, so after a long
    outage the channel would keep failing fast for up to two minutes after
    Triton is back; capped at 2 s, recovery follows the breaker's trial.
    """
    return [
        ("grpc.max_send_message_length", _MAX_MESSAGE),
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def _parse(model: str, result: Any, n: int) -> list[Embedded]:
    io = ENCODER_IO[model_of(model)]
    embeddings = result.as_numpy(io.embedding.name)
    errors = result.as_numpy(io.error.name)
    if (
        embeddings is None
        or errors is None
        or embeddings.ndim != len(io.embedding.batch_shape(n))
        or embeddings.shape[0] != n
        or errors.size != n
    ):
        raise EncoderUnavailable(
            f"malformed response from {model}: embedding "
            f"{None if embeddings is None else embeddings.shape}, error "
            f"{None if errors is None else errors.shape} for {n} items"
        )
    return _from_encoded(
        Encoded(
            embeddings=np.asarray(embeddings, dtype=io.embedding.dtype),
            errors=[_text(e) for e in errors.reshape(n)],
        ),
        n,
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
