"""How long the CLI takes as a user runs it: whole processes, start-up included.

    python -m perf.cli_speed [--repeats 3]

Each command runs ``repeats`` times as a fresh process (``bench --help``, ``bench methods``, a
mistyped method, ``bench status`` over an empty folder); the figure is the median wall time.
``report_cli_seconds`` times ``bench report`` itself the same way, over a folder of records.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {"help": ["--help"], "methods": ["methods"], "unknown_method": ["run", "--method", "nosuch"],
            "status_empty": ["status", "--results", "{tmp}"]}


def bench() -> list[str]:
    """The console script beside this interpreter, else the module."""
    script = Path(sys.executable).parent / "bench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "orchestration.cli"]


def wall(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - t


def cli_seconds(repeats: int = 3) -> dict[str, float]:
    """Median wall seconds of each of ``COMMANDS`` as a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        wall(bench() + ["--help"])                          # the interpreter's files in the page cache
        return {name: statistics.median(wall(bench() + [a.format(tmp=tmp) for a in words])
                                        for _ in range(repeats))
                for name, words in COMMANDS.items()}


def report_cli_seconds(results: Path, out: Path) -> float:
    """Wall seconds of ``bench report --results RESULTS --out OUT`` as a fresh process."""
    return wall(bench() + ["report", "--results", str(results), "--out", str(out)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name, seconds in cli_seconds(args.repeats).items():
        print(f"{name:16s} {seconds:.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
