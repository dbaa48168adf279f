"""2.5D pose model: exact 2.5D -> 3D round trip, camera-frame invariance, gradients, loss."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmarks.backbone import create_backbone
from benchmarks.pose_model import BONE, ROOT, PoseNet, RootRefiner, pose_loss, root_depth, rays, targets

RES = 64


def hands(b: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Hand-like joints in metres, 0.45-0.9 m in front of the camera; bone 9-10 is 2.5-3.5 cm
    long and at least 30 degrees away from the viewing ray (no degenerate foreshortening)."""
    g = torch.Generator().manual_seed(seed)
    root = torch.stack([
        (torch.rand(b, generator=g) - 0.5) * 0.1,
        (torch.rand(b, generator=g) - 0.5) * 0.1,
        0.45 + 0.45 * torch.rand(b, generator=g),
    ], dim=1).double()
    xyz = root[:, None] + torch.randn(b, 21, 3, generator=g).double() * 0.03
    polar = math.radians(30) + torch.rand(b, generator=g).double() * math.radians(120)
    azim = torch.rand(b, generator=g).double() * 2 * math.pi
    direction = torch.stack([polar.sin() * azim.cos(), polar.sin() * azim.sin(), polar.cos()], dim=1)
    length = 0.025 + 0.01 * torch.rand(b, generator=g).double()
    xyz[:, ROOT] = root
    xyz[:, BONE[1]] = root + direction * length[:, None]
    return xyz.to(dtype)


def intrinsics(b: int, res: int = RES, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """FreiHAND's typical camera (f ~ 389 px at 224 px) scaled to ``res``."""
    f = 388.9 * res / 224
    K = torch.tensor([[f, 0.0, res / 2], [0.0, f, res / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    return K.expand(b, 3, 3).clone()


def tiny_posenet(feat_dim: int = 8) -> PoseNet:
    backbone = nn.Sequential(nn.Conv2d(3, feat_dim, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return PoseNet(backbone, feat_dim)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ground_truth_2p5d_reconstructs_metric_3d(dtype: torch.dtype) -> None:
    xyz, K = hands(64, 0, dtype), intrinsics(64, dtype=dtype)
    model = tiny_posenet().to(dtype).eval()
    t = targets(xyz, K)
    out = model.lift(t["uv_px"], t["zrel"], K)
    assert torch.allclose(out["z_root"], t["z_root"], atol=1e-4, rtol=0)
    err = (out["xyz_norm"] * t["scale"][:, None, None] - xyz).abs().max()
    assert err < 1e-5


def test_lift_keeps_full_precision_under_autocast() -> None:
    xyz, K = hands(16, 6), intrinsics(16)
    model = tiny_posenet().eval()
    t = targets(xyz, K)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.lift(t["uv_px"], t["zrel"], K)
    assert out["xyz_norm"].dtype == torch.float32
    assert (out["xyz_norm"] * t["scale"][:, None, None] - xyz).abs().max() < 1e-5


def test_closed_form_root_depth_makes_the_bone_unit_length() -> None:
    xyz, K = hands(32, 1, torch.float64), intrinsics(32, dtype=torch.float64)
    t = targets(xyz, K)
    ray = rays(t["uv_px"], K)
    z = root_depth(ray[..., :2], t["zrel"])
    assert torch.allclose(z, t["z_root"], atol=1e-9, rtol=0)
    pts = ray * (t["zrel"] + z[:, None])[..., None]
    assert torch.allclose((pts[:, BONE[0]] - pts[:, BONE[1]]).norm(dim=-1), torch.ones(32, dtype=torch.float64))


def test_targets_follow_definitions() -> None:
    xyz, K = hands(8, 2, torch.float64), intrinsics(8, dtype=torch.float64)
    t = targets(xyz, K)
    scale = (xyz[:, 9] - xyz[:, 10]).norm(dim=-1)
    assert torch.allclose(t["scale"], scale)
    assert torch.all(t["zrel"][:, ROOT] == 0)
    assert torch.allclose(t["zrel"] * scale[:, None], xyz[..., 2] - xyz[:, 9:10, 2])
    assert torch.allclose(t["uv_px"][..., 0], K[:, 0, 0, None] * xyz[..., 0] / xyz[..., 2] + K[:, 0, 2, None])


def test_reconstruction_is_independent_of_image_affine() -> None:
    """K' = A K (rotate, scale, shift the image): other pixels, same rays, same 3D."""
    xyz = hands(16, 3)
    K = intrinsics(16)
    angle = torch.linspace(-2.5, 2.5, 16)
    zoom = torch.linspace(0.5, 2.0, 16)
    A = torch.zeros(16, 3, 3)
    A[:, 0, 0], A[:, 0, 1], A[:, 0, 2] = zoom * angle.cos(), -zoom * angle.sin(), 7.0
    A[:, 1, 0], A[:, 1, 1], A[:, 1, 2] = zoom * angle.sin(), zoom * angle.cos(), -5.0
    A[:, 2, 2] = 1.0
    K2 = A @ K
    model = tiny_posenet().eval()
    t, t2 = targets(xyz, K), targets(xyz, K2)
    assert not torch.allclose(t["uv_px"], t2["uv_px"])
    out = model.lift(t2["uv_px"], t2["zrel"], K2)
    assert (out["xyz_norm"] * t2["scale"][:, None, None] - xyz).abs().max() < 1e-5


def test_untrained_refiner_is_exactly_zero_in_train_mode() -> None:
    refiner = RootRefiner(21).train()
    z0 = torch.rand(5) * 40 + 5
    out = refiner(torch.randn(5, 21), torch.randn(5, 21, 2), z0)
    assert torch.equal(out, z0)


def test_forward_shapes_root_zero_and_pixel_convention() -> None:
    model = tiny_posenet().eval()
    with torch.no_grad():
        model.head.weight.zero_()
    images = torch.rand(3, 3, 40, 60)
    out = model(images, intrinsics(3, 60))
    assert out["uv_px"].shape == (3, 21, 2) and out["zrel"].shape == (3, 21)
    assert out["z_root"].shape == (3,) and out["xyz_norm"].shape == (3, 21, 3)
    # u, v are fractions of width and height: the initial bias 0.5 is the image centre
    assert torch.allclose(out["uv_px"], torch.tensor([30.0, 20.0]).expand(3, 21, 2))
    model.head.bias.data.normal_()
    out = model(images, intrinsics(3, 60))
    assert torch.all(out["zrel"][:, ROOT] == 0)
    assert torch.allclose(out["xyz_norm"][..., 2], out["zrel"] + out["z_root"][:, None])


def test_gradients_reach_backbone_and_root_term_trains_only_refiner() -> None:
    model = PoseNet(create_backbone("resnet18"), 512).train()
    images, K = torch.rand(4, 3, 32, 32), intrinsics(4, 32)
    target = targets(hands(4, 4), K)
    loss, logs = pose_loss(model(images, K), target, res=32)
    loss.backward()
    assert set(logs) == {"loss", "uv", "zrel", "z_root"} and torch.isfinite(loss)
    assert model.backbone.net.conv1.weight.grad.abs().sum() > 0
    assert model.refiner.mlp[-1].weight.grad.abs().sum() > 0

    model.zero_grad(set_to_none=True)
    z_root = model(images, K)["z_root"]
    (z_root - target["z_root"]).abs().mean().backward()
    assert model.backbone.net.conv1.weight.grad is None
    assert model.head.weight.grad is None


def test_pose_loss_hand_computed() -> None:
    xyz, K = hands(6, 5), intrinsics(6)
    target = targets(xyz, K)
    loss, _ = pose_loss(target, target, res=RES)
    assert loss == 0
    pred = {
        "uv_px": target["uv_px"] + 0.1 * RES,
        "zrel": target["zrel"] + 0.2 * (torch.arange(21) != ROOT),
        "z_root": target["z_root"] - 1.0,
    }
    loss, logs = pose_loss(pred, target, res=RES, depth_weight=5.0)
    assert logs["uv"].item() == pytest.approx(0.1, abs=1e-6)
    assert logs["zrel"].item() == pytest.approx(0.2 * 20 / 21, abs=1e-6)
    assert logs["z_root"].item() == pytest.approx(1.0, abs=1e-5)
    assert loss.item() == pytest.approx(0.1 + 5 * 0.2 * 20 / 21 + 1.0, abs=1e-5)


def test_rejects_too_few_joints() -> None:
    with pytest.raises(ValueError):
        PoseNet(nn.Flatten(), 3, n_joints=10)


def test_soft_argmax_of_a_peaked_map_is_the_cell_centre():
    """A heatmap peaked on cell (row 2, col 5) of an 8 x 8 map gives u/W = 5.5/8, v/H = 2.5/8
    and the depth map's value there."""
    from benchmarks.pose_model import soft_argmax

    logits = torch.full((1, 1, 8, 8), -50.0)
    logits[0, 0, 2, 5] = 50.0
    depth = torch.zeros(1, 1, 8, 8)
    depth[0, 0, 2, 5] = 0.7
    out = soft_argmax(logits, depth)[0, 0]
    assert torch.allclose(out, torch.tensor([5.5 / 8, 2.5 / 8, 0.7]), atol=1e-6)
    flat = soft_argmax(torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8))[0, 0]
    assert torch.allclose(flat, torch.tensor([0.5, 0.5, 1.0]), atol=1e-6)


def test_heatmap_prior_loss_is_smallest_on_the_true_position():
    from benchmarks.pose_model import heatmap_prior_loss

    uv = torch.tensor([[[0.3, 0.6]]])
    at = torch.zeros(1, 1, 8, 8)
    at[0, 0, int(0.6 * 8), int(0.3 * 8)] = 4.0
    away = torch.zeros(1, 1, 8, 8)
    away[0, 0, 0, 7] = 4.0
    assert heatmap_prior_loss(at, uv) < heatmap_prior_loss(torch.zeros(1, 1, 8, 8), uv) < heatmap_prior_loss(away, uv)


def test_heatmap_posenet_predicts_in_the_image_and_trains_every_part():
    torch.manual_seed(0)
    model = PoseNet(create_backbone("resnet18"), 512, head="heatmap", root="prior").train()
    nn.init.normal_(model.head.out.weight, std=0.1)   # as after some training: non-flat maps
    xyz, K = hands(4, 3), intrinsics(4)
    out = model(torch.rand(4, 3, RES, RES), K)
    assert out["heatmap_logits"].shape == (4, 21, RES // 8, RES // 8)
    assert ((out["uv_px"] >= 0) & (out["uv_px"] <= RES)).all()
    loss, logs = pose_loss(out, targets(xyz, K), RES, 1.0, heatmap_weight=1.0)
    assert "heatmap" in logs
    loss.backward()
    assert model.head.out.weight.grad.abs().sum() > 0
    # the stride-8 level feeds the head (timm zero-initialises each block's last BN, so the
    # shortcut carries the first gradients)
    assert model.backbone.net.layer2[0].downsample[0].weight.grad.abs().sum() > 0


def test_prior_refiner_starts_at_the_training_median_root_depth():
    """Untrained, mode prior predicts the median of the depths it was given whatever the
    2.5D input; mode closed_form returns the closed form."""
    ref = RootRefiner(21, mode="prior").eval()
    ref.set_prior(torch.tensor([10.0, 12.0, 15.0, 40.0, 11.0]))
    zrel, xy = torch.randn(3, 21), torch.randn(3, 21, 2)
    assert torch.allclose(ref(zrel, xy, torch.tensor([4.0, 30.0, 50.0])), torch.full((3,), 12.0))
    closed = RootRefiner(21, mode="closed_form").eval()
    z0 = torch.tensor([4.0, 30.0, 50.0])
    assert torch.equal(closed(zrel, xy, z0), z0)
    with pytest.raises(ValueError):
        RootRefiner(21, mode="median")
