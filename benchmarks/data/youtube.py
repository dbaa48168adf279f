"""YouTube 3D Hands (Kulon et al., CVPR 2020) as unlabelled hand crops for pre-training.

Layout of ``root``: ``youtube_{split}.json`` holding ``{"images": [{name, width, height,
id}], "annotations": [{vertices (778 x 3, x and y in image pixels), is_left (0/1),
image_id, id}]}``, and the frames at ``root/<name>``. The dataset's download script writes
PNG frames; like PeCLR we look for ``<name>`` with ``.png`` replaced by ``.jpg`` first, then
for ``<name>`` itself. Frames missing on disk (videos taken down) are skipped: their hands
are dropped and the count is logged once.

Each annotation (one hand; a frame may hold several) is one item. Left hands are flipped
horizontally, frame and vertices together (x -> W - x in the pixel-edge convention), so
every crop shows a right hand. The crop is the shared hand-crop rule applied to the
vertices' x, y extent. No 2D keypoints are given (the MANO joint regressor is not part of
the data set), so ``uv`` is NaN.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from benchmarks.data.base import FrameSet
from benchmarks.data.crops import MARGIN, check_margin, crop, hand_box
from benchmarks.checked import as_array, read_json, require_entries
from benchmarks.data.files import check_res, decode, require_dir
from benchmarks.errors import UserError

log = logging.getLogger(__name__)
N_VERTICES = 778
IMAGE_KEYS = ("name", "width", "height", "id")
HAND_KEYS = ("vertices", "is_left", "image_id")


def _frame_file(root: Path, name: str) -> Path | None:
    """The frame on disk for a JSON image name (``.jpg`` in place of ``.png`` first)."""
    for candidate in (Path(name).with_suffix(".jpg"), Path(name)):
        if (root / candidate).is_file():
            return root / candidate
    return None


class YouTube3D(FrameSet):
    """One YouTube3DHands split as a torch Dataset of unlabelled hand crops.

    Args:
        root: the folder with ``youtube_{split}.json``; frame names are relative to it.
        split: "train", "val" or "test" (any ``youtube_{split}.json`` present).
        res: output crop side in pixels.
        margin: the crop rule's margin.
        preload: decode and crop every hand once at construction.

    Item: ``image`` uint8 (3, res, res); ``uv`` float32 (21, 2), all NaN.
    Attributes: ``n_missing_frames`` and ``n_missing_hands`` (skipped, frames not on disk).
    """

    def __init__(self, root: str | Path, split: str = "train", res: int = 128,
                 margin: float = MARGIN, preload: bool = False):
        self.root = require_dir(Path(root), "YouTube3DHands root")
        self.res = check_res(res)
        self.margin = check_margin(margin)
        path = self.root / f"youtube_{split}.json"
        data = read_json(path)
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected an object with 'images' and 'annotations'")
        names = {im["id"]: im["name"] for im in require_entries(data, "images", IMAGE_KEYS, path)}
        hands = require_entries(data, "annotations", HAND_KEYS, path)

        frames: dict = {}
        self.frames: list[Path] = []
        self.flipped: list[bool] = []
        extents = []                         # per hand: x min, x max, y min, y max (frame px)
        for j, hand in enumerate(hands):
            if hand["image_id"] not in names:
                raise UserError(f"{path}: annotations[{j}] refers to image_id "
                                f"{hand['image_id']!r}, which is not in 'images'")
            image_id = hand["image_id"]
            if image_id not in frames:
                frames[image_id] = _frame_file(self.root, str(names[image_id]))
            if frames[image_id] is None:
                continue
            v = as_array(hand["vertices"], (N_VERTICES, 3), f"{path}: annotations[{j}].vertices")
            extents.append((v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max()))
            self.frames.append(frames[image_id])
            self.flipped.append(bool(hand["is_left"]))
        self.extents = np.array(extents, dtype=np.float64).reshape(-1, 4)

        self.n_missing_frames = sum(f is None for f in frames.values())
        self.n_missing_hands = len(hands) - len(self.frames)
        if not self.frames:
            raise UserError(f"{path}: none of its {len(frames)} frames were found "
                            f"under {self.root}")
        if self.n_missing_frames:
            log.warning("%s: %d of %d frames are missing under %s; their %d hands are skipped",
                        path, self.n_missing_frames, len(frames), self.root, self.n_missing_hands)
        self._load(preload)

    def __len__(self) -> int:
        return len(self.frames)

    def image_paths(self) -> list[Path]:
        return list(self.frames)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        frame = decode(self.frames[i])
        x_lo, x_hi, y_lo, y_hi = self.extents[i]
        flip = np.eye(3)
        if self.flipped[i]:
            width = frame.shape[-1]
            frame = frame.flip(-1)
            x_lo, x_hi = width - x_hi, width - x_lo
            flip = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        box = hand_box(np.array([[x_lo, y_lo], [x_hi, y_hi]]), self.margin)
        image, affine = crop(frame, box, self.res)
        return image, affine @ flip

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        return {"image": image, "uv": torch.full((21, 2), float("nan"))}
