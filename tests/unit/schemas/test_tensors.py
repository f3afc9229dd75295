"""The tensor spec, and that every Triton declaration is rendered from it.

The exported ``config.pbtxt``, the PyTriton binding and the client's request
are each compared with :mod:`schemas.tensors`, never with literals, and once
more after renaming a tensor in the spec: a declaration that spelled a name
itself would pass the first check and fail the second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import schemas.tensors
from encoder_server.base import Encoded, Encoder
from encoder_server.client import triton_client as client_module
from encoder_server.client.triton_client import TritonEmbeddingClient
from encoder_server.serving.export import model_config
from encoder_server.serving.serve import bind_encoder
from schemas.tensors import (
    ANY_SIZE,
    ENCODER_IO,
    IMAGE_ENCODER,
    IMAGE_ENCODER_IO,
    TEXT_ENCODER,
    TEXT_ENCODER_IO,
    Modality,
    ModelIO,
    TensorSpec,
    encoder_io,
    input_name,
)

#: (model name, modality, embedding dim) of each encoder
ENCODERS: list[tuple[str, Modality, int]] = [
    (IMAGE_ENCODER, "image", 64),
    (TEXT_ENCODER, "text", 32),
]


class StubEncoder:
    """An encoder that embeds every item as ones: only its tensors matter here."""

    version = 1

    def __init__(self, name: str, modality: Modality, dim: int) -> None:
        self.name = name
        self.modality: Modality = modality
        self.dim = dim

    def encode(self, items: Sequence[bytes]) -> Encoded:
        return Encoded(np.ones((len(items), self.dim), dtype=np.float32), [""] * len(items))


class RecordingTriton:
    """Stands in for ``pytriton.triton.Triton``: keeps what ``bind`` was given."""

    def __init__(self) -> None:
        self.bound: dict[str, Any] = {}
        self._model_manager = SimpleNamespace(models=[])

    def bind(self, **kwargs: Any) -> None:
        self.bound = kwargs


class RecordingStub:
    """Stands in for tritonclient's aio client: keeps the request, answers per the spec."""

    def __init__(self, io: ModelIO, dim: int) -> None:
        self.io = io
        self.dim = dim
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []

    async def infer(
        self, model: str, inputs: list[Any], outputs: list[Any], client_timeout: float
    ) -> Any:
        self.inputs, self.outputs = inputs, outputs
        rows = inputs[0].shape()[0]
        arrays = {
            self.io.embedding.name: np.ones((rows, self.dim), dtype=self.io.embedding.dtype),
            self.io.error.name: np.array([[b""]] * rows, dtype=self.io.error.dtype),
        }
        return SimpleNamespace(as_numpy=arrays.get)

    async def close(self) -> None:
        pass


async def assert_all_render(name: str, modality: Modality, dim: int, io: ModelIO) -> None:
    """config.pbtxt, the PyTriton binding and the client request all declare ``io``.

    Each is read back in its own vocabulary and compared with what the spec
    renders for it.
    """
    encoder = StubEncoder(name, modality, dim)
    assert isinstance(encoder, Encoder)

    # the stock tritonserver's config.pbtxt, parsed with Triton's own protobuf
    config = text_format.Parse(model_config(encoder), model_config_pb2.ModelConfig())
    for parsed, tensors in ((config.input, io.inputs), (config.output, io.outputs)):
        assert [
            (t.name, model_config_pb2.DataType.Name(t.data_type), tuple(t.dims)) for t in parsed
        ] == [(t.name, t.config_dtype, t.shape) for t in tensors]

    # the PyTriton binding (PyTriton's Tensor keeps the dtype's scalar type)
    triton = RecordingTriton()
    bind_encoder(triton, encoder)
    assert triton.bound["model_name"] == name
    for key, tensors in (("inputs", io.inputs), ("outputs", io.outputs)):
        assert [(t.name, np.dtype(t.dtype), tuple(t.shape)) for t in triton.bound[key]] == [
            (t.name, t.dtype, t.shape) for t in tensors
        ]

    # the client's request, through the same seam as test_embedding_client.py
    stub = RecordingStub(io, dim)
    client = TritonEmbeddingClient("unused:1", retries=0, batch_window_s=0.0)
    client._triton = stub
    items = [b"a", b"bb", b"ccc"]
    try:
        results = await client.embed(name, items)
    finally:
        await client.close()
    assert [r.vector for r in results] == [(1.0,) * dim] * len(items)
    (sent,) = stub.inputs
    assert (sent.name(), sent.datatype(), sent.shape()) == (
        io.input.name,
        io.input.triton_dtype,
        io.input.batch_shape(len(items)),
    )
    assert [o.name() for o in stub.outputs] == [t.name for t in io.outputs]


@pytest.mark.parametrize(("name", "modality", "dim"), ENCODERS)
async def test_every_declaration_is_the_spec(name: str, modality: Modality, dim: int) -> None:
    await assert_all_render(name, modality, dim, encoder_io(modality, dim))


@pytest.mark.parametrize(("name", "modality", "dim"), ENCODERS)
async def test_a_renamed_tensor_reaches_all_three(
    name: str, modality: Modality, dim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ENCODER_IO[name]
    renamed = dataclasses.replace(
        original, inputs=(dataclasses.replace(original.input, name=f"{modality}_bytes"),)
    )
    by_modality = {"image": IMAGE_ENCODER_IO, "text": TEXT_ENCODER_IO, modality: renamed}
    monkeypatch.setattr(schemas.tensors, "_BY_MODALITY", by_modality)
    monkeypatch.setattr(client_module, "ENCODER_IO", {**ENCODER_IO, name: renamed})
    await assert_all_render(name, modality, dim, encoder_io(modality, dim))
    assert encoder_io(modality, dim).input.name == f"{modality}_bytes"


@pytest.mark.parametrize(("name", "modality", "dim"), ENCODERS)
def test_client_and_server_agree_on_each_model(name: str, modality: Modality, dim: int) -> None:
    assert encoder_io(modality, dim) == ENCODER_IO[name].sized(dim)
    assert ENCODER_IO[name].embedding.shape == (ANY_SIZE,)
    assert input_name(modality) == ENCODER_IO[name].input.name


def test_the_contract_as_served_today() -> None:
    io = encoder_io("image", 64)
    assert [(t.name, t.triton_dtype, t.config_dtype, t.shape) for t in io.inputs] == [
        ("image", "BYTES", "TYPE_STRING", (1,))
    ]
    assert [(t.name, t.triton_dtype, t.config_dtype, t.shape) for t in io.outputs] == [
        ("embedding", "FP32", "TYPE_FP32", (64,)),
        ("error", "BYTES", "TYPE_STRING", (1,)),
    ]
    assert encoder_io("text", 32).input.name == "text"
    assert io.input.batch_shape(5) == [5, 1]


def test_specs_are_frozen_and_checked() -> None:
    spec = IMAGE_ENCODER_IO.input
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="no Triton datatype"):
        TensorSpec("x", np.dtype(np.int8), (1,))
    with pytest.raises(ValueError, match="bad shape"):
        TensorSpec("x", np.dtype(np.float32), (0,))
    with pytest.raises(ValueError, match="needs a name"):
        TensorSpec("", np.dtype(np.float32), (1,))
    with pytest.raises(ValueError, match="unique"):
        ModelIO(inputs=(spec,), outputs=(spec,))
    with pytest.raises(ValueError, match="positive"):
        IMAGE_ENCODER_IO.sized(0)
    # a numpy scalar type is taken as its dtype, as PyTriton's Tensor does
    assert TensorSpec("x", np.float32, (ANY_SIZE,)).dtype == np.dtype(np.float32)  # type: ignore[arg-type]


def test_triton_spellings_are_tritons_own() -> None:
    """schemas/ may not import tritonclient, so its spelling table is checked against it here."""
    from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

    for io in ENCODER_IO.values():
        for t in (*io.inputs, *io.outputs):
            assert np_to_triton_dtype(t.dtype) == t.triton_dtype
            assert np.dtype(triton_to_np_dtype(t.triton_dtype)) == t.dtype
            assert model_config_pb2.DataType.Value(t.config_dtype) != model_config_pb2.TYPE_INVALID
