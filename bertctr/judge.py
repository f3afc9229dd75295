"""Offline judgement of the CTR model on the simulator, with in-process encoders.

The questions "do embeddings help?" and "which features learn best?" need
the same stream learned several ways, quickly and reproducibly, without a
broker: this module embeds the simulator's catalogue with the encoder
classes Triton serves (PCA heads fitted on the catalogue, as ``bertctr
demo`` fits them), learns a labelled stream with the worker's own
:class:`~online_ctr.learner.Learner`, and scores it against the oracle.
``bench/bench_embeddings.py`` prints the figures; ``tests`` hold the
direction.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from online_ctr.features import DEFAULT_SPEC, FeatureSpec
from online_ctr.learner import Learner
from online_ctr.metrics import GroupMetrics
from online_ctr.models.registry import make_model
from schemas.events import Impression
from simulator import Simulator
from simulator.labelled import OfflineExample
from simulator.ranking import EmbeddingLookup, Vector, ranking_lifts

__all__ = [
    "Judgement",
    "catalogue_embeddings",
    "judge",
    "lookup_from",
    "title_embeddings",
    "true_attributes",
]

#: examples learned between two calls of :func:`judge`'s ``progress``
PROGRESS_EVERY = 1000


def catalogue_embeddings(
    sim: Simulator, image_dim: int, text_dim: int, image_features: str = "multiscale"
) -> tuple[dict[str, Vector], dict[str, Vector]]:
    """Image (by image id) and title (by title) embeddings of ``sim``'s catalogue.

    The heads are PCA fitted on this catalogue's pooled features, which is
    what ``bertctr encoder fit-projection`` writes and the demo serves:
    ``image_features="multiscale"`` fits as the demo does (multi-scale
    features, standardised, directions within items); ``"last"`` is the
    plain last-layer PCA of the first served heads, kept for comparison.
    """
    from encoder_server.projection import fit_pca
    from encoder_server.serving.image_encoder import ImageEncoder

    with tempfile.TemporaryDirectory() as tmp:
        sim.render_catalogue(Path(tmp))
        ids = [e.image_id for e in sim.catalogue]
        pngs = [(Path(tmp) / f"{i}.png").read_bytes() for i in ids]
    pooled, errors = ImageEncoder(features=image_features).pooled(pngs)
    if any(errors):
        raise RuntimeError(f"catalogue images failed to embed: {errors}")
    within_items = image_features == "multiscale"
    head = fit_pca(
        pooled,
        image_dim,
        groups=[e.item_id for e in sim.catalogue] if within_items else None,
        feature_kind=image_features,
    )
    images = ImageEncoder(projection=head).encode(pngs)
    return (
        {i: tuple(map(float, v)) for i, v in zip(ids, images.embeddings, strict=True)},
        title_embeddings(sim, text_dim),
    )


def title_embeddings(sim: Simulator, text_dim: int) -> dict[str, Vector]:
    """Each distinct title of ``sim``'s catalogue, embedded by a PCA head fitted on them."""
    from encoder_server.projection import Projection, fit_pca
    from encoder_server.serving.text_encoder import TextEncoder

    titles = sorted({e.title for e in sim.catalogue})
    items = [t.encode() for t in titles]
    raw = TextEncoder(projection=Projection.identity(384)).encode(items)
    title_vecs = TextEncoder(projection=fit_pca(raw.embeddings, text_dim)).encode(items)
    return {t: tuple(map(float, v)) for t, v in zip(titles, title_vecs.embeddings, strict=True)}


def true_attributes(sim: Simulator) -> dict[str, Vector]:
    """The hidden visual attributes, centred, by image id (a ceiling, never a feature)."""
    return {
        e.image_id: tuple(float(v) - 0.5 for _, v in sorted(e.numeric().items()))
        for e in sim.catalogue
    }


def lookup_from(
    images: dict[str, Vector] | None, titles: dict[str, Vector] | None
) -> EmbeddingLookup:
    """An :data:`EmbeddingLookup` over precomputed image and title embeddings."""

    def lookup(imp: Impression) -> tuple[Vector | None, Vector | None]:
        image = images[imp.image_id] if images is not None else None
        title = titles.get(imp.title) if titles is not None else None
        return image, title

    return lookup


@dataclass(frozen=True)
class Judgement:
    """Progressive metrics and ranking lift of one learned stream."""

    ne: float
    auc: float
    lift: float
    oracle_lift: float
    events_per_s: float


def judge(
    sim: Simulator,
    stream: Sequence[OfflineExample],
    lookup: EmbeddingLookup | None,
    requests: int,
    seed: int,
    spec: FeatureSpec = DEFAULT_SPEC,
    with_content: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> Judgement:
    """Learn ``stream`` progressively (predict, then learn), then rank held-out requests.

    ``with_content`` is passed to :func:`~online_ctr.models.registry.make_model`;
    by default it is on exactly when there are embeddings, as in the worker.
    ``progress`` is told how many examples are learned, every
    :data:`PROGRESS_EVERY` and at the end (a progress bar's ``update_to``).
    """
    content = lookup is not None if with_content is None else with_content
    learner = Learner(make_model(with_content=content), spec=spec)
    group = GroupMetrics()
    t0 = time.perf_counter()
    for i, e in enumerate(stream, 1):
        image, title = lookup(e.impression) if lookup is not None else (None, None)
        group.update(learner.predict_then_learn(e.labelled(), image, title), e.clicked)
        if progress is not None and i % PROGRESS_EVERY == 0:
            progress(i)
    rate = len(stream) / (time.perf_counter() - t0)
    if progress is not None:
        progress(len(stream))
    lift, oracle_lift = ranking_lifts(sim, learner, requests, seed, lookup)
    m = group.snapshot()
    return Judgement(m["ne"], m["auc"], lift, oracle_lift, rate)
