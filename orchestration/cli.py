"""``bench``: the command line. Flags and hydra ``key=value`` overrides -> one typed config.

Every command takes ``--results DIR`` (default ``results/runs`` or ``$BENCH_RESULTS``). A user
error prints one line and exits 2; it never leaves a partial record.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.errors import UserError, one_line
from benchmarks.store import default_results

RUN_FLAGS = ("method", "budget", "profile", "seed", "backbone", "data", "match")


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in every option's help; descriptions and examples kept as written."""


class _Parser(argparse.ArgumentParser):
    """A command line argparse rejects is one line and exit 2, like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _results_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=None,
                   help="records folder (default: results/runs, or $BENCH_RESULTS)")


def _sub(sub, name: str, summary: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    text = description + "\n\nexamples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, help=summary, description=text, formatter_class=_Help)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bench", formatter_class=_Help,
        description="Compute-matched benchmarking of self-supervised pre-training for 3D hand "
                    "pose estimation.\n\nexamples:\n"
                    "  bench run --method peclr --budget 100ep --profile smoke\n"
                    "  bench sweep sweeps/smoke.yaml --dry-run\n"
                    "  bench report --results results/runs --out results/report\n"
                    "  bench COMMAND --help      # the options of one command")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)

    run = _sub(sub, "run", "pre-train (cached), fine-tune and evaluate one configuration",
               "Pre-train with a method (cached by config hash), fine-tune the pose model, evaluate, "
               "and write <results>/<run_id>/result.json. Extra key=value words are hydra "
               "overrides of the config (benchmarks/config.py), e.g. finetune.label_fraction=0.1. "
               "Unset flags take the config's defaults (profile cpu, method random, budget 10ep, "
               "seed 0, backbone resnet18, data synthetic, match pretrain).",
               ["bench run --method simclr --profile smoke --budget 1ep",
                "bench run --method peclr --budget 100ep --dry-run",
                "bench run --method simclr --profile smoke --cfg job",
                "bench run --method simclr --profile smoke -m seed=0,1,2   # an ad-hoc sweep"])
    run.add_argument("--method", help="registered method (see `bench methods`)")
    run.add_argument("--budget", help="pre-training compute: <number><unit>, unit in ep, step, img, "
                                      "tflop, pflop, h (e.g. 100ep, 500kimg)")
    run.add_argument("--profile", help="sizes: smoke | cpu | paper")
    run.add_argument("--seed", type=int, help="run seed (pre-training and fine-tuning)")
    run.add_argument("--backbone", help="timm backbone: resnet18 | resnet34 | resnet50 | resnet101 | resnet152 | "
                          "vit_tiny_patch16_224 | vit_small_patch16_224 | vit_base_patch16_224")
    run.add_argument("--data", help="data set config: synthetic | freihand (set data.root=DIR)")
    run.add_argument("--match", help="budget protocol: pretrain | total")
    run.add_argument("--force", action="store_true",
                     help="run again even if an ok record exists (it stays until the new one is complete)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the run id, its plan (steps of both phases) and compute; run nothing")
    run.add_argument("--launcher", choices=("inprocess", "local", "slurm"), default=None,
                     help="where to run: here (inprocess, the config's default), a local subprocess, or SLURM")
    run.add_argument("--wait", action="store_true", help="with --launcher local|slurm: wait and print the result")
    _results_arg(run)
    run.add_argument("--threads", type=int, default=None,
                     help="torch threads per run (engine.threads; 1 is steadier on a shared machine)")
    run.add_argument("--cfg", nargs="?", const="job", choices=("job", "all"), default=None,
                     help="print the resolved configuration and exit (hydra's --cfg job; all: the same, "
                          "the run id and its derived settings included)")
    run.add_argument("-m", "--multirun", action="store_true",
                     help="hydra's basic sweep: key=a,b words become a grid, run as `bench sweep` would")
    run.add_argument("overrides", nargs="*", metavar="key=value")

    sweep = _sub(sub, "sweep", "run a grid of configurations from a sweep file",
                 "Run every configuration of a sweep file (a grid plus fixed settings, see "
                 "sweeps/example.yaml). Runs with an ok record are skipped, queued and running ones "
                 "left alone, failed ones run again; each distinct pre-training runs once. "
                 "key=value words override every run of the grid.",
                 ["bench sweep sweeps/smoke.yaml --dry-run",
                  "bench sweep sweeps/example.yaml --launcher local",
                  "bench sweep sweeps/example.yaml launcher=mycluster budget=100ep"])
    sweep.add_argument("file", type=Path, help="the sweep file (YAML: name, fixed, grid)")
    sweep.add_argument("--launcher", choices=("inprocess", "local", "slurm"), default=None,
                       help="where the runs go: here one after another (inprocess), local "
                            "subprocesses, or SLURM job arrays (default: the config's launcher)")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and its compute, run nothing")
    sweep.add_argument("--wait", action="store_true",
                       help="with --launcher local|slurm: wait for every run and print the results")
    _results_arg(sweep)
    sweep.add_argument("overrides", nargs="*", metavar="key=value")

    report = _sub(sub, "report", "tables and figures from the records",
                  "Read every record under --results and regenerate --out as a whole (index.md, "
                  "tables as Markdown/CSV/LaTeX, figures as PNG/PDF), byte-identically for identical "
                  "records. With --ablation: the table of one sweep's runs in file order instead.",
                  ["bench report --results results/cpu-study/records --out results/cpu-study/report",
                   "bench report --ablation sweeps/calibration-search.yaml --against first "
                   "--results results/calibration/records",
                   "bench report --claims sweeps/claims-study.yaml --results results/claims-study/records "
                   "--out results/claims-study/report"])
    _results_arg(report)
    report.add_argument("--out", type=Path, default=None,
                        help="report folder (default results/report); with --ablation, a Markdown file "
                             "(default: print it)")
    report.add_argument("--ablation", type=Path, metavar="SWEEP.yaml",
                        help="instead: the table of a sweep's runs in file order, each labelled "
                             "by what its config changes")
    report.add_argument("--against", choices=("previous", "first"), default="previous",
                        help="--ablation: label rows by their change from the previous or the first run")
    report.add_argument("--claims", type=Path, metavar="SWEEP.yaml", default=None,
                        help="also a verdict on each of the sweep file's claims (its claims: list), "
                             "in tables/claims.md and the index")

    ev = _sub(sub, "evaluate", "score a FreiHAND-format prediction file like the official script",
              "Score predictions against FreiHAND's evaluation ground truth with the official "
              "metrics (aligned and unaligned EPE, PCK over 0-50 mm, AUC).",
              ["bench evaluate pred.json --gt /data/FreiHAND --out scores.json"])
    ev.add_argument("pred", type=Path, help="pred.json ([xyz_list, verts_list], metres, as bench submit writes it) or a .zip holding it")
    ev.add_argument("--gt", required=True,
                    help="folder with evaluation_xyz.json, evaluation_K.json, evaluation_scale.json")
    ev.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")

    sm = _sub(sub, "submit", "write a run's leaderboard file from its kept predictions",
              "Write the leaderboard submission of one ok run from the predictions it kept "
              "beside its record (FreiHAND's CodaLab pred.json = [xyz_list, verts_list] in a "
              ".zip). The pose model predicts no mesh: the verts list places each sample's 778 "
              "vertices on its 21 predicted joints, so mesh scores are meaningless.",
              ["bench submit results/RUN_ID --out submission.zip"])
    sm.add_argument("run", type=Path, metavar="RUN_FOLDER", help="<results>/<run_id> of an ok run")
    sm.add_argument("--out", type=Path, required=True, help="the .zip to write")

    data = sub.add_parser("data", help="data set tools", formatter_class=_Help)
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True,
                               parser_class=_Parser)
    synth = _sub(dsub, "synth", "generate the embedded synthetic hand data",
                 "Write a synthetic product in a real data set's layout: lab (FreiHAND's), wild "
                 "(crops with 2D and 3D labels) or triplets (three views of one hand).",
                 ["bench data synth --kind lab --n 256 --out /tmp/lab",
                  "bench data synth --preview /tmp/hands.png"])
    synth.add_argument("--kind", choices=("lab", "wild", "triplets"), default="lab", help="which product")
    synth.add_argument("--n", type=int, default=256, help="number of samples (lab: training ids)")
    synth.add_argument("--eval-n", type=int, default=None, help="lab: evaluation samples (default: the generator's)")
    synth.add_argument("--res", type=int, default=128, help="image size in pixels")
    synth.add_argument("--seed", type=int, default=0, help="the world's seed")
    synth.add_argument("--world", choices=("capture", "sphere"), default="capture",
                       help="lab: viewpoints, FreiHAND-like (capture) or every direction and roll")
    synth.add_argument("--out", type=Path, help="output folder (new or empty)")
    synth.add_argument("--preview", type=Path, metavar="FILE.png",
                       help="write a grid of samples with keypoints drawn instead")

    chk = _sub(dsub, "check", "validate a real data set's root before a long job",
               "Open every split the suite reads (layout, counts, labels, intrinsics against the "
               "frames), read every image header and decode a sample, print the counts per split "
               "and the joints' projection check, and write a contact sheet with the keypoints "
               "drawn, to see that joint order and left-hand flips are right.",
               ["bench data check data=freihand data.root=/data/FreiHAND",
                "bench data check data=dexycb data.root=/data/dex-ycb data.split=s1 --sheet s1.png"])
    chk.add_argument("--sheet", type=Path, default=None,
                     help="the contact sheet PNG (default: data-check-<data>.png here)")
    chk.add_argument("overrides", nargs="*", metavar="key=value")

    _sub(sub, "methods", "list the registered methods",
         "The registry: each method's name, what it does, its citation, the inputs it needs and "
         "its backbone passes per sample.", ["bench methods"])

    status = _sub(sub, "status", "one table of runs: state, seeds, job id, errors",
                  "Every run under --results: pending, running, interrupted (a rerun resumes), ok "
                  "(with PA-EPE and PA-AUC) or failed (with the error line), its seeds and job id.",
                  ["bench status --results results/runs"])
    _results_arg(status)

    clean = _sub(sub, "clean", "remove checkpoints, locks and temp files no record needs",
                 "Remove what older, failed and killed runs left: checkpoints of ok or failed runs "
                 "and of cached pre-trainings, locks nobody holds, temp files older than an hour.",
                 ["bench clean --results results/runs --dry-run"])
    _results_arg(clean)
    clean.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    clean.add_argument("--interrupted", action="store_true",
                       help="also the checkpoints of interrupted runs and pre-trainings (no resume then)")
    return parser


def _run_overrides(args: argparse.Namespace) -> list[str]:
    """The flags as override words, then the user's words; a key set by both, or twice, with
    different values is refused (the last one would silently win)."""
    flags = {k: str(getattr(args, k)) for k in RUN_FLAGS if getattr(args, k) is not None}
    if getattr(args, "launcher", None):
        flags["launcher.name"] = args.launcher
    if getattr(args, "threads", None) is not None:
        flags["engine.threads"] = str(args.threads)
    given: dict[str, str] = {}
    for word in args.overrides:
        key, _, value = word.partition("=")
        if key in given and given[key] != value:
            raise UserError(f"{key} is set twice ({key}={given[key]} and {key}={value}); keep one")
        given[key] = value
    for key, value in flags.items():
        flag = "--" + ("launcher" if key == "launcher.name" else "threads" if key == "engine.threads"
                       else key)
        if key in given and given[key] != value:
            raise UserError(f"{flag} {value} conflicts with {key}={given[key]}; keep one")
    return [f"{k}={v}" for k, v in flags.items() if k not in given] + list(args.overrides)


def os_error_line(err: OSError) -> str:
    """An I/O failure in one line: the path, what went wrong, and what to do."""
    import errno

    where = err.filename if err.filename is not None else "writing the output"
    what = err.strerror or one_line(err)
    hint = {errno.ENOSPC: "free space there (bench clean --results DIR removes checkpoints "
                          "no record needs) and run it again: finished work is kept",
            errno.EDQUOT: "free quota there and run it again",
            errno.EACCES: "it is not writable for you: choose another --results or fix its permissions",
            errno.EPERM: "it is not writable for you: choose another --results or fix its permissions",
            errno.EROFS: "the file system is read-only: choose another --results",
            errno.ENOTDIR: "a file stands where a folder must be: move it away",
            errno.EISDIR: "a folder stands where a file must be: move it away",
            errno.EEXIST: "something is already there: move it away"}.get(err.errno)
    return one_line(f"{where}: {what}" + (f"; {hint}" if hint else ""))


def _writable(path: Path) -> bool:
    """Whether ``path`` (or, where it does not exist yet, its nearest existing parent) can be written."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK | os.X_OK)


def check_results(results: Path, command: str) -> None:
    """``--results`` must be a folder (or not exist yet); commands that write need to write it."""
    if results.exists() and not results.is_dir():
        raise UserError(f"--results {str(results)!r} is a file, not a folder; give the records folder")
    if command in WRITES and not _writable(results):
        raise UserError(f"--results {str(results)!r} is not writable: bench {command} writes records, "
                        f"job files and caches there")


def cmd_run(args, results: Path) -> int:
    from orchestration import compose            # torch-free: config errors answer at once

    if args.multirun and args.cfg:
        raise UserError("--cfg prints one run's config; with -m give one value per key, or use "
                        "-m --dry-run to list the grid's runs")
    if args.multirun:
        from orchestration import sweep

        return sweep.multirun(_run_overrides(args), results, dry_run=args.dry_run, wait=args.wait)
    run = compose.resolve(_run_overrides(args), need_data=not (args.dry_run or args.cfg))
    if args.cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(run.cfg), end="")
        if args.cfg == "all":
            print(f"# run_id: {run.run_id}\n# row: {run.row}\n# finetune_seed: {run.finetune_seed}\n"
                  f"# pretrain_key: {run.pretrain_key}")
        return 0
    if args.dry_run:
        from orchestration import sweep

        sweep.describe(sweep.make_plan("run", [run], results), "bench run", dry_run=True)
        return 0
    from orchestration import launch              # torch and the training code, from here on

    return launch.submit_run(run, results, force=args.force, wait=args.wait)


def cmd_sweep(args, results: Path) -> int:
    from orchestration import sweep

    return sweep.main(args.file, results, launcher=args.launcher, dry_run=args.dry_run,
                      wait=args.wait, overrides=list(args.overrides))


def cmd_report(args, results: Path) -> int:
    if args.ablation is None and args.against != "previous":
        raise UserError("--against labels the rows of an --ablation table; add --ablation SWEEP.yaml")
    if args.ablation is not None:
        from orchestration.ablation import check_out, markdown, rows

        if args.out is not None:
            check_out(args.out)
        text = markdown(rows(args.ablation, results, args.against))
        if args.out is None:
            print(text, end="")
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
            print(f"table written: {args.out}")
        return 0
    from eval.report import build_report

    out = args.out or Path("results/report")
    if not _writable(out.parent):
        raise UserError(f"--out {str(out)!r} is not writable: the report is built beside it and moved in")
    index = build_report(results, out, claims=args.claims)
    print(f"report written: {index}")
    return 0


def cmd_evaluate(args, results: Path) -> int:
    from eval.evaluate import main as evaluate

    evaluate(args.pred, args.gt, args.out)
    return 0


def cmd_submit(args, results: Path) -> int:
    from eval.predictions import submit

    submit(args.run, args.out)
    return 0


def cmd_data(args, results: Path) -> int:
    if args.data_command == "check":
        from benchmarks.data.check import check
        from orchestration import compose

        cfg = compose.load(list(args.overrides))
        check(cfg, args.sheet or Path(f"data-check-{cfg.data.name}.png"))
        return 0
    from benchmarks.synth import preview, products

    if args.preview and args.out is not None:
        raise UserError("--preview writes one picture and --out a data set: give one of them")
    lab_only = [f for f, v in (("--world", args.world != "capture"), ("--eval-n", args.eval_n is not None))
                if v and args.kind != "lab"]
    if lab_only:
        raise UserError(f"{' and '.join(lab_only)} apply to --kind lab only (got --kind {args.kind})")
    if args.preview:
        path = preview.preview(args.preview, res=args.res, seed=args.seed, world=args.world)
        print(f"preview written: {path}")
        return 0
    if args.out is None:
        raise UserError("bench data synth: give --out DIR (or --preview FILE.png)")
    path = products.generate(args.kind, args.out, n=args.n, res=args.res, seed=args.seed,
                          eval_n=args.eval_n, world=args.world)
    print(f"{args.kind} data written: {path}")
    return 0


def cmd_methods(args, results: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    import methods

    table = Table(title="registered methods")
    for col in ("name", "what it does", "citation", "inputs", "passes/sample"):
        table.add_column(col)
    for name, cls in methods.all_methods().items():
        table.add_row(name, cls.summary, cls.citation, ", ".join(cls.inputs) or "-",
                      str(cls.passes_per_sample))
    Console(width=160).print(table)
    return 0


def cmd_status(args, results: Path) -> int:
    from orchestration import status

    return status.main(results)


def cmd_clean(args, results: Path) -> int:
    from orchestration import clean

    if not results.is_dir():
        raise UserError(f"--results {str(results)!r}: no such folder")
    return clean.main(results, dry_run=args.dry_run, interrupted=args.interrupted)


WRITES = ("run", "sweep")

COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "report": cmd_report, "evaluate": cmd_evaluate,
            "submit": cmd_submit,
            "data": cmd_data, "methods": cmd_methods, "status": cmd_status,
            "clean": cmd_clean}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as done:                  # --help (0), or a command line argparse refused (2)
        return int(done.code or 0)
    # key=value words may stand anywhere among the flags, not only at the end
    if extra and hasattr(args, "overrides") and all("=" in w and not w.startswith("-") for w in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        try:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as done:
            return int(done.code)
    raw = getattr(args, "results", None)
    if raw is None and hasattr(args, "results"):
        raw = os.environ.get("BENCH_RESULTS", None)
    try:
        if raw is not None and not raw.strip():
            raise UserError("--results (or $BENCH_RESULTS) is empty: give the records folder, "
                            "e.g. --results results/runs")
        results = Path(raw) if raw is not None else default_results()
        if hasattr(args, "results"):            # evaluate, data and methods keep no records
            check_results(results, args.command)
        return COMMANDS[args.command](args, results)
    except UserError as err:
        print(f"bench {args.command}: error: {one_line(err)}", file=sys.stderr)
        return UserError.exit_code
    except OSError as err:
        print(f"bench {args.command}: error: {os_error_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
