"""What every encoder is: the seam between the models, Triton and the client.

An encoder turns a batch of byte strings (encoded images, or UTF-8 titles)
into L2-normalised float32 embeddings of a fixed dimension. Bad items fail
alone: each row has an error string, empty when the row is good, so one
truncated PNG never fails the other 31 images of its batch. Rows that failed
are zeros and must not be used.

The same :class:`Encoder` is called in-process (benchmarks, tests, fitting a
projection) and bound to Triton by :mod:`encoder_server.serve`. Model and
tensor names, dtypes and shapes live in :mod:`schemas.tensors`, the one spec
the servers and the client all render; they are re-exported here because
most of the package (and its tests) imports the model names from this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from schemas.tensors import (
    EMBEDDING_OUTPUT,
    ERROR_OUTPUT,
    IMAGE_ENCODER,
    TEXT_ENCODER,
    Modality,
    input_name,
)

__all__ = [
    "EMBEDDING_OUTPUT",
    "ERROR_OUTPUT",
    "IMAGE_ENCODER",
    "TEXT_ENCODER",
    "Encoded",
    "Encoder",
    "Modality",
    "input_name",
]


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
