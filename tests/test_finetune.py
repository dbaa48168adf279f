"""The fine-tune harness: label-consistent augmentation and one evaluation path for every source."""
import numpy as np
import pytest
import torch

from benchmarks import batches as B
from benchmarks.augment import Augmenter
from benchmarks.backbone import create_backbone
from benchmarks.config import AugmentConfig, FinetuneAugmentConfig
from benchmarks.data import FreiHAND, project
from benchmarks.data.prepare import synthetic, to_tensors
from eval.finetune import evaluate, predict
from benchmarks.pose_model import PoseNet


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
    mem = to_tensors(ds, ("image", "K", "xyz", "scale", "image_id"))   # as Data.labelled keeps it
    torch.manual_seed(0)
    backbone = create_backbone("resnet18")
    model = PoseNet(backbone, backbone.feat_dim)
    a = predict(model, ds, torch.device("cpu"))
    b = predict(model, mem, torch.device("cpu"))
    pred_a, gt_a, pred_b, gt_b = a["xyz"], a["xyz_gt"], b["xyz"], b["xyz_gt"]
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-5)
    assert pred_a.shape == (10, 21, 3)
    np.testing.assert_allclose(pred_a, pred_b, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(gt_a, ds.xyz.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(gt_a, gt_b)
    assert evaluate(model, ds, torch.device("cpu"), 32)["pa_epe_mm"] == evaluate(
        model, mem, torch.device("cpu"), 32)["pa_epe_mm"]
    assert B.take(ds, torch.tensor([3, 1]))["xyz"].shape == (2, 21, 3)


def test_finetune_augmentation_has_its_own_ranges_and_switch():
    """finetune.augment is not pre-training's: milder defaults, an off switch, and its
    errors name the fine-tuning key."""
    import pytest

    from benchmarks.errors import UserError
    ft, pre = FinetuneAugmentConfig(), AugmentConfig()
    assert ft.rotate_deg < pre.rotate_deg and ft.brightness < pre.brightness and ft.blur_p == 0
    with pytest.raises(UserError, match="finetune.augment.rotate_deg"):
        Augmenter(FinetuneAugmentConfig(rotate_deg=-1), key="finetune.augment")


def test_a_run_records_its_floors_2d_scores_and_validation(tmp_path, data_cache):
    """Every record stands beside its floors on its own evaluation set; with held-out ids it
    also scores them (the split recipes are chosen on), never the evaluation split's ids."""
    from orchestration import compose
    from orchestration.runner import execute
    from eval.floors import no_image_floors

    run = compose.resolve(["method=random", "profile=smoke", "finetune.epochs=1",
                           "finetune.eval_points=1", "engine.progress=false", "data.val_fraction=0.25"])
    rec = execute(run, tmp_path, log=lambda *_: None)
    cfg = run.cfg
    assert rec["status"] == "ok"
    m, floors = rec["metrics"], rec["baselines"]
    assert set(floors) == {"canonical_hand", "one_point"}
    assert 0 < floors["canonical_hand"]["pa_epe_mm"] < floors["one_point"]["pa_epe_mm"]
    assert m["epe_2d_frac"] == pytest.approx(m["epe_2d_px"] / cfg.data.res)
    assert {"auc_2d", "zrel_l1", "z_root_l1"} <= set(m)
    assert {"epe_2d_px", "zrel_l1"} <= set(rec["curves"]["eval"][-1])
    val = rec["validation"]
    assert val["n"] == round(0.25 * cfg.data.n_train) and m["n"] == cfg.data.n_eval
    # the floors are recomputable from the data the run used
    from benchmarks.data.prepare import Data
    from eval.finetune import poses
    data = Data(cfg)
    train, test = data.labelled()
    again = no_image_floors(poses(train), poses(test))
    assert again["canonical_hand"]["pa_epe_mm"] == pytest.approx(floors["canonical_hand"]["pa_epe_mm"])
    assert "validation" not in execute(compose.resolve(["method=random", "profile=smoke", "finetune.epochs=1",
                                                     "finetune.eval_points=1", "engine.progress=false"]),
                                       tmp_path, log=lambda *_: None)
