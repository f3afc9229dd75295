"""Event validation, guarded decoding and the exported JSON Schema."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from schemas import Click, Impression, LabelledImpression, export_json_schemas
from schemas.events import MAX_SEGMENT_FIELDS
from streams.kafka.deadletter import dead_letter
from streams.kafka.decode import MAX_MESSAGE_BYTES, DecodeError, decode

GOOD = {
    "event_id": "e1",
    "impression_id": "i1",
    "ts": 1_700_000_000.5,
    "item_id": "sku-1",
    "image_id": "img-1",
    "title": "red shoe",
    "position": 2,
    "segment": {"device": "mobile", "geo": "DE", "taste": "t1"},
}


def test_impression_defaults_and_segment_key() -> None:
    imp = Impression.model_validate(GOOD)
    assert imp.variant == "default" and imp.user_id is None and imp.schema_version == 1
    assert imp.segment.key() == "device=mobile,geo=DE,taste=t1"


@pytest.mark.parametrize(
    "change",
    [
        {"position": -1},
        {"ts": -1.0},
        {"ts": float("nan")},
        {"item_id": ""},
        {"segment": {"device": "mobile"}},
        {"segment": {"device": "m", "geo": "DE", "taste": 3}},
        {"unknown": 1},
        {"schema_version": 2},
        {"event_id": "x" * 300},
    ],
)
def test_invalid_impressions_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Impression.model_validate({**GOOD, **change})


def test_propensity_is_optional_and_kept() -> None:
    assert Impression.model_validate(GOOD).propensity is None
    imp = Impression.model_validate({**GOOD, "propensity": 0.3})
    assert imp.propensity == 0.3
    assert Impression.model_validate({**GOOD, "propensity": 1}).propensity == 1.0
    labelled = LabelledImpression.from_impression(
        imp, clicked=True, click_delay_s=2.0, late=False, labelled_at=0.0
    )
    assert labelled.propensity == 0.3
    again = LabelledImpression.model_validate_json(labelled.model_dump_json())
    assert again.propensity == 0.3
    # a producer that has never heard of propensity is unaffected
    assert decode(Impression, json.dumps(GOOD).encode(), b"i1").propensity is None


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), float("inf"), True, "0.3"], ids=repr)
def test_invalid_propensities_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        Impression.model_validate({**GOOD, "propensity": value})


@pytest.mark.parametrize(
    ("raw", "accepted"),
    [
        (b"0.3", True),
        (b"0", True),
        (b"1", True),
        (b"null", True),
        (b"-0.1", False),
        (b"1.5", False),
        (b"true", False),
        (b'"0.3"', False),
        (b"NaN", False),
        (b"Infinity", False),
    ],
)
def test_propensity_is_refused_alike_by_model_and_exported_schema(
    raw: bytes, accepted: bool, tmp_path: Path
) -> None:
    value = json.dumps(GOOD).encode()[:-1] + b', "propensity": ' + raw + b"}"
    try:
        decode(Impression, value, b"i1")
    except DecodeError as err:
        assert not accepted and err.reason == "schema_violation", err.detail
    else:
        assert accepted
    export_json_schemas(tmp_path)
    schema = json.loads((tmp_path / "impression.schema.json").read_text())
    assert schema["properties"]["propensity"]["anyOf"][0] == {
        "type": "number",
        "minimum": 0.0,
        "maximum": 1.0,
    }
    if raw not in (b"NaN", b"Infinity"):  # not JSON: a JSON parser refuses them first
        validator = jsonschema.Draft202012Validator(schema)
        assert validator.is_valid(json.loads(value)) is accepted


def test_decode_reasons() -> None:
    assert decode(Impression, json.dumps(GOOD).encode(), b"i1").item_id == "sku-1"
    cases = [
        (b"{nope", None, "invalid_json"),
        (b"\xff\xfe", None, "invalid_json"),
        (json.dumps({**GOOD, "position": -3}).encode(), None, "schema_violation"),
        (json.dumps(GOOD).encode(), b"other", "key_mismatch"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), None, "too_large"),
        (None, None, "empty_value"),
    ]
    for value, key, reason in cases:
        with pytest.raises(DecodeError) as err:
            decode(Impression, value, key)
        assert err.value.reason == reason


def padded(size: int) -> bytes:
    """A valid impression exactly ``size`` bytes long (JSON allows trailing whitespace)."""
    body = json.dumps(GOOD).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_message_size_limit_is_inclusive() -> None:
    """Exactly MAX_MESSAGE_BYTES is accepted, one byte more is refused before parsing."""
    at_limit = padded(MAX_MESSAGE_BYTES)
    assert len(at_limit) == MAX_MESSAGE_BYTES
    assert decode(Impression, at_limit, b"i1").item_id == "sku-1"
    over = padded(MAX_MESSAGE_BYTES + 1)
    with pytest.raises(DecodeError) as err:
        decode(Impression, over, b"i1")
    assert err.value.reason == "too_large"


def segment_of(fields: int) -> dict[str, str]:
    """``device``, ``geo`` and ``fields - 2`` further fields."""
    return {"device": "mobile", "geo": "DE", **{f"f{k}": "v" for k in range(fields - 2)}}


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [(MAX_SEGMENT_FIELDS - 1, True), (MAX_SEGMENT_FIELDS, True), (MAX_SEGMENT_FIELDS + 1, False)],
)
def test_segment_field_limit_counts_device_and_geo(
    fields: int, accepted: bool, tmp_path: Path
) -> None:
    """At most MAX_SEGMENT_FIELDS fields in all, the two required ones included.

    The model and the exported JSON Schema (``maxProperties``) must give one
    answer on both sides of the boundary: a producer validating with the
    schema must not send what the join then refuses, nor the reverse.
    """
    segment = segment_of(fields)
    assert len(segment) == fields
    payload = {**GOOD, "segment": segment}
    try:
        imp = Impression.model_validate(payload)
    except ValidationError as err:
        assert not accepted, err
        assert f"at most {MAX_SEGMENT_FIELDS} fields" in str(err)
    else:
        assert accepted, f"a segment of {fields} fields was accepted"
        assert len(imp.segment.as_dict()) == fields
    export_json_schemas(tmp_path)
    schema = json.loads((tmp_path / "impression.schema.json").read_text())
    assert jsonschema.Draft202012Validator(schema).is_valid(payload) is accepted


def test_click_decodes_without_key() -> None:
    click = decode(Click, b'{"event_id":"c","impression_id":"i","ts":3}')
    assert click.ts == 3.0


def test_labelled_ids_are_deterministic() -> None:
    imp = Impression.model_validate(GOOD)

    def label_id(clicked: bool, late: bool) -> str:
        labelled = LabelledImpression.from_impression(
            imp, clicked=clicked, late=late, click_delay_s=None, labelled_at=0.0
        )
        return labelled.label_id

    assert label_id(False, False) == "i1:neg"
    assert label_id(True, False) == "i1:pos"
    assert label_id(True, True) == "i1:late"


def test_dead_letter_keeps_original_bytes() -> None:
    text = dead_letter(
        reason="r", detail="d", topic="t", partition=1, offset=2, key=b"k", value=b"hello"
    )
    assert text.value == "hello" and text.value_b64 is None
    binary = dead_letter(
        reason="r", detail="d", topic="t", partition=1, offset=2, key=None, value=b"\xff\x00"
    )
    assert binary.value is None
    assert binary.value_b64 is not None and base64.b64decode(binary.value_b64) == b"\xff\x00"


def test_exported_schema_validates_like_the_models(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path)
    names = sorted(p.name for p in paths)
    assert names == [
        "click.schema.json",
        "dead_letter.schema.json",
        "encoder_version.schema.json",
        "impression.schema.json",
        "labelled_impression.schema.json",
    ]
    schema = json.loads((tmp_path / "impression.schema.json").read_text())
    assert set(schema["required"]) >= {
        "event_id",
        "impression_id",
        "ts",
        "item_id",
        "image_id",
        "position",
        "segment",
    }
    assert schema["properties"]["position"]["minimum"] == 0
    # the schema is used, not just read: it accepts what the model accepts ...
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(GOOD)
    assert validator.is_valid({**GOOD, "propensity": 0.25, "user_id": "u1", "variant": "b"})
    # ... and refuses what the model refuses (the JSON-expressible cases above)
    refused: list[dict[str, object]] = [
        {"position": -1},
        {"ts": -1.0},
        {"item_id": ""},
        {"segment": {"device": "mobile"}},
        {"segment": {"device": "m", "geo": "DE", "taste": 3}},
        {"segment": {"device": "m", "geo": "D,E"}},
        {"unknown": 1},
        {"schema_version": 2},
        {"event_id": "x" * 300},
    ]
    for change in refused:
        payload = {**GOOD, **change}
        with pytest.raises(ValidationError):
            Impression.model_validate(payload)
        assert not validator.is_valid(payload), change
    click = json.loads((tmp_path / "click.schema.json").read_text())
    click_validator = jsonschema.Draft202012Validator(click)
    assert click_validator.is_valid({"event_id": "c", "impression_id": "i", "ts": 3})
    assert not click_validator.is_valid({"event_id": "c", "impression_id": "i", "ts": "3"})
