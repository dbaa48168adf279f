"""Reading data set files: folders, numbered image listings, image decoding and resizing
(checked JSON and arrays are ``benchmarks.checked``).

Every check raises ``UserError`` with one line that names the offending file, so that a
broken download is reported at construction time and not as a crash in the middle of a run.

Images are returned as ``uint8`` tensors of shape (3, H, W) in RGB order. Pixel convention
everywhere: x right, y down, pixel (row i, col j) covers [j, j+1) x [i, i+1); a resize by
a factor s maps the continuous coordinate p to s * p exactly (``align_corners=False``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from benchmarks.errors import UserError


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a UserError naming it as ``what``."""
    if not path.is_dir():
        raise UserError(f"{what} {path}: no such folder")
    return path


def same_count(counts: dict[Path, int]) -> int:
    """The common length of several files' entries; a mismatch names the odd file."""
    (first, n), *rest = counts.items()
    for path, m in rest:
        if m != n:
            raise UserError(f"{path}: has {m} entries but {first.name} has {n}")
    return n


def listing(folder: Path) -> set[str]:
    """File names in ``folder`` (one directory read; cheap even for 130k files)."""
    return set(os.listdir(folder))


def count_numbered(names: set[str], suffix: str = "") -> int:
    """How many of ``names`` are ``%08d<suffix>.jpg`` (the layout of every image folder here)."""
    tail = f"{suffix}.jpg"
    return sum(1 for name in names if len(name) == 8 + len(tail) and name.endswith(tail)
               and name[:8].isdigit())


def require_files(folder: Path, names: list[str], present: set[str] | None = None) -> None:
    """Every name in ``names`` exists in ``folder``; the first missing one is a UserError."""
    present = listing(folder) if present is None else present
    for name in names:
        if name not in present:
            raise UserError(f"{folder / name}: missing ({len(names)} images expected in {folder})")


JPEG_SUFFIXES = (".jpg", ".jpeg")


def decode(path: Path) -> torch.Tensor:
    """Decode a JPEG or PNG file to a uint8 RGB tensor (3, H, W), a grey frame repeated.

    JPEGs go through ``torchvision.io.decode_jpeg`` (libjpeg-turbo): 1.4-1.8x PIL's rate per
    core on these sets' frames with the same pixels (``python -m perf.loaders``); anything it
    cannot read, and PNGs, go through PIL, which also words the error. torchvision 0.29 (the
    pinned version) marks its image decoding deprecated in favour of TorchCodec; the warning is
    silenced here, and a newer pin should move this call to TorchCodec."""
    if Path(path).suffix.lower() in JPEG_SUFFIXES:
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
            from torchvision.io import ImageReadMode, decode_jpeg, read_file

            try:
                return decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB)
            except RuntimeError:
                pass                 # PIL says what is wrong with it (or reads an odd JPEG)
    try:
        with Image.open(path) as img:
            pixels = np.ascontiguousarray(np.asarray(img.convert("RGB")).transpose(2, 0, 1))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"{path}: cannot decode image ({' '.join(str(err).split())})") from None
    return torch.from_numpy(pixels)


def verify_images(paths: list[Path], sample: int = 32, seed: int = 0) -> None:
    """The cheap pass over a streamed set before training: every file's header is read (a
    missing, empty or non-image file is found now, not hours into a run) and a seeded sample
    of ``sample`` files is decoded in full; the first bad file is a one-line UserError."""
    for path in paths:
        try:
            with Image.open(path) as img:
                img.size
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise UserError(f"{path}: not a readable image ({' '.join(str(err).split())}); "
                            f"checked before training") from None
    if paths:
        rng = np.random.default_rng(seed)
        for i in rng.choice(len(paths), size=min(sample, len(paths)), replace=False):
            decode(paths[int(i)])


def resample(image: torch.Tensor, res: int) -> torch.Tensor:
    """Resize (..., C, H, W) to (..., C, res, res): bilinear, antialiased, pixel-edge aligned.

    Works on uint8 (rounded) and float images alike; a no-op at the same size.
    """
    if image.shape[-2:] == (res, res):
        return image
    flat = image.reshape(-1, *image.shape[-3:])
    out = F.interpolate(flat, size=(res, res), mode="bilinear", align_corners=False,
                        antialias=True)
    return out.reshape(*image.shape[:-2], res, res)


def resize(image: torch.Tensor, res: int) -> tuple[torch.Tensor, np.ndarray]:
    """Resize a whole (..., H, W) uint8 image to (..., res, res), bilinear with antialiasing.

    Returns the image and the 3x3 affine ``A`` (float64) that maps homogeneous frame pixel
    coordinates to output pixel coordinates: ``A = diag(res / W, res / H, 1)``. A frame
    that is not square is stretched; the affine says by how much.
    """
    h, w = image.shape[-2:]
    return resample(image, res), np.diag([res / w, res / h, 1.0])


def check_res(res: int) -> int:
    """A positive integer output size, else a UserError."""
    if not isinstance(res, (int, np.integer)) or isinstance(res, bool) or res < 1:
        raise UserError(f"res must be a positive integer number of pixels, got {res!r}")
    return int(res)
