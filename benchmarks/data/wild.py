"""The synthetic in-the-wild set: hands anywhere in cluttered frames, with 2D keypoints.

Layout of ``root``: ``rgb/%08d.jpg`` frames, ``wild_uv.json`` (N x 21 x 2 frame pixel
coordinates, x right, y down, pixel (row i, col j) covering [j, j+1) x [i, i+1)) and
``wild_meta.json`` (N x {gesture, viewpoint}; optional here), and for ``pose3d`` items the
3D labels ``wild_xyz.json`` (N x 21 x 3 metres, camera frame) and ``wild_K.json`` (N x 3 x 3
frame intrinsics). Items are hand crops by the shared crop rule around the keypoints, with
the keypoints mapped into crop pixels (and the intrinsics: ``K_crop = A @ K``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.data.base import FrameSet
from benchmarks.data.crops import MARGIN, apply_affine, check_margin, hand_crop
from benchmarks.checked import as_array, read_json, require_list
from benchmarks.data.files import (check_res, count_numbered, decode, listing, require_dir,
                                   require_files, same_count)
from benchmarks.errors import UserError


class Wild(FrameSet):
    """The synthetic wild set as a torch Dataset of hand crops with 2D keypoints.

    Args:
        root: the product folder (``rgb/``, ``wild_uv.json``).
        res: output crop side in pixels.
        margin: the crop rule's margin.
        preload: decode and crop every frame once at construction.
        pose3d: also give the 3D labels (the files must exist).

    Item: ``image`` uint8 (3, res, res); ``uv`` float32 (21, 2) crop pixels; with ``pose3d``
    ``xyz`` float32 (21, 3) metres, ``K`` float32 (3, 3) of the crop, ``scale`` float32 ().
    """

    def __init__(self, root: str | Path, res: int = 128, margin: float = MARGIN,
                 preload: bool = False, pose3d: bool = False):
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
        self.xyz = self.K = None
        if pose3d:
            xyz_path, k_path = self.root / "wild_xyz.json", self.root / "wild_K.json"
            n = len(self.uv)
            self.xyz = as_array(require_list(read_json(xyz_path), xyz_path), (n, 21, 3), xyz_path)
            self.K = as_array(require_list(read_json(k_path), k_path), (n, 3, 3), k_path)
        present = listing(self.rgb)
        same_count({uv_path: len(self.uv), self.rgb: count_numbered(present)})
        require_files(self.rgb, [f"{i:08d}.jpg" for i in range(len(self.uv))], present)
        self._load(preload)

    def __len__(self) -> int:
        return len(self.uv)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        return hand_crop(decode(self.rgb / f"{i:08d}.jpg"), self.uv[i], self.res, self.margin)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        item = {"image": image, "uv": torch.from_numpy(apply_affine(affine, self.uv[i])).float()}
        if self.xyz is not None:
            xyz = self.xyz[i]
            item.update(xyz=torch.from_numpy(xyz).float(),
                        K=torch.from_numpy(affine @ self.K[i]).float(),
                        scale=torch.tensor(np.linalg.norm(xyz[9] - xyz[10]), dtype=torch.float32))
        return item
