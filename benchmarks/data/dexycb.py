"""DexYCB (Chao et al., CVPR 2021) hand crops in the official layout, with the toolkit's splits.

Layout of ``root`` (the toolkit's ``DEX_YCB_DIR``; ``NVlabs/dex-ycb-toolkit``,
``dex_ycb_toolkit/dex_ycb.py``)::

    <subject>/<sequence>/meta.yml                   num_frames, serials, mano_sides, ...
    <subject>/<sequence>/<serial>/color_%06d.jpg    640 x 480 frames
    <subject>/<sequence>/<serial>/labels_%06d.npz   joint_3d (1 x 21 x 3, metres, camera
                                                    frame; all -1: no hand), joint_2d, ...
    calibration/intrinsics/<serial>_640x480.yml     color: fx, fy, ppx, ppy

Split rule (``setup`` s0, s1, s2, s3 exactly as ``DexYCBDataset.__init__``; subjects and
serials are indexed in the toolkit's fixed ``_SUBJECTS`` / ``_SERIALS`` lists, i is the index
of a sequence in the sorted sequence folders of its subject):

- s0 (seen subjects, views, objects): train all subjects, i % 5 != 4; val subjects 0-1,
  i % 5 == 4; test subjects 2-9, i % 5 == 4; all 8 serials.
- s1 (unseen subjects): train subjects 0-5 and 9, val subject 6, test subjects 7-8.
- s2 (unseen views): train serials 0-5, val serial 6, test serial 7; all subjects.
- s3 (unseen objects): train i // 5 not in (3, 7, 11, 15, 19), val i // 5 in (3, 19),
  test i // 5 in (7, 11, 15).

The toolkit's sample list is, per sequence in that order, every (serial, frame) with the
serial major (``meshgrid``); ``toolkit_ids`` holds that index per item, the image id of the
toolkit's HPE result file (``hpe_eval.py``). Like ``hpe_eval.py`` a frame whose joint_3d is
all -1 has no hand: it is skipped and counted (``n_skipped``).

Construction reads every ``labels_%06d.npz`` of the chosen split once (only its
``joint_3d`` member, ~0.2 ms a file from a warm local disk: ~2 min for the ~465k files of
s0 train, more on a cold or network disk; ``workers`` threads read the camera folders) and
lists each camera folder once; no image is decoded. ``counts()`` does the same
for the other two splits on first call. Per sample only numpy arrays are kept (joints, and
indices into the sequence / serial tables); ``sample_ids`` are built on first access.

Joints: the toolkit's MANO order is FreiHAND's (0 wrist, thumb 1-4, index 5-8, middle 9-12,
ring 13-16, little 17-20), so no mapping; metres, camera frame (x right, y down, z forward).
A left hand (``mano_sides[0] == 'left'``) is mirrored into a right hand: frame flipped
horizontally (u -> W - u), xyz x -> -x, K's cx -> W - cx (``flipped`` per item).

Deviations from the toolkit:

- Pixel convention. The toolkit's geometry (``sequence_loader.py`` back-projects pixel
  (x, y) as ``K^-1 [x, y, 1]``; RealSense intrinsics) puts pixel centres at integer
  coordinates; handbench puts them at +0.5 (pixel j covers [j, j + 1)). ``frame_K`` is
  therefore the yml's K with ppx + 0.5 and ppy + 0.5, so that uv lands on the pixel the
  toolkit means and the mirror u -> W - u is exact.
- A partial copy is read: absent subject folders are skipped (``missing_subjects``), a
  subject may hold fewer than the toolkit's 100 sequences (the index rule is applied to the
  ones present; more than 100 is refused), only directories count as sequences, and of a
  split's serials only those listed in the sequence's ``meta.yml`` are used (every sequence
  of the full release has all 8 cameras, so there this is the toolkit's list). ``toolkit_ids`` count over the
  same (possibly partial) list.
- Frames must be 640 x 480 (the ``_640x480`` intrinsics); yml is read with ``safe_load``.
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml

from benchmarks.data.base import FrameSet
from benchmarks.data.camera import check_projection
from benchmarks.data.crops import MARGIN, check_margin
from benchmarks.data.files import check_res, decode, listing, require_dir
from benchmarks.data.freihand import project
from benchmarks.data.mirror import hand_item, mirrored_crop, mirrored_poses
from benchmarks.errors import UserError, one_line

SUBJECTS = ("20200709-subject-01", "20200813-subject-02", "20200820-subject-03",
            "20200903-subject-04", "20200908-subject-05", "20200918-subject-06",
            "20200928-subject-07", "20201002-subject-08", "20201015-subject-09",
            "20201022-subject-10")
SERIALS = ("836212060125", "839512060362", "840412060917", "841412060263",
           "932122060857", "932122060861", "932122061900", "932122062010")
SPLITS = ("train", "val", "test")
SETUPS = ("s0", "s1", "s2", "s3")
W, H = 640, 480
N_JOINTS = 21
SEQUENCES_PER_SUBJECT = 100
PIXEL_CENTRE = 0.5          # handbench pixel centre minus the toolkit's (see the docstring)
ALL_SUBJECTS, ALL_SERIALS = tuple(range(10)), tuple(range(8))


def split_rule(setup: str, split: str) -> tuple[tuple[int, ...], tuple[int, ...], object]:
    """(subject indices, serial indices, sequence-index predicate) of the toolkit's rule."""
    if setup not in SETUPS:
        raise UserError(f"DexYCB setup must be one of {', '.join(SETUPS)}, got {setup!r}")
    if split not in SPLITS:
        raise UserError(f"DexYCB split must be one of {', '.join(SPLITS)}, got {split!r}")
    if setup == "s0":
        subjects = {"train": ALL_SUBJECTS, "val": (0, 1), "test": tuple(range(2, 10))}[split]
        return subjects, ALL_SERIALS, ((lambda i: i % 5 != 4) if split == "train"
                                       else (lambda i: i % 5 == 4))
    if setup == "s1":
        subjects = {"train": (0, 1, 2, 3, 4, 5, 9), "val": (6,), "test": (7, 8)}[split]
        return subjects, ALL_SERIALS, lambda i: True
    if setup == "s2":
        return ALL_SUBJECTS, {"train": tuple(range(6)), "val": (6,), "test": (7,)}[split], \
            lambda i: True
    groups = {"val": (3, 19), "test": (7, 11, 15)}
    if split == "train":
        return ALL_SUBJECTS, ALL_SERIALS, lambda i: i // 5 not in (3, 7, 11, 15, 19)
    return ALL_SUBJECTS, ALL_SERIALS, lambda i, g=groups[split]: i // 5 in g


def read_yaml(path: Path) -> dict:
    """A yml file holding a mapping (safe_load), else a one-line UserError naming it."""
    try:
        with open(path, "rb") as f:
            data = yaml.safe_load(f)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UserError(f"{path}: no such file") from None
    except OSError as err:
        raise UserError(f"{path}: unreadable ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({one_line(err)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a YAML mapping, got {type(data).__name__}")
    return data


def _number(x, path: Path, key: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise UserError(f"{path}: {key} must be a finite number, got {x!r}")
    return float(x)


def read_intrinsics(path: Path) -> np.ndarray:
    """The 3x3 K of an intrinsics yml's ``color`` entry, in handbench's pixel convention."""
    color = read_yaml(path).get("color")
    if not isinstance(color, dict):
        raise UserError(f"{path}: expected a 'color' mapping with fx, fy, ppx, ppy")
    fx, fy, ppx, ppy = (_number(color.get(k), path, f"color.{k}")
                        for k in ("fx", "fy", "ppx", "ppy"))
    if fx <= 0 or fy <= 0:
        raise UserError(f"{path}: color.fx and color.fy must be positive, got {fx}, {fy}")
    return np.array([[fx, 0.0, ppx + PIXEL_CENTRE], [0.0, fy, ppy + PIXEL_CENTRE],
                     [0.0, 0.0, 1.0]])


def read_meta(path: Path) -> tuple[int, list[str], str]:
    """(num_frames, serials, hand side) of a sequence's meta.yml."""
    meta = read_yaml(path)
    n = meta.get("num_frames")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UserError(f"{path}: num_frames must be a non-negative integer, got {n!r}")
    serials = meta.get("serials")
    if not isinstance(serials, list) or not all(isinstance(s, (str, int)) and
                                                not isinstance(s, bool) for s in serials):
        raise UserError(f"{path}: serials must be a list of camera serials, got {serials!r}")
    serials = [str(s) for s in serials]
    odd = [s for s in serials if s not in SERIALS]
    if odd:
        raise UserError(f"{path}: serial {odd[0]} is not one of DexYCB's 8 cameras")
    sides = meta.get("mano_sides")
    if not isinstance(sides, list) or not sides or sides[0] not in ("left", "right"):
        raise UserError(f"{path}: mano_sides must be a list starting with 'left' or "
                        f"'right', got {sides!r}")
    return n, serials, sides[0]


def read_joints(path: Path) -> np.ndarray:
    """``joint_3d`` (21, 3) float32 of a labels npz; only that member is read."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise UserError(f"{path}: not an npz archive")
        with npz:
            if "joint_3d" not in npz.files:
                raise UserError(f"{path}: has no joint_3d array")
            joints = npz["joint_3d"]
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise UserError(f"{path}: not a readable npz ({one_line(err)})") from None
    if joints.dtype.kind not in "fiu" or joints.size != N_JOINTS * 3:
        raise UserError(f"{path}: joint_3d must hold 1 x 21 x 3 numbers, got "
                        f"{' x '.join(map(str, joints.shape))} of {joints.dtype}")
    joints = joints.reshape(N_JOINTS, 3).astype(np.float32)
    if not np.isfinite(joints).all():
        raise UserError(f"{path}: joint_3d holds NaN or inf")
    return joints


def frame_count(root: Path, setup: str, split: str) -> int:
    """Frames of a split from its ``meta.yml`` files alone (frames without a hand included):
    what a plan counts before the label files are read."""
    subjects, serials, keep = split_rule(setup, split)
    n = 0
    for s in subjects:
        folder = root / SUBJECTS[s]
        if not folder.is_dir():
            continue
        names = sorted(x for x in os.listdir(folder) if (folder / x).is_dir())
        for i, name in enumerate(names):
            if keep(i):
                n_frames, listed, _ = read_meta(folder / name / "meta.yml")
                n += n_frames * sum(SERIALS[c] in listed for c in serials)
    return n


def _read_camera(cam: Path, n_frames: int) -> np.ndarray:
    """(n_frames, 21, 3) joint_3d of one camera folder of a sequence."""
    joints = [read_joints(cam / f"labels_{f:06d}.npz") for f in range(n_frames)]
    return np.stack(joints) if joints else np.zeros((0, N_JOINTS, 3), np.float32)


def _index(root: Path, setup: str, split: str, workers: int) -> dict:
    """The split's sample table from the annotation files (no image is decoded)."""
    subjects, serials, keep = split_rule(setup, split)
    seq_names: list[str] = []
    blocks = []                          # per camera: (sequence, serial index, frame, toolkit id)
    cams: list[tuple[Path, int]] = []
    sides: list[str] = []
    missing, offset = [], 0
    for s in subjects:
        folder = root / SUBJECTS[s]
        if not folder.is_dir():
            missing.append(SUBJECTS[s])
            continue
        names = sorted(n for n in os.listdir(folder) if (folder / n).is_dir())
        if len(names) > SEQUENCES_PER_SUBJECT:
            raise UserError(f"{folder}: holds {len(names)} sequence folders; DexYCB has "
                            f"{SEQUENCES_PER_SUBJECT} per subject")
        for i, name in enumerate(names):
            if not keep(i):
                continue
            meta_path = folder / name / "meta.yml"
            n_frames, listed, side = read_meta(meta_path)
            used = [c for c in serials if SERIALS[c] in listed]
            q = len(seq_names)
            seq_names.append(f"{SUBJECTS[s]}/{name}")
            sides.append(side)
            for k, c in enumerate(used):
                cam = require_dir(folder / name / SERIALS[c], f"DexYCB camera folder (listed in "
                                                              f"{meta_path})")
                present = listing(cam)
                for f in range(n_frames):
                    for file in (f"color_{f:06d}.jpg", f"labels_{f:06d}.npz"):
                        if file not in present:
                            raise UserError(f"{cam / file}: missing ({n_frames} frames in "
                                            f"{meta_path})")
                f = np.arange(n_frames)
                blocks.append(np.stack([np.full_like(f, q), np.full_like(f, c), f,
                                        offset + k * n_frames + f], 1))
                cams.append((cam, n_frames))
            offset += len(used) * n_frames
    table = np.concatenate(blocks) if blocks else np.zeros((0, 4), np.int64)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        per_camera = list(pool.map(lambda cam: _read_camera(*cam), cams))
    xyz = np.concatenate(per_camera) if per_camera else np.zeros((0, N_JOINTS, 3), np.float32)
    hand = ~(xyz == -1).all(axis=(1, 2))
    behind = np.flatnonzero(hand & (xyz[..., 2] <= 0).any(axis=1))
    if behind.size:
        q, c, f, _ = table[behind[0]]
        raise UserError(f"{root / seq_names[q] / SERIALS[c] / f'labels_{f:06d}.npz'}: joint_3d "
                        f"has joints at z <= 0 (behind the camera)")
    return {"sequences": seq_names, "sides": np.array([x == "left" for x in sides], bool),
            "seq": table[hand, 0].astype(np.int32), "serial": table[hand, 1].astype(np.int8),
            "frame": table[hand, 2].astype(np.int32), "toolkit": table[hand, 3].astype(np.int64),
            "xyz": xyz[hand], "n_frames": len(table), "missing": missing}


class DexYCB(FrameSet):
    """One DexYCB split (of a toolkit setup) as a torch Dataset of right-hand crops.

    Args:
        root: the DexYCB folder (subject folders and ``calibration/``).
        split: "train", "val" or "test".
        res: output crop side in pixels.
        ids: sample indices in [0, n_unique) to use (default all); ``label_id`` keeps the
            full index.
        margin: the shared hand-crop rule's margin.
        preload: decode and crop every item once at construction.
        setup: the toolkit's setup, "s0" (default), "s1", "s2" or "s3".
        workers: threads reading the label files at construction.

    Item: FreiHAND's keys (``image``, ``K`` of the crop, ``xyz`` right-hand metres, ``uv``,
    ``scale``, ``label_id``, ``image_id``). Attributes: ``sample_ids``, ``flipped``,
    ``toolkit_ids`` (per item), ``frame_K``, ``frame_xyz`` (per sample of the split, the
    toolkit's unmirrored camera-frame joints), ``n_unique``, ``n_versions``, ``n_skipped``,
    ``skipped_reason``, ``missing_subjects``.
    """

    def __init__(self, root: str | Path, split: str = "train", res: int = 224,
                 ids: Sequence[int] | None = None, margin: float = MARGIN,
                 preload: bool = False, setup: str = "s0", workers: int = 8):
        split_rule(setup, split)
        self.root = require_dir(Path(root), "DexYCB root")
        self.res, self.margin = check_res(res), check_margin(margin)
        self.setup, self.split, self.workers = setup, split, int(workers)
        index = _index(self.root, setup, split, self.workers)
        self._counts = {split: len(index["xyz"])}
        self.missing_subjects = index["missing"]
        self.sequences = index["sequences"]
        self.n_unique, self.n_versions = len(index["xyz"]), 1
        self.n_skipped = index["n_frames"] - self.n_unique
        self.skipped_reason = (f"{self.n_skipped} of {index['n_frames']} frames have no hand "
                               f"(joint_3d all -1 in labels_%06d.npz)")
        if self.n_unique == 0:
            gone = f"; absent subjects: {', '.join(self.missing_subjects)}" \
                if self.missing_subjects else ""
            raise UserError(f"DexYCB root {self.root}: no {setup} {split} samples "
                            f"({self.skipped_reason}{gone})")
        intr = self.root / "calibration" / "intrinsics"
        used = np.unique(index["serial"])
        self.serial_K = np.full((len(SERIALS), 3, 3), np.nan)
        for c in used:
            self.serial_K[c] = read_intrinsics(intr / f"{SERIALS[c]}_{W}x{H}.yml")
        check_projection(self.serial_K[index["serial"]], index["xyz"].astype(np.float64), (W, H),
                         intr, self.root)
        self._seq, self._serial, self._frame = index["seq"], index["serial"], index["frame"]
        self._toolkit = index["toolkit"]
        self.frame_xyz = index["xyz"]
        self._left = index["sides"][self._seq]

        chosen = np.arange(self.n_unique) if ids is None else \
            np.unique(np.asarray(ids, dtype=np.int64))
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= self.n_unique:
            raise UserError(f"DexYCB ids must be a non-empty subset of [0, {self.n_unique}) "
                            f"({setup} {split} under {self.root}), got {chosen.size} ids")
        self.label_ids = chosen
        self.flipped = self._left[chosen]
        self.toolkit_ids = self._toolkit[chosen]
        self._sample_ids: list[str] | None = None
        self._load(preload)

    def with_ids(self, ids: Sequence[int], preload: bool = False) -> "DexYCB":
        """The same split restricted to sample indices ``ids`` (the index is not read again)."""
        import copy

        chosen = np.unique(np.asarray(ids, dtype=np.int64))
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= self.n_unique:
            raise UserError(f"DexYCB ids must be a non-empty subset of [0, {self.n_unique}) "
                            f"({self.setup} {self.split} under {self.root}), got {chosen.size} ids")
        out = copy.copy(self)
        out.label_ids, out.flipped, out.toolkit_ids = chosen, self._left[chosen], self._toolkit[chosen]
        out._sample_ids, out._images, out._affines = None, None, None
        out._load(preload)
        return out

    def poses(self) -> np.ndarray:
        """(len, 21, 3) float64 camera-frame joints of every item as the items give them
        (left hands mirrored), without decoding images."""
        return mirrored_poses(self.frame_xyz[self.label_ids], self.flipped)

    def image_paths(self) -> list[Path]:
        return [self.root / self._rel(int(j)) for j in self.label_ids]

    @property
    def frame_K(self) -> np.ndarray:
        """(n_unique, 3, 3) intrinsics of each sample's frame (handbench convention)."""
        return self.serial_K[self._serial]

    @property
    def sample_ids(self) -> list[str]:
        """Per item: ``<subject>/<sequence>/<serial>/color_%06d.jpg:<right|left>``."""
        if self._sample_ids is None:
            self._sample_ids = [f"{self._rel(j)}:{'left' if self._left[j] else 'right'}"
                                for j in self.label_ids]
        return self._sample_ids

    def _rel(self, j: int) -> str:
        return (f"{self.sequences[self._seq[j]]}/{SERIALS[self._serial[j]]}/"
                f"color_{self._frame[j]:06d}.jpg")

    def counts(self) -> dict[str, int]:
        """Samples (frames with a hand) per split of this setup, from the label files only."""
        for split in SPLITS:
            if split not in self._counts:
                self._counts[split] = len(_index(self.root, self.setup, split,
                                                 self.workers)["xyz"])
        return {split: self._counts[split] for split in SPLITS}

    def projection_inside(self) -> float:
        """Fraction of all samples' joints whose frame projection lies in [0, W) x [0, H)."""
        uv = project(self.frame_K, self.frame_xyz.astype(np.float64))
        inside = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
        return float(inside.mean())

    def __len__(self) -> int:
        return len(self.label_ids)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        j = int(self.label_ids[i])
        path = self.root / self._rel(j)
        frame = decode(path)
        if tuple(frame.shape[-2:]) != (H, W):
            raise UserError(f"{path}: is {frame.shape[-1]} x {frame.shape[-2]}, but the "
                            f"DexYCB intrinsics ({W}x{H}.yml) are for {W} x {H}")
        uv = project(self.serial_K[self._serial[j]], self.frame_xyz[j].astype(np.float64))
        return mirrored_crop(frame, uv, bool(self._left[j]), self.margin, self.res)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        j = int(self.label_ids[i])
        return hand_item(image, affine, self.serial_K[self._serial[j]], self.frame_xyz[j],
                         bool(self._left[j]), j)
