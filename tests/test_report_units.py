"""The report's parts: seed statistics, ordering, formatting, reading records, skips, user errors."""
from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.errors import UserError
from benchmarks.record import write_record
from eval.report import build_report
from example_records import example_record, failed_record
from eval.report.figures import method_colours
from eval.report.groups import budget_key, method_order, sort_groups
from eval.report.load import load_runs
from eval.report.stats import (EQUAL_ABS, EQUAL_REL, detectable_d, holm, power, minimum_detectable, paired_p, paired_p_groups,
                               t_interval)
from benchmarks.units import flops_text as flops
from eval.report.tables import Table, change, latex, markdown, mean_std


def test_a_three_seed_interval_is_the_student_t_interval():
    seeds = np.array([15.2, 15.9, 16.4])
    low, high = t_interval(seeds.mean(), seeds.std(ddof=1), 3)
    half = 4.302652729911275 * seeds.std(ddof=1) / np.sqrt(3)      # t(0.975, 2)
    assert low == pytest.approx(seeds.mean() - half, abs=1e-9)
    assert high == pytest.approx(seeds.mean() + half, abs=1e-9)
    assert low < seeds.min() and high > seeds.max()       # wider than the seeds' range at n = 3
    assert np.isnan(t_interval(3.0, np.nan, 1)[0])         # one seed: no interval


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=2, max_size=8))
def test_paired_p_is_scipys_paired_t_test(pairs):
    a, b = np.array(pairs).T
    d = a - b
    p = paired_p(d[:, None])[0]
    if d.std(ddof=1) > 1e-9 * max(1.0, abs(d).max()):
        assert p == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue, rel=1e-6, abs=1e-12)
    assert 0.0 <= p <= 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-50, 50), st.sampled_from([0.0, 0.5, 1.0])),
                min_size=1, max_size=30))
def test_batched_paired_p_equals_one_test_per_group(rows):
    """The report's batched tests (one ttest_rel call per group size) give each group the
    p-values of scipy's paired t-test on its own rows, wherever they are: NaN under two rows,
    1 for all-zero and 0 for equal non-zero differences (t undefined), else ttest_rel's."""
    codes = np.array([r[0] for r in rows])
    diffs = np.array([[r[1], r[2]] for r in rows])
    got = paired_p_groups(codes, diffs, 6)
    for g in range(6):
        own = diffs[codes == g]
        for m in range(2):
            d = own[:, m]
            if len(d) < 2:
                assert np.isnan(got[g, m])
            elif np.ptp(d) <= EQUAL_REL * np.abs(d).max() + EQUAL_ABS:     # equal up to rounding
                assert got[g, m] == (1.0 if abs(d.mean()) <= EQUAL_ABS else 0.0)
            else:
                expected = scipy.stats.ttest_rel(d, np.zeros_like(d)).pvalue
                np.testing.assert_allclose(got[g, m], expected, rtol=1e-9, equal_nan=True)


def test_paired_p_edge_cases():
    assert paired_p(np.array([[0.5], [0.5], [0.5]]))[0] == 0.0     # identical non-zero differences
    assert paired_p(np.zeros((3, 1)))[0] == 1.0                       # no difference at all
    assert np.isnan(paired_p(np.array([[0.5]]))[0])                   # one pair: no test
    # equal up to the last bits (a constant offset of -21 mm after float subtraction), and
    # rounding noise around zero: p as for exactly equal differences, and scipy never asked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert paired_p(np.array([[-21.0], [-21.000000000000007], [-21.0]]))[0] == 0.0
        assert paired_p(np.array([[1e-17], [-1e-17], [0.0]]))[0] == 1.0


def test_holm_on_known_p_values():
    # sorted 0.01, 0.03, 0.04, 0.2: x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.2
    p = np.array([0.04, 0.01, np.nan, 0.2, 0.03])
    np.testing.assert_allclose(holm(p), [0.09, 0.04, np.nan, 0.2, 0.09], equal_nan=True)
    assert np.isnan(holm(np.array([np.nan]))).all()


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_minimum_detectable_effect_solves_the_noncentral_t(n):
    """80% power at alpha 0.05 two-sided: P(|T| > t_crit) with T ~ nct(n - 1, d sqrt(n))."""
    sd = 0.37
    mde = minimum_detectable(np.array([sd]), np.array([n]))[0]
    crit = scipy.stats.t.ppf(0.975, n - 1)

    def power(diff):
        nc = diff / sd * np.sqrt(n)
        lower = np.nan_to_num(scipy.stats.nct.cdf(-crit, n - 1, nc))   # ~0; scipy gives NaN far out
        return scipy.stats.nct.sf(crit, n - 1, nc) + lower

    solution = scipy.optimize.brentq(lambda x: power(x) - 0.8, 1e-6, 30 * sd)
    assert mde == pytest.approx(solution, abs=1e-3)
    assert np.isnan(minimum_detectable(np.array([sd]), np.array([1]))[0])


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


def test_the_figures_keep_seaborns_look_without_importing_it():
    """STYLE and COLOURBLIND, written out so a report never imports seaborn, are seaborn's
    white-grid style at notebook size x 0.8 and its colour-blind palette (the colormap
    ``rocket`` it also names is seaborn's own and no figure draws an image)."""
    import matplotlib
    import seaborn as sns
    from eval.report.figures import COLOURBLIND, STYLE, style

    with matplotlib.rc_context(), sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.8):
        theirs = dict(matplotlib.rcParams)
    with style():
        ours = dict(matplotlib.rcParams)
    def same(a, b):
        return a == pytest.approx(b) if isinstance(a, float) else a == b

    differ = {k for k in theirs if k != "image.cmap" and not same(theirs[k], ours[k])}
    assert not differ, {k: (theirs[k], ours[k]) for k in differ}
    assert set(STYLE) <= set(matplotlib.rcParams) and list(COLOURBLIND) == sns.color_palette("colorblind", 10).as_hex()


def test_the_statistics_equal_statsmodels_power_solver():
    from statsmodels.stats.power import TTestPower

    for n in (2, 3, 4, 5, 8, 20):
        expected = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
        assert detectable_d(n) == pytest.approx(expected, rel=1e-6)
        assert power(detectable_d(n), n) == pytest.approx(0.8, abs=1e-9)
        assert power(0.7, n) == pytest.approx(TTestPower().power(0.7, n, 0.05, alternative="two-sided"), rel=1e-9)
        # at Holm's first step: 80 % power exactly, and statsmodels' answer wherever its own
        # solver reaches 80 % (at n = 3 it stops at 79.9 %)
        ours, theirs = detectable_d(n, 0.05 / 8), TTestPower().solve_power(
            nobs=n, alpha=0.05 / 8, power=0.8, alternative="two-sided")
        assert power(ours, n, 0.05 / 8) == pytest.approx(0.8, abs=1e-9)
        assert np.isfinite(detectable_d(n, 0.05 / 1000))          # d in the thousands at n = 2
        if abs(TTestPower().power(theirs, n, 0.05 / 8, alternative="two-sided") - 0.8) < 1e-6:
            assert ours == pytest.approx(theirs, rel=1e-6)


def test_method_colours_are_fixed_per_method():
    few = method_colours(["simclr", "random"])
    many = method_colours(["vicreg", "simclr", "peclr", "zzz", "random", "imagenet"])
    assert list(few) == ["random", "simclr"]
    assert few["simclr"] == many["simclr"] and few["random"] == many["random"]
    assert len(set(many.values())) == len(many)


def test_cell_formats():
    assert flops(3.2e15) == "3.20 PFLOP" and flops(1e12) == "1.00 TFLOP" and flops(8.5e11) == "850 GFLOP"
    assert flops(3.2e15, trim=True) == "3.2 PFLOP" and flops(1e13, trim=True) == "10 TFLOP"
    assert flops(0.0) == "0 FLOP" and flops(float("nan")) == "?"
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
    reasons = {re.search(r"-(s\d)-", p.run).group(1): (p.kind, p.reason) for p in runs.problems}
    assert reasons["s1"] == ("failed", "CUDA out of memory at step 3")             # one line
    assert reasons["s2"][0] == "unreadable" and reasons["s2"][1].startswith("truncated JSON")
    assert reasons["s3"][0] == "unreadable" and reasons["s3"][1].startswith("not valid JSON")
    assert reasons["s4"] == ("invalid", "schema 2; this version reads schema 1")
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
        f"{stem}.{ext}" for stem in ("table1_main", "table5_per_joint", "table6_pretraining",
                                     "table7_transfer")
        for ext in ("md", "csv", "tex"))
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("fig1_pa_epe", "fig2_pck", "fig5_compute", "fig6_pretraining")
        for ext in ("png", "pdf"))
    assert "None: every record was read and is in the tables." in index


def test_only_failed_records_still_give_an_index(tmp_path):
    write_record(tmp_path / "runs", failed_record("peclr", 0, "RuntimeError: loss is NaN"))
    index = build_report(tmp_path / "runs", tmp_path / "report").read_text()
    assert "0 in the tables, 1 failed" in index and "RuntimeError: loss is NaN" in index
    assert index.count("skipped, no successful record") == 13


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


def test_old_records_without_floors_2d_scores_or_head_still_load(tmp_path):
    results = tmp_path / "runs"
    for seed, value in enumerate([10.0, 11.0]):
        write_record(results, example_record("simclr", seed, value, legacy=True))
    runs = load_runs(results)
    assert runs.problems == [] and list(runs.table["head"]) == ["regression", "regression"]
    for column in ("floor_pa_epe_mm", "floor_pa_auc", "floor_epe_mm", "one_point_pa_epe_mm",
                   "epe_2d_px", "epe_2d_frac", "auc_2d"):
        assert runs.table[column].isna().all(), column
    index = build_report(results, tmp_path / "report").read_text()
    md = (tmp_path / "report" / "tables" / "table1_main.md").read_text()
    csv_header = (tmp_path / "report" / "tables" / "table1_main.csv").read_text().splitlines()[0]
    assert "floor" not in md and "2D EPE" not in md and "†" not in md and "head" not in md
    assert "floor" not in csv_header and "2d" not in csv_header
    assert "no-image floor" not in index and "pose head" not in index
    flat = pd.read_parquet(tmp_path / "report" / "runs.parquet")
    assert "head" not in flat.columns and "floor_pa_epe_mm" not in flat.columns


def test_present_but_broken_new_fields_make_the_record_invalid(tmp_path):
    def broken(seed: int, change) -> None:
        record = example_record("simclr", seed, 10.0)
        change(record)
        write_record(tmp_path, record)

    broken(0, lambda r: r["baselines"]["canonical_hand"].update(pa_epe_mm="12"))
    broken(1, lambda r: r["metrics"].update(epe_2d_px=-1.0))
    broken(2, lambda r: r["config"]["finetune"].update(head=3))
    broken(3, lambda r: r.update(baselines=[1, 2]))
    broken(4, lambda r: r["baselines"]["one_point"].update(pa_epe_mm=True))
    broken(5, lambda r: r["metrics"].update(epe_2d_px=None, auc_2d=None))       # null: not recorded
    broken(6, lambda r: r.pop("baselines"))                                      # absent: not recorded
    broken(7, lambda r: r["pretraining"].update(learned="yes"))
    broken(8, lambda r: r["pretraining"].pop("criterion"))
    broken(9, lambda r: [r["pretraining"].pop(k) for k in ("criterion", "learned")])   # before verdicts
    runs = load_runs(tmp_path)
    reasons = {re.search(r"-(s\d)-", p.run).group(1): (p.kind, p.reason) for p in runs.problems}
    assert reasons == {
        "s0": ("invalid", "baselines.canonical_hand.pa_epe_mm is '12', not a finite number"),
        "s1": ("invalid", "metrics.epe_2d_px is -1.0, below 0"),
        "s2": ("invalid", "config.finetune.head is 3, not a non-empty string"),
        "s3": ("invalid", "baselines is a list, not an object"),
        "s4": ("invalid", "baselines.one_point.pa_epe_mm is True, not a finite number"),
        "s7": ("invalid", "pretraining.learned is 'yes', not true or false"),
        "s8": ("invalid", "pretraining.learned is given without its criterion (a sentence)"),
    }
    rows = runs.table.set_index("seed")
    assert np.isnan(rows.at[5, "epe_2d_px"]) and rows.at[5, "floor_pa_epe_mm"] == 20.0
    assert np.isnan(rows.at[6, "floor_pa_epe_mm"]) and rows.at[6, "epe_2d_px"] == pytest.approx(4.0)
    assert np.isnan(rows.at[9, "pretext_learned"]) and rows.at[5, "pretext_learned"] == 1.0


def test_the_pretraining_table_counts_the_seeds_that_learned(tmp_path):
    """Seeds 0 and 1 of the example records learned, seed 2 did not; a group of seeds 0-1 says
    yes, one of seeds 0-2 says 2 of 3, and a group without verdicts says nothing."""
    results = tmp_path / "runs"
    for seed in (0, 1, 2):
        write_record(results, example_record("simclr", seed, 10.0))
    for seed in (0, 1):
        write_record(results, example_record("peclr", seed, 10.0))
    old = example_record("vicreg", 0, 10.0)
    for key in ("criterion", "learned"):
        old["pretraining"].pop(key)
    write_record(results, old)
    build_report(results, tmp_path / "report")
    cells = _cells((tmp_path / "report" / "tables" / "table6_pretraining.md").read_text(), "method")
    assert {m: cells[m]["learned"] for m in ("simclr", "peclr", "vicreg")} == {
        "simclr": "2 of 3", "peclr": "yes", "vicreg": "–"}


# method -> (PA-EPE of seeds 0, 1, 2; canonical-hand floor of those runs), all in mm
FLOORED = {"random": ([21.0, 22.0, 23.0], [20.0, 20.5, 21.0]),     # mean 22.0 vs floor 20.5: marked
           "simclr": ([14.0, 15.0, 16.0], [20.0, 20.5, 21.0]),     # mean 15.0: beats its floor
           "peclr": ([19.0, 20.0, 21.5], [20.0, 20.5, 21.0]),      # mean 20.17 < 20.5: beats it, barely
           "vicreg": ([20.0, 20.5, 21.0], [20.0, 20.5, 21.0])}     # mean 20.5 = its floor: marked


def _cells(md: str, key: str) -> dict[str, dict[str, str]]:
    """A Markdown table's cells, {row's ``key`` column: {column: cell}}."""
    header, _, *rows = [line.strip("| ").split(" | ") for line in md.splitlines() if line.startswith("|")]
    return {row[header.index(key)]: dict(zip(header, row)) for row in rows}


def _floored_records(results) -> dict[str, list[dict]]:
    records: dict[str, list[dict]] = {}
    for method, (values, floors) in FLOORED.items():
        for seed, (value, floor) in enumerate(zip(values, floors)):
            record = example_record(method, seed, value, floor_pa_epe_mm=floor, epe_2d_px=3.0 + seed)
            write_record(results, record)
            records.setdefault(method, []).append(record)
    return records


def test_main_table_shows_the_floor_and_marks_groups_that_do_not_beat_it(tmp_path):
    records = _floored_records(tmp_path / "runs")
    index = build_report(tmp_path / "runs", tmp_path / "report").read_text()
    tables = tmp_path / "report" / "tables"
    data = pd.read_csv(tables / "table1_main.csv").set_index("method")
    for method, runs in records.items():
        floors = [r["baselines"]["canonical_hand"] for r in runs]
        for key in ("pa_epe_mm", "pa_auc", "epe_mm"):
            assert data.at[method, f"floor_{key}_mean"] == pytest.approx(np.mean([f[key] for f in floors]))
        assert data.at[method, "one_point_pa_epe_mm_mean"] == pytest.approx(
            np.mean([r["baselines"]["one_point"]["pa_epe_mm"] for r in runs]))
        assert data.at[method, "epe_2d_px_mean"] == pytest.approx(4.0)           # 3, 4, 5 px
        assert data.at[method, "epe_2d_px_std"] == pytest.approx(1.0)
        assert data.at[method, "epe_2d_frac_mean"] == pytest.approx(
            np.mean([r["metrics"]["epe_2d_frac"] for r in runs]))
    assert data["not_below_floor"].to_dict() == {"random": True, "simclr": False, "peclr": False,
                                                 "vicreg": True}

    md = (tables / "table1_main.md").read_text()
    cells = _cells(md, "method")
    assert cells["random"]["PA-EPE (mm)"] == "22.00 ± 1.00 †"
    assert cells["simclr"]["PA-EPE (mm)"] == "15.00 ± 1.00"
    assert cells["peclr"]["PA-EPE (mm)"] == "20.17 ± 1.26"
    assert cells["vicreg"]["PA-EPE (mm)"] == "20.50 ± 0.50 †"
    assert {c["floor PA-EPE (mm)"] for c in cells.values()} == {"20.50"}
    assert {c["2D EPE (px)"] for c in cells.values()} == {"4.00 ± 1.00"}
    assert "† = the group's mean PA-EPE is not below its floor" in md
    tex = (tables / "table1_main.tex").read_text()
    assert r"22.00 $\pm$ 1.00 $^\dagger$" in tex and "†" not in tex
    assert ("The no-image floor, a constant canonical hand, scores 20.50 mm PA-EPE on this evaluation set; "
            "groups marked † in Table 1 do not beat it: random, vicreg.") in index


def test_figures_draw_the_floor_only_where_the_records_have_it(tmp_path):
    from eval.report.figures import FLOOR_STYLE, convergence, pa_epe_per_method
    from eval.report.stats import aggregate, compare

    _floored_records(tmp_path / "new")
    for seed, value in enumerate([10.0, 11.0]):
        write_record(tmp_path / "old", example_record("simclr", seed, value, legacy=True))

    def dashed(fig) -> list[float]:
        return [line.get_ydata()[0] for ax in fig.axes for line in ax.get_lines()
                if line.get_linestyle() == FLOOR_STYLE["linestyle"]]

    new, old = load_runs(tmp_path / "new"), load_runs(tmp_path / "old")
    new_groups, old_groups = (compare(r.table, aggregate(r.table)) for r in (new, old))
    fig1 = pa_epe_per_method(new_groups, new.table)
    assert dashed(fig1) == [pytest.approx(20.5)]
    ticks = [t.get_text() for t in fig1.axes[0].get_xticklabels()]
    assert ticks == ["random †", "simclr", "peclr", "vicreg †"]
    assert "canonical hand (no image)" in [t.get_text() for t in fig1.legends[0].get_texts()]
    assert dashed(convergence(new_groups, new.table, new.evals)) == [pytest.approx(20.5)]
    old1 = pa_epe_per_method(old_groups, old.table)
    assert dashed(old1) == [] and not old1.legends
    assert "†" not in "".join(t.get_text() for t in old1.axes[0].get_xticklabels())
    assert dashed(convergence(old_groups, old.table, old.evals)) == []


def test_two_heads_never_share_a_group_or_a_table(tmp_path):
    results = tmp_path / "runs"
    values = {("regression", "random"): 30.0, ("regression", "simclr"): 25.0,
              ("heatmap", "random"): 20.0, ("heatmap", "simclr"): 18.0}
    for (head, method), value in values.items():
        for seed in range(3):
            write_record(results, example_record(method, seed, value + seed, head=head))
    runs = load_runs(results)
    assert sorted(runs.table.groupby(["head", "method"]).size().items()) == [
        (("heatmap", "random"), 3), (("heatmap", "simclr"), 3),
        (("regression", "random"), 3), (("regression", "simclr"), 3)]
    index = build_report(results, tmp_path / "report").read_text()
    tables = tmp_path / "report" / "tables"
    assert not (tables / "table1_main.md").exists()
    for head in ("regression", "heatmap"):
        data = pd.read_csv(tables / f"table1_main_{head}.csv").set_index("method")
        assert list(data.index) == ["random", "simclr"] and list(data["n"]) == [3, 3]
        assert data.at["simclr", "pa_epe_mm_mean"] == pytest.approx(values[head, "simclr"] + 1)
        random_mean = values[head, "random"] + 1                               # the baseline of its head
        assert data.at["simclr", "pa_epe_mm_vs_random_pct"] == pytest.approx(
            100 * (values[head, "simclr"] - values[head, "random"]) / random_mean)
        md = (tables / f"table1_main_{head}.md").read_text()
        assert md.startswith(f"# Table 1: main results ({head} head)\n")
        assert f"## Main result ({head} head)" in index and f"## Figures ({head} head)" in index
        assert (tmp_path / "report" / "figures" / f"fig1_pa_epe_{head}.png").is_file()
        joints = pd.read_csv(tables / f"table5_per_joint_{head}.csv")
        assert len(joints) == 2 * 21
    assert "head heatmap · data synthetic" in (tables / "table1_main_heatmap.md").read_text()
    assert index.index("## Main result (regression head)") < index.index("## Main result (heatmap head)")
    assert pd.read_parquet(tmp_path / "report" / "runs.parquet")["head"].value_counts().to_dict() == {
        "regression": 6, "heatmap": 6}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text("abcdefgh ", min_size=1, max_size=20).map(str.strip).filter(bool),
                min_size=1, max_size=8), st.integers(20, 80))
def test_titles_wrap_between_phrases_never_inside_one(phrases, width):
    from eval.report.figures import wrap_phrases
    lines = wrap_phrases("; ".join(phrases), width)
    assert " ".join(lines) == "; ".join(phrases)                  # nothing lost or added
    for phrase in phrases:                                        # a phrase that fits stays on one line
        if len(phrase) + 1 <= width:
            assert any(phrase in line for line in lines)


def test_dodged_series_stand_apart_on_a_log_axis_and_one_series_stays_put():
    from eval.report.figures import dodge
    xs = [dodge([0.1, 1.0], i, 4) for i in range(4)]
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(xs, xs[1:]))
    assert xs[0][1] * xs[-1][1] == pytest.approx(1.0)             # centred on the true value
    assert dodge([0.25], 0, 1) == [0.25]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(float("nan"))), min_size=1, max_size=20))
def test_holm_equals_statsmodels(p):
    from statsmodels.stats.multitest import multipletests

    p = np.array(p)
    present = ~np.isnan(p)
    expected = np.full(p.shape, np.nan)
    if present.any():
        expected[present] = multipletests(p[present], method="holm")[1]
    np.testing.assert_allclose(holm(p), expected, equal_nan=True, rtol=0, atol=1e-12)


def test_label_efficiency_table_marks_the_fractions_that_do_not_beat_the_floor(tmp_path):
    """A small label fraction whose runs stay above the no-image floor is marked in Table 2,
    cell by cell, and its CSV says which; a fraction below the floor is not."""
    for method, few, full in (("random", 25.0, 15.5), ("simclr", 18.0, 15.0)):
        for seed in range(3):
            for fraction, value in ((0.25, few), (1.0, full)):
                write_record(tmp_path / "runs", example_record(
                    method, seed, value + 0.1 * seed, floor_pa_epe_mm=19.5, label_fraction=fraction))
    build_report(tmp_path / "runs", tmp_path / "report")
    tables = tmp_path / "report" / "tables"
    md = (tables / "table2_label_efficiency.md").read_text()
    cells = _cells(md, "method")
    assert cells["random"]["PA-EPE (mm), 25% labels"] == "25.10 ± 0.10 †"
    assert cells["random"]["PA-EPE (mm), 100% labels"] == "15.60 ± 0.10"
    assert cells["simclr"]["PA-EPE (mm), 25% labels"] == "18.10 ± 0.10"
    assert "† = the cell's mean PA-EPE is not below its no-image floor" in md
    data = pd.read_csv(tables / "table2_label_efficiency.csv")
    marked = {(m, f): v for m, f, v in zip(data["method"], data["label_fraction"], data["not_below_floor"])}
    assert marked == {("random", 0.25): True, ("random", 1.0): False,
                      ("simclr", 0.25): False, ("simclr", 1.0): False}
