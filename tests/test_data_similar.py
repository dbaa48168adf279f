"""Mined similar hands (SiMHand): on the synthetic world the mined partners are much closer in
2D pose than random pairs, never the image itself or its own sequence (FreiHAND's versions of
one id), mined once and cached, and a source without keypoints is one clear line."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from benchmarks.batches import StepIndices, iterate, take
from benchmarks.data import Mixture, open_source
from benchmarks.data import similar as S
from benchmarks.data.prepare import Data
from benchmarks.errors import UserError
from data_trees import freihand_tree, wild_tree, youtube_tree
from orchestration import compose


def pose_distance(emb, a, b):
    """Mean per-joint distance of the normalised poses (the unit the embedding is built in)."""
    return np.linalg.norm((emb[a] - emb[b]).reshape(len(a), 21, 2), axis=-1).mean(-1)


@pytest.fixture(scope="module")
def synthetic(data_cache):
    cfg = compose.load(["method=simhand", "profile=smoke", "pretrain.sources.0.n=256"])
    data = Data(cfg)
    return data, data.pretrain_source(SiMHandInputs)


SiMHandInputs = ("similar",)


def test_mined_pairs_are_closer_in_pose_than_random_pairs(synthetic):
    """Measured: mined / random mean pose distance 0.23 at 256 wild hands (0.28 at 96); a broken search
    (random partners) gives about 1."""
    data, source = synthetic
    uv, groups, _ = S.mining_inputs(data)
    emb = S.pose_embedding(uv)
    n = len(uv)
    idx = np.arange(n)
    partner = source.partner
    shuffled = np.random.default_rng(0).permutation(n)
    shuffled = np.where(shuffled == idx, (shuffled + 1) % n, shuffled)
    mined, random = pose_distance(emb, idx, partner).mean(), pose_distance(emb, idx, shuffled).mean()
    assert mined < 0.5 * random, (mined, random)
    # the search is exact (float32): no other hand of another sequence is nearer in the PCA embedding
    pca = S.pca(emb, S.PCA_DIM)
    d = np.linalg.norm(pca[:, None] - pca[None], axis=-1)
    d[groups[:, None] == groups[None]] = np.inf
    np.testing.assert_allclose(d[idx, partner], d.min(1), rtol=1e-5)


def test_never_the_image_itself_and_items_carry_their_partner(synthetic):
    data, source = synthetic
    partner = torch.from_numpy(source.partner)
    assert (partner != torch.arange(len(partner))).all()
    order = StepIndices(len(source), 16, seed=0)
    b = next(iterate(source, order, 0, 1))
    assert set(b) >= {"image", "uv", "partner", "partner_uv"}
    assert b["partner"].shape == b["image"].shape and b["partner_uv"].shape == (16, 21, 2)
    keys = order.for_source(source, 0)
    where = source.mixture.locate(keys)
    g = torch.from_numpy(source.offsets[where[:, 0]] + where[:, 1])
    mixture_items = take(data.pretrain_source(("images",)), keys)
    assert torch.equal(b["image"], mixture_items["image"])     # the draws every method sees
    assert torch.equal(b["partner"], source.tensors["image"][partner[g]])
    assert torch.equal(b["partner_uv"], source.tensors["uv"][partner[g]])
    assert not torch.equal(b["partner"], b["image"])


def fake_data(tmp_path, specs, pca_dim=None):
    """What ``similar_source`` reads of ``Data``: sources, their config, the cache, the mixture."""
    sources = [open_source(name, root, 16) for name, root, _ in specs]
    cfg = {"pretrain": {"sources": [{"name": n, "weight": w} for n, _, w in specs]}}
    if pca_dim is not None:
        cfg["method"] = {"pca_dim": pca_dim}
    return SimpleNamespace(sources=sources, cfg=OmegaConf.create(cfg), cache=tmp_path / "cache",
                           _mixture=Mixture(sources, [w for *_, w in specs], seed=0))


def test_freihand_versions_of_one_id_are_one_sequence(tmp_path):
    """Each id's other versions have the same keypoints (distance 0) yet are never partners,
    also when the folder is listed twice; the file-backed items carry the partner's crop."""
    freihand_tree(tmp_path / "fh", n=5, versions=3, frame=32, n_eval=1)
    data = fake_data(tmp_path, [("freihand", tmp_path / "fh", 1.0), ("freihand", tmp_path / "fh", 1.0)])
    source = S.similar_source(data)
    assert isinstance(source, S.SimilarMixture) and source.epoch_keyed
    ids = np.concatenate([d.image_ids % d.n_unique for d in data.sources])
    assert len(ids) == 30 and (ids[source.partner] != ids).all()
    item = source[7]
    s, j = data._mixture.locate([7])[0]
    g = source.offsets[s] + j
    ps = int(np.searchsorted(source.offsets, source.partner[g], side="right") - 1)
    other = data.sources[ps][int(source.partner[g] - source.offsets[ps])]
    assert torch.equal(item["partner"], other["image"]) and torch.equal(item["partner_uv"], other["uv"])
    assert torch.equal(item["image"], data.sources[s][j]["image"])


def test_a_source_with_weight_zero_gives_no_partner(tmp_path):
    wild_tree(tmp_path / "a", n=6, seed=1)
    wild_tree(tmp_path / "b", n=6, seed=2)
    data = fake_data(tmp_path, [("synthetic_wild", tmp_path / "a", 1.0),
                                ("synthetic_wild", tmp_path / "b", 0.0)])
    assert (S.similar_source(data).partner < 6).all()


def test_pairs_are_mined_once_and_keyed_by_what_decides_them(tmp_path, monkeypatch):
    wild_tree(tmp_path / "w", n=8)
    first = S.similar_source(fake_data(tmp_path, [("synthetic_wild", tmp_path / "w", 1.0)])).partner
    files = list((tmp_path / "cache" / "similar").glob("pairs-*.npy"))
    assert len(files) == 1 and not list((tmp_path / "cache" / "similar").glob(".*tmp*"))

    def no_mining(*args, **kwargs):
        raise AssertionError("mined again")
    monkeypatch.setattr(S, "mine", no_mining)
    again = S.similar_source(fake_data(tmp_path, [("synthetic_wild", tmp_path / "w", 1.0)])).partner
    assert np.array_equal(first, again)
    with pytest.raises(AssertionError, match="mined again"):     # another PCA size: another key
        S.similar_source(fake_data(tmp_path, [("synthetic_wild", tmp_path / "w", 1.0)], pca_dim=0))
    files[0].write_bytes(b"not an array")                       # a damaged entry is mined anew
    with pytest.raises(AssertionError, match="mined again"):
        S.similar_source(fake_data(tmp_path, [("synthetic_wild", tmp_path / "w", 1.0)]))


def test_a_source_without_keypoints_or_a_single_sequence_is_one_line(tmp_path):
    youtube_tree(tmp_path / "yt")
    wild_tree(tmp_path / "w", n=4)
    data = fake_data(tmp_path, [("synthetic_wild", tmp_path / "w", 1.0), ("youtube3d", tmp_path / "yt", 1.0)])
    with pytest.raises(UserError, match=r"^similar-hand mining needs 2D keypoints, but pre-training "
                                        r"source pretrain.sources.1 \(youtube3d\) has none"):
        S.similar_source(data)
    freihand_tree(tmp_path / "fh", n=1, versions=2, frame=32, n_eval=1)
    with pytest.raises(UserError, match="hold one sequence only"):
        S.similar_source(fake_data(tmp_path, [("freihand", tmp_path / "fh", 1.0)]))
