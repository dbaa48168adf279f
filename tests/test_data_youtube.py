"""YouTube3DHands loader: one item per hand, missing frames skipped and counted once,
left hands flipped with their vertices, crops centred on the vertex extent."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from benchmarks.data.youtube import YouTube3D
from data_trees import youtube_tree

RES = 45          # every hand box in the tree has a longer side of 30 px: side 45 at margin 1.5


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("youtube")
    youtube_tree(root)
    return root


def test_missing_frames_are_skipped_counted_and_reported_once(root, caplog):
    with caplog.at_level(logging.WARNING, logger="benchmarks.data.youtube"):
        data = YouTube3D(root, "train", RES)
    assert len(data) == 4                                 # 5 hands, one on the missing frame
    assert data.n_missing_frames == 1 and data.n_missing_hands == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1 of 4 frames are missing" in lines[0]


def test_png_names_resolve_to_jpg_or_to_the_png_itself(root):
    names = [p.name for p in YouTube3D(root, "train", RES).frames]
    assert names == ["0.jpg", "1.jpg", "1.jpg", "2.png"]


def _columns(image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Columns holding red (the stripe) and white (the rest of the hand) pixels."""
    r, g, b = image.int().numpy()
    red = np.flatnonzero(((r > 200) & (g < 60) & (b < 60)).any(axis=0))
    white = np.flatnonzero(((r > 200) & (g > 200) & (b > 200)).any(axis=0))
    return red, white


def test_left_hands_are_flipped_with_their_vertices(root):
    data = YouTube3D(root, "train", RES)
    assert data.flipped == [False, False, True, True]
    for i, item in enumerate(data):
        red, white = _columns(item["image"])
        assert red.size and white.size
        # the stripe is painted on each hand's left edge; flipping moves it to the right edge
        if data.flipped[i]:
            assert red.min() > white.mean()
        else:
            assert red.max() < white.mean()


def test_crop_is_centred_on_the_vertex_extent(root):
    for item in YouTube3D(root, "train", RES):
        hand = (item["image"].int() > 200).any(dim=0).numpy()
        rows, cols = np.flatnonzero(hand.any(axis=1)), np.flatnonzero(hand.any(axis=0))
        assert abs((rows.min() + rows.max() + 1) / 2 - RES / 2) <= 1.0
        assert abs((cols.min() + cols.max() + 1) / 2 - RES / 2) <= 1.0
        # the longer side of the vertex box fills 1 / margin of the crop
        assert abs(max(rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min()) - RES / 1.5) <= 1


def test_items_are_unlabelled_crops(root):
    data = YouTube3D(root, "train", 16, preload=True)
    item = data[0]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.uint8
    assert item["uv"].shape == (21, 2) and item["uv"].isnan().all()
    lazy = YouTube3D(root, "train", 16)
    assert all(torch.equal(lazy[i]["image"], data[i]["image"]) for i in range(len(data)))
