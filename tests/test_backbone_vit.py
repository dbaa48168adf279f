"""timm ViTs beside the ResNets: at the profiles' input sizes they give pooled features and a
patch grid, the 2.5D pose model trains on them with either head, and their FLOPs count the
attention too."""
from __future__ import annotations

import pytest
import torch

from benchmarks.backbone import create_backbone
from benchmarks.flops import image_flops
from benchmarks.pose_model import PoseNet, pose_loss, targets
from orchestration import compose

VIT = "vit_tiny_patch16_224"


def profile_res(profile: str) -> int:
    return int(compose.load([f"profile={profile}", f"backbone={VIT}"], need_data=False).data.res)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_vit_at_the_profile_size_gives_pooled_features_and_the_patch_grid(profile):
    res = profile_res(profile)
    torch.manual_seed(0)
    backbone = create_backbone(VIT).eval()
    x = torch.rand(2, 3, res, res)
    with torch.no_grad():
        pooled = backbone(x)
        grid = backbone.forward_features(x)
        pyramid = backbone.pyramid(x)
        tokens = backbone.net.forward_features(backbone.normalise(x))     # (B, 1 + h*w, C)
    g = res // 16
    assert pooled.shape == (2, backbone.feat_dim) == (2, 192)
    assert grid.shape == (2, 192, g, g)
    # the grid is the patch tokens, class token dropped, row by row
    for i, j in [(0, 0), (0, g - 1), (g - 1, 0)]:
        assert torch.equal(grid[:, :, i, j], tokens[:, 1 + i * g + j])
    assert torch.allclose(pooled, tokens[:, 0])                # the class token is what pools
    # three levels at the patch stride; the last one is the final (normed) features
    assert [tuple(p.shape) for p in pyramid] == [(2, 192, g, g)] * 3
    assert backbone.pyramid_channels == [192] * 3 and backbone.pyramid_stride == 16
    assert torch.allclose(pyramid[-1], grid, atol=1e-5)
    assert not torch.allclose(pyramid[0], grid, atol=1e-2)


def test_a_non_square_input_keeps_rows_and_columns():
    backbone = create_backbone(VIT).eval()
    with torch.no_grad():
        assert backbone.forward_features(torch.rand(1, 3, 32, 64)).shape == (1, 192, 2, 4)


@pytest.mark.parametrize("head", ["heatmap", "regression"])
@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_pose_model_trains_on_a_vit(head, profile):
    res = profile_res(profile)
    torch.manual_seed(0)
    backbone = create_backbone(VIT)
    model = PoseNet(backbone, backbone.feat_dim, head=head, root="prior")
    n = 4
    f = res * 1.2
    K = torch.tensor([[f, 0, res / 2], [0, f, res / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    xyz = torch.randn(n, 21, 3) * 0.03 + torch.tensor([0.0, 0.0, 0.5])
    out = model(torch.rand(n, 3, res, res), K)
    assert out["uv_px"].shape == (n, 21, 2) and torch.isfinite(out["xyz_norm"]).all()
    if head == "heatmap":     # the patch grid upsampled to stride 8, as on a ResNet
        assert out["heatmap_logits"].shape == (n, 21, res // 8, res // 8)
    loss, _ = pose_loss(out, targets(xyz, K), res, heatmap_weight=0.3 if head == "heatmap" else 0)
    loss.backward()
    first = backbone.net.blocks[0].attn.qkv.weight.grad
    assert first is not None and first.abs().sum() > 0     # the loss reaches the first block
    head_grad = [p.grad for p in model.head.parameters()]
    assert all(g is not None for g in head_grad) and sum(g.abs().sum() for g in head_grad) > 0


def vit_step_flops(res: int, dim: int = 192, depth: int = 12, patch: int = 16) -> float:
    """Forward + backward FLOPs of one image, by hand: per block the four linear layers
    (12 dim^2 multiply-adds a token; backward twice the forward) and attention (QK^T and AV,
    2 N^2 dim multiply-adds; torch's backward formula: five products); the patch embedding
    (its backward: the weight gradient only)."""
    n = (res // patch) ** 2 + 1
    linear = 3 * 2 * n * 12 * dim**2
    attention = 2 * (2 + 5) * n**2 * dim
    embed = 2 * 2 * (n - 1) * 3 * patch**2 * dim
    return depth * (linear + attention) + embed


@pytest.mark.parametrize("res", [64, 224])
def test_vit_flops_count_attention(res):
    measured = image_flops(create_backbone(VIT), res)
    assert measured == pytest.approx(vit_step_flops(res), rel=1e-3)
