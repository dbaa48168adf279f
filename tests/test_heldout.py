"""The held-out measure of a pre-training's objective: the same views at both ends, and a method
left exactly as it was found (a run that measures trains as one that does not)."""
from __future__ import annotations

import math

import torch

from benchmarks import batches as B
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from eval import heldout
from eval.pretrain import method_loss
from methods.dino import DINO, DINOConfig
from methods.simclr import SimCLR, SimCLRConfig


def _source(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return B.TensorSource({"image": (torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8)})


def _dino():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    return DINO(DINOConfig(hidden_dim=32, bottleneck_dim=16, out_dim=64), backbone,
                backbone.feat_dim, Augmenter(AugmentConfig())).eval()


def test_measuring_changes_no_state_and_repeats():
    method = _dino()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.get_rng_state()
    first = heldout.objective(method, method_loss, _source(), 8, torch.device("cpu"))
    second = heldout.objective(method, method_loss, _source(), 8, torch.device("cpu"))
    assert first == second                                  # the same views, the same state
    assert set(first) >= {"loss", "kl", "teacher_entropy"}
    for k, v in method.state_dict().items():                # BN statistics, DINO's centre
        assert torch.equal(v, before[k]), k
    assert not method.training                              # its mode restored
    assert torch.equal(torch.get_rng_state(), rng)          # the global generator untouched


def test_the_measure_sees_only_its_batches_and_tells_learned_from_not():
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    method = SimCLR(SimCLRConfig(hidden_dim=32, out_dim=16), backbone, backbone.feat_dim,
                    Augmenter(AugmentConfig()))
    source = _source(40)
    assert heldout.images(source, 8) == 4 * 8                # BATCHES batches of the batch size
    start = heldout.objective(method, method_loss, source, 8, torch.device("cpu"))["loss"]
    assert abs(start - SimCLR.chance(method.cfg, 8)) < 0.5  # untrained: near log(2B - 1)
    assert SimCLR.chance(method.cfg, 8) == math.log(15)
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    order = B.StepIndices(len(source), 8, 0)
    for k, batch in enumerate(B.iterate(source, order, 0, 30)):
        loss, _ = method_loss(method, batch, torch.Generator().manual_seed(k))
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = heldout.objective(method, method_loss, source, 8, torch.device("cpu"))["loss"]
    assert end < start - 0.03                               # it learned, and the measure sees it


def test_the_start_is_kept_for_a_resumed_run(tmp_path):
    method = _dino()
    first = heldout.start_measure(method, method_loss, _source(), 8, torch.device("cpu"), tmp_path)
    with torch.no_grad():
        for p in method.parameters():
            p.add_(0.1)                                     # trained meanwhile
    again = heldout.start_measure(method, method_loss, _source(), 8, torch.device("cpu"), tmp_path)
    assert again == first
