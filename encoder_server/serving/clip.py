"""Optional CLIP encoders: images and titles in one joint embedding space.

EfficientNet and MiniLM embed images and titles in unrelated spaces; a CLIP
checkpoint puts both in the space it was trained to align, so "red shoe" and
a picture of a red shoe are near each other and the learner can share what it
learns across modalities. CLIP is optional because no checkpoint ships in a
PyPI package: it is loaded from a local directory (a ``save_pretrained``
output or a Hugging Face cache snapshot), never downloaded
(``local_files_only=True``).

Both encoders share one ``CLIPModel``; their embeddings are the outputs of
``get_image_features`` / ``get_text_features`` (the projected pooled
outputs), L2-normalised, then an optional
:class:`~encoder_server.projection.Projection` (identity by default). By
convention a checkpoint with the identity head is version 1; a fitted head
carries its own version.

Images are checked and decoded by :func:`~encoder_server.images.decode_image`
like everywhere else, then preprocessed as CLIP was trained: the shorter side
resized (bicubic) to the model's image size, a centre crop, and the
checkpoint's ``image_mean``/``image_std`` from ``preprocessor_config.json``
(OpenAI's values when there is none). This is done here rather than by
transformers' ``CLIPImageProcessor``, whose fast backend needs torchvision,
which this project does not install.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from transformers import AutoTokenizer, CLIPModel

from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER, Encoded, Modality
from encoder_server.chunked import run_chunked
from encoder_server.description import CLIP_ZERO_SHOT, Description
from encoder_server.images import decode_image
from encoder_server.projection import Projection, l2_normalise
from encoder_server.serving.attributes import measure_image
from encoder_server.serving.tags import DEFAULT_TOP_K, top_tags, zero_shot_probs
from encoder_server.serving.text_encoder import decode_text

__all__ = ["ClipImageEncoder", "ClipTextEncoder", "load_clip_encoders"]

log = logging.getLogger(__name__)

#: OpenAI CLIP's normalisation, used when the checkpoint has no preprocessor config
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class _Clip:
    """The shared model, tokenizer and image preprocessing of one checkpoint."""

    def __init__(self, path: Path) -> None:
        started = time.perf_counter()
        self.model = CLIPModel.from_pretrained(str(path), local_files_only=True)
        torch.nn.Module.eval(self.model)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        config: Any = self.model.config  # transformers types sub-configs as optional dicts
        self.dim = int(config.projection_dim)
        self.image_size = int(config.vision_config.image_size)
        self.max_tokens = int(config.text_config.max_position_embeddings)
        mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        config_file = path / "preprocessor_config.json"
        if config_file.exists():
            config = json.loads(config_file.read_text())
            mean = tuple(config.get("image_mean", mean))
            std = tuple(config.get("image_std", std))
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        log.info(
            "CLIP loaded from %s: %dpx, %d-d joint space (%.1fs)",
            path,
            self.image_size,
            self.dim,
            time.perf_counter() - started,
        )

    def preprocess(self, data: bytes) -> npt.NDArray[np.float32]:
        """Decode, resize the shorter side, centre-crop, normalise: ``[3, s, s]``."""
        return self.prepare(decode_image(data))

    def prepare(self, img: Image.Image) -> npt.NDArray[np.float32]:
        """Resize a decoded picture's shorter side, centre-crop, normalise: ``[3, s, s]``."""
        size = self.image_size
        width, height = img.size
        scale = size / min(width, height)
        resized = (max(size, round(width * scale)), max(size, round(height * scale)))
        img = img.resize(resized, Image.Resampling.BICUBIC)
        left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
        img = img.crop((left, top, left + size, top + size))
        pixels = np.asarray(img, dtype=np.float32) / 255.0
        return ((pixels - self.mean) / self.std).transpose(2, 0, 1).astype(np.float32)

    def image_features(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=torch.from_numpy(batch))
        return l2_normalise(out.pooler_output.float().numpy())

    def text_features(self, texts: list[str]) -> npt.NDArray[np.float32]:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with torch.inference_mode():
            out = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
        return l2_normalise(out.pooler_output.float().numpy())


def _check_projection(projection: Projection | None, dim: int) -> Projection:
    projection = projection or Projection.identity(dim, version=1)
    if projection.d_in != dim or projection.features != "last":
        raise ValueError(
            f"projection expects {projection.d_in} {projection.features!r} features, "
            f"CLIP gives {dim} joint-space ones"
        )
    return projection


class ClipImageEncoder:
    """CLIP image tower -> joint-space embedding (an :class:`~encoder_server.base.Encoder`)."""

    def __init__(self, clip: _Clip, projection: Projection | None = None, max_batch: int = 32):
        self._clip = clip
        self.projection = _check_projection(projection, clip.dim)
        self.name: str = IMAGE_ENCODER
        self.modality: Modality = "image"
        self.version: int = self.projection.version
        self.dim: int = self.projection.d_out
        self.max_batch = max(1, max_batch)

    def encode(self, items: Sequence[bytes]) -> Encoded:
        """Embed a batch of encoded images; bad items get an error and a zero row."""
        features, errors = run_chunked(
            items,
            self._clip.preprocess,
            lambda batch: self._clip.image_features(np.stack(batch)),
            self._clip.dim,
            self.max_batch,
        )
        return Encoded(embeddings=self.projection.apply(features), errors=errors)

    def describe(
        self, items: Sequence[bytes], labels: Sequence[str], top_k: int = DEFAULT_TOP_K
    ) -> tuple[Encoded, list[Description | None]]:
        """Embed a batch and tag it zero-shot with ``labels``, in one forward pass.

        Each label is scored as the prompt "a photo of a {label}"
        (:func:`~encoder_server.serving.tags.zero_shot_probs`); the prompts'
        text features are computed once per label list. Attributes as for
        every image encoder (:func:`~encoder_server.serving.attributes.measure_image`).
        """
        if not labels:
            raise ValueError("zero-shot tagging needs at least one label")
        measured: list[dict[str, float | str]] = []

        def parse(data: bytes) -> npt.NDArray[np.float32]:
            img = decode_image(data)
            measured.append(measure_image(img))
            return self._clip.prepare(img)

        features, errors = run_chunked(
            items,
            parse,
            lambda batch: self._clip.image_features(np.stack(batch)),
            self._clip.dim,
            self.max_batch,
        )
        probs = zero_shot_probs(features, self._prompts(tuple(labels)))
        found = iter(measured)
        descriptions = [
            None
            if error
            else Description(top_tags(row, labels, top_k), next(found), CLIP_ZERO_SHOT)
            for row, error in zip(probs, errors, strict=True)
        ]
        return Encoded(self.projection.apply(features), errors), descriptions

    def _prompts(self, labels: tuple[str, ...]) -> npt.NDArray[np.float32]:
        cached = getattr(self, "_prompt_cache", None)
        if cached is None or cached[0] != labels:
            prompts = [f"a photo of a {label}" for label in labels]
            cached = (labels, self._clip.text_features(prompts))
            self._prompt_cache = cached
        return cached[1]


class ClipTextEncoder:
    """CLIP text tower -> joint-space embedding (an :class:`~encoder_server.base.Encoder`)."""

    def __init__(self, clip: _Clip, projection: Projection | None = None, max_batch: int = 64):
        self._clip = clip
        self.projection = _check_projection(projection, clip.dim)
        self.name: str = TEXT_ENCODER
        self.modality: Modality = "text"
        self.version: int = self.projection.version
        self.dim: int = self.projection.d_out
        self.max_batch = max(1, max_batch)

    def encode(self, items: Sequence[bytes]) -> Encoded:
        """Embed a batch of UTF-8 titles; bad items get an error and a zero row."""
        features, errors = run_chunked(
            items, decode_text, self._clip.text_features, self._clip.dim, self.max_batch
        )
        return Encoded(embeddings=self.projection.apply(features), errors=errors)


def load_clip_encoders(
    path: Path | str,
    image_projection: Projection | None = None,
    text_projection: Projection | None = None,
) -> tuple[ClipImageEncoder, ClipTextEncoder]:
    """Image and text encoders over one local CLIP checkpoint.

    Parameters
    ----------
    path:
        Directory holding a ``CLIPModel`` and its tokenizer (``save_pretrained``
        output or a Hugging Face snapshot); nothing is downloaded.
    image_projection, text_projection:
        Optional heads on the joint space; identity (version 1) by default.
        Keep them equal (or both identity) to keep the two modalities
        comparable.
    """
    clip = _Clip(Path(path))
    return ClipImageEncoder(clip, image_projection), ClipTextEncoder(clip, text_projection)
