"""JointCon: joint-local features, supervised contrast by joint identity, masked joints."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from benchmarks.errors import UserError
from methods.jointcon import (JointCon, JointConConfig, sample_at_points, supcon_loss,
                              visible_joints)


def test_sampling_reads_the_cell_under_a_pixel_and_interpolates_between():
    fmap = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    # a stride-8 map of a 32 px image: cell (i, j) is centred on pixel (8 j + 4, 8 i + 4)
    uv = torch.tensor([[[4.0, 4.0], [28.0, 12.0], [16.0, 4.0]]]).repeat(2, 1, 1)
    got = sample_at_points(fmap, uv, (32, 32))
    assert got.shape == (2, 3, 5)
    assert torch.allclose(got[:, 0], fmap[:, :, 0, 0])
    assert torch.allclose(got[:, 1], fmap[:, :, 1, 3])
    assert torch.allclose(got[:, 2], (fmap[:, :, 0, 1] + fmap[:, :, 0, 2]) / 2, atol=1e-6)


def test_visible_joints_drops_unlabelled_and_outside():
    uv = torch.tensor([[[0.0, 0.0], [31.9, 31.9], [32.0, 5.0], [5.0, -0.1], [math.nan, 3.0]]])
    assert visible_joints(uv, (32, 32)).tolist() == [[True, True, False, False, False]]


def reference_supcon(z: torch.Tensor, labels: torch.Tensor, t: float) -> float:
    """Khosla et al.'s L_out written out with loops."""
    total, anchors = 0.0, 0
    kept = [i for i in range(len(z)) if labels[i] >= 0]
    for a in kept:
        others = [n for n in kept if n != a]
        positives = [p for p in others if labels[p] == labels[a]]
        if not positives:
            continue
        denom = sum(math.exp(float(z[a] @ z[n]) / t) for n in others)
        total += -sum(math.log(math.exp(float(z[a] @ z[p]) / t) / denom)
                      for p in positives) / len(positives)
        anchors += 1
    return total / anchors


def test_supcon_matches_the_formula_and_ignores_masked_rows():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(7, 5, generator=g), dim=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3])          # label 3 has no positive
    want = reference_supcon(z, labels, 0.2)
    assert supcon_loss(z, labels, 0.2).item() == pytest.approx(want, rel=1e-5)
    # masked rows (-1) change nothing, whatever their embeddings
    junk = F.normalize(torch.randn(3, 5, generator=g), dim=1)
    masked = supcon_loss(torch.cat([z, junk]), torch.cat([labels, torch.full((3,), -1)]), 0.2)
    assert masked.item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("cross_image", [False, True])
def test_aligned_joint_features_beat_shuffled_identities(cross_image: bool):
    n_images, n_joints = 3, 5
    image = torch.arange(n_images).repeat_interleave(n_joints).repeat(2)      # 2 views
    joint = torch.arange(n_joints).repeat(2 * n_images)
    labels = joint if cross_image else image * n_joints + joint
    z = F.one_hot(labels).float()          # same joint identity: identical; else orthogonal
    aligned = supcon_loss(z, labels, 0.1).item()
    g = torch.Generator().manual_seed(0)
    shuffled = [supcon_loss(z, labels[torch.randperm(len(labels), generator=g)], 0.1).item()
                for _ in range(5)]
    assert aligned < min(shuffled)


def make_method(**overrides) -> JointCon:
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    cfg = JointConConfig(proj_hidden=32, proj_dim=16, **overrides)
    return JointCon(cfg, backbone, backbone.feat_dim, Augmenter(AugmentConfig())).train()


def test_hypercolumn_trains_every_stage_and_masks_missing_joints():
    method = make_method()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 32, 32, generator=g)
    uv = 4 + 24 * torch.rand(2, 21, 2, generator=g)
    uv[0, :10] = math.nan
    loss, logs = method.loss({"image": images, "uv": uv}, torch.Generator().manual_seed(2))
    assert torch.isfinite(loss) and loss.item() > 0 and 0 < logs["visible_joints"] < 1
    loss.backward()
    for stage in ("layer2", "layer3", "layer4"):
        grad = getattr(method.backbone.net, stage)[-1].bn2.weight.grad
        assert grad is not None and grad.abs().sum() > 0, stage
    # one labelled joint or none: nothing to contrast, zero loss that still backpropagates
    for labelled in (0, 1):
        sparse = torch.full_like(uv, math.nan)
        sparse[0, :labelled] = 16.0
        none, logs = method.loss({"image": images, "uv": sparse},
                                 torch.Generator().manual_seed(2))
        assert none.item() == 0.0
        none.backward()


def test_feature_strides_are_checked():
    assert make_method(feature_strides=[8]).head.layers[0].in_features == 128
    with pytest.raises(UserError, match="feature_strides"):
        make_method(feature_strides=[8, 64])


def _rank_losses(rank: int, world: int, port: int, z: torch.Tensor, labels: torch.Tensor,
                 out: dict) -> None:
    import torch.distributed as torch_dist
    torch_dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                  rank=rank, world_size=world)
    n = len(z) // world
    out[rank] = supcon_loss(z[rank * n:(rank + 1) * n], labels[rank * n:(rank + 1) * n],
                            0.2).item()
    torch_dist.destroy_process_group()


def test_distributed_contrast_set_spans_all_ranks():
    """Two gloo ranks, each with half the rows: each anchor meets every rank's rows."""
    import socket

    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(8, 4, generator=g), dim=1)
    labels = torch.tensor([0, 1, 2, 3, 1, 0, 3, 2])      # every positive lives on the other rank
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.start_processes(_rank_losses, args=(2, port, z, labels, out), nprocs=2,
                       start_method="fork")
    # every rank has 4 anchors with one positive each: the mean of the rank means is the loss
    assert (out[0] + out[1]) / 2 == pytest.approx(supcon_loss(z, labels, 0.2).item(),
                                                        rel=1e-5)
