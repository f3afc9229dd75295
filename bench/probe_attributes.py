"""Is a hidden attribute in the backbone, and in the PCA head? A linear probe, per attribute.

Ridge regression (scikit-learn's ``RidgeCV``) from the catalogue world's
multi-scale features, and from the 8-d PCA head the champion serves, to each
hidden attribute; R² on the images of held-out items (every fifth item).
High from the features and low from the head means the information is
there and the head drops it: what fine-tuning on clicks should recover.

Run: ``.venv/bin/python bench/probe_attributes.py [--items 2000] [--catalogue-seed 7]``
(the features come from ``bench_finetune``'s cache, or are computed once).
"""

from __future__ import annotations

import argparse

import numpy as np
from finetune_bench.pixels import catalogue_pixels
from sklearn.linear_model import RidgeCV

from encoder_server.projection import fit_pca
from simulator import Simulator
from simulator.config import world_config


def r2(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """R² per column: the share of each attribute's variance the probe explains."""
    return np.asarray(1.0 - ((predicted - truth) ** 2).mean(axis=0) / truth.var(axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--catalogue-seed", type=int, default=7)
    parser.add_argument("--dim", type=int, default=8)
    args = parser.parse_args()
    config = world_config(
        "catalogue",
        seed=args.catalogue_seed,
        catalogue_seed=args.catalogue_seed,
        n_items=args.items,
    )
    sim = Simulator(config)
    pixels = catalogue_pixels(sim, photos=False)
    features = pixels.pooled.astype(np.float64)
    features = (features - features.mean(0)) / (features.std(0) + 1e-6)
    names = sorted(sim.catalogue[0].numeric())
    truth = np.array([[e.numeric()[n] for n in names] for e in sim.catalogue])
    index = {item: k for k, item in enumerate(sim.catalogue_items)}
    item = np.array([index[e.item_id] for e in sim.catalogue])
    train, test = item % 5 != 0, item % 5 == 0
    probe = RidgeCV(alphas=[1, 10, 100, 1000, 10000]).fit(features[train], truth[train])
    from_features = r2(probe.predict(features[test]), truth[test])
    groups = [e.item_id for e, t in zip(sim.catalogue, train, strict=True) if t]
    head = fit_pca(pixels.pooled[train], args.dim, groups=groups, feature_kind="multiscale")
    embedded = head.apply(pixels.pooled)
    probe = RidgeCV(alphas=[0.01, 0.1, 1, 10]).fit(embedded[train], truth[train])
    from_head = r2(probe.predict(embedded[test]), truth[test])
    print(f"{'attribute':<14} {'R2 features':>11} {'R2 PCA head':>11}  (held-out items)")
    for name, a, b in zip(names, from_features, from_head, strict=True):
        print(f"{name:<14} {a:>11.3f} {b:>11.3f}")


if __name__ == "__main__":
    main()
