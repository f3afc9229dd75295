"""Which encoders a process serves: the one place that picks backbones and heads.

The server, the exporter and the benchmarks all call :func:`load_encoders`,
so they cannot disagree about which model is version N. Without a CLIP path
the defaults are the packaged EfficientNet-Lite0 and all-MiniLM-L6-v2, each
with its fixed random version-1 head unless a fitted projection file is
given; with one, CLIP serves both modalities in its joint space.
"""

from __future__ import annotations

import logging
from pathlib import Path

from encoder_server.base import Encoder
from encoder_server.projection import Projection

__all__ = ["load_encoders"]

log = logging.getLogger(__name__)


def load_encoders(
    clip_path: str | None = None,
    image_projection: Path | None = None,
    text_projection: Path | None = None,
    input_size: int = 224,
) -> list[Encoder]:
    """Load ``[image encoder, text encoder]``.

    Parameters
    ----------
    clip_path:
        Local CLIP checkpoint directory; when set, CLIP encodes both images
        and titles (``input_size`` is then the checkpoint's own).
    image_projection, text_projection:
        ``.npz`` heads written by :meth:`Projection.save`; their versions are
        the encoders' versions. Default: the fixed version-1 heads.
    input_size:
        EfficientNet input side in pixels (smaller is faster on CPU).
    """
    image_head = Projection.load(image_projection) if image_projection else None
    text_head = Projection.load(text_projection) if text_projection else None
    if clip_path:
        from encoder_server.clip import load_clip_encoders

        image, text = load_clip_encoders(clip_path, image_head, text_head)
        return [image, text]
    from encoder_server.image_encoder import ImageEncoder
    from encoder_server.text_encoder import TextEncoder

    return [ImageEncoder(image_head, input_size=input_size), TextEncoder(text_head)]
