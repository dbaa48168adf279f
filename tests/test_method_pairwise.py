"""pairwise: the targets are the true relation between the views, a perfect prediction costs
exactly sum_k s_k, and the heads learn on a fixed batch."""
import math

import pytest
import torch

import methods
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from benchmarks.errors import UserError
from methods.pairwise import HEADS, relation_loss, relative_targets

Pairwise = methods.get("pairwise")
AUG = AugmentConfig(rotate_deg=90, translate=0.2, scale_min=0.6, scale_max=1.5)


def draw(b, seed, size=(48, 64)):
    return Augmenter(AUG).sample(b, size, torch.Generator().manual_seed(seed), "cpu")


def build(backbone=None, **cfg):
    """The method on resnet18, or only its heads (on an identity "backbone" of 16 features)."""
    torch.manual_seed(0)
    backbone = backbone if backbone is not None else create_backbone("resnet18")
    feat_dim = getattr(backbone, "feat_dim", 16)
    return Pairwise(Pairwise.Config(**cfg), backbone, feat_dim, Augmenter(AUG))


def test_targets_are_the_transform_from_view2_to_view1():
    p1, p2 = draw(8, 1), draw(8, 2)
    kp = torch.rand(8, 5, 2) * torch.tensor([64.0, 48.0])
    kp1, kp2 = Augmenter.map_points(kp, p1), Augmenter.map_points(kp, p2)
    t = relative_targets(p1, p2)
    rel = {"angle": torch.atan2(t["rotation"][:, 0], t["rotation"][:, 1]),
           "scale": torch.exp(t["scale"][:, 0]), "translate": t["translation"], "size": p1["size"]}
    torch.testing.assert_close(Augmenter.map_points(kp2, rel), kp1, atol=1e-3, rtol=0)
    torch.testing.assert_close(t["color"], p1["color"] - p2["color"])


def test_rotation_target_is_continuous_across_zero():
    base = draw(2, 3)
    p1 = dict(base, angle=torch.tensor([0.01, -0.01]))
    p2 = dict(base, angle=torch.tensor([-0.01, 0.01]))
    rot = relative_targets(p1, p2)["rotation"]
    assert (rot[0] - rot[1]).abs().max() < 0.05           # +0.02 rad vs -0.02 rad
    torch.testing.assert_close(rot[:, 1], torch.full((2,), math.cos(0.02)))


def test_perfect_prediction_costs_exactly_the_log_variances():
    target = relative_targets(draw(6, 4), draw(6, 5))
    log_vars = torch.tensor([0.3, -0.2, 0.5, 1.25])
    loss, per_head = relation_loss({k: target[k].clone() for k in HEADS}, target, log_vars)
    assert all(float(v) == 0.0 for v in per_head.values())
    assert float(loss) == float(sum(log_vars))
    # and the weighting: L1 of 0.5 on one head with s = log 2 costs 0.25 + log 2
    pred = dict(target, scale=target["scale"] + 0.5)
    one, _ = relation_loss({"scale": pred["scale"]}, target, torch.tensor([math.log(2)]))
    assert float(one) == pytest.approx(0.25 + math.log(2), abs=1e-6)


def test_heads_learn_the_relation_on_a_fixed_batch():
    method = build(torch.nn.Identity(), hidden_dim=64)
    torch.manual_seed(1)
    pair = torch.randn(16, 2 * method.feat_dim)
    target = relative_targets(draw(16, 6), draw(16, 7))
    opt = torch.optim.Adam(list(method.heads.parameters()) + [method.log_vars], lr=1e-2)
    losses = []
    for _ in range(60):
        loss, per_head = relation_loss({k: h(pair) for k, h in method.heads.items()}, target,
                                method.log_vars)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 1.0
    assert all(float(v.detach()) < 0.1 for v in per_head.values())
    assert all(s < 0 for s in method.log_vars.tolist())  # confident once the L1s are small


def test_method_loss_two_views_one_pass():
    method = build(heads=["rotation", "scale"])
    assert list(method.heads) == ["rotation", "scale"] and method.log_vars.shape == (2,)
    seen = []
    method.backbone.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    batch = {"image": torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(8))}
    loss, logs = method.loss(batch, torch.Generator().manual_seed(9))
    assert seen == [8] and torch.isfinite(loss)
    assert set(logs) == {"l1_rotation", "l1_scale", "s_rotation", "s_scale"}
    loss.backward()
    assert method.backbone.net.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("heads", [["rotation", "depth"], [], ["scale", "scale"]])
def test_bad_heads_are_user_errors(heads):
    with pytest.raises(UserError, match="method.heads"):
        build(torch.nn.Identity(), heads=heads)
