"""simhand: SiMHand's adaptive weights and weighted NT-Xent against hand computations, the
method against PeCLR, the keypoint refusals, and ids that the new ``weighting`` option of
simclr / peclr leaves unchanged."""
import json
import math
from pathlib import Path

import pytest
import torch
from lightly.loss import NTXentLoss
from omegaconf import OmegaConf

import methods
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig, run_id
from benchmarks.errors import UserError
from benchmarks.run import pretrain_key
from methods.similarity_weights import WeightedNTXent, linear_weights, weighted_ntxent
from orchestration import compose
from orchestration.cli import main

SiMHand = methods.get("simhand")
PeCLR = methods.get("peclr")
SimCLR = methods.get("simclr")
ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "results" / "cpu-study" / "records"


def hands(b, seed=0):
    return torch.rand(b, 21, 2, generator=torch.Generator().manual_seed(seed)) * 32


def test_identical_hands_weigh_one_and_the_farthest_zero():
    j1 = hands(4)
    offsets = torch.tensor([0.0, 1.0, 3.0, 10.0])          # mpjpe of a shifted copy = the shift
    j2 = j1 + torch.stack([offsets, torch.zeros(4)], 1)[:, None]
    pos, neg = linear_weights(j1, j2)
    torch.testing.assert_close(pos, torch.tensor([1.0, 0.9, 0.7, 0.0]))
    assert neg.shape == (8, 8) and torch.allclose(neg, neg.T)
    assert torch.all(neg.diagonal() == 1) and neg.min() == 0
    d = (torch.cat([j1, j2])[:, None] - torch.cat([j1, j2])[None]).norm(dim=-1).mean(-1)
    far = divmod(int(d.argmax()), 8)
    assert neg[far] == 0
    # one entry by hand: (max D - D_ab) / (max D - min D), min D = 0 (a hand with itself)
    assert neg[1, 6] == pytest.approx(float((d.max() - d[1, 6]) / d.max()), rel=1e-5)


def test_a_batch_of_equal_distances_weighs_one_not_nan():
    j = hands(3)
    pos, neg = linear_weights(j, j.clone())
    assert torch.equal(pos, torch.ones(3))
    pos1, _ = linear_weights(j[:1], j[:1] + 5)               # a single pair
    assert torch.equal(pos1, torch.ones(1))


def test_with_every_weight_one_the_loss_is_lightlys_ntxent():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    ones = weighted_ntxent(z1, z2, torch.ones(6), torch.ones(12, 12), temperature=0.5)
    torch.testing.assert_close(ones, NTXentLoss(temperature=0.5)(z1, z2), atol=1e-6, rtol=0)


def test_weighted_loss_is_the_official_formula():
    """-log(exp(w_i s_i+ / t) / sum_{j != i} exp(W_ij s_ij / t)), by loops over anchors."""
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    pos, neg = linear_weights(hands(5, 3), hands(5, 4))
    assert 0 < pos.mean() < 1 and 0 < neg.mean() < 1
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).double()
    want = 0.0
    for a in range(10):
        partner = (a + 5) % 10
        num = math.exp(float(z[a] @ z[partner]) * float(pos[a % 5]) / 0.5)
        den = sum(math.exp(float(z[a] @ z[b]) * float(neg[a, b]) / 0.5) for b in range(10) if b != a)
        want -= math.log(num / den) / 10
    assert float(weighted_ntxent(z1, z2, pos, neg, 0.5)) == pytest.approx(want, rel=1e-5)
    # the weights matter: unweighted NT-Xent of the same embeddings differs
    assert abs(float(NTXentLoss(temperature=0.5)(z1, z2)) - want) > 0.05


def build(cls, geometric=True, **cfg):
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    return cls(cls.Config(**cfg), backbone, backbone.feat_dim,
               Augmenter(AugmentConfig(), geometric=geometric))


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, 32, 32, generator=g),
            "partner": torch.rand(n, 3, 32, 32, generator=g),
            "uv": torch.rand(n, 21, 2, generator=g) * 20 + 6,
            "partner_uv": torch.rand(n, 21, 2, generator=g) * 20 + 6}


def test_unweighted_simhand_is_peclr_with_the_partner_as_second_image():
    b = batch()
    same = dict(b, partner=b["image"])
    simhand = build(SiMHand, weighting="none").train()
    peclr = build(PeCLR).train()
    peclr.load_state_dict(simhand.state_dict())
    got, _ = simhand.loss(same, torch.Generator().manual_seed(3))
    want, _ = peclr.loss(same, torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, want)
    other, _ = simhand.loss(b, torch.Generator().manual_seed(3))   # the partner is contrasted
    assert abs(float(other.detach()) - float(got.detach())) > 1e-3


def test_weights_come_from_the_views_keypoints():
    """Without geometry the views keep their keypoints: hands all alike weigh 1 (the plain
    loss); distinct hands change the loss, and the logged mean positive weight is below 1."""
    b = batch()
    alike = dict(b, uv=b["uv"][:1].expand(6, 21, 2), partner_uv=b["uv"][:1].expand(6, 21, 2))
    weighted = build(SiMHand, geometric=False).train()
    plain = build(SiMHand, geometric=False, weighting="none").train()
    plain.load_state_dict(weighted.state_dict())
    a, logs = weighted.loss(alike, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, plain.loss(alike, torch.Generator().manual_seed(4))[0])
    assert logs["pos_weight"] == 1.0
    c, logs = weighted.loss(b, torch.Generator().manual_seed(4))
    assert abs(float(c.detach()) - float(a.detach())) > 1e-3 and logs["pos_weight"] < 1.0
    c.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in weighted.parameters())


def test_weighted_simclr_uses_the_two_views_keypoints():
    """SimCLR_w: the same image twice, the weights from each view's mapped keypoints."""
    b = batch()
    m = build(SimCLR, weighting="linear").train()
    g = torch.Generator().manual_seed(5)
    loss, _ = m.loss(b, g)
    g = torch.Generator().manual_seed(5)
    v1 = m.augmenter(b["image"], g, keypoints=b["uv"])
    v2 = m.augmenter(b["image"], g, keypoints=b["uv"])
    z1, z2 = m.head(m.backbone(torch.cat([v1.images, v2.images]))).chunk(2)
    want = WeightedNTXent(v1.keypoints, v2.keypoints)(z1, z2)
    torch.testing.assert_close(loss, want)


@pytest.mark.parametrize("words,message", [
    (["--method", "simhand"], "method simhand needs 2D keypoints, which "
                              "pretrain.sources.0.name=youtube3d does not have"),
    (["--method", "simhand", "method.weighting=none"], "youtube3d does not have"),
    (["--method", "peclr", "method.weighting=linear"],
     "method peclr needs 2D keypoints for method.weighting=linear, which "
     "pretrain.sources.0.name=youtube3d does not have"),
    (["--method", "simclr", "method.weighting=linear"], "method simclr needs 2D keypoints"),
])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_a_source_without_keypoints_is_refused_in_one_line(words, message, dry, tmp_path,
                                                           capsys, data_cache):
    yt = tmp_path / "yt"
    yt.mkdir()
    rc = main(["run", "--profile", "smoke", *words, "pretrain.sources.0.name=youtube3d",
               f"pretrain.sources.0.root={yt}", "--results", str(tmp_path / "r"),
               *(["--dry-run"] if dry else [])])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_unweighted_baselines_still_take_a_keypointless_source():
    cfg = compose.load(["method=peclr", "pretrain.sources.0.name=youtube3d",
                        "pretrain.sources.0.root=/nonexistent"], need_data=False)
    assert cfg.method.weighting == "none"


@pytest.mark.parametrize("words,message", [
    (["method=simhand", "method.weighting=nonlinear"], "method.weighting must be one of: linear, none"),
    (["method=simclr", "method.weighting=pos"], "method.weighting must be one of: linear, none"),
    (["method=simhand", "method.pca_dim=43"], "method.pca_dim must be in [0, 42]"),
])
def test_bad_settings_are_user_errors(words, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compose.load(words, need_data=False)


@pytest.mark.parametrize("method", ["simclr", "peclr"])
def test_the_weighting_option_keeps_committed_ids(method):
    """Records committed before ``weighting`` existed keep their run id and cache key."""
    record = json.loads(next(RECORDS.glob(f"{method}-*/result.json")).read_text())
    old = record["config"]
    assert "weighting" not in old["method"]
    new = json.loads(json.dumps(old))
    new["method"]["weighting"] = "none"
    assert run_id(new) == run_id(old) == record["run_id"]
    assert pretrain_key(new) == pretrain_key(old)
    new["method"]["weighting"] = "linear"
    assert run_id(new) != record["run_id"] and pretrain_key(new) != pretrain_key(old)
    # a config composed today carries the key at its default, and its id is the old rule's
    cfg = compose.load([f"method={method}"], need_data=False)
    assert cfg.method.weighting == "none"
    d = OmegaConf.to_container(cfg, resolve=True)
    without = json.loads(json.dumps(d))
    del without["method"]["weighting"]
    assert run_id(d) == run_id(without) and pretrain_key(d) == pretrain_key(without)
