"""Writers of the three synthetic products, in the real data sets' layouts.

- ``lab``: FreiHAND layout. ``training/rgb/%08d.jpg``, ``training_xyz.json`` (N x 21 x 3,
  metres, camera frame), ``training_K.json`` (N x 3 x 3), ``training_scale.json`` (N floats,
  |xyz[9] - xyz[10]|), the same four for ``evaluation``, and side files
  ``{training,evaluation}_meta.json``: [{"gesture": name, "viewpoint": [az, el]}] (degrees).
  One image version per id (FreiHAND has four).
- ``wild``: ``rgb/%08d.jpg``, ``wild_uv.json`` (N x 21 x 2 pixels: x right, y down, pixel
  (i, j) covers [j, j+1) x [i, i+1)), ``wild_meta.json``, and the 3D labels that only
  ``synthetic3d`` pre-training reads: ``wild_xyz.json`` (N x 21 x 3 metres, camera frame)
  and ``wild_K.json`` (N x 3 x 3 frame intrinsics).
- ``triplets``: ``rgb/%08d_{l,c,r}.jpg``, ``triplets.json`` ([{"gesture": class index,
  "gesture_name", "viewpoint": [[az, el] x 3], "split": "train" | "test", "hand": id}]) and
  ``gestures.json`` (class names in index order). Four consecutive triplets show one hand;
  about a quarter of the hands (never fewer than one when there are two or more) are held
  out as the test split.

Every folder gets ``synth.json`` ({kind, n, res, seed, version[, eval_n, world]}) written
last, so a folder without it is incomplete. The whole set is written into a temporary sibling
folder (``.<out>.*.tmp``) and renamed onto the output folder only when complete, so a killed
generation leaves no half set there; an output folder that exists and is not empty is refused
and left untouched. Scenes are drawn in chunks of ``CHUNK`` from generators seeded by (seed,
stream, chunk index), so the first k items do not depend on n, and the files are written in
a fixed order with fixed JPEG settings: the same arguments give byte-identical files.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from benchmarks.errors import UserError
from benchmarks.config import SYNTH_VERSION as VERSION
from benchmarks.synth.hand import GESTURES
from benchmarks.synth.scene import (LAB, TRIPLET, WILD, WORLDS, Rendered, Scenes,
                                    render_scenes, sample_scenes, sample_triplets)

KINDS = ("lab", "wild", "triplets")
CHUNK = 64                  # scenes sampled per generator
HANDS_PER_TRIPLET_GROUP = 4
TEST_FRACTION = 0.25
JPEG_QUALITY = 92
MIN_RES = 32
# At most this many pixels a side: 4.6x FreiHAND's 224 px (2x HO3D's 640 px width), far above
# any network input here. Rendering holds float tensors of CHUNK x res x res per channel and
# pass: at 1024 a chunk's RGB buffer is already 64 * 1024**2 * 3 * 4 B = 0.8 GB, several alive
# at once; res=100000 would ask for terabytes (a traceback or an OOM kill, not an error line).
MAX_RES = 1024
# At most this many items (lab: training ids, and evaluation ids separately; triplets: three
# images each): 30x FreiHAND's 32,560 training ids. At res 128 a million lab ids take about
# 6 GB of JPEGs, 1 GB of label JSON (held in memory as Python lists until written: a few GB)
# and an hour of CPU rendering; far beyond that a typo (``--n 100000000``) is likelier than a need.
MAX_ITEMS = 1_000_000
IMAGES_PER_ITEM = {"lab": 1, "wild": 1, "triplets": 3}
# Upper estimates of the bytes written, from sets generated at res 32-256 (JPEG quality 92:
# 1.0-1.6 KB per image at 32 px, 3.3-5.2 KB at 128, 8.8-16 KB at 256; labels about 1.1 KB an
# item): a request whose estimate exceeds the free space is refused before anything is written.
JPEG_BYTES_FIXED, JPEG_BYTES_PER_PIXEL, LABEL_BYTES_PER_ITEM = 1024, 0.3, 1536


def generator(seed: int, stream: str, chunk: int) -> torch.Generator:
    """A CPU generator for one chunk of one stream, seeded by a hash of all three."""
    digest = hashlib.sha256(f"handbench-synth/{seed}/{stream}/{chunk}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _save_jpeg(image: Tensor, path: Path) -> None:
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, format="JPEG",
                                                          quality=JPEG_QUALITY)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, separators=(",", ":")))


def _rounded(x: Tensor, digits: int) -> list:
    return torch.round(x.double(), decimals=digits).tolist()


def _chunks(n: int, stream: str, seed: int) -> Iterator[tuple[int, int, torch.Generator]]:
    """(first index, count, generator) of the chunks covering n items."""
    for c in range(math.ceil(n / CHUNK)):
        yield c * CHUNK, min(CHUNK, n - c * CHUNK), generator(seed, stream, c)


Chunk = tuple[int, Scenes, Rendered]


def lab_chunks(split: str, n: int, res: int, seed: int,
               device: str | torch.device = "cpu", world: str = "capture") -> Iterator[Chunk]:
    """(first index, scenes, rendering) of the lab split ("training" or "evaluation"), with
    viewpoints from ``scene.VIEWPOINTS[world]``."""
    for start, count, gen in _chunks(n, f"lab/{split}", seed):
        sc = sample_scenes(CHUNK, LAB, res, gen, world=world).select(torch.arange(count))
        yield start, sc, render_scenes(sc, res, gen, device)


def wild_chunks(n: int, res: int, seed: int, device: str | torch.device = "cpu"
                ) -> Iterator[Chunk]:
    """(first index, scenes, rendering) of the wild set."""
    for start, count, gen in _chunks(n, "wild", seed):
        sc = sample_scenes(CHUNK, WILD, res, gen).select(torch.arange(count))
        yield start, sc, render_scenes(sc, res, gen, device)


def triplet_chunks(n: int, res: int, seed: int, device: str | torch.device = "cpu"
                   ) -> Iterator[Chunk]:
    """(first triplet index, scenes, rendering) of the triplets; scenes and images are
    ordered (left, centre, right) per triplet."""
    hand_of = torch.arange(CHUNK) // HANDS_PER_TRIPLET_GROUP
    for start, count, gen in _chunks(n, "triplets", seed):
        sc = sample_triplets(CHUNK, TRIPLET, res, gen, hand_of=hand_of)
        sc = sc.select(torch.arange(3 * count))
        yield start, sc, render_scenes(sc, res, gen, device)


def _meta(sc: Scenes) -> list[dict]:
    return [{"gesture": GESTURES[g], "viewpoint": vp}
            for g, vp in zip(sc.gesture.tolist(), _rounded(sc.viewpoints(), 3))]


def _write_freihand_split(root: Path, split: str, n: int, res: int, seed: int,
                          device: str | torch.device, world: str) -> None:
    rgb = root / split / "rgb"
    rgb.mkdir(parents=True, exist_ok=True)
    xyz, K, meta = [], [], []
    for start, sc, out in lab_chunks(split, n, res, seed, device, world):
        for i in range(len(sc)):
            _save_jpeg(out.images[i], rgb / f"{start + i:08d}.jpg")
        xyz += _rounded(out.xyz, 6)
        K += _rounded(sc.K, 4)
        meta += _meta(sc)
    scale = [round(math.dist(j[9], j[10]), 7) for j in xyz]
    _write_json(root / f"{split}_xyz.json", xyz)
    _write_json(root / f"{split}_K.json", K)
    _write_json(root / f"{split}_scale.json", scale)
    _write_json(root / f"{split}_meta.json", meta)


def _write_wild(root: Path, n: int, res: int, seed: int, device: str | torch.device) -> None:
    rgb = root / "rgb"
    rgb.mkdir(parents=True, exist_ok=True)
    uv, xyz, K, meta = [], [], [], []
    for start, sc, out in wild_chunks(n, res, seed, device):
        for i in range(len(sc)):
            _save_jpeg(out.images[i], rgb / f"{start + i:08d}.jpg")
        uv += _rounded(out.uv, 3)
        xyz += _rounded(out.xyz, 6)
        K += _rounded(sc.K, 4)
        meta += _meta(sc)
    _write_json(root / "wild_uv.json", uv)
    _write_json(root / "wild_xyz.json", xyz)
    _write_json(root / "wild_K.json", K)
    _write_json(root / "wild_meta.json", meta)


def held_out_hands(n_hands: int, seed: int) -> set[int]:
    """Hand ids held out for the triplets' test split: a seeded quarter, at least one hand
    when there are two or more."""
    n_test = max(1, round(TEST_FRACTION * n_hands)) if n_hands >= 2 else 0
    order = torch.randperm(n_hands, generator=generator(seed, "triplets/split", 0))
    return set(order[:n_test].tolist())


def _write_triplets(root: Path, n: int, res: int, seed: int, device: str | torch.device) -> None:
    rgb = root / "rgb"
    rgb.mkdir(parents=True, exist_ok=True)
    held_out = held_out_hands(math.ceil(n / HANDS_PER_TRIPLET_GROUP), seed)
    records = []
    for start, sc, out in triplet_chunks(n, res, seed, device):
        views = _rounded(sc.viewpoints(), 3)
        for i in range(len(sc) // 3):
            for k, side in enumerate("lcr"):
                _save_jpeg(out.images[3 * i + k], rgb / f"{start + i:08d}_{side}.jpg")
            g = int(sc.gesture[3 * i])
            hand = (start + i) // HANDS_PER_TRIPLET_GROUP
            records.append({"gesture": g, "gesture_name": GESTURES[g],
                            "viewpoint": views[3 * i:3 * i + 3],
                            "split": "test" if hand in held_out else "train", "hand": hand})
    _write_json(root / "triplets.json", records)
    _write_json(root / "gestures.json", list(GESTURES))


def _count(value: object, what: str) -> int:
    """``value`` if it is an integer in [1, MAX_ITEMS], else a one-line UserError."""
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or not 1 <= value <= MAX_ITEMS):
        raise UserError(f"{what} must be a whole number of items from 1 to {MAX_ITEMS:,}, "
                        f"got {value!r}")
    return int(value)


def estimated_bytes(kind: str, n: int, res: int, eval_n: int = 0) -> int:
    """An upper estimate of the bytes a product of ``n`` (+ ``eval_n``) items takes on disk."""
    items = n + eval_n
    per_image = JPEG_BYTES_FIXED + JPEG_BYTES_PER_PIXEL * res * res
    return int(items * (IMAGES_PER_ITEM[kind] * per_image + LABEL_BYTES_PER_ITEM))


def _check_out(out: Path) -> Path:
    """The folder to rename the finished set onto: ``out`` (a symlink to a folder: its
    target), which must not exist or be an empty folder; else a one-line UserError."""
    out = Path(os.path.realpath(out) if out.is_symlink() and out.is_dir()
               else os.path.abspath(out))
    if out.is_dir():
        try:
            with os.scandir(out) as entries:
                if next(entries, None) is not None:
                    raise UserError(f"{out}: output folder is not empty; synthetic data are "
                                    f"written only into a new or empty folder (remove it or "
                                    f"choose another)")
        except OSError as err:
            raise UserError(f"{out}: output folder unreadable ({err.strerror or err})") from None
    elif out.exists() or out.is_symlink():
        raise UserError(f"{out}: exists and is not a folder; synthetic data need a new or "
                        f"empty output folder")
    return out


def _check_space(out: Path, need: int) -> None:
    """Refuse a set whose estimated size exceeds the free space where ``out`` will be."""
    place = out.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        free = shutil.disk_usage(place).free
    except OSError:
        return                                  # unknown: the write itself will tell
    if need > free:
        raise UserError(f"{out}: the requested set needs about {need / 1e9:.1f} GB but only "
                        f"{free / 1e9:.1f} GB are free on {place}")


def _private_sibling(out: Path) -> Path:
    """A new empty folder next to ``out`` (same file system, so a rename moves it), with the
    permissions a plain mkdir would give (mkdtemp's 0700 would hide a shared cache)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)
    return tmp


def _rename_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` onto ``out``: a rename replaces an empty folder in one
    step and fails, leaving it as it is, on one that filled up meanwhile."""
    try:
        os.rename(tmp, out)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise UserError(f"{out}: output folder was filled by something else while the set "
                            f"was generated; it is left as it is") from None
        if err.errno in (errno.ENOTDIR, errno.EISDIR):
            raise UserError(f"{out}: replaced by a file while the set was generated; it is "
                            f"left as it is") from None
        raise


def generate(kind: str, out: Path, n: int, res: int, seed: int, eval_n: int | None = None,
             *, device: str | torch.device = "cpu", world: str = "capture") -> Path:
    """Write the synthetic product ``kind`` ("lab", "wild" or "triplets") with ``n`` items of
    ``res`` x ``res`` pixels into ``out`` (a new or empty folder; written to a temporary
    sibling and renamed onto it when complete) and return ``out``. ``eval_n``: size of the
    lab evaluation split, default max(16, n // 4). ``world`` (lab only): the viewpoint
    distribution, ``capture`` (FreiHAND-like) or ``sphere`` (every direction and roll; see
    ``scene.VIEWPOINTS``). Same arguments, same bytes (on one device type). Raises
    ``UserError``, before anything is written, for a bad kind or world, n or eval_n outside
    [1, MAX_ITEMS], res outside [MIN_RES, MAX_RES], an output path that is a non-empty folder or not a folder,
    or an estimated size (``estimated_bytes``) beyond the free disk space."""
    if world not in WORLDS:
        raise UserError(f"unknown synthetic world {world!r}; choose one of: {', '.join(WORLDS)}")
    if kind not in KINDS:
        raise UserError(f"unknown synthetic data kind {kind!r}; choose from {', '.join(KINDS)}")
    n = _count(n, "synthetic data n")
    if not isinstance(res, (int, np.integer)) or isinstance(res, bool) or res < MIN_RES:
        raise UserError(f"synthetic images need res >= {MIN_RES} pixels, got {res!r}")
    if res > MAX_RES:
        raise UserError(f"synthetic images need res <= {MAX_RES} pixels, got {res!r} "
                        f"(FreiHAND's are 224)")
    res = int(res)
    if eval_n is not None:
        eval_n = _count(eval_n, "the evaluation split eval_n")
    n_eval = (max(16, n // 4) if eval_n is None else eval_n) if kind == "lab" else 0
    target = _check_out(Path(out))
    _check_space(target, estimated_bytes(kind, n, res, n_eval))
    info: dict[str, object] = {"kind": kind, "n": n, "res": res, "seed": seed,
                               "version": VERSION}
    tmp, done = _private_sibling(target), False
    try:
        with torch.inference_mode():
            if kind == "lab":
                _write_freihand_split(tmp, "training", n, res, seed, device, world)
                _write_freihand_split(tmp, "evaluation", n_eval, res, seed, device, world)
                info["eval_n"] = n_eval
                info["world"] = world
            elif kind == "wild":
                _write_wild(tmp, n, res, seed, device)
            else:
                _write_triplets(tmp, n, res, seed, device)
        _write_json(tmp / "synth.json", info)
        _rename_into_place(tmp, target)
        done = True
    finally:
        if not done:                                # a failed or interrupted generation
            shutil.rmtree(tmp, ignore_errors=True)
    return Path(out)
