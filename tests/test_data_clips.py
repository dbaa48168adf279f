"""TempCLR's clips: two different frames of one sequence or video within the time window, never
two sequences, never one frame twice; where they come from follows ``pretrain.sources``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmarks import batches as B
from benchmarks.data.clips import SEQUENCES, ClipMixture, TripletClips, VideoClips, clip_source
from benchmarks.data.triplets import Triplets
from benchmarks.data.youtube import YouTube3D
from benchmarks.errors import UserError
from data_trees import VIEW_GREY, freihand_tree, triplets_tree, write_image, write_json, youtube_tree
from benchmarks.config import SOURCE_HAS

RES = 24


def coded_triplets(n: int) -> torch.Tensor:
    """(n, 3, 3, 4, 4) uint8 frames; frame a of triplet s is filled with 1 + 3 s + a."""
    codes = 1 + 3 * torch.arange(n)[:, None] + torch.arange(3)[None, :]
    return codes[:, :, None, None, None].expand(n, 3, 3, 4, 4).to(torch.uint8).contiguous()


def decode_triplet(frame: torch.Tensor) -> tuple[int, int]:
    code = int(frame[0, 0, 0]) - 1
    return code // 3, code % 3


@pytest.mark.parametrize("window, steps", [(1, {(0, 1), (1, 2)}), (2, {(0, 1), (1, 2), (0, 2)}),
                                           (5, {(0, 1), (1, 2), (0, 2)})])
def test_triplet_clips_are_two_frames_of_one_triplet_within_the_window(window, steps):
    clips = TripletClips(coded_triplets(5), window)
    assert len(clips) == 5 * len(steps)
    batch = clips.take(torch.arange(len(clips)))
    assert batch["clip"].shape == (len(clips), 2, 3, 4, 4) and batch["clip"].dtype == torch.uint8
    seen = set()
    for clip, seq, frames in zip(batch["clip"], batch["sequence"], batch["frames"]):
        (s0, a), (s1, b) = decode_triplet(clip[0]), decode_triplet(clip[1])
        assert s0 == s1 == int(seq)                       # one triplet, never two
        assert a != b and (a, b) in steps                 # two different frames in the window
        assert (a, b) == tuple(frames.tolist())
        seen.add((s0, a, b))
    assert seen == {(s, a, b) for s in range(5) for a, b in steps}    # each clip once


def test_triplet_clips_read_from_the_triplets_files_keep_the_view_order(tmp_path):
    triplets_tree(tmp_path, frame=RES)
    frames = torch.stack([t["triplet"] for t in Triplets(tmp_path, "train", RES, preload=True)])
    clips = TripletClips(frames, window=1)
    assert len(clips) == 3 * 2                           # three training triplets
    grey_to_view = {g: i for i, g in enumerate(VIEW_GREY.values())}   # l, c, r -> 0, 1, 2
    for item in B.in_order(clips, 4):
        for clip in item["clip"]:
            a, b = (grey_to_view[min(VIEW_GREY.values(), key=lambda g: abs(g - float(f.float().mean())))]
                    for f in clip)
            assert b - a == 1                            # (left, centre) or (centre, right)


def test_a_window_below_one_is_refused():
    with pytest.raises(UserError, match="method.window must be >= 1"):
        TripletClips(coded_triplets(2), 0)


# A YouTube3DHands tree with three videos. Each hand's box is painted a grey of its own, so a
# crop's centre says which hand it shows. Video a: a right hand moving slowly over frames 10,
# 11, 12, 14 (frame 13 is not annotated), a left hand in 11 and 12, another left hand far away
# in 14. Video b: a right hand in frames 3 and 4 at video a's place, then a left hand in its
# place in frame 5. Video c: one frame.
HANDS = [  # video, frame, is_left, (x0, y0, x1, y1)
    ("a", 10, 0, (10, 10, 30, 40)),
    ("a", 11, 0, (12, 10, 32, 40)), ("a", 11, 1, (50, 5, 70, 35)),
    ("a", 12, 0, (14, 10, 34, 40)), ("a", 12, 1, (52, 5, 72, 35)),
    ("a", 14, 0, (16, 12, 36, 42)), ("a", 14, 1, (60, 42, 75, 57)),
    ("b", 3, 0, (10, 10, 30, 40)), ("b", 4, 0, (11, 11, 31, 41)), ("b", 5, 1, (11, 11, 31, 41)),
    ("c", 7, 0, (10, 10, 30, 40)),
]
GREY = [40 + 15 * k for k in range(len(HANDS))]
# the clips a hand-check of the boxes gives (hand indices, earlier frame first)
WINDOW_1 = {(0, 1), (1, 3), (2, 4), (3, 5), (7, 8)}
WINDOW_2 = WINDOW_1 | {(0, 3), (1, 5)}


def videos_tree(root) -> None:
    images, annotations, frames = [], [], {}
    rng = np.random.default_rng(0)
    for k, (video, number, is_left, (x0, y0, x1, y1)) in enumerate(HANDS):
        name = f"youtube/{video}/video/frames/{number}.png"
        if name not in frames:
            frames[name] = np.zeros((60, 80, 3), dtype=np.uint8)
            images.append({"name": name, "width": 80, "height": 60, "id": len(images)})
        frames[name][y0:y1, x0:x1] = GREY[k]
        verts = np.column_stack([rng.uniform(x0, x1, 778), rng.uniform(y0, y1, 778),
                                 np.zeros(778)])
        verts[0, :2], verts[1, :2] = (x0, y0), (x1, y1)
        annotations.append({"vertices": verts.tolist(), "is_left": is_left,
                            "image_id": [im["id"] for im in images if im["name"] == name][0],
                            "id": k})
    for name, frame in frames.items():
        write_image(root / name.replace(".png", ".jpg"), frame)
    write_json(root / "youtube_train.json", {"images": images, "annotations": annotations})


def hand_of(crop: torch.Tensor) -> int:
    """The hand a crop shows, from the grey at its centre."""
    grey = int(crop[:, RES // 2, RES // 2].float().mean())
    return min(range(len(GREY)), key=lambda k: abs(GREY[k] - grey))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    videos_tree(root)
    return YouTube3D(root, "train", RES)


@pytest.mark.parametrize("window, expected", [(1, WINDOW_1), (2, WINDOW_2)])
def test_video_clips_are_one_hand_in_two_frames_of_one_video_within_the_window(videos, window,
                                                                                expected):
    clips = VideoClips(videos, window)
    assert len(clips) == len(expected)
    batch = B.take(clips, torch.arange(len(clips)))
    pairs = set()
    for clip, seq, frames in zip(batch["clip"], batch["sequence"], batch["frames"]):
        i, j = hand_of(clip[0]), hand_of(clip[1])
        (vi, ni, si, _), (vj, nj, sj, _) = HANDS[i], HANDS[j]
        assert vi == vj and clips.video_names[int(seq)] == f"youtube/{vi}/video/frames"
        assert si == sj and ni < nj and (ni, nj) == tuple(frames.tolist())
        pairs.add((i, j))
    # never across videos (video b's hand sits where video a's does), never a left hand with a
    # right one, never the far-away left hand, never a frame twice; frame 13's gap is one step
    assert pairs == expected


def test_videos_with_one_frame_each_give_no_clips_in_one_line(tmp_path):
    youtube_tree(tmp_path)                      # every frame is its own video
    with pytest.raises(UserError) as err:
        VideoClips(YouTube3D(tmp_path, "train", RES), window=3)
    assert "no hand is seen in two frames of one video" in str(err.value)
    assert "\n" not in str(err.value)


def test_the_sources_with_sequences_are_named_alike_where_compose_checks_them():
    assert set(SEQUENCES) == {name for name, has in SOURCE_HAS.items() if "sequences" in has}


@pytest.fixture(scope="module")
def smoke_cfg(tmp_path_factory):
    """The smoke profile's config for tempclr with a private data cache."""
    from orchestration import compose

    cache = tmp_path_factory.mktemp("clips-cache")
    cfg = compose.load(["profile=smoke", "method=tempclr", f"data.cache={cache}",
                        "data.n_triplets=8", "data.n_train=32", "data.n_eval=8",
                        "pretrain.sources.0.n=16", "finetune.batch_size=8"])
    return cfg


def _with_sources(cfg, sources):
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    cfg.pretrain.sources = sources
    return cfg


def test_clip_source_follows_the_pretraining_sources(smoke_cfg, videos):
    from benchmarks.data.prepare import Data

    data = Data(smoke_cfg)                                   # synthetic_wild: the triplets
    source = clip_source(data)
    assert isinstance(source, TripletClips) and source.names == ["synthetic triplets"]
    triplets = data._triplet_source("train", smoke_cfg.pretrain.res).tensors["triplet"]
    assert len(source) == len(triplets) * 3                  # window 2: every pair of a triplet
    assert torch.equal(source.frames, triplets)

    mixed = _with_sources(smoke_cfg, [{"name": "synthetic_wild", "n": 16, "weight": 1.0},
                                      {"name": "synthetic_lab", "n": 16, "weight": 1.0},
                                      {"name": "youtube3d", "root": str(videos.root), "weight": 2.0}])
    source = clip_source(Data(mixed))
    assert isinstance(source, ClipMixture) and source.weights == [2.0, 2.0]   # one triplet set
    assert source.names == ["synthetic triplets", f"youtube3d {videos.root}"]
    order = B.StepIndices(len(source), 8, seed=0)
    batch = next(B.iterate(source, order, 0, 1))
    assert batch["clip"].shape == (8, 2, 3, smoke_cfg.pretrain.res, smoke_cfg.pretrain.res)
    assert set(batch["source"].tolist()) <= {0, 1}


def test_clip_source_refuses_a_source_without_sequences(smoke_cfg, tmp_path):
    from benchmarks.data.prepare import Data

    freihand_tree(tmp_path, n=4, versions=1, frame=32, n_eval=1)
    cfg = _with_sources(smoke_cfg, [{"name": "freihand", "root": str(tmp_path), "weight": 1.0}])
    with pytest.raises(UserError, match="pretrain.sources.0.name=freihand does not have"):
        clip_source(Data(cfg))
