"""Weighted source mixing: proportions follow the weights whatever the sizes, draws are
deterministic, each source is covered evenly, and mixed items share one set of keys."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from benchmarks import batches as B
from benchmarks.data.sources import Mixture, mixture_indices, open_source
from benchmarks.errors import UserError
from data_trees import freihand_tree, wild_tree, youtube_tree


@pytest.mark.parametrize("weights, share", [((1, 1), 0.5), ((3, 1), 0.75), ((1, 0), 1.0)])
def test_sources_are_drawn_by_weight_whatever_their_sizes(weights, share):
    draws = mixture_indices([1000, 10], weights, 20000, seed=0)
    # binomial standard deviation is at most 0.0036: a 0.02 band is > 5 sigma
    assert abs(np.mean(draws[:, 0] == 0) - share) < 0.02


def test_draws_are_deterministic_given_the_seed():
    a = mixture_indices([50, 7, 3], [1, 2, 0.5], 500, seed=4)
    assert np.array_equal(a, mixture_indices([50, 7, 3], [1, 2, 0.5], 500, seed=4))
    assert not np.array_equal(a, mixture_indices([50, 7, 3], [1, 2, 0.5], 500, seed=5))
    assert a.dtype == np.int64 and a.shape == (500, 2)


def test_each_source_is_visited_in_whole_shuffled_passes():
    draws = mixture_indices([100, 7], [1, 1], 1000, seed=1)
    for s, size in ((0, 100), (1, 7)):
        idx = draws[draws[:, 0] == s, 1]
        full = len(idx) // size * size
        assert full >= size
        for start in range(0, full, size):
            assert sorted(idx[start:start + size]) == list(range(size))


@pytest.mark.parametrize("sizes, weights, n", [([10, 10], [1], 5), ([10, 10], [1, -1], 5),
                                               ([10, 10], [0, 0], 5), ([10, 0], [1, 1], 5),
                                               ([10], [float("nan")], 5), ([10], [1], -1)])
def test_bad_mixtures_are_user_errors(sizes, weights, n):
    with pytest.raises(UserError):
        mixture_indices(sizes, weights, n, seed=0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    freihand_tree(base / "fh", n=6, versions=1, frame=32, n_eval=1)
    wild_tree(base / "wild", n=3)
    youtube_tree(base / "yt")
    return [open_source("freihand", base / "fh", 16),
            open_source("synthetic_wild", base / "wild", 16),
            open_source("youtube3d", base / "yt", 16)]


def test_mixed_items_share_keys_and_collate(sources):
    mix = Mixture(sources, [1, 1, 1], seed=0)
    assert len(mix) == 6 + 3 + 4
    batch = next(iter(DataLoader(mix, batch_size=len(mix))))
    assert set(batch) == {"image", "uv", "source"}
    assert batch["image"].shape == (13, 3, 16, 16) and batch["image"].dtype == torch.uint8
    assert batch["uv"].shape == (13, 21, 2) and batch["uv"].dtype == torch.float32
    assert batch["source"].dtype == torch.int64
    assert np.array_equal(batch["source"].numpy(), mix.draws(0)[:, 0])
    # keypoints are known for FreiHAND and wild crops and NaN for YouTube3DHands
    known = ~batch["uv"].isnan().any(dim=(1, 2))
    assert torch.equal(known, batch["source"] != 2)
    assert ((batch["uv"][known] >= 0) & (batch["uv"][known] <= 16)).all()


def test_each_epoch_is_drawn_anew_and_reproducibly(sources):
    mix = Mixture(sources, [1, 1, 1], n=40, seed=3)
    first = mix.draws(0).copy()
    assert not np.array_equal(first, mix.draws(1))
    assert np.array_equal(first, Mixture(sources, [1, 1, 1], n=40, seed=3).draws(0))
    for key in (5, 40 + 5, 3 * 40 + 7):
        s, j = mix.draws(key // 40)[key % 40]
        assert torch.equal(mix[key]["image"], sources[s][j]["image"])


def test_every_item_of_the_larger_source_is_used_at_equal_weights():
    """PeCLR's 1 : 1 FreiHAND : YouTube3DHands over 130k and 47k images, scaled down: a fixed
    epoch-0 draw would leave about a third of the larger source unseen forever."""
    mix = Mixture([range(130), range(47)], [1, 1], seed=0)
    order = B.StepIndices(len(mix), 32, seed=0)
    steps = 20 * len(mix) // 32                       # 20 epochs
    where = mix.locate(torch.cat([order.for_source(mix, k) for k in range(steps)]))
    assert set(where[where[:, 0] == 0, 1].tolist()) == set(range(130))
    assert abs((where[:, 0] == 0).mean() - 0.5) < 0.02
    assert len(set(mix.draws(0)[mix.draws(0)[:, 0] == 0, 1].tolist())) < 110   # one epoch is not enough


def test_a_resumed_mixture_draws_what_the_uninterrupted_one_drew(sources):
    mix = Mixture(sources, [1, 2, 1], n=13, seed=1)
    order = B.StepIndices(len(mix), 5, seed=2)
    full = [b["image"] for b in B.iterate(mix, order, 0, 12)]
    resumed = [b["image"] for b in B.iterate(Mixture(sources, [1, 2, 1], n=13, seed=1),
                                             B.StepIndices(13, 5, seed=2), 7, 12)]
    assert all(torch.equal(a, b) for a, b in zip(full[7:], resumed))
    assert not torch.equal(full[0], full[3])      # steps 0 and 3 lie in different epochs


def test_unknown_source_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="choose from"):
        open_source("imagenet", tmp_path, 16)


def test_sources_held_in_memory_draw_exactly_what_the_streamed_mixture_draws(sources):
    from benchmarks.data.prepare import MixedTensors
    mix = Mixture(sources, [1, 1, 2], n=11, seed=4)
    held = MixedTensors(mix)
    keys = torch.tensor([0, 10, 11, 25, 47])
    batch = held.take(keys)
    for row, key in enumerate(keys.tolist()):
        item = mix[key]
        assert torch.equal(batch["image"][row], item["image"])
        assert torch.equal(batch["source"][row], item["source"])
        assert torch.equal(batch["uv"][row].isnan(), item["uv"].isnan())
