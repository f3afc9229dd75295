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

Content crosses ("auto"): producers name their own segment fields (the
schema requires only ``device`` and ``geo``), so which fields are crossed
with content (item and variant ids, title tokens, image embedding) cannot be
a list of names the code knows. By default (:data:`AUTO`,
``BERTCTR_CONTENT_CROSS_FIELDS=auto``) every field a producer adds beyond
the required ones is crossed while it has taken between 2 and
``BERTCTR_CONTENT_CROSS_MAX_VALUES`` (50) distinct values: a field called
``taste``, ``cohort`` or ``persona`` is crossed alike, a field that never
varies adds nothing, and one with more values (a user id) would give each
value a weight per item learned from a handful of clicks, so once it passes
the bound it is never crossed again. The learner counts the values
(:class:`AudienceFields`, bounded memory) and keeps them in its checkpoint.
``device`` and ``geo`` are context: one-hot, and ``device`` also crossed
with the hour; crossing them with content as well made the model worse on
the simulator (``docs/measurements.md``). An explicit
list (``BERTCTR_CONTENT_CROSS_FIELDS=device=ids,taste``, see
:meth:`FeatureSpec.from_setting`) crosses exactly the fields named.

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
>>> "seg.geo=DE&w=red" in x, "seg.device=mobile&w=red" in x  # context, not crossed
(False, False)
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from schemas.events import Impression, Segment

__all__ = [
    "AUTO",
    "CONTENT_CROSS_MAX_VALUES",
    "CONTEXT_FIELDS",
    "DEFAULT_SPEC",
    "EMBEDDING_CROSSES",
    "ID_BUCKETS",
    "IMAGE_PREFIX",
    "MAX_AUDIENCE_FIELDS",
    "POSITION_BUCKETS",
    "TITLE_PREFIX",
    "VARIANT_ID",
    "AudienceFields",
    "CandidateFields",
    "Crossed",
    "FeatureSpec",
    "SegmentFeatures",
    "bucket",
    "embedding_feature_names",
    "featurize",
    "id_features",
    "is_image_feature",
    "position_bucket",
    "position_features",
    "segment_features",
    "title_tokens",
    "word_features",
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
#: crosses chosen from the stream: the producer's fields of few values (module docstring)
AUTO: Literal["auto"] = "auto"
#: a field with more distinct values than this is never crossed under :data:`AUTO`
CONTENT_CROSS_MAX_VALUES = 50
#: the fields every segment has (``device``, ``geo``): context, never crossed by :data:`AUTO`
CONTEXT_FIELDS = frozenset(n for n, f in Segment.model_fields.items() if f.is_required())
#: at most this many field names are counted; fields first seen later are not crossed
MAX_AUDIENCE_FIELDS = 64

#: segment fields a cross takes: these names, ``None`` every field, or :data:`AUTO`
Crossed = tuple[str, ...] | None | Literal["auto"]


@dataclass(frozen=True)
class FeatureSpec:
    """Which segment fields are crossed with what.

    A cross costs one weight per (segment value, item or variant or token),
    each learned from its own few clicks, so crossing a field that carries no
    preference only adds noise. By default every content cross is
    :data:`AUTO` (the module docstring says which fields that takes), which
    ``bertctr.judge`` found as good as the best list of names on the
    simulator (``docs/measurements.md``).

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
    auto_max_values
        The cardinality bound of :data:`AUTO` (kept here, so a checkpoint
        keeps the rule its weights were learned under).

    Title embeddings enter uncrossed: the title tokens are crossed already,
    and crossing the embedding too only added noise (``docs/measurements.md``).
    """

    id_cross_fields: Crossed = AUTO
    token_cross_fields: Crossed = AUTO
    embedding_cross_fields: Crossed = AUTO
    embedding_crosses: int = EMBEDDING_CROSSES
    title_embedding_cross_fields: Crossed = ()
    auto_max_values: int = CONTENT_CROSS_MAX_VALUES

    @property
    def auto(self) -> bool:
        """Whether any cross is :data:`AUTO` (the learner then counts field values)."""
        return AUTO in (
            self.id_cross_fields,
            self.token_cross_fields,
            self.embedding_cross_fields,
            self.title_embedding_cross_fields,
        )

    @staticmethod
    def crosses(fields: Crossed, name: str, auto_fields: Collection[str] | None = None) -> bool:
        """Whether segment field ``name`` is among ``fields`` (``None``: all are).

        Under :data:`AUTO` the fields are ``auto_fields`` (what the learner's
        :class:`AudienceFields` allows), or without them every field but
        :data:`CONTEXT_FIELDS` (nothing is known of the stream's values).
        """
        if fields == AUTO:
            return name in auto_fields if auto_fields is not None else name not in CONTEXT_FIELDS
        return fields is None or name in fields

    @classmethod
    def from_setting(cls, fields: str, max_values: int = CONTENT_CROSS_MAX_VALUES) -> FeatureSpec:
        """The spec ``BERTCTR_CONTENT_CROSS_FIELDS`` (and ``..._MAX_VALUES``) describe.

        ``auto`` is :data:`AUTO` for every content cross. Otherwise a
        comma-separated list of segment field names, each crossed with the
        ids, the title tokens and the image embedding; ``name=ids`` crosses
        one with the item and variant ids only (``=`` is never part of a
        field name). Empty crosses nothing. Title embeddings stay uncrossed.

        >>> FeatureSpec.from_setting("device=ids,taste") == FeatureSpec(
        ...     ("device", "taste"), ("taste",), ("taste",))
        True
        >>> FeatureSpec.from_setting("auto", 20).auto_max_values
        20

        Raises
        ------
        ValueError
            If a qualifier other than ``=ids`` is given.
        """
        if fields.strip() == AUTO:
            return cls(auto_max_values=max_values)
        ids: list[str] = []
        content: list[str] = []
        for item in filter(None, (part.strip() for part in fields.split(","))):
            name, _, only = (part.strip() for part in item.partition("="))
            if only not in ("", "ids") or not name:
                raise ValueError(f"content cross {item!r}: expected a field name or name=ids")
            ids.append(name)
            if not only:
                content.append(name)
        return cls(
            id_cross_fields=tuple(ids),
            token_cross_fields=tuple(content),
            embedding_cross_fields=tuple(content),
            auto_max_values=max_values,
        )


DEFAULT_SPEC = FeatureSpec()


class AudienceFields:
    """The segment fields :data:`AUTO` crosses, from the values a learner has seen.

    A field beyond :data:`CONTEXT_FIELDS` is crossed once it has shown 2
    distinct values and until it shows more than ``max_values``; then its
    values are forgotten and it is never crossed again, so memory stays at
    most ``max_values`` values for each of :data:`MAX_AUDIENCE_FIELDS` fields
    whatever the stream. Only learning observes: predicting changes nothing.

    >>> fields = AudienceFields(max_values=2)
    >>> for value in ("a", "b"):
    ...     fields.observe({"device": "mobile", "cohort": value, "user": value})
    >>> sorted(fields.crossed)
    ['cohort', 'user']
    >>> fields.observe({"device": "mobile", "cohort": "a", "user": "c"})
    >>> sorted(fields.crossed)
    ['cohort']
    """

    def __init__(self, max_values: int = CONTENT_CROSS_MAX_VALUES) -> None:
        self.max_values = max_values
        #: distinct values seen, of each field still within the bound
        self._values: dict[str, set[str]] = {}
        #: fields that passed the bound (never crossed again)
        self._over: set[str] = set()
        #: the fields crossed now (rebuilt only when a field changes side)
        self.crossed: frozenset[str] = frozenset()

    def observe(self, fields: Mapping[str, str]) -> None:
        """Count the values of one learned example's segment fields."""
        changed = False
        for name, value in fields.items():
            values = self._values.get(name)
            if values is None:
                if name in CONTEXT_FIELDS or name in self._over:
                    continue
                if len(self._values) + len(self._over) >= MAX_AUDIENCE_FIELDS:
                    continue
                values = self._values[name] = set()
            if value in values:
                continue
            values.add(value)
            if len(values) > self.max_values:
                del self._values[name]
                self._over.add(name)
                changed = True
            elif len(values) == 2:
                changed = True
        if changed:
            self.crossed = frozenset(n for n, v in self._values.items() if len(v) >= 2)


@functools.lru_cache(maxsize=1 << 16)
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
    return list(_tokens(title))


@functools.lru_cache(maxsize=1 << 14)
def _tokens(title: str) -> tuple[str, ...]:
    # titles repeat (a catalogue): tokenise each once
    tokens = {t[:MAX_TOKEN_CHARS] for t in _TOKEN.findall(title.lower()) if len(t) > 1}
    return tuple(sorted(tokens)[:MAX_TOKENS])


def _context(impression: Impression, device: str | None) -> dict[str, float]:
    """Position and hour of day; ``device`` is the device's one-hot name, if any."""
    position = impression.position
    x = dict(_position_features(position))
    x.update(_hour_features(int(impression.ts // 3600) % 24))
    if device is not None:
        x[f"{device}&hour_sin"] = x["hour_sin"]
        x[f"{device}&hour_cos"] = x["hour_cos"]
    return x


@functools.lru_cache(maxsize=256)
def _position_features(position: int) -> tuple[tuple[str, float], ...]:
    return (
        (f"pos={position_bucket(position)}", 1.0),
        ("pos_decay", 1.0 / (1.0 + position)),
        ("pos_log", math.log1p(position)),
    )


@functools.lru_cache(maxsize=24)
def _hour_features(hour: int) -> tuple[tuple[str, float], ...]:
    """The hour of day (UTC) one-hot and on the circle."""
    angle = 2 * math.pi * hour / 24
    return ((f"hour={hour}", 1.0), ("hour_sin", math.sin(angle)), ("hour_cos", math.cos(angle)))


#: the image embedding's features (``img_0``, ``img_0&seg.taste=t1``, ...)
#: start with this: a new encoder version changes exactly these
IMAGE_PREFIX = "img_"
#: the title embedding's features (``txt_0``, ...)
TITLE_PREFIX = "txt_"


def is_image_feature(name: object) -> bool:
    """Whether feature ``name`` is (a cross of) an image embedding dimension."""
    return str(name).startswith(IMAGE_PREFIX)


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
    auto_fields: Collection[str] | None = None,
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
    auto_fields
        The fields :data:`AUTO` crosses (a learner's
        :attr:`AudienceFields.crossed`); ``None``: every field but
        :data:`CONTEXT_FIELDS`.
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
        if spec.crosses(spec.id_cross_fields, name, auto_fields):
            x[f"{seg}&{item}"] = 1.0
            x[f"{seg}&{variant}"] = 1.0
        if spec.crosses(spec.token_cross_fields, name, auto_fields):
            for word in words:
                x[f"{seg}&{word}"] = 1.0
    x.update(_context(impression, segment.get("device")))
    for prefix, embedding, cross_fields in (
        (IMAGE_PREFIX[:-1], image_embedding, spec.embedding_cross_fields),
        (TITLE_PREFIX[:-1], title_embedding, spec.title_embedding_cross_fields),
    ):
        if embedding is not None:
            crossed = [s for n, s in segment.items() if spec.crosses(cross_fields, n, auto_fields)]
            x.update(_embedding(prefix, embedding, crossed, spec.embedding_crosses))
    return x


# The same features, in the parts a request to score many candidates for one
# segment is made of (the scoring API's batch path, :mod:`online_ctr.frozen`):
# what the segment and the hour give every candidate, computed once, and what
# each candidate adds. ``tests/unit/online_ctr/test_features.py`` checks that
# the parts put together are exactly :func:`featurize`'s dict.


class CandidateFields(Protocol):
    """What the features read of one thing to score: an impression less its segment and time.

    :class:`~schemas.events.Impression` has these fields, and so has the
    scoring API's candidate.
    """

    @property
    def item_id(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def position(self) -> int: ...


@dataclass(frozen=True)
class SegmentFeatures:
    """What one segment at one hour of day gives every candidate's features.

    ``shared`` are the features whose names and values depend on nothing
    else (one-hot segment fields, the hour and its device crosses); the
    other fields name the segment one-hots (``seg.taste=t1``) that each kind
    of content is crossed with.
    """

    shared: tuple[tuple[str, float], ...]
    id_crossed: tuple[str, ...]
    token_crossed: tuple[str, ...]
    image_crossed: tuple[str, ...]
    title_crossed: tuple[str, ...]
    embedding_crosses: int


def segment_features(
    segment: Mapping[str, str],
    ts: float,
    spec: FeatureSpec = DEFAULT_SPEC,
    auto_fields: Collection[str] | None = None,
) -> SegmentFeatures:
    """The features ``segment`` shown at ``ts`` gives every candidate (as :func:`featurize`).

    >>> seg = segment_features({"device": "mobile", "geo": "DE", "taste": "t1"}, 0.0)
    >>> seg.id_crossed, dict(seg.shared)["seg.device=mobile&hour_sin"]
    (('seg.taste=t1',), 0.0)
    """
    one_hot = {name: f"seg.{name}={value}" for name, value in sorted(segment.items())}

    def crossed(fields: Crossed) -> tuple[str, ...]:
        return tuple(s for n, s in one_hot.items() if spec.crosses(fields, n, auto_fields))

    shared = dict.fromkeys(one_hot.values(), 1.0)
    hour = dict(_hour_features(int(ts // 3600) % 24))
    shared.update(hour)
    device = one_hot.get("device")
    if device is not None:
        shared[f"{device}&hour_sin"] = hour["hour_sin"]
        shared[f"{device}&hour_cos"] = hour["hour_cos"]
    return SegmentFeatures(
        shared=tuple(shared.items()),
        id_crossed=crossed(spec.id_cross_fields),
        token_crossed=crossed(spec.token_cross_fields),
        image_crossed=crossed(spec.embedding_cross_fields),
        title_crossed=crossed(spec.title_embedding_cross_fields),
        embedding_crosses=spec.embedding_crosses,
    )


@functools.lru_cache(maxsize=1 << 16)
def id_features(item_id: str, variant: str) -> tuple[str, str]:
    """The item's and the variant's one-hot names (hashed ids, as :func:`featurize`).

    >>> id_features("sku-1", "v2")
    ('item=43469', 'var=99660')
    """
    return f"item={bucket(item_id)}", f"{VARIANT_ID}{bucket(item_id + '/' + variant)}"


@functools.lru_cache(maxsize=1 << 14)
def word_features(title: str) -> tuple[str, ...]:
    """The title's token one-hots (``w=red``), as :func:`featurize` names them."""
    return tuple(f"w={t}" for t in _tokens(title))


def position_features(position: int) -> tuple[tuple[str, float], ...]:
    """The position's one-hot bucket and numeric shapes, as :func:`featurize` has them."""
    return _position_features(position)


def embedding_feature_names(
    prefix: str, dims: int, crossed: Sequence[str], crosses: int
) -> list[tuple[str, ...]]:
    """Per embedding dimension, the names of the features that carry its value.

    ``prefix`` is :data:`IMAGE_PREFIX` or :data:`TITLE_PREFIX`; dimension
    ``k`` is ``{prefix}k`` and, for the first ``crosses``, its crosses with
    each segment one-hot in ``crossed``.

    >>> embedding_feature_names(IMAGE_PREFIX, 2, ["seg.taste=t1"], 1)
    [('img_0', 'img_0&seg.taste=t1'), ('img_1',)]
    """
    return [
        (f"{prefix}{k}", *(f"{prefix}{k}&{seg}" for seg in (crossed if k < crosses else ())))
        for k in range(dims)
    ]
