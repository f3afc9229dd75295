"""What an image looks like, as numbers and tags, and the port that supplies it.

The drivers analysis needs each image's measured attributes: numeric values
(brightness, contrast, colourfulness, sharpness, banner presence, object
scale, clutter, ...) and binary tags (``colour=red``, ``object=shoe``).
Where they come from is not this package's business: the simulator's own
attributes in the benchmark, pixel measurements cached beside the encoder in
production. :class:`AttributeSource` is the seam; :class:`NoAttributes` is
what a server answers with until a real source is plugged in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["AttributeSource", "ImageAttributes", "NoAttributes", "StaticAttributes"]


@dataclass(frozen=True)
class ImageAttributes:
    """One image's measured attributes.

    ``numeric`` maps a name to a finite value; ``tags`` are names of binary
    properties the image has. Tags written ``family=level`` whose levels give
    every image exactly one (a dominant colour) are compared with the average
    level; other tags are compared present vs absent.
    """

    image_id: str
    numeric: Mapping[str, float] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()


@runtime_checkable
class AttributeSource(Protocol):
    """Where a server finds images' attributes (the attribute cache, in production)."""

    async def attributes(self, image_ids: Sequence[str]) -> Mapping[str, ImageAttributes]:
        """The attributes of those of ``image_ids`` that are known; unknown ones left out."""
        ...

    @property
    def unavailable_reason(self) -> str | None:
        """Why no attributes can be had at all (``None``: the source works)."""
        ...


class NoAttributes:
    """The source before any is wired: knows nothing, and says why."""

    def __init__(self, reason: str = "no image attribute source is configured") -> None:
        self._reason = reason

    async def attributes(self, image_ids: Sequence[str]) -> Mapping[str, ImageAttributes]:
        return {}

    @property
    def unavailable_reason(self) -> str | None:
        return self._reason


class StaticAttributes:
    """Attributes held in memory (tests, benchmarks, a precomputed table)."""

    def __init__(self, table: Mapping[str, ImageAttributes]) -> None:
        self._table = dict(table)

    async def attributes(self, image_ids: Sequence[str]) -> Mapping[str, ImageAttributes]:
        return {i: self._table[i] for i in image_ids if i in self._table}

    @property
    def unavailable_reason(self) -> str | None:
        return None
