"""The Triton tensor contract of the encoders: one frozen spec, three renderings.

Each encoder model is declared in three places that must agree exactly, each
in its own vocabulary:

* the PyTriton binding (:func:`encoder_server.serving.serve.bind_encoder`) wants a
  numpy dtype, :attr:`TensorSpec.dtype`;
* the ``config.pbtxt`` a stock ``tritonserver`` loads
  (:func:`encoder_server.serving.export.model_config`) wants ``TYPE_STRING`` /
  ``TYPE_FP32``, :attr:`TensorSpec.config_dtype`;
* the client's request (:mod:`encoder_server.client.triton_client`) wants ``"BYTES"`` /
  ``"FP32"``, :attr:`TensorSpec.triton_dtype`, and a shape with the batch.

Written out three times, a renamed tensor or a changed dtype in one of them
showed up only as a failed request against a real server. Here each is
rendered from the same frozen :class:`TensorSpec`, modelled on PyTriton's own
``Tensor`` dataclass, so they cannot drift.

Shapes are per row, without the batch dimension: both models batch
(``max_batch_size > 0``), so Triton prepends it, and PyTriton's ``Tensor``
and config ``dims`` both leave it out; a request's shape is
:meth:`TensorSpec.batch_shape`. The embedding dimension belongs to a served
version, not to the model name, so :data:`ENCODER_IO` (what a client knows)
declares it :data:`ANY_SIZE`, Triton's own "any size", and a server declares
the real one with :func:`encoder_io`.

This is the bottom layer: numpy and the standard library only, never
``encoder_server``, which imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

__all__ = [
    "ANY_SIZE",
    "DESCRIPTION_OUTPUT",
    "EMBEDDING_OUTPUT",
    "ENCODER_IO",
    "ERROR_OUTPUT",
    "IMAGE_DESCRIBER",
    "IMAGE_DESCRIBER_IO",
    "IMAGE_ENCODER",
    "IMAGE_ENCODER_IO",
    "TEXT_ENCODER",
    "TEXT_ENCODER_IO",
    "Modality",
    "ModelIO",
    "TensorSpec",
    "describer_io",
    "encoder_io",
    "input_name",
]

#: Triton model names; versions are Triton model versions (integers).
IMAGE_ENCODER = "image_encoder"
TEXT_ENCODER = "text_encoder"

#: what an encoder reads; its input tensor is named after it
Modality = Literal["image", "text"]

#: output tensors of both models: FP32 [batch, dim] and BYTES [batch, 1]
EMBEDDING_OUTPUT = "embedding"
ERROR_OUTPUT = "error"

#: a dimension of any size (Triton's ``-1``)
ANY_SIZE = -1

#: numpy dtype -> (tritonclient datatype, config.pbtxt data_type). BYTES is
#: numpy ``object`` holding ``bytes``: what tritonclient and the Python
#: backend hand out, and what PyTriton accepts for ``TYPE_STRING``.
_TRITON_TYPES: Mapping[np.dtype[Any], tuple[str, str]] = MappingProxyType(
    {
        np.dtype(np.object_): ("BYTES", "TYPE_STRING"),
        np.dtype(np.float32): ("FP32", "TYPE_FP32"),
    }
)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: its name, numpy dtype and per-row shape.

    Raises
    ------
    ValueError
        For an empty name, a dtype with no Triton spelling here, or a
        dimension that is neither positive nor :data:`ANY_SIZE`.
    """

    name: str
    dtype: np.dtype[Any]
    #: per row: the batch dimension is not part of it
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        # like PyTriton's Tensor, take np.float32 as well as np.dtype(np.float32)
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if not self.name:
            raise ValueError("a tensor needs a name")
        if self.dtype not in _TRITON_TYPES:
            raise ValueError(f"{self.name}: no Triton datatype for numpy {self.dtype}")
        if any(d < 1 and d != ANY_SIZE for d in self.shape):
            raise ValueError(f"{self.name}: bad shape {self.shape}")

    @property
    def triton_dtype(self) -> str:
        """tritonclient's datatype string (``InferInput``): ``BYTES``, ``FP32``."""
        return _TRITON_TYPES[self.dtype][0]

    @property
    def config_dtype(self) -> str:
        """``config.pbtxt``'s ``data_type``: ``TYPE_STRING``, ``TYPE_FP32``."""
        return _TRITON_TYPES[self.dtype][1]

    def batch_shape(self, rows: int) -> list[int]:
        """The shape of a request or response of ``rows`` rows (a list, as tritonclient takes)."""
        return [rows, *self.shape]


@dataclass(frozen=True)
class ModelIO:
    """All tensors of one model, in the order they are declared and requested.

    An encoder has one input and two outputs, so :attr:`input`,
    :attr:`embedding` and :attr:`error` name them rather than index them.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        names = [t.name for t in (*self.inputs, *self.outputs)]
        if len(set(names)) != len(names):
            raise ValueError(f"tensor names must be unique: {names}")

    @property
    def input(self) -> TensorSpec:
        """The only input: the batch of byte strings."""
        (only,) = self.inputs
        return only

    def output(self, name: str) -> TensorSpec:
        """The output called ``name``; ``KeyError`` when there is none."""
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor
        raise KeyError(name)

    @property
    def embedding(self) -> TensorSpec:
        """FP32 ``[dim]`` per row; a row whose error is not empty is zeros."""
        return self.output(EMBEDDING_OUTPUT)

    @property
    def error(self) -> TensorSpec:
        """BYTES ``[1]`` per row: UTF-8 reason, empty for a good row."""
        return self.output(ERROR_OUTPUT)

    def sized(self, dim: int) -> ModelIO:
        """This contract with the embedding dimension of one served version."""
        if dim < 1:
            raise ValueError(f"embedding dim must be positive, got {dim}")
        outputs = tuple(
            replace(t, shape=(dim,)) if t.name == EMBEDDING_OUTPUT else t for t in self.outputs
        )
        return replace(self, outputs=outputs)


_BYTES = np.dtype(np.object_)
_FP32 = np.dtype(np.float32)


def _encoder(input_tensor: str) -> ModelIO:
    return ModelIO(
        inputs=(TensorSpec(input_tensor, _BYTES, (1,)),),
        outputs=(
            TensorSpec(EMBEDDING_OUTPUT, _FP32, (ANY_SIZE,)),
            TensorSpec(ERROR_OUTPUT, _BYTES, (1,)),
        ),
    )


IMAGE_ENCODER_IO = _encoder("image")
TEXT_ENCODER_IO = _encoder("text")

#: what a client knows of each model, by model name (embedding dim unsized)
ENCODER_IO: Mapping[str, ModelIO] = MappingProxyType(
    {IMAGE_ENCODER: IMAGE_ENCODER_IO, TEXT_ENCODER: TEXT_ENCODER_IO}
)
_BY_MODALITY: Mapping[Modality, ModelIO] = MappingProxyType(
    {"image": IMAGE_ENCODER_IO, "text": TEXT_ENCODER_IO}
)


def encoder_io(modality: Modality, dim: int) -> ModelIO:
    """The contract a server declares for an encoder of ``modality`` and ``dim``.

    Keyed by modality, not model name, because the servers bind whatever
    encoder they are given under its own name; the tensors depend only on
    what it reads and how wide its embedding is.
    """
    return _BY_MODALITY[modality].sized(dim)


def input_name(modality: Modality) -> str:
    """Name of the BYTES ``[batch, 1]`` input tensor: ``image`` or ``text``."""
    return _BY_MODALITY[modality].input.name


#: the image describer: the image encoder's embedding plus what is in each
#: image, from the same forward pass (issue 22). A model of its own, so the
#: embedding path (``image_encoder``) stays exactly as fast as it was.
IMAGE_DESCRIBER = "image_describer"
#: BYTES ``[batch, 1]``: one JSON description per row (``encoder_server.description``),
#: empty for a failed row
DESCRIPTION_OUTPUT = "description"

IMAGE_DESCRIBER_IO = ModelIO(
    inputs=IMAGE_ENCODER_IO.inputs,
    outputs=(*IMAGE_ENCODER_IO.outputs, TensorSpec(DESCRIPTION_OUTPUT, _BYTES, (1,))),
)


def describer_io(dim: int) -> ModelIO:
    """The describer's contract for an image encoder of embedding width ``dim``."""
    return IMAGE_DESCRIBER_IO.sized(dim)
