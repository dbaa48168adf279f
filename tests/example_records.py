"""Example result records in the record contract, for tests, benchmarks and hand-made studies.

:func:`example_record` returns a complete, self-consistent successful record: its PCK
curves are those of an exponential error distribution with the given mean error, its AUC
is the trapezoid area under that curve over 0-50 mm divided by 50 mm, its per-joint errors
average to the given PA-EPE, and its periodic evaluations decay to the final PA-EPE.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.integrate

from benchmarks.config import run_id
from benchmarks.record import Compute, Record

THRESHOLDS_MM = np.linspace(0.0, 50.0, 100)
THRESHOLDS_2D = np.linspace(0.0, 0.1, 100)       # fractions of the crop side, as eval.metrics
CROP_PX = 224                                    # side of the network input, pixels
# per-joint error relative to the mean (FreiHAND order): the wrist is easiest, fingertips hardest
JOINT_FACTORS = np.array([0.7] + [0.8, 0.95, 1.1, 1.3] * 5)
JOINT_FACTORS = JOINT_FACTORS / JOINT_FACTORS.mean()


def _pck(mean_error: float, thresholds: np.ndarray = THRESHOLDS_MM) -> tuple[list[float], float]:
    """PCK at ``thresholds`` and its normalised area, for exponential errors of this mean
    (in the thresholds' unit)."""
    pck = 1.0 - np.exp(-thresholds / mean_error)
    auc = float(scipy.integrate.trapezoid(pck, thresholds) / (thresholds[-1] - thresholds[0]))
    return pck.tolist(), auc


def _floor(pa_epe_mm: float, epe_mm: float) -> dict[str, float]:
    """One no-image floor's scores (``baselines.<floor>``) from its errors in mm."""
    return {"epe_mm": epe_mm, "pa_epe_mm": pa_epe_mm, "auc": _pck(epe_mm)[1], "pa_auc": _pck(pa_epe_mm)[1]}


def _scores_2d(epe_2d_px: float) -> dict[str, Any]:
    """The 2D keypoint scores (``metrics``' 2D keys) of a mean 2D error in pixels."""
    frac = epe_2d_px / CROP_PX
    pck, auc = _pck(frac, THRESHOLDS_2D)
    return {"epe_2d_px": epe_2d_px, "epe_2d_frac": frac, "pck_2d_thresholds": THRESHOLDS_2D.tolist(),
            "pck_2d": pck, "auc_2d": auc}


def _newer_fields(record: dict[str, Any], pa_epe_mm: float, floor_pa_epe_mm: float, epe_2d_px: float,
                  head: str) -> None:
    """Add what newer records carry: the floors, 2D and depth scores (also in the periodic
    evaluations, decaying like the PA-EPE) and the pose head."""
    record["baselines"] = {"canonical_hand": _floor(floor_pa_epe_mm, 2.0 * floor_pa_epe_mm),
                           "one_point": _floor(2.0 * floor_pa_epe_mm, 3.0 * floor_pa_epe_mm)}
    zrel_l1, z_root_l1 = 0.02 * pa_epe_mm, 0.05 * pa_epe_mm                    # bone lengths
    record["metrics"].update(_scores_2d(epe_2d_px), zrel_l1=zrel_l1, z_root_l1=z_root_l1)
    for point in record["curves"]["eval"]:
        decay = point["pa_epe_mm"] / pa_epe_mm
        point.update(epe_2d_px=epe_2d_px * decay, zrel_l1=zrel_l1 * decay, z_root_l1=z_root_l1 * decay)
    record["config"]["finetune"]["head"] = head


def example_record(method: str, seed: int, pa_epe_mm: float, *, epe_mm: float | None = None,
                   backbone: str = "resnet18", data: str = "synthetic", budget: str = "1ep",
                   match: str = "pretrain", label_fraction: float = 1.0, profile: str = "smoke",
                   pretrain_flops: float = 2e12, finetune_flops: float = 1e12,
                   probes: dict[str, float] | None = None, eval_steps: int = 5,
                   floor_pa_epe_mm: float = 20.0, epe_2d_px: float | None = None, head: str = "regression",
                   legacy: bool = False) -> dict[str, Any]:
    """A successful record; ``epe_mm`` defaults to 3 x ``pa_epe_mm``; ``eval_steps`` periodic
    evaluations every 100 fine-tuning steps (0 for none). ``floor_pa_epe_mm``: the canonical
    hand's PA-EPE (mm; its EPE is twice that, the one-point floor's PA-EPE twice and EPE three
    times); ``epe_2d_px``: the 2D error in pixels, 0.4 x ``pa_epe_mm`` by default; ``head``: the
    pose head. ``legacy``: none of these (nor the depth scores), as older records."""
    epe_mm = 3.0 * pa_epe_mm if epe_mm is None else epe_mm
    epe_2d_px = 0.4 * pa_epe_mm if epe_2d_px is None else epe_2d_px
    pa_pck, pa_auc = _pck(pa_epe_mm)
    pck, auc = _pck(epe_mm)
    external = "imagenet-1k supervised" if method == "imagenet" else None
    evals = [{"step": 100 * (k + 1), "images": 100 * (k + 1) * 32,
              "pa_epe_mm": pa_epe_mm * (1.0 + 2.0 / (k + 1) - 2.0 / eval_steps),
              "epe_mm": epe_mm * (1.0 + 2.0 / (k + 1) - 2.0 / eval_steps), "pa_auc": pa_auc}
             for k in range(eval_steps)]
    config = {"method": {"name": method}, "backbone": backbone, "data": {"name": data},
              "budget": budget, "match": match, "seed": seed, "profile": profile,
              "finetune": {"label_fraction": label_fraction}}
    pretrains = pretrain_flops > 0
    record = Record(
        run_id=run_id(config) + ("" if head == "regression" else f"-{head}"), status="ok",
        method=method, backbone=backbone, data=data, budget=budget, match=match,
        label_fraction=label_fraction, seed=seed, profile=profile, config=config,
        metrics={"epe_mm": epe_mm, "pa_epe_mm": pa_epe_mm, "auc": auc, "pa_auc": pa_auc,
                 "pck_thresholds_mm": THRESHOLDS_MM.tolist(), "pck": pck, "pa_pck": pa_pck,
                 "per_joint_pa_epe_mm": (pa_epe_mm * JOINT_FACTORS).tolist(),
                 "per_joint_epe_mm": (epe_mm * JOINT_FACTORS).tolist()},
        probes=dict(probes or {}),
        compute=Compute(budget_flops=pretrain_flops, budget_unfair=False,
                        pretrain_flops=pretrain_flops, finetune_flops=finetune_flops,
                        pretrain_steps=100 if pretrains else 0, finetune_steps=100 * eval_steps,
                        pretrain_images=6400 if pretrains else 0, finetune_images=3200 * eval_steps,
                        pretrain_step_flops=pretrain_flops / 100, finetune_step_flops=finetune_flops / max(1, 100 * eval_steps),
                        image_flops=pretrain_flops / 6400 / 3 if pretrains else 0.0,
                        pretrain_cache_hit=False, pretrain_key="0" * 16 if pretrains else None,
                        pretrain_wall_s=5.0 if pretrains else 0.0, finetune_wall_s=7.5,
                        external_pretrain=external, wall_s=12.5, device="cpu"),
        curves={"train": [] if method in ("random", "imagenet") else
                [{"phase": "pretrain", "step": 10 * (k + 1), "loss": 4.0 - 0.3 * k + 0.05 * seed}
                 for k in range(4)], "eval": evals},
        provenance={"git_sha": "0" * 40, "git_dirty": False, "versions": {}, "host": "example",
                    "slurm_job_id": None, "started": "2025-01-01T00:00:00",
                    "finished": "2025-01-01T00:01:00"},
    ).to_json()
    if not legacy:
        _newer_fields(record, pa_epe_mm, floor_pa_epe_mm, epe_2d_px, head)
        if pretrains and external is None:          # the objective on held-out frames
            record["pretraining"] = {"objective": "loss", "images": 256, "chance": 4.84,
                                     "start": {"loss": 4.8 + 0.01 * seed, "embedding_std": 0.9},
                                     "end": {"loss": 3.5 + 0.05 * seed, "embedding_std": 0.7},
                                     "criterion": "held-out loss ends 5% below chance",
                                     "learned": seed != 2}
        if record["label_fraction"] == 1.0 and record["match"] == "pretrain":   # eval.also
            floor = {"canonical_hand": {"pa_epe_mm": 19.0, "pa_auc": 0.2, "epe_mm": 60.0, "auc": 0.05}}
            record["transfer"] = {"dexycb": {"pa_epe_mm": pa_epe_mm + 6.0, "pa_auc": 0.5,
                                             "epe_mm": 50.0, "auc": 0.1, "n": 4, "baselines": floor}}
    return record


def failed_record(method: str, seed: int, error: str, **settings: Any) -> dict[str, Any]:
    """A failed record: status "failed", the error line, no metrics."""
    record = example_record(method, seed, 1.0, **settings)
    record.update(status="failed", error=error, metrics=None, probes={}, curves={"train": [], "eval": []})
    record.pop("baselines", None)
    return record
