"""SiMHand's Hand100M annotations (Ego4D, 100DOH) over extracted frames, as pre-training crops.

Follows the official reader, ``ut-vision/SiMHand`` ``src/data_loader/ego4d_loader.py``
(``EGO4D_DB``) and ``doh_loader.py`` (``DOH_DB``), with ``crop_and_resize`` of
``src/data_loader/utils.py`` and the frame extraction of ``Hand100M/ego4d_process.py`` and
``100doh_process.py``. Layout of ``root`` (their ``DATA_PATH/Hand100M``):
``annotations/Ego4D/Hand100M_Ego4D_<scale>_v1-1.json`` and
``annotations/100DOH/Hand100M_100DOH_<scale>_v1-1.json`` (scale such as ``50k`` or ``1m``),
each ``{"images": [{"id", "file_name", ...}], "annotations": [{"hand_id", "image_id",
"boxes", "keypoint_25d", "left_right", "positive_sample", "distance"}]}``; the frame of a
hand is ``root/<file_name>``, read as is.

Per annotation (one hand, one item), as the official reader does:
- ``boxes`` is a JSON *string*; ``json.loads`` gives x1, y1, x2, y2 in frame pixels (its
  first four numbers; more are allowed and ignored, as there).
- The official crop: the box truncated to ints, grown by ``SCALE`` 1.3, made square around
  its centre, clipped to the frame (``[qy1:qy2, qx1:qx2]``) and resized to 224 x 224.
- ``keypoint_25d`` (21 x 3; a flat list of 63 also, as its ``.view(21, 3)`` allows): x and y
  normalised to that crop, so in frame pixels ``x = qx1 + x_n * (qx2 - qx1)`` and likewise y.
- ``left_right == "Left"`` flips the hand to a right hand; ``"Right"`` keeps it.

A sequence is a video: the extraction scripts write ``<video_id>/frame_%06d.jpg``, one
folder per video, so the video of a frame is its ``file_name``'s parent folder. Sequence
ids are a stable 39-bit hash of ``<name>/<folder>`` (the same video gets the same id in the
50k and 1m files; Ego4D and 100DOH never share one; a collision only bars two videos from
pairing). ``mining_keypoints`` gives every item's frame-pixel keypoints and sequence from
the labels alone, for SiMHand's mining.

Deviations from the official reader:
- The item crop is the shared crop rule (``benchmarks.data.crops``) applied to the
  *keypoints'* extent, not the released box: every source with keypoints is cropped that
  way, and the official pipeline's final crop is keypoint-based as well (its
  ``SampleAugmenter.crop_sample`` cuts PeCLR's square around the joints, centred on their
  mean with side 2 x max radius x crop_margin, out of the 224 box crop). The box is used
  only to map the normalised keypoints back to the frame. The crop is cut once from the
  full frame (no double resampling, never clipped at the border).
- Left hands are flipped by mirroring the frame (x -> W - x, keypoints with it) before
  cropping, not by mirroring the crop: the same hand, mirrored.
- Frames missing on disk are skipped and counted (logged once); the official reader fails.
- ``left_right`` must be "Left" or "Right" (the official one treats anything else as right).
- The released pairs (``positive_sample``, ``distance``) are not read; ``hand_id`` is not
  needed. The frame size comes from ``images[].width``/``height`` where given, else from
  the file's header (never decoded); a decoded frame of another size is refused.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from benchmarks.checked import as_array, describe, parse_json, read_json, require_entries
from benchmarks.data.base import FrameSet
from benchmarks.data.camera import frame_size
from benchmarks.data.crops import MARGIN, apply_affine, check_margin, crop, hand_box
from benchmarks.data.files import check_res, decode, require_dir
from benchmarks.errors import UserError

log = logging.getLogger(__name__)
NAMES = {"ego4d": "Ego4D", "100doh": "100DOH"}
SCALE = 1.3                 # the official crop_and_resize's box scale
IMAGE_KEYS = ("id", "file_name")
HAND_KEYS = ("image_id", "boxes", "keypoint_25d", "left_right")


def annotation_file(root: Path, name: str, scale: str | None) -> Path:
    """``root/annotations/<Dir>/Hand100M_<Dir>_<scale>_v1-1.json``; without ``scale`` the
    only one present (none, or several, is a UserError listing what is there)."""
    if name not in NAMES:
        raise UserError(f"Hand100M name must be one of {', '.join(NAMES)}, got {name!r}")
    folder, d = root / "annotations" / NAMES[name], NAMES[name]
    found = sorted(folder.glob(f"Hand100M_{d}_*_v1-1.json"))
    if scale is not None:
        path = folder / f"Hand100M_{d}_{scale}_v1-1.json"
        if not path.is_file():
            raise UserError(f"{path}: no such file (present: "
                            f"{', '.join(p.name for p in found) or 'none'})")
        return path
    if len(found) != 1:
        what = "none" if not found else ", ".join(p.name for p in found)
        raise UserError(f"{folder}: expected one Hand100M_{d}_<scale>_v1-1.json, found "
                        f"{what}; pick one with scale=")
    return found[0]


def official_crop(box: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """(N, 4) qx1, qy1, qx2, qy2 of ``crop_and_resize``: the frame region (clipped) the
    normalised keypoints refer to. Python's int() truncates, // floors, as there."""
    x1, y1, x2, y2 = np.trunc(box.T)
    w, h = x2 - x1, y2 - y1
    sw, sh = np.trunc(w * SCALE), np.trunc(h * SCALE)
    dx, dy = np.trunc((sw - w) / 2), np.trunc((sh - h) / 2)
    sx1, sy1, sx2, sy2 = x1 - dx, y1 - dy, x2 + dx, y2 + dy
    cx, cy = (sx1 + sx2) / 2, (sy1 + sy2) / 2
    half = np.floor_divide(np.maximum(sx2 - sx1, sy2 - sy1), 2)
    return np.stack([np.maximum(0, np.trunc(cx - half)), np.maximum(0, np.trunc(cy - half)),
                     np.minimum(width, np.trunc(cx + half)),
                     np.minimum(height, np.trunc(cy + half))], axis=1)


def _boxes(hands: list[dict], path: Path) -> np.ndarray:
    out = []
    for j, hand in enumerate(hands):
        raw = hand["boxes"]
        if not isinstance(raw, str):
            raise UserError(f"{path}: annotations[{j}].boxes must be a JSON string (as "
                            f"released), got {describe(raw)}")
        box = parse_json(raw, f"{path}: annotations[{j}].boxes")
        if not isinstance(box, list) or len(box) < 4:
            got = f"a list of {len(box)}" if isinstance(box, list) else describe(box)
            raise UserError(f"{path}: annotations[{j}].boxes must hold a list of x1, y1, x2, "
                            f"y2, got {got}")
        out.append(box[:4])
    boxes = as_array(out, (len(out), 4), f"{path}: annotations[].boxes", "x1, y1, x2, y2")
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bad.any():
        j = int(np.argmax(bad))
        raise UserError(f"{path}: annotations[{j}].boxes {boxes[j].tolist()} is not x1, y1, "
                        f"x2, y2 with x2 > x1 and y2 > y1")
    return boxes


def _keypoints(hands: list[dict], path: Path) -> np.ndarray:
    kp = [hand["keypoint_25d"] for hand in hands]
    where = f"{path}: annotations[].keypoint_25d"
    try:
        return as_array(kp, (len(kp), 21, 3), where, "keypoints")
    except UserError as err:
        try:
            return as_array(kp, (len(kp), 63), where, "keypoints").reshape(-1, 21, 3)
        except UserError:
            raise err from None


def _frame_size(path: Path, image: dict) -> tuple[int, int]:
    w, h = image.get("width"), image.get("height")
    if type(w) is int and type(h) is int and w > 0 and h > 0:
        return w, h
    return frame_size(path)


def video_id(name: str, file_name: str) -> int:
    """A frame's sequence id: a 39-bit hash of ``<name>/<parent folder of file_name>``."""
    key = f"{name}/{Path(file_name).parent.as_posix()}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 25


class Hand100M(FrameSet):
    """One Hand100M annotation file (Ego4D or 100DOH) as a torch Dataset of hand crops.

    Args:
        root: the Hand100M folder (``annotations/`` and the frames' ``file_name`` under it).
        name: "ego4d" or "100doh".
        res: output crop side in pixels.
        margin: the crop rule's margin.
        preload: decode and crop every hand once at construction.
        scale: the file's scale (``50k``, ``1m``, ...); needed when several are present.

    Item: ``image`` uint8 (3, res, res), a right hand; ``uv`` float32 (21, 2) crop pixels.
    Attributes: ``uv`` (N, 21, 2) float32 frame pixels of the (flipped) frame, ``sequence``
    (N,) int64, ``flipped``, ``frames``, ``n_missing_frames``, ``n_missing_hands``.
    """

    def __init__(self, root: str | Path, name: str, res: int = 128, margin: float = MARGIN,
                 preload: bool = False, scale: str | None = None):
        self.root = require_dir(Path(root), "Hand100M root")
        self.res = check_res(res)
        self.margin = check_margin(margin)
        self.path = path = annotation_file(self.root, name, scale)
        data = read_json(path)
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected an object with 'images' and 'annotations'")
        images = {im["id"]: im for im in require_entries(data, "images", IMAGE_KEYS, path)
                  if isinstance(im["id"], (int, str))}
        hands = require_entries(data, "annotations", HAND_KEYS, path)
        boxes, kp = _boxes(hands, path), _keypoints(hands, path)

        frames: dict = {}
        keep, sizes, self.frames, sequence, self.flipped = [], [], [], [], []
        for j, hand in enumerate(hands):
            image_id = hand["image_id"]
            image = images.get(image_id) if isinstance(image_id, (int, str)) else None
            if image is None or not isinstance(image["file_name"], str):
                raise UserError(f"{path}: annotations[{j}] refers to image_id "
                                f"{image_id!r}, which is not in 'images' with a file_name")
            if hand["left_right"] not in ("Left", "Right"):
                raise UserError(f"{path}: annotations[{j}].left_right must be \"Left\" or "
                                f"\"Right\", got {describe(hand['left_right'])}")
            if image_id not in frames:
                frame = self.root / image["file_name"]
                frames[image_id] = None if not frame.is_file() else \
                    (frame, _frame_size(frame, image), video_id(name, image["file_name"]))
            if frames[image_id] is None:
                continue
            frame, size, seq = frames[image_id]
            keep.append(j)
            sizes.append(size)
            self.frames.append(frame)
            sequence.append(seq)
            self.flipped.append(hand["left_right"] == "Left")
        self.n_missing_frames = sum(f is None for f in frames.values())
        self.n_missing_hands = len(hands) - len(keep)
        if not keep:
            raise UserError(f"{path}: none of its {len(frames)} frames were found "
                            f"under {self.root}")
        if self.n_missing_frames:
            log.warning("%s: %d of %d frames are missing under %s; their %d hands are skipped",
                        path, self.n_missing_frames, len(frames), self.root, self.n_missing_hands)

        self.sizes = np.array(sizes, dtype=np.int64).reshape(-1, 2)          # W, H
        q = official_crop(boxes[keep], self.sizes[:, 0], self.sizes[:, 1])
        bad = (q[:, 2] <= q[:, 0]) | (q[:, 3] <= q[:, 1])
        if bad.any():
            j = keep[int(np.argmax(bad))]
            raise UserError(f"{path}: annotations[{j}].boxes {boxes[j].tolist()} leaves an "
                            f"empty crop in its {self.sizes[int(np.argmax(bad))].tolist()} frame")
        uv = q[:, None, :2] + kp[keep][:, :, :2] * (q[:, None, 2:] - q[:, None, :2])
        flip = np.array(self.flipped)
        uv[flip, :, 0] = self.sizes[flip, 0, None] - uv[flip, :, 0]
        self.uv = uv.astype(np.float32)
        self.sequence = np.array(sequence, dtype=np.int64)
        self._load(preload)

    def __len__(self) -> int:
        return len(self.frames)

    def image_paths(self) -> list[Path]:
        return list(self.frames)

    def mining_keypoints(self) -> tuple[np.ndarray, np.ndarray]:
        """(uv (N, 21, 2) float32 frame pixels of the flipped frame, sequence (N,) int64)."""
        return self.uv.copy(), self.sequence.copy()

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        frame = decode(self.frames[i])
        if (frame.shape[-1], frame.shape[-2]) != tuple(self.sizes[i]):
            w, h = self.sizes[i]
            raise UserError(f"{self.frames[i]}: is {frame.shape[-1]} x {frame.shape[-2]} "
                            f"pixels, but {self.path.name} says {w} x {h}")
        if self.flipped[i]:
            frame = frame.flip(-1)
        return crop(frame, hand_box(self.uv[i], self.margin), self.res)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        uv = apply_affine(affine, self.uv[i].astype(np.float64))
        return {"image": image, "uv": torch.from_numpy(uv.astype(np.float32))}
