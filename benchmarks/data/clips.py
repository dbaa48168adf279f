"""Clips for time-contrastive pre-training (``tempclr``): two frames of one sequence, close in time.

A clip is two different frames of one sequence at most ``window`` steps apart (time counted
in the sequence's own frames), the earlier one first. Where the frames come from follows
``pretrain.sources``:

- ``synthetic_wild`` / ``synthetic_lab``: the synthetic world's viewpoint triplets (the
  ``triplets`` product ``trajreg`` uses, its training split). A triplet is one hand seen
  from three viewpoints on a smooth camera path, the centre midway between the left and
  right views (5-12 degrees a step), with the same pose, light and background: a
  three-frame sequence in which the camera moves and the hand holds still. Its time steps
  are the positions left = 0, centre = 1, right = 2, so ``window=1`` pairs (left, centre) and
  (centre, right), and ``window>=2`` adds (left, right). The triplets are the world's only
  sequences; the wild and lab images are independent scenes, so a synthetic source stands
  for the triplets whatever its ``n`` (the set has ``data.n_triplets`` triplets).
- ``youtube3d``: YouTube3DHands' videos. The official JSON names a frame
  ``youtube/<video id>/video/frames/<frame number>.png``: the folder of a frame is its video,
  its file name's number its place in the video. A video's time steps are its annotated
  frames found on disk, in frame-number order (the data set annotates a subset of each
  video's frames, so one step may span several video frames). The annotations carry no
  track ids, and a frame may hold several hands, so a hand is linked to the hand of the
  same side (``is_left``) in the other frame whose vertex box overlaps it most, if their
  IoU is at least ``MIN_IOU``; hands without such a partner are not paired.
- ``freihand`` has no sequences (single frames of many subjects): refused, as at compose
  time (``methods.tempclr.TempCLR.settle``).

Several sources are mixed by weight as the image sources are (``benchmarks.data.sources``),
the synthetic sources' weights summed onto the one triplet set. Batch keys: ``clip`` uint8
(B, 2, 3, res, res); ``sequence`` int64 (B,), the triplet's index or the video's index within
its clip set; ``frames`` int64 (B, 2), each frame's time (triplet position, video frame
number); ``source`` int64 (B,), the clip set's position in ``ClipSource.names``.

An ``ep`` budget counts the profile's pre-training images (``Data.pretrain_size``), as for
``trajreg``, not the clips.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from benchmarks.batches import TensorSource
from benchmarks.data.sources import Mixture
from benchmarks.data.youtube import YouTube3D
from benchmarks.config import require_sources
from benchmarks.errors import UserError

log = logging.getLogger(__name__)

# How each source with sequences (``benchmarks.config.SOURCE_HAS``) gives its clips.
SEQUENCES = {"synthetic_wild": "triplets", "synthetic_lab": "triplets", "youtube3d": "videos"}
MIN_IOU = 0.3      # YouTube3DHands: the least vertex-box overlap that links a hand across frames
TRIPLET_STEPS = 3  # frames of a triplet: left, centre, right


class TripletClips(TensorSource):
    """Clips of the triplets ``frames`` (T, 3, 3, H, W) uint8: every pair of positions
    ``a < b`` with ``b - a <= window`` of every triplet."""

    def __init__(self, frames: torch.Tensor, window: int):
        if window < 1:
            raise UserError(f"method.window must be >= 1 (got {window})")
        steps = [(a, b) for a in range(TRIPLET_STEPS) for b in range(a + 1, TRIPLET_STEPS)
                 if b - a <= window]
        seq = torch.arange(len(frames)).repeat_interleave(len(steps))
        ab = torch.tensor(steps, dtype=torch.int64).repeat(len(frames), 1)
        self.frames, self.window = frames, window
        super().__init__({"sequence": seq, "frames": ab})

    @property
    def n_sequences(self) -> int:
        return len(self.frames)

    def take(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        seq, ab = self.tensors["sequence"][idx], self.tensors["frames"][idx]
        clip = torch.stack([self.frames[seq, ab[:, 0]], self.frames[seq, ab[:, 1]]], dim=1)
        return {"clip": clip, "sequence": seq, "frames": ab,
                "source": torch.zeros(len(seq), dtype=torch.int64)}

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.take(torch.tensor([j])).items()}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes (x min, x max, y min, y max)."""
    w = min(a[1], b[1]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[2], b[2])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter))


class VideoClips(Dataset):
    """Clips of YouTube3DHands ``videos`` (a ``YouTube3D`` set): one hand in two annotated
    frames of one video at most ``window`` steps apart (see the module docstring)."""

    def __init__(self, videos: YouTube3D, window: int, min_iou: float = MIN_IOU):
        if window < 1:
            raise UserError(f"method.window must be >= 1 (got {window})")
        self.videos, self.window = videos, window
        where = videos.root / "youtube_train.json"
        by_frame: dict[tuple[Path, int], list[int]] = {}
        for i, path in enumerate(videos.frames):
            if not path.stem.isdigit():
                raise UserError(f"{where}: frame {path.relative_to(videos.root)} is not named by "
                                f"its frame number, so tempclr cannot order its video in time")
            by_frame.setdefault((path.parent, int(path.stem)), []).append(i)
        numbers_of: dict[Path, list[int]] = {}
        for folder, n in by_frame:
            numbers_of.setdefault(folder, []).append(n)
        folders = sorted(numbers_of)
        self.video_names = [str(f.relative_to(videos.root)) for f in folders]
        pairs, seq, times = [], [], []
        for v, folder in enumerate(folders):
            numbers = sorted(numbers_of[folder])
            for r, n in enumerate(numbers):
                for m in numbers[r + 1:r + 1 + window]:
                    for i in by_frame[(folder, n)]:
                        j = self._partner(i, by_frame[(folder, m)], min_iou)
                        if j is not None:
                            pairs.append((i, j))
                            seq.append(v)
                            times.append((n, m))
        if not pairs:
            raise UserError(f"{where}: no hand is seen in two frames of one video within "
                            f"method.window={window} frames, so YouTube3DHands gives tempclr "
                            f"no clips ({len(folders)} videos, {len(videos)} hands)")
        self.pairs = torch.tensor(pairs, dtype=torch.int64)
        self.sequence = torch.tensor(seq, dtype=torch.int64)
        self.times = torch.tensor(times, dtype=torch.int64)

    def _partner(self, i: int, candidates: list[int], min_iou: float) -> int | None:
        """The hand of ``candidates`` on the same side as hand ``i`` that overlaps it most."""
        v = self.videos
        best, best_iou = None, min_iou
        for j in candidates:
            if v.flipped[j] == v.flipped[i] and (iou := _iou(v.extents[i], v.extents[j])) >= best_iou:
                best, best_iou = j, iou
        return best

    @property
    def n_sequences(self) -> int:
        return len(self.video_names)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        a, b = self.pairs[j].tolist()
        return {"clip": torch.stack([self.videos[a]["image"], self.videos[b]["image"]]),
                "sequence": self.sequence[j], "frames": self.times[j],
                "source": torch.tensor(0, dtype=torch.int64)}


class ClipMixture(Mixture):
    """Clip sets mixed by weight, drawn anew each epoch (``benchmarks.data.sources.Mixture``);
    ``source`` is the clip set's position."""

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        s, j = self.locate([key])[0].tolist()
        return {**self.datasets[s][j], "source": torch.tensor(s, dtype=torch.int64)}


def clip_source(data) -> TripletClips | VideoClips | ClipMixture:
    """The clips of a run's ``Data`` (``benchmarks.data.prepare``): its pre-training sources'
    sequences within ``method.window`` steps (see the module docstring)."""
    cfg = data.cfg
    window = int(cfg.method.window)
    sets, weights, names = [], [], []
    triplets = None
    require_sources(cfg.method.name, "sequences", cfg.pretrain.sources)   # as compose does
    for i, src in enumerate(cfg.pretrain.sources):
        kind = SEQUENCES[src.name]
        if kind == "triplets":
            if triplets is None:
                frames = data._triplet_source("train", cfg.pretrain.res).tensors["triplet"]
                triplets = len(sets)
                sets.append(TripletClips(frames, window))
                weights.append(0.0)
                names.append("synthetic triplets")
            weights[triplets] += float(src.weight)
        else:
            sets.append(VideoClips(data.sources[i], window))
            weights.append(float(src.weight))
            names.append(f"youtube3d {src.root}")
    for name, s in zip(names, sets):
        log.info("%s clips: %d pairs of frames at most %d steps apart from %d sequences",
                 name, len(s), window, s.n_sequences)
    if len(sets) == 1:
        out = sets[0]
    else:
        out = ClipMixture(sets, weights, seed=cfg.data.world_seed)
    out.names = names
    return out
