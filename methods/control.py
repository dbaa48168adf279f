"""The warm-start control: regress the colour jitter of one augmented view.

Every pre-training in the pilot study beat random init, barely-trained objectives included;
that is what a warm start on hand images would do whatever it learned (BatchNorm statistics
and first filters fitted to these frames, a better-conditioned start). This method spends
the same compute on the same frames and views with an objective that carries no pose
information, so that a method's gain over it, not over random init, is what its objective
adds:

- One view per sample from the shared augmenter, geometry and photometry as every method's
  views; a head on the pooled features (Linear -> ReLU -> Linear, ``head_hidden`` 0: one
  linear layer) regresses the view's colour parameters: brightness, contrast and saturation
  factors and the hue shift, each scaled by its range to U(-1, 1)
  (``(factor - 1) / pretrain.augment.<factor>``, ``shift / pretrain.augment.hue``).
  A parameter whose range is 0 is constant and is not a target. Loss: L1, mean over the
  targets.
- **Why it carries no pose information.** The targets are drawn by the augmenter from the
  step's generator, independently of the frame: target and hand pose are independent
  random variables, so the loss gives the backbone no signal about the pose, only about
  the view's colour statistics, which the frame's pose does not set. (The blur is not a
  target: half the views have none, and its sigma is read off edges, which the hand's
  outline would supply.)
- Chance: a constant 0, the targets' mean, scores L1 0.5 whatever the frames; the held-out
  measure is read against it.

It needs what every image method needs (``images``), passes each sample once (as
``supervised2d``; under FLOP matching it takes twice the steps of a two-view method) and
refuses a pre-training whose colour ranges are all 0, where it would have nothing to learn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

COLOUR = ("brightness", "contrast", "saturation", "hue")     # the order of Views.params["color"]


@dataclass
class ControlConfig(MethodConfig):
    name: str = "control"
    head_hidden: int = 512


def colour_targets(color: Tensor, ranges: tuple[float, ...]) -> Tensor:
    """The augmenter's (B, 4) colour parameters as U(-1, 1) targets, for the parameters whose
    range is not 0 (B, k): factors as ``(f - 1) / range``, the hue shift as ``shift / range``."""
    import torch

    active = [i for i, r in enumerate(ranges) if r > 0]
    offset = torch.tensor([1.0, 1.0, 1.0, 0.0], device=color.device)[active]
    scale = torch.tensor([ranges[i] for i in active], device=color.device)
    return (color[:, active] - offset) / scale


class Control(Method):
    summary = "warm-start control: regress one view's colour jitter (no pose information)"
    citation = "this suite's control (pose-free targets drawn by the augmenter)"
    passes_per_sample = 1
    Config = ControlConfig

    @classmethod
    def settle(cls, cfg: ControlConfig, run=None) -> None:
        if cfg.head_hidden < 0:
            raise UserError(f"method.head_hidden must be >= 0, 0 for a linear head (got {cfg.head_hidden})")
        if run is not None and not any(run.pretrain.augment[k] > 0 for k in COLOUR):
            raise UserError("method control regresses the colour jitter of its views, but "
                            "pretrain.augment.brightness, contrast, saturation and hue are all 0: "
                            "give one of them a range")

    @classmethod
    def chance(cls, cfg: ControlConfig, batch_size: int) -> float:
        """Predicting 0 for U(-1, 1) targets: mean |U(-1, 1)| = 0.5."""
        return 0.5

    def __init__(self, cfg: ControlConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        from torch import nn

        super().__init__(cfg, backbone, feat_dim, augmenter)
        self.ranges = tuple(float(getattr(augmenter.cfg, k)) for k in COLOUR)
        out = sum(r > 0 for r in self.ranges)
        self.head = (nn.Sequential(nn.Linear(feat_dim, cfg.head_hidden), nn.ReLU(),
                                   nn.Linear(cfg.head_hidden, out))
                     if cfg.head_hidden > 0 else nn.Linear(feat_dim, out))

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        view = self.augmenter(batch["image"], generator)
        target = colour_targets(view.params["color"], self.ranges)
        loss = (self.head(self.backbone(view.images)).float() - target).abs().mean()
        return loss, {"loss": float(loss.detach())}


METHOD = Control
