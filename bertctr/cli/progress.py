"""Progress a person can read: a bar in a terminal, plain lines anywhere else.

The one place that decides how long-running commands (``bertctr demo``,
``bertctr finetune``, the benches) show their progress: when the progress
stream (stderr) is a terminal (:func:`interactive`), a tqdm bar that redraws
in place; otherwise (a log file, CI, a pipe, a parent that captures the
output) a plain line now and then, so a log holds a readable history rather
than carriage returns.

Library code never writes to a stream: it is handed a :class:`Progress` (or a
bar) by the command that runs it, as ``bertctr demo`` hands one to
:func:`bertctr.demo.run_demo`; code below this layer (the head trainer in
``encoder_server``) takes anything with ``update``, ``set_postfix`` and
``close``, which a :class:`Bar` has.

>>> import io
>>> out = io.StringIO()  # not a terminal: plain lines
>>> show = Progress(stream=out, prefix="[demo] ", clock=lambda: 0.0)
>>> show.terminal
False
>>> with show.bar("traffic", total=3, unit="messages") as bar:
...     bar.update_to(3)
>>> show.say("done")
>>> print(out.getvalue(), end="")
[demo] traffic: 3/3 messages (100%) in 0.0 s
[demo] done
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Bar", "LineBar", "Progress", "TerminalBar", "interactive"]

Clock = Callable[[], float]

#: a plain line at most this often (seconds) while a bar runs off a terminal
EVERY_S = 10.0


def interactive(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: ``sys.stderr``) is a terminal a person watches.

    >>> import io
    >>> interactive(io.StringIO())
    False
    """
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


def _postfix(values: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


class Bar:
    """Progress of one task: ``update``/``update_to`` a count, ``close`` when done.

    A context manager (closed on exit). :class:`TerminalBar` draws it,
    :class:`LineBar` writes plain lines; :meth:`Progress.bar` picks.
    """

    def __init__(self, desc: str, total: int | None, unit: str) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.n = 0
        self.postfix: dict[str, object] = {}
        self.closed = False

    def update(self, n: int = 1) -> None:
        """``n`` more done."""
        self.update_to(self.n + n)

    def update_to(self, done: int) -> None:
        """``done`` done so far (a count that only grows)."""
        self.n = max(self.n, done)
        self._shown()

    def set_postfix(self, **values: object) -> None:
        """Figures shown after the count (for example the last epoch's losses)."""
        self.postfix = dict(values)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._closed()

    def _shown(self) -> None:
        """The count changed (subclasses show it)."""

    def _closed(self) -> None:
        """The task ended (subclasses say so)."""

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class LineBar(Bar):
    """Plain lines: the count at most every ``every_s`` seconds, and once at the end."""

    def __init__(
        self,
        desc: str,
        total: int | None,
        unit: str,
        write: Callable[[str], None],
        every_s: float = EVERY_S,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(desc, total, unit)
        self.write, self.every_s, self.clock = write, every_s, clock
        self.started = clock()
        self._last = self.started

    def _count(self) -> str:
        if self.total:
            return f"{self.n}/{self.total} {self.unit} ({self.n / self.total:.0%})"
        return f"{self.n} {self.unit}"

    def _line(self, tail: str = "") -> str:
        extra = f" {_postfix(self.postfix)}" if self.postfix else ""
        return f"{self.desc}: {self._count()}{tail}{extra}"

    def _shown(self) -> None:
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            self.write(self._line())

    def _closed(self) -> None:
        self.write(self._line(f" in {self.clock() - self.started:.1f} s"))


class TerminalBar(Bar):
    """A tqdm bar drawn on ``stream``, redrawn in place."""

    def __init__(self, desc: str, total: int | None, unit: str, stream: TextIO) -> None:
        super().__init__(desc, total, unit)
        self.bar = _tqdm()(total=total, desc=desc, unit=f" {unit}", file=stream, dynamic_ncols=True)

    def update_to(self, done: int) -> None:
        if done > self.n:
            self.bar.update(done - self.n)
        super().update_to(done)

    def set_postfix(self, **values: object) -> None:
        super().set_postfix(**values)
        self.bar.set_postfix_str(_postfix(self.postfix))

    def _closed(self) -> None:
        self.bar.close()


def _tqdm() -> Any:
    """tqdm's bar class (tqdm ships no type information, hence ``Any``)."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm


class Progress:
    """How one command shows progress: bars and messages, for a terminal or a log.

    ``terminal``: ``None`` decides from ``stream`` (:func:`interactive`);
    ``prefix`` starts every plain line and message (``"[demo] "``).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        terminal: bool | None = None,
        prefix: str = "",
        every_s: float = EVERY_S,
        clock: Clock = time.monotonic,
    ) -> None:
        self._stream = stream
        self.terminal = interactive(self.stream) if terminal is None else terminal
        self.prefix, self.every_s, self.clock = prefix, every_s, clock

    @property
    def stream(self) -> TextIO:
        """Where progress goes (``sys.stderr`` unless given: looked up at use, as print does)."""
        return sys.stderr if self._stream is None else self._stream

    def bar(self, desc: str, total: int | None = None, unit: str = "it") -> Bar:
        """A bar over ``total`` ``unit`` (``None``: a count without an end)."""
        if self.terminal:
            return TerminalBar(desc, total, unit, self.stream)
        return LineBar(desc, total, unit, self._line, self.every_s, self.clock)

    def say(self, line: str, file: TextIO | None = None) -> None:
        """One message (to ``file``, default the progress stream), without breaking a bar."""
        file = self.stream if file is None else file
        text = f"{self.prefix}{line}" if file is self.stream else line
        if self.terminal:
            _tqdm().write(text, file=file)
            file.flush()
        else:
            print(text, file=file, flush=True)

    def _line(self, text: str) -> None:
        print(f"{self.prefix}{text}", file=self.stream, flush=True)
