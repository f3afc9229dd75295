"""msgspec mirrors of the producer events, for decoding a poll fast.

Why a mirror: msgspec decodes and validates a small JSON object about ten
times faster than pydantic, and the join decodes every producer event. The
contract's one home stays :mod:`schemas.events`: this module takes its bounds
from there, and ``tests/unit/schemas/test_wire.py`` checks field for field
that the mirror matches the models. The mirror may refuse more than the
models (the decoder then asks pydantic for the verdict and the reason), but
never less: whatever msgspec cannot express is checked by :func:`check`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from schemas.events import MAX_SEGMENT_FIELDS, MAX_TS

__all__ = ["WireClick", "WireImpression", "check", "identifier_ok"]

# Lengths only: msgspec checks a ``pattern`` by calling Python's ``re`` per
# string, which cost more than the whole decode; :func:`check` does the
# characters of a whole event in a few calls instead.
_Identifier = Annotated[str, Meta(min_length=1, max_length=256)]
_SegmentValue = Annotated[str, Meta(min_length=1, max_length=256)]
_SegmentName = Annotated[str, Meta(min_length=1, max_length=64)]
_Segment = Annotated[dict[_SegmentName, _SegmentValue], Meta(max_length=MAX_SEGMENT_FIELDS)]
# Finite by construction: ge/le refuse inf, and msgspec's parser refuses NaN.
_Ts = Annotated[float, Meta(ge=0.0, le=MAX_TS)]
_Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
_Position = Annotated[int, Meta(ge=0, le=10_000)]
_Text = Annotated[str, Meta(max_length=2048)]


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields in the model's order; optional ones default to UNSET.

    So the pydantic event built from a mirror has the same ``__dict__`` order
    and ``fields_set`` as the one pydantic validates.
    """

    event_id: _Identifier
    impression_id: _Identifier
    ts: _Ts
    schema_version: Literal[1] | UnsetType = UNSET


class WireImpression(_WireEvent, forbid_unknown_fields=True, kw_only=True):
    """Mirror of :class:`schemas.events.Impression`."""

    item_id: _Identifier
    image_id: _Identifier
    image_url: _Text | UnsetType | None = UNSET
    variant: _Identifier | UnsetType = UNSET
    title: _Text | UnsetType = UNSET
    position: _Position
    segment: _Segment
    user_id: _Identifier | UnsetType | None = UNSET
    propensity: _Probability | UnsetType | None = UNSET


class WireClick(_WireEvent, forbid_unknown_fields=True, kw_only=True):
    """Mirror of :class:`schemas.events.Click`."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]").search


def identifier_ok(text: str) -> bool:
    """:data:`schemas.events.IDENTIFIER_PATTERN` on a string of the right length.

    No control character, and not whitespace only (``str.isspace`` is the
    ``\\s`` of Python's and pydantic's regexes; a unit test compares them
    code point by code point).
    """
    return _CONTROL(text) is None and not text.isspace()


def check(event: WireImpression | WireClick, value: bytes | None = None) -> str | None:
    """What the mirror's types leave out: identifiers' characters, segment rules.

    Returns the violation, or None when the event is valid. Written for the
    hot path. With the raw ``value``, a payload without a backslash or DEL
    byte has no control character in any string (JSON forbids raw ones, and
    msgspec refuses them), and without ``=`` no ``=`` anywhere, so the
    regex search is skipped.
    """
    plain = value is not None and b"\\" not in value and b"\x7f" not in value
    a, b = event.event_id, event.impression_id
    if isinstance(event, WireImpression):
        segment = event.segment
        if "device" not in segment or "geo" not in segment:
            return "a segment names device and geo"
        text = "".join(segment) + "".join(segment.values())
        if "," in text or ("=" in text if not plain or b"=" in value else False):  # type: ignore[operator]
            return "segment names and values may not contain ',' or '='"
        c, d, e, f = event.item_id, event.image_id, event.variant, event.user_id
        if not plain and _CONTROL(f"{a}|{b}|{c}|{d}|{e}|{f}") is not None:
            return "identifiers have no control character"
        if (
            a.isspace()
            or b.isspace()
            or c.isspace()
            or d.isspace()
            or (e.__class__ is str and e.isspace())
            or (f.__class__ is str and f.isspace())
        ):
            return "identifiers are not whitespace only"
        return None
    if (not plain and _CONTROL(f"{a}|{b}") is not None) or a.isspace() or b.isspace():
        return "identifiers have no control character and are not whitespace only"
    return None
