"""TritonEmbeddingClient against a real Triton server (PyTriton, fake encoders).

The server runs in its own process group (tritonserver is a child of the
PyTriton process) and is killed as a group, which is also how the outage
test takes Triton away.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from bertctr.harness.procs import free_ports, kill_group, spawn
from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER
from encoder_server.client.breaker import CircuitBreaker
from encoder_server.client.errors import EncoderUnavailable
from encoder_server.client.triton_client import (
    BREAKER_OPEN,
    Embedded,
    RequestOutcome,
    TritonEmbeddingClient,
)
from encoder_server.serving.serve import libpython_env
from tests.integration.fake_encoder_server import fake_embed

pytestmark = pytest.mark.integration

VERSION = 3
ROOT = Path(__file__).resolve().parents[3]


class FakeTriton:
    """One fake encoder server process group; restartable on the same ports."""

    def __init__(self, log_dir: Path, version: int = VERSION) -> None:
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)
        self.version = version
        self.log_path = log_dir / "triton.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 90.0) -> None:
        env = libpython_env(os.environ) or dict(os.environ)
        self.proc = spawn(
            [
                sys.executable,
                "-m",
                "tests.integration.fake_encoder_server",
                f"--grpc-port={self.grpc_port}",
                f"--http-port={self.http_port}",
                f"--metrics-port={self.metrics_port}",
                f"--version={self.version}",
            ],
            env,
            self.log_path,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout_s
        while not all(self.ready(m) for m in (IMAGE_ENCODER, TEXT_ENCODER)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"fake Triton did not start:\n{self.logs()}")
            time.sleep(0.25)

    def ready(self, model: str) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/v2/models/{model}/ready"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        if self.proc is None:
            return
        kill_group(self.proc)
        self.proc = None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def requests_served(self, model: str) -> int:
        """Successful infer requests of ``model``, from Triton's Prometheus metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        pattern = rf'^nv_inference_request_success\{{model="{model}",[^}}]*\}} (\d+)'
        return sum(int(m) for m in re.findall(pattern, text, flags=re.M))


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeTriton]:
    server = FakeTriton(tmp_path_factory.mktemp("triton"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def client(triton: FakeTriton) -> AsyncIterator[TritonEmbeddingClient]:
    c = TritonEmbeddingClient(
        triton.url,
        timeout_s=10,
        retries=1,
        backoff_s=0.05,
        max_batch=16,
        batch_window_s=0.05,
        breaker=CircuitBreaker(5, 5.0),
    )
    yield c
    await c.close()


def assert_matches(items: list[bytes], results: list[Embedded], version: int = VERSION) -> None:
    assert len(results) == len(items)
    for item, got in zip(items, results, strict=True):
        expected, error = fake_embed(item, version)
        assert got.error == error
        if error:
            assert got.vector is None
        else:
            assert got.vector is not None
            np.testing.assert_allclose(got.vector, expected, rtol=1e-6)


async def test_concurrent_calls_are_micro_batched(
    triton: FakeTriton, client: TritonEmbeddingClient
) -> None:
    calls = [[f"img-{i}-{j}".encode() for j in range(1 + i % 3)] for i in range(20)]
    served_before = triton.requests_served(IMAGE_ENCODER)
    results = await asyncio.gather(*(client.embed(IMAGE_ENCODER, items) for items in calls))
    for items, got in zip(calls, results, strict=True):
        assert_matches(items, got)
    total = sum(len(items) for items in calls)
    assert client.items_sent == total
    # 39 items, at most 16 a request, packed whole: 15 + 16 + 8 in 3 requests, not 20
    assert client.infer_requests == 3 < len(calls)
    assert triton.requests_served(IMAGE_ENCODER) - served_before == client.infer_requests


async def test_a_large_call_is_split_and_kept_in_order(client: TritonEmbeddingClient) -> None:
    items = [f"big-{i}".encode() for i in range(40)]
    results = await client.embed(IMAGE_ENCODER, items)
    assert_matches(items, results)
    assert client.infer_requests == 3


async def test_per_item_errors_fail_alone(client: TritonEmbeddingClient) -> None:
    items = [b"good-1", b"bad-truncated-png", b"good-2"]
    results = await client.embed(IMAGE_ENCODER, items)
    assert_matches(items, results)
    assert [r.ok for r in results] == [True, False, True]
    assert "cannot decode" in results[1].error


async def test_text_encoder_takes_text_input(client: TritonEmbeddingClient) -> None:
    titles = ["Red shoes", "Ünïcode ✓ title"]
    items = [t.encode() for t in titles]
    assert_matches(items, await client.embed(TEXT_ENCODER, items))


async def test_version_is_the_served_version(client: TritonEmbeddingClient) -> None:
    assert await client.version(IMAGE_ENCODER) == VERSION
    assert await client.version(TEXT_ENCODER) == VERSION


async def test_unknown_model_is_unavailable_not_retried_forever(
    client: TritonEmbeddingClient,
) -> None:
    with pytest.raises(EncoderUnavailable):
        await client.version("no_such_model")
    with pytest.raises(ValueError):
        await client.embed("no_such_model", [b"x"])


async def test_outage_opens_the_breaker_and_recovery_closes_it(tmp_path: Path) -> None:
    server = FakeTriton(tmp_path)
    server.start()
    breaker = CircuitBreaker(failures=3, reset_s=1.0)
    client = TritonEmbeddingClient(
        server.url, timeout_s=2, retries=2, backoff_s=0.05, batch_window_s=0.0, breaker=breaker
    )
    try:
        assert_matches([b"before"], await client.embed(IMAGE_ENCODER, [b"before"]))
        sent = client.infer_requests

        server.kill()
        with pytest.raises(EncoderUnavailable, match="after 3 attempts"):
            await client.embed(IMAGE_ENCODER, [b"during"])
        assert client.infer_requests - sent == 3  # one call and two retries
        assert breaker.state == "open"

        sent = client.infer_requests
        outcomes: list[RequestOutcome] = []
        client.observer = outcomes.append
        with pytest.raises(EncoderUnavailable, match="circuit breaker open"):
            await client.embed(IMAGE_ENCODER, [b"during"])
        # refused at once: one refusal, never sent (no RPC, no retry, no backoff)
        assert outcomes == [RequestOutcome(IMAGE_ENCODER, "infer", None, BREAKER_OPEN)]
        assert client.infer_requests == sent
        assert breaker.state == "open"
        client.observer = None

        server.start()  # same ports
        await asyncio.sleep(breaker.reset_s)
        deadline = time.monotonic() + 20
        while True:
            try:
                results = await client.embed(IMAGE_ENCODER, [b"after"])
                break
            except EncoderUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert_matches([b"after"], results)
        assert str(breaker.state) == "closed"  # str(): mypy narrowed it to "open"
    finally:
        await client.close()
        server.kill()
