"""The msgspec decode path agrees with pydantic and the exported JSON Schema.

msgspec may refuse more than pydantic (the decoder then falls back to
pydantic for the verdict and the reason) but must never accept what pydantic
refuses, and what it accepts must become the very same event.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel

from schemas import Click, Impression
from simulator import SimConfig, Simulator
from streams.kafka.decode import _FAST, DecodeError, decode
from tests.corpus import load_corpus, payload
from tests.unit.streams.kafka.test_hostile_input import (
    CONTENT_REASONS,
    GOOD,
    MODELS,
    mutated,
    schema_accepts,
)


def _verdict(
    model: type[BaseModel], value: bytes | None, key: bytes | None, *, fast: bool
) -> tuple[str, Any]:
    try:
        event = decode(model, value, key, keyed=True, fast=fast)
    except DecodeError as exc:
        return "refused", exc.reason
    return "accepted", _snapshot(event)


def _snapshot(event: BaseModel) -> Any:
    """Everything a downstream user can see, fields_set included."""
    segment = getattr(event, "segment", None)
    return (
        type(event),
        event.model_dump_json(),
        event.model_fields_set,
        None if segment is None else (segment.model_fields_set, segment.model_extra),
    )


def _msgspec_accepts(topic: str, value: bytes) -> bool:
    """msgspec's own verdict, without the pydantic fallback."""
    return _FAST[MODELS[topic]](value) is not None


@pytest.mark.parametrize("row", load_corpus(), ids=lambda r: r["kind"])
def test_corpus_reasons_are_the_same_on_both_paths(row: dict[str, Any]) -> None:
    key, value = payload(row)
    model = MODELS[row["topic"]]
    fast = _verdict(model, value, key, fast=True)
    assert fast == ("refused", row["reason"])
    assert fast == _verdict(model, value, key, fast=False)


@pytest.mark.parametrize(
    "row", [r for r in load_corpus() if r["reason"] in CONTENT_REASONS], ids=lambda r: r["kind"]
)
def test_msgspec_itself_refuses_every_bad_corpus_payload(row: dict[str, Any]) -> None:
    _, value = payload(row)
    assert value is not None
    assert not _msgspec_accepts(row["topic"], value)
    assert not schema_accepts(row["topic"], value)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_msgspec_schema_and_pydantic_agree_on_mutated_events(case: tuple[str, bytes]) -> None:
    topic, value = case
    key = b"imp-1"
    fast = _verdict(MODELS[topic], value, key, fast=True)
    assert fast == _verdict(MODELS[topic], value, key, fast=False), value[:300]
    if _msgspec_accepts(topic, value):
        assert fast[0] == "accepted", value[:300]
    assert (fast[0] == "accepted") == schema_accepts(topic, value), value[:300]


def test_msgspec_accepts_and_copies_every_simulator_event() -> None:
    messages = list(Simulator(SimConfig(seed=3)).messages(2000))
    assert {m.topic for m in messages} == set(MODELS)
    accepted = 0
    for m in messages:
        reference = _verdict(MODELS[m.topic], m.value, m.key, fast=False)
        assert _verdict(MODELS[m.topic], m.value, m.key, fast=True) == reference
        # every event the reference takes is taken by msgspec itself (the fast path)
        assert _msgspec_accepts(m.topic, m.value) == (reference[0] == "accepted"), m.value
        accepted += reference[0] == "accepted"
    assert accepted > 0.9 * len(messages)


def _imp(**change: Any) -> bytes:
    event = {**GOOD["impressions"], **change}
    return json.dumps({k: v for k, v in event.items() if v is not _DROP}).encode()


_DROP = object()
_SEG: dict[str, Any] = cast(dict[str, Any], GOOD["impressions"]["segment"])


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        # Python's "$" matches before a final newline, pydantic's does not
        (_imp(event_id="ev-1\n"), False),
        (_imp(variant="b\n"), False),
        (_imp(segment={**_SEG, "taste": "t1\n"}), True),
        (_imp(event_id="\u00a0"), False),
        (_imp(event_id=" a "), True),
        (_imp(event_id="a" * 257), False),
        (_imp(event_id="\u00e9" * 256), True),
        # segment names that model_construct or the model would read as its own
        (_imp(segment={**_SEG, "_fields_set": "x"}), True),
        (_imp(segment={**_SEG, "model_config": "x"}), True),
        (_imp(segment={"geo": "DE"}), False),
        (_imp(segment={"device": "m"}), False),
        (_imp(segment={**_SEG, "a" * 65: "x"}), False),
        # JSON integers written as floats: pydantic decides (msgspec refuses them)
        (_imp(position=3.0), True),
        (_imp(schema_version=1.0), True),
        (_imp(schema_version=True), False),
        (_imp(ts=10_000_000_000), True),
        (_imp(ts=10_000_000_001), False),
        (_imp(propensity=1), True),
        (_imp(propensity=1.0000001), False),
        (_imp(propensity=True), False),
        (_imp(image_url=None, user_id=None, propensity=None), True),
        (_imp(title=_DROP, variant=_DROP, schema_version=_DROP), True),
        (_imp(user_id=None, title=None), False),
        (b'{"event_id":"e","impression_id":"imp-1","ts":1e400}', False),
        (b'{"event_id":"\\ud800","impression_id":"imp-1","ts":1}', False),
        (b'{"event_id":"e","impression_id":"imp-1","ts":NaN}', False),
    ],
)
def test_edges_msgspec_cannot_express_alone(value: bytes, accepted: bool) -> None:
    topic = "clicks" if b'"item_id"' not in value else "impressions"
    fast = _verdict(MODELS[topic], value, b"imp-1", fast=True)
    assert (fast[0] == "accepted") == accepted, fast
    assert fast == _verdict(MODELS[topic], value, b"imp-1", fast=False)
    if b'\\n"' not in value:
        # Python's jsonschema checks "pattern" with re.search, whose "$" also
        # matches before a final newline; ECMA-262 (the draft's regex) does not
        assert schema_accepts(topic, value) == accepted


def test_other_models_are_left_to_pydantic() -> None:
    assert set(_FAST) == {Impression, Click}
