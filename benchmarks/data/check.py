"""``bench data check``: a real data set's root validated before a long job.

It opens every split the suite reads (the readers' own checks: layout, counts, labels, the
intrinsics against the frames), reads every image header and decodes a sample, prints the
counts per split and the share of joints that project inside their frames, and writes a
contact sheet: a few training items as the network sees them, with their 2D keypoints and
bones drawn (wrist white; thumb red, index orange, middle green, ring blue, little violet), so
that a joint order or a left-hand flip gone wrong is visible at a glance.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.data.camera import outside_fraction
from benchmarks.data.sets import (ASSEMBLYHANDS_SPLITS, DEXYCB_SPLITS, FREIHAND_SPLITS, leaderboard_split,
                                  open_labelled)
from benchmarks.errors import UserError
from benchmarks.synth.preview import annotate

HO3D_NAMES = {"train": "train (fine-tuned part)", "val": "train-val", "eval": "train-heldout"}
SHEET_ITEMS = 12
SHEET_RES = 128
COLUMNS = 4


def check(cfg, sheet: Path, say=print) -> dict[str, int]:
    """Validate ``cfg.data`` (a real set with ``data.root``); returns samples per split."""
    d = cfg.data
    if d.name == "synthetic":
        raise UserError("bench data check reads a real data set: give data=freihand, "
                        "data=dexycb, data=ho3d or data=assemblyhands and data.root=DIR")
    sheet = _sheet_path(sheet)
    root = Path(os.path.expanduser(d.root))
    splits = {"dexycb": DEXYCB_SPLITS, "ho3d": HO3D_NAMES,
              "assemblyhands": ASSEMBLYHANDS_SPLITS}.get(d.name, FREIHAND_SPLITS)
    counts = {}
    opened = {}
    for which, official in splits.items():
        ds = open_labelled(cfg, root, which)
        ds.verify()
        opened[which] = ds
        counts[official] = len(ds)
        extra = f", {ds.skipped_reason}" if getattr(ds, "n_skipped", 0) else ""
        images = f" ({ds.n_unique} ids x {ds.n_versions} versions)" if ds.n_versions > 1 else ""
        inside = 1.0 - _outside(ds)
        say(f"{d.name} {official}: {len(ds)} samples{images}{extra}; "
            f"{100 * inside:.1f} % of joints project inside their frames")
    board = leaderboard_split(cfg)
    if board is not None:
        board.verify()
        counts["evaluation"] = len(board)
        extra = f", {board.skipped_reason}" if board.n_skipped else ""
        say(f"{d.name} evaluation (no public labels: predicted for the leaderboard): "
            f"{len(board)} samples{extra}")
    _contact_sheet(opened["train"], sheet, d.name)
    say(f"contact sheet: {sheet}")
    return counts


def _outside(ds) -> float:
    if hasattr(ds, "projection_inside"):             # full-frame sets: per-sample intrinsics
        return 1.0 - ds.projection_inside()
    from benchmarks.data.camera import frame_size

    size = frame_size(ds.rgb / "00000000.jpg")
    return outside_fraction(ds.K, ds.xyz, size)


def _contact_sheet(ds, path: Path, name: str) -> None:
    rng = np.random.default_rng(0)
    picks = sorted(rng.choice(len(ds), size=min(SHEET_ITEMS, len(ds)), replace=False).tolist())
    rows = math.ceil(len(picks) / COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * SHEET_RES, rows * (SHEET_RES + 14)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(picks):
        item = ds[i]
        tile = Image.fromarray(item["image"].permute(1, 2, 0).numpy()).resize((SHEET_RES, SHEET_RES))
        uv = (item["uv"].numpy() * SHEET_RES / item["image"].shape[-1]).tolist()
        x, y = (k % COLUMNS) * SHEET_RES, (k // COLUMNS) * (SHEET_RES + 14)
        sheet.paste(annotate(tile, uv), (x, y))
        flipped = bool(item.get("flipped", 0))
        draw.text((x + 3, y + SHEET_RES + 1), f"{name} #{int(item['label_id'])}"
                  + (" (left, mirrored)" if flipped else ""), fill=(235, 235, 235))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        sheet.save(tmp, format="PNG")
        tmp.replace(path)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _sheet_path(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"--sheet {path}: the contact sheet is a PNG; give a name ending in .png")
    if path.is_dir():
        raise UserError(f"--sheet {path}: a folder; give the .png file to write")
    if not path.parent.is_dir():
        raise UserError(f"--sheet {path}: its folder {path.parent} does not exist")
    return path
