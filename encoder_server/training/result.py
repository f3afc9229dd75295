"""What a fine-tuning run produced: the new head, its curve and its held-out verdict.

Its own module because three readers share it without needing the
training code: the publish gate (:mod:`encoder_server.training.gate`), the
report writer (:mod:`encoder_server.training.report`) and the job's JSON
output (:meth:`FinetuneResult.to_dict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from encoder_server.projection import Projection
from encoder_server.training.click_metrics import Metrics
from encoder_server.training.head_trainer import EpochLoss, HeadParameters, SplitStats

__all__ = ["FinetuneResult"]


@dataclass(frozen=True)
class FinetuneResult:
    """What :func:`train_head` learnt and how it did on later traffic.

    Attributes
    ----------
    projection:
        The new head, ready to save and serve.
    head:
        The trained parameters before folding (see :class:`HeadParameters`).
    curve:
        Log loss per epoch, epoch 0 first.
    best_epoch:
        The epoch whose parameters were kept (lowest validation loss).
    splits:
        ``"train"``, ``"validation"``, ``"holdout"``: what each held.
    before, recalibrated, after:
        Held-out metrics of the offset alone, of the offset with per-group
        biases fitted on the training split, and of the full model.
    reference:
        ``"before"`` or ``"recalibrated"``, whichever has the lower held-out
        log loss: the bar the head is measured against.
    improvement, improvement_se:
        Held-out mean of the paired per-example log-loss difference,
        reference minus after (nats; > 0: the head helps), and its standard
        error.
    seconds, peak_rss_bytes:
        Wall time of :func:`train_head` and the process's peak resident
        memory when it returned (``getrusage``: a high-water mark of the
        whole process, so it includes whatever the caller held before).
    settings:
        The arguments the head was trained with.
    """

    projection: Projection
    head: HeadParameters
    curve: tuple[EpochLoss, ...]
    best_epoch: int
    splits: dict[str, SplitStats]
    before: Metrics
    recalibrated: Metrics
    after: Metrics
    reference: str
    improvement: float
    improvement_se: float
    seconds: float
    peak_rss_bytes: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready (NaN becomes ``None``)."""

        def clean(value: float) -> float | None:
            return value if math.isfinite(value) else None

        def metrics(m: Metrics) -> dict[str, float | None]:
            return {"log_loss": clean(m.log_loss), "auc": clean(m.auc)}

        return {
            "projection": {
                "kind": self.projection.kind,
                "version": self.projection.version,
                "features": self.projection.features,
                "d_in": self.projection.d_in,
                "d_out": self.projection.d_out,
                "note": self.projection.note,
            },
            "settings": dict(self.settings),
            "segments": int(self.head.segment_ids.shape[0]),
            "splits": {
                name: {
                    "examples": s.examples,
                    "clicks": s.clicks,
                    "images": s.images,
                    "ts_start": s.ts_start,
                    "ts_end": s.ts_end,
                }
                for name, s in self.splits.items()
            },
            "holdout": {
                "before": metrics(self.before),
                "recalibrated": metrics(self.recalibrated),
                "after": metrics(self.after),
                "reference": self.reference,
                "improvement": clean(self.improvement),
                "improvement_se": clean(self.improvement_se),
            },
            "best_epoch": self.best_epoch,
            "curve": [
                {
                    "epoch": e.epoch,
                    "train": clean(e.train),
                    "validation": clean(e.validation),
                    "holdout": clean(e.holdout),
                }
                for e in self.curve
            ],
            "seconds": self.seconds,
            "peak_rss_bytes": self.peak_rss_bytes,
        }
