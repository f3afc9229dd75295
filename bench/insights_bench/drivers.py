"""What drives clicks, checked against the simulator's hidden tastes.

Per seed: the ``catalogue`` world's traffic (2,000 items x 4 variants, the
shown variant drawn at random) counted per (image, segment) straight from the
simulator, no broker; each image's attributes are the simulator's own
(``colour=<name>`` as a tag family) plus decoys the audience ignores
(``decoy_*``: true zeros); :func:`online_ctr.insights.estimate_drivers` per
segment group. The truth of an effect is the hidden logit weight times the
attribute's standard deviation (numeric), or the colour's weight less the
mean over colours (tags), averaged over the group's segments by their
impressions (the mobile boost of scale included); a decoy's truth is 0.

Figures: Spearman's rho between reported and true log-odds over the taste
groups' hidden tastes (per seed, then mean and min), and the share of the
effects flagged after Benjamini-Hochberg that are decoys (false discovery
rate; per seed, then the mean).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import stats

from online_ctr.insights import (
    CellCount,
    Drivers,
    ImageAttributes,
    estimate_drivers,
    roll_up,
)
from schemas.topics import CLICKS, IMPRESSIONS
from simulator import Simulator
from simulator.audience import Preferences
from simulator.catalogue import COLOURS, NUMERIC_ATTRIBUTES, SUBTLE_ATTRIBUTES
from simulator.config import world_config

__all__ = ["DECOY_PREFIX", "IMPRESSIONS_PER_SEED", "run", "simulate_cells", "true_effect"]

log = logging.getLogger(__name__)

#: impressions per seed: ~25 s of simulation and fitting on one core, ~1,000 clicks per taste group
IMPRESSIONS_PER_SEED = 200_000
#: attributes no audience reacts to: the true nulls
DECOY_PREFIX = "decoy_"
BACKDROPS = ("plain", "studio", "outdoor")
#: pixel-measured names that measure a hidden attribute (the rest have no known truth)
MEASURED_AS = {"text": "text_overlay"}
HIDDEN = frozenset({*NUMERIC_ATTRIBUTES, *SUBTLE_ATTRIBUTES, *(f"colour={c}" for c in COLOURS)})


def simulate_cells(sim: Simulator, n: int) -> list[CellCount]:
    """Impressions and clicks per (image, segment) of the next ``n`` impressions.

    Duplicates and malformed messages are left out; a click counts however late.
    """
    impressions: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {}
    clicked: set[str] = set()
    for m in sim.messages(n):
        if m.kind == "impression" and m.topic == IMPRESSIONS:
            doc = json.loads(m.value)
            segment = tuple(sorted(doc["segment"].items()))
            impressions[doc["impression_id"]] = (doc["item_id"], doc["image_id"], segment)
        elif m.kind == "click" and m.topic == CLICKS:
            clicked.add(json.loads(m.value)["impression_id"])
    cells: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[int]] = defaultdict(
        lambda: [0, 0]
    )
    for iid, key in impressions.items():
        cell = cells[key]
        cell[0] += 1
        cell[1] += iid in clicked
    return [
        CellCount(item, image, dict(seg), n_imp, n_clk)
        for (item, image, seg), (n_imp, n_clk) in cells.items()
    ]


def _decoys(rng: np.random.Generator) -> tuple[dict[str, float], str]:
    numeric = {
        f"{DECOY_PREFIX}sharpness": float(rng.uniform(0.0, 1.0)),
        f"{DECOY_PREFIX}contrast": float(rng.normal(0.5, 0.15)),
        f"{DECOY_PREFIX}sticker": float(rng.random() < 0.2),
    }
    return numeric, f"{DECOY_PREFIX}backdrop={BACKDROPS[int(rng.integers(len(BACKDROPS)))]}"


def simulator_attributes(sim: Simulator, seed: int) -> dict[str, ImageAttributes]:
    """The simulator's attributes of every image, with the decoys drawn from ``seed``."""
    rng = np.random.default_rng([seed, 22])
    out = {}
    for e in sim.catalogue:
        decoys, backdrop = _decoys(rng)
        tags = frozenset({f"colour={e.colour}", backdrop})
        out[e.image_id] = ImageAttributes(e.image_id, {**e.numeric(), **decoys}, tags)
    return out


def measured_attributes(sim: Simulator, seed: int, image_dir: Path) -> dict[str, ImageAttributes]:
    """Attributes measured on the rendered images, plus the decoys."""
    from encoder_server.serving.attributes import measure_image

    sim.render_catalogue(image_dir)
    rng = np.random.default_rng([seed, 22])
    out = {}
    for e in sim.catalogue:
        with Image.open(image_dir / f"{e.image_id}.png") as img:
            values = measure_image(img)
        numeric = {
            MEASURED_AS.get(k, k): float(v) for k, v in values.items() if not isinstance(v, str)
        }
        tags = {f"{k}={v}" for k, v in values.items() if isinstance(v, str)}
        decoys, backdrop = _decoys(rng)
        out[e.image_id] = ImageAttributes(
            e.image_id, {**numeric, **decoys}, frozenset({*tags, backdrop})
        )
    return out


def _segment_weight(prefs: Preferences, segment: dict[str, str], attribute: str) -> float:
    """The hidden log-odds weight of one unit of ``attribute`` (or of a colour) in ``segment``."""
    taste = segment["taste"]
    if attribute.startswith("colour="):
        colour = attribute.partition("=")[2]
        levels = [prefs.global_colour[c] + prefs.taste_colour[(taste, c)] for c in COLOURS]
        own = prefs.global_colour[colour] + prefs.taste_colour[(taste, colour)]
        return own - float(np.mean(levels))
    if attribute in prefs.global_numeric:
        weight = prefs.global_numeric[attribute] + prefs.taste_numeric[(taste, attribute)]
    else:
        weight = prefs.taste_subtle.get((taste, attribute), 0.0)
    if attribute == "scale" and segment["device"] == "mobile":
        weight += prefs.mobile_scale
    return weight


def true_effect(
    prefs: Preferences,
    shares: dict[tuple[tuple[str, str], ...], float],
    attribute: str,
    sd: float | None,
) -> float:
    """The true log-odds effect in a group whose segments have impression ``shares``."""
    if attribute.startswith(DECOY_PREFIX):
        return 0.0
    weight = sum(s * _segment_weight(prefs, dict(seg), attribute) for seg, s in shares.items())
    return weight * (sd if sd is not None else 1.0)


def _group_shares(
    cells: Iterable[CellCount], groups: Iterable[str]
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each group's segments and their share of its impressions."""
    by_segment: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
    for c in cells:
        by_segment[tuple(sorted(c.segment.items()))] += c.impressions
    out = {}
    for group in groups:
        fields = {} if group == "all" else dict([group.split("=", 1)])
        chosen = {
            seg: n
            for seg, n in by_segment.items()
            if all(dict(seg).get(k) == v for k, v in fields.items())
        }
        total = sum(chosen.values())
        out[group] = {seg: n / total for seg, n in chosen.items()} if total else {}
    return out


def _score(drivers: Drivers, prefs: Preferences, cells: list[CellCount]) -> dict[str, Any]:
    shares = _group_shares(cells, {e.group for e in drivers.effects})
    taste_est, taste_true = [], []
    flagged = false = nulls = null_flagged = 0
    for e in drivers.effects:
        is_null = e.attribute.startswith(DECOY_PREFIX)
        if not (is_null or e.attribute in HIDDEN):
            continue  # measured, but with no known truth (contrast, sharpness, ...)
        truth = true_effect(prefs, shares[e.group], e.attribute, e.sd)
        if e.group.startswith("taste=") and not is_null:
            taste_est.append(e.log_odds)
            taste_true.append(truth)
        flagged += e.significant
        false += e.significant and is_null
        nulls += is_null
        null_flagged += e.significant and is_null
    rho = float(stats.spearmanr(taste_est, taste_true).statistic) if taste_true else float("nan")
    non_null = sum(e.attribute in HIDDEN for e in drivers.effects)
    return {
        "spearman": rho,
        "effects": len(drivers.effects),
        "significant": flagged,
        "false_discoveries": false,
        "fdr": false / max(flagged, 1),
        "nulls": nulls,
        "power": (flagged - false) / max(non_null, 1),
        "taste_pairs": len(taste_true),
    }


def run(
    seeds: Iterable[int] = range(7, 13),
    impressions: int = IMPRESSIONS_PER_SEED,
    q: float = 0.05,
    within_items: bool = True,
    measured: bool = False,
) -> dict[str, Any]:
    """Per-seed rows and the summary figures; prints nothing.

    ``measured`` measures the attributes on the rendered images
    (``encoder_server/serving/attributes.py``; slower: 8,000 PNGs per seed)
    instead of taking the simulator's own; attributes with no hidden
    counterpart (contrast, sharpness, ...) then count in neither figure.
    """
    rows = []
    for seed in seeds:
        sim = Simulator(world_config("catalogue", seed=seed))
        cells = simulate_cells(sim, impressions)
        counts = roll_up(cells)
        if measured:
            with tempfile.TemporaryDirectory(prefix="bertctr-drivers-") as tmp:
                attributes = measured_attributes(sim, seed, Path(tmp))
        else:
            attributes = simulator_attributes(sim, seed)
        drivers = estimate_drivers(counts, attributes, q=q, within_items=within_items)
        row = {"seed": seed, "impressions": impressions, **_score(drivers, sim.preferences, cells)}
        log.info("seed %d: %s", seed, row)
        rows.append(row)
    rhos = [r["spearman"] for r in rows]
    flagged = sum(r["significant"] for r in rows)
    return {
        "q": q,
        "within_items": within_items,
        "measured": measured,
        "rows": rows,
        "drivers_spearman_mean": float(np.mean(rhos)),
        "drivers_spearman_min": float(np.min(rhos)),
        "false_discovery_rate": float(np.mean([r["fdr"] for r in rows])),
        "false_discovery_rate_pooled": sum(r["false_discoveries"] for r in rows) / max(flagged, 1),
        "power": float(np.mean([r["power"] for r in rows])),
    }
