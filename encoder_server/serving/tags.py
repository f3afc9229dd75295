"""Tags from scores: the ImageNet class names, top-k, and CLIP zero-shot scores.

Pure numpy. The ImageNet names are data, vendored in
``imagenet_classes.txt`` beside this module (no installed package ships
them), in the classifier's index order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.special import softmax

from encoder_server.description import Tag

__all__ = ["CLIP_LOGIT_SCALE", "DEFAULT_TOP_K", "imagenet_labels", "top_tags", "zero_shot_probs"]

#: tags kept per image
DEFAULT_TOP_K = 5
#: CLIP's trained logit scale (exp of its learned temperature, capped at 100)
CLIP_LOGIT_SCALE = 100.0
_LABELS_FILE = Path(__file__).with_name("imagenet_classes.txt")


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, index order ("sports car" is 817)."""
    lines = _LABELS_FILE.read_text(encoding="utf-8").splitlines()
    labels = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if len(labels) != 1000:
        raise ValueError(f"{_LABELS_FILE}: {len(labels)} class names, expected 1000")
    return labels


def top_tags(
    probs: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    labels: Sequence[str],
    k: int = DEFAULT_TOP_K,
) -> tuple[Tag, ...]:
    """The ``k`` best labels of one row of probabilities, best first.

    >>> top_tags(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], 2)
    (Tag(label='b', score=0.7), Tag(label='c', score=0.2))
    """
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} scores for {len(labels)} labels")
    best = np.argsort(-probs, kind="stable")[: max(0, k)]
    return tuple(Tag(labels[i], round(float(probs[i]), 4)) for i in best)


def zero_shot_probs(
    images: npt.NDArray[np.float32], labels: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """CLIP zero-shot: softmax over labels of ``100 x`` cosine similarity, ``[n_images, n_labels]``.

    Both inputs are L2-normalised rows in the joint space (images ``[n, d]``,
    label prompts ``[m, d]``), as in the CLIP paper's zero-shot classifier.
    """
    logits = CLIP_LOGIT_SCALE * images.astype(np.float64) @ labels.astype(np.float64).T
    out: npt.NDArray[np.float64] = softmax(logits, axis=1)
    return out
