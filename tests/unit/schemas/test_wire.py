"""The msgspec mirrors match the pydantic events, the contract's one home."""

from __future__ import annotations

import msgspec
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas import Click, Impression
from schemas.events import Identifier
from schemas.wire import WireClick, WireImpression, identifier_ok

PAIRS: list[tuple[type[msgspec.Struct], type[BaseModel]]] = [
    (WireImpression, Impression),
    (WireClick, Click),
]


@pytest.mark.parametrize(("wire", "model"), PAIRS, ids=lambda t: t.__name__)
def test_the_mirror_has_the_models_fields_and_required_set(
    wire: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    info = msgspec.inspect.type_info(wire)
    assert isinstance(info, msgspec.inspect.StructType)
    assert info.forbid_unknown_fields
    assert {f.name for f in info.fields} == set(model.model_fields)
    required = {f.name for f in info.fields if f.required}
    assert required == {name for name, f in model.model_fields.items() if f.is_required()}


def test_every_optional_field_defaults_to_unset() -> None:
    """So that the event built from it has the same fields_set as pydantic's."""
    for wire, model in PAIRS:
        optional = {name for name, f in model.model_fields.items() if not f.is_required()}
        required = set(model.model_fields) - optional
        bare = wire(**dict.fromkeys(required, "x"))  # construction does not validate
        assert {name: getattr(bare, name) for name in optional} == dict.fromkeys(
            optional, msgspec.UNSET
        )


@pytest.mark.parametrize(("wire", "model"), PAIRS, ids=lambda t: t.__name__)
def test_the_mirror_lists_fields_in_the_models_order(
    wire: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    """The decoder builds the event's ``__dict__`` straight from the mirror."""
    assert wire.__struct_fields__ == tuple(model.model_fields)


def test_identifier_check_is_the_models_pattern_on_every_code_point_to_u3100() -> None:
    """``str.isspace`` and the control class against pydantic's (Rust) regex.

    Up to U+3100 covers every whitespace code point but none past it.
    """
    adapter = TypeAdapter(Identifier)
    for code in range(0x3100):
        if 0xD800 <= code < 0xE000:
            continue
        for text in (chr(code), f"a{chr(code)}", f"{chr(code)} "):
            try:
                adapter.validate_python(text)
            except ValidationError:
                expected = False
            else:
                expected = True
            assert identifier_ok(text) == expected, hex(code)
