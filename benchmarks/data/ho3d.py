"""HO-3D v3 (Hampali et al., CVPR 2020) hand crops in the official layout.

Layout of ``root`` (the toolkit's ``DB_PATH``; ``shreyashampali/ho3d``, ``utils/vis_utils.py``:
``read_RGB_img``, ``read_annotation``, ``load_pickle_data``; ``pred.py``)::

    train.txt, evaluation.txt        the frame lists, one 'SEQ/%04d' a line
    <split>/<SEQ>/rgb/%04d.jpg       640 x 480 frames (read_RGB_img takes %04d.png first
                                     where it exists, as in v2; so does this loader)
    <split>/<SEQ>/meta/%04d.pkl      Python 2 pickles (protocol 2), read as the toolkit does
                                     with encoding latin1, through ``benchmarks.safe_pickle``
                                     (numpy arrays and plain containers only; nothing runs)

Splits, as the release names them: "train" is ``train.txt`` and "evaluation" is
``evaluation.txt``, each in its file's order (``pred.py`` writes predictions in
``evaluation.txt`` order, so ``toolkit_ids``, the index of an item's line in its list, is its
position in ``pred.json``). Frames on disk that a list does not name are not samples. The
held-out part of "train" is carved by the harness (``ids``), not here. Note that HO-3D's frames
are video: neighbouring frames of one sequence are nearly identical.

- train: meta ``handJoints3D`` (21 x 3, metres, OpenGL camera frame: x right, y up, the hand
  along -z) and ``camMat`` (3 x 3). A frame whose ``handJoints3D`` is None (the toolkit's
  "does not have annotations", ``vis_HO3D.py``) has no hand: skipped and counted
  (``n_skipped``).
- evaluation: no 3D labels. Its meta holds only the root joint, ``handJoints3D`` of shape (3,)
  (the wrist, joint 0 in both orders; ``eval.py``'s ``align_sc_tr`` translates by joint 0,
  "the wrist joint"), ``handBoundingBox`` [x0, y0, x1, y1] in frame pixels and ``camMat``.
  Items carry ``xyz`` and ``uv`` NaN except joint 0 (NaN too where the root is None),
  ``scale`` NaN, and the crop comes from the box (the shared rule applied to its two
  corners), so they still carry the crop's K, ``sample_ids`` and ``toolkit_ids`` for a
  leaderboard export. A frame whose box is None cannot be cropped: skipped and counted, and
  an export must then fill its line itself (``pred.json`` needs every line of
  ``evaluation.txt``).

Geometry: ``project_3D_points`` multiplies the joints by diag(1, -1, -1) (OpenGL -> OpenCV:
x right, y down, z forward) and projects with ``camMat``; ``xyz`` here is that converted
frame, in metres. Joint order (``vis_HO3D.py``'s ``jointsMapManoToSimple``, used as
``handKps[jointsMapManoToSimple]``, and the README's ``joint_order.png``): HO-3D is MANO's
order with the tips appended (0 wrist, index 1-3, middle 4-6, little 7-9, ring 10-12, thumb
13-15, tips 16 thumb, 17 index, 18 middle, 19 ring, 20 little); FreiHAND's joint k is HO-3D's
``HO3D_TO_FREIHAND[k]`` (a gather). HO-3D has right hands only (README: "sequences of right
hand interacting with an object"; the meta has no side field), so nothing is mirrored and
``flipped`` is all False. ``to_leaderboard`` turns FreiHAND-order OpenCV joints back into the
leaderboard's HO-3D order and OpenGL frame (what HandOccNet-style exports do).

Deviations from the toolkit:

- Pixel convention. The toolkit's camMat is a RealSense intrinsics matrix with pixel centres
  at integer coordinates (``showHandJoints`` draws at ``round(uv)``); handbench puts them at
  +0.5, so ``frame_K`` is camMat with cx + 0.5 and cy + 0.5, and the evaluation box corners
  are shifted by +0.5 as well.
- The evaluation crop is the shared rule on the box corners, the train crop the rule on the
  21 projected joints (the contract's rule); the box of the release encloses the hand, so at
  one margin an evaluation crop is somewhat wider around the hand than a train crop.
- Refused with a one-line error naming the file: list lines that are not 'SEQ/%04d' or repeat,
  meta files that are not dicts or lack a key, non-finite or misshapen arrays, a camMat not of
  pinhole form, joints or a root at z >= 0 in OpenGL (behind the camera), boxes with
  x1 <= x0 or y1 <= y0, a missing frame of a sample, a frame of another size than its
  sequence's first, and (train) intrinsics under which the joints leave the frames
  (``camera.check_projection``). Construction reads every meta of the split once (no image
  is decoded; one image header per sequence); ``counts()`` reads the other split's on first
  call.
"""
from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks import safe_pickle
from benchmarks.checked import as_array
from benchmarks.data.base import FrameSet
from benchmarks.data.camera import check_projection, frame_size
from benchmarks.data.crops import MARGIN, check_margin, crop, hand_box
from benchmarks.data.files import check_res, decode, listing, require_dir
from benchmarks.data.freihand import project
from benchmarks.errors import UserError

SPLITS = ("train", "evaluation")
N_JOINTS = 21
HO3D_TO_FREIHAND = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
FREIHAND_TO_HO3D = tuple(int(k) for k in np.argsort(HO3D_TO_FREIHAND))
OPENGL_TO_CV = np.diag([1.0, -1.0, -1.0])          # vis_utils.project_3D_points
PIXEL_CENTRE = 0.5                                 # handbench pixel centre minus the toolkit's
ROOT = 0                                           # the evaluation meta's joint: the wrist
LINE = re.compile(r"[^/\\\s]+/\d+")


def to_leaderboard(xyz: np.ndarray) -> np.ndarray:
    """(..., 21, 3) FreiHAND-order joints in handbench's camera frame (an item's ``xyz``) as
    the HO-3D leaderboard's ``pred.json`` takes them: HO-3D order, OpenGL frame, metres."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz[..., list(FREIHAND_TO_HO3D), :] @ OPENGL_TO_CV


def list_file(root: Path, split: str) -> Path:
    return root / f"{split}.txt"


def read_list(path: Path) -> list[tuple[str, str]]:
    """The (SEQ, frame id) of every line of a frame list, in order (blank lines ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UserError(f"{path}: no such file (HO-3D's frame list)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: unreadable ({getattr(err, 'strerror', None) or err})") from None
    entries, seen = [], {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not LINE.fullmatch(line) or line.split("/")[0] in (".", ".."):
            raise UserError(f"{path}: line {n} is {line[:40]!r}, not 'SEQ/%04d'")
        if line in seen:
            raise UserError(f"{path}: line {n} repeats {line!r} (line {seen[line]})")
        seen[line] = n
        entries.append(tuple(line.split("/")))
    if not entries:
        raise UserError(f"{path}: lists no frames")
    return entries


def _key(meta: dict, key: str, path: Path):
    if key not in meta:
        raise UserError(f"{path}: has no {key!r} entry")
    return meta[key]


def _cam_mat(meta: dict, path: Path) -> np.ndarray:
    K = as_array(_key(meta, "camMat", path), (3, 3), f"{path}: camMat")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[1, 0] or K[0, 1] or \
            np.abs(K[2] - [0, 0, 1]).max() > 1e-9:
        raise UserError(f"{path}: camMat must be a pinhole K [[fx, 0, cx], [0, fy, cy], "
                        f"[0, 0, 1]] with fx, fy > 0")
    K = K.copy()
    K[:2, 2] += PIXEL_CENTRE
    return K


def read_meta(path: Path, split: str):
    """One meta file: None (no hand: skipped), else (frame K in handbench's convention,
    (21, 3) FreiHAND-order OpenCV joints (NaN where unknown), box (4,) or None)."""
    meta = safe_pickle.load(path)
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a pickled dict, got {type(meta).__name__}")
    joints = _key(meta, "handJoints3D", path)
    if split == "train":
        if joints is None:
            return None
        gl = as_array(joints, (N_JOINTS, 3), f"{path}: handJoints3D", "joints (metres)")
        xyz = gl[list(HO3D_TO_FREIHAND)] @ OPENGL_TO_CV
        box = None
    else:
        box = _key(meta, "handBoundingBox", path)
        if box is None:
            return None
        box = as_array(box, (4,), f"{path}: handBoundingBox", "pixels").reshape(4)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise UserError(f"{path}: handBoundingBox must be [x0, y0, x1, y1] with x1 > x0 "
                            f"and y1 > y0, got {box.tolist()}")
        box = box + PIXEL_CENTRE
        xyz = np.full((N_JOINTS, 3), np.nan)
        if joints is not None:
            xyz[ROOT] = as_array(joints, (3,), f"{path}: handJoints3D (the root joint)",
                                 "metres").reshape(3) @ OPENGL_TO_CV
    if (xyz[:, 2] <= 0).any():
        raise UserError(f"{path}: handJoints3D lies at z >= 0 (behind the camera in OpenGL "
                        f"coordinates, where the hand is along -z)")
    return _cam_mat(meta, path), xyz, box


def _scan(root: Path, split: str, workers: int) -> dict:
    """A split's samples from its list and meta files (no image is read)."""
    entries = read_list(list_file(root, split))
    paths = [root / split / seq / "meta" / f"{fid}.pkl" for seq, fid in entries]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        metas = list(pool.map(lambda p: read_meta(p, split), paths))
    kept = [t for t, m in enumerate(metas) if m is not None]
    seqs = sorted({entries[t][0] for t in kept})
    where = {s: q for q, s in enumerate(seqs)}
    stack = (lambda k, shape: np.stack([metas[t][k] for t in kept]) if kept
             else np.zeros(shape))
    return {"entries": entries, "toolkit": np.array(kept, np.int64), "sequences": seqs,
            "seq": np.array([where[entries[t][0]] for t in kept], np.int32),
            "fid": [entries[t][1] for t in kept], "K": stack(0, (0, 3, 3)),
            "xyz": stack(1, (0, N_JOINTS, 3)),
            "box": np.stack([metas[t][2] for t in kept]) if kept and split != "train"
            else None, "n_frames": len(entries)}


class HO3D(FrameSet):
    """One HO-3D v3 split as a torch Dataset of right-hand crops.

    Args:
        root: the HO-3D folder (``train/``, ``evaluation/``, ``train.txt``, ``evaluation.txt``).
        split: "train" or "evaluation".
        res: output crop side in pixels.
        ids: sample indices in [0, n_unique) to use (default all); ``label_id`` keeps the
            full index.
        margin: the shared hand-crop rule's margin.
        preload: decode and crop every item once at construction.
        workers: threads reading the meta files at construction.

    Item: FreiHAND's keys (``image``, ``K`` of the crop, ``xyz`` metres in the OpenCV camera
    frame, FreiHAND order, ``uv``, ``scale``, ``label_id``, ``image_id``); NaN where the split
    has no label (evaluation: all but the root). Attributes: ``sample_ids``, ``flipped`` (all
    False), ``toolkit_ids`` (per item), ``frame_K``, ``frame_xyz``, ``frame_size`` (per
    sample), ``n_unique``, ``n_versions``, ``n_skipped``, ``skipped_reason``, ``labelled``.
    """

    def __init__(self, root: str | Path, split: str, res: int = 224,
                 ids: Sequence[int] | None = None, margin: float = MARGIN,
                 preload: bool = False, workers: int = 8):
        if split not in SPLITS:
            raise UserError(f"HO-3D split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.root = require_dir(Path(root), "HO-3D root")
        self.res, self.margin, self.split = check_res(res), check_margin(margin), split
        self.workers, self.labelled = int(workers), split == "train"
        index = _scan(self.root, split, self.workers)
        self._counts = {split: len(index["toolkit"])}
        self.n_unique, self.n_versions = len(index["toolkit"]), 1
        self.n_skipped = index["n_frames"] - self.n_unique
        why = "handJoints3D None" if self.labelled else "handBoundingBox None"
        self.skipped_reason = (f"{self.n_skipped} of {index['n_frames']} frames of "
                               f"{split}.txt have no hand annotation ({why} in meta/%04d.pkl)")
        if not self.n_unique:
            raise UserError(f"{list_file(self.root, split)}: no HO-3D {split} samples "
                            f"({self.skipped_reason})")
        self.sequences, self._seq, self._fid = index["sequences"], index["seq"], index["fid"]
        self._toolkit, self.frame_K, self.frame_xyz = index["toolkit"], index["K"], index["xyz"]
        self._box = index["box"]
        self._files = self._find_images()
        self.frame_size = self._seq_size[self._seq]
        for size in np.unique(self._seq_size, axis=0):
            at = (self._seq_size[self._seq] == size).all(axis=1)
            xyz = self.frame_xyz[at] if self.labelled else self.frame_xyz[at][:, ROOT:ROOT + 1]
            known = np.isfinite(xyz).all(axis=(1, 2))
            if known.any():
                check_projection(self.frame_K[at][known], xyz[known], tuple(int(v) for v in size),
                                 f"{self.root / split}/*/meta/*.pkl (camMat)", self.root / split)
        self._choose(np.arange(self.n_unique) if ids is None
                     else np.unique(np.asarray(ids, dtype=np.int64)))
        self._load(preload)

    def _find_images(self) -> list[str]:
        """Per sample its frame, relative to ``root`` (%04d.png before %04d.jpg, as
        ``read_RGB_img``); one listing and one image header per sequence."""
        files, sizes = [], {}
        listed: dict[int, set[str]] = {}
        for q, seq in enumerate(self.sequences):
            folder = self.root / self.split / seq / "rgb"
            listed[q] = listing(folder) if folder.is_dir() else set()
        for j in range(self.n_unique):
            q, fid = int(self._seq[j]), self._fid[j]
            name = next((f"{fid}{ext}" for ext in (".png", ".jpg") if f"{fid}{ext}" in listed[q]),
                        None)
            rel = f"{self.split}/{self.sequences[q]}/rgb/{name or fid + '.jpg'}"
            if name is None:
                raise UserError(f"{self.root / rel}: missing (a frame of "
                                f"{list_file(self.root, self.split).name})")
            if q not in sizes:
                sizes[q] = frame_size(self.root / rel)
            files.append(rel)
        self._seq_size = np.array([sizes[q] for q in range(len(self.sequences))],
                                  np.int64).reshape(-1, 2)
        return files

    def _choose(self, chosen: np.ndarray) -> None:
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= self.n_unique:
            raise UserError(f"HO-3D ids must be a non-empty subset of [0, {self.n_unique}) "
                            f"({self.split} under {self.root}), got {chosen.size} ids")
        self.label_ids = chosen
        self.flipped = np.zeros(len(chosen), bool)         # HO-3D has right hands only
        self.toolkit_ids = self._toolkit[chosen]
        self._sample_ids: list[str] | None = None

    def with_ids(self, ids: Sequence[int], preload: bool = False) -> "HO3D":
        """The same split restricted to sample indices ``ids`` (the files are not read again)."""
        out = copy.copy(self)
        out._images, out._affines = None, None
        out._choose(np.unique(np.asarray(ids, dtype=np.int64)))
        out._load(preload)
        return out

    def part(self, ids: Sequence[int], preload: bool = False) -> "HO3D":
        """A set of exactly the samples ``ids`` of this split, re-indexed from 0 (``label_id``
        counts within the part; ``toolkit_ids`` keep each frame's line in the list): the
        harness's fine-tuned, held-out and validation parts of "train"."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        out = copy.copy(self)
        for name in ("_seq", "_toolkit", "frame_K", "frame_xyz", "frame_size"):
            setattr(out, name, getattr(self, name)[ids])
        out._box = None if self._box is None else self._box[ids]
        out._fid = [self._fid[int(j)] for j in ids]
        out._files = [self._files[int(j)] for j in ids]
        out.n_unique = len(ids)
        out._images, out._affines = None, None
        out._choose(np.arange(len(ids)))
        out._load(preload)
        return out

    def sample_sequences(self) -> list[str]:
        """The sequence of every sample of the split (before ``ids``)."""
        return [self.sequences[int(q)] for q in self._seq]

    @property
    def sample_ids(self) -> list[str]:
        """Per item: ``<split>/<SEQ>/rgb/<id>.jpg:right`` (the frame relative to ``root``)."""
        if self._sample_ids is None:
            self._sample_ids = [f"{self._files[j]}:right" for j in self.label_ids]
        return self._sample_ids

    def counts(self) -> dict[str, int]:
        """Samples per official split from the list and meta files alone (0 where a split's
        list is absent, as in a partial download)."""
        for split in SPLITS:
            if split not in self._counts:
                present = list_file(self.root, split).is_file()
                self._counts[split] = len(_scan(self.root, split, self.workers)["toolkit"]) \
                    if present else 0
        return {split: self._counts[split] for split in SPLITS}

    def projection_inside(self) -> float:
        """Fraction of the known joints of all samples (train: all 21; evaluation: the root)
        whose frame projection lies in [0, W) x [0, H)."""
        xyz = self.frame_xyz
        known = np.isfinite(xyz).all(axis=-1)
        if not known.any():
            return float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            uv = project(self.frame_K, xyz)
        w, h = self.frame_size[:, None, 0], self.frame_size[:, None, 1]
        inside = (xyz[..., 2] > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & \
            (uv[..., 1] >= 0) & (uv[..., 1] < h)
        return float(inside[known].mean())

    def poses(self) -> np.ndarray:
        """(len, 21, 3) float64 joints of every item as the items give them."""
        return self.frame_xyz[self.label_ids].astype(np.float64)

    def image_paths(self) -> list[Path]:
        return [self.root / self._files[j] for j in self.label_ids]

    def __len__(self) -> int:
        return len(self.label_ids)

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        j = int(self.label_ids[i])
        path = self.root / self._files[j]
        frame = decode(path)
        w, h = (int(v) for v in self.frame_size[j])
        if tuple(frame.shape[-2:]) != (h, w):
            raise UserError(f"{path}: is {frame.shape[-1]} x {frame.shape[-2]}, but the first "
                            f"frame of its sequence is {w} x {h}")
        if self.labelled:
            points = project(self.frame_K[j], self.frame_xyz[j])
        else:
            points = self._box[j].reshape(2, 2)
        return crop(frame, hand_box(points, self.margin), self.res)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        j = int(self.label_ids[i])
        K = affine @ self.frame_K[j]
        xyz = self.frame_xyz[j]
        scale = np.linalg.norm(xyz[9] - xyz[10]) if self.labelled else math.nan
        return {
            "image": image,
            "K": torch.from_numpy(K).float(),
            "xyz": torch.from_numpy(xyz).float(),
            "uv": torch.from_numpy(project(K, xyz)).float(),
            "scale": torch.tensor(scale, dtype=torch.float32),
            "label_id": torch.tensor(j, dtype=torch.int64),
            "image_id": torch.tensor(j, dtype=torch.int64),
        }
