"""Frozen-feature probes: perfect features are read out perfectly, random ones at chance."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eval.probes import angle_deg, run_probes, triplet_features, view_direction

N_CLASSES = 4


def triplets(n: int, generator: torch.Generator, step_deg: float = 10.0) -> dict:
    """Labels of ``n`` triplets; each image carries its own labels in its first pixels."""
    gesture = torch.randint(N_CLASSES, (n,), generator=generator)
    centre = torch.stack([torch.rand(n, generator=generator) * 360 - 180,
                          torch.rand(n, generator=generator) * 120 - 60], -1)
    step = (torch.rand(n, 2, generator=generator) * 2 - 1) * step_deg
    viewpoint = torch.stack([centre - step, centre, centre + step], 1)     # (n, 3, 2)
    image = torch.zeros(n, 3, 3, 8, 8)
    image[:, :, 0, 0, 0] = gesture[:, None].float()
    image[:, :, 0, 0, 1:3] = viewpoint
    return {"triplet": image, "gesture": gesture, "viewpoint": viewpoint}


class LabelReader(nn.Module):
    """A backbone whose features are the labels: one-hot gesture and the unit view direction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gesture = F.one_hot(x[:, 0, 0, 0].long(), N_CLASSES).float()
        return torch.cat([gesture, view_direction(x[:, 0, 0, 1:3])], 1)


class RandomFeatures(nn.Module):
    """A fixed random projection of the pixels."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 8 * 8, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(1))


def test_view_direction_and_angle():
    vp = torch.tensor([[0.0, 0.0], [90.0, 0.0], [33.0, 90.0], [180.0, -30.0]])
    want = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0],
                         [-math.cos(math.radians(30)), 0, -0.5]])
    assert torch.allclose(view_direction(vp), want, atol=1e-6)
    assert angle_deg(want[0], want[1]).item() == pytest.approx(90.0)
    assert angle_deg(want[0], 5 * want[0]).item() == pytest.approx(0.0, abs=1e-4)
    assert angle_deg(want[0], -want[0]).item() == pytest.approx(180.0)


def test_features_are_frozen_and_mode_restored():
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5), nn.BatchNorm1d(5)).train()
    before = backbone[2].running_mean.clone()
    data = torch.randint(0, 256, (4, 3, 3, 8, 8), dtype=torch.uint8)
    feats = triplet_features(backbone, data, batch_size=5)
    assert feats.shape == (4, 3, 5) and not feats.requires_grad
    assert backbone.training and torch.equal(backbone[2].running_mean, before)
    # uint8 input is read as [0, 255]; batching does not change the features
    direct = backbone.eval()(data.flatten(0, 1).float() / 255).view(4, 3, 5)
    assert torch.allclose(feats, direct, atol=1e-6)


def test_perfect_features_give_perfect_probes():
    g = torch.Generator().manual_seed(0)
    test = triplets(24, g)
    extra = triplets(48, g)
    # every test view appears 10 times in training (the kNN's k), among other views
    train = {key: torch.cat([test[key].repeat(10, *[1] * (test[key].dim() - 1)), extra[key]])
             for key in test}
    out = run_probes(LabelReader(), train, test, seed=0, epochs=100)
    assert set(out) == {"gesture_acc", "viewpoint_err_deg", "rel_viewpoint_err_deg"}
    assert all(type(v) is float for v in out.values())
    assert out["gesture_acc"] == 1.0
    assert out["viewpoint_err_deg"] < 0.01
    assert out["rel_viewpoint_err_deg"] < 1.0          # the steps are up to 14 degrees


def test_random_features_are_at_chance_and_deterministic():
    g = torch.Generator().manual_seed(1)
    train, test = triplets(160, g), triplets(64, g)
    for split in (train, test):       # images unrelated to the labels
        split["triplet"] = torch.rand(split["triplet"].shape, generator=g)
    torch.manual_seed(0)
    backbone = RandomFeatures()
    out = run_probes(backbone, train, test, seed=3, epochs=50)
    assert abs(out["gesture_acc"] - 1 / N_CLASSES) < 0.1
    assert out["viewpoint_err_deg"] > 60        # random directions are 90 degrees apart on average
    # not better than predicting no step at all (error = the angle between the two views)
    u = view_direction(test["viewpoint"])
    no_step = torch.stack([angle_deg(u[:, a], u[:, b]) for a, b in ((0, 1), (1, 2), (0, 2))])
    assert out["rel_viewpoint_err_deg"] > 0.8 * float(no_step.mean())
    assert run_probes(backbone, train, test, seed=3, epochs=50) == out
