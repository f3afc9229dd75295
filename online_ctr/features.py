"""Features of an impression for the online CTR model (sparse, River-style dicts).

What goes in, and why:

* one-hot segment fields (``seg.device=mobile``, ``seg.taste=t1``, any extra
  key) — who is looking;
* position as a one-hot bucket plus two numeric shapes (``pos_decay`` =
  1/(1+pos), ``pos_log`` = log(1+pos)): position bias is large and smooth, so
  a numeric term learns it from few clicks and the buckets fix its shape;
* hour of day (UTC) one-hot and on the circle (``hour_sin``/``hour_cos``),
  the circle also per device, since devices peak at different hours;
* item and variant ids hashed with blake2b into :data:`ID_BUCKETS` buckets:
  the feature space stays bounded whatever the catalogue, and the same id
  gets the same feature in every process (Python's ``hash()`` is salted);
* crosses of segment fields with the item and the variant: the model is
  linear, so "this audience likes this variant" must be a feature of its own;
* title tokens and their crosses with the segment: what a title says
  (colour, category, style) generalises across items, which ids cannot;
* an embedding slot: image and title embeddings (from the encoder service)
  become dense features ``img_0..``/``txt_0..`` and crosses of their first
  dimensions with the segment fields (who likes which look). Nothing fills
  it until the encoders are deployed; the simulator's hidden image
  attributes are never used here.

Which segment fields are crossed with what is a :class:`FeatureSpec`; the
learner keeps its spec next to its model, since weights mean nothing under
other features. Every feature is ``name -> float``; absent means 0, so new
or missing features need no schema change.

>>> from schemas.events import Impression
>>> imp = Impression(event_id="e1", impression_id="i1", ts=1_767_268_800.0,
...     item_id="sku-1", image_id="img-1", variant="v2", title="Red Shoe",
...     position=0, segment={"device": "mobile", "geo": "DE", "taste": "t1"})
>>> x = featurize(imp)
>>> x["seg.device=mobile"], x["pos=0"], x["hour=12"], x["seg.taste=t1&w=red"]
(1.0, 1.0, 1.0, 1.0)
>>> with_image = featurize(imp, image_embedding=[0.5, -0.25])
>>> with_image["img_1"], with_image["img_0&seg.taste=t1"]
(-0.25, 0.5)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.events import Impression

__all__ = [
    "DEFAULT_SPEC",
    "EMBEDDING_CROSSES",
    "ID_BUCKETS",
    "POSITION_BUCKETS",
    "VARIANT_ID",
    "FeatureSpec",
    "bucket",
    "featurize",
    "position_bucket",
    "title_tokens",
]

#: size of the hashed id space (2**18: collisions stay rare for ~10^5 ids)
ID_BUCKETS = 1 << 18
#: lower edges of the position buckets (roughly Fibonacci: bias flattens out)
POSITION_BUCKETS = (0, 1, 2, 3, 5, 8, 13)
#: at most this many distinct title tokens per impression, of at most 32 chars
MAX_TOKENS = 16
MAX_TOKEN_CHARS = 32
#: how many leading embedding dimensions are crossed with the segment fields
EMBEDDING_CROSSES = 8
_TOKEN = re.compile(r"[a-z0-9]+")
#: every variant-id feature, crossed or not, has this in its name (and no other)
VARIANT_ID = "var="


@dataclass(frozen=True)
class FeatureSpec:
    """Which segment fields are crossed with what.

    A cross costs one weight per (segment value, item or variant or token),
    each learned from its own few clicks, so crossing a field that carries no
    preference only adds noise. The defaults were tuned on the simulator
    (50k impressions, 3 seeds): crossing device and taste with the ids and
    taste with the title tokens closed ~0.002 of normalised entropy more
    than crossing every field. ``None`` crosses every segment field.

    Parameters
    ----------
    id_cross_fields
        Segment fields crossed with the item and the variant.
    token_cross_fields
        Segment fields crossed with the title tokens.
    embedding_cross_fields
        Segment fields crossed with the leading image embedding dimensions.
    embedding_crosses
        How many leading embedding dimensions are crossed.
    title_embedding_cross_fields
        Segment fields crossed with the leading title embedding dimensions.

    The embedding crosses were measured with the served encoders
    (``bench/bench_embeddings.py``, PCA heads of 16 image and 8 title
    dimensions, 50k impressions, seeds 7 and 8): crossing the image with the
    taste group only gave the best normalised entropy and lift; crossing the
    title embedding at all added noise (the title tokens are crossed with
    taste already), so title embeddings enter uncrossed.
    """

    id_cross_fields: tuple[str, ...] | None = ("device", "taste")
    token_cross_fields: tuple[str, ...] | None = ("taste",)
    embedding_cross_fields: tuple[str, ...] | None = ("taste",)
    embedding_crosses: int = EMBEDDING_CROSSES
    title_embedding_cross_fields: tuple[str, ...] | None = ()

    @staticmethod
    def crosses(fields: tuple[str, ...] | None, name: str) -> bool:
        """Whether segment field ``name`` is among ``fields`` (``None``: all are)."""
        return fields is None or name in fields


DEFAULT_SPEC = FeatureSpec()


def bucket(value: str, buckets: int = ID_BUCKETS) -> int:
    """Stable hash of an id into ``buckets`` buckets (same in every process).

    >>> bucket("sku-1") == bucket("sku-1"), 0 <= bucket("sku-1") < ID_BUCKETS
    (True, True)
    """
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def position_bucket(position: int) -> int:
    """The lower edge of the bucket ``position`` falls in.

    >>> [position_bucket(p) for p in (0, 4, 6, 100)]
    [0, 3, 5, 13]
    """
    return max(b for b in POSITION_BUCKETS if b <= position)


def title_tokens(title: str) -> list[str]:
    """Distinct lower-case alphanumeric tokens of 2+ chars, sorted, capped.

    >>> title_tokens("Bold RED shoe, red!")
    ['bold', 'red', 'shoe']
    """
    tokens = {t[:MAX_TOKEN_CHARS] for t in _TOKEN.findall(title.lower()) if len(t) > 1}
    return sorted(tokens)[:MAX_TOKENS]


def _context(impression: Impression, device: str | None) -> dict[str, float]:
    """Position and hour of day; ``device`` is the device's one-hot name, if any."""
    position = impression.position
    hour = datetime.fromtimestamp(impression.ts, tz=UTC).hour
    angle = 2 * math.pi * hour / 24
    x = {
        f"pos={position_bucket(position)}": 1.0,
        "pos_decay": 1.0 / (1.0 + position),
        "pos_log": math.log1p(position),
        f"hour={hour}": 1.0,
        "hour_sin": math.sin(angle),
        "hour_cos": math.cos(angle),
    }
    if device is not None:
        x[f"{device}&hour_sin"] = x["hour_sin"]
        x[f"{device}&hour_cos"] = x["hour_cos"]
    return x


def _embedding(
    prefix: str, values: Sequence[float], crossed: list[str], crosses: int
) -> dict[str, float]:
    x: dict[str, float] = {}
    for k, value in enumerate(values):
        v = float(value)
        if not math.isfinite(v):
            continue  # a broken embedding must not poison the weights
        x[f"{prefix}_{k}"] = v
        if k < crosses:
            for seg in crossed:
                x[f"{prefix}_{k}&{seg}"] = v
    return x


def featurize(
    impression: Impression,
    image_embedding: Sequence[float] | None = None,
    title_embedding: Sequence[float] | None = None,
    spec: FeatureSpec = DEFAULT_SPEC,
) -> dict[str, float]:
    """The sparse feature dict of one impression (see the module docstring).

    Parameters
    ----------
    impression
        The impression (a :class:`~schemas.events.LabelledImpression` works too).
    image_embedding, title_embedding
        Optional encoder outputs; each dimension becomes a numeric feature
        (non-finite values are dropped), and the leading ones are crossed
        with the segment as ``spec`` says.
    spec
        Which crosses to build.
    """
    fields = sorted(impression.segment.as_dict().items())
    segment = {name: f"seg.{name}={value}" for name, value in fields}
    item = f"item={bucket(impression.item_id)}"
    variant = f"{VARIANT_ID}{bucket(impression.item_id + '/' + impression.variant)}"
    words = [f"w={t}" for t in title_tokens(impression.title)]
    x: dict[str, float] = {item: 1.0, variant: 1.0}
    x.update(dict.fromkeys(words, 1.0))
    for name, seg in segment.items():
        x[seg] = 1.0
        if spec.crosses(spec.id_cross_fields, name):
            x[f"{seg}&{item}"] = 1.0
            x[f"{seg}&{variant}"] = 1.0
        if spec.crosses(spec.token_cross_fields, name):
            for word in words:
                x[f"{seg}&{word}"] = 1.0
    x.update(_context(impression, segment.get("device")))
    for prefix, embedding, cross_fields in (
        ("img", image_embedding, spec.embedding_cross_fields),
        ("txt", title_embedding, spec.title_embedding_cross_fields),
    ):
        if embedding is not None:
            crossed = [s for n, s in segment.items() if spec.crosses(cross_fields, n)]
            x.update(_embedding(prefix, embedding, crossed, spec.embedding_crosses))
    return x
