"""Error bodies that say what is wrong without echoing what was sent.

FastAPI's 422 repeats each invalid value under ``input``: a 1,000-candidate
request with 10 KB titles came back as a 10 MB error. Each echo is cut to
:data:`MAX_ECHO` characters, and a list or object is described, not repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MAX_ECHO", "bounded_errors", "bounded_input"]

#: the most characters of an invalid value an error body repeats
MAX_ECHO = 80


def bounded_input(value: Any) -> Any:
    """``value`` as an error may echo it: short scalars whole, the rest cut or described.

    >>> bounded_input("x" * 100)[-13:]
    '… (100 chars)'
    >>> bounded_input(list(range(5000)))
    '<array of 5000 items>'
    >>> bounded_input({"a": 1})
    '<object with 1 field>'
    >>> bounded_input(3)
    3
    """
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        if len(text) <= MAX_ECHO:
            return text
        return f"{text[:MAX_ECHO]}… ({len(text)} chars)"
    if isinstance(value, Mapping):
        n = len(value)
        return f"<object with {n} field{'s' if n != 1 else ''}>"
    if isinstance(value, list | tuple):
        n = len(value)
        return f"<array of {n} item{'s' if n != 1 else ''}>"
    return value


def bounded_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's error list with every ``input`` bounded (see :func:`bounded_input`)."""
    out = []
    for error in errors:
        item = dict(error)
        if "input" in item:
            item["input"] = bounded_input(item["input"])
        if isinstance(item.get("ctx"), Mapping):
            item["ctx"] = {k: bounded_input(v) for k, v in item["ctx"].items()}
        out.append(item)
    return out
