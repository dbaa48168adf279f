"""VICReg: no invariance cost for identical views, a large variance cost for collapse."""
from __future__ import annotations

import pytest
import torch
from lightly.loss import VICRegLoss
from lightly.loss.vicreg_loss import covariance_loss

from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from methods.vicreg import VICReg, VICRegConfig, vicreg_terms


def test_identical_well_spread_views_cost_no_invariance_nor_variance():
    z = 3.0 * torch.randn(256, 16, generator=torch.Generator().manual_seed(0))
    terms = vicreg_terms(z, z.clone())
    assert terms["invariance"].item() == 0.0
    assert terms["variance"].item() == 0.0        # every dimension has std > 1


def test_collapsed_embeddings_cost_nearly_the_full_variance_term():
    z = torch.ones(64, 16) * torch.randn(1, 16, generator=torch.Generator().manual_seed(0))
    terms = vicreg_terms(z, z)
    # relu(1 - sqrt(0 + eps)) = 0.99 in every dimension: the largest value the term takes
    assert terms["variance"].item() == pytest.approx(1.0 - 1e-2, abs=1e-6)


def test_logged_terms_are_those_of_lightlys_total():
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(32, 8, generator=g), torch.randn(32, 8, generator=g)
    t = vicreg_terms(za, zb)
    want = 25 * t["invariance"] + 25 * t["variance"] + covariance_loss(za) + covariance_loss(zb)
    assert VICRegLoss()(za, zb).item() == pytest.approx(want.item(), rel=1e-6)


def test_method_loss_on_two_augmented_views():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    method = VICReg(VICRegConfig(proj_hidden=64, proj_dim=32), backbone, backbone.feat_dim,
                    Augmenter(AugmentConfig())).train()
    assert method.projector(torch.randn(4, backbone.feat_dim)).shape == (4, 32)
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    loss, logs = method.loss({"image": images}, torch.Generator().manual_seed(2))
    again, _ = method.loss({"image": images}, torch.Generator().manual_seed(2))
    assert torch.isfinite(loss) and loss.item() == again.item()       # same generator, same views
    assert logs["loss"] == pytest.approx(loss.item())
    assert logs["invariance"] > 0 and 0 <= logs["variance"] <= 1
    assert VICReg.passes_per_sample == 2 and VICReg.inputs == ("images",)
