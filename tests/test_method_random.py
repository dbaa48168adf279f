"""random: an init-only method that leaves timm's initialisation exactly as it is."""
import torch

import methods
from benchmarks.backbone import create_backbone
from benchmarks.backbone_weights import apply_init


def test_random_is_init_only_and_keeps_the_weights():
    cls = methods.get("random")
    assert cls.pretrains is False and cls.passes_per_sample == 0 and cls.inputs == ()
    assert getattr(cls, "external_pretrain", None) is None
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    before = {k: v.clone() for k, v in backbone.net.state_dict().items()}
    apply_init(cls.init_weights(cls.Config()), backbone)
    after = backbone.net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_random_init_is_timm_init_under_the_seed():
    """Same seed, same network: the baseline is reproducible; another seed differs."""
    nets = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        nets.append(create_backbone("resnet18").net.conv1.weight.detach())
    assert torch.equal(nets[0], nets[1]) and not torch.equal(nets[0], nets[2])
    # He-normal, fan-out: std = sqrt(2 / (out_channels * k * k)) = sqrt(2 / (64 * 49))
    assert abs(float(nets[0].std()) / (2 / (64 * 49)) ** 0.5 - 1) < 0.05
