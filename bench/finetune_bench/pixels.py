"""The catalogue's pixels and backbone features, computed once per shop and kept on disk.

On the catalogue world (8,000 images) the backbone's multi-scale features
take minutes on two cores, and they depend only on the pictures: the shop
(``catalogue_seed``, the catalogue knobs, the image size and the drawing),
not on the audience or the traffic. So every seed of a run shares them, and
a second run reads them from ``build/cache/bench_finetune`` (git-ignored),
keyed by a digest of exactly what shapes the pixels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from encoder_server.serving.image_encoder import ImageEncoder
from finetune_bench.photos import photo_catalogue
from simulator import Simulator

__all__ = ["CACHE_DIR", "Pixels", "catalogue_pixels", "draw_catalogue"]

log = logging.getLogger(__name__)

CACHE_DIR = Path(__file__).resolve().parents[2] / "build" / "cache" / "bench_finetune"
#: the config fields that shape the pictures (everything else is audience and traffic)
SHOP_FIELDS = ("n_items", "variants_per_item", "image_size", "subtle_tastes")


@dataclass
class Pixels:
    """Every catalogue image: PNG bytes and multi-scale pooled features, by image id."""

    ids: list[str]
    pngs: dict[str, bytes]
    pooled: np.ndarray[Any, np.dtype[np.float32]]
    seconds: dict[str, float]

    def rows(self, ids: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        index = {i: k for k, i in enumerate(self.ids)}
        return self.pooled[[index[i] for i in ids]]


def _key(sim: Simulator, photos: bool) -> str:
    shop = {f: getattr(sim.config, f) for f in SHOP_FIELDS}
    shop |= {"render_seed": sim.render_seed, "photos": photos, "features": "multiscale", "v": 1}
    return hashlib.sha256(json.dumps(shop, sort_keys=True).encode()).hexdigest()[:16]


def draw_catalogue(sim: Simulator, photos: bool) -> dict[str, bytes]:
    """The catalogue's PNG bytes by image id: the simulator's drawings, or on photographs."""
    if photos:
        return photo_catalogue(sim, sim.render_seed)
    with tempfile.TemporaryDirectory() as tmp:
        sim.render_catalogue(Path(tmp))
        return {e.image_id: (Path(tmp) / f"{e.image_id}.png").read_bytes() for e in sim.catalogue}


_SHOPS: dict[str, Pixels] = {}


def catalogue_pixels(sim: Simulator, photos: bool, cache: Path | None = CACHE_DIR) -> Pixels:
    """The catalogue drawn and pooled, from the cache when this shop was pooled before."""
    key = _key(sim, photos)
    if key not in _SHOPS:
        _SHOPS[key] = _pixels(sim, photos, key, cache)
    return _SHOPS[key]


def _pixels(sim: Simulator, photos: bool, key: str, cache: Path | None) -> Pixels:
    ids = [e.image_id for e in sim.catalogue]
    t0 = time.perf_counter()
    pngs = draw_catalogue(sim, photos)
    seconds = {"draw": time.perf_counter() - t0}
    path = None if cache is None else cache / f"{key}.npy"
    if path is not None and path.exists():
        pooled = np.load(path)
        seconds["features_cached"] = 0.0
        log.info("catalogue features from %s", path)
        return Pixels(ids, pngs, pooled, seconds)
    t1 = time.perf_counter()
    raw, errors = ImageEncoder(features="multiscale").pooled([pngs[i] for i in ids])
    if any(errors):
        raise RuntimeError(f"catalogue images failed to embed: {errors}")
    pooled = np.asarray(raw, dtype=np.float32)
    seconds["features"] = time.perf_counter() - t1
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, pooled)
    return Pixels(ids, pngs, pooled, seconds)
