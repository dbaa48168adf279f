"""The report's parts: seed statistics, ordering, formatting, reading records, skips, user errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.errors import UserError
from benchmarks.store import write_record
from eval.report import build_report
from eval.report.example import example_record, failed_record
from eval.report.figures import method_colours
from eval.report.groups import budget_key, method_order, sort_groups
from eval.report.load import load_runs
from eval.report.stats import bootstrap_ci, paired_t_p
from eval.report.tables import Table, change, flops, latex, markdown, mean_std


def test_bootstrap_is_scipys_percentile_interval_and_independent_of_other_rows():
    values = np.random.default_rng(7).normal(10.0, 1.0, size=(6, 4, 5))
    low, high = bootstrap_ci(values)
    ref = scipy.stats.bootstrap((values,), np.mean, axis=-1, vectorized=True, n_resamples=10_000,
                                method="percentile", rng=np.random.default_rng(0)).confidence_interval
    np.testing.assert_allclose(low, ref.low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(high, ref.high, rtol=0, atol=1e-12)
    alone_low, alone_high = bootstrap_ci(values[2, 1])
    assert alone_low == low[2, 1] and alone_high == high[2, 1]
    assert np.isnan(bootstrap_ci(np.array([3.0]))[0])                       # one seed: no interval


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=2, max_size=8))
def test_paired_t_p_is_scipys_paired_t_test(pairs):
    a, b = np.array(pairs).T
    d = a - b
    p = paired_t_p(d.mean(), d.std(ddof=1), len(d))
    if d.std(ddof=1) > 1e-9 * max(1.0, abs(d).max()):
        assert p == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue, rel=1e-6, abs=1e-12)
    assert 0.0 <= p <= 1.0


def test_paired_t_p_edge_cases():
    assert paired_t_p(0.5, 0.0, 3) == 0.0            # identical non-zero differences
    assert paired_t_p(0.0, 0.0, 3) == 1.0            # no difference at all
    assert np.isnan(paired_t_p(0.5, np.nan, 1))      # one pair: no test


def test_method_and_setting_order():
    assert method_order(["zeta", "simclr", "random", "alpha", "imagenet"]) == [
        "random", "imagenet", "simclr", "alpha", "zeta"]
    assert sorted(["10ep", "2ep", "1.5kstep", "500step", "bogus"], key=budget_key) == [
        "2ep", "10ep", "500step", "1.5kstep", "bogus"]
    frame = pd.DataFrame({"match": ["total", "pretrain", "pretrain"], "label_fraction": [1.0, 1.0, 0.1],
                          "method": ["simclr", "simclr", "random"]})
    assert sort_groups(frame).to_dict("list") == {"match": ["pretrain", "pretrain", "total"],
                                                  "label_fraction": [0.1, 1.0, 1.0],
                                                  "method": ["random", "simclr", "simclr"]}


def test_method_colours_are_fixed_per_method():
    few = method_colours(["simclr", "random"])
    many = method_colours(["vicreg", "simclr", "peclr", "zzz", "random", "imagenet"])
    assert list(few) == ["random", "simclr"]
    assert few["simclr"] == many["simclr"] and few["random"] == many["random"]
    assert len(set(many.values())) == len(many)


def test_cell_formats():
    assert flops(3.2e15) == "3.20 PFLOP" and flops(1e12) == "1.00 TFLOP" and flops(8.5e11) == "850 GFLOP"
    assert mean_std(8.716, 0.3349, 2) == "8.72 ± 0.33" and mean_std(8.716, float("nan"), 2) == "8.72"
    assert change(-14.49, 0.01) == "-14.5%*" and change(3.21, 0.2) == "+3.2%"
    assert change(float("nan"), 0.0) == ""
    table = Table(pd.DataFrame({"method": ["a|b"], "PA-EPE (mm)": ["1.00 ± 0.10"], "vs random": ["-5.0%*"]}),
                  pd.DataFrame(), "data my_set", ("50% of 100",), 1)
    assert markdown(table).splitlines()[2] == r"| a\|b | 1.00 ± 0.10 | -5.0%* |"
    tex = latex(table, "Table 9: x_y", "tab:t")
    assert r"1.00 $\pm$ 0.10" in tex and r"-5.0\%*" in tex and r"data my\_set." in tex and r"x\_y" in tex


def test_every_bad_record_is_kept_with_a_reason(tmp_path):
    write_record(tmp_path, example_record("simclr", 0, 10.0))
    write_record(tmp_path, failed_record("simclr", 1, "CUDA out of memory\n  at step 3"))
    truncated = write_record(tmp_path, example_record("simclr", 2, 10.0))
    truncated.write_text(truncated.read_text()[:300])
    garbage = write_record(tmp_path, example_record("simclr", 3, 10.0))
    garbage.write_text('{"schema": 1,, "status": "ok"}')
    newer = example_record("simclr", 4, 10.0)
    newer["schema"] = 2
    write_record(tmp_path, newer)
    short = example_record("simclr", 5, 10.0)
    short["metrics"]["per_joint_pa_epe_mm"] = short["metrics"]["per_joint_pa_epe_mm"][:20]
    write_record(tmp_path, short)
    runs = load_runs(tmp_path)
    assert list(runs.table["seed"]) == [0] and runs.n_files == 6
    reasons = {p.run[-2:]: (p.kind, p.reason) for p in runs.problems}
    assert reasons["s1"] == ("failed", "CUDA out of memory at step 3")             # one line
    assert reasons["s2"][0] == "unreadable" and reasons["s2"][1].startswith("truncated JSON")
    assert reasons["s3"][0] == "unreadable" and reasons["s3"][1].startswith("not valid JSON")
    assert reasons["s4"] == ("invalid", "schema 2; this report reads schema 1")
    assert reasons["s5"] == ("invalid", "metrics.per_joint_pa_epe_mm has 20 values, expected 21")


def test_what_has_no_data_is_skipped_with_a_line_in_the_index(tmp_path):
    results = tmp_path / "runs"
    for seed, value in enumerate([10.0, 11.0]):
        write_record(results, example_record("simclr", seed, value, eval_steps=0))
    out = tmp_path / "report"
    index = build_report(results, out).read_text()
    for title, reason in (("Table 2: label efficiency", "same label fraction"),
                          ("Table 3: compute-matching protocols", "same protocol"),
                          ("Table 4: probes", "no record has probe results"),
                          ("Figure 3: label efficiency", "same label fraction"),
                          ("Figure 4: convergence", "no record has periodic fine-tuning evaluations")):
        line = next(line for line in index.splitlines() if line.startswith(f"- **{title}**"))
        assert "skipped" in line and reason in line
    assert sorted(p.name for p in (out / "tables").iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("table1_main", "table5_per_joint") for ext in ("md", "csv", "tex"))
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("fig1_pa_epe", "fig2_pck", "fig5_compute") for ext in ("png", "pdf"))
    assert "None: every record was read and is in the tables." in index


def test_only_failed_records_still_give_an_index(tmp_path):
    write_record(tmp_path / "runs", failed_record("peclr", 0, "RuntimeError: loss is NaN"))
    index = build_report(tmp_path / "runs", tmp_path / "report").read_text()
    assert "0 in the tables, 1 failed" in index and "RuntimeError: loss is NaN" in index
    assert index.count("skipped, no successful record") == 10


def test_user_errors_leave_files_alone(tmp_path):
    with pytest.raises(UserError, match="no records"):
        build_report(tmp_path, tmp_path / "report")
    with pytest.raises(UserError, match="no results folder"):
        build_report(tmp_path / "missing", tmp_path / "report")
    results = tmp_path / "runs"
    record = write_record(results, example_record("simclr", 0, 10.0))
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="did not write"):
        build_report(results, foreign)
    assert (foreign / "mine.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="contains the results folder"):
        build_report(results, tmp_path)
    assert json.loads(record.read_text())["status"] == "ok"
    assert not (tmp_path / "report").exists()
