"""`bench report` end to end: fixture records -> tables, figures and index, checked by hand.

The fixture: methods random, imagenet, simclr (three seeds each) and an unregistered method
(two seeds) at full labels with match=pretrain; the three registry methods again at 10%
labels and under match=total; probes on simclr; one failed, one truncated and one invalid
record. The PA-EPE values are chosen so that the statistics are easy to compute by hand.
Every record carries the example's no-image floor (20 mm PA-EPE, beaten by every group) and
2D scores.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from benchmarks.record import write_record
from eval.report import build_report
from example_records import example_record, failed_record

# (method, match, label_fraction) -> PA-EPE (mm) of seeds 0, 1, 2, ...
PA_EPE = {
    ("random", "pretrain", 1.0): [12.0, 12.6, 12.9],      # mean 12.5, std sqrt(0.21)
    ("simclr", "pretrain", 1.0): [10.0, 10.5, 11.0],      # random - (2.0, 2.1, 1.9): mean 10.5, std 0.5
    ("imagenet", "pretrain", 1.0): [9.0, 9.6, 10.2],      # simclr - (1.0, 0.9, 0.8): mean 9.6, std 0.6
    ("mymethod", "pretrain", 1.0): [11.0, 11.4],          # not in the registry
    ("random", "pretrain", 0.1): [15.0, 15.5, 16.0],
    ("simclr", "pretrain", 0.1): [14.0, 16.5, 15.6],      # differences -1, +1, -0.4: not significant
    ("imagenet", "pretrain", 0.1): [13.0, 13.2, 13.4],
    ("random", "total", 1.0): [11.0, 11.2, 11.4],
    ("imagenet", "total", 1.0): [9.5, 9.7, 9.9],
    ("simclr", "total", 1.0): [10.2, 10.4, 10.6],
}
GESTURE_ACC = [0.7, 0.8, 0.9]                              # simclr, full labels, match=pretrain
TABLES = ("table1_main", "table2_label_efficiency", "table3_protocols", "table4_probes", "table5_per_joint",
          "table6_pretraining", "table7_transfer")
FIGURES = ("fig1_pa_epe", "fig2_pck", "fig3_label_efficiency", "fig4_convergence", "fig5_compute",
           "fig6_pretraining")


def write_fixture(results: Path) -> dict[str, dict]:
    """Write the fixture records; returns the successful ones by run_id."""
    records = {}
    for (method, match, fraction), values in PA_EPE.items():
        for seed, value in enumerate(values):
            probes = ({"gesture_acc": GESTURE_ACC[seed]}
                      if (method, match, fraction) == ("simclr", "pretrain", 1.0) else {})
            record = example_record(method, seed, value, match=match, label_fraction=fraction, probes=probes,
                                    pretrain_flops=0.0 if method in ("random", "imagenet") else 2e12)
            write_record(results, record)
            records[record["run_id"]] = record
    write_record(results, failed_record("peclr", 0, "RuntimeError: loss is NaN at step 12"))
    truncated = write_record(results, example_record("peclr", 1, 9.0))
    truncated.write_text(truncated.read_text()[:500])
    invalid = example_record("vicreg", 0, 9.0)
    del invalid["metrics"]["pa_epe_mm"]
    write_record(results, invalid)
    return records


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("report")
    records = write_fixture(root / "runs")
    index = build_report(root / "runs", root / "report")
    return root, index, records


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def row(rows: list[dict[str, str]], **match: str) -> dict[str, str]:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def md_row(path: Path, *cells: str) -> list[str]:
    """The cells of the one Markdown table row whose leading cells are ``cells``."""
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")]
            for line in path.read_text().splitlines() if line.startswith("| ")]
    found = [r for r in rows if r[:len(cells)] == list(cells)]
    assert len(found) == 1, (cells, found)
    return found[0]


def test_main_table_numbers_match_hand_computation(report):
    root, index, records = report
    rows = read_csv(root / "report" / "tables" / "table1_main.csv")
    full = {"match": "pretrain", "label_fraction": "1.0"}
    simclr = row(rows, method="simclr", **full)
    assert int(simclr["n"]) == 3 and simclr["seeds"] == "0;1;2"
    assert float(simclr["pa_epe_mm_mean"]) == pytest.approx(10.5)
    assert float(simclr["pa_epe_mm_std"]) == pytest.approx(0.5)                     # ddof=1
    assert float(simclr["pa_epe_mm_vs_random_pct"]) == pytest.approx(-16.0)        # (10.5-12.5)/12.5
    assert float(simclr["pa_epe_mm_vs_imagenet_pct"]) == pytest.approx(9.375)      # (10.5-9.6)/9.6
    assert float(simclr["pa_epe_mm_vs_imagenet_diff"]) == pytest.approx(0.9)
    assert int(simclr["pa_epe_mm_vs_imagenet_pairs"]) == 3
    # paired t-test by hand: differences 1.0, 0.9, 0.8 -> t = 0.9 / (0.1 / sqrt 3), df 2
    t = 0.9 / (0.1 / np.sqrt(3))
    assert float(simclr["pa_epe_mm_vs_imagenet_p"]) == pytest.approx(2 * scipy.stats.t.sf(t, 2))
    random = row(rows, method="random", **full)
    assert float(random["pa_epe_mm_std"]) == pytest.approx(np.sqrt(0.21))          # deviations -.5 .1 .4
    assert random["pa_epe_mm_vs_random_pct"] == ""                                 # not against itself
    mine = row(rows, method="mymethod", **full)
    assert int(mine["n"]) == 2 and int(mine["pa_epe_mm_vs_random_pairs"]) == 2
    # AUC: the mean of the records' own values; compute: the records' pre-training + fine-tuning
    runs = [r for r in records.values()
            if (r["method"], r["match"], r["label_fraction"]) == ("simclr", "pretrain", 1.0)]
    assert float(simclr["pa_auc_mean"]) == pytest.approx(sum(r["metrics"]["pa_auc"] for r in runs) / 3)
    assert float(simclr["total_flops_mean"]) == pytest.approx(3e12)
    # the no-image floor and the 2D error: means of the records' own values; every group beats the floor
    assert float(simclr["floor_pa_epe_mm_mean"]) == pytest.approx(
        np.mean([r["baselines"]["canonical_hand"]["pa_epe_mm"] for r in runs]))
    assert float(simclr["one_point_pa_epe_mm_mean"]) == pytest.approx(
        np.mean([r["baselines"]["one_point"]["pa_epe_mm"] for r in runs]))
    assert float(simclr["epe_2d_px_mean"]) == pytest.approx(
        np.mean([r["metrics"]["epe_2d_px"] for r in runs]))
    assert {r["not_below_floor"] for r in rows} == {"False"}
    assert ("scores 20.00 mm PA-EPE on this evaluation set; every group in Table 1 beats it."
            in index.read_text())
    # the CI is Student's t interval of the seed values 10.0, 10.5, 11.0: 10.5 ± 4.303 x 0.5 / sqrt 3
    assert float(simclr["pa_epe_mm_ci_low"]) == pytest.approx(10.5 - 4.302653 * 0.5 / np.sqrt(3))
    assert float(simclr["pa_epe_mm_ci_high"]) == pytest.approx(10.5 + 4.302653 * 0.5 / np.sqrt(3))
    # minimum detectable difference: sd of the paired differences 0.1, three pairs, d(3) = 3.264
    assert float(simclr["pa_epe_mm_vs_imagenet_mde"]) == pytest.approx(0.3264, abs=1e-3)
    # Holm over the table's comparisons with imagenet on PA-EPE: the CSV's raw p-values, one family
    raw = [float(r["pa_epe_mm_vs_imagenet_p"]) for r in rows if r["pa_epe_mm_vs_imagenet_p"] != ""]
    adjusted = sorted(float(r["pa_epe_mm_vs_imagenet_p_holm"]) for r in rows
                      if r["pa_epe_mm_vs_imagenet_p_holm"] != "")
    from statsmodels.stats.multitest import multipletests
    assert adjusted == pytest.approx(sorted(multipletests(raw, method="holm")[1]))
    assert "this study can detect PA-EPE differences against random of ≥" in index.read_text()

    md = root / "report" / "tables" / "table1_main.md"
    cells = md_row(md, "pretrain", "resnet18", "simclr")
    assert cells[3] == "10.50 ± 0.50"
    assert cells[-2:] == ["-16.0%*", "+9.4%*"]
    assert md_row(md, "pretrain", "resnet18", "random")[3] == "12.50 ± 0.46"
    assert "3.00 TFLOP" in cells
    assert "+ ext." in md_row(md, "pretrain", "resnet18", "imagenet")[-3]          # external pre-training
    methods = [r[2] for r in (line.strip("| ").split(" | ") for line in md.read_text().splitlines()
                              if line.startswith("| pretrain"))]
    assert methods == ["random", "imagenet", "simclr", "mymethod"]          # registry order, then others


def test_other_tables_match_hand_computation(report):
    root, _, _ = report
    tables = root / "report" / "tables"
    # label efficiency: 10% labels; simclr's differences to random (-1, +1, -0.4) are not significant
    low = row(read_csv(tables / "table2_label_efficiency.csv"), method="simclr", match="pretrain",
              label_fraction="0.1")
    assert float(low["pa_epe_mm_mean"]) == pytest.approx((14.0 + 16.5 + 15.6) / 3)
    assert float(low["pa_epe_mm_vs_random_pct"]) == pytest.approx(100 * ((46.1 / 3) - 15.5) / 15.5)
    assert float(low["pa_epe_mm_vs_random_p"]) == pytest.approx(
        scipy.stats.ttest_rel([14.0, 16.5, 15.6], [15.0, 15.5, 16.0]).pvalue)
    assert md_row(tables / "table2_label_efficiency.md", "pretrain", "simclr")[2:] == ["15.37 ± 1.27",
                                                                                        "10.50 ± 0.50"]
    # protocols: match=total side by side with match=pretrain
    cells = md_row(tables / "table3_protocols.md", "simclr")
    assert cells[1:] == ["10.50 ± 0.50", "-16.0%*", "10.40 ± 0.20", "-7.1%*"]      # (10.4-11.2)/11.2
    # probes: only simclr has them
    probes = read_csv(tables / "table4_probes.csv")
    assert [r["method"] for r in probes] == ["simclr"]
    assert float(probes[0]["probe_gesture_acc_mean"]) == pytest.approx(0.8)
    assert float(probes[0]["probe_gesture_acc_std"]) == pytest.approx(0.1)
    assert md_row(tables / "table4_probes.md", "simclr")[1] == "0.800 ± 0.100"
    # per joint: the mean over seeds of each joint, joints in FreiHAND order
    joints = read_csv(tables / "table5_per_joint.csv")
    wrist = row(joints, method="simclr", match="pretrain", joint="wrist")
    factors = example_joint_factors()
    assert float(wrist["pa_epe_mm_mean"]) == pytest.approx(10.5 * factors[0])
    header = next(line for line in (tables / "table5_per_joint.md").read_text().splitlines()
                  if line.startswith("| "))
    assert "| wrist | thumb CMC | thumb MCP | thumb IP | thumb tip | index MCP |" in header


def example_joint_factors() -> np.ndarray:
    record = example_record("simclr", 0, 1.0)
    return np.array(record["metrics"]["per_joint_pa_epe_mm"])


def test_problem_records_are_listed_with_their_reason(report):
    _, index, _ = report
    text = index.read_text()
    assert "Built from 32 result records: 29 in the tables, 1 failed, 1 unreadable, 1 invalid." in text
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
             if line.startswith(("| peclr", "| vicreg"))}
    failed = next(v for k, v in lines.items() if "-s0-" in k and k.startswith("peclr"))
    assert "| failed | peclr | 0 | RuntimeError: loss is NaN at step 12 |" in failed
    truncated = next(v for k, v in lines.items() if "-s1-" in k and k.startswith("peclr"))
    assert "| unreadable |" in truncated and "truncated JSON" in truncated
    invalid = next(v for k, v in lines.items() if k.startswith("vicreg"))
    assert "| invalid | vicreg | 0 | missing metrics.pa_epe_mm |" in invalid


def test_every_table_and_figure_exists_and_is_linked(report):
    root, index, _ = report
    out = root / "report"
    for stem in TABLES:
        for ext in ("md", "csv", "tex"):
            assert (out / "tables" / f"{stem}.{ext}").stat().st_size > 0
        tex = (out / "tables" / f"{stem}.tex").read_text()
        assert tex.startswith("\\begin{table}") and "\\bottomrule" in tex and "±" not in tex
    for stem in FIGURES:
        assert (out / "figures" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    links = re.findall(r"\]\(([^)]+)\)", index.read_text())
    for stem in TABLES:
        assert {f"tables/{stem}.{ext}" for ext in ("md", "csv", "tex")} <= set(links)
    for stem in FIGURES:
        assert {f"figures/{stem}.png", f"figures/{stem}.pdf"} <= set(links)
    assert all((out / link).is_file() for link in links)
    assert "skipped" not in index.read_text()


def test_rebuild_gives_identical_bytes_and_replaces_the_folder(report):
    root, _, _ = report
    out = root / "report"

    def contents() -> dict[Path, bytes]:
        return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    before = contents()
    (out / "tables" / "table9_retired.md").write_text("from an older report")   # a table it no longer writes
    build_report(root / "runs", out)
    after = contents()
    assert sorted(after) == sorted(before)                                  # the stale file is gone
    for rel in before:                                                      # tables, figures, index, data
        assert after[rel] == before[rel], rel


def test_pretraining_curves_count_each_pretraining_once(tmp_path):
    """Figure 6: fine-tunes that share a pre-training (label fractions) share its curve, so a
    method's mean curve is over its seeds, and init-only methods have no panel."""
    from eval.report.figures import pretraining_curves
    from eval.report.load import load_runs
    from eval.report.stats import aggregate

    for seed in (0, 2):
        for fraction in (1.0, 0.1):
            write_record(tmp_path, example_record("simclr", seed, 10.0, label_fraction=fraction))
        write_record(tmp_path, example_record("random", seed, 12.0))
    runs = load_runs(tmp_path)
    fig = pretraining_curves(aggregate(runs.table), runs.table, runs.pretrain)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["simclr: 4.05 → 3.15 (-22%), 2 seeds"]      # 4.0 + 0.05 s - 0.3 k, mean over s


def test_figures_drawn_in_workers_or_in_order_give_the_same_bytes(report, tmp_path, monkeypatch):
    """The report is the same file for file whether its figures are drawn by forked workers or
    one after another in this process (one core, or no fork)."""
    from eval.report import parallel

    def contents(out: Path) -> dict[Path, bytes]:
        return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    root, _, _ = report
    built = {}
    for cores in (1, 3):
        monkeypatch.setattr(parallel.os, "cpu_count", lambda cores=cores: cores)
        build_report(root / "runs", tmp_path / f"cores{cores}")
        built[cores] = contents(tmp_path / f"cores{cores}")
    assert sorted(built[1]) == sorted(built[3]) and any(p.suffix == ".png" for p in built[1])
    for rel, data in built[1].items():
        assert built[3][rel] == data, rel


def test_saving_draws_each_file_once_and_writes_matplotlibs_bytes(report, tmp_path, monkeypatch):
    """``figures.save`` lays the figure out once and draws each file once; the files are those
    of matplotlib's own path (savefig with the layout engine on for the PNG, which draws the
    figure twice, and the layout kept for the PDF, drawn twice again)."""
    from matplotlib.figure import Figure

    from eval.report import figures
    from eval.report.load import load_runs
    from eval.report.stats import aggregate

    root, _, _ = report
    runs = load_runs(root / "runs")
    groups = aggregate(runs.table)
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: draws.append(1) or original(fig, renderer))
    for name, make in (("pck", lambda: figures.pck_curves(groups)),
                       ("pa_epe", lambda: figures.pa_epe_per_method(groups, runs.table))):
        with figures.style():
            ours = make()
            draws.clear()
            figures.save(ours, tmp_path, f"{name}_ours")
            assert len(draws) == 2, name
            theirs = make()
            draws.clear()
            theirs.savefig(tmp_path / f"{name}_theirs.png", dpi=figures.DPI, metadata=figures.PNG_METADATA)
            theirs.set_layout_engine("none")
            theirs.savefig(tmp_path / f"{name}_theirs.pdf", metadata=figures.PDF_METADATA)
            assert len(draws) == 4, name
        for ext in ("png", "pdf"):
            assert ((tmp_path / f"{name}_ours.{ext}").read_bytes()
                    == (tmp_path / f"{name}_theirs.{ext}").read_bytes()), (name, ext)
