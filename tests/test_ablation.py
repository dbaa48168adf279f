"""The ablation table labels each row by what its config changes, computed, never typed."""
from orchestration import compose
from benchmarks.config import to_container
from benchmarks.record import write_record
from orchestration.ablation import changes, markdown, rows
from example_records import example_record


def test_changes_name_exactly_the_keys_that_differ():
    a = to_container(compose.load(["profile=smoke"]))
    b = to_container(compose.load(["profile=smoke", "finetune.lr=0.002", "data.world=sphere"]))
    c = to_container(compose.load(["profile=smoke", "finetune.augment.hue=0.0",
                                   "finetune.augment.blur_p=0.1", "finetune.augment.rotate_deg=5"]))
    assert changes(a, None) == "baseline"
    assert changes(b, a) == "data.world=sphere, finetune.lr=0.002"
    assert changes(c, a) == "finetune.augment.{blur_p=0.1, hue=0.0, rotate_deg=5.0}"
    assert changes(a, a) == "(same config)"
    # launcher and display settings are not changes
    assert changes(to_container(compose.load(["profile=smoke", "engine.progress=false"])), a) == "(same config)"


def test_rows_follow_the_sweep_and_list_missing_runs(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("fixed: {profile: smoke, method: random}\n"
                     "grid:\n  - finetune.lr: [0.001]\n  - finetune.lr: [0.002]\n")
    from benchmarks.config import run_id
    cfg = compose.load(["profile=smoke", "method=random", "finetune.lr=0.001"])
    rec = example_record("random", 0, 15.0)
    rec["run_id"] = run_id(cfg)
    write_record(tmp_path / "runs", rec)
    table = rows(sweep, tmp_path / "runs")
    assert [r[1] for r in table] == ["baseline", "finetune.lr=0.002"]
    assert table[0][7] == "15.00" and table[0][8] == "20.00" and table[1][2] == "missing"
    assert markdown(table).count("\n") == 4


def test_calibration_index_quotes_the_tables_its_records_give():
    """results/calibration/index.md shows the search and the ablation exactly as
    ``bench report --ablation`` computes them from the committed records, no run missing."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    index = (root / "results" / "calibration" / "index.md").read_text()
    for sweep, against in (("calibration-search", "first"), ("calibration-ablation", "previous")):
        table = rows(root / "sweeps" / f"{sweep}.yaml", root / "results" / "calibration" / "records", against)
        assert all(r[2] != "missing" for r in table), sweep
        for line in markdown(table).splitlines():
            assert line in index, (sweep, line)


def test_check_out_refuses_in_one_line_what_is_not_a_new_or_earlier_table(tmp_path):
    import hashlib

    import pytest

    from benchmarks.errors import UserError
    from orchestration.ablation import check_out

    earlier = tmp_path / "earlier.md"
    earlier.write_text(markdown([["0", "baseline"] + ["–"] * 8]))
    (tmp_path / "notes.md").write_text("# my notes\n")
    (tmp_path / "folder.md").mkdir()
    (tmp_path / "empty.md").write_text("")
    check_out(tmp_path / "new.md")                 # absent: fine
    check_out(earlier)                             # an earlier table: fine

    def state():
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
                for p in sorted(tmp_path.rglob("*"))}
    before = state()
    for path, words in ((tmp_path / "table.csv", "ending in .md"),
                        (tmp_path / "table", "ending in .md"),
                        (tmp_path / "folder.md", "is a folder"),
                        (tmp_path / "notes.md", "is not an ablation table"),
                        (tmp_path / "empty.md", "is not an ablation table")):
        with pytest.raises(UserError) as err:
            check_out(path)
        line = str(err.value)
        assert "\n" not in line and line.startswith(f"--out {path}: ") and words in line, line
    assert state() == before
