"""tempclr: one augmentation draw for both frames of a clip, NT-Xent at chance for unrelated
frames and lower when a clip's frames agree, and sources without sequences refused before
anything runs."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import methods
from benchmarks.augment import Augmenter
from benchmarks.config import AugmentConfig
from data_trees import youtube_tree
from orchestration.cli import main

TempCLR = methods.get("tempclr")
SMOKE = ["--profile", "smoke", "--budget", "1ep", "--dry-run"]


def build(**cfg):
    """Only the head and loss: an identity "backbone" over flattened 3 x 8 x 8 images."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten())
    return TempCLR(TempCLR.Config(**cfg), backbone, 3 * 8 * 8, Augmenter(AugmentConfig()))


def still_clips(b: int = 6, seed: int = 0) -> torch.Tensor:
    """(b, 2, 3, 8, 8) clips whose two frames are one image (a different one per clip)."""
    frame = torch.rand(b, 1, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return frame.expand(b, 2, 3, 8, 8).contiguous()


def halves(views: torch.Tensor, params: dict) -> tuple:
    """(first frames' views, second frames' views, first params, second params)."""
    v1, v2 = views.chunk(2)
    return v1, v2, {k: v.chunk(2)[0] for k, v in params.items()}, \
        {k: v.chunk(2)[1] for k, v in params.items()}


@pytest.mark.parametrize("coherence", ["batch", "clip"])
def test_both_frames_of_a_clip_get_one_draw(coherence):
    method = build(coherence=coherence)
    v1, v2, p1, p2 = halves(*method.augment_clips(still_clips(), torch.Generator().manual_seed(1)))
    for key in p1:
        assert torch.equal(p1[key], p2[key])
    assert torch.equal(v1, v2)                               # identical frames, identical views
    assert not torch.equal(v1, still_clips()[:, 0])          # and the augmentation did act
    # one image in every clip: with a draw per clip the clips' views differ as their
    # transforms do; with one draw for the batch they are one view
    same = still_clips(1).expand(6, 2, 3, 8, 8)
    w1, *_ = halves(*method.augment_clips(same, torch.Generator().manual_seed(1)))
    distinct = [not torch.equal(w1[0], w1[k]) for k in range(1, 6)]
    assert all(distinct) if coherence == "clip" else not any(distinct)
    assert len(set(p1["angle"].tolist())) == (6 if coherence == "clip" else 1)


def test_coherence_frame_draws_each_frame_on_its_own():
    method = build(coherence="frame")
    v1, v2, p1, p2 = halves(*method.augment_clips(still_clips(), torch.Generator().manual_seed(1)))
    assert not (p1["angle"] == p2["angle"]).any()
    assert not torch.equal(v1, v2)


def test_the_views_are_the_shared_augmenters_for_the_same_draw():
    """The views are what ``Augmenter.__call__`` makes from the same generator state."""
    method = build(coherence="frame")
    clips = torch.rand(4, 2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    views, params = method.augment_clips(clips, torch.Generator().manual_seed(7))
    direct = method.augmenter(torch.cat([clips[:, 0], clips[:, 1]]), torch.Generator().manual_seed(7))
    assert torch.equal(views, direct.images)
    assert all(torch.equal(params[k], direct.params[k]) for k in params)


def test_the_views_are_a_function_of_the_generator_state():
    method = build(coherence="clip")
    g = torch.Generator().manual_seed(3)
    first = method.augment_clips(still_clips(), g)[0]
    again = method.augment_clips(still_clips(), torch.Generator().manual_seed(3))[0]
    assert torch.equal(first, again)                         # a resumed step repeats its views
    assert not torch.equal(method.augment_clips(still_clips(), g)[0], first)


def test_ntxent_is_at_chance_for_unrelated_frames_and_lower_when_the_frames_agree():
    b = 64
    method = build(out_dim=128)
    g = torch.Generator().manual_seed(0)
    one = method.augmenter.sample(1, (64, 64), g, "cpu")
    params = {k: v.repeat(b, *[1] * (v.dim() - 1)) for k, v in one.items()}   # one batch draw
    z1, z2 = torch.randn(b, 128, generator=g), torch.randn(b, 128, generator=g)
    chance = math.log(2 * b - 1)
    assert method.contrast(z1, z2, params, params).item() == pytest.approx(chance, abs=0.05)
    agree = method.contrast(z1, z1 + 0.05 * z2, params, params).item()
    assert agree < chance - 1.5
    # the positive is the clip's other frame: the same embeddings paired across clips are chance
    shuffled = method.contrast(z1, z1.roll(1, dims=0), params, params).item()
    assert shuffled == pytest.approx(chance, abs=0.1)


def test_a_draw_per_clip_is_a_cue_the_positives_share():
    """Why ``coherence=batch`` is the default: with a draw per clip, the shift PeCLR's latent
    inverse subtracts is the same in both frames of a clip and differs between clips, so
    unrelated embeddings already score below chance."""
    b = 64
    method = build(out_dim=128)
    g = torch.Generator().manual_seed(0)
    params = method.augmenter.sample(b, (64, 64), g, "cpu")          # a draw per clip
    z1, z2 = torch.randn(b, 128, generator=g), torch.randn(b, 128, generator=g)
    assert method.contrast(z1, z2, params, params).item() < math.log(2 * b - 1) - 0.08


def test_a_step_passes_two_frames_per_clip_through_the_backbone():
    method = build()
    seen = []
    method.backbone.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    clips = torch.rand(5, 2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    loss, logs = method.loss({"clip": clips}, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and logs["ntxent"] == pytest.approx(float(loss.detach()))
    assert sum(seen) == 5 * TempCLR.passes_per_sample
    loss.backward()
    assert all(p.grad is not None for p in method.head.parameters())


def test_the_loss_pairs_each_frame_with_the_other_frame_of_its_own_clip():
    method = build()
    g = torch.Generator().manual_seed(4)
    still = still_clips(16, seed=1)                        # the two frames of a clip agree
    unrelated = torch.rand(16, 2, 3, 8, 8, generator=g)
    swapped = torch.stack([still[:, 0], still[:, 1].roll(1, dims=0)], dim=1)   # across clips
    with torch.no_grad():
        agree, mixed, crossed = (method.loss({"clip": c}, torch.Generator().manual_seed(0))[0].item()
                                 for c in (still, unrelated, swapped))
    chance = math.log(2 * 16 - 1)
    assert agree < chance - 1 and agree < mixed - 1 and agree < crossed - 1


@pytest.mark.parametrize("source", ["freihand"])
def test_a_source_without_sequences_is_refused_in_one_line(source, tmp_path, capsys):
    rc = main(["run", "--method", "tempclr", *SMOKE, f"pretrain.sources.0.name={source}",
               f"pretrain.sources.0.root={tmp_path}", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert f"method tempclr needs sequences of frames to pair in time, which " \
           f"pretrain.sources.0.name={source} does not have" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("words", [["pretrain.sources.0.name=youtube3d", "pretrain.sources.0.root=YT",
                                    "pretrain.batch_size=4"],
                                   ["pretrain.sources.0.name=synthetic_lab"], []])
def test_sources_with_sequences_compose(words, tmp_path, capsys):
    youtube_tree(tmp_path / "yt")
    words = [w.replace("YT", str(tmp_path / "yt")) for w in words]
    rc = main(["run", "--method", "tempclr", *SMOKE, *words, "--results", str(tmp_path / "r")])
    assert rc == 0, capsys.readouterr().err


@pytest.mark.parametrize("word, message", [
    ("method.window=0", "method.window must be a whole number of frames >= 1 (got 0)"),
    ("method.window=-2", "method.window must be a whole number of frames >= 1 (got -2)"),
    ("method.coherence=video", "method.coherence must be one of: batch, clip, frame")])
def test_bad_settings_are_refused_in_one_line(word, message, tmp_path, capsys):
    rc = main(["run", "--method", "tempclr", *SMOKE, word, "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err
