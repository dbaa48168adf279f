"""FolderSource: each box is cropped where it says (a dot at the box centre lands at the
crop centre), left boxes are mirrored, sequences follow ``video`` or the parent folder, bad
boxes and malformed files are one-line errors naming boxes.json and the entry, missing
frames are skipped and counted."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.data.folder import FolderSource
from benchmarks.errors import UserError

W, H, RES = 200, 150, 64
# (file, boxes, video, left): each box gets a white dot at its centre and a red marker at a
# quarter of its width from its left edge
FRAMES = [
    ("clipA/000000.jpg", [[20, 30, 61, 71], [120, 40, 171, 101]], "one", [False, True]),
    ("clipA/000001.jpg", [[-10, 10, 31, 51]], "one", None),        # partly outside: kept
    ("clipB/000000.jpg", [[100, 60, 141, 121]], None, [True]),
    ("clipB/000001.jpg", [], None, None),
    ("clipC/000000.jpg", [[60, 50, 101, 91]], None, None),
]


def _dot(frame: np.ndarray, x: float, y: float, value) -> None:
    cx, cy = int(np.floor(x)), int(np.floor(y))
    frame[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2] = value


def write_folder(root: Path, frames=FRAMES) -> Path:
    entries = []
    for file, boxes, video, left in frames:
        frame = np.zeros((H, W, 3), dtype=np.uint8)
        for box in boxes:
            if len(box) != 4 or not all(isinstance(v, int) for v in box):
                continue                          # a malformed box: nothing to draw
            x0, y0, x1, y1 = box
            _dot(frame, (x0 + x1) / 2, (y0 + y1) / 2, 255)
            _dot(frame, x0 + (x1 - x0) / 4, (y0 + y1) / 2, (255, 0, 0))
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(root / file, quality=95, subsampling=0)
        entry = {"file": file, "boxes": boxes}
        if video is not None:
            entry["video"] = video
        if left is not None:
            entry["left"] = left
        entries.append(entry)
    (root / "boxes.json").write_text(json.dumps({"frames": entries}))
    return root / "boxes.json"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    write_folder(root)
    return root


def _centroid(w: np.ndarray) -> np.ndarray:
    """The weighted centroid of (res, res) weights, pixel centres at +0.5."""
    w = np.clip(w - 40.0, 0, None)
    ys, xs = np.mgrid[:w.shape[0], :w.shape[1]]
    return np.array([(w * (xs + 0.5)).sum(), (w * (ys + 0.5)).sum()]) / w.sum()


def test_each_box_is_cropped_where_it_says_and_left_boxes_are_mirrored(root):
    data = FolderSource(root, RES)
    assert len(data) == 5
    assert data.flipped == [False, True, False, True, False]
    for i, item in enumerate(data):
        assert item["image"].shape == (3, RES, RES) and item["image"].dtype == torch.uint8
        assert item["uv"].shape == (21, 2) and item["uv"].isnan().all()
        r, g, _ = item["image"].float().numpy()
        centre = _centroid(g)                                 # white: the box centre
        assert np.abs(centre - RES / 2).max() < 1.0
        marker = _centroid(r - g)                             # red: a quarter from the left
        x0, y0, x1, y1 = data.boxes[i]
        offset = (x1 - x0) / 4 * RES / np.floor(1.5 * max(x1 - x0, y1 - y0) + 0.5)
        want = RES / 2 + offset if data.flipped[i] else RES / 2 - offset
        assert abs(marker[0] - want) < 1.5 and abs(marker[1] - RES / 2) < 1.5


def test_sequences_are_the_video_or_else_the_parent_folder(root):
    data = FolderSource(root, RES)
    seq = data.sequences()
    assert seq.dtype == np.int64 and seq.tolist() == [0, 0, 0, 1, 2]
    assert data.videos == ["one", "clipB", "clipC"]


def test_preloaded_items_equal_lazy_ones(root):
    lazy, pre = FolderSource(root, 24), FolderSource(root, 24, preload=True)
    assert pre.preloaded
    assert all(torch.equal(lazy[i]["image"], pre[i]["image"]) for i in range(len(lazy)))


def test_missing_frames_are_skipped_counted_and_reported_once(tmp_path, caplog):
    write_folder(tmp_path)
    (tmp_path / FRAMES[0][0]).unlink()
    with caplog.at_level(logging.WARNING, logger="benchmarks.data.folder"):
        data = FolderSource(tmp_path, RES)
    assert len(data) == 3 and data.n_missing_frames == 1 and data.n_missing_boxes == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1 of 5 frames are missing" in lines[0]
    for file, *_ in FRAMES:
        (tmp_path / file).unlink(missing_ok=True)
    with pytest.raises(UserError, match="no box on a frame found"):
        FolderSource(tmp_path)


@pytest.mark.parametrize("boxes, says", [
    ([[40, 10, 40, 50]], "frames[1].boxes[0] [40.0, 10.0, 40.0, 50.0] must have x1 > x0"),
    ([[10, 10, 50, 50], [60, 50, 20, 90]], "frames[1].boxes[1]"),
    ([[10, 60, 50, 20]], "frames[1].boxes[0]"),
    ([[210, 10, 260, 50]],
     "frames[1].boxes[0] [210.0, 10.0, 260.0, 50.0] lies entirely outside its 200 x 150 frame"),
    ([[-60, 10, 0, 50]], "frames[1].boxes[0]"),
    ([[10, 150, 50, 190]], "frames[1].boxes[0]"),
    ([[10, 10, 50]], "frames[1].boxes"),
    ([[10, 10, 50, "60"]], "frames[1].boxes"),
    ([[10, 10, 50, float("nan")]], "frames[1].boxes"),
])
def test_bad_boxes_are_refused_naming_the_file_and_index(tmp_path, boxes, says):
    frames = [FRAMES[0], ("clipA/000001.jpg", boxes, None, None)]
    path = write_folder(tmp_path, frames)
    with pytest.raises(UserError) as err:
        FolderSource(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and says in msg, msg


@pytest.mark.parametrize("text, says", [
    ('{"frames": [', "not valid JSON"),
    ('[]', "expected an object with 'frames'"),
    ('{"frames": {}}', "expected a JSON list"),
    ('{"frames": [{"file": "clipA/000000.jpg"}]}', "frames[0] must be an object with keys"),
    ('{"frames": [{"file": "/etc/x.jpg", "boxes": []}]}', "frames[0].file must be a path relative"),
    ('{"frames": [{"file": "../x.jpg", "boxes": []}]}', "frames[0].file"),
    ('{"frames": [{"file": "clipA/000000.jpg", "boxes": [[1, 2, 30, 40]], "left": [true, false]}]}',
     "frames[0].left must be a list of 1 true/false"),
    ('{"frames": [{"file": "clipA/000000.jpg", "boxes": [[1, 2, 30, 40]], "left": [1]}]}',
     "frames[0].left"),
    ('{"frames": [{"file": "clipA/000000.jpg", "boxes": [[1, 2, 30, 40]], "video": []}]}',
     "frames[0].video"),
    ('{"frames": [{"file": "clipA/000000.jpg", "boxes": "[[1, 2, 30, 40]]"}]}', "frames[0].boxes"),
])
def test_malformed_files_are_one_line_errors_naming_the_file(tmp_path, text, says):
    path = write_folder(tmp_path)
    path.write_text(text)
    with pytest.raises(UserError) as err:
        FolderSource(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and says in msg, msg


def test_an_unreadable_frame_is_named(tmp_path):
    write_folder(tmp_path)
    (tmp_path / FRAMES[2][0]).write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot read the image header") as err:
        FolderSource(tmp_path)
    assert str(tmp_path / FRAMES[2][0]) in str(err.value)
