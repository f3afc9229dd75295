"""The champion's image weights, carried over to a new embedding of the same images."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from online_ctr.promotion.weight_map import EmbeddingPairs, carry_weights

D = 6
CROSSES = 3  # the first 3 dimensions are crossed with the segment


def image_logit(weights: dict[str, float], e: npt.NDArray[np.float64], cross: str) -> float:
    """What the image features add to the logit of an image ``e`` in segment ``cross``."""
    total = sum(weights.get(f"img_{k}", 0.0) * float(e[k]) for k in range(e.size))
    return total + sum(weights.get(f"img_{k}&{cross}", 0.0) * float(e[k]) for k in range(CROSSES))


def fitted(old: npt.NDArray[np.float64], new: npt.NDArray[np.float64]) -> EmbeddingPairs:
    pairs = EmbeddingPairs()
    for o, n in zip(old, new, strict=True):
        assert pairs.add(o.tolist(), n.tolist())
    return pairs


def champion_weights(rng: np.random.Generator) -> dict[str, float]:
    w = {f"img_{k}": float(rng.normal()) for k in range(D)}
    w |= {f"img_{k}&seg.taste=t1": float(rng.normal()) for k in range(CROSSES)}
    w |= {"item=sku-1": 0.7, "seg.taste=t1": -0.2}  # not image weights: ignored
    return w


def test_an_invertible_map_of_the_embedding_carries_every_image_logit_exactly() -> None:
    rng = np.random.default_rng(1)
    old = rng.normal(size=(300, D))
    # a new head that mixes the crossed dimensions among themselves and the rest among
    # themselves (as a fine-tuned head started from the old one mostly does)
    mix = np.zeros((D, D))
    mix[:CROSSES, :CROSSES] = rng.normal(size=(CROSSES, CROSSES))
    mix[CROSSES:, CROSSES:] = rng.normal(size=(D - CROSSES, D - CROSSES))
    new = old @ mix.T
    weights = champion_weights(rng)
    carried = carry_weights(weights, fitted(old, new))
    assert set(carried) <= {f"img_{k}" for k in range(D)} | {
        f"img_{k}&seg.taste=t1" for k in range(CROSSES)
    }
    for o, n in zip(old[:20], new[:20], strict=True):
        assert image_logit(carried, n, "seg.taste=t1") == pytest.approx(
            image_logit(weights, o, "seg.taste=t1"), abs=1e-4
        )


def test_the_same_embedding_carries_the_same_weights() -> None:
    rng = np.random.default_rng(2)
    old = rng.normal(size=(100, D))
    weights = champion_weights(rng)
    carried = carry_weights(weights, fitted(old, old))
    image = {k: v for k, v in weights.items() if k.startswith("img_")}
    assert carried.keys() == image.keys()
    assert [carried[k] for k in image] == pytest.approx(list(image.values()), rel=1e-4)


def test_an_embedding_that_explains_nothing_carries_nothing_useful() -> None:
    rng = np.random.default_rng(3)
    old = rng.normal(size=(2000, D))
    weights = champion_weights(rng)
    assert carry_weights(weights, fitted(old, np.zeros_like(old))) == {}
    shuffled = carry_weights(weights, fitted(old, rng.normal(size=old.shape)))
    norm_old = np.linalg.norm([v for k, v in weights.items() if k.startswith("img_")])
    assert np.linalg.norm(list(shuffled.values())) < 0.2 * norm_old


def test_bad_pairs_are_skipped_not_fitted() -> None:
    pairs = EmbeddingPairs()
    assert not pairs.add(None, [1.0, 2.0])
    assert pairs.add([1.0, 0.0], [0.5, 0.5, 0.5])
    assert not pairs.add([1.0, float("nan")], [0.5, 0.5, 0.5])
    assert not pairs.add([1.0, 0.0], [0.5, 0.5])  # another width than the first pair's
    assert (pairs.n, pairs.skipped) == (1, 3)
    assert carry_weights({"img_0": 1.0}, EmbeddingPairs()) == {}
