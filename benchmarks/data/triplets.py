"""Synthetic viewpoint triplets: one hand seen from three nearby viewpoints on a smooth path.

Layout of ``root``: ``rgb/%08d_l.jpg``, ``rgb/%08d_c.jpg``, ``rgb/%08d_r.jpg`` (left, centre,
right views of triplet ``%08d``), ``triplets.json`` (a list of ``{"gesture": int,
"gesture_name": str, "viewpoint": [[azimuth, elevation] x 3] in degrees, "split": "train" |
"test"}``, the test split held out by hand for probes) and ``gestures.json`` (class names in
index order). Frames are hand-centred renders, so each view is resized whole.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.data.base import FrameSet
from benchmarks.checked import as_array, read_json, require_list
from benchmarks.data.files import (check_res, count_numbered, decode, listing, require_dir,
                                   require_files, resize, same_count)
from benchmarks.errors import UserError

SPLITS = ("train", "test")
VIEWS = ("l", "c", "r")


class Triplets(FrameSet):
    """One split of the triplets set as a torch Dataset.

    Args:
        root: the product folder (``rgb/``, ``triplets.json``, ``gestures.json``).
        split: "train" or "test".
        res: output image side in pixels.
        preload: decode every triplet once at construction.

    Item: ``triplet`` uint8 (3, 3, res, res) = (left, centre, right) views; ``gesture`` int64
    class index into ``self.gestures``; ``viewpoint`` float32 (3, 2) (azimuth, elevation) in
    degrees of the three views. ``self.indices`` are the items' indices in ``triplets.json``.
    """

    def __init__(self, root: str | Path, split: str = "train", res: int = 128,
                 preload: bool = False):
        if split not in SPLITS:
            raise UserError(f"Triplets split must be one of {list(SPLITS)}, got {split!r}")
        self.root = require_dir(Path(root), "triplets root")
        self.res = check_res(res)
        self.rgb = require_dir(self.root / "rgb", "triplets image folder")
        names_path, list_path = self.root / "gestures.json", self.root / "triplets.json"
        self.gestures: list[str] = require_list(read_json(names_path), names_path)
        if not all(isinstance(name, str) for name in self.gestures):
            raise UserError(f"{names_path}: expected a list of class names (strings)")
        entries = require_list(read_json(list_path), list_path)

        gesture, viewpoint, indices = [], [], []
        for j, entry in enumerate(entries):
            where = f"{list_path}: entry {j}"
            if not isinstance(entry, dict) or any(k not in entry for k in
                                                  ("gesture", "viewpoint", "split")):
                raise UserError(f"{where} must be an object with gesture, viewpoint and split")
            g = entry["gesture"]
            if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < len(self.gestures):
                raise UserError(f"{where}: gesture {g!r} is not a class index of {names_path.name}"
                                f" ({len(self.gestures)} classes)")
            if entry["split"] not in SPLITS:
                raise UserError(f"{where}: split {entry['split']!r} is not one of {list(SPLITS)}")
            vp = as_array(entry["viewpoint"], (3, 2), f"{where}.viewpoint")
            if entry["split"] == split:
                gesture.append(g)
                viewpoint.append(vp)
                indices.append(j)
        if not indices:
            raise UserError(f"{list_path}: holds no {split!r} triplets")
        present = listing(self.rgb)
        for view in VIEWS:
            same_count({list_path: len(entries), self.rgb / f"*_{view}.jpg":
                        count_numbered(present, f"_{view}")})
        require_files(self.rgb, [f"{j:08d}_{v}.jpg" for j in indices for v in VIEWS], present)
        self.indices = np.array(indices, dtype=np.int64)
        self.gesture = np.array(gesture, dtype=np.int64)
        self.viewpoint = np.stack(viewpoint)
        self._load(preload)

    def __len__(self) -> int:
        return len(self.indices)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        j = int(self.indices[i])
        views = [resize(decode(self.rgb / f"{j:08d}_{v}.jpg"), self.res) for v in VIEWS]
        return torch.stack([image for image, _ in views]), views[1][1]   # centre view's affine

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "triplet": image,
            "gesture": torch.tensor(self.gesture[i], dtype=torch.int64),
            "viewpoint": torch.from_numpy(self.viewpoint[i]).float(),
        }
