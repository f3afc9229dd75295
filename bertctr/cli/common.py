"""What every ``bertctr`` command shares: its logger, the subparser type, a private loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

__all__ = ["Subparsers", "log", "run_async"]

log = logging.getLogger("bertctr")
T = TypeVar("T")
if TYPE_CHECKING:  # argparse's class is generic only to type checkers
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction


def run_async(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine in a private loop, leaving the thread's loop alone (Faust needs it)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()
