"""Hostile producer input: the committed corpus, and the two halves of the contract agree.

The pydantic models (what the stream enforces) and the exported JSON Schema
(what producers in other languages validate against) must accept and refuse
the same payloads. The corpus covers what real producers send by mistake;
hypothesis fuzzes the decoder with mutated events and arbitrary bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Click, Impression
from schemas.topics import IMPRESSIONS
from streams.kafka.decode import DecodeError, decode
from tests.corpus import load_corpus, payload

MODELS: dict[str, type[Impression] | type[Click]] = {"impressions": Impression, "clicks": Click}
VALIDATORS = {
    topic: jsonschema.Draft202012Validator(model.model_json_schema())
    for topic, model in MODELS.items()
}
#: reasons decided by the payload alone (not its size, key or absence)
CONTENT_REASONS = {"invalid_json", "schema_violation"}

GOOD = {
    "impressions": {
        "event_id": "ev-1",
        "impression_id": "imp-1",
        "ts": 1_767_225_600.25,
        "item_id": "sku-42",
        "image_id": "img-sku-42-b",
        "variant": "b",
        "title": "Red leather shoe",
        "position": 3,
        "segment": {"device": "mobile", "geo": "DE", "taste": "t1"},
        "user_id": "u-9",
        "schema_version": 1,
    },
    "clicks": {"event_id": "ev-2", "impression_id": "imp-1", "ts": 1_767_225_612.0},
}


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite IEEE double")
    return value


def _check_text(node: Any) -> None:
    """I-JSON (RFC 7493): strings are valid Unicode, so no lone surrogates."""
    if isinstance(node, str):
        node.encode("utf-8")
    elif isinstance(node, dict):
        for k, v in node.items():
            _check_text(k)
            _check_text(v)
    elif isinstance(node, list):
        for v in node:
            _check_text(v)


def schema_accepts(topic: str, value: bytes) -> bool:
    """What a producer validating against the exported JSON Schema concludes."""
    try:
        doc = json.loads(
            value.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite
        )
        _check_text(doc)
    except (ValueError, RecursionError):
        return False
    return bool(VALIDATORS[topic].is_valid(doc))


def model_accepts(topic: str, value: bytes) -> bool:
    """What the stream concludes."""
    try:
        decode(MODELS[topic], value)
    except DecodeError:
        return False
    return True


def test_the_corpus_covers_at_least_30_kinds_of_bad_input() -> None:
    rows = load_corpus()
    kinds = [r["kind"] for r in rows]
    assert len(kinds) == len(set(kinds)) >= 30
    assert {r["reason"] for r in rows} >= {
        "invalid_json",
        "schema_violation",
        "too_large",
        "empty_value",
        "key_mismatch",
    }


@pytest.mark.parametrize("row", load_corpus(), ids=lambda r: r["kind"])
def test_each_corpus_message_is_refused_with_its_reason(row: dict[str, Any]) -> None:
    key, value = payload(row)
    with pytest.raises(DecodeError) as refused:
        decode(MODELS[row["topic"]], value, key, keyed=True)
    assert refused.value.reason == row["reason"], refused.value.detail


@pytest.mark.parametrize(
    "row",
    [r for r in load_corpus() if r["reason"] in CONTENT_REASONS],
    ids=lambda r: r["kind"],
)
def test_the_json_schema_refuses_what_the_models_refuse(row: dict[str, Any]) -> None:
    _, value = payload(row)
    assert value is not None
    assert not model_accepts(row["topic"], value)
    assert not schema_accepts(row["topic"], value)


@pytest.mark.parametrize("topic", list(GOOD))
def test_both_accept_a_good_event_and_integral_numbers(topic: str) -> None:
    good = GOOD[topic]
    for variant in (good, {**good, "ts": 1_767_225_600}):
        value = json.dumps(variant).encode()
        assert model_accepts(topic, value) and schema_accepts(topic, value)
    if topic == IMPRESSIONS:  # JSON Schema's integer includes 3.0
        value = json.dumps({**good, "position": 3.0}).encode()
        assert model_accepts(topic, value) and schema_accepts(topic, value)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=70), inner),
    max_leaves=12,
)
FIELDS = {
    topic: [*list(good), "segment.device", "segment.taste", "extra"] for topic, good in GOOD.items()
}
FIELDS["impressions"] += ["image_url", "propensity", "segment.a=b", "segment.geo"]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A good event with one to three fields replaced, deleted or added."""
    topic = draw(st.sampled_from(list(GOOD)))
    event = json.loads(json.dumps(GOOD[topic]))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(FIELDS[topic]))
        target, field = (
            (event.setdefault("segment", {}), name.split(".", 1)[1])
            if name.startswith("segment.") and isinstance(event.get("segment"), dict)
            else (event, name)
        )
        if draw(st.booleans()):
            target.pop(field, None)
        else:
            target[field] = draw(JSON_VALUES)
    return topic, json.dumps(event).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_models_and_json_schema_agree_on_mutated_events(case: tuple[str, bytes]) -> None:
    topic, value = case
    assert model_accepts(topic, value) == schema_accepts(topic, value), value[:300]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(list(GOOD)), st.none() | st.binary(max_size=20))
def test_the_decoder_only_ever_raises_decode_errors(value: bytes, topic: str, key: Any) -> None:
    try:
        event = decode(MODELS[topic], value, key, keyed=True)
    except DecodeError as exc:
        assert exc.reason in {"invalid_json", "schema_violation", "too_large", "key_mismatch"}
    else:
        assert isinstance(event, MODELS[topic])
