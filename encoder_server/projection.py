"""Projection heads: backbone features down to the small embedding the learner uses.

The online CTR model is a linear learner over a few dozen embedding
dimensions: 1280 pooled EfficientNet features or 384 MiniLM features would
make every update slow and every weight noisy. A projection is a fixed linear
map ``(x - mean) @ components.T`` followed by L2 normalisation, and it *is*
the encoder's version: a new head changes every embedding, so it gets a new
Triton model version and a new cache namespace, never an in-place swap.

Two heads, on purpose:

* :meth:`Projection.random`, the version-1 default when there is no catalogue
  to fit on yet: a Gaussian Johnson-Lindenstrauss map (entries drawn from
  ``N(0, 1/d_out)`` by ``numpy.random.default_rng(seed)``). It roughly keeps
  angles between feature vectors, needs no data and is reproducible from its
  seed alone;
* :func:`fit_pca`, fitted on pooled features of the real catalogue once it
  exists. PCA keeps the directions in which *these* images differ (colour,
  clutter, overlays), which a random map spends most of its dimensions
  ignoring. Components are not whitened: whitening would blow up the
  low-variance, mostly-noise directions to the same scale as the real ones.

  Two options of :func:`fit_pca` matter for CTR, both measured with
  ``bench/bench_embeddings.py``. ``standardise`` scales every feature to
  unit variance before the SVD (folded into the components, so applying the
  head stays one matrix product); it is what lets the 40-wide early layers
  of a multi-scale feature vector count next to the 1280-wide last one.
  ``groups`` (the item of each image) takes the directions from the
  variation *within* each item: a ranking service chooses between variants
  of one item, so the head should spend its few dimensions on how variants
  differ (colour, light, clutter, overlay), not on what separates a shoe
  from a lamp, which the title already says.

A head also names the backbone ``features`` it expects: ``"last"`` (the
last layer, pooled: every text head, and the image default) or
``"multiscale"`` (see :mod:`encoder_server.serving.image_encoder`). The head file
carries it, so a server built from the file alone extracts the right ones.

A row that is all zeros in the input stays all zeros in the output: encoders
mark failed items with zero rows, and a projection must not turn "no
embedding" into a plausible-looking vector ``-mean @ components.T``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FEATURE_KINDS", "Projection", "fit_pca", "l2_normalise"]

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float32]
#: backbone feature sets a head can project (see the module docstring)
FEATURE_KINDS = ("last", "multiscale")


def l2_normalise(x: npt.NDArray[np.floating[Any]]) -> Array:
    """Rows scaled to unit L2 norm; rows of norm zero stay zero."""
    out = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0).astype(np.float32)


@dataclass(frozen=True)
class Projection:
    """A fixed linear head ``(x - mean) @ components.T``, L2-normalised.

    Attributes
    ----------
    mean:
        float32 ``[d_in]``, subtracted first (zeros for random and identity).
    components:
        float32 ``[d_out, d_in]``, one output direction per row.
    version:
        The encoder version this head defines (a Triton model version).
    kind:
        How it was made: ``"random"``, ``"pca"``, ``"identity"`` or
        ``"finetuned"`` (trained on clicks, :mod:`encoder_server.training.finetune`).
    note:
        Free text for humans (seed, explained variance, source data).
    features:
        Which backbone features it projects: ``"last"`` or ``"multiscale"``.
    """

    mean: Array
    components: Array
    version: int
    kind: str
    note: str = ""
    features: str = "last"

    def __post_init__(self) -> None:
        mean = np.ascontiguousarray(self.mean, dtype=np.float32)
        components = np.ascontiguousarray(self.components, dtype=np.float32)
        if components.ndim != 2 or components.shape[0] < 1 or components.shape[1] < 1:
            raise ValueError(f"components must be [d_out, d_in], got shape {components.shape}")
        if mean.shape != (components.shape[1],):
            raise ValueError(
                f"mean must be [d_in] = [{components.shape[1]}], got shape {mean.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(components).all()):
            raise ValueError("projection contains NaN or infinite values")
        if self.version < 1:
            raise ValueError(f"version must be >= 1, got {self.version}")
        if self.features not in FEATURE_KINDS:
            raise ValueError(f"features must be one of {FEATURE_KINDS}, got {self.features!r}")
        mean.setflags(write=False)
        components.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "components", components)

    @property
    def d_in(self) -> int:
        """Input (backbone feature) dimension."""
        return int(self.components.shape[1])

    @property
    def d_out(self) -> int:
        """Output (embedding) dimension."""
        return int(self.components.shape[0])

    def apply(self, x: npt.NDArray[np.floating[Any]]) -> Array:
        """Project ``x [n, d_in]`` to L2-normalised float32 ``[n, d_out]``.

        All-zero input rows (failed items) give all-zero output rows.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise ValueError(f"expected [n, {self.d_in}] features, got shape {x.shape}")
        y = (x - self.mean) @ self.components.T
        y[~x.any(axis=1)] = 0.0
        return l2_normalise(y)

    @classmethod
    def random(
        cls, d_in: int, d_out: int, seed: int = 0, version: int = 1, features: str = "last"
    ) -> Projection:
        """A Gaussian Johnson-Lindenstrauss head: entries ``N(0, 1/d_out)``.

        Deterministic for ``seed`` (``numpy.random.default_rng``), so the
        same version always means the same map.
        """
        rng = np.random.default_rng(seed)
        components = rng.standard_normal((d_out, d_in)) / np.sqrt(d_out)
        return cls(
            mean=np.zeros(d_in, dtype=np.float32),
            components=components.astype(np.float32),
            version=version,
            kind="random",
            note=f"gaussian JL {d_in}->{d_out}, seed={seed}",
            features=features,
        )

    @classmethod
    def identity(cls, d: int, version: int = 1) -> Projection:
        """No projection: the backbone features, only L2-normalised."""
        return cls(
            mean=np.zeros(d, dtype=np.float32),
            components=np.eye(d, dtype=np.float32),
            version=version,
            kind="identity",
            note=f"identity {d}",
        )

    def save(self, path: Path | str) -> None:
        """Write the head as an ``.npz`` file (no pickles)."""
        np.savez(
            Path(path),
            mean=self.mean,
            components=self.components,
            version=np.int64(self.version),
            kind=np.str_(self.kind),
            note=np.str_(self.note),
            features=np.str_(self.features),
        )

    @classmethod
    def load(cls, path: Path | str) -> Projection:
        """Read a head written by :meth:`save`.

        Raises
        ------
        ValueError
            If a field is missing or the shapes do not fit together.
        """
        with np.load(Path(path), allow_pickle=False) as data:
            missing = {"mean", "components", "version", "kind"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: not a projection file, missing {sorted(missing)}")
            try:
                projection = cls(
                    mean=data["mean"],
                    components=data["components"],
                    version=int(data["version"]),
                    kind=str(data["kind"]),
                    note=str(data["note"]) if "note" in data.files else "",
                    features=str(data["features"]) if "features" in data.files else "last",
                )
            except ValueError as exc:
                raise ValueError(f"{path}: bad projection: {exc}") from exc
        log.info(
            "loaded %s projection v%d (%d->%d) from %s",
            projection.kind,
            projection.version,
            projection.d_in,
            projection.d_out,
            path,
        )
        return projection


def fit_pca(
    features: npt.NDArray[np.floating[Any]],
    d_out: int,
    version: int = 1,
    *,
    standardise: bool | None = None,
    groups: Sequence[str] | None = None,
    feature_kind: str = "last",
) -> Projection:
    """Fit a PCA head on ``features [n, d_in]`` with a numpy SVD.

    Signs are made deterministic: in each component the entry of largest
    magnitude is positive, so refitting on the same data gives the same head
    whatever the SVD routine returns.

    Parameters
    ----------
    features:
        Pooled backbone features of good items (no failed zero rows).
    d_out:
        Number of components; at most ``min(n, d_in)``.
    version:
        The encoder version the fitted head will define.
    standardise:
        Scale each feature to unit variance first (constant features are
        left unscaled); see the module docstring. ``None``: exactly for
        ``"multiscale"`` features, whose levels differ in width and scale.
    groups:
        One label per row (the item an image shows): directions come from
        the rows minus their group's mean. Groups of one row carry no
        within-group variation and add nothing.
    feature_kind:
        Recorded as the head's :attr:`Projection.features`.

    >>> rng = np.random.default_rng(0)
    >>> head = fit_pca(rng.normal(size=(20, 5)), 2, groups=["a", "b"] * 10)
    >>> head.d_in, head.d_out, head.kind
    (5, 2, 'pca')
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [n, d_in], got shape {x.shape}")
    n, d_in = x.shape
    if not 1 <= d_out <= min(n, d_in):
        raise ValueError(f"d_out must be in [1, min(n, d_in)] = [1, {min(n, d_in)}], got {d_out}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups must have one label per row ({n}), got {len(groups)}")
    if standardise is None:
        standardise = feature_kind == "multiscale"
    mean = x.mean(axis=0)
    scale = np.ones(d_in)
    if standardise:
        std = x.std(axis=0)
        scale = np.where(std > 1e-12, std, 1.0)
    z = (x - mean) / scale
    if groups is not None:
        labels = np.asarray(groups)
        for label in np.unique(labels):
            rows = labels == label
            z[rows] -= z[rows].mean(axis=0)
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    components = vt[:d_out]
    largest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(d_out), largest])
    components = components * signs[:, None]
    variance = singular**2
    explained = float(variance[:d_out].sum() / variance.sum()) if variance.sum() > 0 else 0.0
    how = ", standardised" if standardise else ""
    how += f", within {len(set(groups))} groups" if groups is not None else ""
    log.info(
        "PCA %d->%d on %d rows%s explains %.1f%% of variance", d_in, d_out, n, how, 100 * explained
    )
    return Projection(
        mean=mean.astype(np.float32),
        # (x - mean) / scale @ v.T == (x - mean) @ (v / scale).T: one product at serving
        components=(components / scale[None, :]).astype(np.float32),
        version=version,
        kind="pca",
        note=f"pca {d_in}->{d_out} on {n} rows{how}, explained variance {explained:.3f}",
        features=feature_kind,
    )
