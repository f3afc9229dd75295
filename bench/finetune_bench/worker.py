"""The settings a worker and the fine-tuning job run with when nothing is configured."""

from __future__ import annotations

from online_ctr.learner import Learner
from schemas.settings import Settings
from wiring.models import fresh_learner

__all__ = ["DEFAULTS", "worker_learner"]

#: the settings a worker and the job run with when nothing is configured
DEFAULTS = Settings.model_construct()


def worker_learner() -> Learner:
    """A model as a worker starts one with the encoders on (and the job's fresh replay)."""
    return fresh_learner(DEFAULTS, with_content=True)
