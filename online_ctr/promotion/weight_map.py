"""Carry a CTR model's image weights over to a new encoder version's embedding.

A challenger that learns a new encoder version's image embedding from zero
pays a learning tax: for thousands of examples it knows less about images
than the champion, whose weights had the whole stream to settle. On the
demo's duels that tax was as large as anything a better head could gain
(``docs/measurements.md``), so the comparison measured who had learnt
longer rather than which embedding carries more.

A new head is mostly a linear map of the old one's space (both are linear
maps of the same backbone features; a fine-tuned head starts from the
serving one). So the champion's knowledge can be carried over: fit, on the
same images embedded by both versions,

    e_old ~ A e_new        (least squares over the paired examples)

and then ``w_old . e_old ~ (A^T w_old) . e_new``: the challenger starts with
``w_new = A^T w_old`` for every group of image weights (the plain embedding
dimensions, and each segment's crossed ones). What the new embedding cannot
express (a shuffled or zero head explains nothing of the old one) maps to
small or zero weights, so a corrupted version starts as ignorant as before
and an identical one starts with the champion's weights. Carried weights
start at a new feature's step size (``FTRLProximalClassifier.set_weights``):
they are a good first guess about features whose meaning changed, and the
challenger must still be able to move them where the new embedding
carries more than the old. The map is fitted on
the first examples of the duel, before the comparison begins, so it never
sees an example the comparison scores.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from online_ctr.features import IMAGE_PREFIX

__all__ = ["EmbeddingPairs", "carry_weights"]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

#: ``img_<k>`` or ``img_<k>&<segment cross>``
_IMAGE_FEATURE = re.compile(rf"^{re.escape(IMAGE_PREFIX)}(\d+)(?:&(.+))?$")
#: ridge, relative to the mean eigenvalue of ``X^T X``: only enough to keep a
#: rank-deficient design (a zero head, fewer images than dimensions) solvable
_RIDGE = 1e-6


class EmbeddingPairs:
    """Running sums ``X^T X`` and ``X^T Y`` of (new, old) embeddings of the same images.

    O(d^2) state however many examples are added, so it pickles with the
    duel. Pairs with a missing, non-finite or differently sized embedding
    are skipped (and counted), never fitted.
    """

    def __init__(self) -> None:
        self.n = 0
        self.skipped = 0
        self.xtx: F64 | None = None  # sum e_new e_new^T
        self.xty: F64 | None = None  # sum e_new e_old^T

    def add(self, old: Sequence[float] | None, new: Sequence[float] | None) -> bool:
        """Add one image's embeddings under both versions; False if skipped."""
        if old is None or new is None:
            self.skipped += 1
            return False
        y = np.asarray(old, dtype=np.float64)
        x = np.asarray(new, dtype=np.float64)
        shapes_ok = y.ndim == 1 and x.ndim == 1 and y.size > 0 and x.size > 0
        if not shapes_ok or not (np.isfinite(x).all() and np.isfinite(y).all()):
            self.skipped += 1
            return False
        if self.xtx is None or self.xty is None:
            self.xtx = np.zeros((x.size, x.size))
            self.xty = np.zeros((x.size, y.size))
        elif self.xty.shape != (x.size, y.size):
            self.skipped += 1
            return False
        self.xtx += np.outer(x, x)
        self.xty += np.outer(x, y)
        self.n += 1
        return True

    def transpose_map(self, d_old: int, d_new: int) -> F64 | None:
        """``A^T`` (``d_new x d_old``) on the first dimensions of each; None if unfitted."""
        if self.xtx is None or self.xty is None or self.n == 0:
            return None
        d_new = min(d_new, self.xtx.shape[0])
        d_old = min(d_old, self.xty.shape[1])
        xtx = self.xtx[:d_new, :d_new]
        ridge = _RIDGE * max(float(np.trace(xtx)) / d_new, 1e-12)
        return np.asarray(
            np.linalg.solve(xtx + ridge * np.eye(d_new), self.xty[:d_new, :d_old]),
            dtype=np.float64,
        )


def carry_weights(weights: Mapping[Any, float], pairs: EmbeddingPairs) -> dict[str, float]:
    """The image weights for the new embedding that reproduce ``weights``' image logits.

    ``weights`` are the champion's (non-image ones are ignored). Each group
    (the plain ``img_k``, and ``img_k&<cross>`` per cross) is mapped with the
    least-squares map of its own dimensions: a cross covers only the first
    few dimensions, and its map must explain those from the new embedding's
    same first few. Returns ``{feature: weight}`` for the new embedding,
    without zeros; empty when the pairs fit nothing.
    """
    groups: dict[str, dict[int, float]] = {}
    for name, w in weights.items():
        found = _IMAGE_FEATURE.match(str(name))
        if found is not None and w != 0.0:
            groups.setdefault(found.group(2) or "", {})[int(found.group(1))] = float(w)
    if pairs.xtx is None or pairs.xty is None:
        return {}
    d_new_all, d_old_all = pairs.xty.shape
    out: dict[str, float] = {}
    for cross, by_dim in groups.items():
        # the plain group spans the whole embedding; a cross spans its first dims
        d_old = d_old_all if not cross else min(max(by_dim) + 1, d_old_all)
        d_new = d_new_all if not cross else min(d_old, d_new_all)
        transpose = pairs.transpose_map(d_old, d_new)
        if transpose is None:
            return {}
        w_old = np.zeros(transpose.shape[1])
        for k, w in by_dim.items():
            if k < w_old.size:
                w_old[k] = w
        w_new = transpose @ w_old
        suffix = f"&{cross}" if cross else ""
        for k, w in enumerate(w_new):
            if w != 0.0 and np.isfinite(w):
                out[f"{IMAGE_PREFIX}{k}{suffix}"] = float(w)
    log.info(
        "carried %d image weights (%d groups) over to the new embedding, from %d paired images",
        len(out),
        len(groups),
        pairs.n,
    )
    return out
