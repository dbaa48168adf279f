"""The shared augmenter: geometry agrees with the mapped keypoints, colour ops agree with
torchvision, parameters are per sample and reproducible from the generator."""
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from benchmarks.augment import Augmenter, color_jitter, gaussian_blur, warp
from benchmarks.config import AugmentConfig
from benchmarks.errors import UserError

GEOMETRY = AugmentConfig(rotate_deg=60.0, translate=0.15, scale_min=0.7, scale_max=1.4)


def dot_images(points: torch.Tensor, h: int, w: int, sigma: float = 1.5) -> torch.Tensor:
    """One white Gaussian dot per image at ``points`` (B, 2) pixels, on black."""
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    d2 = (xs[None, None, :] - points[:, 0, None, None]) ** 2 \
        + (ys[None, :, None] - points[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))[:, None].expand(-1, 3, -1, -1).float().contiguous()


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    m = images[:, 0].double()
    h, w = m.shape[-2:]
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    total = m.sum(dim=(1, 2))
    return torch.stack([(m.sum(1) * xs).sum(1) / total, (m.sum(2) * ys).sum(1) / total], 1)


@pytest.mark.parametrize("h,w", [(64, 64), (48, 80)])
def test_dot_lands_on_mapped_keypoint(h, w):
    torch.manual_seed(0)
    b = 16
    # keep the dot well inside so that it stays inside after the largest transform
    kp = torch.stack([w / 2 + (torch.rand(b) - 0.5) * w * 0.3,
                      h / 2 + (torch.rand(b) - 0.5) * h * 0.3], 1)
    views = Augmenter(GEOMETRY, photometric=False)(
        dot_images(kp, h, w), torch.Generator().manual_seed(1), keypoints=kp[:, None])
    found = centre_of_mass(views.images)
    err = (found - views.keypoints[:, 0].double()).norm(dim=1)
    assert err.max() < 0.25, err
    # the test is not vacuous: the dots really moved, by different amounts per sample
    moved = (views.keypoints[:, 0] - kp).norm(dim=1)
    assert moved.min() > 0.5 and moved.std() > 0.5


def test_geometry_convention():
    """Positive angle turns content clockwise on screen; scale > 1 enlarges; translate shifts."""
    params = {"angle": torch.tensor([math.pi / 2, 0.0, 0.0]),
              "translate": torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.25, -0.5]]),
              "scale": torch.tensor([1.0, 2.0, 1.0]),
              "size": torch.tensor([[64.0, 32.0]]).repeat(3, 1)}
    # a point right of the centre (32, 16): rotated to below it, zoomed away, shifted
    p = torch.tensor([[[42.0, 16.0]]]).repeat(3, 1, 1)
    out = Augmenter.map_points(p, params)
    expected = torch.tensor([[[32.0, 26.0]], [[52.0, 16.0]], [[58.0, 0.0]]])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_affine_at_another_size_is_the_same_transform():
    params = Augmenter(GEOMETRY).sample(4, (64, 64), torch.Generator().manual_seed(3), "cpu")
    p = torch.rand(4, 5, 2) * 64
    big = Augmenter.affine(params)
    small = Augmenter.affine(params, size=(16, 16))
    torch.testing.assert_close(Augmenter.affine(params, size=16), small)
    p_big = p @ big[:, :2, :2].transpose(1, 2) + big[:, None, :2, 2]
    p_small = (p / 4) @ small[:, :2, :2].transpose(1, 2) + small[:, None, :2, 2]
    torch.testing.assert_close(p_small * 4, p_big, atol=1e-4, rtol=0)


def test_identity_parameters_leave_images_unchanged():
    images = torch.rand(3, 3, 20, 24)
    views = Augmenter(GEOMETRY, geometric=False, photometric=False)(
        images, torch.Generator().manual_seed(0), keypoints=torch.rand(3, 2, 2))
    torch.testing.assert_close(views.images, images)
    assert torch.all(views.params["scale"] == 1) and torch.all(views.params["angle"] == 0)
    identity = torch.eye(3).expand(3, 3, 3)
    torch.testing.assert_close(warp(images, identity), images, atol=1e-5, rtol=0)


def test_same_generator_same_views_and_groups_are_independent():
    images = torch.rand(6, 3, 32, 32)
    aug = Augmenter(AugmentConfig(blur_p=1.0))
    a = aug(images, torch.Generator().manual_seed(7))
    b = aug(images, torch.Generator().manual_seed(7))
    c = aug(images, torch.Generator().manual_seed(8))
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert not torch.equal(a.images, c.images)
    # per sample: six different angles, zooms and colours
    for key in ("angle", "scale", "color", "blur"):
        assert a.params[key].unique(dim=0).shape[0] == 6, key
    # switching photometric off keeps the geometric draws
    g = Augmenter(AugmentConfig(blur_p=1.0), photometric=False)(
        images, torch.Generator().manual_seed(7))
    for key in ("angle", "translate", "scale"):
        assert torch.equal(g.params[key], a.params[key])
    assert torch.all(g.params["blur"] == 0)


def test_ranges_follow_the_config():
    cfg = AugmentConfig(rotate_deg=30, translate=0.1, scale_min=0.8, scale_max=1.25,
                        brightness=0.2, contrast=0.3, saturation=0.4, hue=0.05, blur_p=0.5,
                        blur_sigma_max=1.5)
    p = Augmenter(cfg).sample(4000, (128, 128), torch.Generator().manual_seed(0), "cpu")
    assert p["angle"].abs().max() <= math.radians(30) and p["angle"].abs().max() > math.radians(29)
    assert p["translate"].abs().max() <= 0.1
    assert p["scale"].min() >= 0.8 and p["scale"].max() <= 1.25
    assert abs(float(p["scale"].log().mean())) < 0.01          # log-uniform, symmetric here
    half_width = torch.tensor([0.2, 0.3, 0.4, 0.05])
    centre = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert torch.all((p["color"] - centre).abs() <= half_width)
    assert torch.all((p["color"] - centre).abs().amax(0) > 0.95 * half_width)
    blurred = p["blur"] > 0
    assert 0.45 < float(blurred.float().mean()) < 0.55
    assert p["blur"][blurred].min() >= 0.1 * 2 and p["blur"].max() <= 1.5 * 2  # res 128 = 2 x 64


def test_color_jitter_matches_torchvision_per_image():
    torch.manual_seed(0)
    images = torch.rand(5, 3, 9, 11)
    color = torch.tensor([[1.3, 0.7, 1.4, 0.2], [0.6, 1.2, 0.5, -0.3], [1.0, 1.0, 1.0, 0.0],
                          [0.9, 1.5, 0.0, 0.45], [1.1, 0.8, 1.2, -0.05]])
    out = color_jitter(images, color)
    for i, (b, c, s, h) in enumerate(color.tolist()):
        ref = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(
            TF.adjust_brightness(images[i], b), c), s), h)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_hue_turns_red_towards_green():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1
    green = color_jitter(red, torch.tensor([[1.0, 1.0, 1.0, 1 / 3]]))
    torch.testing.assert_close(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5, rtol=0)


def test_blur_matches_torchvision_per_image_and_zero_sigma_is_identity():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 16, 16)
    sigma = torch.tensor([1.0, 0.0, 0.5])
    out = gaussian_blur(images, sigma)
    torch.testing.assert_close(out[1], images[1])
    # the batch kernel is 7 wide (radius ceil(3 * 1.0)); torchvision with the same size
    for i in (0, 2):
        ref = TF.gaussian_blur(images[i], kernel_size=[7, 7], sigma=[float(sigma[i])] * 2)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_nan_keypoints_stay_nan():
    kp = torch.tensor([[[float("nan"), float("nan")], [3.0, 4.0]]])
    views = Augmenter(GEOMETRY)(torch.rand(1, 3, 16, 16), torch.Generator().manual_seed(0), kp)
    assert torch.isnan(views.keypoints[0, 0]).all() and torch.isfinite(views.keypoints[0, 1]).all()


@pytest.mark.parametrize("key,value", [("scale_min", 0.0), ("blur_p", 1.5), ("translate", -0.1),
                                       ("hue", 0.7)])
def test_bad_config_is_a_user_error(key, value):
    cfg = AugmentConfig(**{key: value})
    with pytest.raises(UserError, match=f"pretrain.augment.{key}"):
        Augmenter(cfg)
