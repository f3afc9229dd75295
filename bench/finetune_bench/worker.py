"""The settings a worker and the fine-tuning job run with when nothing is configured."""

from __future__ import annotations

from online_ctr.features import FeatureSpec
from online_ctr.learner import Learner
from online_ctr.models import make_model
from schemas.settings import Settings

__all__ = ["DEFAULTS", "worker_learner"]

#: the settings a worker and the job run with when nothing is configured
DEFAULTS = Settings.model_construct()


def worker_learner() -> Learner:
    """A model as a worker starts one with the encoders on (and the job's fresh replay)."""
    return Learner(
        make_model(DEFAULTS.model, with_content=True),
        window_s=DEFAULTS.attribution_window_s,
        spec=FeatureSpec.from_setting(
            DEFAULTS.content_cross_fields, DEFAULTS.content_cross_max_values
        ),
    )
