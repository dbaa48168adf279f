"""A user's own frames with hand boxes, as unlabelled pre-training crops.

No official code: this is the project's own format, for frames a user extracted from their
videos and ran a hand detector over. ``root/boxes.json``::

    {"frames": [{"file": "clip1/000001.jpg",          # relative to root, required
                 "boxes": [[x0, y0, x1, y1], ...],     # frame pixels, required (may be [])
                 "video": "clip1",                     # optional; a string or an integer
                 "left": [false, true, ...]},          # optional; one bool per box
                ...]}

Boxes use the pixel-edge convention of ``benchmarks.data.crops`` (pixel (row i, col j)
covers [j, j+1) x [i, i+1)), so a box around pixels 10..19 is [10, y0, 20, y1]. Each box is
one item: the shared crop rule applied to the box's extent (its corners as the points), so
the crop is centred on the box centre with side ``margin`` x the box's longer side. A box
marked left is mirrored with its frame (x -> W - x) so every crop shows a right hand (as
YouTube3DHands and Hand100M). ``uv`` is NaN: there are no keypoints.

A sequence is ``video`` where given, else the file's parent folder (``clip1`` above), for
temporal methods (TempCLR-like): ``sequences()`` gives each item's id (0, 1, ... in order of
first appearance, named by ``videos``). Items follow the file's order, frame by frame.

Checked at construction, each a one-line UserError naming ``boxes.json`` and the entry:
malformed JSON, missing keys, a box that is not 4 finite numbers, x1 <= x0 or y1 <= y0, a
box entirely outside its frame (frame sizes are read from the image headers, not decoded),
``left`` of the wrong length or not bools. Frames missing on disk are skipped and counted
(logged once), like ``benchmarks.data.youtube``.
"""
from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from benchmarks.checked import as_array, describe, read_json, require_list
from benchmarks.data.base import FrameSet
from benchmarks.data.camera import frame_size
from benchmarks.data.crops import MARGIN, check_margin, crop, hand_box
from benchmarks.data.files import check_res, decode, require_dir
from benchmarks.errors import UserError

log = logging.getLogger(__name__)
FILE = "boxes.json"


def _frame(entry, j: int, path: Path) -> tuple[str, np.ndarray, str | None, list[bool]]:
    """One checked ``frames[j]``: file, boxes (K, 4), video or None, left flags (K)."""
    where = f"{path}: frames[{j}]"
    if not isinstance(entry, dict) or "file" not in entry or "boxes" not in entry:
        raise UserError(f"{where} must be an object with keys file, boxes (video, left optional)")
    file = entry["file"]
    if not isinstance(file, str) or not file or PurePosixPath(file).is_absolute() \
            or ".." in PurePosixPath(file).parts:
        raise UserError(f"{where}.file must be a path relative to the folder, got {describe(file)}")
    raw = entry["boxes"]
    if not isinstance(raw, list):
        raise UserError(f"{where}.boxes must be a list of [x0, y0, x1, y1], got {describe(raw)}")
    boxes = as_array(raw, (len(raw), 4), f"{where}.boxes", "boxes [x0, y0, x1, y1]") \
        if raw else np.zeros((0, 4))
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 <= x0 or y1 <= y0:
            raise UserError(f"{where}.boxes[{k}] {boxes[k].tolist()} must have x1 > x0 and y1 > y0")
    video = entry.get("video")
    if video is not None and (type(video) not in (str, int) or video == ""):
        raise UserError(f"{where}.video must be a string or an integer, got {describe(video)}")
    left = entry.get("left", [False] * len(boxes))
    if not isinstance(left, list) or len(left) != len(boxes) \
            or any(not isinstance(v, bool) for v in left):
        got = f"a list of {len(left)}" if isinstance(left, list) else describe(left)
        raise UserError(f"{where}.left must be a list of {len(boxes)} true/false, one per box, "
                        f"got {got}")
    return file, boxes, None if video is None else str(video), left


class FolderSource(FrameSet):
    """A folder of frames with ``boxes.json`` (module docstring) as a Dataset of hand crops.

    Args:
        root: the folder holding ``boxes.json``; file names are relative to it.
        res: output crop side in pixels.
        margin: the crop rule's margin.
        preload: decode and crop every box once at construction.

    Item: ``image`` uint8 (3, res, res); ``uv`` float32 (21, 2), all NaN.
    Attributes: ``frames``, ``boxes`` (N, 4), ``flipped``, ``videos`` (names of the
    sequence ids), ``n_missing_frames``, ``n_missing_boxes``.
    """

    def __init__(self, root: str | Path, res: int = 128, margin: float = MARGIN,
                 preload: bool = False):
        self.root = require_dir(Path(root), "image folder")
        self.res = check_res(res)
        self.margin = check_margin(margin)
        path = self.root / FILE
        data = read_json(path)
        if not isinstance(data, dict) or "frames" not in data:
            raise UserError(f"{path}: expected an object with 'frames'")
        entries = [_frame(e, j, path) for j, e in enumerate(require_list(data["frames"], path))]

        self.frames, self.flipped, self.videos = [], [], []
        boxes, sequence, seen, n_total, missing = [], [], {}, 0, set()
        for j, (file, frame_boxes, video, left) in enumerate(entries):
            n_total += len(frame_boxes)
            frame = self.root / file
            if not frame.is_file():
                missing.add(file)
                continue
            w, h = frame_size(frame)
            video = video if video is not None else PurePosixPath(file).parent.as_posix()
            seq = seen.setdefault(video, len(seen))
            if seq == len(self.videos):
                self.videos.append(video)
            for k, (x0, y0, x1, y1) in enumerate(frame_boxes):
                if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
                    raise UserError(f"{path}: frames[{j}].boxes[{k}] {frame_boxes[k].tolist()} "
                                    f"lies entirely outside its {w} x {h} frame {file}")
                if left[k]:
                    x0, x1 = w - x1, w - x0
                boxes.append((x0, y0, x1, y1))
                self.frames.append(frame)
                self.flipped.append(left[k])
                sequence.append(seq)
        self.boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)   # of the flipped frame
        self._sequence = np.array(sequence, dtype=np.int64)
        self.n_missing_frames = len(missing)
        self.n_missing_boxes = n_total - len(self.frames)
        if not self.frames:
            raise UserError(f"{path}: no box on a frame found under {self.root} "
                            f"({len(entries)} frames listed, {len(missing)} missing)")
        if missing:
            log.warning("%s: %d of %d frames are missing under %s; their %d boxes are skipped",
                        path, len(missing), len({e[0] for e in entries}), self.root,
                        self.n_missing_boxes)
        self._load(preload)

    def __len__(self) -> int:
        return len(self.frames)

    def sequences(self) -> np.ndarray:
        """(N,) int64: each item's sequence (``videos[id]`` names it)."""
        return self._sequence.copy()

    def image_paths(self) -> list[Path]:
        return list(self.frames)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        frame = decode(self.frames[i])
        if self.flipped[i]:
            frame = frame.flip(-1)
        x0, y0, x1, y1 = self.boxes[i]
        return crop(frame, hand_box(np.array([[x0, y0], [x1, y1]]), self.margin), self.res)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        return {"image": image, "uv": torch.full((21, 2), float("nan"))}
