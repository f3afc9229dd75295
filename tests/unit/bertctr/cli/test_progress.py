"""Progress in a terminal is a bar; anywhere else it is a few plain lines."""

from __future__ import annotations

import io
import sys

import pytest

from bertctr.cli.progress import LineBar, Progress, TerminalBar, interactive


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_is_told_from_a_file_or_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    assert interactive(Tty()) is True
    assert interactive(io.StringIO()) is False
    closed = io.StringIO()
    closed.close()
    assert interactive(closed) is False  # isatty raises on a closed stream
    assert interactive(object()) is False  # type: ignore[arg-type]
    monkeypatch.setattr(sys, "stderr", Tty())
    assert interactive() is True and Progress().terminal is True
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert interactive() is False and Progress().terminal is False


def test_in_a_terminal_a_bar_redraws_in_place() -> None:
    out = Tty()
    show = Progress(stream=out, prefix="[demo] ")
    assert show.terminal
    with show.bar("traffic", total=40, unit="messages") as bar:
        assert isinstance(bar, TerminalBar)
        for done in range(0, 41, 10):
            bar.update_to(done)
        bar.set_postfix(loss="0.1300")
        show.say("a message above the bar")
    text = out.getvalue()
    assert "\r" in text  # drawn in place, not a line per update
    assert "traffic" in text and "40/40" in text and "loss=0.1300" in text
    assert "[demo] a message above the bar\n" in text
    assert bar.n == 40 and bar.closed


def test_off_a_terminal_plain_lines_now_and_then_and_one_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    show = Progress(stream=out, prefix="[demo] ", every_s=5.0, clock=clock)
    assert not show.terminal
    with show.bar("fine-tune head", total=200, unit="epochs") as bar:
        assert isinstance(bar, LineBar)
        for epoch in range(1, 38):  # 37 epochs, one a second, then an early stop
            clock.now = float(epoch)
            bar.set_postfix(validation=f"{0.2 - epoch / 1000:.3f}")
            bar.update()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "[demo] fine-tune head: 5/200 epochs (2%) validation=0.195"
    assert len(lines) == 37 // 5 + 1  # every 5 s, and the last
    assert lines[-1] == "[demo] fine-tune head: 37/200 epochs (18%) in 37.0 s validation=0.163"


def test_a_count_without_an_end_and_a_count_that_only_grows() -> None:
    out = io.StringIO()
    show = Progress(stream=out, clock=lambda: 0.0)
    bar = show.bar("labelled", unit="impressions")
    bar.update_to(7)
    bar.update_to(3)  # a late, smaller report does not go back
    bar.close()
    bar.close()  # once only
    assert out.getvalue() == "labelled: 7 impressions in 0.0 s\n"


@pytest.mark.parametrize("stream", [Tty(), io.StringIO()], ids=["terminal", "not a terminal"])
def test_messages_for_another_stream_go_there_unprefixed(stream: io.StringIO) -> None:
    results = io.StringIO()
    show = Progress(stream=stream, prefix="[bench] ")
    show.say("row 1", file=results)
    show.say("note")
    assert results.getvalue() == "row 1\n"
    assert stream.getvalue().endswith("[bench] note\n")


def test_the_default_stream_is_stderr_at_the_time_of_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    show = Progress(terminal=False)
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    show.say("hello")
    assert later.getvalue() == "hello\n"
