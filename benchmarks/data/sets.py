"""The labelled data sets that fine-tuning and evaluation read (``data.name``): which reader
opens each, and which of its official splits are trained on, held out and scored.

| data.name | reader | fine-tuned on | validation (``data.val_fraction`` > 0) | scored on |
|---|---|---|---|---|
| synthetic, freihand | ``FreiHAND`` | ``training/`` | seeded ids carved from training | ``evaluation/`` |
| dexycb | ``DexYCB`` (setup ``data.split``) | the setup's train split | the setup's official val split | its test split |

DexYCB's frames come 30 a second from 8 cameras, so ids carved from its train split would put
near-copies of a frame on both sides; its official val split (other sequences) is used instead,
whatever the fraction. Its fine-tuning and evaluation crops come from the ground-truth hand box
(the shared crop rule), as the set's published baselines crop; FreiHAND's frames are already
hand-centred crops and are seen whole.
"""
from __future__ import annotations

import os
from pathlib import Path

from benchmarks.data.dexycb import DexYCB
from benchmarks.data.freihand import FreiHAND

FREIHAND_SPLITS = {"train": "train", "eval": "eval"}
DEXYCB_SPLITS = {"train": "train", "val": "val", "eval": "test"}


def official_validation(name: str) -> bool:
    """Whether the set's validation is an official split rather than carved training ids."""
    return name == "dexycb"


def open_labelled(cfg, root: Path, which: str, ids=None, preload: bool = False):
    """The ``which`` ("train", "val", "eval") split of the labelled set ``cfg.data.name``."""
    d = cfg.data
    if d.name == "dexycb":
        return DexYCB(root, DEXYCB_SPLITS[which], d.res, ids=ids, preload=preload,
                      setup=d.split or "s0")
    return FreiHAND(root, FREIHAND_SPLITS[which], d.res, ids=ids, preload=preload)


def subset(ds, ids, preload: bool = False):
    """The items ``ids`` of an opened training split, without reading its labels again where
    the reader can (DexYCB's index costs minutes on the full set)."""
    if isinstance(ds, DexYCB):
        return ds.with_ids(ids, preload)
    return FreiHAND(ds.root, "train", ds.res, ids=ids, preload=preload)


def open_other(cfg, also, preload: bool = False):
    """The scored split of ``also`` (an ``eval.also`` entry), at the run's input size."""
    from omegaconf import OmegaConf

    other = OmegaConf.merge(cfg, {"data": {"name": also.name, "root": also.root,
                                           "split": also.split or ("s0" if also.name == "dexycb"
                                                                   else None)}})
    return open_labelled(other, Path(os.path.expanduser(also.root)), "eval", preload=preload)
