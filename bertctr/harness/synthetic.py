"""Synthetic impressions and clicks for the throughput benchmarks.

Not the simulator (no ground truth, no images): the fastest way to make a
realistic mix of keys, items, variants and segments, ~5% clicked, dated in
the past so that no future-skew guard refuses them.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from schemas.topics import CLICKS, IMPRESSIONS

__all__ = ["RawEvent", "make_events"]

#: (topic name without prefix, key, JSON value)
RawEvent = tuple[str, bytes, bytes]


def make_events(
    n: int, seed: int = 1, *, base: float | None = None, spacing_s: float = 0.01, tag: str = ""
) -> list[RawEvent]:
    """``n`` impressions, ~5% clicked (0-30 s later), in publish order.

    ``tag`` makes the ids distinct from another batch's.
    """
    rnd = random.Random(seed)
    start = time.time() - 3600 if base is None else base
    out: list[RawEvent] = []
    for i in range(n):
        iid = f"{tag}imp-{i}"
        imp: dict[str, Any] = {
            "event_id": f"{tag}e{i}",
            "impression_id": iid,
            "ts": start + i * spacing_s,
            "item_id": f"item-{i % 50}",
            "image_id": f"img-{i % 200}",
            "variant": f"v{i % 4}",
            "title": "a red shoe",
            "position": i % 10,
            "segment": {
                "device": rnd.choice(["mobile", "desktop"]),
                "geo": "DE",
                "taste": f"t{i % 4}",
            },
        }
        out.append((IMPRESSIONS, iid.encode(), json.dumps(imp).encode()))
        if rnd.random() < 0.05:
            click = {
                "event_id": f"{tag}c{i}",
                "impression_id": iid,
                "ts": imp["ts"] + rnd.uniform(0, 30),
            }
            out.append((CLICKS, iid.encode(), json.dumps(click).encode()))
    return out
