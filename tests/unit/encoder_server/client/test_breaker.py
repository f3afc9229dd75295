"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from encoder_server.client.breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> str:
    """The state, unnarrowed: mypy would otherwise pin it after the first check."""
    return breaker.state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def opened(clock: FakeClock, failures: int = 3, reset_s: float = 5.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, reset_s, clock=clock)
    for _ in range(failures):
        breaker.record_failure()
    assert state(breaker) == "open"
    return breaker


def test_closed_until_n_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.allow()
    breaker.record_failure()
    assert state(breaker) == "open"
    assert not breaker.allow()
    assert breaker.opened_count == 1


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 2


def test_open_rejects_until_reset_then_one_trial(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 4.99
    assert not breaker.allow()
    assert state(breaker) == "open"
    clock.now += 0.01
    assert state(breaker) == "half_open"
    assert breaker.allow()
    # exactly one trial: everyone else is refused while it is out
    assert not breaker.allow()
    assert not breaker.allow()
    assert state(breaker) == "half_open"


def test_trial_success_closes(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_success()
    assert state(breaker) == "closed"
    assert all(breaker.allow() for _ in range(10))


def test_trial_failure_reopens_for_another_reset(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()
    clock.now += 1.0
    breaker.record_failure()
    assert state(breaker) == "open"
    assert breaker.opened_count == 2
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert not breaker.allow()


def test_a_trial_that_never_reports_is_handed_out_again(clock: FakeClock) -> None:
    breaker = opened(clock)
    clock.now += 5.0
    assert breaker.allow()  # its caller is cancelled and never reports
    clock.now += 4.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()


def test_one_failure_opens_when_failures_is_one(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    breaker.record_failure()
    assert not breaker.allow()


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 1.0), (1, 0.0), (2, -1.0)])
def test_rejects_nonsense_parameters(failures: int, reset_s: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures, reset_s)
