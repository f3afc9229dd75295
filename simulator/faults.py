"""Malformed messages, the kind real producers publish now and then.

Each is either not JSON at all or JSON that fails validation against the
event contract, so the stream must dead-letter it and carry on. The helpers
return the fault's name with the payload, so a failure in the stream can be
traced to what was broken on purpose.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from schemas.events import Click, Impression

__all__ = ["CLICK_FAULTS", "IMPRESSION_FAULTS", "malformed_click", "malformed_impression"]

#: How an impression payload is broken, by name.
IMPRESSION_FAULTS = (
    "not_json",
    "truncated_json",
    "missing_segment",
    "negative_position",
    "ts_not_a_number",
    "unknown_field",
)
#: How a click payload is broken, by name.
CLICK_FAULTS = ("not_json", "truncated_json", "missing_impression_id", "negative_ts")


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def malformed_impression(imp: Impression, rng: np.random.Generator) -> tuple[str, bytes]:
    """A broken copy of ``imp`` as (fault name, payload)."""
    fault = IMPRESSION_FAULTS[int(rng.integers(len(IMPRESSION_FAULTS)))]
    raw = imp.model_dump_json().encode()
    data = imp.model_dump(mode="json")
    if fault == "not_json":
        return fault, b"\x00\xff\xfe" + imp.impression_id.encode() + b"{{"
    if fault == "truncated_json":
        return fault, raw[: len(raw) // 2]
    if fault == "missing_segment":
        del data["segment"]
    elif fault == "negative_position":
        data["position"] = -1
    elif fault == "ts_not_a_number":
        data["ts"] = "yesterday"
    else:
        data["debug"] = True  # events forbid unknown fields
    return fault, _dump(data)


def malformed_click(click: Click, rng: np.random.Generator) -> tuple[str, bytes]:
    """A broken copy of ``click`` as (fault name, payload)."""
    fault = CLICK_FAULTS[int(rng.integers(len(CLICK_FAULTS)))]
    raw = click.model_dump_json().encode()
    data = click.model_dump(mode="json")
    if fault == "not_json":
        return fault, b"click=" + click.impression_id.encode() + b"&\xff"
    if fault == "truncated_json":
        return fault, raw[: len(raw) // 2]
    if fault == "missing_impression_id":
        del data["impression_id"]
    else:
        data["ts"] = -1.0
    return fault, _dump(data)
