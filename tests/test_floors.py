"""No-image floors: the canonical hand and the one-point prediction, against hand-made poses."""
from __future__ import annotations

import numpy as np
import pytest

from eval.floors import canonical_shape, floor_predictions, no_image_floors
from eval.metrics import freihand_metrics


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def posed(shape: np.ndarray, n: int, seed: int, noise: float = 0.0) -> np.ndarray:
    """``n`` copies of ``shape`` (21, 3) metres, each rotated, scaled by 0.9-1.1, put 0.4-0.8 m
    in front of the camera, with optional per-joint noise (metres)."""
    rng = np.random.default_rng(seed)
    rot = random_rotations(n, rng)
    scale = rng.uniform(0.9, 1.1, size=(n, 1, 1))
    shift = np.stack([rng.uniform(-0.05, 0.05, n), rng.uniform(-0.05, 0.05, n),
                      rng.uniform(0.4, 0.8, n)], -1)[:, None]
    return (shape + rng.normal(scale=noise, size=(n, *shape.shape))) @ np.swapaxes(rot, 1, 2) * scale + shift


HAND = np.random.default_rng(0).normal(scale=0.04, size=(21, 3))


def test_canonical_shape_recovers_one_shape_seen_from_everywhere():
    """Every pose one shape under a similarity: the canonical hand scores 0 mm aligned."""
    train, test = posed(HAND, 64, 1), posed(HAND, 32, 2)
    floors = no_image_floors(train, test)
    assert floors["canonical_hand"]["pa_epe_mm"] < 1e-3
    assert floors["one_point"]["pa_epe_mm"] > 10


def test_canonical_shape_is_unit_centred_and_invariant_to_the_training_poses_frames():
    train = posed(HAND, 40, 3, noise=0.004)
    shape = canonical_shape(train)
    assert np.allclose(shape.mean(0), 0, atol=1e-12)
    assert np.linalg.norm(shape) == pytest.approx(1.0)
    # turning, scaling and moving every training hand changes nothing the aligned metric sees
    rng = np.random.default_rng(4)
    moved = (train @ np.swapaxes(random_rotations(len(train), rng), 1, 2)
             * rng.uniform(0.5, 2.0, (len(train), 1, 1)) + rng.normal(size=(len(train), 1, 3)))
    m = freihand_metrics(canonical_shape(moved)[None] * 0.1, shape[None] * 0.1)
    assert m["pa_epe_mm"] < 1e-3


def test_one_point_scores_the_distance_of_each_joint_to_the_centroid():
    """Aligned, a prediction with every joint at one point collapses onto the sample's
    centroid: its PA-EPE is the mean joint distance to the centroid (hand-computed here)."""
    test = posed(HAND, 16, 5)
    expected = np.linalg.norm(test - test.mean(1, keepdims=True), axis=-1).mean() * 1000
    assert no_image_floors(posed(HAND, 8, 6), test)["one_point"]["pa_epe_mm"] == pytest.approx(expected, rel=1e-6)


def test_noisier_shapes_raise_the_canonical_floor_and_it_stays_below_one_point():
    clean = no_image_floors(posed(HAND, 64, 7, 0.002), posed(HAND, 64, 8, 0.002))
    noisy = no_image_floors(posed(HAND, 64, 7, 0.01), posed(HAND, 64, 8, 0.01))
    assert clean["canonical_hand"]["pa_epe_mm"] < noisy["canonical_hand"]["pa_epe_mm"]
    assert noisy["canonical_hand"]["pa_epe_mm"] < noisy["one_point"]["pa_epe_mm"]


def test_unaligned_canonical_hand_sits_where_the_training_hands_are():
    train = posed(HAND, 64, 10, 0.002)
    pred = floor_predictions(train)["canonical_hand"]
    assert np.allclose(pred.mean(0), train.mean(axis=(0, 1)), atol=1e-9)
    size = np.linalg.norm(pred - pred.mean(0))
    assert size == pytest.approx(np.linalg.norm(train - train.mean(1, keepdims=True), axis=(1, 2)).mean())
