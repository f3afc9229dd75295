"""The model store, a fresh learner and the serving champion, built from settings.

A worker, the API, the fine-tuning job and the benches must all agree on
where snapshots live, on what a model starts as when none exists, and on
which image model the serving champion embeds with; they ask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from encoder_server.base import IMAGE_ENCODER
from online_ctr.features import FeatureSpec
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.promotion.duel import EncoderDuel
from online_ctr.store import FileModelStore
from schemas.settings import Settings

__all__ = ["Champion", "champion_of", "fresh_learner", "model_store"]


def model_store(settings: Settings) -> FileModelStore:
    """The signed snapshot store at ``BERTCTR_CHECKPOINT_DIR`` (key: ``BERTCTR_CHECKPOINT_KEY``)."""
    return FileModelStore(settings.checkpoint_dir, settings.checkpoint_key.encode())


def fresh_learner(settings: Settings, *, with_content: bool = True) -> Learner:
    """A model as a worker starts one when no snapshot exists.

    ``with_content``: image and title embeddings are features (a worker with
    Triton configured). The crossed segment fields follow
    ``BERTCTR_CONTENT_CROSS_FIELDS``; a resumed snapshot keeps its own.
    """
    return Learner(
        make_model(settings.model, with_content=with_content),
        window_s=settings.attribution_window_s,
        spec=FeatureSpec.from_setting(
            settings.content_cross_fields, settings.content_cross_max_values
        ),
    )


@dataclass(frozen=True)
class Champion:
    """The serving model of a snapshot and the served image model it embeds with."""

    learner: Learner
    image_model: str


def champion_of(snapshot_object: Any) -> Champion:
    """The champion of what a snapshot holds (a learner, or a duel of encoder versions).

    A champion that never changed version embeds with the base image encoder.
    """
    duel = (
        snapshot_object
        if isinstance(snapshot_object, EncoderDuel)
        else EncoderDuel.adopt(snapshot_object, IMAGE_ENCODER)
    )
    return Champion(duel.champion, duel.champion_version or IMAGE_ENCODER)
