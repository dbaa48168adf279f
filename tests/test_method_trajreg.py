"""Trajectory regularization: -1 along a great circle, +1 for a step that turns back."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from methods.trajreg import TrajReg, TrajRegConfig, trajectory_loss


def great_circle(angles: torch.Tensor, dim: int = 16, seed: int = 0) -> torch.Tensor:
    """Points cos(a) e1 + sin(a) e2 on a random great circle of the unit sphere in R^dim."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, 2, generator=g))
    return torch.cos(angles)[:, None] * basis[:, 0] + torch.sin(angles)[:, None] * basis[:, 1]


def test_equidistant_points_on_a_great_circle_give_minus_one():
    theta = torch.linspace(0, 5, 8)
    step = 0.3
    zl, zc, zr = (great_circle(theta + k * step) for k in (-1, 0, 1))
    # the loss normalises first: the scale of each feature does not matter
    assert trajectory_loss(3 * zl, zc, 0.5 * zr).item() == pytest.approx(-1.0, abs=1e-5)


def test_unequal_steps_along_the_circle_still_give_minus_one():
    theta = torch.tensor([0.1, 1.0, 2.0])
    zl, zc, zr = great_circle(theta - 0.05), great_circle(theta), great_circle(theta + 0.4)
    assert trajectory_loss(zl, zc, zr).item() == pytest.approx(-1.0, abs=1e-5)


def test_reversed_step_gives_plus_one():
    theta = torch.tensor([0.2, 1.5, -2.0])
    zl, zc = great_circle(theta - 0.3), great_circle(theta)
    assert trajectory_loss(zl, zc, zl).item() == pytest.approx(1.0, abs=1e-5)


def test_perpendicular_turn_gives_zero_and_batch_is_averaged():
    e = torch.eye(4)
    # from the pole e0: left along e1, right along e2 -> tangents orthogonal
    zc = e[0:1]
    zl = (math.cos(0.2) * e[0] - math.sin(0.2) * e[1])[None]
    zr = (math.cos(0.2) * e[0] + math.sin(0.2) * e[2])[None]
    assert trajectory_loss(zl, zc, zr).item() == pytest.approx(0.0, abs=1e-6)
    straight = (math.cos(0.2) * e[0] + math.sin(0.2) * e[1])[None]
    both = trajectory_loss(torch.cat([zl, zl]), torch.cat([zc, zc]), torch.cat([zr, straight]))
    assert both.item() == pytest.approx(-0.5, abs=1e-6)


def test_trajectory_term_acts_on_the_backbone_not_the_projector():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    cfg = TrajRegConfig(proj_hidden=64, proj_dim=64)
    method = TrajReg(cfg, backbone, backbone.feat_dim, Augmenter(AugmentConfig())).train()
    batch = {"triplet": torch.rand(4, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1))}

    def grads(weight: float) -> tuple[dict[str, torch.Tensor], float, dict]:
        m = copy.deepcopy(method)
        m.cfg = TrajRegConfig(proj_hidden=64, proj_dim=64, traj_weight=weight)
        loss, logs = m.loss(batch, torch.Generator().manual_seed(7))
        loss.backward()
        return {n: p.grad.clone() for n, p in m.named_parameters()}, float(loss.detach()), logs

    g0, loss0, logs0 = grads(0.0)
    g2, loss2, logs2 = grads(2.0)
    assert loss2 - loss0 == pytest.approx(2.0 * logs2["traj"], abs=1e-4)
    assert -1.0 <= logs2["traj"] <= 1.0 and logs0["vicreg"] == pytest.approx(logs2["vicreg"])
    for name in g0:
        if name.startswith("projector."):
            assert torch.allclose(g0[name], g2[name], atol=1e-6), name
    assert not torch.allclose(g0["backbone.net.layer4.1.bn2.weight"],
                              g2["backbone.net.layer4.1.bn2.weight"])
    assert TrajReg.passes_per_sample == 5 and TrajReg.inputs == ("triplets",)
