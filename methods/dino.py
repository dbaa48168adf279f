"""DINO: self-distillation with no labels (Caron et al., ICCV 2021).

Official code: facebookresearch/dino (``main_dino.py``). Built from lightly's parts
(``DINOProjectionHead``, ``DINOLoss``, ``update_momentum``), as lightly's DINO example is:

- a student (backbone, head) and a teacher (backbone, head), the teacher an exponential
  moving average of the student (``methods/momentum.py``) with momentum rising from 0.996 to
  1 on the cosine schedule (``--momentum_teacher 0.996``);
- the head ``MLP(2048, 2048) -> bottleneck 256 -> L2 norm -> weight-normalised Linear(65536)``
  with the last layer's norm fixed (``norm_last_layer``), and the last layer frozen for the
  first epoch of the paper's 100 (``method.freeze_last_layer_frac``, 0.01 of the steps);
- the cross-entropy between the teacher's centred, sharpened softmax (temperature 0.04,
  ``--teacher_temp``; a linear warm-up from ``method.warmup_teacher_temp`` over
  ``method.warmup_teacher_frac`` of the steps when set, the official code's default being none)
  and the student's softmax at 0.1, over every pair of different views; the centre follows the
  teacher's batch mean with momentum 0.9. The teacher sees the global views only.
- Views: two global views per image from the shared augmenter, and ``method.local_crops``
  local views (the paper: 10 at 96/224 of the global size; the official default 8): views
  zoomed in to 5-40 % of the crop's area (DINO's local scale range) and resized to
  ``round(0.43 x pretrain.res)`` pixels, seen by the student only.

Collapse is what DINO's centring and sharpening prevent; the logged ``teacher_entropy`` (of
the teacher's mean output, in nats; log(65536) = 11.1 when uniform) and ``kl`` (the loss
minus the teacher's own entropy) show which of the two failure modes a run is near: a
uniform teacher has maximal entropy, a one-hot one zero.

Deviations: the paper trains with AdamW and a weight decay rising from 0.04 to 0.4, at batch
1024; the suite's engine pre-trains every method with Adam (``pretrain.lr``,
``pretrain.weight_decay``, constant) on its warm-up cosine learning rate. Local crops are off
by default (``method.local_crops=0``), which costs little on small inputs but is not the
paper's multi-crop: set ``method.local_crops=10`` for it. The backbone passes per sample
count the global views (student and teacher); local views are charged by their measured
FLOPs. The frozen last layer gets a zero gradient rather than none (the official code drops
it), so a non-zero ``pretrain.weight_decay`` (Adam's L2 term) still shrinks it while frozen.
lightly's deprecated ``weight_norm`` on the last layer is re-expressed with torch's
parametrization (same weight; the deprecated form cannot be deep-copied after a forward pass,
and the harness copies the method to count a step's FLOPs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method, learned_by
from methods.byol import check_momentum
from methods.momentum import MomentumTeacher

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

LOCAL_AREA = (0.05, 0.4)        # DINO's local crop scale (fraction of the image's area)
LOCAL_SIZE = 96 / 224           # local crop side over global crop side


@dataclass
class DINOConfig(MethodConfig):
    name: str = "dino"
    hidden_dim: int = 2048              # head MLP width (paper: 2048)
    bottleneck_dim: int = 256           # (paper: 256)
    out_dim: int = 65536                # prototypes K (paper: 65536)
    teacher_temp: float = 0.04          # (paper: 0.04)
    warmup_teacher_temp: float = 0.04   # start of the optional warm-up (official default 0.04)
    warmup_teacher_frac: float = 0.0    # fraction of the steps it lasts (official default 0)
    student_temp: float = 0.1           # (paper: 0.1)
    center_momentum: float = 0.9        # (paper: 0.9)
    momentum_base: float = 0.996        # teacher momentum (paper: 0.996), cosine to 1
    freeze_last_layer_frac: float = 0.01   # last layer frozen for this fraction (paper: 1 of 100 epochs)
    local_crops: int = 0                # student-only local views (paper: 10)


def parametrized_weight_norm(layer: nn.Module) -> nn.Module:
    """lightly's weight-normed last layer, re-expressed with torch's parametrization (same
    weight, norm fixed at 1 and not trained, as ``norm_last_layer``): the deprecated
    ``nn.utils.weight_norm`` keeps a computed weight that cannot be deep-copied after a forward
    pass, and the harness copies the method to count a step's FLOPs."""
    from torch.nn.utils import remove_weight_norm
    from torch.nn.utils.parametrizations import weight_norm

    layer = weight_norm(remove_weight_norm(layer))
    g = layer.parametrizations.weight.original0
    g.data.fill_(1)
    g.requires_grad = False
    return layer


class DINO(MomentumTeacher, Method):
    objective = "kl"               # the cross-entropy less the teacher's entropy
    summary = "student matches a momentum teacher's centred, sharpened softmax (self-distillation)"
    citation = "Caron et al., ICCV 2021"
    inputs = ("images",)
    passes_per_sample = 4           # student and teacher, two global views each
    Config = DINOConfig

    UNIFORM_SHARE = 0.95     # a teacher entropy above this share of log K: near uniform (collapsed)

    @classmethod
    def learned(cls, cfg: DINOConfig, block: dict) -> tuple[str, bool]:
        """The default rule on ``kl``, and the teacher not collapsed to uniform: its entropy
        ends below ``UNIFORM_SHARE`` of log K (K = ``out_dim`` prototypes)."""
        import math

        limit = cls.UNIFORM_SHARE * math.log(cfg.out_dim)
        entropy = float(block["end"]["teacher_entropy"])
        return learned_by(cls.objective, block, ((
            f"teacher entropy ends below {cls.UNIFORM_SHARE:.0%} of log K ({limit:.3g} nats; not uniform)",
            entropy < limit),))

    @classmethod
    def settle(cls, cfg: DINOConfig, run=None) -> None:
        for key in ("hidden_dim", "bottleneck_dim", "out_dim", "teacher_temp",
                    "warmup_teacher_temp", "student_temp"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")
        for key in ("center_momentum", "warmup_teacher_frac", "freeze_last_layer_frac"):
            if not 0 <= getattr(cfg, key) <= 1:
                raise UserError(f"method.{key} must be in [0, 1] (got {getattr(cfg, key)})")
        check_momentum(cfg.momentum_base)
        if cfg.local_crops < 0:
            raise UserError(f"method.local_crops must be >= 0 (got {cfg.local_crops})")

    def __init__(self, cfg: DINOConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        import warnings

        from lightly.loss import DINOLoss
        from lightly.models.modules.heads import DINOProjectionHead

        super().__init__(cfg, backbone, feat_dim, augmenter)
        if augmenter is None:
            raise ValueError(f"{self.name} needs the shared augmenter")
        self.settle(cfg)
        self.momentum_base = cfg.momentum_base
        with warnings.catch_warnings():     # lightly's head uses the deprecated weight_norm,
            warnings.simplefilter("ignore", FutureWarning)     # replaced right below
            self.head = DINOProjectionHead(feat_dim, cfg.hidden_dim, cfg.bottleneck_dim,
                                           cfg.out_dim)
        self.head.last_layer = parametrized_weight_norm(self.head.last_layer)
        self.teacher_backbone, self.teacher_head = self.init_teacher(backbone, self.head)
        self.criterion = DINOLoss(output_dim=cfg.out_dim, teacher_temp=cfg.teacher_temp,
                                  student_temp=cfg.student_temp,
                                  center_momentum=cfg.center_momentum)
        for p in self.head.last_layer.parameters():      # frozen while the schedule says so
            if p.requires_grad:
                p.register_hook(self._freeze_last_layer)
        self.local_augmenter = None
        if cfg.local_crops:
            from dataclasses import fields

            from benchmarks.augment import Augmenter
            from benchmarks.config import AugmentConfig

            same = {f.name: getattr(augmenter.cfg, f.name) for f in fields(AugmentConfig)}
            zoom = (LOCAL_AREA[1] ** -0.5, LOCAL_AREA[0] ** -0.5)   # area fraction -> zoom
            self.local_augmenter = Augmenter(AugmentConfig(**{**same, "scale_min": zoom[0],
                                                              "scale_max": zoom[1]}))

    def _freeze_last_layer(self, grad: Tensor) -> Tensor:
        return grad * 0 if self.progress() < self.cfg.freeze_last_layer_frac else grad

    def teacher_temperature(self) -> float:
        c = self.cfg
        if c.warmup_teacher_frac > 0 and self.progress() < c.warmup_teacher_frac:
            t = self.progress() / c.warmup_teacher_frac
            return c.warmup_teacher_temp + t * (c.teacher_temp - c.warmup_teacher_temp)
        return c.teacher_temp

    def local_views(self, images: Tensor, generator: torch.Generator) -> list[Tensor]:
        import torch.nn.functional as F

        if self.local_augmenter is None:
            return []
        side = max(8, round(LOCAL_SIZE * images.shape[-1]))
        views = [self.local_augmenter(images, generator).images
                 for _ in range(self.cfg.local_crops)]
        return [F.interpolate(v, size=(side, side), mode="bilinear", antialias=True,
                              align_corners=False) for v in views]

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        import torch

        images = batch["image"]
        views = torch.cat([self.augmenter(images, generator).images for _ in range(2)])
        student = list(self.head(self.backbone(views)).chunk(2))
        student += [self.head(self.backbone(v)) for v in self.local_views(images, generator)]
        with torch.no_grad():
            teacher = list(self.teacher_head(self.teacher_backbone(views)).chunk(2))
        temp = self.teacher_temperature()
        with torch.no_grad():
            centred = (torch.stack(teacher).float() - self.criterion.center) / temp
            probs = centred.softmax(-1)
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
            mean = probs.mean((0, 1))
            mean_entropy = -(mean * mean.clamp_min(1e-12).log()).sum()
        loss = self.criterion([t.float() for t in teacher], [s.float() for s in student],
                              teacher_temp=temp)
        return loss, {"dino": float(loss.detach()), "teacher_entropy": float(mean_entropy),
                      "kl": float(loss.detach() - entropy)}


METHOD = DINO
