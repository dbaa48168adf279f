"""Run every measurement and write ``summary.json``.

Per device (the CPU always, CUDA when it exists), seven variants in three groups (the first
four below, the next two, and ``predict``). The variants of a group run interleaved
(``perf.timing``), so that the two sides of each ratio run close together in time;
each figure is the median over repeats, each ratio the median of per-repeat ratios:

- ``bare``: the backbone alone on ready tensors of ``2 * batch`` images (the backbone images of
  one SimCLR / PeCLR step);
- ``simclr``, ``peclr``: the full pre-training step through ``Engine.fit``;
- ``peer``: lightly's documented SimCLR pipeline (``perf.peer``);
- ``bare_finetune``: the backbone alone on ``finetune_batch`` images at the fine-tuning size;
- ``finetune``: the fine-tuning step (``benchmarks.pose_task.PoseTask``) through ``Engine.fit``;
- ``predict``: ``eval.finetune.predict`` over the evaluation split.

Ratios: ``harness_vs_bare`` = simclr (peclr) / bare, ``vs_peer_pipeline`` = simclr / peer,
``finetune_vs_bare`` = finetune / bare_finetune. All rates count backbone images per second.
Then, once: ``render_img_per_s_128`` (``perf.render``), ``report_s_<records>`` and
``report_cli_s_<records>`` (``perf.report_speed``: the report in this process, and ``bench
report`` as a fresh process, start-up included), and ``cli_s`` (``perf.cli_speed``: the cold
start of ``bench --help``, ``bench methods``, a mistyped method and ``bench status``).
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from orchestration.compose import load
from benchmarks.engine import Engine
from perf import machine
from perf.peer import peer_variant
from perf.cli_speed import cli_seconds
from perf.render import render_img_per_s
from perf.report_speed import report_seconds
from perf.sizes import Extras, Sizes, overrides
from perf.summary import check_targets
from perf.timing import interleave, paired_ratio
from perf.training import (bare_variant, finetune_variant, predict_variant,
                                      pretrain_variant)
from benchmarks.data.prepare import Data
from benchmarks.store import write_json_atomic

SUMMARY = "summary.json"
RENDER_RES = 128


def measure_device(accelerator: str, sizes: Sizes, workers: int, compile: bool,
                   log: Callable[[str], None]) -> dict:
    """Every variant on one device (``"cpu"`` or ``"cuda"``): rates, repeats and ratios.

    ``compile`` compiles the engine's step (``engine.compile``), the bare model and the peer's.
    """
    cfgs = {m: load(overrides(sizes, m, accelerator, compile)) for m in ("simclr", "peclr")}
    cfg = cfgs["simclr"]
    log(f"{accelerator}: preparing the synthetic data (generated once, then cached)")
    data = Data(cfg)
    source = data.pretrain_source(("images",))
    train, test = data.labelled()
    engine = Engine(cfg.engine)
    device = engine.device
    precision = cfg.engine.precision
    if precision == "auto":
        precision = "bf16-mixed" if device.type == "cuda" else "32-true"
    bf16 = precision.startswith("bf16")
    channels_last = device.type == "cuda" and bool(cfg.engine.channels_last)
    common = dict(device=device, bf16=bf16, channels_last=channels_last, compile=compile,
                  warmup=sizes.warmup, steps=sizes.steps)
    pretraining = {
        "bare": bare_variant(sizes.backbone, 2 * sizes.batch, sizes.res, **common),
        "simclr": pretrain_variant(cfgs["simclr"], source, engine, sizes.warmup, sizes.steps),
        "peclr": pretrain_variant(cfgs["peclr"], source, engine, sizes.warmup, sizes.steps),
        "peer": peer_variant(source.tensors["image"], sizes.backbone, sizes.res, sizes.batch,
                             workers=workers, **common),
    }
    finetuning = {
        "bare_finetune": bare_variant(sizes.backbone, sizes.finetune_batch, sizes.finetune_res,
                                      **common),
        "finetune": finetune_variant(cfg, train, engine, sizes.warmup, sizes.steps),
    }
    rates: dict[str, list[float]] = {}
    for group in (pretraining, finetuning, {"predict": predict_variant(cfg, test, engine)}):
        rates |= interleave(group, sizes.repeats, log=lambda line: log(f"{accelerator}: {line}"))
    return {
        "device": engine.describe(),
        "sizes": asdict(sizes),
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile,
        "peer_workers": workers,
        "img_per_s": {name: statistics.median(r) for name, r in rates.items()},
        "img_per_s_repeats": rates,
        "harness_vs_bare": {m: paired_ratio(rates[m], rates["bare"]) for m in ("simclr", "peclr")},
        "vs_peer_pipeline": paired_ratio(rates["simclr"], rates["peer"]),
        "finetune_vs_bare": paired_ratio(rates["finetune"], rates["bare_finetune"]),
    }


def run(devices: dict[str, Sizes], extras: Extras, out: Path, workers: int, compile: bool,
        quick: bool, log: Callable[[str], None] = print) -> dict:
    """Measure, write ``out/summary.json`` and return the summary.

    ``devices`` maps ``"cpu"`` / ``"cuda"`` to their sizes; a ``"cuda"`` entry without CUDA is
    skipped with a line (and the summary says so). ``compile`` applies to the GPU path only.
    """
    t0 = time.perf_counter()
    summary: dict = {"schema": 1, "quick": quick, "machine": machine.describe(), "devices": {},
                     "gpu": None}
    for accelerator, sizes in devices.items():
        if accelerator == "cuda" and not torch.cuda.is_available():
            summary["gpu"] = "skipped: CUDA is not available on this machine"
            log(f"GPU path {summary['gpu']}")
            continue
        summary["devices"][accelerator] = measure_device(
            accelerator, sizes, workers, compile and accelerator == "cuda", log)
    log(f"renderer at {RENDER_RES} px")
    summary[f"render_img_per_s_{RENDER_RES}"] = render_img_per_s(
        RENDER_RES, extras.render_images, extras.render_batch, extras.render_repeats)
    log(f"bench report over {extras.report_records} records")
    report_s, _, read_s, cli_s = report_seconds(extras.report_records)
    summary[f"report_s_{extras.report_records}"] = report_s
    summary[f"report_read_s_{extras.report_records}"] = read_s
    summary[f"report_cli_s_{extras.report_records}"] = cli_s
    log("cold start of the CLI")
    summary["cli_s"] = cli_seconds()
    summary["extras"] = asdict(extras)
    summary["targets"] = check_targets(summary)
    summary["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    summary["wall_s"] = time.perf_counter() - t0
    write_json_atomic(Path(out) / SUMMARY, summary)
    return summary
