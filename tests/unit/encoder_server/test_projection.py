"""Projection heads: normalised output, zero rows, deterministic PCA, file round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoder_server.projection import Projection, fit_pca


def test_random_is_deterministic_and_normalised() -> None:
    a = Projection.random(1280, 64, seed=0)
    b = Projection.random(1280, 64, seed=0)
    assert np.array_equal(a.components, b.components)
    assert not np.array_equal(a.components, Projection.random(1280, 64, seed=1).components)
    x = np.random.default_rng(0).normal(size=(5, 1280))
    y = a.apply(x)
    assert y.dtype == np.float32
    assert y.shape == (5, 64)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert (a.version, a.kind, a.d_in, a.d_out) == (1, "random", 1280, 64)


def test_zero_rows_stay_zero() -> None:
    x = np.zeros((3, 8), dtype=np.float32)
    x[1] = 1.0
    pca = fit_pca(np.random.default_rng(0).normal(size=(20, 8)), 4)
    for head in (Projection.identity(8), Projection.random(8, 4), pca):
        y = head.apply(x)
        assert not y[0].any()
        assert not y[2].any()
        assert np.isclose(np.linalg.norm(y[1]), 1.0)


def test_identity_only_normalises() -> None:
    x = np.array([[3.0, 4.0]])
    np.testing.assert_allclose(Projection.identity(2).apply(x), [[0.6, 0.8]], atol=1e-6)


def test_pca_finds_the_dominant_direction_with_fixed_signs() -> None:
    rng = np.random.default_rng(0)
    direction = np.zeros(10)
    direction[3] = -1.0
    x = rng.normal(size=(200, 1)) * 10 * direction + rng.normal(size=(200, 10)) * 0.1
    head = fit_pca(x, 2, version=3)
    assert head.kind == "pca"
    assert head.version == 3
    assert head.components[0, 3] > 0.99  # sign convention: largest entry positive
    again = fit_pca(x[::-1].copy(), 2, version=3)
    np.testing.assert_allclose(again.components, head.components, atol=1e-5)


def test_save_load_round_trip(tmp_path: Path) -> None:
    head = fit_pca(np.random.default_rng(1).normal(size=(50, 16)), 5, version=2)
    path = tmp_path / "head.npz"
    head.save(path)
    loaded = Projection.load(path)
    assert (loaded.version, loaded.kind, loaded.note) == (head.version, head.kind, head.note)
    np.testing.assert_array_equal(loaded.mean, head.mean)
    np.testing.assert_array_equal(loaded.components, head.components)


def test_load_rejects_bad_shapes(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, mean=np.zeros(3), components=np.zeros((2, 4)), version=1, kind="pca")
    with pytest.raises(ValueError, match="mean must be"):
        Projection.load(path)
    np.savez(path, mean=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        Projection.load(path)


def test_invalid_heads_and_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="components"):
        Projection(
            mean=np.zeros(3, np.float32), components=np.zeros(3, np.float32), version=1, kind="x"
        )
    with pytest.raises(ValueError, match="version"):
        Projection.identity(3, version=0)
    with pytest.raises(ValueError, match="expected"):
        Projection.identity(3).apply(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="d_out"):
        fit_pca(np.zeros((3, 5)), 4)


def test_save_load_keeps_the_feature_set_and_old_files_mean_last(tmp_path: Path) -> None:
    head = fit_pca(np.random.default_rng(1).normal(size=(30, 6)), 2, feature_kind="multiscale")
    head.save(tmp_path / "ms.npz")
    assert Projection.load(tmp_path / "ms.npz").features == "multiscale"
    # a head written before the field existed projects the last layer
    np.savez(tmp_path / "old.npz", mean=np.zeros(3), components=np.eye(3), version=2, kind="pca")
    assert Projection.load(tmp_path / "old.npz").features == "last"
    with pytest.raises(ValueError, match="features must be"):
        Projection.identity(3).__class__(
            mean=np.zeros(3, np.float32),
            components=np.eye(3, dtype=np.float32),
            version=1,
            kind="pca",
            features="penultimate",
        )


def test_standardise_lets_a_narrow_scale_feature_lead() -> None:
    """Feature 0 carries the structure at a tiny scale; feature 1 is large noise."""
    rng = np.random.default_rng(2)
    signal = rng.normal(size=200)
    x = np.stack([0.01 * signal, 5.0 * rng.normal(size=200), 0.01 * signal], axis=1)
    plain = fit_pca(x, 1)
    assert abs(plain.components[0, 1]) > 0.99  # raw variance: the noise wins
    scaled = fit_pca(x, 1, standardise=True)
    # the scaling is folded into the components: raw input in, as served
    direction = (x - scaled.mean) @ scaled.components[0]
    assert abs(np.corrcoef(direction, signal)[0, 1]) > 0.95


def test_groups_take_directions_from_within_group_variation() -> None:
    """Groups differ along feature 0; members of a group differ along feature 1."""
    rng = np.random.default_rng(3)
    groups = [f"item-{i // 4}" for i in range(80)]
    between = np.repeat(rng.normal(size=20) * 10, 4)
    within = rng.normal(size=80)
    x = np.stack([between, within, 0.01 * rng.normal(size=80)], axis=1)
    assert abs(fit_pca(x, 1).components[0, 0]) > 0.99
    head = fit_pca(x, 1, groups=groups)
    assert abs(head.components[0, 1]) > 0.99
    assert "within 20 groups" in head.note
    with pytest.raises(ValueError, match="one label per row"):
        fit_pca(x, 1, groups=groups[:-1])
