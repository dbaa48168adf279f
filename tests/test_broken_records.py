"""One validator for every reader: `bench status` and `bench report` list each broken record
with the same reason, exit 0 and print no traceback."""
import json
import math
import shutil

from orchestration.cli import main
from benchmarks.record import check, write_record
from example_records import example_record, failed_record

BROKEN = {  # seed -> (kind, words of the reason)
    1: ("unreadable", "truncated JSON"),
    2: ("unreadable", "a JSON list, not a record object"),
    3: ("invalid", "metrics.pa_epe_mm is '12.5', not a finite number"),
    4: ("invalid", "metrics.pa_epe_mm is nan, not a finite number"),
    5: ("invalid", "missing metrics.epe_mm"),
    6: ("invalid", "schema 2; this version reads schema 1"),
    7: ("failed", "CUDA out of memory"),
    8: ("invalid", "metrics.pa_auc is 7.0, outside [0, 1]"),
    9: ("invalid", "metrics.pa_epe_mm is 1e+308, above 10000 mm"),
    10: ("invalid", "is not the name of its folder 'simclr-copy-s10-'"),   # seed 0's record, copied
}


def broken_folder(root):
    write_record(root, example_record("simclr", 0, 10.0))
    path = write_record(root, example_record("simclr", 1, 10.0))
    path.write_text(path.read_text()[:200])
    path = write_record(root, example_record("simclr", 2, 10.0))
    path.write_text(json.dumps([json.loads(path.read_text())]))
    for seed, change in ((3, lambda r: r["metrics"].update(pa_epe_mm="12.5")),
                         (4, lambda r: r["metrics"].update(pa_epe_mm=math.nan)),
                         (5, lambda r: r["metrics"].pop("epe_mm")),
                         (6, lambda r: r.update(schema=2)),
                         (8, lambda r: r["metrics"].update(pa_auc=7.0)),
                         (9, lambda r: r["metrics"].update(pa_epe_mm=1e308))):
        record = example_record("simclr", seed, 10.0)
        change(record)
        path = root / record["run_id"] / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record))          # NaN as JSON's NaN literal, as json writes it
    write_record(root, failed_record("simclr", 7, "CUDA out of memory"))
    shutil.copytree(next(root.glob("*-s0-*")), root / "simclr-copy-s10-")
    return {seed: next(root.glob(f"*-s{seed}-*/result.json")) for seed in range(11)}


def test_the_validator_names_each_kind(tmp_path):
    paths = broken_folder(tmp_path)
    assert check(paths[0]).kind == "ok"
    for seed, (kind, words) in BROKEN.items():
        got = check(paths[seed])
        assert got.kind == kind and words in got.reason, (seed, got)


def test_status_and_report_list_every_broken_record_with_the_same_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")        # status fits its table to the terminal: no folding
    paths = broken_folder(tmp_path / "runs")
    assert main(["status", "--results", str(tmp_path / "runs")]) == 0
    status = capsys.readouterr()
    assert main(["report", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    report = capsys.readouterr()
    index = (tmp_path / "report" / "index.md").read_text()
    flat = " ".join(status.out.split())                 # rich folds long cells over lines
    for seed, (kind, _) in BROKEN.items():
        reason = check(paths[seed]).reason
        row = next(line for line in index.splitlines() if f"-s{seed}-" in line)
        assert f"| {kind} |" in row and reason.replace("|", r"\|") in row
        assert reason in flat
    assert "Built from 11 result records: 1 in the tables, 1 failed, 2 unreadable, 7 invalid." in index
    assert "1 failed  2 unreadable  7 invalid  1 ok" in status.out
    for out in (status, report):
        assert "Traceback" not in out.out + out.err
