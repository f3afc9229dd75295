"""What a learner batch holds, in stream order: labelled examples and watermark records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.events import LabelledImpression, WatermarkRecord

__all__ = ["Fresh", "Mark", "Pending"]


@dataclass(frozen=True, slots=True)
class Fresh:
    """A labelled example not yet learned, with the message it came in (for dead letters)."""

    #: ``topic:partition``
    source: str
    offset: int
    labelled: LabelledImpression
    message: Any


@dataclass(frozen=True, slots=True)
class Mark:
    """A join watermark record in its place in the batch."""

    source: str
    offset: int
    record: WatermarkRecord


Pending = Fresh | Mark
