"""A study's claims get verdicts from the records: paired by seed, Holm-adjusted over the
study's comparisons, with the MDE the correction implies; bad claim files are one line."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.errors import UserError
from benchmarks.record import write_record
from eval.report import build_report
from eval.report.claims import Claim, evaluate, read_claims, seeds_for
from eval.report.load import load_runs
from eval.report.stats import detectable_d
from example_records import example_record

NOISE = {0: 0.00, 1: 0.05, 2: -0.04, 3: 0.02, 4: -0.03}      # per-seed offsets, mm


def study(tmp_path, errors: dict[tuple[str, float], float], seeds=range(5)):
    """Records of (method, label fraction) at a mean PA-EPE, each seed with its own noise."""
    results = tmp_path / "runs"
    for (method, fraction), mean in errors.items():
        for seed in seeds:
            jitter = NOISE[seed] * (1 + 0.5 * (len(method) % 3))   # methods differ in spread
            write_record(results, example_record(method, seed, mean + jitter, label_fraction=fraction))
    return results, load_runs(results).table


CLAIMS = [Claim("C1", "PeCLR beats SimCLR", ("peclr",), "simclr", {"label_fraction": 1.0}),
          Claim("C3", "trajreg beats VICReg", ("trajreg",), "vicreg", {"label_fraction": 1.0}),
          Claim("CX", "SimCLR beats PeCLR", ("simclr",), "peclr", {"label_fraction": 1.0}),
          Claim("C5", "the gain grows as labels shrink", ("peclr",), "random", {},
                across=("label_fraction", 0.1, 1.0))]
ERRORS = {("random", 1.0): 15.0, ("simclr", 1.0): 15.0, ("peclr", 1.0): 14.0, ("vicreg", 1.0): 15.2,
          ("trajreg", 1.0): 15.2, ("random", 0.1): 25.0, ("peclr", 0.1): 22.0}


def test_verdicts_follow_the_paired_tests_after_holm(tmp_path):
    _, table = study(tmp_path, ERRORS)
    rows, summary = evaluate(CLAIMS, table)
    verdict = dict(zip(summary["claim"], summary["verdict"]))
    assert verdict["C1"] == "supported" and verdict["CX"] == "contradicted"
    assert verdict["C3"].startswith("not detectable at MDE ")
    assert verdict["C5"] == "supported"                       # 3 mm gain at 10 %, 1 mm at 100 %
    c1 = rows.set_index("claim").loc["C1"]
    assert c1["effect"] == pytest.approx(1.0, abs=0.1) and c1["n"] == 5
    c5 = rows.set_index("claim").loc["C5"]
    assert c5["effect"] == pytest.approx(2.0, abs=0.1)


def test_the_mde_is_the_pooled_sd_at_holms_first_step(tmp_path):
    _, table = study(tmp_path, ERRORS)
    rows, summary = evaluate(CLAIMS, table)
    m = len(rows)
    for claim in summary.itertuples():
        own = rows[rows["claim"] == claim.claim]
        pooled = np.sqrt(np.mean(own["sd"] ** 2))
        assert claim.mde == pytest.approx(detectable_d(int(own["n"].min()), 0.05 / m) * pooled)
        assert claim.pooled_sd == pytest.approx(pooled)
    assert m == 4


@settings(max_examples=60, deadline=None)
@given(sd=st.floats(0.01, 2.0), target=st.floats(0.05, 1.0), m=st.integers(1, 12))
def test_seeds_for_a_target_mde_are_the_fewest_that_reach_it(sd, target, m):
    alpha = 0.05 / m
    n = seeds_for(sd, target, alpha)
    if n is None:
        assert detectable_d(1000, alpha) * sd > target
    else:
        assert detectable_d(n, alpha) * sd <= target
        assert n == 2 or detectable_d(n - 1, alpha) * sd > target


def test_holds_any_needs_one_comparison_and_all_needs_every_one(tmp_path):
    _, table = study(tmp_path, ERRORS)
    both = ("peclr", "vicreg")                       # peclr beats random by 1 mm, vicreg does not
    _, any_of = evaluate([Claim("A", "some", both, "random", {"label_fraction": 1.0}, holds="any")], table)
    _, all_of = evaluate([Claim("B", "every", both, "random", {"label_fraction": 1.0})], table)
    assert any_of["verdict"].iat[0] == "supported" and all_of["verdict"].iat[0] != "supported"


def test_bench_report_writes_the_verdicts_and_the_index_quotes_them(tmp_path):
    results, _ = study(tmp_path, ERRORS, seeds=range(3))
    sweep = tmp_path / "study.yaml"
    sweep.write_text("name: s\nfixed: {profile: smoke}\ngrid: {seed: [0, 1, 2]}\nclaims:\n"
                     "  - {id: C1, statement: PeCLR beats SimCLR, source: 'Spurr et al., ICCV 2021',"
                     " paper: '-10 %', better: peclr, than: simclr, where: {label_fraction: 1.0}}\n")
    index = build_report(results, tmp_path / "report", claims=sweep).read_text()
    table = (tmp_path / "report" / "tables" / "claims.md").read_text()
    assert "## Claims" in index and "| C1 | PeCLR beats SimCLR | Spurr et al., ICCV 2021 | supported |" in index
    assert "| C1 | peclr vs simclr |" in table
    assert (tmp_path / "report" / "tables" / "claims_comparisons.csv").exists()
    build_report(results, tmp_path / "report")                     # a rebuild without claims
    assert not (tmp_path / "report" / "tables" / "claims.md").exists()


@pytest.mark.parametrize("text, message", [
    ("claims: []\n", "has no claims list"),
    ("claims:\n  - {id: C1, statement: s, better: a}\n", "claims\\[0\\] needs 'than'"),
    ("claims:\n  - {id: C1, statement: s, better: a, than: b, whom: c}\n", "unknown key\\(s\\) whom"),
    ("claims:\n  - {id: C1, statement: s, better: a, than: b}\n  - {id: C1, statement: t, better: a, than: b}\n",
     "id 'C1' is used twice"),
    ("claims:\n  - {id: C1, statement: s, better: a, than: b, across: {label_fraction: [0.1]}}\n",
     "across must be one key with two values"),
])
def test_a_bad_claims_file_is_one_line_and_nothing_is_written(tmp_path, text, message, capsys):
    from orchestration.cli import main

    bad = tmp_path / "claims.yaml"
    bad.write_text(text)
    with pytest.raises(UserError, match=message):
        read_claims(bad)
    results, _ = study(tmp_path, {("random", 1.0): 15.0}, seeds=range(2))
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "out"), "--claims", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_than_where_reads_the_compared_method_in_another_setting(tmp_path):
    """C7's form: random init under match=total against pre-trainings under match=pretrain,
    paired by seed though their records differ in match."""
    results = tmp_path / "runs"
    for seed in range(4):
        write_record(results, example_record("random", seed, 13.5 + NOISE[seed], match="total"))
        write_record(results, example_record("random", seed, 15.5 + NOISE[seed]))
        write_record(results, example_record("peclr", seed, 14.5 + 2 * NOISE[seed]))
    table = load_runs(results).table
    claim = Claim("C7", "some pre-training beats random init at equal total FLOPs", ("peclr",), "random",
                  {"match": "pretrain"}, than_where={"match": "total"}, holds="any")
    rows, summary = evaluate([claim], table)
    assert list(rows["comparison"]) == ["peclr vs random (match total)"]
    assert rows["effect"].iat[0] == pytest.approx(-1.0, abs=0.05)       # random at total is better
    assert summary["verdict"].iat[0] == "contradicted"
    same, _ = evaluate([Claim("C0", "vs random at equal fine-tuning", ("peclr",), "random", {"match": "pretrain"})], table)
    assert same["effect"].iat[0] == pytest.approx(1.0, abs=0.05)


def test_the_comparisons_count_the_runs_that_converged(tmp_path):
    results = tmp_path / "runs"
    for seed in range(3):
        for method, change in (("random", -0.02), ("peclr", -0.004)):     # random still falling
            record = example_record(method, seed, 15.0 if method == "random" else 14.0)
            record["validation"] = {"pa_epe_mm": 15.0, "convergence": {
                "from_step": 300, "change": change, "criterion": "under 1 %", "converged": abs(change) < 0.01}}
            write_record(results, record)
    rows, _ = evaluate([Claim("C", "s", ("peclr",), "random", {})], load_runs(results).table)
    assert (rows["converged"].iat[0], rows["with_curve"].iat[0]) == (3, 6)


def test_a_better_method_without_records_is_a_row_without_pairs_not_a_silent_pass(tmp_path):
    _, table = study(tmp_path, ERRORS)
    rows, summary = evaluate([Claim("C", "peclr and mae beat simclr", ("peclr", "mae"), "simclr",
                                    {"label_fraction": 1.0})], table)
    assert list(rows["holds"]) == ["yes", "no pairs"] and summary["verdict"].iat[0] != "supported"


def test_than_where_keys_must_be_pinned_for_the_better_methods_too(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("claims:\n  - {id: C7, statement: s, better: peclr, than: random, than_where: {match: total}}\n")
    with pytest.raises(UserError, match="than_where sets match .* set it in where too"):
        read_claims(bad)


def test_an_interaction_reads_only_its_two_values(tmp_path):
    errors = {("random", 0.1): 25.0, ("peclr", 0.1): 22.0, ("random", 0.5): 20.0, ("peclr", 0.5): 19.9,
              ("random", 1.0): 15.0, ("peclr", 1.0): 14.0}
    _, table = study(tmp_path, errors)
    rows, summary = evaluate([CLAIMS[3]], table)
    assert rows["effect"].iat[0] == pytest.approx(2.0, abs=0.1)
    assert summary["target"].iat[0] == pytest.approx(0.03 * 20.0, rel=0.01)     # mean of 25 and 15


def test_than_may_list_several_methods_each_compared_with_every_better_one(tmp_path):
    """C6's form: one pre-training against each SSL method."""
    _, table = study(tmp_path, ERRORS)
    rows, _ = evaluate([Claim("C6", "peclr beats SSL", ("peclr",), ("simclr", "vicreg"), {"label_fraction": 1.0})],
                       table)
    assert list(rows["comparison"]) == ["peclr vs simclr", "peclr vs vicreg"]
    assert rows["effect"].to_numpy() == pytest.approx([1.0, 1.2], abs=0.1)
