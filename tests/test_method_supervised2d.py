"""2D keypoint pre-training: zero loss on the mapped target, falling loss on a fixed batch."""
from __future__ import annotations

import math

import pytest
import torch

from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from methods.supervised2d import Supervised2D, Supervised2DConfig, keypoint_l1, normalise_uv


def test_normalised_coordinates():
    uv = torch.tensor([[[0.0, 0.0], [32.0, 16.0], [64.0, 32.0]]])
    want = torch.tensor([[[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]])
    assert torch.equal(normalise_uv(uv, (64, 32)), want)


def test_l1_is_zero_on_the_target_and_skips_unlabelled_joints():
    target = torch.tensor([[[0.1, -0.2], [math.nan, math.nan], [0.5, 0.5]]])
    assert keypoint_l1(target.nan_to_num(7.0), target).item() == 0.0
    pred = target.nan_to_num(100.0) + torch.tensor([0.3, -0.1])
    assert keypoint_l1(pred, target).item() == pytest.approx(0.2)        # (0.3 + 0.1) / 2
    assert keypoint_l1(pred, torch.full_like(target, math.nan)).item() == 0.0


def make_method() -> Supervised2D:
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    return Supervised2D(Supervised2DConfig(head_hidden=64), backbone, backbone.feat_dim,
                        Augmenter(AugmentConfig())).train()


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    uv = 32 * torch.rand(6, 21, 2, generator=g)
    uv[1, 3] = math.nan
    return {"image": torch.rand(6, 3, 32, 32, generator=g), "uv": uv}


def test_prediction_equal_to_the_augmented_target_costs_nothing():
    method, data = make_method(), batch()
    view = method.augmenter(data["image"], torch.Generator().manual_seed(5), keypoints=data["uv"])
    assert not torch.equal(view.keypoints.nan_to_num(), data["uv"].nan_to_num())

    def oracle(images: torch.Tensor) -> torch.Tensor:
        assert torch.equal(images, view.images)
        return normalise_uv(view.keypoints, (32, 32)).nan_to_num(0.0)

    method.predict = oracle
    loss, _ = method.loss(data, torch.Generator().manual_seed(5))
    assert loss.item() == 0.0


def test_loss_falls_on_a_fixed_batch():
    method, data = make_method(), batch()
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss, logs = method.loss(data, torch.Generator().manual_seed(5))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(logs["loss"])
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.75 * losses[0]
    assert Supervised2D.passes_per_sample == 1
    assert Supervised2D.inputs == ("images", "keypoints2d")
