"""Pydantic v2 models of every event that crosses a topic.

Why pydantic and not Faust records: the same models validate producer input,
generate the exported JSON Schema and type the pure join code, so there is one
definition of an event and it has no Kafka dependency.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION: Literal[1] = 1

#: Identifiers are opaque, non-empty strings of bounded length; they end up in
#: Redis keys and Kafka keys, so unbounded ones would be a memory hazard.
Identifier = Annotated[str, Field(min_length=1, max_length=256)]


def _finite_ts(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("ts must be a finite, non-negative epoch time in seconds")
    return value


class Segment(BaseModel):
    """The audience segment an impression was shown to.

    ``device`` and ``geo`` are required; any further keys (``taste``, ``age``,
    ...) are kept and become part of the segment key. Values must be short
    strings so that the segment key stays a readable dashboard label.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    device: Identifier
    geo: Identifier

    @field_validator("*", mode="before")
    @classmethod
    def _strings_only(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("segment values must be strings")
        return value

    @model_validator(mode="after")
    def _extras_are_short_strings(self) -> Segment:
        for name, value in (self.model_extra or {}).items():
            if not isinstance(value, str) or not 0 < len(value) <= 256:
                raise ValueError(f"segment field {name!r} must be a string of 1-256 chars")
            if len(name) > 64:
                raise ValueError("segment field names must be at most 64 chars")
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
    ts: float = Field(description="Event time, epoch seconds (float).")
    schema_version: Literal[1] = SCHEMA_VERSION

    @field_validator("ts")
    @classmethod
    def _check_ts(cls, value: float) -> float:
        return _finite_ts(value)


class Impression(_Event):
    """An image shown to a user; published to ``impressions``."""

    item_id: Identifier
    image_id: Identifier
    image_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the image's bytes are (http/https, under an allow-listed "
        "prefix); without it the image store looks ``image_id`` up locally.",
    )
    variant: Identifier = "default"
    title: str = Field(default="", max_length=2048)
    position: int = Field(ge=0, le=10_000)
    segment: Segment
    user_id: Identifier | None = None


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
