"""The simulator: deterministic, realistic in its rates, and worth learning from."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from schemas import Click, Impression
from simulator import SimConfig, SimMessage, Simulator

N = 6000


@pytest.fixture(scope="module")
def run() -> tuple[Simulator, list[SimMessage]]:
    sim = Simulator(SimConfig(seed=3))
    return sim, list(sim.messages(N))


def test_same_seed_same_bytes() -> None:
    a = [(m.topic, m.key, m.value) for m in Simulator(SimConfig(seed=11)).messages(500)]
    b = [(m.topic, m.key, m.value) for m in Simulator(SimConfig(seed=11)).messages(500)]
    c = [(m.topic, m.key, m.value) for m in Simulator(SimConfig(seed=12)).messages(500)]
    assert a == b
    assert a != c


def test_rates_are_realistic(run: tuple[Simulator, list[SimMessage]]) -> None:
    sim, _ = run
    p = np.array(list(sim.true_p.values()))
    assert len(p) == N
    assert 0.01 <= p.mean() <= 0.05
    counts = sim.expected_counts
    # clicks are drawn from the true probabilities
    expected, sd = p.sum(), np.sqrt((p * (1 - p)).sum())
    assert abs(counts["clicks"] - expected) < 4 * sd
    assert counts["late_clicks"] > 0
    assert 0.003 * N < counts["duplicates"] < 0.03 * N
    assert 0 < counts["malformed"] < 0.005 * N


def test_messages_are_valid_except_malformed(run: tuple[Simulator, list[SimMessage]]) -> None:
    _, msgs = run
    seen_kinds = set()
    for m in msgs:
        kind = m.kind
        seen_kinds.add(kind)
        model = Impression if m.topic == "impressions" else Click
        if kind == "malformed":
            with pytest.raises(ValidationError):
                model.model_validate_json(m.value)
        else:
            event = model.model_validate_json(m.value)
            assert m.key == event.impression_id.encode()
    assert seen_kinds == {"impression", "click", "duplicate", "malformed"}


def test_some_clicks_overtake_their_impression(run: tuple[Simulator, list[SimMessage]]) -> None:
    sim, msgs = run
    first_seen: dict[str, str] = {}
    for m in msgs:
        if m.kind in ("impression", "click"):
            iid = json.loads(m.value)["impression_id"]
            first_seen.setdefault(iid, m.topic)
    overtaken = sum(1 for t in first_seen.values() if t == "clicks")
    assert overtaken == sim.expected_counts["out_of_order"] > 0


def test_images_are_real_pngs_and_variants_differ(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(seed=5, n_items=3, variants_per_item=2))
    sim.render_catalogue(tmp_path)
    files = sorted(tmp_path.glob("*.png"))
    assert len(files) == 6
    pixels = [np.asarray(Image.open(io.BytesIO(f.read_bytes())).convert("RGB")) for f in files]
    assert pixels[0].shape == (160, 160, 3)
    assert not np.array_equal(pixels[0], pixels[1])


def test_choosing_the_variant_matters() -> None:
    """The oracle gains over a random variant: there is something to learn."""
    sim = Simulator(SimConfig(seed=3))
    best, random_ = [], []
    for req in sim.ranking_requests(500, seed=1):
        truth = [
            sim.true_ctr(req.segment, req.item_id, v, req.position, req.ts) for v in req.candidates
        ]
        best.append(max(truth))
        random_.append(np.mean(truth))
    assert np.mean(best) / np.mean(random_) - 1 > 0.15
