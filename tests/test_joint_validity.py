"""Per-joint validity (AssemblyHands' ``joint_valid``): what an invalid joint holds never
changes a loss, a metric or a floor; with every joint valid nothing changes at all; a joint's
measures are those of its valid samples, and each hand is aligned on its valid joints."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.pose_model import ROOT, pose_loss, targets
from eval.floors import floor_predictions, score_floors
from eval.metrics import freihand_metrics, keypoint_2d_metrics, procrustes_align


def hands(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal([0.0, 0.0, 0.6], [0.05, 0.05, 0.1], (n, 1, 3)) + rng.normal(0, 0.04, (n, 21, 3))


def flags(n: int, seed: int, min_valid: int = 10) -> np.ndarray:
    """(n, 21) flags with at least ``min_valid`` valid joints per sample, every joint valid
    in some sample."""
    rng = np.random.default_rng(seed)
    v = rng.random((n, 21)) < 0.7
    for i in range(n):
        v[i, rng.permutation(21)[:min_valid]] = True
    v[0] = True
    return v


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_what_invalid_joints_hold_changes_no_score(seed):
    gt, valid = hands(12, seed), flags(12, seed)
    pred = gt + np.random.default_rng(seed + 1).normal(0, 0.01, gt.shape)
    junk = np.random.default_rng(seed + 2).normal(0, 5.0, gt.shape)      # metres of garbage
    a = freihand_metrics(pred, gt, valid)
    b = freihand_metrics(np.where(valid[..., None], pred, junk),
                         np.where(valid[..., None], gt, -junk), valid)
    for key in ("epe_mm", "pa_epe_mm", "auc", "pa_auc", "per_joint_pa_epe_mm", "pa_pck"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12)


def test_each_joint_is_measured_over_its_valid_samples_and_each_hand_aligned_on_its_valid_joints():
    gt, valid = hands(9, 3), flags(9, 3)
    pred = gt + np.random.default_rng(4).normal(0, 0.01, gt.shape)
    m = freihand_metrics(pred, gt, valid)
    per_joint = [[] for _ in range(21)]
    pa_joint = [[] for _ in range(21)]
    for g, p, v in zip(gt, pred, valid):
        aligned = procrustes_align(g[v][None], p[v][None])[0]     # the official transform on the subset
        for k, j in enumerate(np.flatnonzero(v)):
            per_joint[j].append(np.linalg.norm(p[j] - g[j]))
            pa_joint[j].append(np.linalg.norm(aligned[k] - g[v][k]))
    expect = [1000 * np.mean(d) for d in per_joint]
    expect_pa = [1000 * np.mean(d) for d in pa_joint]
    np.testing.assert_allclose(m["per_joint_epe_mm"], expect, rtol=1e-10)
    np.testing.assert_allclose(m["per_joint_pa_epe_mm"], expect_pa, rtol=1e-7)
    assert m["epe_mm"] == pytest.approx(np.mean(expect), rel=1e-10)
    assert m["pa_epe_mm"] == pytest.approx(np.mean(expect_pa), rel=1e-7)


def test_every_joint_valid_gives_exactly_the_unmasked_scores():
    gt = hands(7, 1)
    pred = gt + np.random.default_rng(2).normal(0, 0.01, gt.shape)
    assert freihand_metrics(pred, gt, np.ones((7, 21), bool)) == freihand_metrics(pred, gt)
    uv = gt[..., :2] * 100
    assert keypoint_2d_metrics(uv + 1, uv, 64, np.ones((7, 21), bool)) == keypoint_2d_metrics(uv + 1, uv, 64)


def test_a_joint_valid_nowhere_is_refused():
    gt, valid = hands(4, 0), np.ones((4, 21), bool)
    valid[:, 5] = False
    with pytest.raises(ValueError, match=r"joints \[5\] are valid in no sample"):
        freihand_metrics(gt, gt, valid)


def test_2d_scores_ignore_invalid_joints():
    uv, valid = hands(8, 5)[..., :2] * 100, flags(8, 5)
    pred = uv + 2.0
    junk = np.where(valid[..., None], pred, 1e4)
    assert keypoint_2d_metrics(junk, uv, 64, valid) == keypoint_2d_metrics(pred, uv, 64, valid)
    assert keypoint_2d_metrics(pred, uv, 64, valid)["epe_2d_px"] == pytest.approx(2 * np.sqrt(2))


def test_floors_ignore_what_invalid_joints_hold():
    train, tv = hands(30, 7), flags(30, 7)
    test, ev = hands(10, 8), flags(10, 8)
    junk = np.random.default_rng(9).normal(0, 3.0, train.shape)
    a = score_floors(floor_predictions(train, tv), test, ev)
    b = score_floors(floor_predictions(np.where(tv[..., None], train, junk), tv),
                     np.where(ev[..., None], test, junk[:10]), ev)
    assert a == b
    # built from the poses with every joint valid
    whole = tv.all(axis=1)
    assert score_floors(floor_predictions(train[whole]), test, ev) == a


def _batch(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randn(n, 21, 3, generator=g) * 0.04 + torch.tensor([0.0, 0.0, 0.6])
    K = torch.tensor([[120.0, 0.0, 32.0], [0.0, 120.0, 32.0], [0.0, 0.0, 1.0]]).expand(n, 3, 3)
    valid = torch.from_numpy(flags(n, seed))
    return targets(xyz, K), valid


def test_an_invalid_joint_gets_no_gradient_and_changes_no_loss():
    truth, valid = _batch(6, 0)
    pred = {k: (v + 0.1 * torch.randn_like(v)).requires_grad_() for k, v in truth.items()
            if k in ("uv_px", "zrel", "z_root")}
    loss, _ = pose_loss(pred, truth, res=64, valid=valid)
    loss.backward()
    assert (pred["uv_px"].grad[~valid] == 0).all() and (pred["zrel"].grad[~valid] == 0).all()
    assert (pred["uv_px"].grad[valid] != 0).any()
    junk = {k: v.detach().clone() for k, v in pred.items()}
    junk["uv_px"][~valid] = 1e4
    junk["zrel"][~valid] = -1e3
    again, _ = pose_loss(junk, truth, res=64, valid=valid)
    assert again.item() == pytest.approx(loss.item(), rel=1e-6)


def test_every_joint_valid_gives_the_unmasked_loss():
    truth, _ = _batch(5, 1)
    pred = {k: v + 0.1 * torch.randn_like(v) for k, v in truth.items() if k in ("uv_px", "zrel", "z_root")}
    a, _ = pose_loss(pred, truth, res=64)
    b, _ = pose_loss(pred, truth, res=64, valid=torch.ones(5, 21, dtype=torch.bool))
    assert a.item() == b.item()


def test_the_masked_loss_is_the_mean_over_valid_joints():
    truth, valid = _batch(4, 2)
    pred = {"uv_px": truth["uv_px"] + 6.4, "zrel": truth["zrel"] + 0.5 * (torch.arange(21) != ROOT),
            "z_root": truth["z_root"]}
    _, logs = pose_loss(pred, truth, res=64, depth_weight=1.0, valid=valid)
    assert logs["uv"].item() == pytest.approx(0.1, rel=1e-5)
    v = valid.clone()
    expect = 0.5 * (v[:, [j for j in range(21) if j != ROOT]].sum() / v.sum()).item()
    assert logs["zrel"].item() == pytest.approx(expect, rel=1e-5)
