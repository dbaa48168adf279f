"""The labelled data sets that fine-tuning and evaluation read (``data.name``): which reader
opens each, and which of its official splits are trained on, held out and scored.

| data.name | reader | fine-tuned on | validation (``data.val_fraction`` > 0) | scored on |
|---|---|---|---|---|
| synthetic, freihand | ``FreiHAND`` | ``training/`` | seeded ids carved from training | ``evaluation/`` |
| dexycb | ``DexYCB`` (setup ``data.split``) | the setup's train split | the setup's official val split | its test split |
| ho3d | ``HO3D`` (v3) | ``train.txt`` less the parts below | every 5th train sequence from the 4th (i % 5 == 3) | "train-heldout": every 5th from the 5th (i % 5 == 4) |
| assemblyhands | ``AssemblyHands`` (ego) | ``train`` | the official ``val`` split | ``test`` |

HO-3D's evaluation split has no public 3D labels: it is not scored here but predicted for the
leaderboard (``leaderboard_split``), and a run's local scores are those of "train-heldout",
whole sequences of ``train.txt`` (i: a sequence's index among the sorted names) that are never
fine-tuned on, since neighbouring frames of one video are near-copies.

DexYCB's frames come 30 a second from 8 cameras, so ids carved from its train split would put
near-copies of a frame on both sides; its official val split (other sequences) is used instead,
whatever the fraction. Its fine-tuning and evaluation crops come from the ground-truth hand box
(the shared crop rule), as the set's published baselines crop; FreiHAND's frames are already
hand-centred crops and are seen whole.

AssemblyHands marks joints its annotation could not place (``joint_valid``): its items carry
the flags, and the fine-tuning loss, the metrics and the floors leave those joints out. Its
sequences are long ego recordings, so its validation is the official val split too.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from benchmarks.data.assemblyhands import AssemblyHands
from benchmarks.data.dexycb import DexYCB
from benchmarks.data.freihand import FreiHAND
from benchmarks.data.ho3d import HO3D
from benchmarks.errors import UserError

FREIHAND_SPLITS = {"train": "train", "eval": "eval"}
DEXYCB_SPLITS = {"train": "train", "val": "val", "eval": "test"}
ASSEMBLYHANDS_SPLITS = DEXYCB_SPLITS


HO3D_PARTS = {"eval": 4, "val": 3}     # train sequences i % 5 == this (see the table)


def official_validation(name: str) -> bool:
    """Whether the set's validation is a fixed split rather than carved training ids."""
    return name in ("dexycb", "ho3d", "assemblyhands")


@functools.lru_cache(maxsize=1)
def _ho3d_train(root: str, res: int) -> HO3D:
    """HO-3D's whole train split (its meta files are read once per process)."""
    return HO3D(root, "train", res)


def _ho3d_keep(frames: list[str], names: list[str], which: str, val_fraction: float) -> np.ndarray:
    """Which of the train frames (their sequences, ``frames``) are in part ``which``: the
    sequence's place in the sorted ``names``, modulo 5, decides (see the table)."""
    rank = {name: i % 5 for i, name in enumerate(names)}
    rank = np.array([rank[seq] for seq in frames])
    if which in HO3D_PARTS:
        return rank == HO3D_PARTS[which]
    keep = rank != HO3D_PARTS["eval"]
    if val_fraction > 0:
        keep &= rank != HO3D_PARTS["val"]
    return keep


def _ho3d_part(cfg, root: Path, which: str, preload: bool) -> HO3D:
    full = _ho3d_train(str(root), cfg.data.res)
    names = sorted(full.sequences)
    keep = _ho3d_keep(full.sample_sequences(), names, which, cfg.data.val_fraction)
    if not keep.any():
        raise UserError(f"HO-3D root {root}: train.txt's {len(names)} sequences leave no "
                        f"'{which}' part (every 5th sequence is held out)")
    return full.part(np.flatnonzero(keep), preload)


def training_count(cfg, root: Path) -> int | None:
    """Samples of the split a run fine-tunes on, counted from the set's lists and label files
    alone (what a dry run plans with; no image is opened); None for FreiHAND, whose frames
    are counted. HO-3D counts every frame its kept sequences list (a frame without a hand,
    skipped when read, is counted here)."""
    from benchmarks.data import assemblyhands, dexycb, ho3d

    d = cfg.data
    if d.name == "dexycb":
        return dexycb.frame_count(root, d.split or "s0", "train")
    if d.name == "assemblyhands":
        return assemblyhands.sample_count(root, "train")
    if d.name == "ho3d":
        frames = [seq for seq, _ in ho3d.read_list(ho3d.list_file(root, "train"))]
        return int(_ho3d_keep(frames, sorted(set(frames)), "train", d.val_fraction).sum())
    return None


def leaderboard_split(cfg):
    """The label-free split a run predicts for the set's leaderboard (HO-3D's evaluation
    split), or None."""
    if cfg.data.name != "ho3d":
        return None
    return HO3D(Path(os.path.expanduser(cfg.data.root)), "evaluation", cfg.data.res)


def open_labelled(cfg, root: Path, which: str, ids=None, preload: bool = False):
    """The ``which`` ("train", "val", "eval") split of the labelled set ``cfg.data.name``."""
    d = cfg.data
    if d.name == "ho3d":
        return _ho3d_part(cfg, root, which, preload)
    if d.name == "assemblyhands":
        return AssemblyHands(root, ASSEMBLYHANDS_SPLITS[which], d.res, ids=ids, preload=preload)
    if d.name == "dexycb":
        return DexYCB(root, DEXYCB_SPLITS[which], d.res, ids=ids, preload=preload,
                      setup=d.split or "s0")
    return FreiHAND(root, FREIHAND_SPLITS[which], d.res, ids=ids, preload=preload)


def subset(ds, ids, preload: bool = False):
    """The items ``ids`` of an opened training split, without reading its labels again where
    the reader can (DexYCB's index costs minutes on the full set)."""
    if isinstance(ds, (DexYCB, HO3D, AssemblyHands)):
        return ds.with_ids(ids, preload)
    return FreiHAND(ds.root, "train", ds.res, ids=ids, preload=preload)


def open_other(cfg, also, preload: bool = False):
    """The scored split of ``also`` (an ``eval.also`` entry), at the run's input size."""
    from omegaconf import OmegaConf

    other = OmegaConf.merge(cfg, {"data": {"name": also.name, "root": also.root,
                                           "split": also.split or ("s0" if also.name == "dexycb"
                                                                   else None)}})
    return open_labelled(other, Path(os.path.expanduser(also.root)), "eval", preload=preload)
