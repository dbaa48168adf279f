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


def _results_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=None,
                   help="records folder (default: results/runs, or $BENCH_RESULTS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench", description="Compute-matched benchmarking of self-supervised pre-training "
                                  "for 3D hand pose estimation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="pre-train (cached), fine-tune and evaluate one configuration",
                         description="Pre-train with a method (cached by config hash), fine-tune the "
                                     "pose model, evaluate, and write results/runs/<run_id>/result.json. "
                                     "Extra words are hydra overrides, e.g. finetune.label_fraction=0.1.")
    run.add_argument("--method", help="registered method (see `bench methods`)")
    run.add_argument("--budget", help="pre-training compute: <number><unit>, unit in ep, step, img, "
                                      "tflop, pflop, h (e.g. 100ep, 500kimg)")
    run.add_argument("--profile", help="sizes: smoke | cpu | paper")
    run.add_argument("--seed", type=int)
    run.add_argument("--backbone", help="timm backbone: resnet18 | resnet34 | resnet50 | resnet101 | resnet152")
    run.add_argument("--data", help="data set config: synthetic | freihand (set data.root=DIR)")
    run.add_argument("--match", help="budget protocol: pretrain | total")
    run.add_argument("--force", action="store_true", help="run again even if a record exists")
    run.add_argument("--dry-run", action="store_true",
                     help="print the run id, what would happen and its compute; run nothing")
    run.add_argument("--launcher", choices=("inprocess", "local", "slurm"), default=None,
                     help="where to run: here (default), a local subprocess, or SLURM")
    run.add_argument("--wait", action="store_true", help="with --launcher: wait and print the result")
    _results_arg(run)
    run.add_argument("--threads", type=int, default=None,
                     help="torch threads per run (engine.threads; 1 is steadier on a shared machine)")
    run.add_argument("--cfg", action="store_true",
                     help="print the resolved configuration and exit (nothing run)")
    run.add_argument("overrides", nargs="*", metavar="key=value")

    sweep = sub.add_parser("sweep", help="run a grid of configurations from a sweep file")
    sweep.add_argument("file", type=Path)
    sweep.add_argument("--launcher", choices=("inprocess", "local", "slurm"), default=None)
    sweep.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    sweep.add_argument("--wait", action="store_true")
    _results_arg(sweep)
    sweep.add_argument("overrides", nargs="*", metavar="key=value")

    report = sub.add_parser("report", help="tables and figures from the records")
    _results_arg(report)
    report.add_argument("--out", type=Path, default=None,
                        help="report folder (default results/report); with --ablation, a Markdown file")
    report.add_argument("--ablation", type=Path, metavar="SWEEP.yaml",
                        help="instead: the table of a sweep's runs in file order, each labelled "
                             "by what its config changes")
    report.add_argument("--against", choices=("previous", "first"), default="previous",
                        help="--ablation: label rows by their change from the previous or the first run")

    ev = sub.add_parser("evaluate", help="score a FreiHAND-format prediction file like the official script")
    ev.add_argument("pred", type=Path, help="pred.json: [xyz_list, verts_list] or the xyz list (metres)")
    ev.add_argument("--gt", type=Path, required=True,
                    help="folder with evaluation_xyz.json, evaluation_K.json, evaluation_scale.json")
    ev.add_argument("--out", type=Path, default=None, help="write the metrics as JSON here")
    _results_arg(ev)

    data = sub.add_parser("data", help="data set tools")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = dsub.add_parser("synth", help="generate the embedded synthetic hand data")
    synth.add_argument("--kind", choices=("lab", "wild", "triplets"), default="lab")
    synth.add_argument("--n", type=int, default=256, help="number of samples (lab: training ids)")
    synth.add_argument("--eval-n", type=int, default=None, help="lab: evaluation samples")
    synth.add_argument("--res", type=int, default=128, help="image size in pixels")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--world", choices=("capture", "sphere"), default="capture",
                       help="lab: viewpoints, FreiHAND-like (capture) or every direction and roll")
    synth.add_argument("--out", type=Path, help="output folder")
    synth.add_argument("--preview", type=Path, metavar="FILE.png",
                       help="write a grid of samples with keypoints drawn instead")
    _results_arg(synth)

    meth = sub.add_parser("methods", help="list the registered methods")
    _results_arg(meth)

    status = sub.add_parser("status", help="one table of runs: state, job id, errors")
    _results_arg(status)

    clean = sub.add_parser("clean", help="remove checkpoints, locks and temp files no record needs")
    _results_arg(clean)
    clean.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    clean.add_argument("--interrupted", action="store_true",
                       help="also the checkpoints of interrupted runs and pre-trainings (no resume then)")
    return parser


def _run_overrides(args: argparse.Namespace) -> list[str]:
    words = [f"{k}={getattr(args, k)}" for k in RUN_FLAGS if getattr(args, k) is not None]
    if args.launcher:
        words.append(f"launcher.name={args.launcher}")
    if getattr(args, "threads", None) is not None:
        words.append(f"engine.threads={args.threads}")
    return words + list(args.overrides)


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
    from benchmarks import compose, launch

    cfg = compose.load(_run_overrides(args), need_data=not (args.dry_run or args.cfg))
    if args.cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg), end="")
        return 0
    if args.dry_run:
        from benchmarks import sweep

        sweep.describe(sweep.make_plan("run", [cfg], results), "bench run", dry_run=True)
        return 0
    return launch.submit_run(cfg, results, force=args.force, wait=args.wait)


def cmd_sweep(args, results: Path) -> int:
    from benchmarks import sweep

    return sweep.main(args.file, results, launcher=args.launcher, dry_run=args.dry_run,
                      wait=args.wait, overrides=list(args.overrides))


def cmd_report(args, results: Path) -> int:
    if args.ablation is not None:
        from eval.report.ablation import markdown, rows

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
    index = build_report(results, out)
    print(f"report written: {index}")
    return 0


def cmd_evaluate(args, results: Path) -> int:
    from eval.evaluate import main as evaluate

    evaluate(args.pred, args.gt, args.out)
    return 0


def cmd_data(args, results: Path) -> int:
    from benchmarks import synth

    if args.preview:
        path = synth.preview(args.preview, res=args.res, seed=args.seed, world=args.world)
        print(f"preview written: {path}")
        return 0
    if args.out is None:
        raise UserError("bench data synth: give --out DIR (or --preview FILE.png)")
    path = synth.generate(args.kind, args.out, n=args.n, res=args.res, seed=args.seed,
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
    from benchmarks import status

    return status.main(results)


def cmd_clean(args, results: Path) -> int:
    from benchmarks import clean

    if not results.is_dir():
        raise UserError(f"--results {str(results)!r}: no such folder")
    return clean.main(results, dry_run=args.dry_run, interrupted=args.interrupted)


WRITES = ("run", "sweep")

COMMANDS = {"run": cmd_run, "sweep": cmd_sweep, "report": cmd_report, "evaluate": cmd_evaluate,
            "data": cmd_data, "methods": cmd_methods, "status": cmd_status,
            "clean": cmd_clean}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value words may stand anywhere among the flags, not only at the end
    if extra and hasattr(args, "overrides") and all("=" in w and not w.startswith("-") for w in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    results = args.results or default_results()
    try:
        check_results(results, args.command)
        return COMMANDS[args.command](args, results)
    except UserError as err:
        print(f"bench {args.command}: error: {one_line(err)}", file=sys.stderr)
        return UserError.exit_code
    except PermissionError as err:
        print(f"bench {args.command}: error: {err.filename or ''} is not writable ({err.strerror})",
              file=sys.stderr)
        return 1
    except OSError as err:
        print(f"bench {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
