"""What is in one image: its tags and measured attributes, as both sides of Triton read them.

The image describer (:mod:`encoder_server.serving.describe`) writes one
:class:`Description` per image as a JSON string in its ``description``
output; the client (:mod:`encoder_server.client.describer`) reads it back and
caches it. One class, one JSON form, so the two cannot drift:

.. code-block:: json

    {"tags": [{"label": "sports car", "score": 0.71}, ...],
     "tag_source": "imagenet",
     "attributes": {"brightness": 0.62, "colour": "red", ...}}

``tag_source`` is ``imagenet`` (the backbone's own 1,000-class head,
softmax scores) or ``clip-zero-shot`` (a CLIP checkpoint's similarity to
each configured label, softmax over the labels). Attributes are those of
:mod:`encoder_server.serving.attributes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLIP_ZERO_SHOT", "IMAGENET", "Description", "Tag"]

#: tag sources
IMAGENET = "imagenet"
CLIP_ZERO_SHOT = "clip-zero-shot"


@dataclass(frozen=True)
class Tag:
    """One label and its score (a probability in [0, 1])."""

    label: str
    score: float


@dataclass(frozen=True)
class Description:
    """An image's top tags, best first, and its measured attributes."""

    tags: tuple[Tag, ...]
    attributes: Mapping[str, float | str] = field(default_factory=dict)
    tag_source: str = IMAGENET

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form ``{"tags": [...], "tag_source": ..., "attributes": {...}}``."""
        return {
            "tags": [{"label": t.label, "score": round(t.score, 4)} for t in self.tags],
            "tag_source": self.tag_source,
            "attributes": dict(self.attributes),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Description:
        """Read :meth:`as_dict`'s form back; ``ValueError`` when it is not one."""
        try:
            tags = tuple(Tag(str(t["label"]), float(t["score"])) for t in data["tags"])
            attributes = {
                str(k): v if isinstance(v, str) else float(v)
                for k, v in dict(data.get("attributes", {})).items()
            }
            return cls(tags, attributes, str(data.get("tag_source", IMAGENET)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a description: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Description:
        """Parse :meth:`to_json`'s output; ``ValueError`` when it is not one.

        >>> d = Description((Tag("sports car", 0.71),), {"colour": "red"})
        >>> Description.from_json(d.to_json()) == d
        True
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a description: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("not a description: not a JSON object")
        return cls.from_dict(data)
