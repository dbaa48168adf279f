"""Whether a pre-training learned its task: each method's criterion on its held-out measure
(``Method.learned``) and the image-blind baselines it is read against (``Method.baseline``)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import methods
from benchmarks.augment import Augmenter
from benchmarks.config import AugmentConfig
from methods.base import COLLAPSED_STD, LEARN_MARGIN, learned_by

finite = st.floats(-50, 50, allow_nan=False)


def block(start, end, chance=None, baseline=None, **end_logs):
    out = {"objective": "loss", "start": {"loss": start}, "end": {"loss": end, **end_logs}, "chance": chance}
    if baseline is not None:
        out["baseline"] = {"loss": baseline}
    return out


@settings(max_examples=200, deadline=None)
@given(start=finite, end=finite, chance=st.none() | finite, baseline=st.none() | finite)
def test_the_default_rule_reads_the_nearest_reference_the_method_has(start, end, chance, baseline):
    """Learned iff the end is below the lower of its start and its reference by LEARN_MARGIN of
    the larger of the two in size: the reference is the image-blind baseline where there is
    one, else chance, else the start."""
    reference = baseline if baseline is not None else chance if chance is not None else start
    expected = end < min(start, reference) - LEARN_MARGIN * max(abs(reference), abs(start))
    words, ok = learned_by("loss", block(start, end, chance, baseline))
    assert ok == expected and "loss" in words


def test_an_objective_at_chance_or_a_collapsed_embedding_is_not_learned():
    assert learned_by("loss", block(4.9, 3.5, chance=4.84))[1]                 # SimCLR well below chance
    assert not learned_by("loss", block(4.9, 4.7, chance=4.84))[1]             # below chance, within 5 %
    assert not learned_by("loss", block(4.0, 4.5, chance=4.84))[1]             # rose while below chance
    assert learned_by("loss", block(-0.3, -0.6, chance=0.0, embedding_std=0.8))[1]
    assert not learned_by("loss", block(-0.3, -0.31, chance=0.0))[1]      # a zero reference keeps a margin
    words, ok = learned_by("loss", block(-0.3, -0.99, chance=0.0, embedding_std=COLLAPSED_STD / 2))
    assert not ok and "collapsed" in words


def test_vicreg_and_trajreg_need_spread_embeddings_not_just_a_falling_loss():
    for name in ("vicreg", "trajreg"):
        cls = methods.get(name)
        spread = block(34.0, 20.0, variance=0.3)
        near_collapse = block(34.0, 20.0, variance=0.86)         # the fall is all invariance
        assert cls.learned(cls.Config(), spread)[1]
        words, ok = cls.learned(cls.Config(), near_collapse)
        assert not ok and "variance" in words


def test_a_uniform_dino_teacher_is_collapsed():
    cls = methods.get("dino")
    cfg = cls.Config()
    uniform = {"objective": "kl", "start": {"kl": 2.0}, "end": {"kl": 0.5, "teacher_entropy": math.log(cfg.out_dim)},
               "chance": None}
    assert not cls.learned(cfg, uniform)[1]
    uniform["end"]["teacher_entropy"] = 0.5 * math.log(cfg.out_dim)
    assert cls.learned(cfg, uniform)[1]


def test_pairwise_is_judged_on_its_unweighted_errors_not_its_weighted_loss():
    """Its loss falls as the learned log-variances go negative; that alone is not learning."""
    cls = methods.get("pairwise")
    cfg = cls.Config()
    errors = {f"l1_{h}": 1.0 for h in cfg.heads}
    weights_only = {"objective": "loss", "chance": None,
                    "start": {"loss": 5.0, **errors}, "end": {"loss": -3.0, **errors}}
    assert not cls.learned(cfg, weights_only)[1]
    weights_only["end"].update({k: 0.5 for k in errors})
    assert cls.learned(cfg, weights_only)[1]


def test_supervised2d_baseline_is_the_best_constant_2d_pose_on_the_same_views():
    cls = methods.get("supervised2d")

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    method = cls(cls.Config(head_hidden=0), Flat(), 3, Augmenter(AugmentConfig()))
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(32, 21, 2, generator=g) * 20 + 6
    batch = {"image": torch.rand(32, 3, 32, 32, generator=g), "uv": uv}
    base = method.baseline(batch, torch.Generator().manual_seed(4))["loss"]
    _, target = method._targets(batch, torch.Generator().manual_seed(4))
    for other in (target.mean(0, keepdim=True), torch.zeros(1, 21, 2), target[:1]):   # other constants
        assert base <= float((other.expand_as(target) - target).abs().mean()) + 1e-6


def test_synthetic3d_baseline_is_predicting_zero_relative_depth():
    from benchmarks.pose_model import targets

    cls = methods.get("synthetic3d")
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(8, 21, 3, generator=g) * 0.03 + torch.tensor([0.0, 0.0, 0.5])
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(8, 3, 3)
    value = cls.baseline(None, {"xyz": xyz, "K": K}, g)["zrel"]
    assert value == pytest.approx(float(targets(xyz, K)["zrel"].abs().mean()))
    judged = {"objective": "zrel", "chance": None, "baseline": {"zrel": value},
              "start": {"loss": 30.0, "zrel": value}, "end": {"loss": 20.0, "zrel": value * 1.01}}
    words, ok = cls.learned(cls.Config(), judged)
    assert not ok and "zrel" in words           # the loss fell; relative depth did not


def test_held_out_points_are_evenly_spaced_and_end_at_the_last_step():
    from eval.heldout import points

    assert points(100, 1) == (100,) and points(100, 4) == (25, 50, 75, 100)
    assert points(3, 8) == (1, 2, 3)                          # fewer steps than points


def test_learned_at_is_the_first_measured_step_that_meets_the_criterion():
    from eval.heldout import judge

    cls = methods.get("simclr")
    curve = [{"step": s, "loss": v} for s, v in ((10, 4.9), (20, 4.7), (30, 4.4), (40, 4.5))]
    held = {"objective": "loss", "chance": 4.84, "start": {"loss": 4.95}, "end": {"loss": 4.5}, "curve": curve}
    judged = judge(cls, cls.Config(), held)
    assert judged["learned"] and judged["learned_at"] == 30          # 4.4 < 4.84 - 0.05 x 4.95 = 4.59
    never = judge(cls, cls.Config(), {**held, "curve": curve[:2], "end": {"loss": 4.7}})
    assert not never["learned"] and never["learned_at"] is None
    assert "learned_at" not in judge(cls, cls.Config(), {k: v for k, v in held.items() if k != "curve"})
