"""Client logic without a server: the micro-batcher, retries, breaker, the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoded
from encoder_server.client.batcher import MicroBatcher
from encoder_server.client.breaker import CircuitBreaker
from encoder_server.client.errors import EncoderUnavailable
from encoder_server.client.triton_client import (
    Embedded,
    EmbeddingClient,
    InMemoryEmbeddingClient,
    TritonEmbeddingClient,
)


def rows(items: Sequence[bytes]) -> list[Embedded]:
    return [Embedded((float(len(i)),)) for i in items]


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[bytes]] = []
        self.fail = fail

    async def __call__(self, items: list[bytes]) -> list[Embedded]:
        self.batches.append(items)
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return rows(items)


async def test_batcher_gathers_within_the_window_and_scatters_back() -> None:
    send = Recorder()
    batcher = MicroBatcher(send, max_batch=10, window_s=0.01)
    futures = [batcher.submit([b"x" * n] * n) for n in (1, 2, 3)]
    results = await asyncio.gather(*futures)
    assert send.batches == [[b"x"] + [b"xx"] * 2 + [b"xxx"] * 3]
    assert results == [rows([b"x"]), rows([b"xx"] * 2), rows([b"xxx"] * 3)]


async def test_batcher_flushes_at_max_batch_without_waiting() -> None:
    send = Recorder()
    batcher = MicroBatcher(send, max_batch=4, window_s=60.0)
    futures = [batcher.submit([b"a", b"b"]) for _ in range(4)]
    results = await asyncio.wait_for(asyncio.gather(*futures), timeout=1.0)
    assert [len(b) for b in send.batches] == [4, 4]
    assert all(r == rows([b"a", b"b"]) for r in results)
    assert batcher.timer is None


async def test_a_failed_request_fails_every_caller_in_it() -> None:
    send = Recorder(fail=EncoderUnavailable("down"))
    batcher = MicroBatcher(send, max_batch=10, window_s=0.0)
    futures = [batcher.submit([b"a"]), batcher.submit([b"b"])]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, EncoderUnavailable) for r in results)
    assert len(send.batches) == 1


async def test_a_caller_that_gave_up_is_not_sent() -> None:
    send = Recorder()
    batcher = MicroBatcher(send, max_batch=10, window_s=0.01)
    gone = batcher.submit([b"gone"])
    kept = batcher.submit([b"kept"])
    gone.cancel()
    assert await kept == rows([b"kept"])
    assert send.batches == [[b"kept"]]


class FakeTritonStub:
    """Stands in for tritonclient's aio client: fails with the given statuses first."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.calls = 0

    async def get_model_metadata(self, model: str, client_timeout: float) -> Any:
        self.calls += 1
        if self.statuses:
            raise InferenceServerException("nope", status=self.statuses.pop(0))

        class Metadata:
            versions = ("1", "7", "3")

        return Metadata()

    async def close(self) -> None:
        pass


def stubbed(stub: FakeTritonStub, retries: int, breaker: CircuitBreaker) -> TritonEmbeddingClient:
    client = TritonEmbeddingClient(
        "unused:1", retries=retries, backoff_s=0.001, breaker=breaker, timeout_s=1
    )
    client._triton = stub
    return client


async def test_transient_errors_are_retried_then_succeed() -> None:
    stub = FakeTritonStub(["StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED"])
    breaker = CircuitBreaker(10, 1.0)
    assert await stubbed(stub, 2, breaker).version(IMAGE_ENCODER) == 7  # highest
    assert stub.calls == 3
    assert breaker.consecutive_failures == 0


async def test_retries_are_bounded() -> None:
    stub = FakeTritonStub(["StatusCode.UNAVAILABLE"] * 10)
    with pytest.raises(EncoderUnavailable, match="after 3 attempts"):
        await stubbed(stub, 2, CircuitBreaker(10, 1.0)).version(IMAGE_ENCODER)
    assert stub.calls == 3


async def test_a_request_error_is_not_retried() -> None:
    stub = FakeTritonStub(["StatusCode.INVALID_ARGUMENT"] * 10)
    with pytest.raises(EncoderUnavailable, match="refused"):
        await stubbed(stub, 3, CircuitBreaker(10, 1.0)).version(IMAGE_ENCODER)
    assert stub.calls == 1


async def test_open_breaker_refuses_before_any_attempt() -> None:
    stub = FakeTritonStub(["StatusCode.UNAVAILABLE"] * 10)
    breaker = CircuitBreaker(2, 60.0)
    client = stubbed(stub, 5, breaker)
    with pytest.raises(EncoderUnavailable, match="circuit breaker open"):
        await client.version(IMAGE_ENCODER)
    assert stub.calls == 2  # the breaker opened after two, the third attempt never went
    with pytest.raises(EncoderUnavailable, match="circuit breaker open"):
        await client.version(IMAGE_ENCODER)
    assert stub.calls == 2


def test_from_settings_needs_a_url() -> None:
    from schemas.settings import Settings
    from wiring.embedding import triton_client_from_settings

    with pytest.raises(ValueError):
        triton_client_from_settings(Settings(triton_url=None))
    client = triton_client_from_settings(
        Settings(triton_url="h:1", triton_batch_window_ms=20, breaker_failures=7)
    )
    assert client.batch_window_s == pytest.approx(0.02)
    assert client.breaker.failures == 7


# --- the in-memory fake ---------------------------------------------------------------


class LengthEncoder:
    name = IMAGE_ENCODER
    modality: Literal["image", "text"] = "image"
    version = 4
    dim = 2

    def encode(self, items: Sequence[bytes]) -> Encoded:
        emb = np.array([[len(i), 1.0] if i else [0.0, 0.0] for i in items], dtype=np.float32)
        return Encoded(emb, ["" if i else "empty item" for i in items])


async def test_in_memory_client_serves_encoders_and_functions() -> None:
    def text(items: Sequence[bytes]) -> Encoded:
        return Encoded(np.ones((len(items), 3), dtype=np.float32), [""] * len(items))

    client: EmbeddingClient = InMemoryEmbeddingClient(
        LengthEncoder(), functions={TEXT_ENCODER: text}
    )
    assert await client.embed(IMAGE_ENCODER, [b"abc", b""]) == [
        Embedded((3.0, 1.0)),
        Embedded(None, "empty item"),
    ]
    assert await client.embed(TEXT_ENCODER, [b"t"]) == [Embedded((1.0, 1.0, 1.0))]
    assert await client.version(IMAGE_ENCODER) == 4
    assert await client.version(TEXT_ENCODER) == 1


async def test_in_memory_client_outage() -> None:
    client = InMemoryEmbeddingClient(LengthEncoder())
    client.available = False
    with pytest.raises(EncoderUnavailable):
        await client.embed(IMAGE_ENCODER, [b"a"])
    client.available = True
    with pytest.raises(EncoderUnavailable):
        await client.embed("unknown", [b"a"])
    assert len(await client.embed(IMAGE_ENCODER, [b"a"])) == 1


async def test_closing_fails_waiting_and_in_flight_calls_as_unavailable() -> None:
    started = asyncio.Event()

    async def hang(items: list[bytes]) -> list[Embedded]:
        started.set()
        await asyncio.sleep(60)
        return rows(items)

    batcher = MicroBatcher(hang, max_batch=1, window_s=60.0)
    in_flight = batcher.submit([b"a"])  # full batch: sent at once
    await started.wait()
    batcher.max_batch = 10
    waiting = batcher.submit([b"b"])  # waits for the window
    batcher.close()
    results = await asyncio.gather(in_flight, waiting, return_exceptions=True)
    assert all(isinstance(r, EncoderUnavailable) for r in results), results
