"""The `bench` command line: every subcommand has help; user errors are one line, exit 2."""
import subprocess
import sys

import pytest

from orchestration.cli import main

SUBCOMMANDS = ["run", "sweep", "report", "evaluate", "submit", "data", "methods", "status", "clean"]


def bench(*args, **kw):
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], capture_output=True,
                          text=True, timeout=120, **kw)


@pytest.mark.parametrize("sub", SUBCOMMANDS + ["data synth", "data check"])
def test_help(sub):
    out = bench(*sub.split(), "--help")
    assert out.returncode == 0 and f"usage: bench {sub}" in out.stdout
    if sub == "data":
        assert "synth" in out.stdout and "check" in out.stdout
    elif sub in ("evaluate", "submit", "methods", "data synth", "data check"):   # they keep no records
        assert "--results" not in out.stdout and "examples:" in out.stdout
    else:
        assert "--results" in out.stdout and "examples:" in out.stdout


@pytest.mark.parametrize("words,needle", [
    (["--method", "nosuch"], "unknown method 'nosuch'; choose one of: random, imagenet"),
    (["--budget", "ten"], "malformed budget 'ten'"),
    (["finetune.lrr=1"], "unknown config key 'finetune.lrr'"),
    (["finetune.label_fraction=1.5"], "finetune.label_fraction must be in (0, 1]"),
    (["finetune.label_fraction=0.0001"], "finetune.label_fraction=0.0001 leaves 1 labelled ids "
                                         "(1 images) of 96; one batch of finetune.batch_size=16 "
                                         "needs 16 ids: use label_fraction >= 0.17"),
    (["--data", "freihand", "data.root=/nope"], "no such directory: /nope"),
])
def test_user_errors_exit_2_without_a_record(tmp_path, words, needle, capsys):
    code = main(["run", "--profile", "smoke", "--results", str(tmp_path), *words])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_methods_lists_every_method(capsys):
    import methods
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in methods.names():
        assert name in out


def test_overrides_may_stand_among_flags(tmp_path, capsys):
    code = main(["run", "finetune.label_fraction=2", "--profile", "smoke", "--results", str(tmp_path),
                 "seed=1"])
    assert code == 2 and "label_fraction must be in (0, 1]" in capsys.readouterr().err


def test_unset_environment_variable_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BENCH_NO_SUCH_VARIABLE", raising=False)
    code = main(["run", "--method", "imagenet", "--profile", "smoke", "--results", str(tmp_path),
                 "method.weights=${oc.env:BENCH_NO_SUCH_VARIABLE}"])
    err = capsys.readouterr().err
    assert code == 2 and "BENCH_NO_SUCH_VARIABLE" in err and err.count("\n") == 1


def test_run_dry_run_plans_and_runs_nothing(tmp_path, capsys):
    code = main(["run", "--method", "simclr", "--profile", "smoke", "--budget", "2ep", "--dry-run",
                 "--results", str(tmp_path), "finetune.label_fraction=0.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "simclr-resnet18-2ep-pretrain-lf0.5-s0-" in out and "pre-train" in out
    assert "1 runs: 0 done" in out and "dry run: nothing submitted" in out
    assert "compute (estimate)" in out
    assert not any(tmp_path.rglob("*.json"))
