"""Targets and the printed table of a performance summary.

Targets (issue 8): the full pre-training step reaches at least 0.9 of the bare backbone's
images/s on every device; against lightly's documented SimCLR pipeline, at least parity on the
CPU (where the backbone dominates) and at least 1.5x on a GPU (where per-sample CPU transforms
starve the device and batched augmentation on the device should not).
"""
from __future__ import annotations

from rich.table import Table

TARGETS: dict[str, dict[str, float]] = {
    "cpu": {"harness_vs_bare.simclr": 0.9, "harness_vs_bare.peclr": 0.9,
            "vs_peer_pipeline": 1.0},
    "cuda": {"harness_vs_bare.simclr": 0.9, "harness_vs_bare.peclr": 0.9,
             "vs_peer_pipeline": 1.5},
}
CLI_TARGET_S = 1.5          # a CLI answer, start-up included (median of 3 fresh processes)
REPORT_TARGET_S = 3.0       # bench report over 1,000 records, start-up included
BUSY_LOAD = 0.5             # 1-minute load average from other processes that makes figures noisy
VARIANTS = ("bare", "simclr", "peclr", "peer", "bare_finetune", "finetune", "predict")


def ratio(figures: dict, name: str) -> float:
    """A ratio of one device's figures by dotted name, e.g. ``harness_vs_bare.simclr``."""
    value = figures
    for part in name.split("."):
        value = value[part]
    return float(value)


def check_targets(summary: dict) -> list[dict]:
    """One entry per target of each measured device: figure, value, target, met."""
    return [{"device": device, "figure": name, "value": ratio(figures, name),
             "target": target, "met": ratio(figures, name) >= target}
            for device, figures in summary["devices"].items()
            for name, target in TARGETS[device].items()]


def table(summary: dict) -> Table:
    """Ratios with their targets, then every rate, then the device-free figures."""
    t = Table(title="handbench performance"
              + (" (--quick)" if summary["quick"] else ""), title_justify="left")
    for column, justify in (("device", "left"), ("figure", "left"), ("value", "right"),
                            ("target", "right"), ("met", "center")):
        t.add_column(column, justify=justify)
    for row in summary["targets"]:
        t.add_row(row["device"], row["figure"], f"{row['value']:.3f}", f">= {row['target']:g}",
                  "[green]yes[/]" if row["met"] else "[red]no[/]")
    for device, figures in summary["devices"].items():
        t.add_row(device, "finetune_vs_bare", f"{figures['finetune_vs_bare']:.3f}", "", "")
    t.add_section()
    for device, figures in summary["devices"].items():
        for name in VARIANTS:
            t.add_row(device, f"{name} img/s", f"{figures['img_per_s'][name]:.1f}", "", "")
    t.add_section()
    for key, value in summary.items():
        if key.startswith("render_img_per_s_"):
            t.add_row("cpu", key, f"{value:.0f}", "", "")
        elif key.startswith(("report_s_", "report_read_s_", "report_cli_s_")):
            t.add_row("cpu", key, f"{value:.2f}", "", "")
    for name, value in summary.get("cli_s", {}).items():
        t.add_row("cpu", f"cli {name} s", f"{value:.2f}", f"< {CLI_TARGET_S:g}", "")
    notes = [f"GPU path {summary['gpu']}"] if summary["gpu"] else []
    machine = summary["machine"]
    if machine["load_avg"][0] >= BUSY_LOAD:
        notes.append(f"busy machine: load average {machine['load_avg'][0]:g} on "
                     f"{machine['cores_usable']} cores before the start; figures are noisy "
                     f"(--threads 1 is steadier on a shared machine)")
    t.caption = "\n".join(notes) or None
    return t


README_ROWS = (
    ("`harness_vs_bare` simclr: full pre-training step (data, augmentation, loss, Adam) / bare "
     "backbone fwd+bwd+Adam on ready tensors", "harness_vs_bare.simclr", "{:.3f}"),
    ("`harness_vs_bare` peclr", "harness_vs_bare.peclr", "{:.3f}"),
    ("`vs_peer_pipeline`: ours / lightly's documented SimCLR (per-sample torchvision transforms "
     "in DataLoader workers, `NTXentLoss`)", "vs_peer_pipeline", "{:.2f}"),
    ("fine-tune step / bare", "finetune_vs_bare", "{:.2f}"),
    ("evaluation (predict)", "img_per_s.predict", "{:.0f} img/s"),
)


def readme_table(summary: dict) -> str:
    """The README's performance table, every number from ``summary`` (``summary.json``), one
    column per device with the machine it ran on; a device not measured says why."""
    machine = summary["machine"]
    cpu_name = (f"cpu: {machine['cpu']}, {machine['cores_usable']} cores"
                + (", `--quick`" if summary["quick"] else ""))
    columns = {"cpu": cpu_name,
               "cuda": f"cuda: {machine['gpu']}" if "cuda" in summary["devices"]
               else "cuda: not measured (no GPU lent)"}
    lines = [f"| figure | {columns['cpu']} | {columns['cuda']} | target |", "|---|---|---|---|"]
    for label, name, fmt in README_ROWS:
        cells = []
        for device in ("cpu", "cuda"):
            figures = summary["devices"].get(device)
            cells.append(fmt.format(ratio(figures, name)) if figures else "–")
        targets = {d: TARGETS[d].get(name) for d in ("cpu", "cuda")}
        target = " · ".join(f"≥ {t:g} ({d})" for d, t in targets.items() if t is not None) or "–"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {target} |")
    records = summary["extras"]["report_records"]
    render = next(k for k in summary if k.startswith("render_img_per_s_"))
    lines.append(f"| synthetic renderer at {render.rsplit('_', 1)[1]} px | {summary[render]:.0f} img/s | – | ≥ 300 |")
    if f"report_cli_s_{records}" in summary:
        lines.append(f"| `bench report` over {records:,} records, as a fresh process (start-up "
                     f"included) | {summary[f'report_cli_s_{records}']:.1f} s | – | < {REPORT_TARGET_S:g} s |")
        lines.append(f"| the same report inside a running process | "
                     f"{summary[f'report_s_{records}']:.1f} s | – | – |")
    else:
        lines.append(f"| `bench report` over {records:,} records | {summary[f'report_s_{records}']:.1f} s | – | < 3 s |")
    if f"report_read_s_{records}" in summary:
        lines.append(f"| reading and validating the same records alone | "
                     f"{summary[f'report_read_s_{records}']:.2f} s | – | – |")
    labels = {"help": "`bench --help`", "methods": "`bench methods`",
              "unknown_method": "`bench run --method nosuch`", "status_empty": "`bench status` (no runs)"}
    for name, value in summary.get("cli_s", {}).items():
        lines.append(f"| {labels.get(name, name)}, cold start | {value:.2f} s | – | < {CLI_TARGET_S:g} s |")
    return "\n".join(lines)
