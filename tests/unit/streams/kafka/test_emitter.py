"""The worker's producer: names the topics it writes, and refuses to write once stopped."""

from __future__ import annotations

import asyncio

import pytest

from schemas import topics
from schemas.settings import Settings
from streams.kafka.emitter import Emitter


def test_dead_letters_go_to_the_prefixed_topic() -> None:
    emitter = Emitter(Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="p-"))
    assert emitter.dead_letter_topic == "p-" + topics.DEAD_LETTER


def test_a_stopped_emitter_refuses_to_send_instead_of_reconnecting() -> None:
    """A timer firing while the worker stops must not start a new producer."""

    async def run() -> None:
        emitter = Emitter(Settings(kafka_bootstrap="127.0.0.1:1"))
        await emitter.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            await emitter.send("t", b"x")

    asyncio.run(run())


def test_the_join_changelog_is_named_after_the_app_and_the_state_topic() -> None:
    # the name Faust gave the join table's changelog, so earlier state carries over
    assert topics.join_changelog("bertctr", "p-") == "bertctr-p-join-state-changelog"
