"""Pydantic v2 models of every event that crosses a topic.

Why pydantic and not Faust records: the same models validate producer input,
generate the exported JSON Schema and type the pure join code, so there is one
definition of an event and it has no Kafka dependency.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_SEGMENT_FIELDS",
    "MAX_TS",
    "RECORD_HEADER",
    "SCHEMA_VERSION",
    "WATERMARK_RECORD",
    "Click",
    "DeadLetter",
    "EncoderVersion",
    "EpochSeconds",
    "ImageUrl",
    "Impression",
    "JsonInt",
    "JsonNumber",
    "LabelledImpression",
    "Position",
    "Probability",
    "Segment",
    "Title",
    "WatermarkRecord",
]

SCHEMA_VERSION: Literal[1] = 1

#: Largest accepted event time: 2286-11-20, ten digits of epoch seconds. A
#: producer that sends epoch *milliseconds* (13 digits) is refused with a
#: clear error instead of being read as a date 50,000 years ahead.
MAX_TS = 1e10
#: A segment is a handful of audience fields, not a bag of attributes.
MAX_SEGMENT_FIELDS = 16


def _no_bool_or_str(value: Any) -> Any:
    """JSON numbers only: ``true`` and ``"5"`` are not numbers.

    pydantic's lax mode would read ``true`` as 1 and ``"5"`` as 5, while the
    exported JSON Schema (``type: number``) refuses both; producers must not
    get two different answers from the two halves of one contract.
    """
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"must be a JSON number, not {type(value).__name__}")
    return value


#: A JSON number (integer or not), never a bool or a numeric string.
JsonNumber = Annotated[float, BeforeValidator(_no_bool_or_str)]
#: A JSON integer (``3`` or ``3.0``, as JSON Schema's ``integer``), never a bool or string.
JsonInt = Annotated[int, BeforeValidator(_no_bool_or_str)]
#: A probability: a finite JSON number in [0, 1], never a bool or string. The
#: bounds sit on ``float`` itself, before the validator: put on the field of a
#: nullable ``JsonNumber | None``, or after the validator, pydantic exports
#: them as ``ge``/``le``, keywords JSON Schema ignores, and the exported
#: schema would accept what the model refuses.
Probability = Annotated[
    float, Field(ge=0.0, le=1.0, allow_inf_nan=False), BeforeValidator(_no_bool_or_str)
]
#: An optional epoch time in seconds (a request's time), bounded the same way.
EpochSeconds = Annotated[
    float, Field(ge=0.0, le=MAX_TS, allow_inf_nan=False), BeforeValidator(_no_bool_or_str)
]

#: Identifiers are opaque, non-empty strings of bounded length; they end up in
#: Redis keys and Kafka keys, so unbounded ones would be a memory hazard. At
#: least one character is not whitespace, and none is a control character
#: (they would be invisible on a dashboard, and break log lines).
IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
Identifier = Annotated[str, Field(min_length=1, max_length=256, pattern=IDENTIFIER_PATTERN)]
#: Segment values end up in the canonical segment key ``k=v,k=v``, so they
#: may not contain its separators.
_NO_SEPARATORS = r"^[^,=]*$"
SegmentValue = Annotated[str, Field(min_length=1, max_length=256, pattern=_NO_SEPARATORS)]
#: Where an image's bytes are, or a title: bounded like every string that is stored.
ImageUrl = Annotated[str, Field(max_length=2048)]
Title = Annotated[str, Field(max_length=2048)]
#: The slot an image is shown in (0 is the first).
Position = Annotated[int, Field(ge=0, le=10_000), BeforeValidator(_no_bool_or_str)]


def _has_separator(text: str) -> bool:
    return "," in text or "=" in text


def _finite_ts(value: float) -> float:
    if not math.isfinite(value) or not 0 <= value <= MAX_TS:
        raise ValueError(
            f"ts must be a finite epoch time in seconds in [0, {MAX_TS:.0e}] "
            "(milliseconds are refused)"
        )
    return value


class Segment(BaseModel):
    """The audience segment an impression was shown to.

    ``device`` and ``geo`` are required; any further keys (``taste``, ``age``,
    ...) are kept and become part of the segment key. Values must be short
    strings so that the segment key stays a readable dashboard label.
    """

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        json_schema_extra={
            "additionalProperties": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "pattern": _NO_SEPARATORS,
            },
            "propertyNames": {"minLength": 1, "maxLength": 64, "pattern": _NO_SEPARATORS},
            "maxProperties": MAX_SEGMENT_FIELDS,
        },
    )

    device: SegmentValue
    geo: SegmentValue

    @field_validator("*", mode="before")
    @classmethod
    def _strings_only(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("segment values must be strings")
        return value

    @model_validator(mode="after")
    def _extras_are_short_strings(self) -> Segment:
        extra = self.model_extra or {}
        if len(extra) + 2 > MAX_SEGMENT_FIELDS:
            raise ValueError(f"a segment has at most {MAX_SEGMENT_FIELDS} fields")
        for name, value in extra.items():
            if not isinstance(value, str) or not 0 < len(value) <= 256 or _has_separator(value):
                raise ValueError(
                    f"segment field {name!r} must be a string of 1-256 chars without ',' or '='"
                )
            if not 0 < len(name) <= 64 or _has_separator(name):
                raise ValueError("segment field names are 1-64 chars without ',' or '='")
        return self

    def as_dict(self) -> dict[str, str]:
        """All segment fields, required and extra, as plain strings."""
        return {k: str(v) for k, v in self.model_dump().items()}

    def key(self) -> str:
        """Canonical, order-independent key: ``device=mobile,geo=DE,taste=a``."""
        items = sorted(self.as_dict().items())
        return ",".join(f"{k}={v}" for k, v in items)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Identifier = Field(description="Unique per event; duplicates share it.")
    impression_id: Identifier = Field(description="Kafka key; joins clicks to impressions.")
    ts: JsonNumber = Field(
        ge=0,
        le=MAX_TS,
        description="Event time, epoch seconds (a JSON number; not milliseconds, not a string).",
    )
    schema_version: Annotated[Literal[1], BeforeValidator(_no_bool_or_str)] = SCHEMA_VERSION

    @field_validator("ts")
    @classmethod
    def _check_ts(cls, value: float) -> float:
        return _finite_ts(value)


class Impression(_Event):
    """An image shown to a user; published to ``impressions``."""

    item_id: Identifier
    image_id: Identifier
    image_url: ImageUrl | None = Field(
        default=None,
        description="Where the image's bytes are (http/https, under an allow-listed "
        "prefix); without it the image store looks ``image_id`` up locally.",
    )
    variant: Identifier = "default"
    title: Title = ""
    position: Position
    segment: Segment
    user_id: Identifier | None = None
    propensity: Probability | None = Field(
        default=None,
        description="Probability with which the serving layer chose this variant for this "
        "impression (e.g. as returned by POST /ab/{item_id}/allocate), logged for "
        "off-policy evaluation (inverse propensity weighting). Optional: producers "
        "that do not randomise leave it out.",
    )


class Click(_Event):
    """A click on an impression; published to ``clicks``."""


class LabelledImpression(Impression):
    """An impression with its label, emitted by the join to ``labelled``.

    ``label_id`` is deterministic (``<impression_id>:neg``, ``:pos`` or
    ``:late``), so consumers that see a replayed message can apply it once.
    A late correction (``late=True``) is a positive for an impression whose
    negative was already emitted: it adds a click, never another impression.
    """

    label_id: Identifier
    clicked: bool
    click_delay_s: float | None = None
    late: bool = False
    labelled_at: float = Field(description="Event-time watermark when the label was decided.")

    @classmethod
    def from_impression(
        cls,
        impression: Impression,
        *,
        clicked: bool,
        click_delay_s: float | None,
        late: bool,
        labelled_at: float,
    ) -> LabelledImpression:
        suffix = "late" if late else ("pos" if clicked else "neg")
        # The impression was validated on the way in; re-validating it for
        # every label was the join's largest cost (see bench/bench_join.py).
        return cls.model_construct(
            **dict(impression),
            label_id=f"{impression.impression_id}:{suffix}",
            clicked=clicked,
            click_delay_s=click_delay_s,
            late=late,
            labelled_at=labelled_at,
        )


class DeadLetter(BaseModel):
    """A message the stream could not use, with why and where it came from.

    ``value`` is the original payload as text when it was valid UTF-8, else
    ``value_b64`` holds it base64-encoded, so nothing is lost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str
    detail: str = ""
    topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    value: str | None = None
    value_b64: str | None = None
    failed_at: float


#: Kafka header that marks a control record on ``labelled`` (value: its kind).
RECORD_HEADER = "bertctr-record"
#: :data:`RECORD_HEADER` value of a :class:`WatermarkRecord`.
WATERMARK_RECORD: Literal["watermark"] = "watermark"


class WatermarkRecord(BaseModel):
    """A join partition's event-time watermark, written in-band to ``labelled``.

    The join sends every label of its partition ``p`` to partition ``p`` of
    ``labelled``, and after them, whenever the partition's watermark has
    moved, one of these (header ``bertctr-record: watermark``, no key). Kafka
    keeps a partition in order, so a consumer that reads a watermark ``W``
    has read every label the join decided at or before ``W``: every window
    that closed by ``W`` is complete. That is what lets the learner learn in
    window-close order on a quiet stream, where no new label would say that
    time has passed. ``watermark`` is ``null`` while the partition has seen
    no event. Consumers that only want labels skip records with the header.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    record: Literal["watermark"] = WATERMARK_RECORD
    partition: int = Field(ge=0)
    watermark: float | None = Field(description="Event-time watermark of the join partition.")
    emitted_at: float = Field(description="Wall-clock time the join sent it.")


class EncoderVersion(BaseModel):
    """A new encoder version, announced on ``encoder-versions`` once Triton serves it.

    ``bertctr finetune`` publishes one after the running Triton has loaded
    the version under ``served_name`` (beside the versions it already
    serves). Workers then train a challenger CTR model on its embeddings in
    shadow of the champion and promote it only if it wins online; the
    announcement itself promotes nothing. Keyed by ``model``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    model: Identifier = Field(description="The encoder, e.g. image_encoder.")
    version: JsonInt = Field(ge=1, description="Version number of the new head.")
    served_name: Identifier = Field(description="Triton model name that serves this version.")
    parent: JsonInt | None = Field(default=None, description="Version it was trained from.")
    fingerprint: str = Field(default="", max_length=64, description="Head fingerprint.")
    created_at: JsonNumber = Field(description="Epoch seconds it was published.")
    window: dict[str, float | None] = Field(
        default_factory=dict, description="Training window: since and until (epoch seconds)."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Held-out log loss and AUC before and after."
    )
    examples: JsonInt = Field(default=0, ge=0, description="Labelled examples trained on.")
