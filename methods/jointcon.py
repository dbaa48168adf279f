"""JointCon: supervised contrast of local image features at the 2D joints.

Follows the published description of JointCon in Choi, Nam, Lee, Moon and Lee, "Rethinking
Self-Supervised Visual Representation Learning in Pre-training for 3D Human Pose and Shape
Estimation", ICLR 2023: it "contrasts local image features of human joints instead of global
image features of images", using 2D joint labels, to remove the two weaknesses the paper names
in instance-level SSL (inconsistent representations of one class, one attribute per image).
The paper's loss, feature sampling and hyper-parameters were not available to us, so the
following is our construction from that description, not a reproduction:

- Views: two augmented views of each hand crop (the shared augmenter), the 2D joints mapped
  by each view's own geometric transform.
- Local features: a hypercolumn (Hariharan et al., CVPR 2015) sampled bilinearly
  (``grid_sample``) at every joint from the backbone stages of stride 8, 16 and 32 and
  concatenated (ResNet-18: 128 + 256 + 512 = 896 channels). The stride-8 map gives the
  localisation (8 x 8 cells at 64 px, 16 x 16 at 128 px, where a single stride-32 map is
  2 x 2 or 4 x 4); including the deeper stages means every stage of the backbone is trained,
  which a loss on the stride-8 map alone would leave at their initial weights, although
  fine-tuning uses the last stage's pooled features. ``feature_strides`` changes the set.
- Projection: MLP (Linear -> BN -> ReLU -> Linear, lightly's ``ProjectionHead``), then L2
  normalisation.
- Loss: supervised contrastive loss (Khosla et al., NeurIPS 2020, the L_out form) over all
  joint embeddings of the batch. Positives of an anchor share its joint identity: the same
  joint in the other view of the same image; with ``cross_image`` also the same joint in any
  other image. Everything else (other joints; with ``cross_image`` off also the same joint of
  other images) is a negative. Temperature 0.1, the value Khosla et al. use.
- Masking: joints whose uv is NaN (not labelled) or falls outside a view after augmentation
  are left out entirely, as anchors, positives and negatives.

Coordinates: uv in crop pixels, x right, y down, pixel (row i, col j) covering [j, j+1) x
[i, i+1); a stride-s feature cell (i, j) covers the image area [s j, s (j+1)) x [s i, s (i+1)),
so with ``align_corners=False`` an image point and its feature location share one normalised
coordinate 2 u / W - 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from benchmarks.config import MethodConfig
from benchmarks.errors import UserError
from methods.base import Method

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

RESNET_STRIDES = (2, 4, 8, 16, 32)     # the feature maps timm's ResNets expose (feature_info)


@dataclass
class JointConConfig(MethodConfig):
    name: str = "jointcon"
    feature_strides: list[int] = field(default_factory=lambda: [8, 16, 32])
    proj_hidden: int = 512
    proj_dim: int = 128
    temperature: float = 0.1
    cross_image: bool = False       # also count the same joint in other images as positive


def sample_at_points(fmap: Tensor, uv: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear samples of ``fmap`` (B, C, h, w) at image points ``uv`` (B, K, 2) -> (B, K, C).

    ``uv`` is in pixels of an image of ``size`` = (width, height) covering the same extent as
    the map (module docstring). Points must be finite; edge cells extend to the border.
    """
    import torch.nn.functional as F

    width, height = size
    scale = uv.new_tensor([2.0 / width, 2.0 / height])
    grid = (uv * scale - 1.0).unsqueeze(2)                       # (B, K, 1, 2)
    samples = F.grid_sample(fmap, grid.to(fmap.dtype), mode="bilinear",
                            padding_mode="border", align_corners=False)
    return samples.squeeze(3).transpose(1, 2)


def visible_joints(uv: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, K) bool: the joint is labelled (finite) and inside the image [0, W) x [0, H)."""
    width, height = size
    u, v = uv.unbind(-1)
    return uv.isfinite().all(-1) & (u >= 0) & (u < width) & (v >= 0) & (v < height)


def _all_gather(t: Tensor) -> Tensor:
    """Concatenation of ``t`` over DDP ranks, no gradient (labels)."""
    import torch
    import torch.distributed as torch_dist
    from lightly.utils import dist

    parts = [torch.empty_like(t) for _ in range(dist.world_size())]
    torch_dist.all_gather(parts, t)
    return torch.cat(parts)


def supcon_loss(z: Tensor, labels: Tensor, temperature: float = 0.1,
                gather_distributed: bool = True) -> Tensor:
    """Supervised contrastive loss (Khosla et al., NeurIPS 2020, L_out), mean over anchors.

    ``z`` (N, D) L2-normalised embeddings, ``labels`` (N,) int64 identities; a row labelled
    -1 is ignored. For anchor a with positives P(a) (same label, a excluded) and the set A(a)
    of all other kept rows:
        L_a = -1/|P(a)| sum_{p in P(a)} log( exp(z_a.z_p / t) / sum_{n in A(a)} exp(z_a.z_n / t) )
    Anchors without a positive are not averaged (they still act as negatives). Under DDP
    (``gather_distributed``) every rank's rows join the contrast set, labels must then be
    globally meaningful. Computed in float32, also under autocast.
    """
    import torch

    with torch.autocast(z.device.type, enabled=False):
        return _supcon(z.float(), labels, temperature, gather_distributed)


def _supcon(z: Tensor, labels: Tensor, temperature: float, gather_distributed: bool) -> Tensor:
    import torch
    from lightly.utils import dist

    contrast, contrast_labels = z, labels
    offset = 0
    if gather_distributed and dist.world_size() > 1:
        contrast = torch.cat(dist.gather(z))
        contrast_labels = _all_gather(labels)
        offset = dist.rank() * len(z)
    self_mask = torch.zeros(len(z), len(contrast), dtype=torch.bool, device=z.device)
    rows = torch.arange(len(z), device=z.device)
    self_mask[rows, rows + offset] = True
    kept = (contrast_labels >= 0).unsqueeze(0) & ~self_mask
    logits = (z @ contrast.T / temperature).masked_fill(~kept, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = kept & (labels.unsqueeze(1) == contrast_labels.unsqueeze(0)) \
        & (labels >= 0).unsqueeze(1)
    n_pos = positive.sum(1)
    anchors = n_pos > 0
    if not anchors.any():
        return z.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / n_pos[anchors]
    return per_anchor.mean()


class JointCon(Method):
    summary = "supervised contrast of local backbone features at the 2D joints, across two views"
    citation = "Choi et al., ICLR 2023 (as described; SupCon loss of Khosla et al., 2020)"
    inputs = ("images", "keypoints2d")
    passes_per_sample = 2
    backbones = ("resnet",)          # hypercolumns of a ResNet's strided stages
    Config = JointConConfig

    @classmethod
    def settle(cls, cfg: JointConConfig, run=None) -> None:
        strides = list(cfg.feature_strides)
        if not strides or any(s not in RESNET_STRIDES for s in strides):
            raise UserError(f"method.feature_strides={strides}: choose a non-empty subset of "
                            f"{list(RESNET_STRIDES)}")
        for key in ("proj_hidden", "proj_dim", "temperature"):
            if not getattr(cfg, key) > 0:
                raise UserError(f"method.{key} must be > 0 (got {getattr(cfg, key)})")

    def __init__(self, cfg: JointConConfig, backbone: nn.Module, feat_dim: int, augmenter=None):
        from lightly.models.modules.heads import ProjectionHead
        from torch import nn

        super().__init__(cfg, backbone, feat_dim, augmenter)
        info = list(backbone.net.feature_info)
        strides = [int(i["reduction"]) for i in info]
        missing = [s for s in cfg.feature_strides if s not in strides]
        if missing or not cfg.feature_strides:
            raise UserError(f"method.feature_strides={list(cfg.feature_strides)}: choose a "
                            f"non-empty subset of {strides}")
        self.stage_indices = [strides.index(s) for s in cfg.feature_strides]
        channels = sum(int(info[i]["num_chs"]) for i in self.stage_indices)
        self.head = ProjectionHead([
            (channels, cfg.proj_hidden, nn.BatchNorm1d(cfg.proj_hidden), nn.ReLU()),
            (cfg.proj_hidden, cfg.proj_dim, None, None),
        ])

    def joint_features(self, images: Tensor, uv: Tensor) -> Tensor:
        """Hypercolumn features (B, K, C) at the points ``uv`` (finite, pixels) of ``images``."""
        import torch

        maps = self.backbone.net.forward_intermediates(
            self.backbone.normalise(images), indices=self.stage_indices,
            intermediates_only=True, stop_early=True)
        size = (images.shape[-1], images.shape[-2])
        return torch.cat([sample_at_points(m, uv, size) for m in maps], dim=-1)

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        import torch
        import torch.nn.functional as F
        from lightly.utils import dist

        images, uv = batch["image"], batch["uv"]
        b, k = uv.shape[:2]
        views = [self.augmenter(images, generator, keypoints=uv) for _ in range(2)]
        view_images = torch.cat([v.images for v in views])
        view_uv = torch.cat([v.keypoints for v in views])                  # (2B, K, 2)
        size = (images.shape[-1], images.shape[-2])
        visible = visible_joints(view_uv, size)
        feats = self.joint_features(view_images, torch.nan_to_num(view_uv))

        image_ids = (dist.rank() * b + torch.arange(b, device=uv.device)).repeat(2)
        joint_ids = torch.arange(k, device=uv.device)
        if self.cfg.cross_image:
            labels = joint_ids.expand(2 * b, k)
        else:
            labels = image_ids.unsqueeze(1) * k + joint_ids

        # Project only visible joints (BatchNorm statistics of real features), then put them
        # back at fixed rows so that DDP ranks gather equally shaped tensors. A single visible
        # joint has nothing to contrast with (and BatchNorm needs two rows): it is dropped.
        flat = feats.reshape(2 * b * k, -1)
        keep = visible.reshape(-1).nonzero().squeeze(1)
        if len(keep) < 2:
            keep, visible = keep[:0], torch.zeros_like(visible)
        proj = F.normalize(self.head(flat[keep]).float(), dim=1)
        z = proj.new_zeros(len(flat), proj.shape[1]).index_put((keep,), proj)
        loss = supcon_loss(z, labels.masked_fill(~visible, -1).reshape(-1), self.cfg.temperature)
        return loss, {"loss": float(loss.detach()),
                      "visible_joints": float(visible.float().mean())}


METHOD = JointCon
