"""The warm-start control: its targets are the augmenter's colour draws, independent of the
frame, scaled to U(-1, 1), so that a constant 0 scores its stated chance; it refuses a
pre-training with nothing to regress."""
from __future__ import annotations

import pytest
import torch

from benchmarks.augment import Augmenter
from benchmarks.config import AugmentConfig
from benchmarks.errors import UserError
from methods.control import Control, ControlConfig, colour_targets
from orchestration import compose


class Flat(torch.nn.Module):
    """A stand-in backbone: the mean of each channel, so the test needs no timm."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def control(augment: AugmentConfig = AugmentConfig()) -> Control:
    torch.manual_seed(0)
    return Control(ControlConfig(head_hidden=0), Flat(), 3, Augmenter(augment))


def test_the_targets_depend_on_the_draw_never_on_the_frame():
    """Two unrelated batches under one generator state get the same targets: whatever the
    hands in the frames, the objective asks the same of them."""
    method, seen = control(), []
    original = method.augmenter.__call__

    def spy(images, generator, keypoints=None):
        view = original(images, generator, keypoints)
        seen.append(colour_targets(view.params["color"], method.ranges))
        return view

    method.augmenter = type("Spy", (), {"__call__": staticmethod(spy), "cfg": method.augmenter.cfg})()
    for images in (torch.rand(16, 3, 32, 32), torch.zeros(16, 3, 32, 32)):
        method.loss({"image": images}, torch.Generator().manual_seed(3))
    assert torch.equal(seen[0], seen[1])


def test_targets_are_uniform_on_minus_one_one_and_zero_scores_the_chance():
    cfg = AugmentConfig()
    color = Augmenter(cfg).sample(20000, (8, 8), torch.Generator().manual_seed(0), "cpu")["color"]
    target = colour_targets(color, (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue))
    assert target.shape == (20000, 4) and target.abs().max() <= 1.0
    assert target.mean(0).abs().max() < 0.02
    assert target.abs().mean().item() == pytest.approx(Control.chance(ControlConfig(), 64), abs=0.01)


def test_a_parameter_without_range_is_no_target_and_the_loss_is_l1_on_the_rest():
    method = control(AugmentConfig(hue=0.0))
    assert method.head.out_features == 3
    with torch.no_grad():
        method.head.weight.zero_()
        method.head.bias.zero_()
    g = torch.Generator().manual_seed(1)
    loss, logs = method.loss({"image": torch.rand(64, 3, 16, 16)}, g)
    color = Augmenter(AugmentConfig(hue=0.0)).sample(64, (16, 16), torch.Generator().manual_seed(1), "cpu")["color"]
    expected = colour_targets(color, (0.4, 0.4, 0.4, 0.0)).abs().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6) and logs["loss"] == pytest.approx(loss.item())


def test_nothing_to_regress_is_refused_when_the_config_is_composed():
    off = [f"pretrain.augment.{k}=0" for k in ("brightness", "contrast", "saturation", "hue")]
    with pytest.raises(UserError, match="colour jitter .* all 0"):
        compose.load(["method=control", "profile=smoke", *off], need_data=False)
    compose.load(["method=control", "profile=smoke", *off[:3]], need_data=False)    # hue alone will do
