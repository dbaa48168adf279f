"""MAE: masked autoencoders (He et al., "Masked Autoencoders Are Scalable Vision Learners",
CVPR 2022; official code facebookresearch/mae), on ViT backbones only.

Built from lightly's parts, on the timm ViT that is the run's backbone (``backbone.net``):

- masking: a uniformly random 75 % of the patch tokens of each image is removed
  (``method.mask_ratio``; the paper's ``len_keep = int(L (1 - ratio))``); the class token
  is always kept;
- encoder: ``MaskedVisionTransformerTIMM`` wrapping ``backbone.net``, which embeds the
  patches, adds the position embeddings (resampled to the input's grid, timm's dynamic image
  size) and runs the ViT's blocks and final norm on the kept tokens only;
- decoder: a linear embedding to ``decoder_dim``, the mask token at every removed position,
  the fixed 2D sine-cosine position embedding of the input's grid, ``decoder_depth`` timm
  blocks (lightly's ``MaskedVisionTransformerDecoderTIMM``) and a linear prediction of each
  patch's pixels;
- loss: the paper's normalised-pixel loss (``norm_pix_loss=True``, its default recipe):
  each target patch (lightly's ``patchify``, 16 x 16 x 3 values) is normalised by its own
  mean and variance (unbiased, + 1e-6, as the official code), and the mean squared error is
  averaged over the removed patches only;
- weights: MAE's initialisation of the encoder (xavier-uniform linear layers, the patch
  embedding initialised like a linear layer, class token N(0, 0.02), sine-cosine position
  embeddings; lightly's ``MaskedVisionTransformerTIMM`` defaults) and of the decoder.

Deviations, and values scaled for small CPU runs:

- decoder 128 wide, 2 blocks, 4 heads (``decoder_dim``, ``decoder_depth``,
  ``decoder_heads``; the paper: 512, 8, 16, the same 32 dimensions per head). The paper's
  ablation (Table 1a, 1b, ViT-L on ImageNet) finds fine-tuning accuracy unchanged at depth 2
  and at width 128 (linear probing drops); set the paper's sizes for a GPU study;
- the encoder's position embedding starts as MAE's fixed sine-cosine table but stays
  trainable in pre-training (the official code freezes it there and trains it in
  fine-tuning): fine-tuning here trains the same parameter, and a frozen flag set by the
  method would leave it frozen in a run that pre-trained and trainable in one whose backbone
  came from the pre-training cache;
- the decoder's sine-cosine table is computed for the input's own grid (2 x 2 patches at
  32 px, 4 x 4 at 64 px, 14 x 14 at 224 px, where it is the paper's);
- the random masking is ``random_token_mask``'s rule (argsort of uniform noise per image,
  class token kept) with the noise drawn from the step's generator, so that a resumed run
  repeats the masks; lightly's function draws from the global generator;
- augmentation: the shared augmenter's geometric warp (rotation, shift, zoom) stands in for
  the paper's random resized crop and flip; the colour jitter and blur stay off, as in the
  paper's default (``method.photometric=true`` switches them on; the paper's Table 1e);
- the target is the normalised network input (the official code's too), in ImageNet
  normalisation (``Backbone.normalise``), which the per-patch normalisation makes nearly
  irrelevant; the official encoder reads its images normalised outside the model, here the
  method normalises them because ``MaskedVisionTransformerTIMM`` calls the timm model's parts
  directly, past ``Backbone``.

One sample costs one backbone pass in the images accounting (``passes_per_sample``), though
the encoder runs on a quarter of the tokens and the decoder is small: a dry run's estimate
(batch x passes x one full image pass) overstates an MAE step 2- to 3-fold (measured on
ViT-Ti with the default decoder: 2.0 at 32 px, 2.6 at 64 px); the run's budget uses the
measured FLOPs of a step, which count what MAE does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig, vit_patch
from benchmarks.errors import UserError
from methods.base import Method

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


@dataclass
class MAEConfig(MethodConfig):
    name: str = "mae"
    mask_ratio: float = 0.75        # fraction of patches removed (paper: 0.75)
    decoder_dim: int = 128          # decoder width (paper: 512)
    decoder_depth: int = 2          # decoder blocks (paper: 8)
    decoder_heads: int = 4          # decoder attention heads (paper: 16; 32 dims per head)
    norm_pix_loss: bool = True      # per-patch normalised pixel targets (paper's default)
    photometric: bool = False       # colour jitter and blur on top of the geometric warp


def kept_patches(n_patches: int, mask_ratio: float) -> int:
    """How many of ``n_patches`` patch tokens the encoder sees (the paper's rule)."""
    return int(n_patches * (1 - mask_ratio))


def masked_patch_loss(pred: Tensor, target: Tensor, norm_pix: bool = True) -> Tensor:
    """MAE's loss of predicted patches ``pred`` (B, M, P) against target patches (B, M, P),
    both of the removed patches only: the mean squared error over every value, each target
    patch first normalised by its own mean and variance when ``norm_pix`` (official code's
    ``forward_loss``)."""
    target = target.float()
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    return ((pred.float() - target) ** 2).mean()


class MAE(Method):
    summary = "reconstruct the pixels of 75% masked patches from the rest (ViT only)"
    citation = "He et al., CVPR 2022"
    inputs = ("images",)
    passes_per_sample = 1           # one image a sample; the encoder sees 25% of its tokens
    backbones = ("vit",)
    Config = MAEConfig

    @classmethod
    def chance(cls, cfg: MAEConfig, batch_size: int) -> float | None:
        """With normalised targets, predicting each patch's own mean (zero) scores
        (P - 1) / P for the P = 16 x 16 x 3 values of the suite's patch-16 ViTs (a flat
        patch scores 0): the loss of a decoder that learned nothing about the pixels."""
        if not cfg.norm_pix_loss:
            return None
        values = 3 * 16 * 16
        return (values - 1) / values

    @classmethod
    def settle(cls, cfg: MAEConfig, run=None) -> None:
        if not 0 < cfg.mask_ratio < 1:
            raise UserError(f"method.mask_ratio must be in (0, 1) (got {cfg.mask_ratio})")
        for key in ("decoder_dim", "decoder_depth", "decoder_heads"):
            if not getattr(cfg, key) >= 1:
                raise UserError(f"method.{key} must be >= 1 (got {getattr(cfg, key)})")
        if cfg.decoder_dim % cfg.decoder_heads:
            raise UserError(f"method.decoder_dim={cfg.decoder_dim} must be a multiple of "
                            f"method.decoder_heads={cfg.decoder_heads}")
        if run is not None and run.backbone.startswith("vit_"):
            n = (run.pretrain.res // vit_patch(run.backbone)) ** 2
            keep = kept_patches(n, cfg.mask_ratio)
            if not 1 <= keep < n:
                raise UserError(f"method.mask_ratio={cfg.mask_ratio} keeps {keep} of the {n} "
                                f"patches at pretrain.res={run.pretrain.res}: MAE needs at least "
                                f"one seen and one masked patch")

    def __init__(self, cfg: MAEConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        from lightly.models.modules import MaskedVisionTransformerTIMM
        from lightly.models.modules.masked_vision_transformer_decoder_timm import (
            MaskedVisionTransformerDecoderTIMM)
        from lightly.models.modules.masked_vision_transformer_timm import init_weights
        from torch import nn

        from benchmarks.augment import Augmenter

        super().__init__(cfg, backbone, feat_dim, augmenter)
        if augmenter is None:
            raise ValueError(f"{self.name} needs the shared augmenter")
        if not getattr(backbone, "vit", False):
            raise ValueError(f"{self.name} pre-trains a ViT backbone only")
        self.settle(cfg)
        self.views = Augmenter(augmenter.cfg, photometric=cfg.photometric)
        vit = backbone.net
        self.patch = int(vit.patch_embed.patch_size[0])
        self.prefix = int(vit.num_prefix_tokens)
        self.encoder = MaskedVisionTransformerTIMM(vit=vit)      # MAE's init of the ViT
        vit.pos_embed.requires_grad_(True)       # sine-cosine start, trainable (docstring)
        self.encoder.mask_token.requires_grad_(False)   # unused: MAE drops, never masks, input
        self.decoder_embed = nn.Linear(vit.embed_dim, cfg.decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches, embed_dim=cfg.decoder_dim,
            depth=cfg.decoder_depth, num_heads=cfg.decoder_heads,
            num_prefix_tokens=self.prefix)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, self.patch ** 2 * 3)
        self.decoder_embed.apply(init_weights)
        self.decoder_pred.apply(init_weights)
        self._positions: dict = {}

    def draw_mask(self, batch: int, n_patches: int, generator: torch.Generator,
                  device) -> tuple[Tensor, Tensor]:
        """(idx_keep (B, prefix + keep), idx_mask (B, n - keep)) token indices, prefix tokens
        first and always kept; patch token i is index prefix + i."""
        import torch

        keep = kept_patches(n_patches, self.cfg.mask_ratio)
        if not 1 <= keep < n_patches:
            raise ValueError(f"mask_ratio {self.cfg.mask_ratio} keeps {keep} of {n_patches} patches")
        noise = torch.rand(batch, n_patches, generator=generator, device=device)
        order = torch.argsort(noise, dim=1) + self.prefix
        prefix = torch.arange(self.prefix, device=device).expand(batch, -1)
        return torch.cat([prefix, order[:, :keep]], dim=1), order[:, keep:]

    def positions(self, grid: int, like: Tensor) -> Tensor:
        """The decoder's fixed 2D sine-cosine embedding (1, prefix + grid^2, decoder_dim)."""
        import torch
        from lightly.models.utils import get_2d_sine_cosine_positional_embedding

        if grid not in self._positions:
            table = get_2d_sine_cosine_positional_embedding(
                self.cfg.decoder_dim, grid, num_prefix_tokens=self.prefix)
            self._positions[grid] = torch.from_numpy(table).float().unsqueeze(0)
        return self._positions[grid].to(device=like.device, dtype=like.dtype)

    def reconstruct(self, images: Tensor, targets: Tensor, generator: torch.Generator
                    ) -> tuple[Tensor, dict[str, float]]:
        """MAE's loss of square ``images`` (B, 3, H, W) in [0, 1] against the pixels of
        ``targets`` (the same images in training), the mask drawn from ``generator``."""
        from lightly.models import utils

        b, _, h, w = images.shape
        if h != w or h % self.patch:
            raise ValueError(f"MAE needs square images whose side is a multiple of "
                             f"{self.patch} (got {h} x {w})")
        grid = h // self.patch
        idx_keep, idx_mask = self.draw_mask(b, grid * grid, generator, images.device)
        encoded = self.encoder.encode(self.backbone.normalise(images), idx_keep=idx_keep)
        tokens = self.decoder_embed(encoded)
        full = utils.repeat_token(self.decoder.mask_token, (b, self.prefix + grid * grid))
        full = utils.set_at_index(full, idx_keep, tokens.type_as(full))
        decoded = self.decoder.decode(full + self.positions(grid, full))
        pred = self.decoder_pred(utils.get_at_index(decoded, idx_mask))
        patches = utils.patchify(self.backbone.normalise(targets), self.patch)
        target = utils.get_at_index(patches, idx_mask - self.prefix)
        loss = masked_patch_loss(pred, target, self.cfg.norm_pix_loss)
        return loss, {"reconstruction": float(loss.detach())}

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        views = self.views(batch["image"], generator).images
        return self.reconstruct(views, views, generator)


METHOD = MAE
