"""The real encoders on the real Triton, through ``bertctr encoder serve`` and plain tritonclient.

One server per module (startup ~10 s): both models served with their
versions and head parameters, results deterministic and equal to the same
encoder class in-process, a batch equal to its items one by one, bad items
failing alone next to good ones, dynamic batching merging concurrent
requests, Prometheus counts per model and version. A second server serves a
multi-scale PCA head fitted with ``bertctr encoder fit-projection --features
multiscale --groups`` as version 2, and is
restarted on the same ports.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from bertctr.harness.encoders import EncoderServer, start_encoder_server
from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoder
from encoder_server.client.triton_client import TritonEmbeddingClient
from encoder_server.projection import Projection
from encoder_server.serving.image_encoder import ImageEncoder
from encoder_server.serving.loader import load_encoders
from encoder_server.serving.serve import head_fingerprint
from simulator.catalogue import build_catalogue
from simulator.render import render_png

pytestmark = pytest.mark.integration

Result = tuple[npt.NDArray[np.float32], list[str]]


@pytest.fixture(scope="module")
def server() -> Iterator[EncoderServer]:
    srv = start_encoder_server()
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
def local() -> dict[str, Encoder]:
    """The same encoder classes, in this process, for comparison."""
    return {e.name: e for e in load_encoders()}


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    entries = build_catalogue(np.random.default_rng(1), 3, 2)
    return [render_png(e, 224, i) for i, e in enumerate(entries[:4])]


def infer(
    client: grpcclient.InferenceServerClient, model: str, items: Sequence[bytes], version: str = ""
) -> Result:
    field = "image" if model == IMAGE_ENCODER else "text"
    tensor = grpcclient.InferInput(field, [len(items), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[x] for x in items], dtype=object).reshape(-1, 1))
    result = client.infer(model, [tensor], model_version=version)
    embeddings = result.as_numpy("embedding")
    errors = [e.decode() for e in result.as_numpy("error").reshape(-1)]
    assert embeddings is not None and embeddings.dtype == np.float32
    return embeddings, errors


def metric(server: EncoderServer, name: str, model: str, version: int) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    match = re.search(rf'^{name}{{model="{model}",version="{version}"}} (\S+)$', text, re.M)
    assert match, f"{name} for {model} v{version} not in metrics"
    return float(match.group(1))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_both_encoders_served_with_versions_dims_and_heads(
    client: grpcclient.InferenceServerClient, server: EncoderServer
) -> None:
    assert server.ready["models"] == {IMAGE_ENCODER: 1, TEXT_ENCODER: 1}
    for model, field, dim in ((IMAGE_ENCODER, "image", 64), (TEXT_ENCODER, "text", 32)):
        meta = client.get_model_metadata(model, as_json=True)
        assert meta["name"] == model
        assert meta["versions"] == ["1"]
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
            (field, "BYTES", ["-1", "1"])
        ]
        outputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["outputs"]}
        assert outputs == {"embedding": ("FP32", ["-1", str(dim)]), "error": ("BYTES", ["-1", "1"])}
        config = client.get_model_config(model, as_json=True)["config"]
        assert config["max_batch_size"] == 64
        assert "dynamic_batching" in config
        params = {k: v["string_value"] for k, v in config["parameters"].items()}
        assert params["bertctr_projection_kind"] == "random"
        assert params["bertctr_projection_version"] == "1"
        assert params["bertctr_dim"] == str(dim)


def test_image_embeddings_deterministic_and_equal_in_process(
    client: grpcclient.InferenceServerClient, local: dict[str, Encoder], images: list[bytes]
) -> None:
    first, errors = infer(client, IMAGE_ENCODER, images)
    again, _ = infer(client, IMAGE_ENCODER, images, version="1")
    assert errors == [""] * len(images)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, local[IMAGE_ENCODER].encode(images).embeddings, atol=1e-5)
    assert float(first[0] @ first[1]) < 0.999  # different pictures, different embeddings


def test_text_embeddings_deterministic_and_equal_in_process(
    client: grpcclient.InferenceServerClient, local: dict[str, Encoder]
) -> None:
    titles = [b"vintage red shoe", "caf\u00e9 chair".encode(), b"modern blue lamp"]
    first, errors = infer(client, TEXT_ENCODER, titles)
    again, _ = infer(client, TEXT_ENCODER, titles)
    assert errors == ["", "", ""]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, local[TEXT_ENCODER].encode(titles).embeddings, atol=1e-5)


def test_batch_equals_one_by_one(
    client: grpcclient.InferenceServerClient, images: list[bytes]
) -> None:
    batch, _ = infer(client, IMAGE_ENCODER, images)
    singles = np.concatenate([infer(client, IMAGE_ENCODER, [x])[0] for x in images])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    titles = [b"mug", b"a much longer title that needs plenty of padding for the short one"]
    batch, _ = infer(client, TEXT_ENCODER, titles)
    singles = np.concatenate([infer(client, TEXT_ENCODER, [t])[0] for t in titles])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_bad_images_fail_alone_next_to_good_ones(
    client: grpcclient.InferenceServerClient, images: list[bytes]
) -> None:
    truncated = _png(Image.effect_noise((64, 64), 60).convert("RGB"))[:700]
    bad = {
        1: (b"not an image at all", "not an image"),
        3: (truncated, "truncated image"),
        4: (_png(Image.new("RGB", (1, 1))), "image too small: 1x1"),
        5: (b"\x89PNG\r\n\x1a\n" + b"\0" * (50 * 1024 * 1024), "image too large: 52428808 bytes"),
    }
    items = [images[0], bad[1][0], images[1], bad[3][0], bad[4][0], bad[5][0], images[2]]
    embeddings, errors = infer(client, IMAGE_ENCODER, items)
    for i, (_, reason) in bad.items():
        assert reason in errors[i], errors[i]
        assert not embeddings[i].any()
    assert [errors[i] for i in (0, 2, 6)] == ["", "", ""]
    clean, _ = infer(client, IMAGE_ENCODER, images[:3])
    np.testing.assert_allclose(embeddings[[0, 2, 6]], clean, atol=1e-5)


def test_bad_titles_fail_alone(client: grpcclient.InferenceServerClient) -> None:
    embeddings, errors = infer(client, TEXT_ENCODER, [b"mug", b"\xff\xfe", b"  ", b"x" * 2049])
    assert errors == ["", "invalid UTF-8", "empty input", "text too long: 2049 bytes > 2048"]
    assert embeddings[0].any() and not embeddings[1:].any()


def test_concurrent_requests_are_batched_and_counted(
    client: grpcclient.InferenceServerClient, server: EncoderServer, images: list[bytes]
) -> None:
    requests_before = metric(server, "nv_inference_request_success", IMAGE_ENCODER, 1)
    items_before = metric(server, "nv_inference_count", IMAGE_ENCODER, 1)
    execs_before = metric(server, "nv_inference_exec_count", IMAGE_ENCODER, 1)
    done: list[Any] = []
    n = 12
    for i in range(n):
        tensor = grpcclient.InferInput("image", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[images[i % len(images)]]], dtype=object))
        client.async_infer(
            IMAGE_ENCODER, [tensor], callback=lambda result, error: done.append((result, error))
        )
    deadline = time.monotonic() + 60
    while len(done) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(done) == n and all(err is None for _, err in done)
    assert metric(server, "nv_inference_request_success", IMAGE_ENCODER, 1) == requests_before + n
    assert metric(server, "nv_inference_count", IMAGE_ENCODER, 1) == items_before + n
    executions = metric(server, "nv_inference_exec_count", IMAGE_ENCODER, 1) - execs_before
    assert executions < n  # requests queued behind a forward pass ran together


async def cache_tag(url: str, model: str) -> str:
    client = TritonEmbeddingClient(url)
    try:
        return await client.cache_tag(model)
    finally:
        await client.close()


def test_fitted_head_is_served_as_version_2_and_survives_restart(
    tmp_path: Path, images: list[bytes]
) -> None:
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    entries = build_catalogue(np.random.default_rng(2), 5, 2)
    assert len(entries) >= 8
    for i, entry in enumerate(entries):
        (image_dir / f"{i}.png").write_bytes(render_png(entry, 96, i))
    (image_dir / "broken.png").write_bytes(b"junk")
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({str(i): e.item_id for i, e in enumerate(entries)}))
    head_file = tmp_path / "head.npz"
    fitted = subprocess.run(
        [
            *(sys.executable, "-m", "bertctr.cli", "encoder", "fit-projection"),
            *("--images", str(image_dir), "--dim", "4", "--out", str(head_file)),
            *("--features", "multiscale", "--groups", str(groups)),
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    summary = json.loads(fitted.stdout.decode().strip().splitlines()[-1])
    assert (summary["kind"], summary["version"], summary["d_out"]) == ("pca", 2, 4)
    assert (summary["features"], summary["d_in"]) == ("multiscale", 3120)
    assert (summary["items"], summary["skipped"]) == (len(entries), 1)
    assert f"standardised, within {len(entries) // 2} groups" in summary["note"]
    head = Projection.load(head_file)
    with start_encoder_server(["--image-projection", str(head_file)]) as srv:
        assert srv.ready["models"] == {IMAGE_ENCODER: 2, TEXT_ENCODER: 1}
        c = grpcclient.InferenceServerClient(srv.grpc_url)
        meta = c.get_model_metadata(IMAGE_ENCODER, as_json=True)
        assert meta["versions"] == ["2"]
        params = c.get_model_config(IMAGE_ENCODER, as_json=True)["config"]["parameters"]
        assert params["bertctr_projection_kind"]["string_value"] == "pca"
        assert params["bertctr_projection_features"]["string_value"] == "multiscale"
        # The stream's cache tag: version and this head's fingerprint.
        fingerprint = head_fingerprint(ImageEncoder(head))
        assert params["bertctr_fingerprint"]["string_value"] == fingerprint
        assert asyncio.run(cache_tag(srv.grpc_url, IMAGE_ENCODER)) == f"2-{fingerprint}"
        served, errors = infer(c, IMAGE_ENCODER, images[:2], version="2")
        assert served.shape == (2, 4) and errors == ["", ""]
        expected = ImageEncoder(head).encode(images[:2]).embeddings
        np.testing.assert_allclose(served, expected, atol=1e-5)
        c.close()

        grpc_url = srv.grpc_url
        srv.restart()
        assert srv.grpc_url == grpc_url
        c = grpcclient.InferenceServerClient(srv.grpc_url)
        again, _ = infer(c, IMAGE_ENCODER, images[:2])
        np.testing.assert_allclose(again, served, atol=1e-6)
        c.close()
