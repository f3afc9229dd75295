"""The randomised logging policy: propensities logged, the default stream untouched, the truth."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from simulator import SimConfig, Simulator
from simulator.logging_policy import LoggedChoice


def quiet(**knobs: Any) -> SimConfig:
    """A config without delivery faults (they do not touch the logged choices)."""
    return SimConfig(duplicate_rate=0.0, out_of_order_rate=0.0, malformed_rate=0.0, **knobs)


def impressions(sim: Simulator, n: int) -> list[dict[str, object]]:
    return [json.loads(m.value) for m in sim.messages(n) if m.kind == "impression"]


def favour_v1(arms: Sequence[tuple[str, int, int]]) -> Mapping[str, float]:
    """A stand-in allocator: v1 half the time, the rest shared."""
    rest = 0.5 / (len(arms) - 1)
    return {name: 0.5 if name == "v1" else rest for name, _, _ in arms}


def test_uniform_logging_is_the_default_stream_plus_propensities() -> None:
    plain = impressions(Simulator(SimConfig(seed=3, n_items=6)), 300)
    uniform_sim = Simulator(SimConfig(seed=3, n_items=6, logging_policy="uniform"))
    logged = impressions(uniform_sim, 300)
    assert [i["propensity"] for i in logged] == [0.25] * 300
    assert all(i["propensity"] is None for i in plain)
    assert [{**i, "propensity": None} for i in logged] == plain
    assert len(uniform_sim.logged) == 300
    assert not Simulator(SimConfig(seed=3, n_items=6)).logged


def test_thompson_needs_an_allocator() -> None:
    with pytest.raises(ValueError, match="needs an allocator"):
        Simulator(SimConfig(logging_policy="thompson"))
    with pytest.raises(ValueError, match="logging_policy"):
        SimConfig(logging_policy="greedy")  # type: ignore[arg-type]


def test_thompson_logs_the_probability_each_draw_was_made_with() -> None:
    config = quiet(seed=4, n_items=3, logging_policy="thompson")
    sim = Simulator(config, allocator=favour_v1)
    logged = impressions(sim, 2000)
    for imp, choice in zip(logged, sim.logged, strict=True):
        assert imp["impression_id"] == choice.impression_id
        assert imp["variant"] == choice.shown
        assert imp["propensity"] == choice.propensity
        assert choice.propensity == choice.probabilities[choice.candidates.index(choice.shown)]
        assert sum(choice.probabilities) == pytest.approx(1.0)
    share_v1 = sum(c.shown == "v1" for c in sim.logged) / len(sim.logged)
    assert 0.46 < share_v1 < 0.54
    again = Simulator(config, allocator=favour_v1)
    assert impressions(again, 2000) == logged


def test_thompson_cells_refresh_on_their_running_counts() -> None:
    seen: list[int] = []

    def counting(arms: Sequence[tuple[str, int, int]]) -> Mapping[str, float]:
        seen.append(sum(n for _, n, _ in arms))
        return {name: 1.0 / len(arms) for name, _, _ in arms}

    config = quiet(seed=5, n_items=1, logging_policy="thompson", logging_refresh=8)
    sim = Simulator(config, allocator=counting)
    sim.audience.segments[:] = sim.audience.segments[:1]  # one segment: one cell
    sim.audience.user_segment[:] = 0
    list(sim.messages(40))
    assert seen == [0, 1, 2, 4, 8, 16, 24, 32]


def test_policy_value_is_the_truth_on_the_logged_contexts() -> None:
    sim = Simulator(quiet(seed=6, n_items=5, logging_policy="uniform"))
    list(sim.messages(500))
    choices = sim.logged
    want = sum(sim.true_ctr(c.segment, c.item_id, "v2", c.position, c.ts) for c in choices) / len(
        choices
    )
    assert sim.policy_value(choices, lambda c: {"v2": 1.0}) == pytest.approx(want)

    # the logging policy's own value: each context's true probabilities, weighted as it drew
    def logging(c: LoggedChoice) -> dict[str, float]:
        return dict(zip(c.candidates, c.probabilities, strict=True))

    on_policy = sim.policy_value(choices, logging)
    uniform = sum(sum(sim.true_ctrs(c)) / 4 for c in choices) / len(choices)
    assert on_policy == pytest.approx(uniform)
    with pytest.raises(ValueError):
        sim.policy_value([], lambda c: {})
