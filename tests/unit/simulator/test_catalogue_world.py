"""The world of realistic size: long-tailed popularity, launches, cold start, subtle tastes."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from simulator import SimConfig, Simulator
from simulator.audience import sigmoid, true_logit
from simulator.config import WORLDS, world_config
from simulator.labelled import OfflineExample, labelled_stream
from simulator.shelf import Shelf

N = 20_000
DAY = 86_400.0


@pytest.fixture(scope="module")
def world() -> tuple[Simulator, list[OfflineExample]]:
    sim = Simulator(world_config("catalogue", seed=5, impressions_per_s=5.0))
    return sim, labelled_stream(sim, N)


def _digest(config: SimConfig, n: int) -> str:
    h = hashlib.sha256()
    for m in Simulator(config).messages(n):
        h.update(m.value)
    return h.hexdigest()


def test_the_small_world_is_unchanged_byte_for_byte() -> None:
    # the digest of seed 7's first 3,000 impressions before the catalogue world existed
    assert _digest(SimConfig(seed=7), 3000) == (
        "81a11bb33d8be769a12fbf415f2a6f349ac2f82ae2ce8ac334a44c4a90fae0c1"
    )


def test_same_seed_same_stream_and_another_seed_another() -> None:
    config = world_config("catalogue", seed=11, n_items=300)
    assert _digest(config, 2000) == _digest(config, 2000)
    assert _digest(config, 2000) != _digest(world_config("catalogue", seed=12, n_items=300), 2000)


def test_a_fifth_of_the_traffic_goes_to_items_under_a_day_old(
    world: tuple[Simulator, list[OfflineExample]],
) -> None:
    sim, stream = world
    start = sim.config.start_ts

    def young(e: OfflineExample) -> bool:
        launched = sim.item_launch_ts(e.impression.item_id)
        assert launched is not None and launched <= e.impression.ts  # never before launch
        return launched > start and e.impression.ts - launched < DAY

    share = sum(map(young, stream)) / len(stream)
    # before the first launch there is nothing young, so slightly under the 20%
    assert 0.17 < share <= 0.21


def test_popularity_is_long_tailed_like_zipf(
    world: tuple[Simulator, list[OfflineExample]],
) -> None:
    sim, stream = world
    assert sim.shelf is not None
    old = {i for i in sim.catalogue_items if (sim.item_launch_ts(i) or 0.0) < sim.config.start_ts}
    counts = Counter(e.impression.item_id for e in stream if e.impression.item_id in old)
    top = sorted(counts.values(), reverse=True)
    # Zipf(1) over 1,400 live items: the top 1% takes about a quarter of the traffic
    assert sum(top[:14]) / sum(top) > 0.2
    # and the log-log slope of rank against frequency is near -1 over the head
    ranks = np.arange(1, 51)
    slope = np.polyfit(np.log(ranks), np.log(np.array(top[:50], dtype=float)), 1)[0]
    assert -1.4 < slope < -0.6
    weights = np.sort(sim.shelf.popularity)[::-1]
    assert weights[0] / weights[9] == pytest.approx(10.0)


def test_uniform_popularity_without_zipf() -> None:
    shelf = Shelf(SimConfig(n_items=50), np.random.default_rng(0))
    assert np.allclose(shelf.popularity, 1 / 50)


def test_cold_start_requests_ask_about_items_nobody_has_seen(
    world: tuple[Simulator, list[OfflineExample]],
) -> None:
    sim, stream = world
    shown = {e.impression.item_id for e in stream}
    cold = sim.ranking_requests(300, seed=1, cohort="cold")
    assert not shown & {r.item_id for r in cold}
    for r in cold:
        launched = sim.item_launch_ts(r.item_id)
        assert launched is not None and sim.clock < launched <= sim.clock + DAY
    warm = sim.ranking_requests(300, seed=1, cohort="warm")
    assert all((sim.item_launch_ts(r.item_id) or 0.0) <= sim.clock for r in warm)
    assert len({r.item_id for r in warm} & shown) > 100


def test_the_small_world_has_no_cold_start() -> None:
    sim = Simulator(SimConfig(seed=1, n_items=5))
    with pytest.raises(ValueError, match="cold-start"):
        sim.ranking_requests(3, seed=1, cohort="cold")


def test_subtle_attributes_change_clicks_per_taste_at_todays_strength(
    world: tuple[Simulator, list[OfflineExample]],
) -> None:
    sim, _ = world
    prefs = sim.preferences
    subtle = np.array(list(prefs.taste_subtle.values()))
    numeric = np.array(list(prefs.taste_numeric.values()))
    assert subtle.std() < 2 * 0.45 and numeric.std() < 2 * 0.45
    entry = sim.catalogue[0]
    assert set(entry.numeric()) >= {"banner", "texture", "harmony"}
    # flipping the banner moves the click probability, by taste group differently
    flipped = type(entry)(
        **{
            **entry.__dict__,
            "attributes": {**entry.attributes, "banner": 1.0 - float(entry.attributes["banner"])},
        }
    )
    moves = set()
    for segment in sim.segments[:4]:
        before = true_logit(prefs, -3.7, 0.3, segment, entry, 0, sim.config.start_ts)
        after = true_logit(prefs, -3.7, 0.3, segment, flipped, 0, sim.config.start_ts)
        moves.add(round(sigmoid(after) - sigmoid(before), 6))
    assert len(moves) > 1 and any(m != 0 for m in moves)


def test_the_small_world_draws_no_subtle_attributes() -> None:
    sim = Simulator(SimConfig(seed=2, n_items=3))
    assert all(
        set(e.numeric()) == {"brightness", "clutter", "scale", "text_overlay"}
        for e in sim.catalogue
    )


def test_worlds_are_named_and_unknown_names_refused() -> None:
    assert "small" in WORLDS and world_config("catalogue").n_items == 2000
    with pytest.raises(ValueError, match="unknown world"):
        world_config("huge")
    with pytest.raises(ValueError, match="no item live"):
        SimConfig(n_items=4, launch_share=1.0)
