"""Pre-training sources and their weighted mixture.

Every pre-training item has the same keys, whatever its source: ``image`` uint8 (3, res,
res), the hand crop by the shared crop rule (``benchmarks.data.crops``); ``uv`` float32
(21, 2) crop pixels, NaN where the source has no 2D keypoints; ``source`` int64, the
source's position in the mixture.

Mixing follows PeCLR: each draw picks source s with probability w_s / sum(w), whatever the
sources' sizes (PeCLR's ``WeightedRandomSampler`` with per-sample weight 1 / len(source)
gives FreiHAND and YouTube3DHands 1/2 each), and an epoch has as many draws as the sources
have items together. Within a source, items are visited in shuffled passes (a fresh
permutation each time the source is used up), so a source is covered evenly instead of
with replacement.

Every epoch is drawn anew, as PeCLR's sampler does: the mixture is indexed by *keys*,
``key = epoch * len(mixture) + position``, and epoch e's draw is a function of (seed, e)
alone, so a resumed run draws what the uninterrupted one drew (``benchmarks.batches`` turns
a step into keys for sources that declare ``epoch_keyed``). Over the epochs every item of
every source with positive weight is used, however unequal the sources' sizes.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmarks.data.crops import MARGIN
from benchmarks.data.freihand import FreiHAND
from benchmarks.data.wild import Wild
from benchmarks.data.youtube import YouTube3D
from benchmarks.config import SOURCES
from benchmarks.errors import UserError

# Training images of the real sets as published (FreiHAND: 32,560 ids x 4 backgrounds;
# YouTube3DHands: its training frames): what a dry run plans with where the data are not here.
PUBLISHED_SIZES = {"freihand": 130_240, "youtube3d": 47_125}


def open_source(name: str, root: str | Path, res: int, margin: float = MARGIN,
                preload: bool = False, scale: str | None = None) -> Dataset:
    """The pre-training data set called ``name`` (see ``SOURCES``) read from ``root``.

    ``synthetic_lab`` and ``freihand`` are FreiHAND-layout training splits cropped around
    their ground-truth keypoints; ``synthetic_wild`` is ``Wild``; ``youtube3d`` is the
    YouTube3DHands training split; ``ego4d`` and ``100doh`` are SiMHand's Hand100M annotation
    files over extracted frames (``scale`` picks the file); ``folder`` is a user's frames with a
    JSON of boxes (``benchmarks.data.folder``).
    """
    if name in ("synthetic_lab", "freihand"):
        return FreiHAND(root, "train", res, crop_margin=margin, preload=preload)
    if name == "synthetic_wild":
        return Wild(root, res, margin=margin, preload=preload)
    if name == "youtube3d":
        return YouTube3D(root, "train", res, margin=margin, preload=preload)
    if name in ("ego4d", "100doh"):
        from benchmarks.data.hand100m import Hand100M

        return Hand100M(root, name, res, margin=margin, preload=preload, scale=scale)
    if name == "folder":
        from benchmarks.data.folder import FolderSource

        return FolderSource(root, res, margin=margin, preload=preload)
    raise UserError(f"unknown pre-training source {name!r}; choose from {', '.join(SOURCES)}")


def mixture_indices(sizes: Sequence[int], weights: Sequence[float], n: int,
                    seed: int | Sequence[int]) -> np.ndarray:
    """``n`` draws (source, index) as an (n, 2) int64 array, deterministic given ``seed``.

    Each draw's source is s with probability ``weights[s] / sum(weights)``; the indices
    drawn from source s run through successive random permutations of ``range(sizes[s])``.
    """
    sizes_a = np.asarray(sizes, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if sizes_a.ndim != 1 or sizes_a.shape != w.shape or sizes_a.size == 0:
        raise UserError(f"a mixture needs one weight per source, got {len(sizes)} sources "
                        f"and {len(weights)} weights")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise UserError(f"source weights must be non-negative with a positive sum, "
                        f"got {list(weights)}")
    if ((w > 0) & (sizes_a <= 0)).any():
        raise UserError(f"a source with positive weight has no items (sizes {list(sizes)})")
    if n < 0:
        raise UserError(f"a mixture needs a non-negative number of draws, got {n}")
    rng = np.random.default_rng(seed)
    source = rng.choice(len(w), size=n, p=w / w.sum())
    index = np.empty(n, dtype=np.int64)
    for s, size in enumerate(sizes_a.tolist()):
        at = np.flatnonzero(source == s)
        if at.size:
            passes = [rng.permutation(size) for _ in range(math.ceil(at.size / size))]
            index[at] = np.concatenate(passes)[:at.size]
    return np.stack([source.astype(np.int64), index], axis=1)


class Mixture(Dataset):
    """Pre-training sources mixed by weight, drawn anew each epoch (see the module docstring).

    Args:
        datasets: the sources; their items hold at least ``image`` and ``uv``.
        weights: one non-negative weight per source.
        n: draws per epoch (default: the sources' total size, as PeCLR).
        seed: the mixture's seed; epoch e draws from (seed, e).

    ``mixture[key]`` is draw ``key % n`` of epoch ``key // n``.
    """

    epoch_keyed = True
    _KEEP = 4               # epochs' draws held at once (a batch spans at most two)

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float],
                 n: int | None = None, seed: int = 0):
        self.datasets = list(datasets)
        self.weights = [float(w) for w in weights]
        self.sizes = [len(d) for d in self.datasets]
        self.n = sum(self.sizes) if n is None else int(n)
        self.seed = seed
        self._draws: dict[int, np.ndarray] = {}
        self.draws(0)                       # validates sizes and weights now

    def draws(self, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s (n, 2) (source, index) sequence, a function of (seed, epoch)."""
        if epoch not in self._draws:
            if len(self._draws) >= self._KEEP:
                self._draws.clear()
            self._draws[epoch] = mixture_indices(self.sizes, self.weights, self.n,
                                                 (self.seed, epoch))
        return self._draws[epoch]

    def locate(self, keys: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
        """(len(keys), 2) (source, index) of mixture keys."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        if (keys < 0).any():
            raise IndexError("mixture keys are non-negative")
        epochs, pos = np.divmod(keys, self.n)
        out = np.empty((len(keys), 2), dtype=np.int64)
        for e in np.unique(epochs).tolist():
            at = epochs == e
            out[at] = self.draws(e)[pos[at]]
        return out

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        s, j = self.locate([key])[0].tolist()
        item = self.datasets[s][j]
        return {"image": item["image"], "uv": item["uv"],
                "source": torch.tensor(s, dtype=torch.int64)}
