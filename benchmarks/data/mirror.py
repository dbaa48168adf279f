"""Hands filmed in a full frame, as right-hand crops: the part every reader of such a set
(DexYCB, AssemblyHands) shares.

A left hand is mirrored into a right one: the frame is flipped horizontally (u -> W - u in
the pixel-edge convention), the camera-frame joints x -> -x, and the intrinsics' cx -> W - cx,
so that ``project(K_out, xyz)`` lands on the flipped crop's joints. The crop is the shared
hand-crop rule around the given 2D points (``benchmarks.data.crops``).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmarks.data.crops import crop, hand_box
from benchmarks.data.freihand import project


def mirrored_crop(frame: torch.Tensor, uv: np.ndarray, left: bool, margin: float, res: int
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """The ``res`` crop of ``frame`` around the frame-pixel points ``uv`` (mirrored first for
    a left hand) and the affine from (unflipped) frame pixels to crop pixels."""
    flip = np.eye(3)
    if left:
        w = frame.shape[-1]
        frame = frame.flip(-1)
        uv = np.column_stack([w - uv[:, 0], uv[:, 1]])
        flip = np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    image, affine = crop(frame, hand_box(uv, margin), res)
    return image, affine @ flip


def hand_item(image: torch.Tensor, affine: np.ndarray, K_frame: np.ndarray, xyz_frame: np.ndarray,
              left: bool, j: int, valid: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The item of sample ``j``: FreiHAND's keys, a left hand mirrored, ``flipped``, and
    ``joint_valid`` (21 booleans) where the set marks joints without ground truth."""
    mirror = np.diag([-1.0 if left else 1.0, 1.0, 1.0])
    K = affine @ K_frame @ mirror                      # cx -> W - cx when flipped
    xyz = np.asarray(xyz_frame, dtype=np.float64) @ mirror
    extra = {} if valid is None else {"joint_valid": torch.from_numpy(np.asarray(valid, dtype=bool))}
    return {
        **extra,
        "image": image,
        "K": torch.from_numpy(K).float(),
        "xyz": torch.from_numpy(xyz).float(),
        "uv": torch.from_numpy(project(K, xyz)).float(),
        "scale": torch.tensor(np.linalg.norm(xyz[9] - xyz[10]), dtype=torch.float32),
        "label_id": torch.tensor(j, dtype=torch.int64),
        "image_id": torch.tensor(j, dtype=torch.int64),
        "flipped": torch.tensor(float(left)),
    }


def mirrored_poses(frame_xyz: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """(n, 21, 3) float64 joints as the items give them (left hands mirrored)."""
    xyz = np.asarray(frame_xyz, dtype=np.float64).copy()
    xyz[np.asarray(flipped, dtype=bool), :, 0] *= -1
    return xyz
