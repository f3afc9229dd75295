"""Identifiers are visible strings: never blank, never control characters, in both halves."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.events import Impression


def impression(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "impression_id": "i-1",
        "ts": 1_700_000_000.0,
        "item_id": "item-1",
        "image_id": "img-1",
        "position": 0,
        "segment": {"device": "mobile", "geo": "DE"},
    }
    return {**base, **fields}


def accepted_by_model(payload: dict[str, Any]) -> bool:
    try:
        Impression.model_validate(payload)
    except ValidationError:
        return False
    return True


def accepted_by_schema(payload: dict[str, Any]) -> bool:
    validator = jsonschema.Draft202012Validator(Impression.model_json_schema())
    return bool(validator.is_valid(payload))


@pytest.mark.parametrize(
    "value", [" ", "   ", "\t", "\u00a0", "a\x00b", "\x1b[31mred", "a\nb", "x\x7f"]
)
@pytest.mark.parametrize("field", ["item_id", "image_id", "variant", "event_id"])
def test_blank_and_control_character_ids_are_refused(field: str, value: str) -> None:
    payload = impression(**{field: value})
    assert not accepted_by_model(payload)
    assert not accepted_by_schema(payload)


@pytest.mark.parametrize("value", ["a", "item 18", " padded ", "ü-ß-日本", "x" * 256])
def test_visible_ids_are_accepted_by_both_halves(value: str) -> None:
    payload = impression(item_id=value)
    assert accepted_by_model(payload)
    assert accepted_by_schema(payload)
