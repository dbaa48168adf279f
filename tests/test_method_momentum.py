"""BYOL, MoCo v3 and DINO: the target network gets no gradient, follows its momentum rule, and
a run interrupted mid pre-training resumes to the uninterrupted run's teacher."""
from __future__ import annotations

import math

import pytest
import torch

from benchmarks import batches as B
from benchmarks import engine as E
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig, EngineConfig
from eval.pretrain import method_loss
from methods.byol import BYOL, BYOLConfig
from methods.dino import DINO, DINOConfig
from methods.momentum import momentum_at
from methods.mocov3 import MoCoV3, MoCoV3Config, infonce

SMALL = {"byol": (BYOL, BYOLConfig(hidden_dim=64, out_dim=32)),
         "mocov3": (MoCoV3, MoCoV3Config(hidden_dim=64, out_dim=32)),
         "dino": (DINO, DINOConfig(hidden_dim=64, bottleneck_dim=16, out_dim=128,
                                   warmup_teacher_frac=0.5, warmup_teacher_temp=0.02))}
NAMES = tuple(SMALL)


def build(name: str):
    torch.manual_seed(0)
    cls, cfg = SMALL[name]
    backbone = create_backbone("resnet18")
    return cls(cfg, backbone, backbone.feat_dim, Augmenter(AugmentConfig())).train()


def images(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_schedule_runs_from_the_base_to_one():
    assert momentum_at(0, 100, 0.996) == pytest.approx(0.996)
    assert momentum_at(100, 100, 0.996) == pytest.approx(1.0)
    ms = [momentum_at(k, 100, 0.99) for k in range(101)]
    assert all(a <= b for a, b in zip(ms, ms[1:]))           # never falls
    assert ms[50] == pytest.approx(0.995)                     # cosine: halfway at mid-run


@pytest.mark.parametrize("name", NAMES)
def test_the_target_receives_no_gradient(name):
    method = build(name)
    loss, _ = method.loss({"image": images()}, torch.Generator().manual_seed(2))
    loss.backward()
    for student, teacher in method.pairs:
        assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert method.pairs[0][0] is method.backbone          # the student is what fine-tuning gets


@pytest.mark.parametrize("name", NAMES)
def test_the_target_follows_its_momentum_rule(name):
    method = build(name)
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.5)
    before = [[t.detach().clone() for t in teacher.parameters()] for _, teacher in method.pairs]
    loss, _ = method.loss({"image": images()}, torch.Generator().manual_seed(2))
    loss.backward()
    opt.step()
    method.after_step(3, 10)
    m = momentum_at(3, 10, method.momentum_base)
    assert 0 < m < 1
    moved = False
    for (student, teacher), old in zip(method.pairs, before):
        for t, s, t0 in zip(teacher.parameters(), student.parameters(), old):
            assert torch.allclose(t, m * t0 + (1 - m) * s.detach(), atol=1e-6)
            moved |= not torch.equal(t, t0)
    assert moved, "the optimizer step moved the student, so the teacher must move too"
    assert int(method.steps_done) == 3 and int(method.steps_total) == 10


def test_dino_teacher_temperature_warms_up_with_the_steps_done():
    method = build("dino")
    assert method.teacher_temperature() == pytest.approx(0.02)
    method.after_step(5, 20)                          # a quarter done, half of the warm-up
    assert method.teacher_temperature() == pytest.approx(0.03)
    method.after_step(10, 20)
    assert method.teacher_temperature() == pytest.approx(0.04)


def test_dino_last_layer_is_frozen_only_for_its_fraction():
    method = build("dino")
    method.cfg.freeze_last_layer_frac = 0.5
    last = [p for p in method.head.last_layer.parameters() if p.requires_grad]
    assert last
    for done, frozen in ((2, True), (6, False)):
        method.zero_grad()
        method.after_step(done, 10)
        loss, _ = method.loss({"image": images()}, torch.Generator().manual_seed(2))
        loss.backward()
        assert all((p.grad.abs().sum() == 0) == frozen for p in last)


def test_mocov3_infonce_at_chance_is_four_tau_log_batch():
    tau, n = 0.2, 16
    q = torch.zeros(n, 8)
    q[:, 0] = 1.0                                     # every similarity equal: chance
    loss = infonce(q, q.clone(), tau) + infonce(q, q.clone(), tau)
    assert loss.item() == pytest.approx(4 * tau * math.log(n), rel=1e-6)
    k = torch.eye(n)                                  # orthogonal keys, each query its own key
    assert (infonce(k, k.clone(), tau) * 2).item() < loss.item()


def test_mocov3_recipe_follows_the_backbone_family():
    from types import SimpleNamespace

    for backbone, want in (("resnet18", (1.0, 2, False)), ("vit_tiny_patch16_224", (0.2, 3, True))):
        cfg = MoCoV3Config()
        MoCoV3.settle(cfg, SimpleNamespace(backbone=backbone))
        assert (cfg.temperature, cfg.projector_layers, cfg.predictor_last_bn) == want
    cfg = MoCoV3Config(temperature=0.5)
    MoCoV3.settle(cfg, SimpleNamespace(backbone="vit_tiny_patch16_224"))
    assert cfg.temperature == 0.5                     # a value the user set is kept


@pytest.mark.parametrize("name", ("byol", "dino"))
def test_a_resumed_pretraining_ends_with_the_uninterrupted_teacher(name, tmp_path):
    source = B.TensorSource({"image": (images(12, 3) * 255).to(torch.uint8)})
    order = B.StepIndices(len(source), 6, 0)
    steps = 6

    def phase(folder, stop_at=None):
        method = build(name)
        calls = {"n": 0}

        def loss_fn(m, batch, g):
            calls["n"] += 1
            if stop_at is not None and calls["n"] == stop_at:
                E.request_stop()
            return method_loss(m, batch, g)

        return E.Phase(name="pretrain", module=method, loss_fn=loss_fn,
                       batches=lambda s: B.iterate(source, order, s, steps), steps=steps,
                       lr=1e-3, weight_decay=0.0, warmup_frac=0.0, images_per_step=12,
                       seed=0, ckpt_dir=folder,
                       after_step=lambda done: method.after_step(done, steps))

    cfg = EngineConfig(checkpoint_every=1, log_every=1, progress=False)
    ref = phase(tmp_path / "ref")
    E.Engine(cfg).fit(ref)
    E.clear_stop()
    with pytest.raises(E.Preempted):
        E.Engine(cfg).fit(phase(tmp_path / "cut", stop_at=4))
    E.clear_stop()
    resumed = phase(tmp_path / "cut")
    assert E.Engine(cfg).fit(resumed).resumed_from == 4
    assert int(resumed.module.steps_done) == steps
    for (k, a), b in zip(ref.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k


def test_embedding_std_tells_spread_from_collapse():
    from methods.base import embedding_std

    g = torch.Generator().manual_seed(0)
    assert embedding_std(torch.randn(512, 64, generator=g)) == pytest.approx(1.0, abs=0.05)
    one = torch.randn(1, 64, generator=g)
    assert embedding_std(one.expand(512, 64) * torch.rand(512, 1, generator=g)) < 1e-5
