"""Encoder versions published while Triton serves: loaded live beside the old ones, never fatal.

One real ``bertctr encoder serve --repository DIR`` per module, started
with one version already published (served from the start). Then, while a
client keeps calling the old ``image_encoder``:

* a published version loads live under its own name with no failed request,
  answers as the same head does in-process, and reports its version and a
  new cache tag to the embedding client;
* broken versions (a head for other features, garbage bytes as the head)
  are marked failed with the reason and never stop the server, the old
  model, or a good version published after them.

A last test loads a model Triton itself refuses into an in-process Triton:
the failed load is forgotten and the server stays alive and ready, so later
versions still load (without that, strict readiness stayed false and every
later load timed out).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as grpcclient

import encoder_server.serving.serve as serve_module
from bertctr.harness.encoders import EncoderServer, start_encoder_server
from bertctr.harness.procs import free_ports
from encoder_server.base import IMAGE_ENCODER, Encoder, served_name
from encoder_server.client.triton_client import TritonEmbeddingClient
from encoder_server.projection import Projection
from encoder_server.serving.image_encoder import ImageEncoder
from encoder_server.serving.repository import (
    HEAD_FILE,
    EncoderRepository,
    VersionInfo,
    VersionStatus,
)
from encoder_server.serving.serve import (
    bind_encoder,
    bind_live,
    encoder_parameters,
    head_fingerprint,
    triton_config,
    use_own_libpython,
)
from simulator.catalogue import build_catalogue
from simulator.render import render_png

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

#: a version must answer within this long of being published
LOAD_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> EncoderRepository:
    """A repository holding version 2 before the server starts."""
    repository = EncoderRepository(tmp_path_factory.mktemp("encoder-versions"))
    repository.publish(
        IMAGE_ENCODER,
        Projection.random(1280, 64, seed=11),
        parent=1,
        training={"note": "there at start"},
    )
    return repository


@pytest.fixture(scope="module")
def server(repo: EncoderRepository) -> Iterator[EncoderServer]:
    srv = start_encoder_server(["--repository", str(repo.root), "--poll-s", "0.5"])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: EncoderServer) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def local() -> ImageEncoder:
    """The served base image encoder, in this process, to put heads on."""
    return ImageEncoder()


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    entries = build_catalogue(np.random.default_rng(1), 3, 2)
    return [render_png(e, 224, i) for i, e in enumerate(entries[:4])]


def infer(
    client: grpcclient.InferenceServerClient, model: str, items: Sequence[bytes]
) -> npt.NDArray[np.float32]:
    tensor = grpcclient.InferInput("image", [len(items), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[x] for x in items], dtype=object))
    result = client.infer(model, [tensor])
    errors = [e.decode() for e in result.as_numpy("error").reshape(-1)]
    assert errors == [""] * len(items)
    embeddings: npt.NDArray[np.float32] | None = result.as_numpy("embedding")
    assert embeddings is not None
    return embeddings


def wait_status(repo: EncoderRepository, info: VersionInfo) -> VersionStatus:
    """The server's verdict on ``info``, waiting for it."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        status = repo.status(info.model, info.version)
        if status is not None:
            return status
        time.sleep(0.1)
    raise TimeoutError(f"no status for {info.served_name} in {LOAD_TIMEOUT_S}s")


class Caller:
    """Calls ``image_encoder`` through the embedding client, back to back, in a thread.

    No retries: every failed RPC counts. Each answer is compared with the
    first one, so the old model is seen to stay the same model throughout.
    """

    def __init__(self, url: str, items: Sequence[bytes]) -> None:
        self.url = url
        self.items = list(items)
        self.ok = 0
        self.failed: list[str] = []
        self.changed = 0
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        client = TritonEmbeddingClient(self.url, retries=0, timeout_s=30.0)
        first: npt.NDArray[np.float32] | None = None
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    found = await client.embed(IMAGE_ENCODER, self.items)
                except Exception as exc:  # counted, not raised: the test reports them all
                    self.failed.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.latencies.append(time.monotonic() - started)
                if not all(f.ok for f in found):
                    self.failed.append("; ".join(f.error for f in found))
                    continue
                vectors = np.array([f.vector for f in found], dtype=np.float32)
                if first is None:
                    first = vectors
                elif not np.allclose(vectors, first, atol=1e-6):
                    self.changed += 1
                self.ok += 1
        finally:
            await client.close()

    def __enter__(self) -> Caller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


async def client_view(url: str, model: str) -> tuple[int, str]:
    """(version, cache tag) of ``model`` as the stream's embedding client sees them."""
    client = TritonEmbeddingClient(url)
    try:
        return await client.version(model), await client.cache_tag(model)
    finally:
        await client.close()


def test_versions_in_the_repository_at_start_are_served(
    server: EncoderServer,
    repo: EncoderRepository,
    client: grpcclient.InferenceServerClient,
    images: list[bytes],
) -> None:
    assert server.ready["models"]["image_encoder.v2"] == 2
    status = repo.status(IMAGE_ENCODER, 2)
    assert status is not None and status.state == "ready", status
    assert client.get_model_metadata("image_encoder.v2").versions == ["2"]
    assert infer(client, "image_encoder.v2", images[:2]).shape == (2, 64)


def test_a_published_version_loads_live_without_one_failed_request(
    server: EncoderServer,
    repo: EncoderRepository,
    client: grpcclient.InferenceServerClient,
    local: ImageEncoder,
    images: list[bytes],
) -> None:
    old = infer(client, IMAGE_ENCODER, images)
    head = Projection.random(1280, 64, seed=12)
    with Caller(server.grpc_url, images[:2]) as caller:
        time.sleep(1.0)  # requests before the load...
        published = time.monotonic()
        info = repo.publish(IMAGE_ENCODER, head, parent=2, training={"examples": 1234})
        status = wait_status(repo, info)
        seen_ready_s = time.monotonic() - published
        time.sleep(1.0)  # ...and after
    log.info(
        "%s ready %.1fs after publishing (load %.2fs); %d requests to %s meanwhile, "
        "%d failed, latency median %.3fs max %.3fs",
        info.served_name,
        seen_ready_s,
        status.load_s or -1,
        caller.ok,
        IMAGE_ENCODER,
        len(caller.failed),
        float(np.median(caller.latencies)),
        max(caller.latencies),
    )
    assert status.state == "ready", status.error
    assert caller.failed == []
    assert caller.ok >= 10 and caller.changed == 0
    assert client.is_model_ready(info.served_name)

    # both answer; the new one is exactly the published head on the same backbone
    served = infer(client, info.served_name, images)
    expected = local.with_head(repo.load(IMAGE_ENCODER, info.version)[0])
    np.testing.assert_allclose(served, expected.encode(images).embeddings, atol=1e-5)
    np.testing.assert_array_equal(infer(client, IMAGE_ENCODER, images), old)
    assert np.abs(served - old).max() > 0.1

    # what the embedding cache keys on differs, and status.json says what clients see
    version, tag = asyncio.run(client_view(server.grpc_url, info.served_name))
    base_version, base_tag = asyncio.run(client_view(server.grpc_url, IMAGE_ENCODER))
    assert (version, base_version) == (info.version, 1)
    assert tag == f"{info.version}-{status.served_fingerprint}" != base_tag
    assert status.served_fingerprint == head_fingerprint(expected)


def publish_garbage_head(repo: EncoderRepository) -> VersionInfo:
    """A version whose ``head.npz`` is garbage, moved into place whole as publish does."""
    scratch = EncoderRepository(repo.root / ".scratch")  # hidden: not a model
    number = repo.next_version(IMAGE_ENCODER)
    info = scratch.publish(
        IMAGE_ENCODER, Projection.random(1280, 8), parent=1, training={}, version=number
    )
    (info.path / HEAD_FILE).write_bytes(b"PK\x03\x04 not really a zip file")
    os.rename(info.path, repo.version_dir(IMAGE_ENCODER, number))
    return info


def test_broken_versions_fail_alone_and_a_good_one_still_loads_after(
    server: EncoderServer,
    repo: EncoderRepository,
    client: grpcclient.InferenceServerClient,
    images: list[bytes],
) -> None:
    old = infer(client, IMAGE_ENCODER, images)
    other_features = repo.publish(
        IMAGE_ENCODER, Projection.random(100, 8, seed=1), parent=1, training={}
    )
    garbage = publish_garbage_head(repo)
    reasons = {
        other_features.version: "projection expects 100 features",
        garbage.version: "head.npz",
    }
    for info in (other_features, garbage):
        status = wait_status(repo, info)
        assert status.state == "failed"
        assert reasons[info.version] in status.error, status.error
        assert not client.is_model_ready(info.served_name)
    assert server.proc is not None and server.proc.poll() is None
    assert client.is_server_ready()
    np.testing.assert_array_equal(infer(client, IMAGE_ENCODER, images), old)

    good = repo.publish(IMAGE_ENCODER, Projection.random(1280, 8, seed=13), parent=3, training={})
    status = wait_status(repo, good)
    assert status.state == "ready", status.error
    assert infer(client, good.served_name, images).shape == (len(images), 8)
    # a failed version is not tried again while its files stay the same
    time.sleep(1.5)
    logs = server.logs(tail=1_000_000)
    for info in (other_features, garbage):
        assert logs.count(f"{IMAGE_ENCODER} v{info.version} not served") == 1


def test_a_load_triton_refuses_is_forgotten_and_the_server_stays_ready(
    images: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytriton.triton import Triton

    def unloadable(encoder: Encoder) -> dict[str, str]:
        """Version 9's Python-backend stub gets a workspace that does not exist: its
        initialize fails inside Triton, after PyTriton has registered the model."""
        parameters = encoder_parameters(encoder)
        if encoder.version == 9:
            parameters["workspace-path"] = "/nonexistent/bertctr-workspace"
        return parameters

    monkeypatch.setattr(serve_module, "encoder_parameters", unloadable)
    base = ImageEncoder(input_size=64)
    ports = free_ports(3)
    grpc_port = ports[0]
    use_own_libpython()
    triton = Triton(config=triton_config("127.0.0.1", (ports[0], ports[1], ports[2]), True))
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        bind_encoder(triton, base)
        triton.run()
        refused = base.with_head(Projection.random(1280, 8, seed=1, version=9))
        with pytest.raises(Exception, match=r"load failed for model 'image_encoder\.v9'"):
            bind_live(triton, refused, served_name(IMAGE_ENCODER, 9))
        assert triton.is_alive()
        assert client.is_server_ready() and client.is_model_ready(IMAGE_ENCODER)
        assert not client.is_model_ready("image_encoder.v9")

        good = base.with_head(Projection.random(1280, 8, seed=2, version=10))
        fingerprint = bind_live(triton, good, served_name(IMAGE_ENCODER, 10))
        assert fingerprint == head_fingerprint(good)
        assert infer(client, "image_encoder.v10", images[:2]).shape == (2, 8)
        assert triton.is_alive()
    finally:
        client.close()
        triton.stop()
