"""FreiHAND metrics: hand-computed values, invariances, and an independent reference loop."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from eval.metrics import THRESHOLDS_M, freihand_metrics, procrustes_align

STEP_MM = 50.0 / 99.0


def hands(n: int, seed: int) -> np.ndarray:
    """Hand-sized point clouds in metres: 21 joints spread ~4 cm around a point ~0.6 m away."""
    rng = np.random.default_rng(seed)
    centre = rng.normal([0.0, 0.0, 0.6], [0.05, 0.05, 0.1], size=(n, 1, 3))
    return centre + rng.normal(0.0, 0.04, size=(n, 21, 3))


def reference_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | np.ndarray]:
    """A plain per-sample, per-keypoint loop written from FreiHAND's eval.py / EvalUtil formulas."""
    thresholds = np.linspace(0.0, 0.05, 100)
    dists: dict[str, list[list[float]]] = {"raw": [[] for _ in range(21)], "pa": [[] for _ in range(21)]}
    for g, p in zip(gt, pred):
        t1, t2 = g.mean(0), p.mean(0)
        g0, p0 = g - t1, p - t2
        s1 = np.linalg.norm(g0) + 1e-8
        s2 = np.linalg.norm(p0) + 1e-8
        g0, p0 = g0 / s1, p0 / s2
        r, s = orthogonal_procrustes(g0, p0)
        aligned = np.dot(p0, r.T) * s * s1 + t1
        for k in range(21):
            dists["raw"][k].append(math.dist(g[k], p[k]))
            dists["pa"][k].append(math.dist(g[k], aligned[k]))
    out: dict[str, float | np.ndarray] = {}
    for name, per_kp in dists.items():
        epes, aucs, curves = [], [], []
        for data in per_kp:
            data = np.array(data)
            epes.append(np.mean(data))
            curve = np.array([np.mean((data <= t).astype(float)) for t in thresholds])
            curves.append(curve)
            aucs.append(np.trapezoid(curve, thresholds) / np.trapezoid(np.ones_like(thresholds), thresholds))
        out[name + "_epe_mm"] = float(np.mean(epes)) * 1000.0
        out[name + "_auc"] = float(np.mean(aucs))
        out[name + "_pck"] = np.mean(np.array(curves), axis=0)
        out[name + "_per_joint_mm"] = np.array(epes) * 1000.0
    return out


def constant_error(e_mm: float, n: int = 3) -> dict:
    """Prediction offset from the GT by exactly e_mm on every joint (GT at the origin: no rounding)."""
    gt = np.zeros((n, 21, 3))
    pred = gt.copy()
    pred[..., 1] = e_mm / 1000.0
    return freihand_metrics(pred, gt)


def test_constant_10mm_error_gives_official_auc() -> None:
    m = freihand_metrics(hands(5, 0) + np.array([0.0, 0.01, 0.0]), hands(5, 0))
    assert m["epe_mm"] == pytest.approx(10.0, abs=1e-9)
    assert m["auc"] == pytest.approx(79.5 / 99.0, abs=1e-12)
    assert m["auc"] == pytest.approx(0.80303, abs=5e-6)
    assert m["per_joint_epe_mm"] == pytest.approx([10.0] * 21, abs=1e-9)
    # a pure translation vanishes under alignment (up to the official 1e-8 norm epsilon)
    assert m["pa_epe_mm"] < 1e-4 and m["pa_pck"][1:] == [1.0] * 99


@pytest.mark.parametrize(
    ("e_mm", "auc"),
    [(0.0, 1.0), (5.0, 89.5 / 99), (7.1, 84.5 / 99), (20.0, 59.5 / 99), (25.0, 0.5),
     (49.0, 1.5 / 99), (50.0, 0.5 / 99), (50.5, 0.0), (80.0, 0.0)],
)
def test_auc_table_of_constant_errors(e_mm: float, auc: float) -> None:
    m = constant_error(e_mm)
    assert m["auc"] == pytest.approx(auc, abs=1e-12)
    assert m["epe_mm"] == pytest.approx(e_mm, abs=1e-9)


@given(st.floats(0.01, 49.99))
def test_auc_of_constant_error_follows_closed_form(e_mm: float) -> None:
    k = math.ceil(e_mm / STEP_MM)
    if abs(e_mm - k * STEP_MM) < 1e-6 or abs(e_mm - (k - 1) * STEP_MM) < 1e-6:
        return  # within rounding of a threshold: either side is correct
    assert constant_error(e_mm, n=1)["auc"] == pytest.approx((99 - k + 0.5) / 99, abs=1e-12)


def test_thresholds_and_pck_curve() -> None:
    m = constant_error(10.0)
    assert len(m["pck_thresholds_mm"]) == 100 and len(m["pck"]) == 100 and len(m["pa_pck"]) == 100
    assert m["pck_thresholds_mm"][0] == 0.0 and m["pck_thresholds_mm"][-1] == pytest.approx(50.0)
    assert np.allclose(np.diff(m["pck_thresholds_mm"]), STEP_MM)
    assert m["pck"] == [0.0] * 20 + [1.0] * 80  # first threshold >= 10 mm is index 20 (10.10 mm)
    assert np.array_equal(THRESHOLDS_M, np.linspace(0.0, 0.05, 100))


def test_pck_is_inclusive_at_threshold() -> None:
    gt = np.zeros((1, 21, 3))
    pred = gt.copy()
    pred[..., 0] = THRESHOLDS_M[40]
    assert freihand_metrics(pred, gt)["pck"][40] == 1.0


def test_zero_prediction_aligned_error_is_mean_distance_to_centroid() -> None:
    gt = hands(7, 1)
    m = freihand_metrics(np.zeros_like(gt), gt)
    expected = np.linalg.norm(gt - gt.mean(axis=1, keepdims=True), axis=-1).mean() * 1000.0
    assert m["pa_epe_mm"] == pytest.approx(expected, rel=1e-12)
    assert m["epe_mm"] == pytest.approx(np.linalg.norm(gt, axis=-1).mean() * 1000.0, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), log_scale=st.floats(-2.0, 2.0), mirror=st.booleans())
def test_similarity_copy_has_zero_aligned_error(seed: int, log_scale: float, mirror: bool) -> None:
    rng = np.random.default_rng(seed)
    gt = hands(4, seed)
    rot = Rotation.random(4, random_state=seed).as_matrix()
    if mirror:
        rot = rot @ np.diag([1.0, 1.0, -1.0])
    pred = np.exp(log_scale) * gt @ np.swapaxes(rot, 1, 2) + rng.normal(0.0, 1.0, size=(4, 1, 3))
    m = freihand_metrics(pred, gt)
    assert m["pa_epe_mm"] < 1e-4
    assert m["pa_pck"][1:] == [1.0] * 99


def test_perfect_prediction_scores_like_the_official_script() -> None:
    """The official 1e-8 on the norms leaves nanometres after alignment: PA-PCK(0 mm) is 0."""
    gt = hands(5, 2)
    m = freihand_metrics(gt.copy(), gt)
    assert m["epe_mm"] == 0.0 and m["auc"] == 1.0
    assert 0.0 < m["pa_epe_mm"] < 1e-4
    assert m["pa_auc"] == pytest.approx(98.5 / 99, abs=1e-12)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), noise=st.floats(0.001, 0.05))
def test_vectorised_metrics_equal_reference_loop(seed: int, noise: float) -> None:
    gt = hands(12, seed)
    rng = np.random.default_rng(seed + 1)
    pred = gt * rng.uniform(0.8, 1.2) + rng.normal(0.0, noise, size=gt.shape)
    m = freihand_metrics(pred, gt)
    ref = reference_metrics(pred, gt)
    assert m["epe_mm"] == pytest.approx(ref["raw_epe_mm"], abs=1e-6)
    assert m["pa_epe_mm"] == pytest.approx(ref["pa_epe_mm"], abs=1e-6)
    assert m["auc"] == pytest.approx(ref["raw_auc"], abs=1e-9)
    assert m["pa_auc"] == pytest.approx(ref["pa_auc"], abs=1e-9)
    assert np.allclose(m["pck"], ref["raw_pck"], atol=1e-12)
    assert np.allclose(m["pa_pck"], ref["pa_pck"], atol=1e-12)
    assert np.allclose(m["per_joint_epe_mm"], ref["raw_per_joint_mm"], atol=1e-6)
    assert np.allclose(m["per_joint_pa_epe_mm"], ref["pa_per_joint_mm"], atol=1e-6)


def test_batched_alignment_equals_scipy_per_sample() -> None:
    gt = hands(6, 3)
    pred = hands(6, 4)
    aligned = procrustes_align(gt, pred)
    for g, p, a in zip(gt, pred, aligned):
        g0, p0 = g - g.mean(0), p - p.mean(0)
        s1 = np.linalg.norm(g0) + 1e-8
        r, s = orthogonal_procrustes(g0 / s1, p0 / (np.linalg.norm(p0) + 1e-8))
        assert np.allclose(a, (p0 / (np.linalg.norm(p0) + 1e-8)) @ r.T * s * s1 + g.mean(0), atol=1e-12)


def test_result_is_json_ready() -> None:
    m = freihand_metrics(hands(3, 5), hands(3, 6))
    assert m["n"] == 3 and isinstance(m["n"], int)
    for key in ("epe_mm", "pa_epe_mm", "auc", "pa_auc"):
        assert type(m[key]) is float
    assert all(type(v) is float for v in m["per_joint_pa_epe_mm"])
    assert len(m["per_joint_epe_mm"]) == 21 and len(m["per_joint_pa_epe_mm"]) == 21


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError):
        freihand_metrics(np.zeros((2, 21, 3)), np.zeros((3, 21, 3)))
    with pytest.raises(ValueError):
        freihand_metrics(np.zeros((2, 21, 2)), np.zeros((2, 21, 2)))


def test_2d_metrics_against_hand_computed_values():
    """Half the joints 3 px off, half 4 px off, in a 64 px crop: EPE 3.5 px = 0.0546875 of
    the side; PCK is 0 below 3/64, 0.5 from 3/64 and 1 from 4/64 of the side."""
    from eval.metrics import THRESHOLDS_2D, keypoint_2d_metrics

    gt = np.zeros((4, 2, 2))
    pred = gt.copy()
    pred[:, 0, 0] = 3.0
    pred[:, 1, 1] = -4.0
    m = keypoint_2d_metrics(pred, gt, 64)
    assert m["epe_2d_px"] == pytest.approx(3.5)
    assert m["epe_2d_frac"] == pytest.approx(3.5 / 64)
    pck = np.asarray(m["pck_2d"])
    expected = 0.5 * (THRESHOLDS_2D >= 3 / 64) + 0.5 * (THRESHOLDS_2D >= 4 / 64)
    np.testing.assert_allclose(pck, expected)
    norm = np.trapezoid(np.ones_like(THRESHOLDS_2D), THRESHOLDS_2D)
    assert m["auc_2d"] == pytest.approx(np.trapezoid(expected, THRESHOLDS_2D) / norm)
    with pytest.raises(ValueError):
        keypoint_2d_metrics(pred, gt[:, :1], 64)
