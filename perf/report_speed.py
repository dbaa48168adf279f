"""How long ``bench report`` takes over 1,000 records.

Writes a synthetic study (every registry method, two backbones, two budgets, both
protocols, three label fractions, probes, periodic evaluations; a fixed random seed)
into a temporary folder, then times reading the records alone and ``build_report`` on them,
and prints both and their ratio (one run, so a busy machine slows both alike).

    python -m perf.report_speed [--records 1000]

``report_seconds`` gives the figure ``report_s_1000`` of ``python -m perf``.
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.record import write_record
from eval.report import build_report
from tests.example_records import example_record
from eval.report.load import load_runs
from methods import MODULES


def write_study(results: Path, n_records: int) -> None:
    """``n_records`` plausible records: 216 groups (24 settings x 9 methods), seed 0 for every
    group, then seed 1, and so on (1,000 records: four or five seeds per group)."""
    rng = np.random.default_rng(0)
    grid = list(itertools.product(("resnet18", "resnet50"), ("1ep", "4ep"), ("pretrain", "total"),
                                  (0.1, 0.3, 1.0), MODULES))
    for i in range(n_records):
        backbone, budget, match, fraction, method = grid[i % len(grid)]
        error = 9.0 + list(MODULES).index(method) * 0.2 - (budget == "4ep") + 2.0 * (1.0 - fraction)
        pretrain = 0.0 if method in ("random", "imagenet") else 4e12 * (1 + 3 * (budget == "4ep"))
        probes = {} if method in ("random", "imagenet") else {
            "gesture_acc": float(rng.uniform(0.6, 0.9)), "viewpoint_err_deg": float(rng.uniform(8, 20)),
            "rel_viewpoint_err_deg": float(rng.uniform(3, 9))}
        write_record(results, example_record(
            method, i // len(grid), error + float(rng.normal(0, 0.3)), backbone=backbone, budget=budget,
            match=match, label_fraction=fraction, pretrain_flops=pretrain,
            finetune_flops=1e12 + (4e12 if match == "total" and pretrain == 0 else 0.0),
            probes=probes, eval_steps=10))


def report_seconds(n_records: int) -> tuple[float, float, float, float]:
    """(wall, CPU, read, CLI wall) seconds over a fresh study of ``n_records`` records:
    ``build_report``, reading and validating the same records alone (``load_runs``, the floor
    any report pays), and ``bench report`` as a user runs it (a fresh process, start-up and
    imports included); writing the study is not timed."""
    from perf.cli_speed import report_cli_seconds

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "runs"
        write_study(results, n_records)
        read = time.perf_counter()
        load_runs(results)
        read = time.perf_counter() - read
        wall, cpu = time.perf_counter(), time.process_time()
        build_report(results, Path(tmp) / "report")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cli = report_cli_seconds(results, Path(tmp) / "report-cli")
        return wall, cpu, read, cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    wall, cpu, read, cli = report_seconds(args.records)
    print(f"build_report over {args.records} records: {wall:.2f} s wall ({cpu:.2f} s CPU in this "
          f"process; figures are drawn in worker processes); reading and validating them alone: "
          f"{read:.2f} s; report / read = {wall / read:.1f}; `bench report` as a fresh process: "
          f"{cli:.2f} s")


if __name__ == "__main__":
    main()
