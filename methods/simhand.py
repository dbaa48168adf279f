"""SiMHand: contrastive pre-training on mined similar hands (Lin*, Ohkawa*, Huang, Zhang, Cai,
Li, Furuta and Sato, "SiMHand: Mining Similar Hands for Large-Scale 3D Hand Pose
Pre-training", ICLR 2025; official code ``ut-vision/SiMHand``, model ``HandCLR_W`` in
``src/models/unsupervised/simhand_w_model.py``, weights and loss in ``src/models/utils.py``).

- Positives are two *different* images whose hands are similar: each pre-training item and
  its partner, the nearest hand of another sequence in a 2D-pose embedding, mined once over
  the pre-training set and cached (``benchmarks/data/similar.py`` says how, and what a
  sequence is for each source). ``method.pca_dim`` is the PCA size of the embedding (14, the
  paper's option; 0 for the 42 normalised coordinates).
- Each of the two images gets its own view from the shared augmenter, both go through one
  backbone pass and PeCLR's head, and PeCLR's equivariant projection undoes each view's
  rotation, zoom and shift in latent space (``methods/peclr.py``, reused as it is).
- The contrast is SiMHand's parameter-free adaptive weighting (``get_weights_linear`` with
  ``diff_type=mpjpe``, applied to positives and negatives, ``pos_neg``), temperature 0.5
  (``methods/similarity_weights.py``). ``method.weighting=none`` is the paper's ablation
  without weights: plain NT-Xent (lightly's) on the mined pairs.

Deviations from the paper and the official code:

- Data. SiMHand mines 2.0 M hand crops of Ego4D and 100DOH on an off-the-shelf estimator's
  2D pseudo-labels; here the keypoints are the synthetic world's own 2D labels (and
  FreiHAND's ground truth where it is a pre-training source). A source without 2D keypoints
  (YouTube3DHands) is refused when the config is composed.
- Mining. The released annotations hold each hand's partner already; the mining code is not
  public. Here: wrist-relative keypoints divided by their RMS distance to the wrist, PCA to
  ``pca_dim`` over the whole set, exact Euclidean nearest neighbour outside the item's own
  sequence. One partner per item, fixed for the whole run.
- Equivariance. ``HandCLR_W`` undoes the crop jitter and the rotation only; PeCLR's map here
  also undoes the zoom and measures the shift in one unit (``methods/peclr.py``).
- Weights. As in every official command (``--joints_type augmented``), the weights use the
  keypoints mapped into each augmented view (view pixels). Where all distances of a batch are
  equal the official formula is 0/0; here every weight is then 1. Under DDP the weights are
  normalised over the gathered global batch. Not offered: ``non_linear`` weights, ``pos`` or
  ``neg`` only, and PCA before the weights (``--use_pca``, off by default there).
- Scale. The paper trains ResNet-50/152 with batch 8,192 on 8 GPUs for 100 epochs with LARS;
  here the run's backbone, ``pretrain.batch_size`` (16 in the smoke, 64 in the cpu profile),
  budget, optimiser and schedule are the harness's, shared by every method. The weights are
  min-max normalised over the batch, so a small batch spreads them over fewer hands.
- Augmentation. The shared augmenter (rotation, zoom, shift, colour, blur) in place of
  PeCLR's crop, rotation and colour jitter pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.errors import UserError
from methods.peclr import PeCLR, PeCLRConfig

if TYPE_CHECKING:
    import torch
    from torch import Tensor

N_COORDS = 42          # 21 joints x (x, y): the embedding before PCA


@dataclass
class SiMHandConfig(PeCLRConfig):
    name: str = "simhand"
    weighting: str = "linear"       # SiMHand's adaptive weights | "none": plain NT-Xent (ablation)
    pca_dim: int = 14               # mining: PCA size of the 2D-pose embedding, 0 for none


class SiMHand(PeCLR):
    summary = ("PeCLR's equivariant contrast between mined similar hands of different "
               "images, adaptively weighted by 2D-pose distance")
    citation = "Lin, Ohkawa et al., ICLR 2025"
    inputs = ("similar",)
    passes_per_sample = 2
    Config = SiMHandConfig

    @classmethod
    def settle(cls, cfg: SiMHandConfig, run=None) -> None:
        super().settle(cfg, run)
        if not 0 <= cfg.pca_dim <= N_COORDS:
            raise UserError(f"method.pca_dim must be in [0, {N_COORDS}], 0 for no PCA "
                            f"(got {cfg.pca_dim})")

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator
             ) -> tuple[Tensor, dict[str, float]]:
        return self.two_views(batch["image"], batch["partner"], batch["uv"],
                              batch["partner_uv"], generator)


METHOD = SiMHand
