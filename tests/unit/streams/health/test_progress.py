"""Health reports as pure code: progress, lag, stalls, stale reports."""

from __future__ import annotations

from pathlib import Path

from streams.health.progress import Progress, assess, read_local_report, write_local_report


def report(
    progress: Progress, highwater: dict[tuple[str, int], int], now: float
) -> dict[str, dict[str, dict[str, object]]]:
    return progress.report(
        {"learner": list(highwater)},
        highwater=lambda t, p: highwater.get((t, p)),
        committed=lambda t, p: None,
        now=now,
    )


def test_a_partition_with_waiting_messages_and_no_progress_stalls() -> None:
    progress = Progress()
    progress.mark("learner", "labelled", 0, offset=9, now=100.0)
    hw = {("labelled", 0): 10, ("labelled", 1): 0}
    rows = report(progress, hw, now=101.0)["learner"]
    assert rows["labelled:0"]["lag"] == 0 and rows["labelled:0"]["stalled_s"] == 0
    assert rows["labelled:1"]["lag"] == 0  # empty: nothing waits
    hw[("labelled", 0)] = 15  # five messages arrive and nothing handles them
    assert report(progress, hw, now=102.0)["learner"]["labelled:0"]["stalled_s"] == 0
    rows = report(progress, hw, now=170.0)["learner"]
    assert rows["labelled:0"] == {
        "processed": 9,
        "highwater": 15,
        "committed": None,
        "lag": 5,
        "stalled_s": 68.0,
    }
    # progress resets the stall, even with messages still waiting
    progress.mark("learner", "labelled", 0, offset=12, now=171.0)
    rows = report(progress, hw, now=172.0)["learner"]
    assert rows["labelled:0"]["lag"] == 2 and rows["labelled:0"]["stalled_s"] == 0


def test_unknown_highwater_is_no_stall_and_the_commit_stands_in_for_progress() -> None:
    progress = Progress()
    rows = progress.report(
        {"join": [("clicks", 0), ("impressions", 0)]},
        highwater=lambda t, p: None if t == "clicks" else 40,
        committed=lambda t, p: 40,
        now=5.0,
    )["join"]
    assert rows["clicks:0"]["lag"] is None and rows["clicks:0"]["stalled_s"] == 0
    assert rows["impressions:0"]["lag"] == 0  # read to the committed offset before a restart


def test_assess_names_stalls_and_stale_reports() -> None:
    fresh = {
        "at": 1000.0,
        "interval_s": 5.0,
        "partitions": {"learner": {"labelled:2": {"stalled_s": 75.0, "lag": 13}}},
    }
    assert assess(fresh, now=1001.0, max_stall_s=60) == [
        "learner stalled on labelled:2 for 75s with 13 waiting"
    ]
    assert assess(fresh, now=1001.0, max_stall_s=100) == []
    problems = assess(fresh, now=1100.0, max_stall_s=100)
    assert problems == ["no report for 100s (event loop blocked, or worker gone)"]


def test_the_local_report_round_trips(tmp_path: Path) -> None:
    assert read_local_report(tmp_path / "none") is None
    write_local_report(tmp_path / "deep" / "dir", {"worker": "w", "at": 1.0})
    assert read_local_report(tmp_path / "deep" / "dir") == {"worker": "w", "at": 1.0}
