"""What the one validator (``benchmarks.record.check``) refuses beyond a record's shape: AUC
and PCK outside [0, 1], errors in mm that are not finite or not physical, a record in a folder
that is not its run's; and what the report refuses across records: two records of one seed.
Every committed record passes."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.config import run_id
from benchmarks.errors import UserError
from benchmarks.record import MAX_ERROR_MM, RECORD, check, write_record
from eval.report import build_report
from eval.report.load import load_runs
from example_records import example_record, failed_record
from orchestration.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(ROOT.glob(f"results/*/records/*/{RECORD}"))
REPORTED = sorted(p.parent for p in ROOT.glob("results/*/report"))     # folders with a committed report


def _set(record: dict, dotted: str, value) -> None:
    """Put ``value`` at ``dotted`` ("metrics.pck.3": entry 3 of the list, "curves.eval.2.epe_mm")."""
    *parts, last = dotted.split(".")
    for part in parts:
        record = record[int(part)] if isinstance(record, list) else record[part]
    if isinstance(record, list):
        record[int(last)] = value
    else:
        record[last] = value


def _written(tmp_path: Path, dotted: str, value, seed: int = 0) -> Path:
    """A record of the example with ``value`` at ``dotted``, written as json writes it
    (NaN and Infinity as JSON's literals)."""
    record = example_record("simclr", seed, 10.0)
    _set(record, dotted, value)
    path = tmp_path / record["run_id"] / RECORD
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return path


def _shown(dotted: str) -> str:
    """How a reason names the place: list entries in brackets (``metrics.pck[3]``)."""
    parts = dotted.split(".")
    out = parts[0]
    for part in parts[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


def test_every_committed_record_is_ok():
    assert len(COMMITTED) >= 57
    kinds = {f"{p.parts[-4]}/{p.parts[-2]}": (check(p).kind, check(p).reason) for p in COMMITTED}
    assert {name: got for name, got in kinds.items() if got != ("ok", None)} == {}


@pytest.mark.parametrize("results", REPORTED, ids=lambda p: p.name)
def test_every_committed_study_with_a_report_loads_whole(results):
    """No record of a study left out, and no two records of one seed of one group."""
    runs = load_runs(results / "records")
    assert runs.problems == [] and len(runs.table) == runs.n_files


FRACTIONS = ("metrics.auc", "metrics.pa_auc", "metrics.pck.0", "metrics.pck.57", "metrics.pa_pck.99",
             "metrics.auc_2d", "metrics.pck_2d.40", "baselines.canonical_hand.pa_auc",
             "baselines.one_point.auc")


@pytest.mark.parametrize("dotted", FRACTIONS)
@pytest.mark.parametrize("value", [7.0, 1.0000001, -0.01])
def test_auc_and_pck_outside_zero_to_one_are_invalid(tmp_path, dotted, value):
    got = check(_written(tmp_path, dotted, value))
    assert got.kind == "invalid"
    assert got.reason == f"{_shown(dotted)} is {value!r}, outside [0, 1]: AUC and PCK are fractions"


@pytest.mark.parametrize("dotted", FRACTIONS)
def test_auc_and_pck_at_zero_and_one_are_ok(tmp_path, dotted):
    assert check(_written(tmp_path, dotted, 0.0, seed=0)).kind == "ok"
    assert check(_written(tmp_path, dotted, 1, seed=1)).kind == "ok"


def test_an_auc_of_seven_never_enters_table_1(tmp_path):
    for seed, value in enumerate([10.0, 11.0, 12.0]):
        record = example_record("simclr", seed, value)
        if seed == 2:
            record["metrics"]["pa_auc"] = 7.0
        write_record(tmp_path / "runs", record)
    build_report(tmp_path / "runs", tmp_path / "report")
    with (tmp_path / "report" / "tables" / "table1_main.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["n"] == "2" and row["seeds"] == "0;1" and float(row["pa_auc_mean"]) < 1.0
    index = (tmp_path / "report" / "index.md").read_text()
    assert "metrics.pa_auc is 7.0, outside [0, 1]" in index and "1 invalid" in index


ERRORS_MM = ("metrics.pa_epe_mm", "metrics.epe_mm", "metrics.per_joint_pa_epe_mm.20",
             "metrics.per_joint_epe_mm.0", "baselines.canonical_hand.pa_epe_mm",
             "baselines.canonical_hand.epe_mm", "baselines.one_point.pa_epe_mm",
             "baselines.one_point.epe_mm", "curves.eval.2.pa_epe_mm", "curves.eval.4.epe_mm")


def _reason_at(dotted: str, reason: str) -> str:
    """A periodic evaluation's reason names its point first: ``curves.eval[2]: pa_epe_mm ...``."""
    if dotted.startswith("curves.eval."):
        _, _, k, key = dotted.split(".")
        return f"curves.eval[{k}]: {key}{reason}"
    return f"{_shown(dotted)}{reason}"


@pytest.mark.parametrize("dotted", ERRORS_MM)
@pytest.mark.parametrize("value", [1e308, MAX_ERROR_MM * 1.0001, 10 ** 6])
def test_errors_beyond_any_hand_are_invalid(tmp_path, dotted, value):
    got = check(_written(tmp_path, dotted, value))
    assert got.kind == "invalid"
    assert got.reason == _reason_at(dotted, f" is {value!r}, above 10000 mm: no hand pose error is that large")


@pytest.mark.parametrize("dotted", ERRORS_MM)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10 ** 400])
def test_errors_that_are_not_finite_are_invalid(tmp_path, dotted, value):
    got = check(_written(tmp_path, dotted, value))
    said = "an integer of 401 digits" if isinstance(value, int) else repr(value)
    assert got.kind == "invalid"
    assert got.reason == _reason_at(dotted, f" is {said}, not a finite number")


@pytest.mark.parametrize("dotted", ERRORS_MM)
def test_errors_up_to_the_bound_are_ok(tmp_path, dotted):
    assert check(_written(tmp_path, dotted, MAX_ERROR_MM, seed=0)).kind == "ok"
    assert check(_written(tmp_path, dotted, 0, seed=1)).kind == "ok"


def test_an_error_of_1e308_is_listed_by_status_and_report_not_a_crash(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    runs = tmp_path / "runs"
    for method, base in (("random", 12.0), ("simclr", 10.0)):
        for seed in range(3):
            record = example_record(method, seed, base + 0.3 * seed)
            if (method, seed) == ("simclr", 1):
                record["metrics"]["pa_epe_mm"] = 1e308
            write_record(runs, record)
    reason = "metrics.pa_epe_mm is 1e+308, above 10000 mm: no hand pose error is that large"
    assert main(["report", "--results", str(runs), "--out", str(tmp_path / "report")]) == 0
    assert main(["status", "--results", str(runs)]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert reason in " ".join(out.out.split()) and "5 ok" in out.out and "1 invalid" in out.out
    index = (tmp_path / "report" / "index.md").read_text()
    assert reason in index and "5 in the tables" in index


def test_a_list_entry_that_is_not_a_number_is_named(tmp_path):
    for seed, value in enumerate(["0.5", True, None]):
        got = check(_written(tmp_path, "metrics.pck.3", value, seed=seed))
        assert (got.kind, got.reason) == ("invalid", f"metrics.pck[3] is {value!r}, not a finite number")


# --- a record's folder is its run ---------------------------------------------------------

def test_a_record_copied_into_another_folder_is_invalid_and_counts_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    runs = tmp_path / "runs"
    original = write_record(runs, example_record("simclr", 0, 28.62)).parent
    for copy in ("simclr-copy", "simclr-resnet18-1ep-pretrain-lf1-s1-0000000000"):
        shutil.copytree(original, runs / copy)
    failed = write_record(runs, failed_record("simclr", 2, "CUDA out of memory")).parent
    shutil.copytree(failed, runs / "failed-copy")
    for copy in ("simclr-copy", "simclr-resnet18-1ep-pretrain-lf1-s1-0000000000", "failed-copy"):
        got = check(runs / copy / RECORD)
        rid = json.loads((runs / copy / RECORD).read_text())["run_id"]
        assert got.kind == "invalid"
        assert got.reason == (f"run_id {rid!r} is not the name of its folder {copy!r}: "
                              f"a record copied or moved into another run's folder")
    assert check(original / RECORD).kind == "ok" and check(failed / RECORD).kind == "failed"
    build_report(runs, tmp_path / "report")
    with (tmp_path / "report" / "tables" / "table1_main.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["n"] == "1" and row["seeds"] == "0"                   # one seed, not three
    index = (tmp_path / "report" / "index.md").read_text()
    assert "Built from 5 result records: 1 in the tables, 1 failed, 0 unreadable, 3 invalid." in index
    assert main(["status", "--results", str(runs)]) == 0
    status = capsys.readouterr().out
    assert "1 failed  3 invalid  1 ok" in status
    assert "is not the name of its folder 'simclr-copy'" in " ".join(status.split())


# --- the report counts seeds, not records -------------------------------------------------

def _rerun(seed: int, value: float) -> dict:
    """Seed ``seed`` of simclr again under another run id: a config value no group key shows."""
    record = example_record("simclr", seed, value)
    record["config"]["finetune"]["lr"] = 1e-3
    record["run_id"] = run_id(record["config"])
    return record


def test_two_records_of_one_seed_refuse_the_report_naming_both_folders(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "report"
    folders = [write_record(runs, example_record("simclr", seed, 10.0 + seed)).parent for seed in range(3)]
    write_record(runs, example_record("random", 1, 12.0))              # another group: not a duplicate
    build_report(runs, out)
    before = (out / "index.md").read_text()
    rerun = write_record(runs, _rerun(1, 10.4)).parent
    assert rerun != folders[1] and check(rerun / RECORD).kind == "ok"
    with pytest.raises(UserError) as err:
        build_report(runs, out)
    line = str(err.value)
    assert "\n" not in line and line.startswith("duplicate seeds: 2 records are seed 1 of simclr (")
    assert f"{str(folders[1])!r} and {str(rerun)!r}" in line
    assert repr(str(folders[0])) not in line and "of random" not in line
    assert (out / "index.md").read_text() == before                 # the last report stays
    assert main(["report", "--results", str(runs), "--out", str(out)]) == 2
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err and str(folders[1]) in said.err and str(rerun) in said.err
    assert len(said.err.strip().splitlines()) == 1


def test_every_clash_is_named_in_one_line(tmp_path):
    runs = tmp_path / "runs"
    first = [write_record(runs, example_record("simclr", seed, 10.0 + seed)).parent for seed in range(2)]
    again = [write_record(runs, _rerun(seed, 10.2 + seed)).parent for seed in range(2)]
    third = _rerun(0, 10.3)
    third["config"]["finetune"]["lr"] = 2e-3
    third["run_id"] = run_id(third["config"])
    again.append(write_record(runs, third).parent)
    with pytest.raises(UserError) as err:
        load_runs(runs)
    line = str(err.value)
    assert "3 records are seed 0 of simclr" in line and "2 records are seed 1 of simclr" in line
    assert all(repr(str(folder)) in line for folder in (*first, *again))


def test_one_seed_of_two_heads_or_two_fractions_is_not_a_duplicate(tmp_path):
    runs = tmp_path / "runs"
    write_record(runs, example_record("simclr", 0, 10.0))
    write_record(runs, example_record("simclr", 0, 11.0, head="heatmap"))
    write_record(runs, example_record("simclr", 0, 12.0, label_fraction=0.1))
    loaded = load_runs(runs)
    assert loaded.problems == [] and len(loaded.table) == 3
    assert np.array_equal(sorted(loaded.table["pa_epe_mm"]), [10.0, 11.0, 12.0])


# --- what a record file is, and the numbers beyond the metrics ----------------------------

def test_a_record_nested_too_deeply_for_json_is_unreadable_not_a_crash(tmp_path):
    path = tmp_path / "r1" / RECORD
    path.parent.mkdir()
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    got = check(path)
    assert got.kind == "unreadable" and got.reason.startswith("nested too deeply to read")
    assert "\n" not in got.reason


@pytest.mark.parametrize("text, start", [
    ("root:x:0:0:root:/root:/bin/bash\n", "not valid JSON: "),
    ("[1, 2", "not valid JSON: "),
    ('{"schema": 1, "run_id": "r1", "met', "truncated JSON: the file ends after 34 bytes"),
    ("  {\n", "truncated JSON: "),
])
def test_truncated_only_where_the_text_starts_like_a_record(tmp_path, text, start):
    path = tmp_path / "r1" / RECORD
    path.parent.mkdir()
    path.write_text(text)
    got = check(path)
    assert got.kind == "unreadable" and got.reason.startswith(start), got.reason


@pytest.mark.parametrize("value", [0.0, -0.5, 1.5, 1e308])
def test_a_label_fraction_outside_zero_to_one_is_invalid(tmp_path, value):
    got = check(_written(tmp_path, "label_fraction", value))
    assert (got.kind, got.reason) == (
        "invalid", f"label_fraction is {value!r}, outside (0, 1]: the fraction of the labelled "
                   f"set fine-tuned on")


@pytest.mark.parametrize("dotted, value, reason", [
    ("compute.pretrain_flops", 1e308, "compute.pretrain_flops is 1e+308, not below 1e+30 FLOPs"),
    ("compute.budget_flops", 1e30, "compute.budget_flops is 1e+30, not below 1e+30 FLOPs"),
    ("compute.image_flops", -1.0, "compute.image_flops is -1.0, below 0"),
    ("compute.wall_s", 1e9, "compute.wall_s is 1e+09, not below 1e+08 seconds"),
    ("compute.finetune_wall_s", float("inf"), "compute.finetune_wall_s is inf, not a finite number"),
    ("compute.pretrain_steps", 10 ** 16, "compute.pretrain_steps is 1e+16, not below 1e+15 steps"),
    ("compute.finetune_images", -3, "compute.finetune_images is -3, below 0"),
    ("metrics.n", 10 ** 400, "metrics.n is an integer of 401 digits, not a finite number"),
    ("metrics.n", -1, "metrics.n is -1, below 0"),
])
def test_compute_numbers_and_n_beyond_any_run_are_invalid(tmp_path, dotted, value, reason):
    got = check(_written(tmp_path, dotted, value))
    assert (got.kind, got.reason) == ("invalid", reason)


def test_compute_numbers_and_n_within_the_ceilings_are_ok(tmp_path):
    for seed, (dotted, value) in enumerate([("compute.pretrain_flops", 9.9e29), ("compute.wall_s", 9e7),
                                            ("compute.budget_flops", None), ("metrics.n", 3960),
                                            ("label_fraction", 1), ("label_fraction", 1e-6)]):
        got = check(_written(tmp_path, dotted, value, seed=seed))
        assert got.kind == "ok", (dotted, got.reason)
