"""Every registered method passes the same checks (one parametrised test over the registry).

Builds the method on a tiny backbone, runs a few pre-training steps through the shared engine
on a fixed batch (the loss is finite and falls), measures its FLOPs per step, and loads the
pre-trained backbone into the fine-tune harness's pose model.
"""
import dataclasses

import pytest
import torch

import methods
from benchmarks import batches as B
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig, EngineConfig
from benchmarks.engine import Engine, Phase
from benchmarks.flops import count_step_flops
from eval import heldout
from eval.pretrain import method_baseline, method_loss
from benchmarks.pose_model import PoseNet
from methods.base import INPUTS

RES, N = 32, 8


def fixed_batch() -> dict:
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(N, 21, 2, generator=g) * (RES * 0.6) + RES * 0.2
    uv[0, 3] = float("nan")                      # a source without this keypoint
    return {"image": (torch.rand(N, 3, RES, RES, generator=g) * 255).to(torch.uint8),
            "uv": uv,
            "triplet": (torch.rand(N, 3, 3, RES, RES, generator=g) * 255).to(torch.uint8),
            "gesture": torch.randint(0, 8, (N,), generator=g),
            "xyz": torch.randn(N, 21, 3, generator=g) * 0.03 + torch.tensor([0.0, 0.0, 0.5]),
            "K": torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(N, 3, 3).clone(),
            "viewpoint": torch.rand(N, 3, 2, generator=g) * 90,
            "partner": (torch.rand(N, 3, RES, RES, generator=g) * 255).to(torch.uint8),
            "partner_uv": torch.rand(N, 21, 2, generator=g) * (RES * 0.6) + RES * 0.2,
            "clip": (torch.rand(N, 2, 3, RES, RES, generator=g) * 255).to(torch.uint8)}


def backbone_name(cls) -> str:
    """resnet18, or a ViT for methods that pre-train ViTs only (MAE)."""
    return "resnet18" if "resnet" in cls.backbones else "vit_tiny_patch16_224"


def build(name: str):
    cls = methods.get(name)
    torch.manual_seed(0)
    backbone = create_backbone(backbone_name(cls))
    method = cls(cls.Config(), backbone, backbone.feat_dim, Augmenter(AugmentConfig()))
    return cls, backbone, method


def test_registry_is_explicit_and_rejects_duplicates():
    assert methods.names() == ["random", "imagenet", "simclr", "peclr", "pairwise", "jointcon",
                               "vicreg", "trajreg", "supervised2d", "synthetic3d", "weights",
                               "simhand", "tempclr", "byol", "mocov3", "dino", "barlowtwins",
                               "mae", "control"]
    cls = methods.get("simclr")
    impostor = type("Impostor", (cls,), {})
    with pytest.raises(ValueError, match="registered twice"):
        methods.register(impostor)


@pytest.mark.parametrize("name", methods.names())
def test_method_declares_itself(name):
    cls = methods.get(name)
    assert cls.name == name and cls.summary and cls.citation
    assert set(cls.inputs) <= set(INPUTS)
    assert dataclasses.is_dataclass(cls.Config) and cls.Config().name == name
    assert (cls.passes_per_sample > 0) == cls.pretrains


@pytest.mark.parametrize("name", [n for n in methods.names() if methods.get(n).pretrains])
def test_pretrains_and_hands_over_to_finetuning(name, tmp_path):
    cls, backbone, method = build(name)
    batch = fixed_batch()
    source = B.TensorSource(batch)
    order = B.StepIndices(N, N, seed=0)               # the same batch (permuted) every step
    steps = 8
    def same_views(m, b, g):   # a fixed batch: the same augmented views at every step
        return method_loss(m, b, torch.Generator().manual_seed(5))

    ph = Phase(name="pretrain", module=method, loss_fn=same_views,
               batches=lambda s: B.iterate(source, order, s, steps), steps=steps, lr=1e-4,
               weight_decay=0.0, warmup_frac=0.5, images_per_step=N * cls.passes_per_sample,
               seed=0, ckpt_dir=tmp_path / "ckpt")
    g = torch.Generator().manual_seed(5)
    flops = count_step_flops(method, method_loss, batch, g)
    assert flops > 0
    def fixed_loss():   # batch statistics (train mode), the same views every time
        with torch.no_grad():
            loss, logs = method_loss(method, batch, torch.Generator().manual_seed(5))
        return float(loss) if cls.objective == "loss" else logs[cls.objective]

    before = fixed_loss()
    start = heldout.objective(method, method_loss, source, N, "cpu")
    out = Engine(EngineConfig(progress=False, log_every=1, checkpoint_every=100)).fit(ph)
    losses = [r["loss"] for r in out.curve]
    assert len(losses) == steps and all(torch.isfinite(torch.tensor(losses)))
    after = fixed_loss()
    assert after < before, f"{name}: loss did not fall on a fixed batch ({before} -> {after})"
    # the harness's verdict on the held-out measure: a criterion in words and true or false
    held = {"objective": cls.objective, "chance": cls.chance(method.cfg, N), "start": start,
            "end": heldout.objective(method, method_loss, source, N, "cpu")}
    base = heldout.baseline(method, method_baseline, source, N, "cpu")
    if base is not None:
        held["baseline"] = base
    judged = heldout.judge(cls, method.cfg, held)
    assert isinstance(judged["learned"], bool) and judged["criterion"], name

    # the checkpoint's backbone loads into the fine-tune harness
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["module"]
    net_state = {k[len("backbone.net."):]: v for k, v in state.items() if k.startswith("backbone.net.")}
    fresh = create_backbone(backbone_name(cls))
    fresh.net.load_state_dict(net_state)
    pose = PoseNet(fresh, fresh.feat_dim)
    pose.eval()
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]).expand(2, 3, 3)
    out = pose(torch.rand(2, 3, RES, RES), K)
    assert torch.isfinite(out["xyz_norm"]).all()
    for k, v in pose.backbone.net.state_dict().items():
        assert torch.equal(v, net_state[k])
    trained = dict(backbone.net.named_parameters())
    for k, v in fresh.net.named_parameters():      # the weights the pre-training produced
        assert torch.equal(v, trained[k])


def test_synthetic3d_pretrains_with_the_harness_pose_loss():
    """Its defining property: the pre-training loss is the fine-tuning step's pose loss on the
    synthetic 3D labels (here with an identity augmenter, so the targets are the raw labels)."""
    from benchmarks.config import FinetuneConfig
    from benchmarks.pose_model import pose_loss, targets

    cls = methods.get("synthetic3d")
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    cfg = cls.Config(head="heatmap", depth_weight=0.7, heatmap_weight=0.3, heatmap_sigma=1.5)
    identity = AugmentConfig(rotate_deg=0, translate=0, scale_min=1, scale_max=1, brightness=0,
                             contrast=0, saturation=0, hue=0, blur_p=0)
    method = cls(cfg, backbone, backbone.feat_dim, Augmenter(identity)).eval()
    batch = fixed_batch()
    loss, logs = method_loss(method, batch, torch.Generator().manual_seed(1))
    images = batch["image"].float() / 255
    want, _ = pose_loss(method.pose(images, batch["K"]), targets(batch["xyz"], batch["K"]), RES,
                        0.7, 0.3, 1.5)
    assert torch.allclose(loss, want, rtol=1e-5) and logs["loss"] == pytest.approx(float(want.detach()), rel=1e-5)
    # unset settings are the fine-tuning's own, filled in from the run config when composed
    from orchestration import compose
    run = compose.load(["method=synthetic3d", "profile=cpu", "finetune.depth_weight=0.25"])
    assert run.method.depth_weight == 0.25 and run.method.head == run.finetune.head == "heatmap"
    assert cls.Config().head is None and FinetuneConfig().head == "regression"
