"""simclr: lightly's NT-Xent equals the textbook formula; the method makes two views per image."""
import itertools

import pytest
import torch
import torch.nn.functional as F

import methods
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from benchmarks.errors import UserError

SimCLR = methods.get("simclr")


def ntxent_by_hand(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """-mean_i log(exp(s(i, pos(i))/tau) / sum_{j != i} exp(s(i, j)/tau)) over all 2N rows."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = z.shape[0]
    total = 0.0
    for i in range(n2):
        pos = (i + n2 // 2) % n2
        den = sum(torch.exp(z[i] @ z[j] / tau) for j in range(n2) if j != i)
        total = total - torch.log(torch.exp(z[i] @ z[pos] / tau) / den)
    return total / n2


def build(backbone=None, **cfg):
    """The method on resnet18, or only its head and loss (identity "backbone", 512 features)."""
    torch.manual_seed(0)
    backbone = backbone if backbone is not None else create_backbone("resnet18")
    return SimCLR(SimCLR.Config(**cfg), backbone, 512, Augmenter(AugmentConfig()))


def test_criterion_is_ntxent_at_temperature_half():
    method = build(torch.nn.Identity())
    assert method.criterion.temperature == 0.5
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(3, 5, generator=g, dtype=torch.float64), \
        torch.randn(3, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(method.criterion(z1, z2), ntxent_by_hand(z1, z2, 0.5),
                               atol=1e-12, rtol=0)


def test_identical_positives_beat_every_shuffle():
    criterion = build(torch.nn.Identity()).criterion
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    aligned = criterion(z, z)
    for perm in itertools.permutations(range(4)):
        if perm != (0, 1, 2, 3):
            assert aligned < criterion(z, z[list(perm)])


def test_head_is_peclrs():
    head = build(torch.nn.Identity()).head.layers
    assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (512, 512, 128)
    assert head[0].bias is not None and head[3].bias is None
    small = build(torch.nn.Identity(), hidden_dim=64, out_dim=32).head.layers
    assert (small[0].out_features, small[3].out_features) == (64, 32)


def test_two_views_one_pass_deterministic_and_differentiable():
    method = build()
    seen = []
    method.backbone.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    batch = {"image": torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))}
    loss, logs = method.loss(batch, torch.Generator().manual_seed(3))
    assert seen == [4 * SimCLR.passes_per_sample]
    assert torch.isfinite(loss) and logs["ntxent"] == pytest.approx(float(loss.detach()))
    loss.backward()
    assert method.backbone.net.conv1.weight.grad.abs().sum() > 0
    again, _ = build().loss(batch, torch.Generator().manual_seed(3))
    assert torch.equal(loss.detach(), again.detach())


def test_bad_hyperparameters_are_user_errors():
    with pytest.raises(UserError, match="method.temperature"):
        build(torch.nn.Identity(), temperature=0.0)
