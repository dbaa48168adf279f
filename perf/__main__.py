"""``python -m perf [--quick] [--out results/perf]``: measure, print, write.

The CPU is always measured; the GPU path (bf16 autocast, channels_last, augmentation on the
device, ``--compile`` for torch.compile) when CUDA is available, else a line says it was
skipped. ``--quick`` runs in a few minutes on a 2-core machine.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from rich.console import Console

from perf.sizes import presets
from perf.suite import SUMMARY, run
from perf.summary import table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perf",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--quick", action="store_true",
                        help="smaller batches, data, steps and repeats (minutes on 2 cores)")
    parser.add_argument("--out", type=Path, default=Path("results/perf"),
                        help="folder for summary.json (default: results/perf)")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=["cpu", "cuda"],
                        help="devices to measure (cuda is skipped with a line when absent)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers of the peer pipeline (default: cores, at most 8)")
    parser.add_argument("--compile", action="store_true",
                        help="GPU path: torch.compile the step, the bare and the peer model")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core)")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error(f"--workers must be >= 0 (got {args.workers})")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1 (got {args.threads})")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cpu, gpu, extras = presets(args.quick)
    sizes = {"cpu": cpu, "cuda": gpu}
    console = Console(log_path=False)
    summary = run({d: sizes[d] for d in args.devices}, extras, args.out, args.workers,
                  args.compile, args.quick, log=lambda line: console.log(line))
    console.print(table(summary))
    console.print(f"wrote {args.out / SUMMARY} ({summary['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
