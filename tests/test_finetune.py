"""The fine-tune harness: label-consistent augmentation and one evaluation path for every source."""
import numpy as np
import torch

from benchmarks import batches as B
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig
from benchmarks.data import FreiHAND, project
from benchmarks.prepare import synthetic, to_tensors
from eval.finetune import evaluate, predict
from eval.pose_model import PoseNet


def test_augmented_intrinsics_keep_labels_consistent():
    """K' = A K: the 3D labels projected with K' land where the augmenter moved the pixels."""
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(6, 21, 3, generator=g) * 0.03 + torch.tensor([0.0, 0.0, 0.5])
    K = torch.tensor([[120.0, 0, 32], [0, 120.0, 32], [0, 0, 1]]).expand(6, 3, 3)
    aug = Augmenter(AugmentConfig(rotate_deg=60, translate=0.2))
    uv = torch.from_numpy(project(K.numpy(), xyz.numpy())).float()
    views = aug(torch.rand(6, 3, 64, 64), g, keypoints=uv)
    K2 = aug.affine(views.params, 64) @ K
    reprojected = torch.from_numpy(project(K2.numpy(), xyz.numpy())).float()
    assert torch.allclose(reprojected, views.keypoints, atol=1e-3)


def test_file_backed_and_in_memory_sources_score_alike(tmp_path):
    root = synthetic("lab", tmp_path, n=8, res=32, seed=1, eval_n=10)
    ds = FreiHAND(root, "eval", 32)
    mem = to_tensors(ds, ("image", "K", "xyz", "scale"))
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    model = PoseNet(backbone, backbone.feat_dim)
    pred_a, gt_a = predict(model, ds, torch.device("cpu"))
    pred_b, gt_b = predict(model, mem, torch.device("cpu"))
    assert pred_a.shape == (10, 21, 3)
    np.testing.assert_allclose(pred_a, pred_b, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(gt_a, ds.xyz.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(gt_a, gt_b)
    assert evaluate(model, ds, torch.device("cpu"))["pa_epe_mm"] == evaluate(
        model, mem, torch.device("cpu"))["pa_epe_mm"]
    assert B.take(ds, torch.tensor([3, 1]))["xyz"].shape == (2, 21, 3)
