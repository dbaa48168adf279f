"""TempCLR: time-coherent contrastive learning (Ziani, Fan, Kocabas, Christen, Hilliges, 3DV 2022).

"TempCLR: Reconstructing Hands via Time-Coherent Contrastive Learning"; official code
eth-ait/tempclr. What the paper states: pre-training on unlabelled videos (YouTube3DHands)
with a standard CNN, no synthetic data and no pseudo-labels; the positives are frames of
one video that lie close in time; the augmentation is applied consistently along time.

What this file does
-------------------
- A sample is a clip (``benchmarks/data/clips.py``): two *different* frames of one sequence
  at most ``window`` steps apart, never the same frame twice and never two sequences.
- The positive pair is (frame t, frame t + k) of one clip; the negatives are the other
  2B - 2 frames of the batch. Backbone, head and loss are PeCLR's (``methods/peclr.py``):
  one backbone pass over the 2B views, the projection ``Linear(feat, 512) -> BN -> ReLU ->
  Linear(512, 128)``, each view's rotation, zoom and shift undone in latent space, lightly's
  NT-Xent at temperature 0.5 (chance level log(2B - 1)).
- Time-coherent augmentation: the two frames of a clip get the same augmentation
  parameters (geometry, colour, blur), one draw of the shared augmenter, so that what tells
  them apart is the sequence's own change (pose, viewpoint, motion). ``coherence`` says what
  one draw covers:

  - ``batch`` (default): every clip of the step. The augmentation is then the same for the
    positives and the negatives and cannot solve the contrast; it varies from step to step.
  - ``clip``: each clip its own draw, the literal reading. The positives then share an
    augmentation the negatives lack: the warp's black border and the tint are identical in
    both frames, and so is the shift the latent inverse subtracts from both projections, a
    cue that matches the pair without looking at the hand (at random embeddings the loss is
    already below chance, 4.72 against log(127) = 4.84 at B = 64; the tests measure it).
  - ``frame``: each frame its own draw (PeCLR on two frames of a sequence), the ablation
    without temporal consistency.

Deviations and choices (from the paper's text we could read; the public repository holds
inference code only, and the training code archive its README links was not read)
--------------------------------------------------------------------------------------
- Loss, head and temperature: PeCLR's (the method TempCLR extends, from the same lab), not
  verified against TempCLR's training code.
- One augmentation draw per batch by default rather than per clip (above). BatchNorm's batch
  statistics absorb part of a batch-wide colour change, so colour varies less in effect.
- ``window`` = 2 steps by default, a choice: the paper's window was not read. Steps are the
  sequence's own frames: a triplet's positions, a video's annotated frames in frame-number
  order (see ``clips.py``).
- Frames come from ``pretrain.sources``: the synthetic sources stand for the synthetic
  world's viewpoint triplets (``trajreg``'s set: three views of one still hand along a smooth
  camera path, so time moves the camera, not the hand; the paper's videos move both), and
  ``youtube3d`` for its videos (a hand linked across frames by side and box overlap, as the
  data set has no track ids). A source without sequences (FreiHAND) is refused at compose
  time. The paper pre-trains on YouTube3DHands alone.
- False negatives are not removed: two clips of one video (or, on the synthetic world, of one
  hand's four triplets) in one batch repel each other.
- An ``ep`` budget counts the profile's pre-training images, as for ``trajreg``, not clips.
- Batch 16-128 on the small profiles (the paper's batch was not read); temperature unscaled.

Backbone passes per sample: 2 (the two frames of a clip).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.errors import UserError
from methods.peclr import PeCLR, PeCLRConfig

if TYPE_CHECKING:
    import torch
    from torch import Tensor

COHERENCE = ("batch", "clip", "frame")   # what one augmentation draw covers (see above)


@dataclass
class TempCLRConfig(PeCLRConfig):
    name: str = "tempclr"
    window: int = 2                 # the two frames of a clip: at most this many steps apart
    coherence: str = "batch"        # one augmentation draw per: batch | clip | frame


def apply_views(augmenter, images: Tensor, params: dict[str, Tensor]) -> Tensor:
    """``images`` (N, 3, H, W) through the shared augmenter with the given per-image
    ``params`` (what ``Augmenter.__call__`` does after its draw)."""
    from benchmarks.augment import color_jitter, gaussian_blur, warp

    out = images
    if augmenter.geometric:
        out = warp(out, augmenter.affine(params))
    if augmenter.photometric:
        out = gaussian_blur(color_jitter(out, params["color"]), params["blur"])
    return out


class TempCLR(PeCLR):
    summary = ("PeCLR's equivariant NT-Xent between two frames of one sequence close in time, "
               "augmented consistently")
    citation = "Ziani et al., 3DV 2022"
    inputs = ("clips",)
    passes_per_sample = 2
    Config = TempCLRConfig

    @classmethod
    def settle(cls, cfg: TempCLRConfig, run=None) -> None:
        super().settle(cfg, run)
        if cfg.weighting != "none":       # PeCLR's option; TempCLR's positives have no weights
            raise UserError(f"method {cls.name} takes no method.weighting (got "
                            f"{cfg.weighting!r}): SiMHand's weights are for simhand, peclr, simclr")
        if isinstance(cfg.window, bool) or not cfg.window >= 1:
            raise UserError(f"method.window must be a whole number of frames >= 1 "
                            f"(got {cfg.window})")
        if cfg.coherence not in COHERENCE:
            raise UserError(f"method.coherence must be one of: {', '.join(COHERENCE)} "
                            f"(got {cfg.coherence!r})")

    def augment_clips(self, clip: Tensor, generator: torch.Generator
                      ) -> tuple[Tensor, dict[str, Tensor]]:
        """Views (2B, 3, H, W) of ``clip`` (B, 2, 3, H, W), the B first frames then the B
        second frames, and their per-view parameters: one draw from ``generator`` for the
        batch, for each clip or for each frame (``coherence``)."""
        import torch

        b = clip.shape[0]
        images = torch.cat([clip[:, 0], clip[:, 1]])
        n = {"batch": 1, "clip": b, "frame": 2 * b}[self.cfg.coherence]
        drawn = self.augmenter.sample(n, tuple(images.shape[-2:]), generator, images.device)
        times = 2 * b // n                      # batch: every view; clip: both frames
        params = {k: v.repeat(times, *[1] * (v.dim() - 1)) for k, v in drawn.items()}
        return apply_views(self.augmenter, images, params), params

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        views, params = self.augment_clips(batch["clip"], generator)
        z1, z2 = self.head(self.backbone(views)).chunk(2)
        p1, p2 = ({k: v.chunk(2)[i] for k, v in params.items()} for i in (0, 1))
        loss = self.contrast(z1, z2, p1, p2)
        return loss, {"ntxent": float(loss.detach())}


METHOD = TempCLR
