"""The one hand-crop rule shared by every pre-training source.

Rule. Take the axis-aligned bounding box of the hand's 2D points (the 21 keypoints; for
YouTube3DHands the 778 mesh vertices' x, y). The crop is the square centred on that box's
centre whose side is ``margin`` times the box's longer side (``margin`` 1.5 by default).
The square is snapped to whole pixels (side rounded, then the top-left corner rounded, both
half up), so the crop is a resampling of whole frame pixels; parts outside the frame are
zeros. The square is then resized to ``res`` x ``res`` (bilinear, antialiased).

Unlike PeCLR's crop (a box around the keypoints' mean, truncated at the frame border), the
square is never truncated: the hand keeps its aspect ratio and stays centred near the border.

Convention: x right, y down, pixel (row i, col j) covers [j, j+1) x [i, i+1). The returned
affine ``A`` (3x3, float64) maps homogeneous frame coordinates to crop coordinates,
``p_crop = A @ [x, y, 1]``; for a camera matrix ``K`` of the frame, ``A @ K`` is the camera
matrix of the crop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.data.files import resample
from benchmarks.errors import UserError

MARGIN = 1.5


@dataclass(frozen=True)
class Box:
    """A square of whole pixels: columns [x0, x0 + side), rows [y0, y0 + side)."""
    x0: int
    y0: int
    side: int

    def affine(self, res: int) -> np.ndarray:
        """The 3x3 map from frame pixel coordinates to the ``res`` x ``res`` crop's."""
        s = res / self.side
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0], [0.0, 0.0, 1.0]])


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def check_margin(margin: float) -> float:
    """A positive, finite crop margin, else a UserError."""
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise UserError(f"crop margin must be a positive number, got {margin!r}")
    return float(margin)


def hand_box(points: np.ndarray | torch.Tensor, margin: float = MARGIN) -> Box:
    """The crop square for 2D points (K, 2) in frame pixels (see the module docstring)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if p.shape[0] == 0 or not np.isfinite(p).all():
        raise UserError("a hand crop needs at least one finite 2D point")
    check_margin(margin)
    lo, hi = p.min(axis=0), p.max(axis=0)
    cx, cy = (lo + hi) / 2
    side = max(1, _half_up(margin * float((hi - lo).max())))
    return Box(_half_up(cx - side / 2), _half_up(cy - side / 2), side)


def crop(image: torch.Tensor, box: Box, res: int) -> tuple[torch.Tensor, np.ndarray]:
    """Cut ``box`` out of a (..., C, H, W) image (zeros outside the frame), resize to ``res``.

    Returns the (..., C, res, res) crop, in the image's dtype, and the affine ``box.affine(res)``.
    """
    h, w = image.shape[-2:]
    out = image.new_zeros((*image.shape[:-2], box.side, box.side))
    x_lo, x_hi = max(box.x0, 0), min(box.x0 + box.side, w)
    y_lo, y_hi = max(box.y0, 0), min(box.y0 + box.side, h)
    if x_lo < x_hi and y_lo < y_hi:
        out[..., y_lo - box.y0:y_hi - box.y0, x_lo - box.x0:x_hi - box.x0] = \
            image[..., y_lo:y_hi, x_lo:x_hi]
    return resample(out, res), box.affine(res)


def hand_crop(image: torch.Tensor, points: np.ndarray | torch.Tensor, res: int,
              margin: float = MARGIN) -> tuple[torch.Tensor, np.ndarray]:
    """``crop(image, hand_box(points, margin), res)``: the rule applied in one call."""
    return crop(image, hand_box(points, margin), res)


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (K, 2) pixel coordinates by a 3x3 affine (last row 0, 0, 1)."""
    return points @ affine[:2, :2].T + affine[:2, 2]
