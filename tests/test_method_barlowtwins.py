"""Barlow Twins: identical, decorrelated views cost nothing; the logged terms make lightly's loss."""
from __future__ import annotations

import pytest
import torch
from lightly.loss import BarlowTwinsLoss

from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from methods.barlowtwins import BarlowTwins, BarlowTwinsConfig, correlation_terms


def decorrelated(n: int = 64, d: int = 8) -> torch.Tensor:
    """(n, d) with exactly uncorrelated, standardised columns: scaled orthogonal columns."""
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=torch.Generator().manual_seed(0)))
    q = q - q.mean(0)                               # centring keeps columns nearly orthogonal
    q, _ = torch.linalg.qr(q)                       # re-orthogonalise the centred columns
    return q * n ** 0.5


def test_perfectly_correlated_identical_views_give_zero_off_diagonal():
    z = decorrelated()
    z = z - z.mean(0)                               # QR of centred columns stays centred
    t = correlation_terms(z, z.clone())
    assert t["off_diag"].item() == pytest.approx(0.0, abs=1e-6)
    assert t["on_diag"].item() == pytest.approx(0.0, abs=1e-4)


def test_redundant_dimensions_cost_off_diagonal():
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    z = torch.cat([z, z[:, :1]], dim=1)             # the last dimension repeats the first
    t = correlation_terms(z, z.clone())
    assert t["off_diag"].item() > 1.5               # c[0,4] = c[4,0] = 1, at least
    assert t["on_diag"].item() == pytest.approx(0.0, abs=1e-4)


def test_the_terms_make_lightlys_loss():
    g = torch.Generator().manual_seed(2)
    za, zb = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    t = correlation_terms(za, zb)
    lam = 0.0051
    want = t["on_diag"] + lam * t["off_diag"]
    assert BarlowTwinsLoss(lambda_param=lam, gather_distributed=False)(za, zb).item() == \
        pytest.approx(want.item(), rel=1e-5)


def test_method_loss_and_logs():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    method = BarlowTwins(BarlowTwinsConfig(proj_hidden=64, proj_dim=32), backbone,
                         backbone.feat_dim, Augmenter(AugmentConfig())).train()
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loss, logs = method.loss({"image": images}, torch.Generator().manual_seed(2))
    again, _ = method.loss({"image": images}, torch.Generator().manual_seed(2))
    assert torch.isfinite(loss) and loss.item() == again.item()
    assert logs["on_diag"] + 0.0051 * logs["off_diag"] == pytest.approx(loss.item(), rel=1e-4)
