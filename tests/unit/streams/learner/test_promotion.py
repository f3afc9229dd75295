"""The promotion settings reach the comparison a new version is judged by."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from encoder_server.base import IMAGE_ENCODER
from online_ctr.learner import Learner
from online_ctr.models.registry import make_model
from online_ctr.promotion.duel import EncoderDuel
from schemas.events import EncoderVersion
from schemas.settings import Settings
from streams.learner.promotion import Promotion


class Announcing:
    """A watcher that hears one announcement (the real one needs a broker)."""

    def __init__(self, announced: EncoderVersion) -> None:
        self.pending = [announced]

    async def poll(self) -> list[EncoderVersion]:
        out, self.pending = self.pending, []
        return out


def test_every_promotion_setting_reaches_the_comparison() -> None:
    settings = Settings(
        promotion_alpha=0.1,
        promotion_margin=0.002,
        promotion_clip=0.75,
        promotion_min_examples=300,
        promotion_max_examples=9_000,
    )
    announced = EncoderVersion(
        model=IMAGE_ENCODER, version=3, served_name=f"{IMAGE_ENCODER}.v3", created_at=1.0
    )
    duel = EncoderDuel(Learner(make_model(with_content=True)), version=IMAGE_ENCODER)
    promotion = Promotion(settings, watcher=Announcing(announced))  # type: ignore[arg-type]
    asyncio.run(promotion.listen(duel))
    c = duel.comparison
    assert duel.challenger_version == f"{IMAGE_ENCODER}.v3" and c is not None
    assert (c.alpha, c.margin, c.clip, c.min_examples, c.max_examples) == (
        0.1,
        0.002,
        0.75,
        300,
        9_000,
    )


def test_the_default_clip_is_the_tight_one_measured_for_encoder_duels() -> None:
    assert Settings().promotion_clip == 1.0
    duel = EncoderDuel(Learner(make_model(with_content=True)), version="2")
    duel.challenge("3")
    assert duel.comparison is not None and duel.comparison.clip == 1.0


def test_a_margin_the_clip_can_never_exceed_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="promotion_margin"):
        Settings(promotion_margin=1.0, promotion_clip=1.0)
    with pytest.raises(ValidationError, match="promotion_clip"):
        Settings.from_env({"BERTCTR_PROMOTION_CLIP": "0"})
