"""What a fine-tuning run produced: the new head, its curve and its held-out verdict.

Its own module because three readers share it without needing the
training code: the publish gate (:mod:`encoder_server.training.gate`), the
report writer (:mod:`encoder_server.training.report`) and the job's JSON
output (:meth:`FinetuneResult.to_dict`).

What the trainer measured (curve, splits, held-out metrics) is declared once,
in :class:`~encoder_server.training.fitted.FittedHead`; a result *is* a
fitted head plus what :func:`train_head` adds around the training: the
servable projection, the wall time and memory, the settings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from encoder_server.projection import Projection
from encoder_server.training.click_metrics import Metrics
from encoder_server.training.fitted import FittedHead

__all__ = ["FinetuneResult"]


@dataclass(frozen=True)
class FinetuneResult(FittedHead):
    """What :func:`train_head` learnt and how it did on later traffic.

    The attributes of :class:`~encoder_server.training.fitted.FittedHead`
    (``head``, ``curve``, ``best_epoch``, ``splits``, ``before``,
    ``recalibrated``, ``after``, ``reference``, ``improvement``,
    ``improvement_se``, ``subspace``, ``subspace_variance``), and:

    Attributes
    ----------
    projection:
        The new head, ready to save and serve.
    seconds, peak_rss_bytes:
        Wall time of :func:`train_head` and the process's peak resident
        memory when it returned (``getrusage``: a high-water mark of the
        whole process, so it includes whatever the caller held before).
    settings:
        The parameters the head was trained with
        (:meth:`~encoder_server.training.config.HeadTrainingConfig.settings`).
    """

    projection: Projection
    seconds: float
    peak_rss_bytes: int
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        fitted: FittedHead,
        *,
        projection: Projection,
        seconds: float,
        peak_rss_bytes: int,
        settings: dict[str, Any],
    ) -> FinetuneResult:
        """``fitted``, with what the run added around it."""
        measured = {f.name: getattr(fitted, f.name) for f in dataclasses.fields(FittedHead)}
        return cls(
            **measured,
            projection=projection,
            seconds=seconds,
            peak_rss_bytes=peak_rss_bytes,
            settings=settings,
        )

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
