"""SiMHand's parameter-free adaptive weighting of a contrastive loss (Lin, Ohkawa et al.,
ICLR 2025; official code ``ut-vision/SiMHand``, ``src/models/utils.py``), shared by
``simhand`` and the weighted baselines ``simclr`` / ``peclr`` with ``method.weighting=linear``
(the paper's SimCLR_w and PeCLR_w).

Weights (``get_weights_linear`` with ``diff_type=mpjpe``): the distance of two hands is the
mean over the 21 joints of the per-joint 2D distance of their keypoints. With d_i the
distance of the two views of pair i, the positive weight is

    w_i = (max d - d_i) / (max d - min d)                       over the B pairs,

and the negative weights are the same formula over the 2B x 2B matrix D of the distances
of every two of the 2B views (views 1..B then their partners), so identical hands weigh 1
and the farthest hands 0. Loss (``vanila_weights_contrastive_loss``, temperature 0.5): with
s the cosine similarities of the L2-normalised projections,

    L = - 1/2B sum_a log( exp(w_a s_{a,a+} / t) / sum_{b != a} exp(W_ab s_ab / t) ),

the positive weight applied to the positive's similarity in the numerator, the negative
weights to every entry of the denominator (the positive's entry with its negative weight,
as in the official code). With every weight 1 this is NT-Xent (lightly's ``NTXentLoss``).

Differences from the official code:

- A batch whose distances are all equal (one pair, or identical keypoints throughout) has
  max d = min d, where the official formula is 0 / 0 (NaN); here every weight is then 1.
- Under DDP (``gather_distributed``) the projections and keypoints of every rank are gathered
  and the weights normalised over the global batch, as lightly's NT-Xent gathers its contrast
  set; the official loss runs on each GPU's own batch.

Which keypoints: the official runs (``--joints_type augmented`` in every command of its
README) weigh with the keypoints mapped into each augmented view, in view pixels; so do the
methods here (the augmenter maps ``batch["uv"]`` with each view's own geometry). Pixels or any
other unit give the same weights: the formula is invariant to scaling all distances.

A method using these weights needs 2D keypoints from every pre-training source: one without
them (YouTube3DHands) is refused when the config is composed (``benchmarks.config.require_sources``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchmarks.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

WEIGHTINGS = ("linear", "none")      # SiMHand's linear weights | plain NT-Xent (the ablation)


def check_weighting(cfg) -> None:
    if cfg.weighting not in WEIGHTINGS:
        raise UserError(f"method.weighting must be one of: {', '.join(WEIGHTINGS)} "
                        f"(got {cfg.weighting!r})")


def pair_distances(joints1: Tensor, joints2: Tensor) -> Tensor:
    """Mean per-joint 2D distance (MPJPE) of corresponding hands, (B, K, 2) x 2 -> (B,)."""
    return (joints1 - joints2).norm(dim=-1).mean(dim=-1)


def _linear(d: Tensor) -> Tensor:
    """(max d - d) / (max d - min d) over all of ``d``; 1 where every distance is equal."""
    import torch

    hi, lo = d.max(), d.min()
    span = hi - lo
    return torch.where(span > 0, (hi - d) / span.clamp_min(torch.finfo(d.dtype).tiny),
                       torch.ones_like(d))


def linear_weights(joints1: Tensor, joints2: Tensor) -> tuple[Tensor, Tensor]:
    """SiMHand's ``get_weights_linear(.., diff_type="mpjpe")``: positive weights (B,) of the
    pairs (joints1[i], joints2[i]) and negative weights (2B, 2B) of every two of the 2B hands
    ``cat(joints1, joints2)``; keypoints (B, K, 2). No gradient flows through them."""
    import torch

    with torch.no_grad():
        j1, j2 = joints1.float(), joints2.float()
        pos = _linear(pair_distances(j1, j2))
        both = torch.cat([j1, j2])
        neg = _linear(pair_distances(both[:, None], both[None, :]))
    return pos, neg


def weighted_ntxent(z1: Tensor, z2: Tensor, pos_weights: Tensor, neg_weights: Tensor,
                    temperature: float = 0.5) -> Tensor:
    """SiMHand's weighted NT-Xent of projections z1, z2 (B, D) (normalised here), positive
    weights (B,) and negative weights (2B, 2B) (module docstring). Computed in float32, also
    under autocast."""
    import torch
    import torch.nn.functional as F

    with torch.autocast(z1.device.type, enabled=False):
        z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
        z = torch.cat([z1, z2])
        n = z.shape[0]
        logits = (z @ z.T) * neg_weights.float() / temperature
        self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
        denominator = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1)
        positive = (z1 * z2).sum(dim=1) * pos_weights.float() / temperature
        return (denominator - torch.cat([positive, positive])).mean()


class WeightedNTXent:
    """A criterion ``(x1, x2) -> loss`` with this batch's SiMHand weights from the two views'
    keypoints, in the place of lightly's ``NTXentLoss`` (e.g. after PeCLR's latent inverse).
    With ``gather_distributed`` the projections and keypoints of every DDP rank join."""

    def __init__(self, joints1: Tensor, joints2: Tensor, temperature: float = 0.5,
                 gather_distributed: bool = True):
        self.joints1, self.joints2 = joints1, joints2
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.pos_weights: Tensor | None = None

    def __call__(self, x1: Tensor, x2: Tensor) -> Tensor:
        import torch
        from lightly.utils import dist

        j1, j2 = self.joints1, self.joints2
        if self.gather_distributed and dist.world_size() > 1:
            # every rank computes the global loss; lightly's gather sums the ranks' gradients
            # and DDP averages them, which gives the global loss's gradient
            x1, x2 = torch.cat(dist.gather(x1)), torch.cat(dist.gather(x2))
            j1, j2 = torch.cat(dist.gather(j1.contiguous())), torch.cat(dist.gather(j2.contiguous()))
        pos, neg = linear_weights(j1, j2)
        self.pos_weights = pos
        return weighted_ntxent(x1, x2, pos, neg, self.temperature)
