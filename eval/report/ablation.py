"""An ablation or recipe-search table from a sweep file and its records.

``python -m eval.report.ablation SWEEP --results DIR [--against previous|first] [--out FILE]``

Rows follow the sweep file's order (``benchmarks.sweep.compose_runs``). Each row is labelled
by what it changes, computed from the resolved configs, never typed by hand: the config keys
whose values differ from the previous row (``--against previous``, a one-change-at-a-time
ablation) or from the first row (``--against first``, a search around one recipe). Columns,
from the run's record: fine-tuning steps and wall seconds; on the evaluation split the 2D
error (px of the network input), the relative-depth and root-depth L1 (bone lengths), PA-EPE
and the canonical-hand floor (mm); and, when the runs hold out validation ids
(``data.val_fraction``), PA-EPE on those, the score a recipe is chosen by. A run without an ok
record is listed as missing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.config import run_id, semantic
from benchmarks.errors import UserError
from benchmarks.store import read_record, record_path

COLUMNS = ("#", "change", "steps", "wall s", "2D px", "zrel L1", "root L1", "PA-EPE mm",
           "floor mm", "val PA-EPE mm")


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def changes(cfg: dict, ref: dict | None) -> str:
    """``key=value`` of every semantic key of ``cfg`` that differs from ``ref``."""
    if ref is None:
        return "baseline"
    a, b = flatten(semantic(cfg)), flatten(semantic(ref))
    diff = [f"{k}={a.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(diff) or "(same config)"


def _fmt(x, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def rows(sweep: Path, results: Path, against: str = "previous") -> list[list[str]]:
    from benchmarks.sweep import compose_runs, load_spec

    cfgs = compose_runs(sweep, load_spec(sweep), [], None)
    out, first, prev = [], None, None
    for i, cfg in enumerate(cfgs):
        rec = read_record(record_path(results, run_id(cfg)))
        ref = prev if against == "previous" else first
        label = changes(cfg, ref)
        prev, first = cfg, first if first is not None else cfg
        if not rec or rec.get("status") != "ok":
            out.append([str(i), label, *(["missing"] + ["–"] * (len(COLUMNS) - 3))])
            continue
        m, c = rec["metrics"], rec["compute"]
        floor = (rec.get("baselines") or {}).get("canonical_hand", {}).get("pa_epe_mm")
        val = (rec.get("validation") or {}).get("pa_epe_mm")
        out.append([str(i), label, str(c["finetune_steps"]), f"{c['finetune_wall_s']:.0f}",
                    _fmt(m.get("epe_2d_px"), 2), _fmt(m.get("zrel_l1"), 3),
                    _fmt(m.get("z_root_l1"), 2), _fmt(m["pa_epe_mm"], 2), _fmt(floor, 2),
                    _fmt(val, 2)])
    return out


def markdown(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.report.ablation", description=__doc__.split("\n")[0])
    p.add_argument("sweep", type=Path)
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--against", choices=("previous", "first"), default="previous")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    try:
        text = markdown(rows(args.sweep, args.results, args.against))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
