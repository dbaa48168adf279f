"""Synthetic wild crops (keypoints follow the content) and viewpoint triplets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from benchmarks.data.triplets import Triplets
from benchmarks.data.wild import Wild
from data_trees import VIEW_GREY, find_dot, triplets_tree, wild_tree


@pytest.fixture(scope="module")
def wild(tmp_path_factory):
    root = tmp_path_factory.mktemp("wild")
    return root, wild_tree(root, n=5)


@pytest.mark.parametrize("res", [24, 64])
def test_wild_uv_in_crop_pixels_lands_on_the_keypoint_content(wild, res):
    root, uv = wild
    data = Wild(root, res)
    assert len(data) == 5 and len(data.meta) == 5
    for i, item in enumerate(data):
        crop_uv = item["uv"].numpy()
        assert item["image"].shape == (3, res, res)
        px = res / (1.5 * np.ptp(uv[i], axis=0).max() - 0.5)    # crop pixels per frame pixel
        # keypoint box centred up to the half-pixel snap of the box; the dot follows uv[0]
        np.testing.assert_allclose((crop_uv.min(0) + crop_uv.max(0)) / 2, [res / 2, res / 2],
                                   atol=0.5 * px + 1e-4)
        np.testing.assert_allclose(find_dot(item["image"].numpy()), crop_uv[0], atol=0.2 * px + 0.1)


def test_wild_preload_is_byte_identical(wild):
    root, _ = wild
    lazy, pre = Wild(root, 32), Wild(root, 32, preload=True)
    for a, b in zip(lazy, pre):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["uv"], b["uv"])


@pytest.fixture(scope="module")
def triplets(tmp_path_factory):
    root = tmp_path_factory.mktemp("triplets")
    return root, triplets_tree(root)


def test_triplets_hold_left_centre_right_with_their_labels(triplets):
    root, entries = triplets
    data = Triplets(root, "train", 16)
    assert data.indices.tolist() == [0, 2, 3] and data.gestures == ["open", "fist", "point"]
    for j, item in zip(data.indices, data):
        assert item["triplet"].shape == (3, 3, 16, 16) and item["triplet"].dtype == torch.uint8
        greys = item["triplet"].float().mean(dim=(1, 2, 3))
        np.testing.assert_allclose(greys.numpy(), [VIEW_GREY[v] for v in "lcr"], atol=2)
        assert item["gesture"].item() == entries[j]["gesture"]
        np.testing.assert_array_equal(item["viewpoint"].numpy(),
                                      np.float32(entries[j]["viewpoint"]))


def test_triplets_test_split_and_collate(triplets):
    root, _ = triplets
    test = Triplets(root, "test", 8, preload=True)
    assert test.indices.tolist() == [1]
    batch = default_collate([item for item in Triplets(root, "train", 8)])
    assert batch["triplet"].shape == (3, 3, 3, 8, 8) and batch["viewpoint"].shape == (3, 3, 2)
    assert batch["gesture"].dtype == torch.int64


def test_wild_3d_labels_project_onto_the_crop_keypoints(tmp_path):
    """``synthetic3d``'s labels: the crop's intrinsics map the 3D joints onto the crop's 2D
    keypoints (to the files' rounding), so the 2.5D targets of its pose loss are exact."""
    from benchmarks.synth import products as synth
    from benchmarks.pose_model import targets

    root = synth.generate("wild", tmp_path / "wild", n=6, res=64, seed=3)
    plain = Wild(root, 32)
    assert set(plain[0]) == {"image", "uv"}                # other methods see no 3D
    ds = Wild(root, 32, pose3d=True)
    batch = default_collate([ds[i] for i in range(len(ds))])
    uv = targets(batch["xyz"].double(), batch["K"].double())["uv_px"]
    assert torch.allclose(uv, batch["uv"].double(), atol=0.01)
    assert torch.allclose(batch["scale"], (batch["xyz"][:, 9] - batch["xyz"][:, 10]).norm(dim=-1))


def test_wild_without_3d_files_is_a_user_error_for_pose3d(wild):
    from benchmarks.errors import UserError

    with pytest.raises(UserError, match="wild_xyz.json"):
        Wild(wild[0], 32, pose3d=True)
