"""Mined similar hands (SiMHand, Lin, Ohkawa et al., ICLR 2025): every pre-training item with
its partner, the most similar hand of another sequence.

The pose embedding of a hand is its 2D keypoints made root-relative (minus the wrist, joint
0) and scale-normalised (divided by their root-mean-square distance to the wrist), flattened
to 42 numbers and, with ``method.pca_dim`` > 0 (default 14, the paper's option), projected
on the first principal axes of the whole pre-training set. Position and size in the image do
not count, so frame pixels and crop pixels give the same embedding (the hand crop is a square
box: a shift and a uniform zoom). An item's partner is its nearest neighbour in that
embedding (Euclidean, exact up to float32 rounding: ``torch.cdist`` over chunks of rows;
an estimated 2 minutes on one core for FreiHAND's 130,240 images) among the items of every
source with positive weight, never the item itself and never one of its own sequence.

Where the keypoints come from, and what a sequence is:

- ``synthetic_wild`` and ``synthetic_lab``: the synthetic world's own 2D keypoints (a
  deviation: SiMHand mines on an off-the-shelf estimator's pseudo-labels of Ego4D and
  100DOH). Every frame is its own scene (own hand shape and skin, pose, camera, background;
  ``benchmarks.synth.scene.sample_scenes``), so a sequence is one image.
- ``freihand``: the labels projected (``K @ xyz``). FreiHAND publishes no video or subject
  labels; its versions of one id (green screen, homogenised, sample, auto) are one capture,
  so a sequence is one id.
- ``ego4d`` and ``100doh``: the released Hand100M pseudo-labels (as SiMHand mines), a
  sequence being one video (the frame's folder; ``benchmarks.data.hand100m``). The released
  files also hold SiMHand's own mined partners; they are not used: pairs are mined here as
  for every source.
- ``youtube3d`` has no 2D keypoints (``benchmarks.data.youtube``) and is refused (methods
  refuse it earlier, when the config is composed). Its sequence would be its video.

Sources read from one folder share their sequences (a source listed twice is one capture).
The pairs are mined once and cached under the data cache (``similar/``), keyed by a hash of
everything that decides them (every item's keypoints, sequence and eligibility, the PCA size
and ``MINING_VERSION``), written atomically under a file lock.

The source this gives (``similar_source``) draws its items as the pre-training mixture does
(``benchmarks.data.sources``); each item holds ``image``, ``uv``, ``source`` and its partner's
``partner`` image and ``partner_uv`` (crop pixels of the partner's own crop).
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmarks.batches import TensorSource
from benchmarks.data.freihand import FreiHAND, project
from benchmarks.data.wild import Wild
from benchmarks.errors import UserError
from benchmarks.locks import file_lock

log = logging.getLogger(__name__)
MINING_VERSION = 1          # bump when the embedding or the search changes
PCA_DIM = 14                # SiMHand's PCA size; method.pca_dim overrides, 0 for none
ROOT = 0                    # the wrist
CHUNK_ELEMENTS = 1 << 24    # distance-matrix entries computed at once (64 MB of float32)


def pose_embedding(uv: np.ndarray) -> np.ndarray:
    """(N, 21, 2) keypoints -> (N, 42) root-relative, scale-normalised (module docstring)."""
    rel = np.asarray(uv, dtype=np.float64) - np.asarray(uv, dtype=np.float64)[:, ROOT:ROOT + 1]
    size = np.sqrt((rel ** 2).sum(-1).mean(-1))
    size = np.where(size > 0, size, 1.0)
    return (rel / size[:, None, None]).reshape(len(rel), -1)


def pca(x: np.ndarray, dim: int) -> np.ndarray:
    """``x`` (N, D) on its first ``dim`` principal axes (all of ``x`` if dim is 0 or >= D)."""
    if dim <= 0 or dim >= x.shape[1]:
        return x
    centred = x - x.mean(0)
    _, vectors = np.linalg.eigh(centred.T @ centred)        # ascending eigenvalues
    return centred @ vectors[:, ::-1][:, :dim]


def nearest_partners(emb: np.ndarray, groups: np.ndarray, allowed: np.ndarray | None = None
                     ) -> np.ndarray:
    """(N,) index of each row's nearest row of ``emb`` (N, D) in another group (``groups``
    (N,) int64) among the ``allowed`` rows; -1 where there is none. Exact search."""
    e = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
    g = torch.from_numpy(np.asarray(groups, dtype=np.int64))
    n = len(e)
    barred = None if allowed is None else ~torch.from_numpy(np.asarray(allowed, dtype=bool))
    out = torch.empty(n, dtype=torch.int64)
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        d = torch.cdist(e[start:stop], e, compute_mode="use_mm_for_euclid_dist")
        d[g[start:stop, None] == g[None, :]] = float("inf")
        if barred is not None:
            d[:, barred] = float("inf")
        best, at = d.min(dim=1)
        out[start:stop] = torch.where(torch.isfinite(best), at, torch.full_like(at, -1))
    return out.numpy()


def source_keypoints(ds: Dataset, name: str, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints (N, 21, 2) frame pixels, sequence (N,) int64) of pre-training source ``i``,
    read from its labels (no image is decoded)."""
    if isinstance(ds, FreiHAND):
        ids = ds.image_ids % ds.n_unique
        return project(ds.K[ids], ds.xyz[ids]), ids.astype(np.int64)
    if isinstance(ds, Wild):
        return ds.uv, np.arange(len(ds), dtype=np.int64)
    if hasattr(ds, "mining_keypoints"):            # Hand100M: pseudo-labels, video ids
        return ds.mining_keypoints()
    raise UserError(f"similar-hand mining needs 2D keypoints, but pre-training source "
                    f"pretrain.sources.{i} ({name}) has none: use synthetic_wild, "
                    f"synthetic_lab or freihand")


def mining_inputs(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints (N, 21, 2), sequence ids (N,), eligible as partners (N,)) of every item of
    the pre-training mixture, in the mixture's order (sources one after another)."""
    uvs, groups, allowed, folders = [], [], [], {}
    for i, (ds, src) in enumerate(zip(data.sources, data.cfg.pretrain.sources)):
        uv, seq = source_keypoints(ds, src.name, i)
        if not np.isfinite(uv).all():
            raise UserError(f"pre-training source pretrain.sources.{i} ({src.name}) has items "
                            f"without 2D keypoints; similar-hand mining needs them all")
        folder = folders.setdefault(str(Path(ds.root).resolve()), len(folders))
        uvs.append(np.asarray(uv, dtype=np.float32))
        groups.append(folder * (1 << 40) + seq)
        allowed.append(np.full(len(uv), float(src.weight) > 0))
    return np.concatenate(uvs), np.concatenate(groups), np.concatenate(allowed)


def mine(uv: np.ndarray, groups: np.ndarray, allowed: np.ndarray, pca_dim: int = PCA_DIM
         ) -> np.ndarray:
    """Every item's partner (N,) int64 (module docstring); ``UserError`` where one has none."""
    partner = nearest_partners(pca(pose_embedding(uv), pca_dim), groups, allowed)
    if (partner < 0).any():
        raise UserError(f"similar-hand mining found no partner for {int((partner < 0).sum())} "
                        f"of {len(partner)} items: the pre-training sources hold one sequence "
                        f"only; SiMHand needs hands from at least two")
    return partner


def cached_partners(cache: Path, uv: np.ndarray, groups: np.ndarray, allowed: np.ndarray,
                    pca_dim: int = PCA_DIM) -> np.ndarray:
    """``mine``, computed once per key into ``cache/similar/`` and then read back."""
    h = hashlib.sha256(f"similar/v{MINING_VERSION}/pca{pca_dim}/".encode())
    for a in (uv.astype("<f4"), groups.astype("<i8"), allowed.astype(np.uint8)):
        h.update(np.ascontiguousarray(a).tobytes())
    name = f"pairs-v{MINING_VERSION}-{h.hexdigest()[:20]}"
    folder = Path(cache) / "similar"
    path = folder / f"{name}.npy"

    def valid(p: np.ndarray | None) -> bool:
        return (p is not None and p.shape == (len(uv),) and p.dtype == np.int64
                and bool(((p >= 0) & (p < len(uv))).all()) and bool((groups[p] != groups).all()))

    def read() -> np.ndarray | None:
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    if path.exists() and valid(found := read()):
        return found
    with file_lock(folder / f"{name}.lock"):
        if path.exists() and valid(found := read()):
            return found
        log.info("mining similar hands over %d pre-training items", len(uv))
        partner = mine(uv, groups, allowed, pca_dim)
        tmp = folder / f".{name}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            np.save(f, partner, allow_pickle=False)
        os.replace(tmp, path)
    return partner


class SimilarTensors(TensorSource):
    """The mixture of in-memory (preloaded) sources with every item's partner; indexed by the
    mixture's keys (``epoch_keyed``) like ``benchmarks.data.prepare.MixedTensors``."""

    epoch_keyed = True

    def __init__(self, mixture, partner: np.ndarray):
        parts = [[d[i] for i in range(len(d))] for d in mixture.datasets]
        tensors = {k: torch.cat([torch.stack([item[k] for item in p]) for p in parts])
                   for k in ("image", "uv")}
        tensors["source"] = torch.cat([torch.full((n,), s, dtype=torch.int64)
                                       for s, n in enumerate(mixture.sizes)])
        super().__init__(tensors)
        self.mixture = mixture
        self.partner = partner                      # (N,) int64, global item -> its partner
        self._partner = torch.from_numpy(partner)
        self.offsets = np.cumsum([0, *mixture.sizes[:-1]])

    def __len__(self) -> int:
        return len(self.mixture)

    def take(self, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        where = self.mixture.locate(keys)
        idx = torch.from_numpy(self.offsets[where[:, 0]] + where[:, 1])
        out = super().take(idx)
        p = self._partner[idx]
        out["partner"], out["partner_uv"] = self.tensors["image"][p], self.tensors["uv"][p]
        return out


class SimilarMixture(Dataset):
    """The file-backed mixture with every item's partner (decoded by DataLoader workers)."""

    epoch_keyed = True

    def __init__(self, mixture, partner: np.ndarray):
        self.mixture = mixture
        self.partner = partner                      # (N,) int64, global item -> its partner
        self.offsets = np.cumsum([0, *mixture.sizes[:-1]])

    def __len__(self) -> int:
        return len(self.mixture)

    def _at(self, g: int) -> dict[str, torch.Tensor]:
        s = int(np.searchsorted(self.offsets, g, side="right") - 1)
        return self.mixture.datasets[s][g - int(self.offsets[s])]

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        s, j = self.mixture.locate([key])[0].tolist()
        item = self.mixture.datasets[s][j]
        other = self._at(int(self.partner[self.offsets[s] + j]))
        return {"image": item["image"], "uv": item["uv"], "source": torch.tensor(s),
                "partner": other["image"], "partner_uv": other["uv"]}


def similar_source(data):
    """The pre-training source of ``benchmarks.data.prepare.Data`` ``data`` with mined
    partners: in memory when every source is preloaded, else file-backed."""
    from omegaconf import OmegaConf

    pca_dim = OmegaConf.select(data.cfg, "method.pca_dim", default=PCA_DIM)
    uv, groups, allowed = mining_inputs(data)
    partner = cached_partners(data.cache, uv, groups, allowed, int(pca_dim))
    mixture = data._mixture          # the draws every pre-training method sees
    if all(getattr(s, "preloaded", False) for s in data.sources):
        return SimilarTensors(mixture, partner)
    return SimilarMixture(mixture, partner)
