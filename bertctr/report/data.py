"""What a report is made of: plain data per section, or why a section has none.

Every section of ``bertctr report`` is drawn from one field of
:class:`ReportData`; a field is either its data or :class:`Unavailable`
with a reason the page shows ("not available: <reason>"), so a missing
source never breaks the rest of the page. Gathering (:mod:`.gather`) and
drawing (:mod:`.sections`) meet only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.series import CtrSeriesData, ImageRanking

__all__ = [
    "AbArm",
    "AbItem",
    "DriversGrid",
    "EncoderHistory",
    "ImagesData",
    "NeData",
    "ReliabilityBand",
    "ReportData",
    "Unavailable",
]


@dataclass(frozen=True)
class Unavailable:
    """A section without data, and why (shown as "not available: <reason>")."""

    reason: str


@dataclass
class NeData:
    """The model's NE over examples learned, and the oracle's on the same labels (if known)."""

    #: ``model:history`` points (``t``, ``count``, ``ne``, ...), oldest first
    points: list[dict[str, Any]]
    #: (examples, oracle NE): the simulator's true probabilities on the same labels
    oracle: list[tuple[int, float]] | None = None
    #: the latest metrics document's NE (the last point may be up to 10 s older)
    latest_ne: float | None = None


@dataclass(frozen=True)
class ReliabilityBand:
    """One band of predicted CTR: its mean prediction, the CTR observed, the examples."""

    predicted: float
    observed: float
    count: float


@dataclass
class ImagesData:
    """The best and worst images of all segments, their thumbnails' bytes and their tags."""

    ranking: ImageRanking
    #: image id -> encoded image (PNG/JPEG/WebP) bytes; an id missing here has no thumbnail
    images: dict[str, bytes] = field(default_factory=dict)
    #: image id -> tags; None: no tags were computed (the page says so)
    tags: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class AbArm:
    """One variant of a visual test: counts, its Beta posterior and how it compares."""

    name: str
    impressions: int
    clicks: int
    alpha: float
    beta: float
    chance_to_win: float
    is_control: bool = False
    uplift: float | None = None
    uplift_ci_low: float | None = None
    uplift_ci_high: float | None = None


@dataclass
class AbItem:
    """The visual test of one item over every segment (the settled counts)."""

    item_id: str
    decision: str
    message: str
    arms: list[AbArm]


@dataclass
class EncoderHistory:
    """The encoders' story: who serves, the decisions of the stream, the last fine-tuning."""

    status: dict[str, Any] | None
    #: decisions by kind (``promote``, ``retire``)
    counts: dict[str, int]
    finetune: dict[str, Any] | None


@dataclass
class DriversGrid:
    """What drives clicks: an effect per (segment group, attribute), significance marked."""

    groups: list[str]
    attributes: list[str]
    #: effects[i][j]: group i, attribute j (None: not estimated)
    effects: list[list[float | None]]
    significant: list[list[bool]]
    label: str = "effect"
    #: the false-discovery rate significance was controlled at
    q: float | None = None


@dataclass
class ReportData:
    """Everything one report shows; each field its data or :class:`Unavailable`."""

    title: str
    generated_at: float
    #: the window the report covers, in words ("the last 30 minutes", "everything kept")
    window: str
    redis_prefix: str
    ctr: CtrSeriesData | Unavailable
    ne: NeData | Unavailable
    reliability: list[ReliabilityBand] | Unavailable
    images: ImagesData | Unavailable
    ab: list[AbItem] | Unavailable
    encoder: EncoderHistory | Unavailable
    drivers: DriversGrid | Unavailable = Unavailable("the drivers analysis is not built yet")
    ope: list[dict[str, Any]] | Unavailable = Unavailable("off-policy evaluation is not built yet")
    quality: list[dict[str, Any]] | Unavailable = Unavailable(
        "per-audience quality is not built yet"
    )
