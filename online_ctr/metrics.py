"""Progressive validation: every example is scored before it is learned.

Progressive validation (Blum et al. 1999) is the online model's honest test
set: the prediction for an example is made before its label is learned, so
the running figures estimate quality on unseen traffic without holding any
data out. Tracked overall and per segment key (``Segment.key()``):

* ``logloss``: mean negative log-likelihood (nats), probabilities clipped
  to ``[1e-7, 1 - 1e-7]``;
* ``ne``, normalised entropy (He et al. 2014, "Practical lessons from
  predicting clicks on ads at Facebook"): log loss divided by the entropy of
  the background CTR, i.e. the observed CTR of the same examples so far.
  1.0 means "no better than always predicting the average"; lower is better,
  and unlike raw log loss it compares across segments with different CTRs;
* ``auc``: ROC AUC from score histograms (the streaming form of the rank
  statistic). Scores are binned on the log-odds scale, 4,000 bins over
  [-10, 10], so it is exact up to ties inside a 0.005-logit bin, unlike
  River's ``ROCAUC`` whose error grows with the CTR's skew. Histograms are
  sparse dicts, so a checkpoint carries only the bins in use;
* ``calibration``: mean prediction / observed CTR (1.0 is calibrated);
* ``ctr`` and ``count``;
* ``reliability`` (overall only): predicted vs observed CTR per band of
  :data:`RELIABILITY_POOL` score bins (0.5 logit), read off the same
  histograms: the points of a reliability diagram (``bertctr report``).

Per-segment groups are capped (``max_segments``); later keys are pooled
under :data:`OTHER_SEGMENT`, so free-form segment fields cannot grow the
learner without bound.

>>> m = ProgressiveMetrics()
>>> for p, y in [(0.1, False), (0.8, True), (0.3, False), (0.6, True)]:
...     m.update(p, y, "device=mobile,geo=DE")
>>> snap = m.snapshot()
>>> snap["count"], snap["auc"], snap["segments"]["device=mobile,geo=DE"]["ctr"]
(4, 1.0, 0.5)
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "OTHER_SEGMENT",
    "RELIABILITY_POOL",
    "GroupMetrics",
    "ProgressiveMetrics",
    "entropy",
    "score_bin",
]

EPS = 1e-7
N_BINS = 4000
LOGIT_RANGE = 10.0
OTHER_SEGMENT = "__other__"
#: score bins pooled into one band of the reliability diagram (0.5 logit, 40 bands)
RELIABILITY_POOL = 100


def _clip(p: float) -> float:
    return min(max(p, EPS), 1.0 - EPS)


def entropy(p: float) -> float:
    """Binary entropy in nats (the log loss of always predicting ``p`` at CTR ``p``).

    >>> round(entropy(0.5), 4)
    0.6931
    """
    p = _clip(p)
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def score_bin(p: float) -> int:
    """The histogram bin of a probability (uniform on the log-odds scale)."""
    p = _clip(p)
    scaled = (math.log(p / (1 - p)) + LOGIT_RANGE) / (2 * LOGIT_RANGE) * N_BINS
    return min(N_BINS - 1, max(0, int(scaled)))


class GroupMetrics:
    """Running progressive metrics of one group of examples."""

    def __init__(self) -> None:
        self.count = 0.0
        self.positives = 0.0
        self.sum_p = 0.0
        self.sum_logloss = 0.0
        self._pos_bins: dict[int, float] = {}
        self._neg_bins: dict[int, float] = {}

    def update(self, p: float, y: bool, w: float = 1.0) -> None:
        """Record the prediction ``p`` made for an example before learning its label ``y``."""
        if not 0.0 <= p <= 1.0:  # also rejects NaN
            raise ValueError(f"prediction {p!r} is not a probability")
        q = _clip(p)
        self.count += w
        self.sum_p += w * p
        self.sum_logloss -= w * (math.log(q) if y else math.log(1.0 - q))
        bins = self._pos_bins if y else self._neg_bins
        b = score_bin(p)
        bins[b] = bins.get(b, 0.0) + w
        if y:
            self.positives += w

    def auc(self) -> float | None:
        """ROC AUC (ties count one half); ``None`` until both classes were seen."""
        n_pos, n_neg = sum(self._pos_bins.values()), sum(self._neg_bins.values())
        if n_pos == 0 or n_neg == 0:
            return None
        wins = 0.0
        neg_below = 0.0
        for b in sorted(self._pos_bins.keys() | self._neg_bins.keys()):
            neg_here = self._neg_bins.get(b, 0.0)
            wins += self._pos_bins.get(b, 0.0) * (neg_below + 0.5 * neg_here)
            neg_below += neg_here
        return wins / (n_pos * n_neg)

    def reliability(self) -> list[dict[str, float]]:
        """``{predicted, observed, count}`` per non-empty band of :data:`RELIABILITY_POOL` bins.

        ``predicted`` is the mean of the bins' centre probabilities, exact to
        within half a 0.005-logit bin, so no per-band sum of predictions is kept.

        >>> g = GroupMetrics()
        >>> for p, y in [(0.1, False), (0.1, True), (0.8, True)]:
        ...     g.update(p, y)
        >>> [(round(b["predicted"], 2), b["observed"], b["count"]) for b in g.reliability()]
        [(0.1, 0.5, 2.0), (0.8, 1.0, 1.0)]
        """
        bands: dict[int, list[float]] = {}  # band -> [count, positives, sum of centre p]
        for bins, positive in ((self._pos_bins, 1.0), (self._neg_bins, 0.0)):
            for b, w in bins.items():
                centre = ((b + 0.5) / N_BINS * 2 - 1) * LOGIT_RANGE
                band = bands.setdefault(b // RELIABILITY_POOL, [0.0, 0.0, 0.0])
                band[0] += w
                band[1] += positive * w
                band[2] += w / (1.0 + math.exp(-centre))
        return [
            {"predicted": s / n, "observed": pos / n, "count": n}
            for _, (n, pos, s) in sorted(bands.items())
            if n > 0
        ]

    def snapshot(self) -> dict[str, Any]:
        """``count, logloss, ne, auc, calibration, ctr``; ``None`` where undefined."""
        if self.count == 0:
            return {
                "count": 0,
                "logloss": None,
                "ne": None,
                "auc": None,
                "calibration": None,
                "ctr": None,
            }
        ctr = self.positives / self.count
        logloss = self.sum_logloss / self.count
        return {
            "count": round(self.count),
            "logloss": logloss,
            "ne": logloss / entropy(ctr) if 0 < ctr < 1 else None,
            "auc": self.auc(),
            "calibration": (self.sum_p / self.count) / ctr if ctr > 0 else None,
            "ctr": ctr,
        }


class ProgressiveMetrics:
    """Overall and per-segment :class:`GroupMetrics`.

    Parameters
    ----------
    max_segments
        Most segment keys tracked on their own; further keys share one more
        group, :data:`OTHER_SEGMENT`.
    """

    def __init__(self, max_segments: int = 1000) -> None:
        self.max_segments = max_segments
        self.overall = GroupMetrics()
        self.segments: dict[str, GroupMetrics] = {}

    def update(self, p: float, y: bool, segment: str | None = None, w: float = 1.0) -> None:
        """Record one prediction, overall and (if given) for its segment key."""
        self.overall.update(p, y, w)
        if segment is None:
            return
        group = self.segments.get(segment)
        if group is None:
            if len(self.segments) >= self.max_segments:
                segment = OTHER_SEGMENT
            group = self.segments.setdefault(segment, GroupMetrics())
        group.update(p, y, w)

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable: overall figures, ``reliability``, ``segments: {key: figures}``."""
        out = self.overall.snapshot()
        out["reliability"] = self.overall.reliability()
        out["segments"] = {k: g.snapshot() for k, g in sorted(self.segments.items())}
        return out
