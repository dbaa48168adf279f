"""The check that a data set's intrinsics belong to its images, made from the labels and
one image header, before anything trains.

A transposed K, or intrinsics of another resolution than the frames on disk, still gives
finite 2D targets, and a run on them ends ``ok`` with a meaningless score. Two signs catch
them without decoding the set:

- joints that project outside the frame (or behind the camera): a few in a set where hands
  leave the picture, many when K is wrong (a transposed K put 44 % of FreiHAND's joints
  outside); refused above ``MAX_OUTSIDE``;
- for sets of hand-centred crops (FreiHAND), the joints' mean position far from the frame
  centre: frames resampled to 448 px with 224 px intrinsics keep every joint inside, in the
  top-left quarter; refused beyond ``MAX_OFF_CENTRE`` of the frame side.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from benchmarks.errors import UserError

MAX_OUTSIDE = 0.05          # fraction of all joints allowed outside their frame
MAX_OFF_CENTRE = 0.2        # hand-centred sets: mean joint's distance from the centre / side


def frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image from its header."""
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read the image header ({' '.join(str(err).split())})") from None


def outside_fraction(K: np.ndarray, xyz: np.ndarray, size: tuple[int, int]) -> float:
    """Fraction of the joints ``xyz`` (..., J, 3) that project with ``K`` (..., 3, 3) outside
    a frame of ``size`` = (width, height) pixels, or lie behind the camera."""
    uvw = np.einsum("...ij,...kj->...ki", K, xyz)
    z = uvw[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[..., :2] / z[..., None]
    w, h = size
    inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    return float(1.0 - inside.mean())


def check_projection(K: np.ndarray, xyz: np.ndarray, size: tuple[int, int], k_file: Path,
                     images: Path, centred: bool = False) -> None:
    """Refuse, in one line naming the intrinsics file and the frames, a set whose joints do
    not land in its frames (see the module docstring)."""
    w, h = size
    out = outside_fraction(K, xyz, size)
    if out > MAX_OUTSIDE:
        raise UserError(f"{k_file}: {100 * out:.0f} % of the joints project outside the {w}x{h} "
                        f"frames of {images} (at most {100 * MAX_OUTSIDE:.0f} % may): the "
                        f"intrinsics do not match the images (a transposed K, or K of another "
                        f"resolution?)")
    if centred:
        uvw = np.einsum("...ij,...kj->...ki", K, xyz)
        mean = (uvw[..., :2] / uvw[..., 2:]).reshape(-1, 2).mean(axis=0)
        off = np.abs(mean - [w / 2, h / 2]) / [w, h]
        if off.max() > MAX_OFF_CENTRE:
            raise UserError(f"{k_file}: the joints project around ({mean[0]:.0f}, {mean[1]:.0f}) "
                            f"px on average, far from the centre of the {w}x{h} hand-centred "
                            f"frames of {images}: the intrinsics are for another resolution "
                            f"than the images (resampled frames?)")
