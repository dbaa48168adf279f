"""FreiHAND (Zimmermann et al., ICCV 2019) in its official layout, and its seeded splits.

Layout of ``root``::

    training/rgb/%08d.jpg           image id = idx + N * k, k the version (official: N = 32560,
                                    4 versions: green screen, homogenised, sample, auto)
    training_xyz.json               N x 21 x 3 joints, camera frame, metres
    training_K.json                 N x 3 x 3 intrinsics of the frame
    training_scale.json             N metric lengths of the middle MCP -> PIP bone (joints 9, 10)
    training_meta.json              optional (synthetic sets): N x {gesture, viewpoint}
    evaluation/rgb/%08d.jpg         and evaluation_{xyz,K,scale}.json (one version)

The number of versions V is checked against what the set records, and ``rgb/`` must hold
exactly N x V images, so that stale images left by an older set are refused:

- a synthetic lab set (``synth.json`` with kind "lab", written by ``benchmarks.synth``) has
  one version per id in both splits, and N must be its recorded ``n`` (training) or
  ``eval_n`` (evaluation);
- the official release has 4 training versions (``OFFICIAL_VERSIONS``) of 32,560 ids and one
  evaluation version; another training folder without ``synth.json`` (a subset of the
  release) may hold 1 to 4 versions, V = (images in rgb/) / N, which must be whole.

Joint order:
0 wrist, thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20. Projection:
``uv_h = K @ xyz``, ``uv = uv_h[:2] / uv_h[2]`` in pixels (x right, y down, pixel (row i,
col j) covering [j, j+1) x [i, i+1)).

Fine-tuning and evaluation see the whole frame resized to ``res`` (FreiHAND frames are
already hand-centred 224 x 224 crops), so no ground truth leaks into the input. As a
pre-training source (``crop_margin`` set) the frame is cut by the shared hand-crop rule
around the ground-truth 2D keypoints, as PeCLR does.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.data.base import FrameSet
from benchmarks.data.camera import check_projection, frame_size
from benchmarks.config import FREIHAND_EVAL_DOWNLOAD as EVAL_DOWNLOAD
from benchmarks.data.crops import check_margin, hand_crop
from benchmarks.checked import as_array, read_json, require_list
from benchmarks.data.files import (check_res, count_numbered, decode, listing, require_dir,
                                   require_files, resize, same_count)
from benchmarks.errors import UserError

SPLITS = {"train": "training", "eval": "evaluation"}
N_JOINTS = 21
OFFICIAL_VERSIONS = ("gs", "hom", "sample", "auto")    # green screen, homogenised, sample, auto
OFFICIAL_TRAIN_IDS = 32560
SYNTH_VERSIONS = 1                  # benchmarks.synth.products writes one image per lab id
SYNTH_COUNT_KEY = {"training": "n", "evaluation": "eval_n"}


def recorded_versions(root: Path, prefix: str, n: int, labels: Path) -> tuple[int | None, str]:
    """(V, where V comes from) for the ``prefix`` split of ``root`` with ``n`` ids in
    ``labels``; V is None where only the image count can tell (1 to 4 versions)."""
    record = root / "synth.json"
    if record.exists():
        info = read_json(record)
        if not isinstance(info, dict):
            raise UserError(f"{record}: expected a JSON object, got {type(info).__name__}")
        if info.get("kind") == "lab":
            want = info.get(SYNTH_COUNT_KEY[prefix])
            if isinstance(want, int) and want != n:
                raise UserError(f"{labels}: holds {n} ids but {record.name} records "
                                f"{SYNTH_COUNT_KEY[prefix]}={want}; the labels are stale")
            return SYNTH_VERSIONS, f"{record.name} (a synthetic lab set: 1 version per id)"
    if prefix == "evaluation":
        return 1, "the FreiHAND layout (1 evaluation version per id)"
    if n == OFFICIAL_TRAIN_IDS:
        return len(OFFICIAL_VERSIONS), (f"the official FreiHAND release "
                                        f"({len(OFFICIAL_VERSIONS)} versions per id)")
    return None, "the FreiHAND layout"


def _noun(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def project(K: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Pixel coordinates (..., 21, 2) of camera-frame points (..., 21, 3) under K (..., 3, 3)."""
    uvw = xyz @ np.swapaxes(K, -1, -2)
    return uvw[..., :2] / uvw[..., 2:]


def split_ids(n_unique: int, val_fraction: float, label_fraction: float, seed: int
              ) -> tuple[list[int], list[int]]:
    """Seeded split of FreiHAND's unique ids into (labelled training ids, validation ids).

    One seeded permutation of ``range(n_unique)``: its first ``round(val_fraction * n)`` ids
    (at least one when ``val_fraction > 0``) are held out for validation, and the first
    ``max(1, round(label_fraction * rest))`` of the remaining ones are the labelled training
    ids. The split is over unique ids, so all versions of an id fall on the same side; the
    validation ids do not depend on ``label_fraction``, and for one seed a smaller label
    fraction is a subset of a larger one. Both lists are sorted.
    """
    if n_unique < 1:
        raise UserError(f"split_ids needs at least one id, got n_unique={n_unique}")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not 0.0 < label_fraction <= 1.0:
        raise UserError(f"label_fraction must be in (0, 1], got {label_fraction}")
    n_label, n_val = split_sizes(n_unique, val_fraction, label_fraction)
    order = np.random.default_rng(seed).permutation(n_unique)
    return sorted(order[n_val:n_val + n_label].tolist()), sorted(order[:n_val].tolist())


def split_sizes(n_unique: int, val_fraction: float, label_fraction: float) -> tuple[int, int]:
    """(labelled training ids, validation ids) that :func:`split_ids` gives for ``n_unique``
    ids; what a plan counts before the data are opened."""
    n_val = max(1, round(val_fraction * n_unique)) if val_fraction > 0 else 0
    if n_val >= n_unique:
        raise UserError(f"val_fraction={val_fraction} leaves no training ids out of {n_unique}")
    return max(1, round(label_fraction * (n_unique - n_val))), n_val


class FreiHAND(FrameSet):
    """One FreiHAND split as a torch Dataset of dicts of tensors.

    Args:
        root: the folder holding ``training/``, ``evaluation/`` and the JSON files.
        split: "train" (``training*``) or "eval" (``evaluation*``).
        res: output image side in pixels.
        ids: unique label ids to use (default all); every chosen version of each id is an item.
        versions: "all" or a sequence of version indices k in [0, V).
        crop_margin: None for the whole frame resized (fine-tuning, evaluation); a margin for
            the pre-training hand crop around the ground-truth keypoints (see ``crops``).
        preload: decode every image once at construction.

    Item: ``image`` uint8 (3, res, res); ``K`` float32 (3, 3) of the output image; ``xyz``
    float32 (21, 3) metres; ``uv`` float32 (21, 2) output-image pixels (``project(K, xyz)``);
    ``scale`` float32 (), metres; ``label_id`` int64 (idx); ``image_id`` int64 (idx + N * k).
    """

    def __init__(self, root: str | Path, split: str = "train", res: int = 224,
                 ids: Sequence[int] | None = None, versions: str | Sequence[int] = "all",
                 crop_margin: float | None = None, preload: bool = False):
        if split not in SPLITS:
            raise UserError(f"FreiHAND split must be one of {sorted(SPLITS)}, got {split!r}")
        self.root = require_dir(Path(root), "FreiHAND root")
        self.res = check_res(res)
        self.crop_margin = None if crop_margin is None else check_margin(crop_margin)
        prefix = SPLITS[split]
        self.rgb = require_dir(self.root / prefix / "rgb", "FreiHAND image folder")

        files = {k: self.root / f"{prefix}_{k}.json" for k in ("xyz", "K", "scale")}
        if prefix == "evaluation" and not files["xyz"].is_file():
            raise UserError(f"{files['xyz']}: no such file: the evaluation labels come in "
                            f"FreiHAND's separate evaluation download ({EVAL_DOWNLOAD}), not "
                            f"the main one; unpack it into {self.root}")
        raw = {k: require_list(read_json(p), p) for k, p in files.items()}
        n = same_count({files[k]: len(raw[k]) for k in files})
        if n == 0:
            raise UserError(f"{files['xyz']}: holds no samples")
        self.xyz = as_array(raw["xyz"], (n, N_JOINTS, 3), files["xyz"])
        self.K = as_array(raw["K"], (n, 3, 3), files["K"])
        self.scale = as_array(raw["scale"], (n,), files["scale"])
        meta_path = self.root / f"{prefix}_meta.json"
        self.meta: list | None = None
        if meta_path.exists():
            self.meta = require_list(read_json(meta_path), meta_path)
            same_count({files["xyz"]: n, meta_path: len(self.meta)})

        present = listing(self.rgb)
        n_images = count_numbered(present)
        if n_images == 0 and (pngs := sum(name.endswith(".png") for name in present)):
            raise UserError(f"{self.rgb}: holds {_noun(pngs, 'PNG image')} but no %08d.jpg: the "
                            f"FreiHAND layout names its frames 00000000.jpg, ...; convert them to "
                            f"JPEG with those names")
        n_versions, source = recorded_versions(self.root, prefix, n, files["xyz"])
        if n_versions is not None and n_images != n * n_versions:
            raise UserError(f"{self.rgb}: holds {_noun(n_images, 'image')} but {source} "
                            f"needs {n} ids in {files['xyz'].name} x "
                            f"{_noun(n_versions, 'version')} = {n * n_versions} images")
        if n_versions is None:
            if n_images == 0 or n_images % n:
                raise UserError(f"{self.rgb}: holds {_noun(n_images, 'image')}, not a whole "
                                f"multiple of the {n} samples in {files['xyz'].name}")
            n_versions = n_images // n
            if n_versions > len(OFFICIAL_VERSIONS):
                raise UserError(f"{self.rgb}: holds {n_images} images = {n_versions} versions of "
                                f"the {n} ids in {files['xyz'].name}, but FreiHAND has at most "
                                f"{len(OFFICIAL_VERSIONS)} versions per id")
        self.n_unique, self.n_versions = n, n_versions
        require_files(self.rgb, [f"{i:08d}.jpg" for i in range(n_images)], present)
        # FreiHAND frames are hand-centred crops: the joints must land in them, around the centre
        check_projection(self.K, self.xyz, frame_size(self.rgb / "00000000.jpg"), files["K"],
                         self.rgb, centred=True)

        chosen = np.arange(n) if ids is None else np.unique(np.asarray(ids, dtype=np.int64))
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= n:
            raise UserError(f"FreiHAND ids must be a non-empty subset of [0, {n}) "
                            f"({files['xyz'].name}), got {chosen.size} ids")
        if isinstance(versions, str):
            ks = list(range(self.n_versions)) if versions == "all" else []
        else:
            ks = sorted({int(k) for k in versions})
        if not ks or min(ks) < 0 or max(ks) >= self.n_versions:
            raise UserError(f"FreiHAND versions must be 'all' or indices in [0, {self.n_versions})"
                            f" for {self.rgb}, got {versions!r}")
        self.image_ids = np.sort(np.concatenate([chosen + n * k for k in ks]))
        self._load(preload)

    def __len__(self) -> int:
        return len(self.image_ids)

    def poses(self) -> np.ndarray:
        """(len, 21, 3) float64 camera-frame joints of every item, without decoding images."""
        return self.xyz[self.image_ids % self.n_unique].astype(np.float64)

    def image_paths(self) -> list[Path]:
        return [self.rgb / f"{int(i):08d}.jpg" for i in self.image_ids]

    def _render(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        image_id = int(self.image_ids[i])
        frame = decode(self.rgb / f"{image_id:08d}.jpg")
        if self.crop_margin is None:
            return resize(frame, self.res)
        idx = image_id % self.n_unique
        return hand_crop(frame, project(self.K[idx], self.xyz[idx]), self.res, self.crop_margin)

    def _item(self, i: int, image: torch.Tensor, affine: np.ndarray) -> dict[str, torch.Tensor]:
        image_id = int(self.image_ids[i])
        idx = image_id % self.n_unique
        K = affine @ self.K[idx]
        return {
            "image": image,
            "K": torch.from_numpy(K).float(),
            "xyz": torch.from_numpy(self.xyz[idx]).float(),
            "uv": torch.from_numpy(project(K, self.xyz[idx])).float(),
            "scale": torch.tensor(self.scale[idx], dtype=torch.float32),
            "label_id": torch.tensor(idx, dtype=torch.int64),
            "image_id": torch.tensor(image_id, dtype=torch.int64),
        }
