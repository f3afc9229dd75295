"""The model's metrics document and its ``model:history`` points, written to Redis.

Every ``BERTCTR_METRICS_INTERVAL_S`` the document at ``P model:metrics`` is
overwritten; at most every :data:`~schemas.keys.MODEL_HISTORY_EVERY_S` wall
seconds a compact point is appended to the bounded ``model:history`` list in
the same transaction, which the live page plots.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from schemas.keys import MODEL_HISTORY_EVERY_S, MODEL_HISTORY_LEN, KeySpace

__all__ = ["HISTORY_FIELDS", "MetricsPublisher", "history_point"]

log = logging.getLogger(__name__)

#: what one point of ``model:history`` keeps of the metrics snapshot (plus ``t``, the
#: wall time): ``watermark`` is the event time the model had reached, so a chart can
#: put the model on the clock of the CTR charts (event time: simulated in a replay)
HISTORY_FIELDS = ("count", "logloss", "ne", "auc", "calibration", "watermark")


def history_point(snapshot: dict[str, Any], at: float) -> dict[str, Any] | None:
    """The compact ``model:history`` point of a metrics snapshot; ``None`` before any example.

    >>> point = history_point({"count": 10, "logloss": 0.2, "ne": 0.9, "auc": 0.7,
    ...                        "calibration": 1.1, "watermark": 50.0, "segments": {}}, 100.0)
    >>> point == {"t": 100.0, "count": 10, "logloss": 0.2, "ne": 0.9, "auc": 0.7,
    ...           "calibration": 1.1, "watermark": 50.0}
    True
    """
    if not snapshot.get("count"):
        return None
    return {"t": at, **{name: snapshot.get(name) for name in HISTORY_FIELDS}}


class MetricsPublisher:
    """Owns the two clocks of metrics publishing: the document's interval and the history's."""

    def __init__(self, client: aioredis.Redis, keys: KeySpace, interval_s: float) -> None:
        self.client = client
        self.keys = keys
        self.interval_s = interval_s
        self._last_metrics = 0.0
        #: wall time of the newest ``model:history`` point written
        self._last_history = float("-inf")

    def due(self, now: float, force: bool = False) -> bool:
        """Whether a document is due at monotonic time ``now`` (and start its interval if so)."""
        if force or now - self._last_metrics >= self.interval_s:
            self._last_metrics = now
            return True
        return False

    async def publish(self, snapshot: dict[str, Any]) -> None:
        """Write ``snapshot``, and a history point when one is due; a Redis failure is logged."""
        wall = time.time()
        point = None
        if wall - self._last_history >= MODEL_HISTORY_EVERY_S:
            point = history_point(snapshot, wall)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(self.keys.model_metrics, json.dumps(snapshot))
                if point is not None:
                    pipe.rpush(self.keys.model_history, json.dumps(point))
                    pipe.ltrim(self.keys.model_history, -MODEL_HISTORY_LEN, -1)
                await pipe.execute()
            if point is not None:
                self._last_history = wall
        except (RedisError, OSError) as exc:
            log.warning("could not publish model metrics: %s", exc)
