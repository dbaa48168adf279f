"""The data one run needs, resolved before the run starts.

Synthetic products are generated on first use into a cache folder (``data.cache``, else
``$BENCH_DATA``, else ``~/.cache/handbench``) keyed by kind, size, resolution and seed, under
a file lock so that concurrent runs generate each product once; real data sets are validated
when opened. Small data sets are decoded once into memory (``TensorSource``); large real ones
stay file-backed and stream through DataLoader workers.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset, default_collate

from benchmarks.batches import TensorSource
from benchmarks.data import Mixture, Triplets, Wild, open_source, split_ids
from benchmarks.data.sets import official_validation, open_labelled, subset
from benchmarks.errors import UserError
from benchmarks.joints import JOINT_NAMES
from benchmarks.locks import file_lock

PRELOAD_MAX = 20_000          # items; above this a set streams from disk
HELDOUT_N = 256               # items per source of the held-out pre-training frames
HELDOUT_SEED = 10_000         # their world-seed offset: never a world that is trained on
WILD_FRAME = 2                # wild frames are rendered at this multiple of the crop size


def data_cache(cfg: DictConfig) -> Path:
    root = cfg.data.cache or os.environ.get("BENCH_DATA") or "~/.cache/handbench"
    return Path(os.path.expanduser(root))


def synthetic(kind: str, cache: Path, n: int, res: int, seed: int, eval_n: int | None = None,
              world: str = "capture") -> Path:
    """The folder of a synthetic product, generated once (atomically) and then reused."""
    from benchmarks.synth import products as synth

    name = f"{kind}-v{synth.VERSION}-n{n}-r{res}-s{seed}" + (f"-e{eval_n}" if eval_n else "")
    if kind == "lab":
        name += f"-{world}"
    folder = cache / "synth" / name
    if (folder / "synth.json").exists():
        return folder
    with file_lock(cache / "synth" / f"{name}.lock"):
        if not (folder / "synth.json").exists():
            tmp = cache / "synth" / f".{name}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            synth.generate(kind, tmp, n=n, res=res, seed=seed, eval_n=eval_n, world=world)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
    return folder


def to_tensors(ds: Dataset, keys: tuple[str, ...] | None = None) -> TensorSource:
    items = [ds[i] for i in range(len(ds))]
    batch = default_collate(items)
    return TensorSource({k: v for k, v in batch.items() if keys is None or k in keys})


class MixedTensors(TensorSource):
    """A ``Mixture`` whose sources are held in memory: the sources' items once, each epoch's
    draw looked up by key (see ``benchmarks.data.sources``)."""

    epoch_keyed = True

    def __init__(self, mixture: Mixture):
        parts = [to_tensors(d, ("image", "uv")).tensors for d in mixture.datasets]
        tensors = {k: torch.cat([p[k] for p in parts]) for k in ("image", "uv")}
        tensors["source"] = torch.cat([torch.full((n,), s, dtype=torch.int64)
                                       for s, n in enumerate(mixture.sizes)])
        super().__init__(tensors)
        self.mixture = mixture
        self.offsets = np.cumsum([0, *mixture.sizes[:-1]])

    def __len__(self) -> int:
        return len(self.mixture)

    def take(self, keys: torch.Tensor) -> dict[str, torch.Tensor]:
        where = self.mixture.locate(keys)
        return super().take(torch.from_numpy(self.offsets[where[:, 0]] + where[:, 1]))


class WithScale(Dataset):
    """A streamed set whose items' ``scale`` is one given value (label-free items have none)."""

    def __init__(self, ds: Dataset, scale: float):
        self.ds, self.scale = ds, scale

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**self.ds[i], "scale": torch.tensor(self.scale, dtype=torch.float32)}


def _require_every_joint(ds, name: str) -> None:
    """A scored split whose items mark joints invalid must hold each joint valid somewhere:
    a joint valid in no sample has no error to report (``eval.metrics``)."""
    if ds is None or not hasattr(ds, "joints_valid"):
        return
    never = np.flatnonzero(~ds.joints_valid().any(axis=0))
    if never.size:
        joints = ", ".join(JOINT_NAMES[j] for j in never[:4]) + (" ..." if never.size > 4 else "")
        raise UserError(f"data={name} {getattr(ds, 'split', '')} split under {ds.root}: "
                        f"{never.size} joint(s) ({joints}) are valid in none of its {len(ds)} "
                        f"samples, so their error cannot be scored")


class Data:
    """Resolves every data set of ``cfg``; raises ``UserError`` on missing or malformed data."""

    def __init__(self, cfg: DictConfig, finetune_seed: int | None = None):
        from benchmarks.run import finetune_seed as default_seed

        self.cfg = cfg
        self.finetune_seed = default_seed(cfg) if finetune_seed is None else finetune_seed
        self.cache = data_cache(cfg)
        d = cfg.data
        if d.name == "synthetic":
            self.lab_root = synthetic("lab", self.cache, d.n_train, d.res, d.world_seed, d.n_eval,
                                      world=d.world)
        else:
            self.lab_root = Path(os.path.expanduser(d.root))
        self._train_all = open_labelled(cfg, self.lab_root, "train")
        self._eval = open_labelled(cfg, self.lab_root, "eval", preload=d.name == "synthetic")
        self._val_split = (open_labelled(cfg, self.lab_root, "val")
                           if official_validation(d.name) and d.val_fraction > 0 else None)
        self._check_labelled()
        for ds in (self._eval, self._val_split):
            _require_every_joint(ds, d.name)
        self.sources = [self._open_source(i, s) for i, s in enumerate(cfg.pretrain.sources)]
        # streamed sets: every header and a decoded sample, before anything trains (about
        # 10 s for FreiHAND's 130,240 frames); preloaded sets were decoded whole already
        self.others = self._open_others()    # eval.also: opened and checked before training
        self.leaderboard, self.leaderboard_set = self._open_leaderboard()
        real = (self._train_all, self._eval, *([self._val_split] if self._val_split else []))
        for ds in (real if d.name != "synthetic" else ()) + tuple(self.sources):
            ds.verify()
        self._mixture = Mixture(self.sources, [s.weight for s in cfg.pretrain.sources],
                                seed=cfg.data.world_seed)

    def _open_source(self, i: int, src) -> Dataset:
        d, res = self.cfg.data, self.cfg.pretrain.res
        if src.name == "synthetic_wild":
            root = synthetic("wild", self.cache, src.n, WILD_FRAME * res, d.world_seed + 1 + i)
        elif src.name == "synthetic_lab":
            root = synthetic("lab", self.cache, src.n, 2 * res, d.world_seed + 1 + i, world=d.world)
        else:
            root = Path(os.path.expanduser(src.root))
        small = src.name.startswith("synthetic")
        return open_source(src.name, root, res, preload=small, scale=src.get("scale"))

    def pretrain_size(self) -> int:
        """N of the pre-training set, the unit of ``ep`` budgets."""
        return len(self._mixture)

    def pretrain_source(self, inputs: tuple[str, ...]):
        if "similar" in inputs:       # SiMHand: each item with its mined partner
            from benchmarks.data.similar import similar_source
            return similar_source(self)
        if "clips" in inputs:         # TempCLR: two frames of one sequence
            from benchmarks.data.clips import clip_source
            return clip_source(self)
        if "triplets" in inputs:
            return self._triplet_source("train", self.cfg.pretrain.res)
        if "pose3d" in inputs:
            return self._synthetic_3d()
        if len(self._mixture) <= PRELOAD_MAX and all(getattr(s, "preloaded", False) for s in self.sources):
            return MixedTensors(self._mixture)
        return self._mixture

    def heldout_source(self, inputs: tuple[str, ...]):
        """Frames like the pre-training source's that pre-training never sees, on which the
        method's own objective is measured (``eval/heldout.py``): each synthetic source drawn
        again from another world seed (``HELDOUT_N`` items, SiMHand's partners mined among
        them), the triplets' held-out test split (TempCLR: its clips). None where a source is a real data set,
        whose frames are all trained on."""
        d, res = self.cfg.data, self.cfg.pretrain.res
        if "triplets" in inputs:
            return self._triplet_source("test", res)
        sources = self.cfg.pretrain.sources
        if any(not s.name.startswith("synthetic") for s in sources):
            return None
        if "clips" in inputs:         # TempCLR on synthetic sources: the test triplets' clips
            from benchmarks.data.clips import TripletClips
            triplets = self._triplet_source("test", res).tensors["triplet"]
            return TripletClips(triplets, int(self.cfg.method.window))
        seed = d.world_seed + HELDOUT_SEED
        if "pose3d" in inputs:
            root = synthetic("wild", self.cache, HELDOUT_N, WILD_FRAME * res, seed)
            return to_tensors(Wild(root, res, preload=True, pose3d=True), ("image", "K", "xyz"))
        held = []
        for i, src in enumerate(sources):
            if src.name == "synthetic_wild":
                root = synthetic("wild", self.cache, HELDOUT_N, WILD_FRAME * res, seed + 1 + i)
            else:
                root = synthetic("lab", self.cache, HELDOUT_N, 2 * res, seed + 1 + i, world=d.world)
            held.append(open_source(src.name, root, res, preload=True))
        mixture = Mixture(held, [s.weight for s in sources], seed=seed)
        if "similar" in inputs:
            from types import SimpleNamespace

            from benchmarks.data.similar import similar_source
            return similar_source(SimpleNamespace(cfg=self.cfg, cache=self.cache, sources=held,
                                                  _mixture=mixture))
        return MixedTensors(mixture)

    def _synthetic_3d(self) -> TensorSource:
        """The synthetic wild set with its 3D labels (``synthetic3d``): the profile's own wild
        source when it has one (the images the other methods pre-train on), else one of the
        pre-training set's size; never the lab world that is fine-tuned and evaluated on."""
        d, res = self.cfg.data, self.cfg.pretrain.res
        wild = [(i, s) for i, s in enumerate(self.cfg.pretrain.sources) if s.name == "synthetic_wild"]
        i, n = (wild[0][0], wild[0][1].n) if wild else (0, self.pretrain_size())
        root = synthetic("wild", self.cache, n, WILD_FRAME * res, d.world_seed + 1 + i)
        return to_tensors(Wild(root, res, preload=True, pose3d=True), ("image", "K", "xyz"))

    def _triplet_source(self, split: str, res: int) -> TensorSource:
        d = self.cfg.data
        root = synthetic("triplets", self.cache, d.n_triplets, res, d.world_seed + 100)
        return to_tensors(Triplets(root, split, res, preload=True))

    def triplets(self) -> tuple[dict, dict]:
        """(train, test) tensors of the triplets set for the probes; images float in [0, 1]."""
        out = []
        for split in ("train", "test"):
            t = dict(self._triplet_source(split, self.cfg.pretrain.res).tensors)
            t["triplet"] = t["triplet"].float().div_(255)
            out.append(t)
        return out[0], out[1]

    def labelled(self):
        """(fine-tuning subset, evaluation split) with image, K, xyz, scale: in memory when small,
        file-backed (streamed by DataLoader workers) when large."""
        ids, _ = self._split()
        return self._open_train(ids), self._pick(self._eval, ("image_id", "flipped"))

    def validation(self):
        """The held-out training ids (``data.val_fraction``) for choosing recipes, or None.
        They never depend on the label fraction and never overlap the fine-tuning subset."""
        if self._val_split is not None:            # an official validation split
            return self._pick(self._val_split)
        _, val = self._split()
        return self._open_train(val) if val else None

    def _open_leaderboard(self):
        """(source, reader) of the label-free split predicted for the set's leaderboard
        (HO-3D's evaluation split; ``benchmarks.data.sets.leaderboard_split``), or (None,
        None). Its items have no scale: the fine-tuning labels' median bone length stands in,
        so the exported joints are metric only up to that (the leaderboard's aligned scores
        do not depend on it)."""
        from benchmarks.data.sets import leaderboard_split

        ds = leaderboard_split(self.cfg)
        if ds is None:
            return None, None
        ds.verify()
        train = self._train_all.poses()
        scale = float(np.median(np.linalg.norm(train[:, 9] - train[:, 10], axis=-1)))
        source = self._pick(ds, ("image_id",))
        if isinstance(source, TensorSource):
            source.tensors["scale"] = torch.full_like(source.tensors["scale"], scale)
        else:
            source = WithScale(source, scale)
        return source, ds

    def _open_others(self) -> dict[str, object]:
        """The scored split of every ``eval.also`` set by name (cross-dataset evaluation),
        checked like the run's own (headers read and a sample decoded when streamed)."""
        from benchmarks.data.sets import open_other

        out = {}
        for also in self.cfg.eval.also:
            ds = open_other(self.cfg, also)
            _require_every_joint(ds, also.name)
            ds.verify()
            out[also.name if also.name not in out else f"{also.name}{len(out)}"] = \
                self._pick(ds, ("image_id", "flipped"))
        return out

    def labelled_counts(self) -> dict[str, int]:
        """What fine-tuning uses: labelled ids and images, held-out validation ids and images."""
        ids, val = self._split()
        k = self._train_all.n_versions
        n_val = len(self._val_split) if self._val_split is not None else len(val) * k
        return {"ids": len(ids), "images": len(ids) * k,
                "validation_ids": len(self._val_split) if self._val_split is not None else len(val),
                "validation_images": n_val}

    def _check_labelled(self) -> None:
        """A label fraction that leaves fewer images than one fine-tuning batch is refused."""
        ft, counts = self.cfg.finetune, self.labelled_counts()
        if counts["images"] < ft.batch_size:
            rest = self._train_all.n_unique - counts["validation_ids"]
            need = math.ceil(ft.batch_size / self._train_all.n_versions)
            raise UserError(
                f"finetune.label_fraction={ft.label_fraction:g} leaves {counts['ids']} labelled "
                f"ids ({counts['images']} images) of {rest}; one batch of finetune.batch_size="
                f"{ft.batch_size} needs {need} ids: use label_fraction >= {need / rest:.2g}")

    def _split(self) -> tuple[list[int], list[int]]:
        cfg = self.cfg
        seed = self.finetune_seed
        carved = 0.0 if official_validation(cfg.data.name) else cfg.data.val_fraction
        return split_ids(self._train_all.n_unique, carved, cfg.finetune.label_fraction, seed)

    def _open_train(self, ids: list[int]):
        small = self.cfg.data.name == "synthetic"
        return self._pick(subset(self._train_all, ids, preload=small))

    def _pick(self, ds, extra: tuple[str, ...] = ()):
        small = self.cfg.data.name == "synthetic"
        keys = ("image", "K", "xyz", "scale", "joint_valid", *extra)
        return to_tensors(ds, keys) if small or len(ds) <= PRELOAD_MAX else ds

