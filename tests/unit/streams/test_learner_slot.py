"""LearnerSlot: the learner built once in a thread, waiters served, a failed build raised."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, cast

import pytest

from streams.learner_slot import LearnerBuildError, LearnerSlot

if TYPE_CHECKING:
    from streams.learner.feed import LearnerFeed


class FakeFeed:
    """Stands in for LearnerFeed: runs until closed, says which thread built it."""

    def __init__(self) -> None:
        self.built_in = threading.get_ident()
        self.ran = False
        self.agent = None
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self.ran = True
        await self._stop.wait()

    async def close(self) -> None:
        self._stop.set()

    def describe(self) -> dict[str, Any]:
        return {"role": "learner", "epoch": 3, "terms": 1}

    def assigned(self) -> list[tuple[str, int]]:
        return [("labelled", 0)]

    def highwater(self, topic: str, partition: int) -> int | None:
        return 10

    def committed(self, topic: str, partition: int) -> int | None:
        return 7


class Builder:
    """A build that counts its calls and blocks until released (as slow imports do)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error
        self.release = threading.Event()

    def __call__(self) -> LearnerFeed:
        self.calls += 1
        assert self.release.wait(5), "the test never released the build"
        if self.error is not None:
            raise self.error
        return cast("LearnerFeed", FakeFeed())


async def test_built_once_and_every_waiter_gets_the_same_feed() -> None:
    build = Builder()
    slot = LearnerSlot(build)
    waiters = [asyncio.create_task(slot.built()) for _ in range(3)]
    runner = asyncio.create_task(slot.run())
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters)
    build.release.set()
    feeds = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert build.calls == 1
    assert all(feed is feeds[0] for feed in feeds)
    assert await slot.built() is feeds[0] and build.calls == 1
    await asyncio.sleep(0.01)
    assert slot.feed is feeds[0] and cast(FakeFeed, feeds[0]).ran
    await slot.close()
    await asyncio.wait_for(runner, 5)


async def test_stands_by_until_built_then_reports_the_feed() -> None:
    build = Builder()
    slot = LearnerSlot(build)
    runner = asyncio.create_task(slot.run())
    await asyncio.sleep(0.05)
    assert slot.describe() == {"role": "standby", "epoch": None, "terms": 0}
    assert slot.agent is None and slot.assigned() == []
    assert slot.highwater("labelled", 0) is None and slot.committed("labelled", 0) is None
    build.release.set()
    await asyncio.wait_for(slot.built(), 5)
    await asyncio.sleep(0.01)
    assert slot.describe()["role"] == "learner"
    assert slot.assigned() == [("labelled", 0)]
    assert (slot.highwater("labelled", 0), slot.committed("labelled", 0)) == (10, 7)
    await slot.close()
    await asyncio.wait_for(runner, 5)


async def test_the_build_runs_off_the_event_loop() -> None:
    build = Builder()
    slot = LearnerSlot(build)
    runner = asyncio.create_task(slot.run())
    ticks = 0
    for _ in range(5):  # the loop keeps running while the build blocks its thread
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and build.calls == 1
    build.release.set()
    feed = cast(FakeFeed, await asyncio.wait_for(slot.built(), 5))
    assert feed.built_in != threading.get_ident()
    await slot.close()
    await asyncio.wait_for(runner, 5)


async def test_a_failed_build_raises_to_run_and_to_every_waiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    build = Builder(error=ImportError("No module named 'river'"))
    slot = LearnerSlot(build)
    waiter = asyncio.create_task(slot.built())
    runner = asyncio.create_task(slot.run())
    build.release.set()
    with pytest.raises(LearnerBuildError, match=r"could not be built.*river") as raised:
        await asyncio.wait_for(runner, 5)  # raises, so Faust crashes the worker
    assert isinstance(raised.value.__cause__, ImportError)
    with pytest.raises(LearnerBuildError):
        await asyncio.wait_for(waiter, 5)
    assert "learner could not be built" in caplog.text
    assert slot.describe()["role"] == "standby" and build.calls == 1
    await asyncio.wait_for(slot.close(), 1)  # nothing to stop


async def test_closed_while_building_returns_at_once_and_never_runs_the_feed() -> None:
    build = Builder()
    slot = LearnerSlot(build)
    runner = asyncio.create_task(slot.run())
    await asyncio.sleep(0.05)
    await asyncio.wait_for(slot.close(), 1)  # does not wait for the build
    build.release.set()
    await asyncio.wait_for(runner, 5)
    feed = cast(FakeFeed, await slot.built())
    assert not feed.ran and slot.feed is None
    assert slot.describe()["role"] == "standby"


async def test_a_cancelled_waiter_does_not_cancel_the_build() -> None:
    build = Builder()
    slot = LearnerSlot(build)
    waiter = asyncio.create_task(slot.built())
    await asyncio.sleep(0.05)
    waiter.cancel()
    build.release.set()
    feed = await asyncio.wait_for(slot.built(), 5)
    assert isinstance(feed, FakeFeed) and build.calls == 1
