"""Every command in the README works as written.

The README's bash blocks go, in order, through one bash shell in a scratch folder, as a reader
pasting them would (so variables, quoting and line continuations are bash's), and every
``bench`` command they contain then runs, with three substitutions a reader makes for themselves:

- ``bench run`` and ``bench sweep`` are dry runs: they compose and validate the config, plan,
  and print the run ids and the compute, but train nothing (training is what the rest of the
  suite tests);
- the real data sets' paths (``/data/FreiHAND``, ``/data/yt3d``, ``/data/dex-ycb``,
  ``/data/assemblyhands``) point at miniature trees in the official layouts, and ``/tmp/`` at
  the scratch folder;
- the site launcher preset ``mycluster`` is the shipped example it is copied from.

``make demo`` runs for real (into the scratch folder); ``make test`` is what CI runs. The
committed study's report is rebuilt from its committed records and must match, table for table.
``scancel`` needs a live SLURM job (tests/test_slurm.py signals jobs for real).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from orchestration.cli import main
from benchmarks.record import write_record
from example_records import example_record
from tests.data_trees import freihand_tree, youtube_tree
from tests.dexycb_fixture import write_tree
from tests.assemblyhands_fixture import write_tree as assemblyhands_tree

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
STUDY = ROOT / "results" / "cpu-study"
EXEMPT = {"scancel"}                       # needs a live SLURM job
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def first_word(command: str) -> str:
    return "=" if ASSIGNMENT.match(command) else command.split()[0]


def test_readme_starts_with_the_two_commands():
    first = commands(bash_blocks(README.read_text())[0])
    assert [c.split("#")[0].split() for c in first] == [["make", "demo"], ["make", "test"]]
    assert "test:" in (ROOT / "Makefile").read_text() and "make test" in (ROOT / ".ci/run").read_text()


def test_readme_commands_are_all_checked():
    words = {first_word(c) for b in bash_blocks(README.read_text()) for c in commands(b)}
    assert words - EXEMPT - {"make", "=", "bench"} == set(), "a README command nobody checks"


def _script(tmp: Path, calls: Path) -> str:
    """The README's commands as one bash script; ``bench`` records its argv (after bash's
    expansion and quoting) in ``calls``, NUL-separated, one call per line."""
    lines = ["set -euo pipefail",
             f'bench() {{ printf "%s\\0" "$@" >> {calls}; echo >> {calls}; }}']
    for block in bash_blocks(README.read_text()):
        for command in commands(block):
            if first_word(command) in EXEMPT | {"make"}:
                continue
            command = re.sub(r"(?<![\w/])/tmp/", f"{tmp}/scratch-", command)
            command = (command.replace("/data/FreiHAND", str(tmp / "FreiHAND"))
                       .replace("/data/yt3d", str(tmp / "yt3d"))
                       .replace("/data/dex-ycb", str(tmp / "dex-ycb"))
                       .replace("/data/assemblyhands", str(tmp / "assemblyhands"))
                       .replace("launcher=mycluster", "launcher=slurm_gpu"))
            lines.append(command)
    return "\n".join(lines) + "\n"


def test_readme_bash_blocks_run_as_written(tmp_path, data_cache, monkeypatch, capsys):
    """bash parses the blocks; each ``bench`` call then runs in this process (one import of
    the suite instead of one per command), ``run`` and ``sweep`` as dry runs."""
    freihand_tree(tmp_path / "FreiHAND", n=640)    # 10 % of the ids fill one batch of the paper profile
    youtube_tree(tmp_path / "yt3d")
    write_tree(tmp_path / "dex-ycb", subjects=(0, 1, 2, 3), n_seq=10, n_frames=6)   # >= one paper batch
    assemblyhands_tree(tmp_path / "assemblyhands",     # 160 training hands: >= one paper batch
                       {"train": ((0, 1), (0, 1, 2, 3), 20), "val": ((2,), (1, 3), 2),
                        "test": ((3,), (0, 1), 2)})
    work = tmp_path / "work"
    (work / "results").mkdir(parents=True)
    (work / "sweeps").symlink_to(ROOT / "sweeps")
    (work / "results" / "cpu-study").mkdir()
    (work / "results" / "cpu-study" / "records").symlink_to(STUDY / "records")
    (work / "results" / "calibration").mkdir()
    (work / "results" / "calibration" / "records").symlink_to(ROOT / "results" / "calibration" / "records")
    for method, value in (("random", 30.0), ("simclr", 25.0)):
        for seed in range(3):
            write_record(work / "results" / "runs", example_record(method, seed, value + seed))
    calls = tmp_path / "calls"
    done = subprocess.run(["bash", "-c", _script(tmp_path, calls)], cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    argvs = [line.split("\0")[:-1] for line in calls.read_text().splitlines()]
    expected = sum(first_word(c) == "bench" for b in bash_blocks(README.read_text()) for c in commands(b))
    assert len(argvs) == expected > 10

    monkeypatch.chdir(work)
    monkeypatch.setenv("BENCH_RESULTS", str(work / "results" / "runs"))
    outputs = {}
    for argv in argvs:
        if argv[0] in ("run", "sweep"):
            argv = [*argv, "--dry-run"]
        try:
            code = main(argv)
        except SystemExit as exit_:                 # argparse rejects the command line
            code = exit_.code
        out = capsys.readouterr()
        assert code == 0, f"bench {' '.join(argv)}: exit {code}\n{out.err[-2000:]}"
        outputs[" ".join(argv)] = out.out
    assert sum("dry run: nothing submitted" in o for o in outputs.values()) >= 8
    assert (work / "preview.png").stat().st_size > 0
    assert (work / "results" / "report" / "index.md").exists()
    # the committed study names the commits that wrote its records (its sweep now plans a re-run)
    index = (STUDY / "index.md").read_text()
    shas = {json.loads(p.read_text())["provenance"]["git_sha"][:7]
            for p in (STUDY / "records").glob("*/result.json")}
    assert shas and all(sha in index for sha in shas), shas
    # the committed study's report, rebuilt from the committed records, is the committed one
    rebuilt, committed = work / "results" / "cpu-study" / "report", STUDY / "report"
    texts = sorted(p.relative_to(committed) for p in committed.rglob("*")
                   if p.suffix in (".md", ".csv", ".tex"))
    assert texts, "the committed study has no report"
    for rel in texts:
        assert (rebuilt / rel).read_text() == (committed / rel).read_text(), rel


def test_make_demo_runs(tmp_path, data_cache):
    done = subprocess.run(["make", "demo", f"RESULTS={tmp_path / 'runs'}", f"REPORT={tmp_path / 'report'}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert len(list((tmp_path / "runs").glob("*/result.json"))) == 1
    assert (tmp_path / "report" / "index.md").exists()


def test_commands_parser_joins_continuations():
    text = "```bash\nbench run a \\\n    b=1   # note\n# only a comment\n\nX=\"1 2\"\n```\n"
    got = commands(bash_blocks(text)[0])
    assert got == ["bench run a  b=1   # note", 'X="1 2"']
    assert [first_word(c) for c in got] == ["bench", "="]


def test_study_index_quotes_its_report():
    """The study's index quotes the main table of the report the records rebuild, verbatim."""
    index = (STUDY / "index.md").read_text()
    table = (STUDY / "report" / "tables" / "table1_main.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) > 3 and all(row in index for row in rows)


def test_performance_table_is_the_committed_summary():
    """The README's performance figures are the ones in results/perf/summary.json, not copies."""
    from perf.summary import readme_table

    summary = json.loads((ROOT / "results" / "perf" / "summary.json").read_text())
    assert readme_table(summary) in README.read_text()


def test_the_committed_study_is_what_its_sweep_plans_today():
    """Every run the study's sweep file plans with today's code has its committed ok record,
    and every committed record is one of those runs: a config change that renamed the runs
    (and so orphaned the study) fails here."""
    from orchestration import sweep, sweepfile

    path = ROOT / "sweeps" / "cpu-study.yaml"
    cfgs = sweepfile.compose_runs(path, sweepfile.load_spec(path), [], None, need_data=False)
    plan = sweep.make_plan("cpu-study", cfgs, STUDY / "records")
    committed = {p.parent.name for p in (STUDY / "records").glob("*/result.json")}
    assert len(plan.runs) == len(plan.done) == len(committed) == 57
    assert {r.rid for r in plan.done} == committed
