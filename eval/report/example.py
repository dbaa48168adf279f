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

from benchmarks.store import SCHEMA

THRESHOLDS_MM = np.linspace(0.0, 50.0, 100)
# per-joint error relative to the mean (FreiHAND order): the wrist is easiest, fingertips hardest
JOINT_FACTORS = np.array([0.7] + [0.8, 0.95, 1.1, 1.3] * 5)
JOINT_FACTORS = JOINT_FACTORS / JOINT_FACTORS.mean()


def _pck(mean_error_mm: float) -> tuple[list[float], float]:
    pck = 1.0 - np.exp(-THRESHOLDS_MM / mean_error_mm)
    auc = float(scipy.integrate.trapezoid(pck, THRESHOLDS_MM) / (THRESHOLDS_MM[-1] - THRESHOLDS_MM[0]))
    return pck.tolist(), auc


def example_record(method: str, seed: int, pa_epe_mm: float, *, epe_mm: float | None = None,
                   backbone: str = "resnet18", data: str = "synthetic", budget: str = "1ep",
                   match: str = "pretrain", label_fraction: float = 1.0, profile: str = "smoke",
                   pretrain_flops: float = 2e12, finetune_flops: float = 1e12,
                   probes: dict[str, float] | None = None, eval_steps: int = 5) -> dict[str, Any]:
    """A successful record; ``epe_mm`` defaults to 3 x ``pa_epe_mm``; ``eval_steps`` periodic
    evaluations every 100 fine-tuning steps (0 for none)."""
    epe_mm = 3.0 * pa_epe_mm if epe_mm is None else epe_mm
    pa_pck, pa_auc = _pck(pa_epe_mm)
    pck, auc = _pck(epe_mm)
    run_id = f"{method}-{backbone}-{data}-{budget}-{match}-{label_fraction:g}-{profile}-s{seed}"
    external = "imagenet-1k supervised" if method == "imagenet" else None
    evals = [{"step": 100 * (k + 1), "images": 100 * (k + 1) * 32,
              "pa_epe_mm": pa_epe_mm * (1.0 + 2.0 / (k + 1) - 2.0 / eval_steps),
              "epe_mm": epe_mm * (1.0 + 2.0 / (k + 1) - 2.0 / eval_steps), "pa_auc": pa_auc}
             for k in range(eval_steps)]
    return {
        "schema": SCHEMA, "run_id": run_id, "status": "ok", "error": None,
        "method": method, "backbone": backbone, "data": data, "budget": budget, "match": match,
        "label_fraction": label_fraction, "seed": seed, "profile": profile,
        "config": {"method": {"name": method}, "seed": seed, "profile": profile},
        "metrics": {"epe_mm": epe_mm, "pa_epe_mm": pa_epe_mm, "auc": auc, "pa_auc": pa_auc,
                    "pck_thresholds_mm": THRESHOLDS_MM.tolist(), "pck": pck, "pa_pck": pa_pck,
                    "per_joint_pa_epe_mm": (pa_epe_mm * JOINT_FACTORS).tolist(),
                    "per_joint_epe_mm": (epe_mm * JOINT_FACTORS).tolist()},
        "probes": dict(probes or {}),
        "compute": {"pretrain_flops": pretrain_flops, "finetune_flops": finetune_flops,
                    "pretrain_steps": 100, "finetune_steps": 100 * eval_steps,
                    "pretrain_images": 6400, "finetune_images": 3200 * eval_steps, "wall_s": 12.5,
                    "device": "cpu", "pretrain_cache_hit": False, "external_pretrain": external,
                    "budget_flops": pretrain_flops},
        "provenance": {"git_sha": "0" * 40, "git_dirty": False, "versions": {}, "host": "example",
                       "slurm_job_id": None, "started": "2025-01-01T00:00:00",
                       "finished": "2025-01-01T00:01:00"},
        "curves": {"train": [{"phase": "pretrain", "step": 1, "loss": 1.0}], "eval": evals},
    }


def failed_record(method: str, seed: int, error: str, **settings: Any) -> dict[str, Any]:
    """A failed record: status "failed", the error line, no metrics."""
    record = example_record(method, seed, 1.0, **settings)
    record.update(status="failed", error=error, metrics=None, probes={}, curves={"train": [], "eval": []})
    return record
