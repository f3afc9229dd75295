"""Features of an impression for the online CTR model (sparse, River-style dicts).

What goes in, and why:

* one-hot segment fields (``seg.device=mobile``...), position (one-hot bucket
  plus a numeric decay), hour of day (UTC) — the context;
* hashed item and variant ids — per-item and per-visual-variant CTR;
* crosses of every segment field with the item and the variant — the model is
  linear, so "this audience likes this variant" must be a feature of its own;
* title tokens and their crosses with the segment: what a title says (colour,
  category, style) generalises across items, which ids cannot;
* an embedding slot: image and title embeddings (from the encoder service)
  become dense features ``img.k``/``txt.k`` and crosses with every segment
  field (who likes which look).
  Nothing fills it until the encoders are deployed; the simulator's hidden
  image attributes are never used here.

Ids are hashed with blake2b into a fixed space so the feature count is bounded
whatever the catalogue size and stable across processes (unlike ``hash()``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.events import Impression

ID_BUCKETS = 1 << 18
POSITION_BUCKETS = (0, 1, 2, 3, 5, 8, 13)
MAX_TOKENS = 16
_TOKEN = re.compile(r"[a-z0-9]+")


def bucket(value: str, buckets: int = ID_BUCKETS) -> int:
    """Stable hash of an id into ``buckets`` buckets."""
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def position_bucket(position: int) -> int:
    return max(b for b in POSITION_BUCKETS if b <= position)


def featurize(
    impression: Impression,
    image_embedding: Sequence[float] | None = None,
    title_embedding: Sequence[float] | None = None,
    embedding_crosses: int = 8,
) -> dict[str, float]:
    """The feature dict of one impression (see the module docstring)."""
    x: dict[str, float] = {}
    segment = impression.segment.as_dict()
    item = f"item={bucket(impression.item_id)}"
    variant = f"var={bucket(impression.item_id + '/' + impression.variant)}"
    x[item] = 1.0
    x[variant] = 1.0
    for name, value in segment.items():
        seg = f"seg.{name}={value}"
        x[seg] = 1.0
        x[f"{seg}&{item}"] = 1.0
        x[f"{seg}&{variant}"] = 1.0
    tokens = {t for t in _TOKEN.findall(impression.title.lower()) if len(t) > 1}
    for token in sorted(tokens)[:MAX_TOKENS]:
        word = f"w={token}"
        x[word] = 1.0
        for name, value in segment.items():
            x[f"seg.{name}={value}&{word}"] = 1.0
    x[f"pos={position_bucket(impression.position)}"] = 1.0
    x["pos_decay"] = 1.0 / (1.0 + impression.position)
    hour = datetime.fromtimestamp(impression.ts, tz=UTC).hour
    x[f"hour={hour}"] = 1.0
    x["hour_sin"] = math.sin(2 * math.pi * hour / 24)
    x["hour_cos"] = math.cos(2 * math.pi * hour / 24)
    for prefix, emb in (("img", image_embedding), ("txt", title_embedding)):
        if emb is None:
            continue
        for k, v in enumerate(emb):
            x[f"{prefix}.{k}"] = float(v)
            if k < embedding_crosses:
                for name, value in segment.items():
                    x[f"{prefix}.{k}&{name}={value}"] = float(v)
    return x
