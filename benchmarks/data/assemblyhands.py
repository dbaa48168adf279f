"""AssemblyHands (Ohkawa et al., CVPR 2023) egocentric hand crops in the official layout.

Layout of ``root`` (the toolkit's ``data/assemblyhands``; ``facebookresearch/
assemblyhands-toolkit`` at 73fe963, README and ``src/dataset/AssemblyHands-Ego/dataset.py``)::

    images/<file_name>        file_name from the data file, in the release
                              ego_images_rectified/<split>/<seq>/<camera>_mono10bit/%06d.jpg
                              (monochrome JPEG; ``decode`` repeats it to 3 equal channels)
    annotations/<split>/assemblyhands_<split>_ego_data_v1-1.json    COCO: images[] (id,
        file_name, width, height, seq_name, camera, frame_idx), annotations[] (id, image_id,
        bbox {"right", "left"}: [x0, y0, x1, y1] or null, joint_valid: 42 flags)
    annotations/<split>/assemblyhands_<split>_ego_calib_v1-1.json   calibration[seq]:
        intrinsics[<camera>_mono10bit] 3x3, extrinsics["%06d" frame][<camera>_mono10bit]
        3x4 [R | t], world -> camera, mm
    annotations/<split>/assemblyhands_<split>_joint_3d_v1-1.json    annotations[seq]
        ["%06d" frame].world_coord 42x3, world, mm

Splits: "train", "val", "test", as the release names its folders.

Sample rule (``dataset.py``, ``Dataset.__init__``, first run, i.e. without an
``invalid_<split>_ego.txt``): annotations in file order (``COCO.anns``), and in each the
right hand, then the left; a hand is a sample when ``bbox[side]`` is not null and its 21
``joint_valid`` flags (the other hand's zeroed) sum to at least 10. ``load_crop_img`` then
asserts that at least 10 flags are > 0 (its 2D visibility test
``joint_valid > 0 & (...)`` binds as ``joint_valid > 0``, so it removes nothing) and that
the crop exceeds 50 px (its box is at least 100 px): both are applied and the second never
fails. ``n_skipped`` counts annotations (frames) that give no sample; ``n_skipped_hands``
the hands with a box but too few valid joints (the toolkit's ``n_skip``).

Geometry (``transforms.py``): ``X_cam = R @ X_world + t`` (``world2cam_assemblyhands``),
in mm, divided by 1000 here to metres; pixels ``u = fx x / z + cx`` (``cam2pixel``, skew
ignored); R, t, fx, fy, cx, cy from ``Camera.get_params`` (an RQ factorisation of
K [R | t], redone here in numpy: for a rotation R the file's values, for a rounded one the
toolkit's). Joints: 0-20 right, 21-41 left, each finger tip to base (thumb 0-3, index 4-7,
middle 8-11, ring 12-15, little 16-19), wrist 20 (the README's keypoint chart); to
FreiHAND's order (0 wrist, thumb 1-4, ..., little 17-20, base to tip) by
``RIGHT_TO_FREIHAND`` (left: the same + 21). A left hand is mirrored into a right one:
frame flipped horizontally (u -> W - u), xyz x -> -x, K's cx -> W - cx (``flipped`` per
item). The crop is the shared rule: ``hand_box`` of the frame projections of the hand's
valid joints.

Deviations from the toolkit:

- Pixel convention. The toolkit puts pixel centres at integer coordinates (``calib/
  camera.py``, "Window coordinates": (0, 0) is the centre of pixel [0, 0]; the flip in
  ``preprocessing.py``'s ``augmentation`` is u -> W - u - 1); handbench puts them at +0.5,
  so ``frame_K`` is the file's K with cx + 0.5 and cy + 0.5.
- The crop: the toolkit cuts a square of at least 100 px around the annotated bbox
  enlarged 1.75 times (``process_bbox``, ``update_params_after_crop``); here the shared
  rule on the valid joints (invalid joints may lie outside the crop).
- The released ``dataset.py`` has ``IS_DEBUG = True`` (train loads val, 200 annotations):
  read as False. An existing ``invalid_<split>_ego.txt`` is ignored (the rule is applied).
- Every annotation file and calibration entry a sample needs is checked at construction,
  and only samples' images must exist (the toolkit asserts every annotation's image); an
  unreadable image is a UserError when decoded, not a silently skipped sample.
- Refused: R farther than ``MAX_NON_ROTATION`` from a rotation (``get_params`` would fold
  the error into K), K not of pinhole form, valid joints behind the camera, a hand whose
  valid joints are one point (withheld ground truth), duplicate annotation ids, file
  names leaving ``images/``, frames not of the data file's size.
- The items carry FreiHAND's keys and ``joint_valid`` (21 flags, FreiHAND order); ``xyz``
  keeps the file's coordinates of invalid joints, and the fine-tuning loss and the metrics
  leave those joints out (``benchmarks.pose_model.pose_loss``, ``eval.metrics``). The root
  (wrist) depth and the scale bone come from the file whether valid or not, as the toolkit
  takes the root's ground truth for every hand (``evaluate``: ``abs_depth``, root alignment).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from benchmarks.checked import as_array, read_json
from benchmarks.data.base import FrameSet
from benchmarks.data.crops import MARGIN, check_margin
from benchmarks.data.files import check_res, decode, listing, require_dir
from benchmarks.data.freihand import project
from benchmarks.data.mirror import hand_item, mirrored_crop, mirrored_poses
from benchmarks.errors import UserError

SPLITS = ("train", "val", "test")
SIDES = ("right", "left")
VERSION = "v1-1"
N_JOINTS = 21
MIN_VALID = 10                     # dataset.py: sum(joint_valid_single_hand) < 10 -> skip
CAMERA_SUFFIX = "_mono10bit"       # calibration keys are images[].camera + this
MAX_NON_ROTATION = 0.02            # |R R^T - I| allowed (rounded files); get_params refactors
PIXEL_CENTRE = 0.5                 # handbench pixel centre minus the toolkit's
RIGHT_TO_FREIHAND = (20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16)
IMAGE_KEYS = ("id", "file_name", "width", "height", "seq_name", "camera", "frame_idx")


def annotation_file(root: Path, split: str, kind: str) -> Path:
    """``annotations/<split>/assemblyhands_<split>_<kind>_v1-1.json`` (kind: ego_data, ...)."""
    return root / "annotations" / split / f"assemblyhands_{split}_{kind}_{VERSION}.json"


def _object(data, path: Path, key: str) -> dict:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object with a {key!r} object")
    return value


def _entry(table, key: str, path: Path, where: str):
    if not isinstance(table, dict) or key not in table:
        raise UserError(f"{path}: {where} has no entry {key!r}")
    return table[key]


def sample_count(root: Path, split: str) -> int:
    """Samples of ``split`` by the toolkit's rule, from its data file alone."""
    return len(_hands(annotation_file(Path(root), split, "ego_data"))[0])


def _hands(path: Path) -> tuple[list[tuple[dict, str, np.ndarray]], int, int, int]:
    """The toolkit's samples of a data file, in its order: [(image entry, side, 21 valid
    flags)], and (annotations without a sample, hands with too few valid joints, annotations)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise UserError(f"{path}: expected a COCO object with 'images' and 'annotations' lists")
    images = {}
    for j, im in enumerate(data["images"]):
        if not isinstance(im, dict) or any(k not in im for k in IMAGE_KEYS):
            raise UserError(f"{path}: images[{j}] must be an object with keys "
                            f"{', '.join(IMAGE_KEYS)}")
        if not isinstance(im["id"], (int, str)):
            raise UserError(f"{path}: images[{j}].id must be an integer or a string")
        images[im["id"]] = im
    samples, ann_ids = [], set()
    empty = few = 0
    for j, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{j}]"
        if not isinstance(ann, dict) or any(k not in ann for k in ("id", "image_id", "bbox",
                                                                    "joint_valid")):
            raise UserError(f"{where} must be an object with keys id, image_id, bbox, joint_valid")
        if not all(isinstance(ann[k], (int, str)) for k in ("id", "image_id")):
            raise UserError(f"{where}: id and image_id must be integers or strings")
        if ann["id"] in ann_ids:
            raise UserError(f"{where} repeats annotation id {ann['id']!r}")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in images:
            raise UserError(f"{where} refers to image_id {ann['image_id']!r}, not in 'images'")
        box = ann["bbox"]
        if not isinstance(box, dict) or any(s not in box for s in SIDES):
            raise UserError(f"{where}.bbox must be an object with 'right' and 'left'")
        valid = ann["joint_valid"]
        nested = isinstance(valid, list) and bool(valid) and isinstance(valid[0], list)
        valid = as_array(valid, (2 * N_JOINTS, 1) if nested else (2 * N_JOINTS,),
                         f"{where}.joint_valid").reshape(2 * N_JOINTS)
        kept = 0
        for h, side in enumerate(SIDES):
            if box[side] is None:
                continue
            as_array(box[side], (4,), f"{where}.bbox.{side}")
            flags = valid[h * N_JOINTS:(h + 1) * N_JOINTS]
            if flags.sum() < MIN_VALID or (flags > 0).sum() < MIN_VALID:
                few += 1
                continue
            samples.append((images[ann["image_id"]], side, flags > 0))
            kept += 1
        empty += kept == 0
    return samples, empty, few, len(data["annotations"])


def _image_fields(im: dict, path: Path) -> tuple[str, str, str, int, int, int]:
    """(file_name, seq_name, camera, frame_idx, width, height) of a checked images[] entry."""
    where = f"{path}: image {im['id']!r}"
    name, cam, frame, w, h = (im[k] for k in ("file_name", "camera", "frame_idx", "width",
                                              "height"))
    for key, value, least in (("frame_idx", frame, 0), ("width", w, 1), ("height", h, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"{where}: {key} must be an integer >= {least}, got {value!r}")
    if not isinstance(cam, str) or not isinstance(name, str):
        raise UserError(f"{where}: camera and file_name must be strings")
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or ".." in rel.parts:
        raise UserError(f"{where}: file_name {name!r} must be a path inside images/")
    return name, str(im["seq_name"]), cam, frame, w, h


def toolkit_camera(K_file: np.ndarray, Rt: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Camera(K, Rt).get_params()`` of transforms.py in numpy, for stacks (..., 3, 3) and
    (..., 3, 4): P = K [R | t] factored by RQ into K' R' with K' of positive diagonal (what
    ``factor``'s sign fix leaves of scipy's RQ when det K R > 0), t = K^-1 P[:, 3].
    Returns (K', R', t); for a rotation R they are the file's K, R, t."""
    P = K_file @ Rt
    rev = np.eye(3)[::-1]
    Q, U = np.linalg.qr(np.swapaxes(rev @ P[..., :3], -1, -2))    # RQ through QR
    K, R = rev @ np.swapaxes(U, -1, -2) @ rev, rev @ np.swapaxes(Q, -1, -2)
    sign = np.sign(np.diagonal(K, axis1=-2, axis2=-1))            # unique RQ, K' diagonal > 0
    t = np.linalg.solve(K_file, P[..., 3:])[..., 0]
    return K * sign[..., None, :], R * sign[..., :, None], t


def not_rotation(R: np.ndarray) -> np.ndarray:
    """Per (..., 3, 3): True where R is farther than ``MAX_NON_ROTATION`` from a rotation."""
    off = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max(axis=(-2, -1))
    return (off > MAX_NON_ROTATION) | (np.linalg.det(R) <= 0)


def _check_intrinsics(K: np.ndarray, where: str) -> None:
    if K[0, 0] <= 0 or K[1, 1] <= 0 or np.abs(K[2] - [0, 0, 1]).max() > 1e-9 or K[1, 0]:
        raise UserError(f"{where}: expected a pinhole K [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                        f"with fx, fy > 0")


def frame_intrinsics(K: np.ndarray) -> np.ndarray:
    """cam2pixel's focal and princpt (skew dropped) of (..., 3, 3) K in handbench's pixel
    convention."""
    out = np.zeros(K.shape)
    out[..., 0, 0], out[..., 1, 1], out[..., 2, 2] = K[..., 0, 0], K[..., 1, 1], 1.0
    out[..., 0, 2], out[..., 1, 2] = K[..., 0, 2] + PIXEL_CENTRE, K[..., 1, 2] + PIXEL_CENTRE
    return out


class AssemblyHands(FrameSet):
    """One AssemblyHands ego split as a torch Dataset of right-hand crops.

    Args:
        root: the folder holding ``images/`` and ``annotations/``.
        split: "train", "val" or "test".
        res: output crop side in pixels.
        ids: sample indices in [0, n_unique) to use (default all); ``label_id`` keeps the
            full index.
        margin: the shared hand-crop rule's margin.
        preload: decode and crop every item once at construction.

    Item: FreiHAND's keys (``image``, ``K`` of the crop, ``xyz`` right-hand metres, ``uv``,
    ``scale``, ``label_id``, ``image_id``). Attributes: ``sample_ids``, ``flipped`` (per
    item), ``frame_K``, ``frame_xyz`` (camera metres, FreiHAND order, unmirrored),
    ``frame_size`` (W, H), ``joint_valid`` (per sample), ``n_unique``, ``n_versions``,
    ``n_skipped``, ``n_skipped_hands``, ``skipped_reason``.
    """

    def __init__(self, root: str | Path, split: str, res: int = 224,
                 ids: Sequence[int] | None = None, margin: float = MARGIN,
                 preload: bool = False):
        if split not in SPLITS:
            raise UserError(f"AssemblyHands split must be one of {', '.join(SPLITS)}, "
                            f"got {split!r}")
        self.root = require_dir(Path(root), "AssemblyHands root")
        self.res, self.margin, self.split = check_res(res), check_margin(margin), split
        self.images = self.root / "images"
        data_path = annotation_file(self.root, split, "ego_data")
        hands, empty, few, n_ann = _hands(data_path)
        self._counts = {split: len(hands)}
        self.n_unique, self.n_versions = len(hands), 1
        self.n_skipped, self.n_skipped_hands = empty, few
        self.skipped_reason = (f"{empty} of {n_ann} annotated frames have no valid hand (a "
                               f"hand needs a bbox and >= {MIN_VALID} valid joints; {few} "
                               f"boxed hands had fewer) in {data_path.name}")
        if not hands:
            raise UserError(f"{data_path}: no AssemblyHands {split} samples "
                            f"({self.skipped_reason})")
        calib_path = annotation_file(self.root, split, "ego_calib")
        joints_path = annotation_file(self.root, split, "joint_3d")
        calib = _object(read_json(calib_path), calib_path, "calibration")
        joints = _object(read_json(joints_path), joints_path, "annotations")

        n = len(hands)
        self._files, keys, sides = [], {}, []
        index = np.zeros(n, np.int64)                  # sample -> (seq, camera, frame) row
        self.frame_size = np.zeros((n, 2), np.int64)
        for j, (im, side, _) in enumerate(hands):
            name, seq, cam, frame, w, h = _image_fields(im, data_path)
            self._files.append(name)
            index[j] = keys.setdefault((seq, cam, frame), len(keys))
            self.frame_size[j] = w, h
            sides.append(side)
        self._left = np.array([side == "left" for side in sides])
        keys = list(keys)
        K_file, Rt, world = self._read_cameras(keys, calib, joints, calib_path, joints_path)
        bad = np.flatnonzero(not_rotation(Rt[:, :, :3]))
        if bad.size:
            seq, cam, frame = keys[bad[0]]
            raise UserError(f"{calib_path}: calibration[{seq!r}].extrinsics[{frame:06d}]"
                            f"[{cam + CAMERA_SUFFIX!r}]: the 3x3 part of [R | t] is not a "
                            f"rotation (world -> camera extrinsics expected)")
        K, R, t = toolkit_camera(K_file, Rt)
        cam_mm = world @ np.swapaxes(R, -1, -2) + t[:, None, :]
        order = np.array(RIGHT_TO_FREIHAND) + N_JOINTS * self._left[:, None]
        self.frame_K = frame_intrinsics(K)[index]
        self.frame_xyz = (np.take_along_axis(cam_mm[index], order[..., None], 1)
                          / 1000.0).astype(np.float32)
        self.joint_valid = np.stack([flags for _, _, flags in hands])[:, list(RIGHT_TO_FREIHAND)]
        xyz = np.where(self.joint_valid[..., None], self.frame_xyz, np.nan)
        behind = (xyz[..., 2] <= 0).any(axis=1)
        with np.errstate(invalid="ignore"):
            point = (np.nanmax(xyz, axis=1) == np.nanmin(xyz, axis=1)).all(axis=1)
        for j in np.flatnonzero(behind | point)[:1]:
            seq, cam, frame = keys[index[j]]
            where = f"{joints_path}: annotations[{seq!r}][{frame:06d}] ({sides[j]} hand)"
            if behind[j]:
                raise UserError(f"{where}: valid joints lie behind camera {cam} (z <= 0) "
                                f"with the extrinsics of {calib_path} (not world -> camera?)")
            raise UserError(f"{where}: every valid joint is the same point (withheld or "
                            f"placeholder ground truth)")
        self._require_images()

        chosen = np.arange(n) if ids is None else np.unique(np.asarray(ids, dtype=np.int64))
        self._choose(chosen)
        self._load(preload)

    @staticmethod
    def _read_cameras(keys, calib, joints, calib_path, joints_path):
        """Per (seq, camera, frame): the file's K (3 x 3), [R | t] (3 x 4) and the frame's
        42 world joints (mm), stacked; each entry checked once."""
        intrinsics: dict = {}
        worlds: dict = {}
        Ks, Rts, ws = [], [], []
        for seq, cam, frame in keys:
            ckey, fkey = cam + CAMERA_SUFFIX, f"{frame:06d}"
            seq_cal = _entry(calib, seq, calib_path, "calibration")
            where = f"calibration[{seq!r}]"
            if (seq, cam) not in intrinsics:
                at = f"{calib_path}: {where}.intrinsics[{ckey!r}]"
                K = as_array(_entry(_entry(seq_cal, "intrinsics", calib_path, where), ckey,
                                    calib_path, f"{where}.intrinsics"), (3, 3), at)
                _check_intrinsics(K, at)
                intrinsics[seq, cam] = K
            ext = _entry(_entry(seq_cal, "extrinsics", calib_path, where), fkey, calib_path,
                         f"{where}.extrinsics")
            Rts.append(as_array(_entry(ext, ckey, calib_path, f"{where}.extrinsics[{fkey!r}]"),
                                (3, 4), f"{calib_path}: {where}.extrinsics[{fkey!r}][{ckey!r}]",
                                "[R | t] (mm)"))
            if (seq, frame) not in worlds:
                jwhere = f"annotations[{seq!r}]"
                entry = _entry(_entry(joints, seq, joints_path, "annotations"), fkey,
                               joints_path, jwhere)
                worlds[seq, frame] = as_array(
                    _entry(entry, "world_coord", joints_path, f"{jwhere}[{fkey!r}]"),
                    (2 * N_JOINTS, 3), f"{joints_path}: {jwhere}[{fkey!r}].world_coord",
                    "joints (mm)")
            Ks.append(intrinsics[seq, cam])
            ws.append(worlds[seq, frame])
        return np.stack(Ks), np.stack(Rts), np.stack(ws)

    def _require_images(self) -> None:
        """Every sample's image exists (one directory listing per camera folder)."""
        folders: dict[Path, set[str] | None] = {}
        for name in self._files:
            path = self.images / name
            if path.parent not in folders:
                folders[path.parent] = listing(path.parent) if path.parent.is_dir() else None
            present = folders[path.parent]
            if present is None or path.name not in present:
                raise UserError(f"{path}: missing (an image of "
                                f"{annotation_file(self.root, self.split, 'ego_data').name})")

    def _choose(self, chosen: np.ndarray) -> None:
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= self.n_unique:
            raise UserError(f"AssemblyHands ids must be a non-empty subset of "
                            f"[0, {self.n_unique}) ({self.split} under {self.root}), got "
                            f"{chosen.size} ids")
        self.label_ids = chosen
        self.flipped = self._left[chosen]
        self._sample_ids: list[str] | None = None

    def with_ids(self, ids: Sequence[int], preload: bool = False) -> "AssemblyHands":
        """The same split restricted to sample indices ``ids`` (the files are not read again)."""
        out = copy.copy(self)
        out._images, out._affines = None, None
        out._choose(np.unique(np.asarray(ids, dtype=np.int64)))
        out._load(preload)
        return out

    @property
    def sample_ids(self) -> list[str]:
        """Per item: ``<file_name>:<right|left>`` (file_name relative to ``images/``)."""
        if self._sample_ids is None:
            self._sample_ids = [f"{self._files[j]}:{'left' if self._left[j] else 'right'}"
                                for j in self.label_ids]
        return self._sample_ids

    def counts(self) -> dict[str, int]:
        """Samples per official split, from the data files alone (0 where a split's
        annotation folder is absent, as in a partial download)."""
        for split in SPLITS:
            if split not in self._counts:
                path = annotation_file(self.root, split, "ego_data")
                self._counts[split] = len(_hands(path)[0]) if path.parent.is_dir() else 0
        return {split: self._counts[split] for split in SPLITS}

    def projection_inside(self) -> float:
        """Fraction of all samples' joints whose frame projection lies in [0, W) x [0, H)."""
        xyz = self.frame_xyz.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = project(self.frame_K, xyz)
        w, h = self.frame_size[:, None, 0], self.frame_size[:, None, 1]
        inside = (xyz[..., 2] > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & \
            (uv[..., 1] >= 0) & (uv[..., 1] < h)
        return float(inside.mean())

    def poses(self) -> np.ndarray:
        """(len, 21, 3) float64 camera-frame joints of every item as the items give them."""
        return mirrored_poses(self.frame_xyz[self.label_ids], self.flipped)

    def joints_valid(self) -> np.ndarray:
        """(len, 21) booleans of every item: the joints with ground truth (FreiHAND order)."""
        return self.joint_valid[self.label_ids].astype(bool)

    def image_paths(self) -> list[Path]:
        return [self.images / self._files[j] for j in self.label_ids]

    def __len__(self) -> int:
        return len(self.label_ids)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        j = int(self.label_ids[i])
        path = self.images / self._files[j]
        frame = decode(path)
        w, h = (int(x) for x in self.frame_size[j])
        if tuple(frame.shape[-2:]) != (h, w):
            raise UserError(f"{path}: is {frame.shape[-1]} x {frame.shape[-2]}, but "
                            f"{annotation_file(self.root, self.split, 'ego_data').name} "
                            f"says {w} x {h}")
        uv = project(self.frame_K[j], self.frame_xyz[j].astype(np.float64))[self.joint_valid[j]]
        return mirrored_crop(frame, uv, bool(self._left[j]), self.margin, self.res)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        j = int(self.label_ids[i])
        return hand_item(image, affine, self.frame_K[j], self.frame_xyz[j], bool(self._left[j]), j,
                         self.joint_valid[j])
