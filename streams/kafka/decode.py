"""Guarded decoding of raw topic payloads into event models.

Agents subscribe with the ``raw`` serializer and decode here, because a value
that Faust fails to decode raises inside the stream and kills the agent; a
:class:`DecodeError` instead carries a reason for the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.events import RECORD_HEADER

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
    model: type[M], value: bytes | None, key: bytes | None = None, *, keyed: bool = False
) -> M:
    """Parse and validate one payload; raise :class:`DecodeError` on any problem.

    The message key must equal the event's ``impression_id`` when present,
    since co-partitioning of impressions and clicks depends on it; with
    ``keyed`` (producer input) a missing key is refused too, because a
    keyless event lands on an arbitrary partition, away from its partner.
    """
    if value is None:
        raise DecodeError("empty_value", "message has no value (a tombstone)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise DecodeError("too_large", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        event = model.model_validate_json(value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        json_invalid = any(err["type"] == "json_invalid" for err in errors)
        reason = "invalid_json" if json_invalid else "schema_violation"
        raise DecodeError(reason, str(exc)) from exc
    impression_id = getattr(event, "impression_id", None)
    if impression_id is not None:
        if key is None and keyed:
            raise DecodeError(
                "key_mismatch", f"message has no key; key it by impression_id {impression_id!r}"
            )
        if key is not None and key != impression_id.encode():
            raise DecodeError("key_mismatch", f"key {key!r} != impression_id {impression_id!r}")
    return event


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
