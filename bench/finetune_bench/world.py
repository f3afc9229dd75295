"""One seed's world: the stream, the catalogue's pixels, and every embedding version by name.

The champion's embeddings are the demo's (:func:`bertctr.judge.catalogue_embeddings`:
an 8-d PCA head on the multi-scale features, fitted within items, and 8-d PCA
title embeddings); the other versions are the controls and the positive
challenger the duel is tested on, and, once the job has run, the fine-tuned
head's (:meth:`World.add_head`).

On the ``catalogue`` world (``--world catalogue``: 2,000 items, launches,
cold start) the shop is one for every seed (``--catalogue-seed``), its
features come from :mod:`finetune_bench.pixels`' cache, and the PCA head is
fitted on the images live at the start only (a head fitted today has not
seen tomorrow's products); a head is applied to the cached features, which
is what the served encoder computes (the small world checks that equality
on every run).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bertctr.finetune_data import backbone_features
from bertctr.judge import catalogue_embeddings, lookup_from, title_embeddings, true_attributes
from encoder_server.projection import Projection, fit_pca
from encoder_server.serving.image_encoder import ImageEncoder
from finetune_bench.pixels import Pixels, catalogue_pixels, draw_catalogue
from simulator import Simulator
from simulator.config import world_config
from simulator.labelled import OfflineExample, labelled_stream
from simulator.ranking import EmbeddingLookup, Vector

__all__ = [
    "CONTROLS",
    "FINETUNED",
    "PCA",
    "POSITIVE",
    "World",
    "build_world",
    "vector",
]

PCA = "pca"
FINETUNED = "finetuned"
#: the challengers that must never be promoted
CONTROLS = ("shuffled", "zero", "identical")
#: a challenger that should be: the PCA head's first half, then the hidden true
#: attributes (all within the crossed dimensions), so the duel itself is tested
#: on a version known to carry more than the champion's
POSITIVE = "attributes"


def vector(row: Iterable[float]) -> Vector:
    return tuple(float(v) for v in row)


@dataclass
class World:
    """One seed: the stream, the catalogue's pixels and features, the champion's embeddings."""

    sim: Simulator
    stream: list[OfflineExample]
    pngs: dict[str, bytes]
    encoder: ImageEncoder  # the PCA head's, whose backbone every version shares
    head: Projection
    images: dict[str, dict[str, Vector]]  # by version name: image id -> embedding
    titles: dict[str, Vector]
    #: the shared catalogue's cached features (the catalogue world), else ``None``
    pixels: Pixels | None = None

    def lookup(self, version: str) -> EmbeddingLookup:
        return lookup_from(self.images[version], self.titles)

    def features(self, ids: list[str]) -> tuple[np.ndarray, dict[str, int]]:  # type: ignore[type-arg]
        """The job's backbone features of ``ids``: computed, or the shared cache's rows."""
        if self.pixels is None:
            return backbone_features([(i, self.pngs[i]) for i in ids])
        return self.pixels.rows(ids), {i: k for k, i in enumerate(ids)}

    def add_head(self, version: str, head: Projection) -> None:
        """The catalogue embedded as Triton would serve ``head`` (same backbone, new head)."""
        if self.pixels is not None:
            applied = head.apply(self.pixels.pooled)
            self.images[version] = dict(zip(self.pixels.ids, map(vector, applied), strict=True))
            return
        served = self.encoder.with_head(head).encode(list(self.pngs.values()))
        if any(served.errors):
            raise RuntimeError(f"catalogue images failed to embed: {served.errors}")
        self.images[version] = dict(zip(self.pngs, map(vector, served.embeddings), strict=True))


def build_world(seed: int, events: int, args: argparse.Namespace) -> World:
    if args.world != "small":
        return _catalogue_world(seed, events, args)
    config = world_config(
        "small", seed=seed, impressions_per_s=args.impressions_per_s, visual_taste=args.visual_taste
    )
    sim = Simulator(config)
    # the demo's embeddings, exactly (and the titles); the head is refitted here,
    # the same way, to start training from it and to encode the other versions
    demo_images, titles = catalogue_embeddings(sim, args.image_dim, args.text_dim)
    ids = [e.image_id for e in sim.catalogue]
    pngs = draw_catalogue(sim, args.photos)
    base = ImageEncoder(features="multiscale")
    pooled, errors = base.pooled([pngs[i] for i in ids])
    if any(errors):
        raise RuntimeError(f"catalogue images failed to embed: {errors}")
    head = fit_pca(
        pooled,
        args.image_dim,
        groups=[e.item_id for e in sim.catalogue],
        feature_kind="multiscale",
    )
    pca = dict(zip(ids, map(vector, head.apply(pooled)), strict=True))
    if args.photos:  # the champion is the PCA head of the photographs, fitted the demo's way
        demo_images = pca
    gap = max(abs(a - b) for i in ids for a, b in zip(pca[i], demo_images[i], strict=True))
    if gap > 1e-4:
        raise RuntimeError(f"the refitted PCA head is not the demo's (differs by {gap:.2g})")
    images = _versions(sim, ids, demo_images, seed, args.image_dim)
    stream = labelled_stream(sim, events)
    return World(sim, stream, pngs, base.with_head(head), head, images, titles)


def _catalogue_world(seed: int, events: int, args: argparse.Namespace) -> World:
    """A world of realistic size: one shop for every seed, its features from the cache."""
    config = world_config(
        args.world,
        seed=seed,
        catalogue_seed=args.catalogue_seed,
        n_items=args.items,
        impressions_per_s=args.impressions_per_s,
        visual_taste=args.visual_taste,
    )
    sim = Simulator(config)
    pixels = catalogue_pixels(sim, args.photos)
    live = [e for e in sim.catalogue if (sim.item_launch_ts(e.item_id) or 0.0) <= config.start_ts]
    head = fit_pca(
        pixels.rows([e.image_id for e in live]),
        args.image_dim,
        groups=[e.item_id for e in live],
        feature_kind="multiscale",
    )
    pca = dict(zip(pixels.ids, map(vector, head.apply(pixels.pooled)), strict=True))
    images = _versions(sim, pixels.ids, pca, seed, args.image_dim)
    stream = labelled_stream(sim, events)
    titles = title_embeddings(sim, args.text_dim)
    base = ImageEncoder(features="multiscale")
    return World(sim, stream, pixels.pngs, base.with_head(head), head, images, titles, pixels)


def _versions(
    sim: Simulator, ids: list[str], champion: dict[str, Vector], seed: int, dim: int
) -> dict[str, dict[str, Vector]]:
    """The champion's embeddings and the challengers' made from them, by version name."""
    truth = true_attributes(sim)
    half = dim // 2
    attributes = {i: champion[i][:half] + truth[i][: dim - half] for i in ids}
    rng = np.random.default_rng(seed)
    shuffled = dict(zip(ids, (champion[ids[k]] for k in rng.permutation(len(ids))), strict=True))
    zero = (0.0,) * dim
    return {
        PCA: champion,
        "identical": champion,
        "shuffled": shuffled,
        "zero": {i: zero for i in ids},
        POSITIVE: attributes,
    }
