"""The simulator: deterministic, realistic in its rates, and worth learning from."""

from __future__ import annotations

import dataclasses
import io
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from schemas import Click, Impression
from schemas.topics import CLICKS, IMPRESSIONS
from simulator import SimConfig, SimMessage, Simulator
from simulator.delays import ClickDelays

N = 20_000


@dataclasses.dataclass
class Run:
    sim: Simulator
    msgs: list[SimMessage]
    impressions: dict[str, Impression]
    clicks: dict[str, Click]


def simulate(config: SimConfig, n: int) -> Run:
    sim = Simulator(config)
    msgs = list(sim.messages(n))
    impressions: dict[str, Impression] = {}
    clicks: dict[str, Click] = {}
    for m in msgs:
        if m.kind == "impression":
            imp = Impression.model_validate_json(m.value)
            impressions[imp.impression_id] = imp
        elif m.kind == "click":
            click = Click.model_validate_json(m.value)
            clicks[click.impression_id] = click
    return Run(sim, msgs, impressions, clicks)


@pytest.fixture(scope="module")
def run() -> Run:
    return simulate(SimConfig(seed=3), N)


@pytest.fixture(scope="module")
def faulty() -> Run:
    """High fault rates, so the rates can be checked tightly on few events."""
    config = SimConfig(seed=4, duplicate_rate=0.05, out_of_order_rate=0.1, malformed_rate=0.02)
    return simulate(config, 10_000)


def poisson_ok(observed: int, expected: float) -> bool:
    return abs(observed - expected) <= 4 * math.sqrt(expected) + 1


def oracle_figures(sim: Simulator, n: int) -> tuple[float, float, float]:
    """Mean true CTR of (random variant, best variant per item, best per item and segment)."""
    requests = sim.ranking_requests(n, seed=1)
    truth = np.array(
        [
            [sim.true_ctr(r.segment, r.item_id, v, r.position, r.ts) for v in r.candidates]
            for r in requests
        ]
    )
    items = np.array([r.item_id for r in requests])
    per_item = np.empty(len(requests))
    for item in set(items):
        rows = items == item
        per_item[rows] = truth[rows, int(np.argmax(truth[rows].mean(axis=0)))]
    return float(truth.mean()), float(per_item.mean()), float(truth.max(axis=1).mean())


# -- determinism ----------------------------------------------------------------


def test_same_seed_gives_byte_identical_stream() -> None:
    a = list(Simulator(SimConfig(seed=11)).messages(2000))
    b = list(Simulator(SimConfig(seed=11)).messages(2000))
    c = list(Simulator(SimConfig(seed=12)).messages(2000))
    assert a == b
    assert [m.value for m in a] != [m.value for m in c]


def test_fault_rates_leave_the_traffic_itself_unchanged() -> None:
    clean = simulate(
        SimConfig(seed=5, duplicate_rate=0, out_of_order_rate=0, malformed_rate=0), 3000
    )
    noisy = simulate(SimConfig(seed=5, duplicate_rate=0.2, malformed_rate=0.1), 3000)
    assert clean.impressions == noisy.impressions
    assert clean.clicks == noisy.clicks
    assert {m.kind for m in clean.msgs} == {"impression", "click"}


def test_chunked_stream_equals_one_shot_stream() -> None:
    whole = list(Simulator(SimConfig(seed=8)).messages(3000))
    sim = Simulator(SimConfig(seed=8))
    chunks: list[SimMessage] = []
    for _ in range(3):
        chunks.extend(sim.messages(1000, flush=False))
    chunks.extend(sim.messages(0))
    assert chunks == whole


def test_messages_come_in_publish_order(run: Run) -> None:
    ts = [m.ts for m in run.msgs]
    assert ts == sorted(ts)
    assert ts[0] > SimConfig().start_ts
    # 50 impressions per simulated second
    span = max(i.ts for i in run.impressions.values()) - min(i.ts for i in run.impressions.values())
    assert N / span == pytest.approx(50.0, rel=0.05)


# -- events ---------------------------------------------------------------------


def test_only_malformed_messages_fail_validation(run: Run) -> None:
    kinds = Counter(m.kind for m in run.msgs)
    assert set(kinds) == {"impression", "click", "duplicate", "malformed"}
    for m in run.msgs:
        model = Impression if m.topic == IMPRESSIONS else Click
        if m.kind == "malformed":
            with pytest.raises(ValidationError):
                model.model_validate_json(m.value)
        else:
            event = model.model_validate_json(m.value)
            assert m.key == event.impression_id.encode()


def test_impressions_carry_segment_and_catalogue_data(run: Run) -> None:
    entries = {(e.item_id, e.variant): e for e in run.sim.catalogue}
    for imp in run.impressions.values():
        assert set(imp.segment.as_dict()) == {"device", "geo", "taste"}
        entry = entries[(imp.item_id, imp.variant)]
        assert (imp.image_id, imp.title) == (entry.image_id, entry.title)
    tastes = Counter(imp.segment.as_dict()["taste"] for imp in run.impressions.values())
    assert len(tastes) == 4


def test_counts_match_the_stream(run: Run) -> None:
    counts = run.sim.expected_counts
    window = run.sim.config.attribution_window_s
    late = sum(1 for iid, c in run.clicks.items() if c.ts - run.impressions[iid].ts > window)
    assert counts["impressions"] == len(run.impressions) == len(run.sim.true_p) == N
    assert counts["clicks"] == len(run.clicks)
    assert counts["late_clicks"] == late
    kinds = Counter(m.kind for m in run.msgs)
    assert counts["duplicates"] == kinds["duplicate"]
    assert counts["malformed"] == kinds["malformed"]


# -- rates ----------------------------------------------------------------------


def test_base_ctr_is_a_few_percent(run: Run) -> None:
    p = np.array(list(run.sim.true_p.values()))
    assert 0.01 <= p.mean() <= 0.05
    assert p.max() < 0.5


def test_clicks_are_drawn_from_the_true_probabilities(run: Run) -> None:
    p = np.array(list(run.sim.true_p.values()))
    clicked = np.array([iid in run.clicks for iid in run.sim.true_p])
    sd = math.sqrt(float((p * (1 - p)).sum()))
    assert abs(clicked.sum() - p.sum()) < 4 * sd
    # and they follow p: the clicked impressions had higher p than the rest
    assert p[clicked].mean() > 1.3 * p[~clicked].mean()


def test_position_bias() -> None:
    sim = Simulator(SimConfig(seed=3))
    e = sim.catalogue[0]
    seg = {"device": "desktop", "geo": "US", "taste": "t0"}
    ts = sim.config.start_ts
    top = sim.true_ctr(seg, e.item_id, e.variant, 0, ts)
    for position in (1, 3, 8):
        ratio = sim.true_ctr(seg, e.item_id, e.variant, position, ts) / top
        assert ratio == pytest.approx(1 / (1 + 0.3 * position), rel=0.1)


def test_click_delays_are_heavy_tailed(run: Run) -> None:
    config = run.sim.config
    delays = np.array([c.ts - run.impressions[iid].ts for iid, c in run.clicks.items()])
    assert np.median(delays) < 120  # most within a minute or two
    assert delays.max() <= config.click_delay_cap_s + 0.001
    late_share = float((delays > config.attribution_window_s).mean())
    assert 0.01 < late_share < 0.08


def test_delay_distribution_matches_its_cdf() -> None:
    config = SimConfig()
    delays = ClickDelays(config)
    rng = np.random.default_rng(0)
    draws = np.array([delays.draw(rng) for _ in range(20_000)])
    for seconds in (5.0, 60.0, 600.0, config.attribution_window_s, 3600.0):
        assert (draws <= seconds).mean() == pytest.approx(delays.share_within(seconds), abs=0.01)
    assert (draws > config.attribution_window_s).mean() > 0.02


def test_default_faults_are_present(run: Run) -> None:
    counts = run.sim.expected_counts
    events = counts["impressions"] + counts["clicks"]
    assert poisson_ok(counts["duplicates"], 0.01 * events)
    assert poisson_ok(counts["malformed"], 0.001 * N)
    assert counts["malformed"] > 0
    assert counts["out_of_order"] > 0


def test_fault_rates_follow_the_config(faulty: Run) -> None:
    counts = faulty.sim.expected_counts
    assert poisson_ok(counts["duplicates"], 0.05 * (counts["impressions"] + counts["clicks"]))
    assert poisson_ok(counts["duplicate_clicks"], 0.05 * counts["clicks"])
    assert poisson_ok(counts["malformed"], 0.02 * counts["impressions"])
    assert poisson_ok(counts["out_of_order"], 0.1 * counts["clicks"])
    topics = Counter(m.topic for m in faulty.msgs if m.kind == "malformed")
    assert topics["impressions"] > topics["clicks"] > 0


def test_out_of_order_clicks_overtake_their_impression(faulty: Run) -> None:
    first_seen: dict[str, str] = {}
    for m in faulty.msgs:
        if m.kind in ("impression", "click"):
            assert m.key is not None
            first_seen.setdefault(m.key.decode(), m.topic)
    overtaken = [iid for iid, topic in first_seen.items() if topic == CLICKS]
    assert len(overtaken) == faulty.sim.expected_counts["out_of_order"] > 0
    for iid in overtaken:  # a lagging impression, not a click from the future
        delay = faulty.clicks[iid].ts - faulty.impressions[iid].ts
        assert 0 <= delay <= faulty.sim.config.reorder_max_s


def test_duplicates_repeat_an_event_exactly(faulty: Run) -> None:
    originals = {m.value for m in faulty.msgs if m.kind in ("impression", "click")}
    duplicates = [m for m in faulty.msgs if m.kind == "duplicate"]
    assert duplicates
    assert all(m.value in originals for m in duplicates)


# -- learning is worth it -------------------------------------------------------


def test_choosing_the_variant_gives_the_oracle_a_lift() -> None:
    random_, per_item, per_segment = oracle_figures(Simulator(SimConfig(seed=3)), 2000)
    assert per_segment / random_ - 1 > 0.15
    # and the best variant depends on the segment, not only on the item
    assert per_segment / per_item - 1 > 0.05


def test_oracle_variant_and_make_impression() -> None:
    sim = Simulator(SimConfig(seed=3))
    req = sim.ranking_requests(1, seed=2)[0]
    best = sim.oracle_variant(req)
    truth = {
        v: sim.true_ctr(req.segment, req.item_id, v, req.position, req.ts) for v in req.candidates
    }
    assert truth[best] == max(truth.values())
    imp = sim.make_impression(req, best)
    assert (imp.item_id, imp.variant, imp.position) == (req.item_id, best, req.position)
    assert imp.segment.as_dict() == req.segment
    assert sim.ranking_requests(5, seed=2) == sim.ranking_requests(5, seed=2)


# -- images and config ----------------------------------------------------------


def test_images_are_real_pngs_and_variants_differ(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(seed=5, n_items=3, variants_per_item=2))
    sim.render_catalogue(tmp_path / "a")
    sim.render_catalogue(tmp_path / "b")
    files = sorted((tmp_path / "a").glob("*.png"))
    assert [f.stem for f in files] == sorted(e.image_id for e in sim.catalogue)
    pixels = [np.asarray(Image.open(io.BytesIO(f.read_bytes())).convert("RGB")) for f in files]
    assert pixels[0].shape == (224, 224, 3)
    assert np.abs(pixels[0].astype(int) - pixels[1].astype(int)).mean() > 5
    assert all((tmp_path / "b" / f.name).read_bytes() == f.read_bytes() for f in files)


def test_brightness_shows_in_the_pixels(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(seed=6, n_items=10))
    sim.render_catalogue(tmp_path)
    brightness = [float(e.attributes["brightness"]) for e in sim.catalogue]
    luminance = [
        float(np.asarray(Image.open(tmp_path / f"{e.image_id}.png").convert("L")).mean())
        for e in sim.catalogue
    ]
    assert np.corrcoef(brightness, luminance)[0, 1] > 0.7


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        SimConfig(duplicate_rate=1.5)
    with pytest.raises(ValueError):
        SimConfig(impressions_per_s=0)
    with pytest.raises(ValueError):
        SimConfig(attribution_window_s=600, max_click_delay_s=300)
