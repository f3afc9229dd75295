"""Micro-batching: many small concurrent requests, few full model calls.

Many agents and many small batches ask the encoders at once; one request per
caller would waste the accelerator and the network. The batcher knows
nothing of Triton: it gathers items, calls ``send`` once per batch and hands
each caller its own rows, so the policy (how long to wait, how much to pack)
is tested without a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from encoder_server.client.errors import EncoderUnavailable

__all__ = ["MicroBatcher"]

R = TypeVar("R")


@dataclass
class _Waiting(Generic[R]):
    items: Sequence[bytes]
    future: asyncio.Future[list[R]]


class MicroBatcher(Generic[R]):
    """Gathers one model's concurrent requests into calls of at most ``max_batch`` items.

    ``submit`` queues a caller's items (at most ``max_batch``) and returns a
    future for their rows. A call goes out when ``max_batch`` items wait or
    ``window_s`` after the first one arrived; callers are packed whole, in
    order, and ``send``'s rows are scattered back. A failed ``send`` fails
    every caller in it; closing fails the waiting and the in-flight ones
    with :class:`~encoder_server.client.errors.EncoderUnavailable`.
    """

    def __init__(
        self,
        send: Callable[[list[bytes]], Awaitable[list[R]]],
        max_batch: int,
        window_s: float,
    ) -> None:
        self.send = send
        self.max_batch = max_batch
        self.window_s = window_s
        self.waiting: list[_Waiting[R]] = []
        self.size = 0
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, items: Sequence[bytes]) -> asyncio.Future[list[R]]:
        """Queue ``items`` (at most ``max_batch``); the future gets their rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        self.waiting.append(_Waiting[R](items, future))
        self.size += len(items)
        while self.size >= self.max_batch:
            self._flush_one()
        if self.waiting and self.timer is None:
            self.timer = loop.call_later(self.window_s, self._on_timer)
        return future

    def _on_timer(self) -> None:
        self.timer = None
        while self.waiting:
            self._flush_one()

    def _flush_one(self) -> None:
        taken: list[_Waiting[R]] = []
        n = 0
        while self.waiting and (not taken or n + len(self.waiting[0].items) <= self.max_batch):
            entry = self.waiting.pop(0)
            taken.append(entry)
            n += len(entry.items)
        self.size -= n
        if not self.waiting and self.timer is not None:
            self.timer.cancel()
            self.timer = None
        task = asyncio.get_running_loop().create_task(self._run(taken))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, taken: list[_Waiting[R]]) -> None:
        live = [w for w in taken if not w.future.done()]  # callers may have given up
        if not live:
            return
        items = [item for w in live for item in w.items]
        try:
            rows = await self.send(items)
        except asyncio.CancelledError:  # the client is closing
            for w in live:
                if not w.future.done():
                    w.future.set_exception(EncoderUnavailable("embedding client closed"))
            raise
        except Exception as exc:
            for w in live:
                if not w.future.done():
                    w.future.set_exception(exc)
            return
        start = 0
        for w in live:
            end = start + len(w.items)
            if not w.future.done():
                w.future.set_result(rows[start:end])
            start = end

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for w in self.waiting:
            if not w.future.done():
                w.future.set_exception(EncoderUnavailable("embedding client closed"))
        self.waiting.clear()
        self.size = 0
        for task in self.tasks:
            task.cancel()
