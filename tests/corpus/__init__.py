"""The committed corpus of bad producer input, and how to turn a row into a message.

``bad_events.jsonl``: one JSON object per line with ``kind`` (unique),
``topic`` (``impressions`` or ``clicks``), ``key``, ``value`` (UTF-8 text) or
``value_b64`` (anything else; both null for a tombstone) and the ``reason``
the stream must dead-letter it with. ``@IID@`` in the key and value is
replaced by an impression id, so copies of one row are distinct messages.
Add a kind by appending a line.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

__all__ = ["CORPUS", "load_corpus", "payload"]

CORPUS = Path(__file__).with_name("bad_events.jsonl")


def load_corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def payload(row: dict[str, Any], iid: str = "imp-1") -> tuple[bytes | None, bytes | None]:
    """(key, value) of a corpus row, with its impression id filled in."""
    if row["value"] is not None:
        value: bytes | None = row["value"].encode()
    elif row["value_b64"] is not None:
        value = base64.b64decode(row["value_b64"])
    else:
        value = None
    if value is not None:
        value = value.replace(b"@IID@", iid.encode())
    key = row["key"].replace("@IID@", iid).encode() if row["key"] is not None else None
    return key, value
