"""peclr: the latent map inverts the image's geometry exactly, so equivariant embeddings
cost exactly what identical embeddings cost."""
import math

import pytest
import torch

import methods
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from benchmarks.errors import UserError
from methods.peclr import equivariant_ntxent, latent_forward, latent_inverse, to_points
from methods.simclr import SimCLR

PeCLR = methods.get("peclr")
GEOMETRY = AugmentConfig(rotate_deg=90, translate=0.2, scale_min=0.6, scale_max=1.5)


def build(cls=PeCLR, geometric=True, backbone=None, **cfg):
    """The method on resnet18, or only its head and loss (identity "backbone", 512 features)."""
    torch.manual_seed(0)
    backbone = backbone if backbone is not None else create_backbone("resnet18")
    aug = Augmenter(AugmentConfig(), geometric=geometric)
    return cls(cls.Config(**cfg), backbone, 512, aug)


def params(b, seed, size=(64, 64)):
    return Augmenter(GEOMETRY).sample(b, size, torch.Generator().manual_seed(seed), "cpu")


def test_inverse_undoes_forward():
    x = torch.randn(8, 64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = {k: v.double() for k, v in params(8, 1).items()}
    y = latent_forward(x, p)
    assert (y - x).abs().max() > 0.1
    torch.testing.assert_close(latent_inverse(y, p), x, atol=1e-12, rtol=0)


def test_equivariant_embeddings_cost_what_identical_ones_cost():
    """View k's embedding is the untransformed one moved by view k's sampled parameters."""
    g = torch.Generator().manual_seed(2)
    z0 = torch.randn(8, 128, generator=g)
    p1, p2 = params(8, 3), params(8, 4)
    z1 = latent_forward(to_points(z0), p1).flatten(1)
    z2 = latent_forward(to_points(z0), p2).flatten(1)
    criterion = build(backbone=torch.nn.Identity()).criterion
    identical = criterion(z0, z0)
    torch.testing.assert_close(equivariant_ntxent(z1, z2, p1, p2, criterion), identical,
                               atol=1e-5, rtol=0)
    # without the inverse (SimCLR on the same embeddings) the loss is clearly higher,
    # and undoing the wrong view's parameters does not give the identical-embedding loss
    assert criterion(z1, z2) > identical + 0.1
    assert equivariant_ntxent(z1, z2, p2, p1, criterion) > identical + 0.1


def test_latent_map_uses_the_image_convention():
    """A cloud centred on the image whose range is the image is moved like the keypoints."""
    h, w = 48, 64
    corners = torch.tensor([[[0.0, 0.0], [w, 0.0], [0.0, h], [w, h]]]).repeat(6, 1, 1)
    p = params(6, 5, size=(h, w))
    rotate_zoom = dict(p, translate=torch.zeros(6, 2))
    shift = dict(p, angle=torch.zeros(6), scale=torch.ones(6))
    for q in (rotate_zoom, shift):
        torch.testing.assert_close(latent_forward(corners, q), Augmenter.map_points(corners, q),
                                   atol=1e-4, rtol=0)


def test_without_geometry_peclr_is_simclr():
    batch = {"image": torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(6))}
    pair = [build(cls, geometric=False) for cls in (SimCLR, PeCLR)]     # same weights
    with torch.no_grad():
        flat = [m.loss(batch, torch.Generator().manual_seed(7))[0] for m in pair]
        torch.testing.assert_close(flat[0], flat[1], atol=1e-6, rtol=0)
        # with geometry (same views for both) the inverse changes the objective
        for m in pair:
            m.augmenter = Augmenter(AugmentConfig())
        geo = [m.loss(batch, torch.Generator().manual_seed(7))[0] for m in pair]
    assert not math.isclose(float(geo[0]), float(geo[1]), abs_tol=1e-4)


def test_odd_projection_is_a_user_error():
    with pytest.raises(UserError, match="even"):
        build(backbone=torch.nn.Identity(), out_dim=127)
