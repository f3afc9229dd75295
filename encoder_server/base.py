"""What every encoder is: the seam between the models, Triton and the client.

An encoder turns a batch of byte strings (encoded images, or UTF-8 titles)
into L2-normalised float32 embeddings of a fixed dimension. Bad items fail
alone: each row has an error string, empty when the row is good, so one
truncated PNG never fails the other 31 images of its batch. Rows that failed
are zeros and must not be used.

The same :class:`Encoder` is called in-process (benchmarks, tests, fitting a
projection) and bound to Triton by :mod:`encoder_server.serving.serve`. Model and
tensor names, dtypes and shapes live in :mod:`schemas.tensors`, the one spec
the servers and the client all render; they are re-exported here because
most of the package (and its tests) imports the model names from this module.
"""

from __future__ import annotations

import re
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
    "model_of",
    "served_name",
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


#: what a repository version adds to its model's name (``image_encoder.v3``)
_SERVED_SUFFIX = re.compile(r"\.v([0-9]+)$")


def served_name(model: str, version: int) -> str:
    """The Triton model name version ``version`` of ``model`` is served under live.

    Why a name and not a Triton version of ``model``: a model loaded into a
    running Triton through the repository API (with its config and files, as
    PyTriton does) replaces that model's whole directory, so loading version
    3 of ``image_encoder`` would unload version 2 while clients use it. Each
    version from an :class:`~encoder_server.serving.repository.EncoderRepository` is
    therefore its own model, ``image_encoder.v3`` (Triton allows dots in
    names), whose one Triton version is 3; the plain ``image_encoder`` keeps
    serving the base head. :func:`model_of` undoes it.

    >>> served_name("image_encoder", 3)
    'image_encoder.v3'
    """
    if version < 1:
        raise ValueError(f"version must be >= 1, got {version}")
    if not model or _SERVED_SUFFIX.search(model):
        raise ValueError(f"not a base model name: {model!r}")
    return f"{model}.v{version}"


def model_of(name: str) -> str:
    """The base model of a served name: ``image_encoder`` for ``image_encoder.v3``.

    A served version speaks its base model's tensor contract, so a client
    that checks model names against :data:`schemas.tensors.ENCODER_IO` looks
    them up by this.

    >>> model_of("image_encoder.v3"), model_of("image_encoder")
    ('image_encoder', 'image_encoder')
    """
    return _SERVED_SUFFIX.sub("", name)
