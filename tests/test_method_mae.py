"""MAE's defining properties: the encoder never sees the removed patches and the loss is
computed on them only, with per-patch normalised targets; the masks come from the step's
generator; and a ResNet, which has no patches, is refused when the config is composed."""
from __future__ import annotations

import pytest
import torch

import methods
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from benchmarks.errors import UserError
from methods.mae import masked_patch_loss
from orchestration import compose
from orchestration.cli import main

RES, B, P = 64, 3, 16          # a 4 x 4 patch grid: 4 patches seen, 12 removed
GRID = RES // P
SEED = 11


def build():
    cls = methods.get("mae")
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_patch16_224")
    return cls(cls.Config(), backbone, backbone.feat_dim, Augmenter(AugmentConfig()))


def with_patch(images: torch.Tensor, sample: int, patch: int, value: torch.Tensor) -> torch.Tensor:
    """``images`` with patch ``patch`` (row-major on the grid) of image ``sample`` replaced."""
    out = images.clone()
    i, j = divmod(patch, GRID)
    out[sample, :, i * P:(i + 1) * P, j * P:(j + 1) * P] = value
    return out


def loss_of(method, images, target):
    with torch.no_grad():
        return float(method.reconstruct(images, target, torch.Generator().manual_seed(SEED))[0])


def test_loss_reads_removed_patches_only_and_the_encoder_sees_kept_ones_only():
    method = build()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(B, 3, RES, RES, generator=g)
    keep, removed = method.draw_mask(B, GRID * GRID, torch.Generator().manual_seed(SEED), "cpu")
    assert keep.shape == (B, 1 + 4) and removed.shape == (B, 12)
    assert (keep[:, 0] == 0).all()                                       # the class token stays
    seen = int(keep[0, 1]) - 1                                           # patch indices
    hidden = int(removed[0, 0]) - 1
    noise = torch.rand(3, P, P, generator=g)
    base = loss_of(method, images, images)

    # the target's seen patches do not count, its removed ones do
    assert loss_of(method, images, with_patch(images, 0, seen, noise)) == pytest.approx(base, abs=1e-6)
    assert abs(loss_of(method, images, with_patch(images, 0, hidden, noise)) - base) > 1e-4
    # the input's removed patches are never seen, its kept ones are
    assert loss_of(method, with_patch(images, 0, hidden, noise), images) == pytest.approx(base, abs=1e-6)
    assert abs(loss_of(method, with_patch(images, 0, seen, noise), images) - base) > 1e-4


def test_normalised_pixel_loss_against_a_hand_computation():
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(2, 5, 12, generator=g)
    target = torch.rand(2, 5, 12, generator=g) * 3 + 1
    t = target.numpy().astype("float64")
    mean = t.mean(-1, keepdims=True)
    var = t.var(-1, ddof=1, keepdims=True)
    want = (((pred.numpy() - (t - mean) / (var + 1e-6) ** 0.5) ** 2).mean())
    assert float(masked_patch_loss(pred, target)) == pytest.approx(want, rel=1e-5)
    assert float(masked_patch_loss(pred, target, norm_pix=False)) == pytest.approx(
        float(((pred - target) ** 2).mean()), rel=1e-6)
    # predicting each patch's mean scores (P - 1) / P: the chance level the method states
    cls = methods.get("mae")
    values = torch.rand(4, 9, 3 * 16 * 16, generator=g)
    assert float(masked_patch_loss(torch.zeros_like(values), values)) == pytest.approx(
        cls.chance(cls.Config(), 8), abs=1e-4)


def test_masks_come_from_the_generator_and_differ_per_image():
    method = build()
    draw = lambda seed: method.draw_mask(8, 16, torch.Generator().manual_seed(seed), "cpu")  # noqa: E731
    keep, removed = draw(3)
    assert all(torch.equal(a, b) for a, b in zip(draw(3), (keep, removed)))
    assert not torch.equal(draw(4)[1], removed)
    for k, r in zip(keep, removed):          # a partition of the class token and 16 patches
        assert sorted(k.tolist() + r.tolist()) == list(range(17))
    assert len({tuple(sorted(r.tolist())) for r in removed}) > 1
    # the training loss repeats with the same generator state
    batch = {"image": torch.rand(2, 3, RES, RES)}
    with torch.no_grad():
        a = method.loss(batch, torch.Generator().manual_seed(5))[0]
        b = method.loss(batch, torch.Generator().manual_seed(5))[0]
        c = method.loss(batch, torch.Generator().manual_seed(6))[0]
    assert a == b and a != c


def test_mae_on_a_resnet_is_refused_in_one_line(tmp_path, data_cache, capsys):
    with pytest.raises(UserError, match="cannot pre-train a resnet backbone"):
        compose.resolve(["method=mae", "backbone=resnet18"], need_data=False)
    for dry in ([], ["--dry-run"]):
        rc = main(["run", "--method", "mae", "--profile", "smoke", "backbone=resnet18",
                   "--results", str(tmp_path / "r"), *dry])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "method 'mae' cannot pre-train a resnet" in err
    assert not (tmp_path / "r").exists()


def test_a_mask_that_leaves_no_patch_seen_is_refused():
    # 32 px: 2 x 2 patches; 0.8 keeps int(4 x 0.2) = 0 of them
    with pytest.raises(UserError, match="keeps 0 of the 4 patches at pretrain.res=32"):
        compose.resolve(["method=mae", "profile=smoke", "backbone=vit_tiny_patch16_224",
                         "method.mask_ratio=0.8"], need_data=False)
    run = compose.resolve(["method=mae", "profile=smoke", "backbone=vit_tiny_patch16_224"],
                          need_data=False)
    assert run.cfg.method.mask_ratio == 0.75 and "vit_tiny_patch16_224" in run.run_id
