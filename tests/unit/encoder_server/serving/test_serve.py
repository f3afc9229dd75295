"""Binding an encoder to Triton, without starting one: env fix, batching, config text."""

from __future__ import annotations

import dataclasses
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from pytriton.proxy.types import Request
from tritonclient.grpc import model_config_pb2

from encoder_server.base import Encoded, Modality
from encoder_server.projection import Projection
from encoder_server.serving.export import model_config
from encoder_server.serving.serve import (
    bind_encoder,
    encoder_parameters,
    head_fingerprint,
    infer_function,
    libpython_env,
)


class FakeEncoder:
    """Embeds ``b"x" * k`` as a one-hot of ``k``; anything else fails alone."""

    name = "image_encoder"
    modality: Modality = "image"
    version = 3
    dim = 4

    def __init__(self) -> None:
        self.projection = Projection.identity(4, version=3)
        self.calls: list[int] = []

    def encode(self, items: Sequence[bytes]) -> Encoded:
        self.calls.append(len(items))
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        errors = []
        for i, item in enumerate(items):
            if item and set(item) == {ord("x")} and len(item) < self.dim:
                out[i, len(item)] = 1.0
                errors.append("")
            else:
                errors.append("not an image")
        return Encoded(out, errors)


def test_bind_encoder_declares_the_model_and_publishes_its_head(tmp_path: Path) -> None:
    """``bind_encoder`` on a real PyTriton ``Triton``, bound but never started.

    Name and version, the tensors of the spec, the batching, the bound
    inference function and the parameters clients read the head's
    fingerprint from: everything Triton would load, read back from
    PyTriton's own model config.
    """
    from pytriton.triton import Triton

    encoder = FakeEncoder()
    triton = Triton(workspace=tmp_path / "workspace")
    try:
        bind_encoder(triton, encoder, max_batch_size=8, queue_delay_us=300)
        (model,) = triton._model_manager.models
        assert (model.model_name, model.model_version) == ("image_encoder", 3)
        config = model._get_triton_model_config()
        assert config.max_batch_size == 8
        assert config.batcher.max_queue_delay_microseconds == 300
        assert [(t.name, t.shape, t.dtype) for t in config.inputs] == [("image", (1,), np.object_)]
        assert [(t.name, t.shape, t.dtype) for t in config.outputs] == [
            ("embedding", (4,), np.float32),
            ("error", (1,), np.object_),
        ]
        params = encoder_parameters(encoder)
        assert {k: config.backend_parameters.get(k) for k in params} == params
        # the function bound is infer_function's over this encoder
        (infer,) = model.infer_functions
        responses = infer([Request(data={"image": np.array([[b"xx"], [b"?"]], dtype=object)})])
        np.testing.assert_array_equal(responses[0]["embedding"][0], [0, 0, 1, 0])
        assert list(responses[0]["error"].reshape(-1)) == [b"", b"not an image"]
        assert encoder.calls == [2]
    finally:
        triton.stop()


def test_libpython_env_puts_libdir_first_once() -> None:
    libdir = sysconfig.get_config_var("LIBDIR")
    amended = libpython_env({"LD_LIBRARY_PATH": "/opt/other", "HOME": "/root"})
    assert amended is not None
    assert amended["LD_LIBRARY_PATH"] == f"{libdir}:/opt/other"
    assert amended["HOME"] == "/root"
    assert libpython_env(amended) is None
    assert libpython_env({})["LD_LIBRARY_PATH"] == libdir  # type: ignore[index]


def test_one_encode_call_per_dynamic_batch_rows_back_per_request() -> None:
    encoder = FakeEncoder()
    infer = infer_function(encoder)
    requests = [
        Request(data={"image": np.array([[b"x"], [b"junk"]], dtype=object)}),
        Request(data={"image": np.array([[b"xx"]], dtype=object)}),
    ]
    responses = infer(requests)
    assert encoder.calls == [3]
    assert [r["embedding"].shape for r in responses] == [(2, 4), (1, 4)]
    assert responses[0]["embedding"].dtype == np.float32
    np.testing.assert_array_equal(responses[0]["embedding"][0], [0, 1, 0, 0])
    np.testing.assert_array_equal(responses[1]["embedding"][0], [0, 0, 1, 0])
    assert [list(r["error"].reshape(-1)) for r in responses] == [[b"", b"not an image"], [b""]]


def test_parameters_name_the_head() -> None:
    assert encoder_parameters(FakeEncoder()) == {
        "bertctr_dim": "4",
        "bertctr_modality": "image",
        "bertctr_fingerprint": head_fingerprint(FakeEncoder()),
        "bertctr_projection_kind": "identity",
        "bertctr_projection_version": "3",
        "bertctr_projection_note": "identity 4",
        "bertctr_projection_features": "last",
    }


def test_fingerprint_tells_heads_of_one_version_apart() -> None:
    a, b = FakeEncoder(), FakeEncoder()
    assert head_fingerprint(a) == head_fingerprint(b) and len(head_fingerprint(a)) == 16
    b.projection = Projection(
        mean=np.full(4, 0.1, dtype=np.float32),
        components=np.eye(4, dtype=np.float32),
        version=3,
        kind="identity",
    )
    assert b.version == a.version and head_fingerprint(b) != head_fingerprint(a)
    # the same arrays over another feature set are another head
    c = FakeEncoder()
    c.projection = dataclasses.replace(a.projection, features="multiscale")
    assert head_fingerprint(c) != head_fingerprint(a)


def test_exported_config_parses_as_a_triton_model_config() -> None:
    text = model_config(FakeEncoder(), max_batch_size=16, queue_delay_us=500)
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert (config.name, config.backend, config.max_batch_size) == ("image_encoder", "python", 16)
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(t.name, list(t.dims)) for t in config.output] == [("embedding", [4]), ("error", [1])]
    assert config.parameters["bertctr_projection_note"].string_value == "identity 4"
