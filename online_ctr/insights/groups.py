"""Segment groups: the audiences a driver is reported for, and counts rolled up to them.

A segment is a full key (``device=mobile,geo=DE,taste=t1``); a *segment
group* is one value of one field (``taste=t1``), or ``all``. Teams ask
"what makes tablet users click", not about one of 48 cells, and a group has
the traffic to answer. Any partial key (``device=mobile,geo=DE``) or full
key is also a group: the segments whose fields it names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["ALL", "CellCount", "GroupCount", "group_fields", "roll_up", "segment_groups"]

#: the group of every segment together
ALL = "all"


@dataclass(frozen=True)
class CellCount:
    """Impressions and clicks of one image in one full segment."""

    item_id: str
    image_id: str
    segment: Mapping[str, str]
    impressions: int
    clicks: int


@dataclass(frozen=True)
class GroupCount:
    """Impressions and clicks of one image in one segment group."""

    group: str
    item_id: str
    image_id: str
    impressions: int
    clicks: int


def group_fields(group: str) -> dict[str, str] | None:
    """The fields a group names (``{}`` for ``all``); ``None`` if it is not ``k=v`` pairs.

    >>> group_fields("taste=t1"), group_fields("all"), group_fields("nonsense")
    ({'taste': 't1'}, {}, None)
    """
    if group == ALL:
        return {}
    fields: dict[str, str] = {}
    for part in group.split(","):
        key, sep, value = part.partition("=")
        if not (sep and key and value) or key in fields:
            return None
        fields[key] = value
    return fields


def segment_groups(segment: Mapping[str, str]) -> list[str]:
    """``all`` and one group per field of ``segment``.

    >>> segment_groups({"device": "mobile", "geo": "DE"})
    ['all', 'device=mobile', 'geo=DE']
    """
    return [ALL, *(f"{k}={v}" for k, v in sorted(segment.items()))]


def _matches(segment: Mapping[str, str], fields: Mapping[str, str]) -> bool:
    return all(segment.get(k) == v for k, v in fields.items())


def roll_up(cells: Iterable[CellCount], extra: Iterable[str] = ()) -> list[GroupCount]:
    """Each image's counts in every standard group of its segments, and in ``extra`` groups.

    >>> cells = [CellCount("i", "a", {"device": "m", "geo": "DE"}, 10, 1),
    ...          CellCount("i", "a", {"device": "m", "geo": "FR"}, 5, 2)]
    >>> for g in roll_up(cells, ["device=m,geo=FR"]):
    ...     print(g.group, g.impressions, g.clicks)
    all 15 3
    device=m 15 3
    device=m,geo=FR 5 2
    geo=DE 10 1
    geo=FR 5 2
    """
    wanted = [(g, f) for g in dict.fromkeys(extra) if (f := group_fields(g)) is not None]
    totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for cell in cells:
        groups = set(segment_groups(cell.segment))
        groups.update(g for g, f in wanted if _matches(cell.segment, f))
        for group in groups:
            total = totals[(group, cell.item_id, cell.image_id)]
            total[0] += cell.impressions
            total[1] += cell.clicks
    return [
        GroupCount(group, item, image, imps, clicks)
        for (group, item, image), (imps, clicks) in sorted(totals.items())
    ]
