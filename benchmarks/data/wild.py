"""The synthetic in-the-wild set: hands anywhere in cluttered frames, with 2D keypoints.

Layout of ``root``: ``rgb/%08d.jpg`` frames, ``wild_uv.json`` (N x 21 x 2 frame pixel
coordinates, x right, y down, pixel (row i, col j) covering [j, j+1) x [i, i+1)) and
``wild_meta.json`` (N x {gesture, viewpoint}; optional here). No 3D is given. Items are
hand crops by the shared crop rule around the keypoints, with the keypoints mapped into
crop pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.data.base import FrameSet
from benchmarks.data.crops import MARGIN, apply_affine, check_margin, hand_crop
from benchmarks.data.files import (as_array, check_res, count_numbered, decode, listing,
                                   read_json, require_dir, require_files, require_list,
                                   same_count)
from benchmarks.errors import UserError


class Wild(FrameSet):
    """The synthetic wild set as a torch Dataset of hand crops with 2D keypoints.

    Args:
        root: the product folder (``rgb/``, ``wild_uv.json``).
        res: output crop side in pixels.
        margin: the crop rule's margin.
        preload: decode and crop every frame once at construction.

    Item: ``image`` uint8 (3, res, res); ``uv`` float32 (21, 2) crop pixels.
    """

    def __init__(self, root: str | Path, res: int = 128, margin: float = MARGIN,
                 preload: bool = False):
        self.root = require_dir(Path(root), "wild data root")
        self.res = check_res(res)
        self.margin = check_margin(margin)
        self.rgb = require_dir(self.root / "rgb", "wild image folder")
        uv_path = self.root / "wild_uv.json"
        raw = require_list(read_json(uv_path), uv_path)
        if not raw:
            raise UserError(f"{uv_path}: holds no samples")
        self.uv = as_array(raw, (len(raw), 21, 2), uv_path)
        meta_path = self.root / "wild_meta.json"
        self.meta: list | None = None
        if meta_path.exists():
            self.meta = require_list(read_json(meta_path), meta_path)
            same_count({uv_path: len(self.uv), meta_path: len(self.meta)})
        present = listing(self.rgb)
        same_count({uv_path: len(self.uv), self.rgb: count_numbered(present)})
        require_files(self.rgb, [f"{i:08d}.jpg" for i in range(len(self.uv))], present)
        self._load(preload)

    def __len__(self) -> int:
        return len(self.uv)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        return hand_crop(decode(self.rgb / f"{i:08d}.jpg"), self.uv[i], self.res, self.margin)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        return {"image": image, "uv": torch.from_numpy(apply_affine(affine, self.uv[i])).float()}
