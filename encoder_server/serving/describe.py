"""The image describer on Triton: embedding, tags and attributes in one request.

An image encoder that can say what is in an image (:class:`Describing`:
EfficientNet-Lite0 with its ImageNet head, or CLIP zero-shot over a label
list) is served a second time as model :data:`~schemas.tensors.IMAGE_DESCRIBER`,
with the same version, on the same in-process network. Its request returns
the embedding, the per-row error and a JSON :class:`~encoder_server.description.Description`
(:func:`schemas.tensors.describer_io`), all from one forward pass.

Why a model of its own rather than a third output of ``image_encoder``:
Triton runs a model's whole inference function whatever outputs a client
asks for, and the attributes cost a few milliseconds of numpy per image;
the embedding path, which runs on every cache miss of the stream, keeps
exactly its speed, and descriptions are asked for once per image and
version and then read from the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from encoder_server.base import Encoded, Encoder
from encoder_server.description import Description
from encoder_server.serving.tags import DEFAULT_TOP_K
from schemas.tensors import IMAGE_DESCRIBER, describer_io

__all__ = ["Describing", "bind_describer", "describe_batch", "describe_function", "describes"]

log = logging.getLogger(__name__)


@runtime_checkable
class Describing(Protocol):
    """An image encoder that also says what is in each image (see ``ImageEncoder.describe``)."""

    name: str
    version: int
    dim: int

    def describe(
        self, items: Sequence[bytes], top_k: int = DEFAULT_TOP_K
    ) -> tuple[Encoded, list[Description | None]]: ...


def describes(encoder: Encoder) -> bool:
    """Whether ``encoder`` can be served as the describer (an image encoder with ``describe``)."""
    return encoder.modality == "image" and callable(getattr(encoder, "describe", None))


def describe_batch(
    encoder: Encoder, items: Sequence[bytes], labels: Sequence[str] = (), top_k: int = DEFAULT_TOP_K
) -> tuple[Encoded, list[str]]:
    """Embeddings, errors and one JSON description per item ("" for a failed one).

    ``labels`` are the zero-shot labels of a CLIP encoder; other encoders
    ignore them and tag with their own classifier.
    """
    from encoder_server.serving.clip import ClipImageEncoder

    fn: Any = getattr(encoder, "describe")  # noqa: B009 - checked by describes()
    if isinstance(encoder, ClipImageEncoder):
        encoded, found = encoder.describe(items, labels, top_k)
    else:
        encoded, found = fn(items, top_k)
    return encoded, ["" if d is None else d.to_json() for d in found]


def describe_function(
    encoder: Encoder, labels: Sequence[str] = (), top_k: int = DEFAULT_TOP_K
) -> Any:
    """PyTriton's batched inference callable for the describer of ``encoder``."""
    from pytriton.decorators import batch

    io = describer_io(encoder.dim)
    description = io.output("description")

    @batch  # type: ignore[untyped-decorator]
    def infer(**inputs: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        items = [bytes(row[0]) for row in inputs[io.input.name]]
        encoded, texts = describe_batch(encoder, items, labels, top_k)
        shape = io.error.batch_shape(len(items))
        return {
            io.embedding.name: np.ascontiguousarray(encoded.embeddings, dtype=io.embedding.dtype),
            io.error.name: np.array(
                [[e.encode("utf-8")] for e in encoded.errors], dtype=io.error.dtype
            ).reshape(shape),
            description.name: np.array(
                [[t.encode("utf-8")] for t in texts], dtype=description.dtype
            ).reshape(shape),
        }

    return infer


def bind_describer(
    triton: Any,
    encoder: Encoder,
    labels: Sequence[str] = (),
    top_k: int = DEFAULT_TOP_K,
    max_batch_size: int = 64,
    queue_delay_us: int = 2000,
    parameters: Mapping[str, str] | None = None,
) -> None:
    """Bind ``encoder``'s describer to a ``pytriton.triton.Triton`` as :data:`IMAGE_DESCRIBER`.

    Same version as the encoder, and ``parameters`` (give it the encoder's
    ``serve.encoder_parameters``: the same head fingerprint) added to its
    model config.
    """
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    io = describer_io(encoder.dim)
    triton.bind(
        model_name=IMAGE_DESCRIBER,
        model_version=encoder.version,
        infer_func=describe_function(encoder, labels, top_k),
        inputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in io.inputs],
        outputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in io.outputs],
        config=ModelConfig(
            max_batch_size=max_batch_size,
            batcher=DynamicBatcher(max_queue_delay_microseconds=queue_delay_us),
        ),
        strict=True,
    )
    try:
        for model in triton._model_manager.models:
            if model.model_name == IMAGE_DESCRIBER:
                config = model._get_triton_model_config()
                config.backend_parameters.update(parameters or {})
    except AttributeError as exc:  # a PyTriton release with other internals
        log.warning("cannot add parameters to %s's model config: %s", IMAGE_DESCRIBER, exc)
    log.info("%s v%d bound beside %s", IMAGE_DESCRIBER, encoder.version, encoder.name)
