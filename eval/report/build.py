"""``build_report``: result records -> tables, figures and an index, the same way every time.

Layout of the output folder (replaced as a whole by every call)::

    index.md                       links every table and figure; lists records left out
    tables/table<k>_<name>.{md,csv,tex}
    figures/fig<k>_<name>.{png,pdf}
    runs.parquet                   one row per run in the tables (the flattened records)

Pose heads: no table or figure mixes runs of two pose heads (``config.finetune.head``).
When the records hold one head, the layout is the one above. When they hold several, every
table and figure is written once per head, its file name ending in the head
(``tables/table1_main_heatmap.md``, ``figures/fig1_pa_epe_regression.png``) and its title
naming it ("Table 1: main results (heatmap head)"); the index has one "Main result",
"Tables" and "Figures" section per head, heads in ``groups.HEADS`` order. The statistics
never cross heads either: a group and its random/ImageNet baseline share the head.

runs.parquet leaves out what says nothing: the optional columns (``load.OPTIONAL``) that no
record has, and ``head`` when every run used the default regression head, so older
records give the file they always gave.

The report is built in a sibling folder and moved into place at the end, so a failed
call leaves the previous report intact. A folder is only ever replaced if an earlier
call wrote it (it holds the marker file) or it is empty.
"""
from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.errors import UserError
from benchmarks.store import recover_dir, replace_dir
import eval.report.figures as figures
import eval.report.parallel as parallel
import eval.report.tables as tables
from eval.report.groups import HEAD, NothingToShow, head_order
from eval.report.load import DEFAULT_HEAD, OPTIONAL, RecordProblem, Runs, load_runs
from eval.report.stats import ALPHA, CONFIDENCE, POWER, aggregate, compare

MARKER = ".bench-report"
INDEX = "index.md"


@dataclass(frozen=True)
class Item:
    """One table or figure of the report: where it goes and what the index says about it."""

    stem: str
    title: str
    sentence: str
    make: Callable[[pd.DataFrame, Runs], object]
    cost: float = 0.0      # figures: seconds to draw over the perf study's 1,000 records; costliest first


@dataclass(frozen=True)
class Part:
    """The runs of one pose head (``head`` None: the report's only head, named nowhere),
    with their group statistics (None when no record succeeded)."""

    head: str | None
    runs: Runs
    groups: pd.DataFrame | None

    @property
    def suffix(self) -> str:
        """What the head adds to a file stem: "_heatmap", or nothing."""
        return f"_{self.head}" if self.head else ""

    @property
    def named(self) -> str:
        """What the head adds to a title or heading: " (heatmap head)", or nothing."""
        return f" ({self.head} head)" if self.head else ""


TABLES = (
    Item("table1_main", "Table 1: main results",
         "PA-EPE, PA-AUC, EPE and AUC per method and backbone at full labels, with seeds, confidence "
         "intervals, compute spent and the change against random and ImageNet init.",
         lambda g, r: tables.main_table(g)),
    Item("table2_label_efficiency", "Table 2: label efficiency",
         "PA-EPE per method at each fraction of the labelled training set.",
         lambda g, r: tables.label_efficiency_table(g)),
    Item("table3_protocols", "Table 3: compute-matching protocols",
         "PA-EPE under match=pretrain and match=total, showing whether a gain survives when the "
         "inits may spend the saved pre-training compute on fine-tuning.",
         lambda g, r: tables.protocol_table(g)),
    Item("table4_probes", "Table 4: probes",
         "Gesture accuracy and absolute and relative viewpoint error of probes on the pre-trained features.",
         lambda g, r: tables.probe_table(g)),
    Item("table5_per_joint", "Table 5: per-joint aligned error",
         "Procrustes-aligned error of each of the 21 joints in FreiHAND order, per method.",
         lambda g, r: tables.per_joint_table(g)),
    Item("table6_pretraining", "Table 6: pre-training objectives on held-out frames",
         "Each pre-training's own loss on frames it never saw, at its start and end, beside its "
         "chance level and collapse indicators.",
         lambda g, r: tables.pretraining_table(g)),
    Item("table7_transfer", "Table 7: generalisation to other data sets",
         "Each fine-tuned model scored on the other data sets of eval.also, without training "
         "on them, beside each set's floor.",
         lambda g, r: tables.transfer_table(g)),
)
FIGURES = (
    Item("fig1_pa_epe", "Figure 1: PA-EPE per method",
         "PA-EPE per method with 95% Student's t confidence intervals and every seed as a dot.",
         lambda g, r: figures.pa_epe_per_method(g, r.table), 0.45),
    Item("fig2_pck", "Figure 2: 3D PCK curves",
         "Aligned and unaligned 3D PCK against the error threshold, with each method's AUC in the legend.",
         lambda g, r: figures.pck_curves(g), 0.7),
    Item("fig3_label_efficiency", "Figure 3: label efficiency",
         "PA-EPE against the fraction of labelled data used for fine-tuning.",
         lambda g, r: figures.label_efficiency(g), 0.35),
    Item("fig4_convergence", "Figure 4: convergence",
         "PA-EPE of the periodic evaluations against fine-tuning steps.",
         lambda g, r: figures.convergence(g, r.table, r.evals), 0.35),
    Item("fig5_compute", "Figure 5: accuracy against compute",
         "PA-EPE against the FLOPs spent on pre-training and fine-tuning.",
         lambda g, r: figures.accuracy_vs_compute(g), 0.75),
    Item("fig6_pretraining", "Figure 6: pre-training curves",
         "Each method's own pre-training loss against pre-training steps, mean ± 1 sd over seeds, "
         "and how far it fell from its first logged value.",
         lambda g, r: figures.pretraining_curves(g, r.table, r.pretrain), 0.95),
)
TABLES_NOTE = ("Every setting in the records appears in the tables; a setting shared by all rows of a table "
               "is stated above it. The CSV files hold the numbers at full precision, one row per group.")
FIGURES_NOTE = ("Figures show the headline slice: full labels, the largest budget and the default protocol "
                "(match=pretrain where present), except along the setting a figure plots; one panel per "
                "backbone (or other setting that still differs).")
STATISTICS = (
    "- Each number is over the seeds of one group: runs that share method, backbone, data set, budget, "
    "protocol (match), label fraction and profile.",
    "- Mean ± sample standard deviation (ddof=1); n = number of seeds.",
    f"- {CONFIDENCE:.0%} confidence interval of the mean: Student's t interval, mean ± t({0.5 + CONFIDENCE / 2:g}, "
    "n−1)·s/√n (a bootstrap over three to five seeds cannot reach beyond the seeds it resamples).",
    "- Relative change against random and imagenet: change of the group mean in % of the baseline's "
    "mean, in the same setting (for errors, negative is better).",
    f"- Significance marker `*`: two-sided paired t-test (`scipy.stats.ttest_rel`) over the seeds a "
    f"group shares with the baseline group, p < {ALPHA:g} after Holm's adjustment over every comparison "
    "with that baseline in the same table and metric (the CSVs hold raw `_p` and adjusted `_p_holm`). "
    "Chosen over a paired bootstrap, which is anti-conservative with the few seeds of a typical study.",
    f"- Minimum detectable effect (`_mde` in the CSVs): the smallest paired difference each comparison "
    f"detects with {POWER:.0%} power at α = {ALPHA:g} two-sided, from its number of pairs and the spread "
    "of its paired differences (non-central t). A difference without `*`, or smaller than this, is not "
    "a finding.",
)


def _parts(runs: Runs) -> list[Part]:
    """One part per pose head in the records, or a single unnamed part when there is one head."""
    if runs.table.empty:
        return [Part(None, runs, None)]
    groups = compare(runs.table, aggregate(runs.table))
    heads = head_order(runs.table[HEAD])
    if len(heads) == 1:
        return [Part(None, runs, groups)]
    parts = []
    for head in heads:
        table = runs.table[runs.table[HEAD] == head].reset_index(drop=True)
        evals = runs.evals[runs.evals["run"].isin(table["run"])].reset_index(drop=True)
        pretrain = runs.pretrain[runs.pretrain["run"].isin(table["run"])].reset_index(drop=True)
        parts.append(Part(head, Runs(table, evals, runs.problems, runs.n_files, pretrain),
                          groups[groups[HEAD] == head].reset_index(drop=True)))
    return parts


def _heads_line(runs: Runs) -> list[str]:
    """The index's sentence on the pose heads: none when every run used the default head."""
    heads = head_order(runs.table[HEAD]) if not runs.table.empty else []
    if len(heads) > 1:
        return [f"The runs fine-tune {len(heads)} pose heads ({', '.join(heads)}); no table, figure or "
                f"statistic mixes them: each table and figure is written once per head, its file name "
                f"ending in the head.", ""]
    if heads and heads[0] != DEFAULT_HEAD:
        return [f"Every run in the tables fine-tunes the {heads[0]} pose head.", ""]
    return []


def _flat(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table as runs.parquet holds it: without optional columns no record has, and
    without ``head`` when every run used the default head."""
    empty = [c for c in OPTIONAL if c in table.columns and table[c].isna().all()]
    if HEAD in table.columns and (table[HEAD] == DEFAULT_HEAD).all():
        empty.append(HEAD)
    return table.drop(columns=empty)


def _check_out(out_dir: Path, results_dir: Path) -> None:
    """Refuse an output folder this function did not create (it would be replaced)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {str(out_dir)!r} is a file; give a folder for the report")
    if results_dir.resolve().is_relative_to(out_dir.resolve()):
        raise UserError(f"--out {str(out_dir)!r} contains the results folder; choose another folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise UserError(f"--out {str(out_dir)!r} holds files that bench report did not write; "
                        "choose a new or empty folder (the report replaces its folder on every call)")


# What a report folder holds; anything else in an old report was put there by someone else.
OWN_FILES = re.compile(r"(\.bench-report|index\.md|runs\.parquet|tables/table\d+_\w+\.(md|csv|tex)"
                       r"|tables/claims(_comparisons)?\.(md|csv)"
                       r"|figures/fig\d+_\w+\.(png|pdf))")


def _refuse_foreign_files(out_dir: Path) -> None:
    """The report replaces its whole folder: files a user added to an old report (notes, an own
    table) would be deleted, so they stop it, named, and nothing is replaced."""
    if not out_dir.is_dir():
        return
    foreign = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*")
                     if not p.is_dir() and not OWN_FILES.fullmatch(str(p.relative_to(out_dir))))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(f"--out {str(out_dir)!r} holds files bench report did not write ({shown}); "
                        f"the report replaces its folder, so move them out first")


def _problem_lines(problems: list[RecordProblem]) -> list[str]:
    if not problems:
        return ["None: every record was read and is in the tables."]
    lines = ["| run | status | method | seed | reason |", "|:---|:---|:---|---:|:---|"]
    for p in problems:
        cells = [p.run, p.kind, p.method or "", "" if p.seed is None else str(p.seed), p.reason]
        lines.append("| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |")
    return lines


def _main_result(part: Part, main: tables.Table | None) -> list[str]:
    """The index's section quoting Table 1 of one part, with the sentence on the no-image floor."""
    if main is None:
        return []
    link = f"tables/{TABLES[0].stem}{part.suffix}.md"
    said = [line for line in (tables.floor_sentence(main), tables.detect_sentence(main)) if line]
    return [f"## Main result{part.named}", "",
            f"Table 1 (details and footnotes in [its file]({link})).", "",
            *([main.setting, ""] if main.setting else []), tables.markdown(main),
            *[part for line in said for part in (line, "")]]


def _write_claims(claims: list, runs: Runs, staging: Path) -> list[str]:
    """The claims' verdicts and comparisons (tables/claims.md, claims.csv and
    claims_comparisons.csv); returns the index's section, which quotes the verdicts."""
    import eval.report.claims as claim_table

    comparisons, verdicts = claim_table.evaluate(claims, runs.table)
    text = claim_table.markdown(comparisons, verdicts)
    (staging / "tables" / "claims.md").write_text(f"# Claims\n\n{text}", encoding="utf-8")
    verdicts.to_csv(staging / "tables" / "claims.csv", index=False)
    comparisons.to_csv(staging / "tables" / "claims_comparisons.csv", index=False)
    first = text.split("\n\n")[0]
    return ["## Claims", "", "Each claim's verdict, computed from the records (every comparison, "
            "the conventions and the CSVs: [tables/claims.md](tables/claims.md)).", "", first, ""]


def _index(runs: Runs, shown: list[str], mains: list[str], claimed: list[str] = ()) -> str:
    kinds = ("failed", "unreadable", "invalid")
    counts = ", ".join(f"{sum(p.kind == kind for p in runs.problems)} {kind}" for kind in kinds)
    lines = ["# handbench report", "",
             f"Built from {runs.n_files} result records: {len(runs.table)} in the tables, {counts}.", "",
             *_heads_line(runs), *claimed, *mains]
    lines += ["## Statistics", "", *STATISTICS, "", *shown, "## Records not in the tables", "",
              *_problem_lines(runs.problems), ""]
    if not runs.table.empty:
        lines += ["## Data", "", "[runs.parquet](runs.parquet): one row per run in the tables, the "
                  "records flattened (metrics, compute, probes, PCK curves, per-joint errors).", ""]
    return "\n".join(lines)


def _section(heading: str, intro: str, items: tuple[Item, ...], render: Callable[[Item], list[Path]],
             groups: pd.DataFrame | None) -> list[str]:
    """Render each item; the index lines that link its files or say why it was skipped."""
    lines = [f"## {heading}", "", intro, ""]
    for item in items:
        try:
            if groups is None:
                raise NothingToShow("no successful record")
            paths = render(item)
        except NothingToShow as why:
            lines.append(f"- **{item.title}**: skipped, {why}.")
            continue
        links = " · ".join(f"[{p.suffix[1:].upper()}]({p.parent.name}/{p.name})" for p in paths)
        lines.append(f"- **{item.title}** ({links}): {item.sentence}")
    return [*lines, ""]


def _render_figure(part: Part, item: Item, staging: Path) -> list[Path]:
    with figures.style():
        figure = item.make(part.groups, part.runs)
        return figures.save(figure, staging / "figures", item.stem + part.suffix)


def _write_part(part: Part, staging: Path, drawn: dict) -> tuple[list[str], list[str]]:
    """Write one part's tables and figures into ``staging``; returns its index lines (the
    main-result section, then the tables and figures sections)."""
    built: dict[str, tables.Table] = {}

    def render_table(item: Item) -> list[Path]:
        built[item.stem] = item.make(part.groups, part.runs)
        return tables.write(built[item.stem], staging / "tables", item.stem + part.suffix,
                            item.title + part.named)

    def render_figure(item: Item) -> list[Path]:
        return drawn[(part.suffix, item.stem)].result()      # NothingToShow comes back too

    sections = (_section("Tables" + part.named, TABLES_NOTE, TABLES, render_table, part.groups)
                + _section("Figures" + part.named, FIGURES_NOTE, FIGURES, render_figure, part.groups))
    return _main_result(part, built.get(TABLES[0].stem)), sections


def _write(runs: Runs, staging: Path, claims: list | None = None) -> str:
    """Write tables, figures and data into ``staging``; returns the index text."""
    (staging / "tables").mkdir()
    (staging / "figures").mkdir()
    mains: list[str] = []
    sections: list[str] = []
    parts = _parts(runs)
    # the costliest figures first, so that the workers run out of work together
    wanted = sorted(((part, item) for part in parts if part.groups is not None for item in FIGURES),
                    key=lambda job: -job[1].cost)
    jobs = [functools.partial(_render_figure, part, item, staging) for part, item in wanted]
    with parallel.run_all(jobs) as futures:          # figures drawn while the tables are written
        drawn = {(part.suffix, item.stem): f for (part, item), f in zip(wanted, futures)}
        if not runs.table.empty:
            _flat(runs.table).to_parquet(staging / "runs.parquet", engine="pyarrow", index=False)
        for part in parts:
            main, shown = _write_part(part, staging, drawn)
            mains += main
            sections += shown
        claimed = _write_claims(claims, runs, staging) if claims and not runs.table.empty else []
    return _index(runs, sections, mains, claimed)


def build_report(results_dir: Path | str, out_dir: Path | str, claims: Path | str | None = None) -> Path:
    """Build the report of every record under ``results_dir`` into ``out_dir``; returns index.md.
    ``claims``: a sweep file whose ``claims`` list gets a verdict each (``eval.report.claims``).

    Raises UserError when there is no record, the claims cannot be read, or ``out_dir`` is not
    safe to replace.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if claims is not None:
        from eval.report.claims import read_claims

        claims = read_claims(Path(claims))
    recover_dir(out_dir)                        # a report killed mid-swap gets its old folder back
    _check_out(out_dir, results_dir)
    runs = load_runs(results_dir)
    target = out_dir.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        index = _write(runs, staging, claims)
        (staging / INDEX).write_text(index, encoding="utf-8")
        (staging / MARKER).write_text("Written by bench report; the whole folder is replaced by each call.\n",
                                      encoding="utf-8")
        _refuse_foreign_files(target)
        replace_dir(staging, target)            # killed anywhere: the old report or the new one
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / INDEX
