"""An ablation or recipe-search table from a sweep file and its records.

``bench report --ablation SWEEP --results DIR [--against previous|first] [--out FILE.md]``

Rows follow the sweep file's order (``orchestration.sweep.compose_runs``). Each row is labelled
by what it changes, computed from the resolved configs, never typed by hand: the config keys
whose values differ from the previous row (``--against previous``, a one-change-at-a-time
ablation) or from the first row (``--against first``, a search around one recipe). Columns,
from the run's record: fine-tuning steps and wall seconds; on the evaluation split the 2D
error (px of the network input), the relative-depth and root-depth L1 (bone lengths), PA-EPE
and the canonical-hand floor (mm); and, when the runs hold out validation ids
(``data.val_fraction``), PA-EPE on those, the score a recipe is chosen by. A run without an ok
record is listed as missing; a ``--results`` folder that does not exist is refused (a
mistyped path would otherwise list every run as missing).
"""
from __future__ import annotations

import os
from pathlib import Path

from benchmarks.config import semantic
from benchmarks.errors import UserError
from benchmarks.record import check, record_path

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
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    parts: dict[str, list[str]] = {}
    for k in keys:                       # keys of one section together: a.b.{c=1, d=2}
        parent, _, leaf = k.rpartition(".")
        parts.setdefault(parent, []).append(f"{leaf}={a.get(k)}")
    out = [(f"{p}.{{{', '.join(v)}}}" if len(v) > 2 else ", ".join(f"{p}.{x}" if p else x for x in v))
           for p, v in parts.items()]
    return ", ".join(out) or "(same config)"


def _fmt(x, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def rows(sweep: Path, results: Path, against: str = "previous") -> list[list[str]]:
    from orchestration.sweep import compose_runs, load_spec

    spec = load_spec(sweep)
    if not Path(results).is_dir():
        raise UserError(f"--results {str(results)!r}: no such folder; give the folder that "
                        f"holds the records of the sweep's runs")
    runs = compose_runs(sweep, spec, [], None)
    out, first, prev = [], None, None
    for i, run in enumerate(runs):
        cfg = run.cfg
        path = record_path(results, run.run_id)
        checked = check(path) if path.exists() else None
        ref = prev if against == "previous" else first
        label = changes(cfg, ref)
        prev, first = cfg, first if first is not None else cfg
        if checked is None or checked.kind != "ok":
            word = "missing" if checked is None else checked.kind      # failed, invalid, unreadable
            out.append([str(i), label, *([word] + ["–"] * (len(COLUMNS) - 3))])
            continue
        rec = checked.typed
        m, c = rec.metrics, rec.compute
        floor = (rec.baselines or {}).get("canonical_hand", {}).get("pa_epe_mm")
        val = (rec.validation or {}).get("pa_epe_mm")
        out.append([str(i), label, str(c.finetune_steps if c.finetune_steps is not None else "–"),
                    _fmt(c.finetune_wall_s, 0),
                    _fmt(m.get("epe_2d_px"), 2), _fmt(m.get("zrel_l1"), 3),
                    _fmt(m.get("z_root_l1"), 2), _fmt(m["pa_epe_mm"], 2), _fmt(floor, 2),
                    _fmt(val, 2)])
    return out


HEADER = "| " + " | ".join(COLUMNS) + " |"
"""The first line of every table ``markdown`` writes."""


def check_out(path: Path) -> None:
    """Refuse, with one UserError line, an ``--out`` for the ablation table that does not end
    in ``.md``, is a folder, or exists without starting with ``HEADER`` (i.e. is not an
    earlier ablation table, which may be replaced)."""
    path = Path(path)
    if not path.name.endswith(".md"):
        raise UserError(f"--out {path}: the ablation table is Markdown; give a file name "
                        f"ending in .md")
    if path.is_dir():
        raise UserError(f"--out {path}: is a folder; give a file name ending in .md")
    if os.path.lexists(path):
        head = (HEADER + "\n").encode()
        ok = path.is_file()                      # never open a FIFO or device: it may block
        if ok:
            try:
                with open(path, "rb") as f:
                    ok = f.read(len(head)) == head
            except OSError:
                ok = False
        if not ok:
            raise UserError(f"--out {path}: exists and is not an ablation table written by bench "
                            f"report --ablation; not overwritten (remove it or choose another name)")


def markdown(table: list[list[str]]) -> str:
    lines = [HEADER, "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(lines) + "\n"
