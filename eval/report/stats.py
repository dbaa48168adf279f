"""Statistics over seeds: per-group summaries and paired comparisons with the baselines.

Conventions (the tables' footnotes and the index repeat them), chosen for the three to five
seeds a study runs:

- mean and sample standard deviation (ddof=1) over the runs of a group (one run per seed);
- 95% confidence interval of the mean: Student's t interval, ``mean ± t(0.975, n-1) s / √n``
  (a percentile bootstrap over three seeds cannot reach beyond the seeds it resamples, so its
  "interval" is their range);
- relative change against a baseline: ``100 * (mean - mean_baseline) / mean_baseline`` on
  the group means (for errors, negative is better);
- significance: a two-sided paired t-test (the one-sample t-test of the paired differences,
  as ``scipy.stats.ttest_rel``) over the seeds that
  the group shares with its baseline group (same setting, same seed); the tables adjust
  its p-values with Holm's method over every comparison against one baseline in the table
  (``holm``) and mark p_holm < 0.05;
- minimum detectable effect: the smallest paired difference the test detects with 80%
  power at α = 0.05 two-sided, given the number of pairs and the standard deviation of
  the paired differences (non-central t, as ``statsmodels``' ``TTestPower``), in the metric's
  unit. A difference below it is not a finding, whatever its sign.

The t and non-central t distributions come from ``scipy.special`` (``stdtr``, ``stdtrit``,
``nctdtr``): ``scipy.stats`` and ``statsmodels`` take 1.5 s and more to import, most of a
report's start-up. The tests check these functions against both.

A group's statistics need n >= 2 runs (pairs); with fewer they are NaN.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.special

from eval.report.groups import BASELINES, GROUP_KEYS
from eval.report.load import DIAGNOSTICS, FLOORS, METRICS, PRETEXT_PREFIX, PROBE_PREFIX, TRANSFER_PREFIX

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
EQUAL_REL = 1e-9         # paired differences this close (relative, absolute) count as equal
EQUAL_ABS = 1e-12


def t_interval(mean: np.ndarray, std: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Student's t confidence interval of the mean (``CONFIDENCE``), elementwise; NaN where n < 2."""
    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    with np.errstate(invalid="ignore"):
        t = scipy.special.stdtrit(np.where(n >= 2, n - 1, np.nan), 0.5 + CONFIDENCE / 2)
        half = t * std / np.sqrt(n)
    return mean - half, mean + half


def paired_p(diffs: np.ndarray) -> np.ndarray:
    """Two-sided p-values of paired t-tests (as ``scipy.stats.ttest_rel``) of the paired
    differences ``diffs`` (pairs, metrics) against zero, one per metric; NaN with fewer than
    two pairs. Equal differences give p = 0 when they are non-zero and p = 1 when they are
    all zero (where the t statistic is undefined). Equal means equal up to float rounding:
    a spread within ``EQUAL_REL`` of their size plus ``EQUAL_ABS`` (a seed's metric minus its
    baseline's can differ from the next seed's in the last bits, and a t-test on those bits
    would report a p that only rounding made)."""
    diffs = np.asarray(diffs, dtype=float)
    return paired_p_groups(np.zeros(len(diffs), dtype=int), diffs, 1)[0]


def paired_p_groups(codes: np.ndarray, diffs: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`paired_p` of each group of rows of ``diffs`` (rows, metrics), the group of row i
    being ``codes[i]`` in 0..n_groups-1, NaN for a group of fewer than two rows; one
    t-test per group size, not per group (a 1,000-record report holds hundreds of
    groups). Returns (n_groups, metrics)."""
    codes, diffs = np.asarray(codes, dtype=int), np.asarray(diffs, dtype=float)
    out = np.full((n_groups, diffs.shape[1]), np.nan)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=n_groups)
    blocks = np.split(diffs[order], np.cumsum(sizes)[:-1])
    for size in np.unique(sizes[sizes >= 2]):
        members = np.flatnonzero(sizes == size)
        stacked = np.stack([blocks[g] for g in members])               # (groups, pairs, metrics)
        flat = np.ptp(stacked, axis=1) <= EQUAL_REL * np.abs(stacked).max(axis=1) + EQUAL_ABS
        zero = np.abs(stacked.mean(axis=1)) <= EQUAL_ABS
        # equal differences have no t statistic: a stand-in sample keeps them from being
        # tested (0 / 0), and the rule above gives their p
        tested = np.where(flat[:, None, :], np.arange(size, dtype=float)[None, :, None], stacked)
        out[members] = np.where(flat, np.where(zero, 1.0, 0.0), t_test_p(tested))
    return out


def t_test_p(samples: np.ndarray) -> np.ndarray:
    """Two-sided p-values of one-sample t-tests against zero along axis 1 of ``samples``
    (groups, n, metrics) -> (groups, metrics): ``2 P(T_{n-1} > |t|)``, ``t = mean / (s / √n)``,
    the value ``scipy.stats.ttest_rel(samples, 0, axis=1)`` gives."""
    n = samples.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = samples.mean(axis=1) / (samples.std(axis=1, ddof=1) / np.sqrt(n))
    return 2.0 * scipy.special.stdtr(n - 1, -np.abs(t))


def power(d: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at ``alpha`` over ``n`` pairs against a standardised
    difference ``d``: the non-central t (n - 1 degrees of freedom, non-centrality d √n) beyond
    either critical value, as ``statsmodels``' ``TTestPower().power``. The far tail, below
    -critical, is below 1e-10 wherever ``nctdtr`` cannot evaluate it (NaN) and counts as 0."""
    df, nc = n - 1, d * np.sqrt(n)
    critical = scipy.special.stdtrit(df, 1 - alpha / 2)
    far = np.nan_to_num(scipy.special.nctdtr(df, nc, -critical))
    return float(1.0 - scipy.special.nctdtr(df, nc, critical) + far)


@lru_cache(maxsize=None)
def detectable_d(n: int, alpha: float = ALPHA) -> float:
    """The standardised paired difference (mean / sd of the differences) that a two-sided
    paired t-test over ``n`` pairs detects with power ``POWER`` at ``alpha`` (``ALPHA``; Holm's
    first step over m comparisons tests at ``ALPHA / m``); NaN for n < 2.

    Power grows with d, so bisection finds it (to 1e-12 relative; ``scipy.optimize`` would add
    0.15 s of import for a root this plain)."""
    if n < 2:
        return float("nan")
    low, high = 0.0, 1.0
    while power(high, n, alpha) < POWER:
        low, high = high, 2 * high
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if power(middle, n, alpha) < POWER else (low, middle)
    return (low + high) / 2


def minimum_detectable(std: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Minimum detectable paired difference, in the unit of ``std`` (the paired differences'
    sample standard deviation), for ``n`` pairs; NaN where n < 2."""
    std, n = np.asarray(std, dtype=float), np.asarray(n)
    return np.array([detectable_d(int(k)) for k in n.ravel()]).reshape(n.shape) * std


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of the p-values ``p`` taken as one family (NaN entries
    are not comparisons and stay NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    present = ~np.isnan(p)
    # statsmodels' multipletests(method="holm") gives the same values (the tests check it) but
    # runs a full gc.collect() per call: 0.14 s each with a report's figures in memory.
    q = p[present]
    order = np.argsort(q, kind="stable")
    stepped = np.maximum.accumulate(q[order] * np.arange(len(q), 0, -1))
    adjusted = np.empty_like(q)
    adjusted[order] = np.minimum(stepped, 1.0)
    out[present] = adjusted
    return out


def _on_grid(curves: pd.Series, thresholds: pd.Series, grid: np.ndarray) -> np.ndarray:
    """Curves (a column of 1-D arrays) as a (runs, len(grid)) array sampled at ``grid``;
    a curve on other thresholds than ``grid`` is interpolated."""
    return np.stack([y if np.array_equal(x, grid) else np.interp(grid, x, y)
                     for x, y in zip(thresholds, curves)])


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """One row per group, in no particular order (see ``groups.sort_groups``).

    Columns: the group keys; ``n`` (runs) and ``seeds`` (sorted tuple); for each metric
    ``<m>_mean``, ``<m>_std``, ``<m>_ci_low``, ``<m>_ci_high``; ``pretrain_flops_mean``,
    ``finetune_flops_mean``, ``total_flops_mean``, ``wall_s_mean``; ``external_pretrain``
    (None when no run started from external weights); the means of the no-image floors
    (``floor_pa_epe_mm_mean``, ``floor_pa_auc_mean``, ``floor_epe_mm_mean``,
    ``one_point_pa_epe_mm_mean``) and the mean and std of the 2D scores (``epe_2d_px``,
    ``epe_2d_frac``, ``auc_2d``), over the runs that have them (NaN where none has);
    for each probe, pre-training objective and cross-dataset column (``probe_*``,
    ``pretext_*``, ``transfer_*``)
    ``<p>_mean``, ``<p>_std``, ``<p>_n``; the mean curves
    ``pck_mean`` and ``pa_pck_mean`` on the thresholds ``pck_thresholds_mm`` (the first
    run's; curves on other thresholds are interpolated); and ``per_joint_pa_epe_mm_mean`` /
    ``_std`` (arrays of 21).
    """
    table = table.sort_values(["seed", "run"], kind="stable").reset_index(drop=True)
    grouped = table.groupby(list(GROUP_KEYS), sort=False)
    codes = grouped.ngroup().to_numpy()
    probes = [c for c in table.columns if c.startswith((PROBE_PREFIX, PRETEXT_PREFIX, TRANSFER_PREFIX))]
    means = grouped[[*METRICS, "pretrain_flops", "finetune_flops", "total_flops", "wall_s",
                     *FLOORS, *DIAGNOSTICS, *probes]].mean()
    stds = grouped[[*METRICS, *DIAGNOSTICS, *probes]].std(ddof=1)
    groups = pd.concat([grouped.size().rename("n"),
                        grouped["seed"].agg(lambda seeds: tuple(sorted(seeds))).rename("seeds"),
                        means.add_suffix("_mean"), stds.add_suffix("_std"),
                        grouped[probes].count().add_suffix("_n"),
                        grouped["external_pretrain"].agg(
                            lambda e: "; ".join(sorted({x for x in e if isinstance(x, str)})) or None)],
                       axis=1).reset_index()
    grid = table["pck_thresholds_mm"].iat[0]
    groups["pck_thresholds_mm"] = [grid] * len(groups)
    for column in ("pck", "pa_pck"):
        curves = pd.DataFrame(_on_grid(table[column], table["pck_thresholds_mm"], grid))
        groups[f"{column}_mean"] = list(curves.groupby(codes).mean().to_numpy())
    joints = pd.DataFrame(np.stack(table["per_joint_pa_epe_mm"].to_list())).groupby(codes)
    groups["per_joint_pa_epe_mm_mean"] = list(joints.mean().to_numpy())
    groups["per_joint_pa_epe_mm_std"] = list(joints.std(ddof=1).to_numpy())
    for metric in METRICS:
        low, high = t_interval(groups[f"{metric}_mean"], groups[f"{metric}_std"], groups["n"])
        groups[f"{metric}_ci_low"], groups[f"{metric}_ci_high"] = low, high
    return groups


def compare(table: pd.DataFrame, groups: pd.DataFrame,
            baselines: Sequence[str] = BASELINES) -> pd.DataFrame:
    """``groups`` with the change of every metric against each baseline, where present.

    Adds, for baseline ``b`` and metric ``m``: ``<m>_vs_<b>_pct`` (relative change of the
    group mean, %), ``<m>_vs_<b>_diff`` (mean paired difference, group - baseline, in the
    metric's unit), ``<m>_vs_<b>_pairs`` (seeds shared with the baseline group) and
    ``<m>_vs_<b>_p`` (paired t-test, unadjusted: the tables adjust over their own rows, see
    ``holm``) and ``<m>_vs_<b>_mde`` (minimum detectable difference, the metric's unit). NaN
    where the setting has no such baseline group, and on the baseline's own row. A baseline
    group shares the group's head and setting.
    """
    keys = list(GROUP_KEYS)
    settings = [key for key in keys if key != "method"]
    per_seed = table.groupby([*keys, "seed"], sort=False)[list(METRICS)].mean().reset_index()
    out = groups.copy()
    for baseline in baselines:
        is_base = (out["method"] == baseline).to_numpy()
        base_means = groups.loc[groups["method"] == baseline, [*settings, *(f"{m}_mean" for m in METRICS)]]
        base_means = out[settings].merge(base_means, on=settings, how="left")     # aligned with out
        base_seed = per_seed[per_seed["method"] == baseline].drop(columns="method")
        pairs = per_seed.merge(base_seed, on=[*settings, "seed"], suffixes=("", "_base"))
        for metric in METRICS:
            pairs[metric] = pairs[metric] - pairs[f"{metric}_base"]
        by_group = pairs.groupby(keys, sort=False)[list(METRICS)]
        spread = by_group.agg(["mean", "std", "count"])
        spread.columns = [f"{m}_{s}" for m, s in spread.columns]
        codes = pairs.groupby(keys, sort=False).ngroup().to_numpy()     # the order of ``spread``
        tests = pd.DataFrame(paired_p_groups(codes, pairs[list(METRICS)].to_numpy(), len(spread)),
                             index=spread.index, columns=[f"{m}_p" for m in METRICS])
        spread = spread.join(tests) if len(spread) else spread.assign(**{f"{m}_p": [] for m in METRICS})
        spread = out[keys].merge(spread.reset_index(), on=keys, how="left")        # aligned with out
        for metric in METRICS:
            base = base_means[f"{metric}_mean"].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                pct = 100.0 * (out[f"{metric}_mean"].to_numpy() - base) / base
            n = spread[f"{metric}_count"].fillna(0).to_numpy()
            p = spread[f"{metric}_p"].to_numpy(dtype=float)
            mde = minimum_detectable(spread[f"{metric}_std"].to_numpy(dtype=float), n)
            out[f"{metric}_vs_{baseline}_pct"] = np.where(is_base | (base == 0), np.nan, pct)
            out[f"{metric}_vs_{baseline}_diff"] = np.where(is_base, np.nan, spread[f"{metric}_mean"])
            out[f"{metric}_vs_{baseline}_pairs"] = np.where(is_base, 0, n).astype(int)
            out[f"{metric}_vs_{baseline}_p"] = np.where(is_base, np.nan, p)
            out[f"{metric}_vs_{baseline}_mde"] = np.where(is_base, np.nan, mde)
    return out
