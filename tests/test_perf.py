"""The performance suite's machinery on tiny sizes (no timing assertions: speeds are not tested)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from perf.sizes import Extras, Sizes
from perf.suite import SUMMARY, run
from perf.summary import TARGETS, VARIANTS, table
from perf.timing import interleave, paired_ratio

TINY = Sizes(res=32, batch=4, finetune_res=32, finetune_batch=4, wild=12, labelled=8,
             evaluation=8, warmup=1, steps=1, repeats=1)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, restored after: two threads on two busy cores stall
    each other at every parallel region and make this test several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_interleave_rotates_the_first_variant_and_keeps_each_variants_rates():
    calls: list[str] = []

    def variant(name: str, value: float):
        def run() -> float:
            calls.append(name)
            return value
        return run

    rates = interleave({"a": variant("a", 1.0), "b": variant("b", 2.0), "c": variant("c", 4.0)},
                       repeats=3)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert rates == {"a": [1.0] * 3, "b": [2.0] * 3, "c": [4.0] * 3}


def test_paired_ratio_is_the_median_of_same_repeat_ratios():
    # per-repeat ratios 1, 1, 3 -> 1; the ratio of the medians would be 2 / 1 = 2
    assert paired_ratio([1.0, 2.0, 3.0], [1.0, 2.0, 1.0]) == 1.0
    assert paired_ratio([3.0, 1.0], [1.0, 1.0]) == 2.0


def test_quick_machinery_writes_a_summary_with_every_figure(tmp_path, data_cache,
                                                            one_thread):
    lines: list[str] = []
    summary = run({"cpu": TINY, "cuda": TINY}, Extras(render_images=8, render_batch=8,
                                                      render_repeats=1, report_records=6),
                  tmp_path, workers=1, compile=False, quick=True, log=lines.append)
    assert json.loads((tmp_path / SUMMARY).read_text()) == json.loads(json.dumps(summary))

    machine = summary["machine"]
    for key in ("cpu", "cores", "torch", "torch_threads", "load_avg", "load_avg_end", "gpu"):
        assert key in machine
    cpu = summary["devices"]["cpu"]
    assert set(cpu["img_per_s"]) == set(VARIANTS)
    for name, reps in cpu["img_per_s_repeats"].items():
        assert len(reps) == TINY.repeats
        assert all(math.isfinite(r) and r > 0 for r in reps)
        assert cpu["img_per_s"][name] == reps[0]
    reps = cpu["img_per_s_repeats"]
    assert cpu["harness_vs_bare"]["simclr"] == paired_ratio(reps["simclr"], reps["bare"])
    assert cpu["harness_vs_bare"]["peclr"] == paired_ratio(reps["peclr"], reps["bare"])
    assert cpu["vs_peer_pipeline"] == paired_ratio(reps["simclr"], reps["peer"])
    assert cpu["finetune_vs_bare"] == paired_ratio(reps["finetune"], reps["bare_finetune"])
    assert cpu["peer_workers"] == 1 and cpu["precision"] == "32-true"
    assert machine["torch_threads"] == 1

    assert summary["render_img_per_s_128"] > 0
    assert summary["report_s_6"] > summary["report_read_s_6"] > 0
    measured = list(summary["devices"])
    assert [(t["device"], t["figure"]) for t in summary["targets"]] == [
        (d, f) for d in measured for f in TARGETS[d]]
    for t in summary["targets"]:
        assert t["met"] == (t["value"] >= t["target"])
    if not torch.cuda.is_available():
        assert measured == ["cpu"]
        assert summary["gpu"].startswith("skipped")
        assert any("GPU path skipped" in line for line in lines)
    assert summary["report_cli_s_6"] > 0                     # bench report as a fresh process
    assert set(summary["cli_s"]) == {"help", "methods", "unknown_method", "status_empty"}
    assert all(0 < v < 60 for v in summary["cli_s"].values())
    rows = (len(summary["targets"]) + len(measured) * (1 + len(VARIANTS))
            + 4 + len(summary["cli_s"]))             # render, report, read, report CLI; cold starts
    assert table(summary).row_count == rows
