"""What every encoder is: the seam between the models, Triton and the client.

An encoder turns a batch of byte strings (encoded images, or UTF-8 titles)
into L2-normalised float32 embeddings of a fixed dimension. Bad items fail
alone: each row has an error string, empty when the row is good, so one
truncated PNG never fails the other 31 images of its batch. Rows that failed
are zeros and must not be used.

The same :class:`Encoder` is called in-process (benchmarks, tests, fitting a
projection) and bound to Triton by :mod:`encoder_server.serve`, whose tensors
are named here so the server and the client cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMBEDDING_OUTPUT",
    "ERROR_OUTPUT",
    "IMAGE_ENCODER",
    "TEXT_ENCODER",
    "Encoded",
    "Encoder",
    "input_name",
]

#: Triton model names; versions are Triton model versions (integers).
IMAGE_ENCODER = "image_encoder"
TEXT_ENCODER = "text_encoder"
#: output tensors of both models: FP32 [batch, dim] and BYTES [batch, 1]
EMBEDDING_OUTPUT = "embedding"
ERROR_OUTPUT = "error"

Modality = Literal["image", "text"]


def input_name(modality: Modality) -> str:
    """Name of the BYTES [batch, 1] input tensor: ``image`` or ``text``."""
    return modality


@dataclass(frozen=True)
class Encoded:
    """One batch's result: ``embeddings[i]`` is good exactly when ``errors[i] == ""``."""

    embeddings: npt.NDArray[np.float32]
    errors: list[str]

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.errors):
            raise ValueError("embeddings must be [n, dim] with one error string per row")


@runtime_checkable
class Encoder(Protocol):
    """An image or text encoder with a fixed output dimension and a version."""

    #: Triton model name (:data:`IMAGE_ENCODER` or :data:`TEXT_ENCODER`)
    name: str
    modality: Modality
    #: Triton model version; a new projection head or backbone is a new version
    version: int
    dim: int

    def encode(self, items: Sequence[bytes]) -> Encoded:
        """Embed a batch; never raises for a bad item, only for a broken model."""
        ...
