"""Guarded decoding of raw topic payloads into event models.

Agents subscribe with the ``raw`` serializer and decode here, because a value
that Faust fails to decode raises inside the stream and kills the agent; a
:class:`DecodeError` instead carries a reason for the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import msgspec
from pydantic import BaseModel, ValidationError

from schemas.events import RECORD_HEADER, Click, Impression, Segment
from schemas.wire import WireClick, WireImpression, check

__all__ = ["MAX_MESSAGE_BYTES", "DecodeError", "decode", "record_kind"]

M = TypeVar("M", bound=BaseModel)

#: Larger payloads are refused before parsing (a producer bug, or an attack).
MAX_MESSAGE_BYTES = 64 * 1024


class DecodeError(ValueError):
    """A payload that is not a valid event; ``reason`` is a stable short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(
    model: type[M],
    value: bytes | None,
    key: bytes | None = None,
    *,
    keyed: bool = False,
    fast: bool = True,
) -> M:
    """Parse and validate one payload; raise :class:`DecodeError` on any problem.

    The message key must equal the event's ``impression_id`` when present,
    since co-partitioning of impressions and clicks depends on it; with
    ``keyed`` (producer input) a missing key is refused too, because a
    keyless event lands on an arbitrary partition, away from its partner.

    Impressions and clicks are decoded by msgspec (:mod:`schemas.wire`);
    a payload it refuses, and every other model, is left to pydantic, whose
    verdict and reason are the reference. ``fast=False`` skips msgspec (the
    reference path, for tests and ``bench/bench_decode.py``).
    """
    if value is None:
        raise DecodeError("empty_value", "message has no value (a tombstone)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise DecodeError("too_large", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    quick = _FAST.get(model) if fast else None
    event = quick(value) if quick is not None else None
    if event is None:
        event = _validate(model, value)
    _check_key(event, key, keyed=keyed)
    return cast(M, event)


def _validate(model: type[M], value: bytes) -> M:
    """pydantic's verdict: the reference, and the source of every refusal's reason."""
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        json_invalid = any(err["type"] == "json_invalid" for err in errors)
        reason = "invalid_json" if json_invalid else "schema_violation"
        raise DecodeError(reason, str(exc)) from exc


def _check_key(event: BaseModel, key: bytes | None, *, keyed: bool) -> None:
    impression_id = getattr(event, "impression_id", None)
    if impression_id is not None:
        if key is None and keyed:
            raise DecodeError(
                "key_mismatch", f"message has no key; key it by impression_id {impression_id!r}"
            )
        if key is not None and key != impression_id.encode():
            raise DecodeError("key_mismatch", f"key {key!r} != impression_id {impression_id!r}")


_IMPRESSION = msgspec.json.Decoder(WireImpression)
_CLICK = msgspec.json.Decoder(WireClick)
_UNSET = msgspec.UNSET
_set = object.__setattr__
#: Segment names that would shadow the model's attributes; such a segment is
#: left to pydantic.
_RESERVED = frozenset(dir(Segment))


class _Builder:
    """Builds a validated model from a mirror's values, as ``model_construct`` would.

    ``model_construct`` walks every field in Python and cost more than
    msgspec's whole decode; this sets the same ``__dict__`` (the mirror's
    fields are in the model's order, defaults for UNSET ones) and
    ``fields_set`` directly.
    """

    def __init__(self, model: type[BaseModel], wire: type[msgspec.Struct]) -> None:
        if model.__private_attributes__ or model.__pydantic_post_init__:
            raise TypeError(f"{model.__name__} needs model_construct")  # not the case today
        if wire.__struct_fields__ != tuple(model.model_fields):
            raise TypeError(f"{wire.__name__} lists other fields than {model.__name__}")
        self.model = model
        self.names = wire.__struct_fields__
        self.defaults = [
            (name, f.get_default(call_default_factory=True))
            for name, f in model.model_fields.items()
            if not f.is_required()
        ]

    def __call__(self, wire: msgspec.Struct) -> BaseModel:
        values = msgspec.structs.asdict(wire)
        fields_set = set(self.names)
        if _UNSET in values.values():  # some optional field was left out
            for name, default in self.defaults:
                if values[name] is _UNSET:
                    values[name] = default
                    fields_set.discard(name)
        event = self.model.__new__(self.model)
        _set(event, "__dict__", values)
        _set(event, "__pydantic_fields_set__", fields_set)
        _set(event, "__pydantic_extra__", None)
        _set(event, "__pydantic_private__", None)
        return event


_BUILD_IMPRESSION = _Builder(Impression, WireImpression)
_BUILD_CLICK = _Builder(Click, WireClick)


def _segment(fields: dict[str, str]) -> Segment:
    """A :class:`Segment` as pydantic validates it: extras kept, all in fields_set."""
    extra = fields.copy()
    segment = Segment.__new__(Segment)
    _set(segment, "__dict__", {"device": extra.pop("device"), "geo": extra.pop("geo")})
    _set(segment, "__pydantic_fields_set__", set(fields))
    _set(segment, "__pydantic_extra__", extra)
    _set(segment, "__pydantic_private__", None)
    return segment


def _fast_impression(value: bytes) -> BaseModel | None:
    """msgspec's decode; None where it refuses (pydantic then gives the reason).

    The mirror accepts only what the model accepts, so the event is built
    without validating it again.
    """
    try:
        wire = _IMPRESSION.decode(value)
    except msgspec.DecodeError:
        return None
    if check(wire, value) is not None or not _RESERVED.isdisjoint(wire.segment):
        return None
    event = _BUILD_IMPRESSION(wire)
    event.__dict__["segment"] = _segment(wire.segment)
    return event


def _fast_click(value: bytes) -> BaseModel | None:
    """As :func:`_fast_impression`, for a click."""
    try:
        wire = _CLICK.decode(value)
    except msgspec.DecodeError:
        return None
    return None if check(wire, value) is not None else _BUILD_CLICK(wire)


#: Models decoded by msgspec first; any other model goes straight to pydantic.
_FAST: dict[type[BaseModel], Callable[[bytes], BaseModel | None]] = {
    Impression: _fast_impression,
    Click: _fast_click,
}


def record_kind(headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> str | None:
    """The control-record kind a message's headers name (``bertctr-record``), if any.

    ``labelled`` carries labels and, marked with this header, the join's
    watermark records (:class:`~schemas.events.WatermarkRecord`).
    """
    if not headers:
        return None
    items: Any = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name == RECORD_HEADER:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None
