"""A 422 says what is wrong in a few bytes, whatever size the request was."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from api.contracts import ScoreRequest
from api.problems import MAX_ECHO, bounded_errors


def huge_request() -> dict[str, Any]:
    candidate = {"item_id": "   ", "image_id": "img", "title": "t" * 10_000}
    return {"segment": {"device": "mobile", "geo": "DE"}, "candidates": [candidate] * 1001}


def test_a_huge_invalid_request_gets_a_small_error() -> None:
    with pytest.raises(ValidationError) as caught:
        ScoreRequest.model_validate(huge_request())
    raw = json.dumps(caught.value.errors(include_url=False), default=str)
    bounded = json.dumps(bounded_errors(caught.value.errors(include_url=False)), default=str)
    assert len(raw) > 10_000_000  # what FastAPI's default handler would have sent
    assert len(bounded) < 2_000
    errors = bounded_errors(caught.value.errors(include_url=False))
    assert [e["loc"] for e in errors] == [("candidates",)]
    assert errors[0]["input"] == "<array of 1001 items>"


def test_each_echo_is_cut_but_still_says_what_was_sent() -> None:
    with pytest.raises(ValidationError) as caught:
        ScoreRequest.model_validate(
            {"segment": {"device": "m"}, "candidates": [{"item_id": "i" * 300, "image_id": "x"}]}
        )
    errors = bounded_errors(caught.value.errors(include_url=False))
    echo = next(e["input"] for e in errors if e["loc"][-1] == "item_id")
    assert echo.startswith("i" * MAX_ECHO) and echo.endswith("(300 chars)")
    assert len(echo) < MAX_ECHO + 20
