"""A real Triton server (PyTriton) with cheap deterministic stand-in encoders.

The client tests need Triton's real wire protocol, batching and failure
modes, but not real models: this binds ``image_encoder`` and ``text_encoder``
with the exact tensor names of :mod:`encoder_server.base` to a numpy function
the tests can recompute (:func:`fake_embed`). An item starting with ``bad``
fails alone with an error row, as a truncated PNG would.

Run as ``python -m tests.integration.fake_encoder_server --grpc-port G
--http-port H --metrics-port M [--version V]``; it serves until SIGTERM.
The Python-backend stub needs ``LD_LIBRARY_PATH`` to include this
interpreter's ``LIBDIR`` (see DESIGN.md); the tests set it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from encoder_server.base import (
    EMBEDDING_OUTPUT,
    ERROR_OUTPUT,
    IMAGE_ENCODER,
    TEXT_ENCODER,
    input_name,
)

__all__ = ["DIM", "fake_embed", "main"]

log = logging.getLogger(__name__)

DIM = 8


def fake_embed(item: bytes, version: int) -> tuple[npt.NDArray[np.float32], str]:
    """The stand-in encoder: a unit vector from a hash of the item, or an error."""
    if item.startswith(b"bad"):
        return np.zeros(DIM, dtype=np.float32), f"cannot decode item {item[:16]!r}"
    digest = hashlib.blake2b(item + version.to_bytes(4, "little"), digest_size=DIM).digest()
    vec = np.frombuffer(digest, dtype=np.uint8).astype(np.float32) - 127.5
    return (vec / np.linalg.norm(vec)).astype(np.float32), ""


def _infer_fn(name: str, version: int) -> Any:
    from pytriton.decorators import batch

    @batch  # type: ignore[untyped-decorator]
    def infer(**inputs: npt.NDArray[np.object_]) -> dict[str, npt.NDArray[Any]]:
        items: Sequence[bytes] = [bytes(row[0]) for row in inputs[name]]
        results = [fake_embed(item, version) for item in items]
        return {
            EMBEDDING_OUTPUT: np.stack([v for v, _ in results]).astype(np.float32),
            ERROR_OUTPUT: np.array([[e.encode()] for _, e in results], dtype=np.object_),
        }

    return infer


def main(argv: Sequence[str] | None = None) -> None:
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--version", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    config = TritonConfig(
        grpc_port=args.grpc_port, http_port=args.http_port, metrics_port=args.metrics_port
    )
    with Triton(config=config) as triton:
        for model, modality in ((IMAGE_ENCODER, "image"), (TEXT_ENCODER, "text")):
            name = input_name(modality)  # type: ignore[arg-type]
            triton.bind(
                model_name=model,
                infer_func=_infer_fn(name, args.version),
                inputs=[Tensor(name=name, dtype=bytes, shape=(1,))],
                outputs=[
                    Tensor(name=EMBEDDING_OUTPUT, dtype=np.float32, shape=(DIM,)),
                    Tensor(name=ERROR_OUTPUT, dtype=bytes, shape=(1,)),
                ],
                model_version=args.version,
                config=ModelConfig(
                    max_batch_size=64,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=500),
                ),
                strict=True,
            )
        signal.signal(signal.SIGTERM, lambda *_: triton.stop())
        log.info("fake encoders serving on gRPC port %d", args.grpc_port)
        triton.serve()


if __name__ == "__main__":
    main()
