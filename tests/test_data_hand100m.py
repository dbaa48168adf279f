"""Hand100M reader: the dots drawn at the official keypoint positions are found at the
items' uv (left hands mirrored), mining keypoints are the items' uv in frame pixels with one
sequence per video, malformed files are one-line errors naming the file, missing frames are
skipped and counted."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from benchmarks.data.crops import apply_affine
from benchmarks.data.hand100m import Hand100M
from benchmarks.errors import UserError
from hand100m_fixture import H, W, annotation_path, official_square, write_hand100m

RES = 128


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand100m")
    return root, write_hand100m(root)


def dot_centre(image: torch.Tensor, at: np.ndarray, radius: int = 4) -> np.ndarray:
    """The brightness centroid (crop pixels, pixel centres at +0.5) near ``at``."""
    grey = image.float().mean(0).numpy()
    cx, cy = np.floor(at).astype(int)
    ys, xs = np.mgrid[cy - radius:cy + radius + 1, cx - radius:cx + radius + 1]
    ok = (ys >= 0) & (ys < grey.shape[0]) & (xs >= 0) & (xs < grey.shape[1])
    w = np.where(ok, grey[ys.clip(0, grey.shape[0] - 1), xs.clip(0, grey.shape[1] - 1)], 0.0)
    w = np.clip(w - 40.0, 0, None)
    assert w.sum() > 200, f"no dot near {at}"
    return np.array([(w * (xs + 0.5)).sum(), (w * (ys + 0.5)).sum()]) / w.sum()


def test_dots_are_at_the_items_uv_left_hands_included(tree):
    root, truth = tree
    data = Hand100M(root, "ego4d", RES)
    assert len(data) == len(truth) == 10
    squares = [official_square(json.loads(h["boxes"]), W, H) for h in
               json.loads(annotation_path(root).read_text())["annotations"]]
    assert any(q[0] == 0 for q in squares) and any(q[2] == W for q in squares)   # clipped
    assert any(q[2] - q[0] != q[3] - q[1] for q in squares)                      # not square
    assert data.flipped == [t["left"] for t in truth]
    for item in data:
        assert item["image"].shape == (3, RES, RES) and item["image"].dtype == torch.uint8
        assert item["uv"].shape == (21, 2) and item["uv"].dtype == torch.float32
        uv = item["uv"].numpy()
        assert ((uv > 0) & (uv < RES)).all()
        for k in range(21):
            assert np.abs(dot_centre(item["image"], uv[k]) - uv[k]).max() < 0.25


def test_a_left_hand_is_the_mirror_image_of_the_same_hand_as_right(tree):
    root, truth = tree
    data = Hand100M(root, "ego4d", RES)
    right, left = len(truth) - 2, len(truth) - 1          # one hand annotated twice
    assert not data.flipped[right] and data.flipped[left]
    a, b = data[right], data[left]
    assert (a["image"].flip(-1).int() - b["image"].int()).abs().max() <= 1
    assert np.allclose(b["uv"][:, 0], RES - a["uv"][:, 0], atol=1e-3)
    assert np.allclose(b["uv"][:, 1], a["uv"][:, 1], atol=1e-3)


def test_mining_keypoints_are_the_items_uv_in_frame_pixels(tree):
    root, truth = tree
    data = Hand100M(root, "ego4d", RES)
    uv, seq = data.mining_keypoints()
    assert uv.shape == (10, 21, 2) and uv.dtype == np.float32 and seq.dtype == np.int64
    for i, t in enumerate(truth):
        want = t["uv"].copy()
        if t["left"]:
            want[:, 0] = W - want[:, 0]                   # of the flipped frame
        assert np.allclose(uv[i], want, atol=1e-3)
        _, affine = data._render(i)
        back = apply_affine(np.linalg.inv(affine), data[i]["uv"].numpy().astype(np.float64))
        assert np.allclose(back, uv[i], atol=1e-3)
    videos = np.array([t["video"] for t in truth])
    for i in range(len(truth)):
        assert ((seq == seq[i]) == (videos == videos[i])).all()


def test_ego4d_and_100doh_never_share_a_sequence(tmp_path):
    write_hand100m(tmp_path, "ego4d", prefix="frames")
    write_hand100m(tmp_path, "100doh", prefix="frames")      # the same video folders
    a = Hand100M(tmp_path, "ego4d").mining_keypoints()[1]
    b = Hand100M(tmp_path, "100doh").mining_keypoints()[1]
    assert len(set(a)) == len(set(b)) == 2 and not set(a) & set(b)


def test_preloaded_items_equal_lazy_ones(tree):
    root, _ = tree
    lazy, pre = Hand100M(root, "ego4d", 32), Hand100M(root, "ego4d", 32, preload=True)
    assert pre.preloaded and not lazy.preloaded
    for i in range(len(lazy)):
        assert torch.equal(lazy[i]["image"], pre[i]["image"])
        assert torch.equal(lazy[i]["uv"], pre[i]["uv"])


def test_flat_keypoint_lists_read_as_the_official_view_does(tmp_path):
    write_hand100m(tmp_path)
    want = Hand100M(tmp_path, "ego4d").uv
    path = annotation_path(tmp_path)
    data = json.loads(path.read_text())
    for hand in data["annotations"]:
        hand["keypoint_25d"] = np.ravel(hand["keypoint_25d"]).tolist()
    path.write_text(json.dumps(data))
    assert np.array_equal(Hand100M(tmp_path, "ego4d").uv, want)


def test_missing_frames_are_skipped_counted_and_reported_once(tmp_path, caplog):
    truth = write_hand100m(tmp_path)
    truth[0]["frame"].unlink()                              # two hands on it
    with caplog.at_level(logging.WARNING, logger="benchmarks.data.hand100m"):
        data = Hand100M(tmp_path, "ego4d", 32)
    assert len(data) == 8 and data.n_missing_frames == 1 and data.n_missing_hands == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1 of 5 frames are missing" in lines[0]
    assert np.allclose(data.mining_keypoints()[0][0], truth[2]["uv"], atol=1e-3)
    for t in truth:
        t["frame"].unlink(missing_ok=True)
    with pytest.raises(UserError, match="none of its 5 frames"):
        Hand100M(tmp_path, "ego4d")


def _break(data, how):
    hand = data["annotations"][3]
    if how == "boxes list":
        hand["boxes"] = json.loads(hand["boxes"])
    elif how == "boxes bad json":
        hand["boxes"] = hand["boxes"][:-1]
    elif how == "boxes short":
        hand["boxes"] = "[1, 2, 3]"
    elif how == "boxes inverted":
        x1, y1, x2, y2 = json.loads(hand["boxes"])
        hand["boxes"] = json.dumps([x2, y1, x1, y2])
    elif how == "boxes outside":
        hand["boxes"] = json.dumps([-80.5, 10, -30, 60])
    elif how == "no keypoints":
        del hand["keypoint_25d"]
    elif how == "no left_right":
        del hand["left_right"]
    elif how == "keypoints 20x3":
        hand["keypoint_25d"] = hand["keypoint_25d"][:20]
    elif how == "keypoints text":
        hand["keypoint_25d"][4][0] = "0.5"
    elif how == "left_right":
        hand["left_right"] = "left"
    elif how == "image_id":
        hand["image_id"] = 99
    elif how == "no file_name":
        del data["images"][1]["file_name"]
    elif how == "no images":
        del data["images"]
    elif how == "top list":
        return [data]
    return data


@pytest.mark.parametrize("how, says", [
    ("boxes list", "annotations[3].boxes must be a JSON string"),
    ("boxes bad json", "annotations[3].boxes: not valid JSON"),
    ("boxes short", "annotations[3].boxes must hold a list"),
    ("boxes inverted", "annotations[3].boxes"),
    ("boxes outside", "annotations[3].boxes [-80.5, 10.0, -30.0, 60.0] leaves an empty crop"),
    ("no keypoints", "annotations[3] must be an object with keys"),
    ("no left_right", "annotations[3] must be an object with keys"),
    ("keypoints 20x3", "first at index 3"),
    ("keypoints text", "first at index 3"),
    ("left_right", "annotations[3].left_right"),
    ("image_id", "annotations[3] refers to image_id 99"),
    ("no file_name", "images[1] must be an object with keys"),
    ("no images", "expected a JSON list"),
    ("top list", "expected an object"),
])
def test_malformed_files_are_one_line_errors_naming_the_file(tmp_path, how, says):
    write_hand100m(tmp_path)
    path = annotation_path(tmp_path)
    path.write_text(json.dumps(_break(json.loads(path.read_text()), how)))
    with pytest.raises(UserError) as err:
        Hand100M(tmp_path, "ego4d")
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and says in msg, msg


def test_truncated_json_is_one_line_naming_the_file(tmp_path):
    write_hand100m(tmp_path)
    path = annotation_path(tmp_path)
    path.write_text(path.read_text()[:500])
    with pytest.raises(UserError, match="not valid JSON") as err:
        Hand100M(tmp_path, "ego4d")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_scale_picks_the_file_and_ambiguity_is_refused(tmp_path):
    write_hand100m(tmp_path, scale="50k")
    write_hand100m(tmp_path, scale="1m", seed=1)
    with pytest.raises(UserError) as err:
        Hand100M(tmp_path, "ego4d")
    msg = str(err.value)
    assert "\n" not in msg and "Hand100M_Ego4D_1m_v1-1.json" in msg \
        and "Hand100M_Ego4D_50k_v1-1.json" in msg and "scale=" in msg
    assert Hand100M(tmp_path, "ego4d", scale="50k").path.name == "Hand100M_Ego4D_50k_v1-1.json"
    with pytest.raises(UserError, match="Hand100M_Ego4D_2m_v1-1.json: no such file"):
        Hand100M(tmp_path, "ego4d", scale="2m")
    with pytest.raises(UserError, match="found none"):
        Hand100M(tmp_path, "100doh")
    with pytest.raises(UserError, match="ego4d, 100doh"):
        Hand100M(tmp_path, "epic")


def test_a_frame_of_another_size_than_listed_is_refused_naming_it(tmp_path):
    truth = write_hand100m(tmp_path)
    path = annotation_path(tmp_path)
    data = json.loads(path.read_text())
    data["images"][0]["width"] = W + 10
    path.write_text(json.dumps(data))
    ds = Hand100M(tmp_path, "ego4d")
    with pytest.raises(UserError, match="330 x 240") as err:
        ds[0]
    assert str(truth[0]["frame"]) in str(err.value)
