"""The shared hand-crop rule: where the box goes, and that keypoints follow the content."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from benchmarks.data.crops import Box, apply_affine, crop, hand_box, hand_crop
from benchmarks.errors import UserError
from data_trees import dot_frame, find_dot


@pytest.mark.parametrize("seed", range(6))
def test_a_dot_at_a_keypoint_is_found_at_the_mapped_keypoint(seed):
    rng = np.random.default_rng(seed)
    h, w, res = 90, 120, 64
    points = rng.uniform([5, 5], [w - 5, h - 5], size=(21, 2))
    k = rng.integers(21)
    points[k] = np.floor(points[k]) + 0.5          # the dot's centre is a pixel centre
    frame = torch.from_numpy(dot_frame(h, w, points[k])).permute(2, 0, 1)
    image, affine = hand_crop(frame, points, res, margin=float(rng.uniform(1.1, 2.0)))
    assert image.shape == (3, res, res) and image.dtype == torch.uint8
    np.testing.assert_allclose(find_dot(image.numpy()), apply_affine(affine, points[k:k + 1])[0],
                               atol=0.3)


@settings(max_examples=200, deadline=None)
@given(cx=st.floats(-50, 250), cy=st.floats(-50, 250), wx=st.floats(0.5, 150),
       wy=st.floats(0.5, 150), margin=st.floats(1.0, 3.0), res=st.sampled_from([16, 64, 224]))
def test_box_is_centred_on_the_keypoint_box_with_side_margin_times_its_longer_side(
        cx, cy, wx, wy, margin, res):
    longer = max(wx, wy)
    assume(margin * longer >= 1)
    points = np.array([[cx - wx / 2, cy - wy / 2], [cx + wx / 2, cy + wy / 2], [cx, cy]])
    box = hand_box(points, margin)
    assert abs(box.side - margin * longer) <= 0.5
    mapped = apply_affine(box.affine(res), points)
    s = res / box.side
    # snapping to whole pixels moves the centre by at most half a frame pixel
    np.testing.assert_allclose(mapped[2], [res / 2, res / 2], atol=0.5 * s + 1e-9)
    extent = (mapped.max(0) - mapped.min(0)).max()
    assert abs(extent - res / margin) <= 0.5 * res / (margin * box.side) + 1e-9


def test_outside_the_frame_is_zero_and_inside_is_the_frame():
    frame = torch.full((3, 40, 50), 200, dtype=torch.uint8)
    image, affine = crop(frame, Box(x0=-10, y0=30, side=20), res=20)    # no resampling
    assert (image[:, :10, 10:] == 200).all()                            # rows 30..39, cols 0..9
    assert (image[:, :, :10] == 0).all() and (image[:, 10:, :] == 0).all()
    np.testing.assert_array_equal(apply_affine(affine, np.array([[-10.0, 30.0]])), [[0.0, 0.0]])


def test_a_box_inside_the_frame_at_output_size_is_the_frame_slice():
    frame = torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    image, _ = crop(frame, Box(x0=7, y0=3, side=16), res=16)
    assert torch.equal(image, frame[:, 3:19, 7:23])


def test_crop_is_batched_over_leading_dimensions():
    frames = torch.randint(0, 256, (2, 3, 30, 40), dtype=torch.uint8)
    image, _ = crop(frames, Box(x0=5, y0=5, side=20), res=8)
    single, _ = crop(frames[1], Box(x0=5, y0=5, side=20), res=8)
    assert image.shape == (2, 3, 8, 8) and torch.equal(image[1], single)


def test_camera_matrix_of_the_crop_projects_onto_mapped_points():
    rng = np.random.default_rng(0)
    K = np.array([[300.0, 0, 112], [0, 305, 110], [0, 0, 1]])
    xyz = rng.uniform(-0.05, 0.05, (21, 3)) + [0, 0, 0.6]
    uvw = xyz @ K.T
    uv = uvw[:, :2] / uvw[:, 2:]
    box = hand_box(uv)
    uvw_crop = xyz @ (box.affine(64) @ K).T
    np.testing.assert_allclose(uvw_crop[:, :2] / uvw_crop[:, 2:], apply_affine(box.affine(64), uv),
                               atol=1e-9)


@pytest.mark.parametrize("points, margin", [(np.zeros((0, 2)), 1.5),
                                            (np.array([[1.0, np.nan]]), 1.5),
                                            (np.array([[1.0, 2.0], [5.0, 6.0]]), 0.0)])
def test_unusable_points_or_margin_are_user_errors(points, margin):
    with pytest.raises(UserError):
        hand_box(points, margin)
