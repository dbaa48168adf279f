"""Statistics over seeds: per-group summaries and paired comparisons with the baselines.

Conventions (the tables' footnotes and the index repeat them):

- mean and sample standard deviation (ddof=1) over the runs of a group (one run per seed);
- 95% confidence interval of the mean: percentile bootstrap, 10,000 resamples drawn from
  ``numpy.random.default_rng(0)`` over a group's runs in seed order, so a group's interval
  depends on its own runs only and every call gives the same numbers;
- relative change against a baseline: ``100 * (mean - mean_baseline) / mean_baseline`` on
  the group means (for errors, negative is better);
- significance: a two-sided paired t-test over the seeds that the group shares with its
  baseline group (same setting, same seed), p < 0.05. With the three to five seeds of a
  typical study, a percentile bootstrap of the paired differences is anti-conservative
  (three differences of one sign always give an interval that excludes zero), while the
  t-test keeps its 5% error rate for normally distributed differences.

A group's statistics need n >= 2 runs (pairs); with fewer they are NaN.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats

from eval.report.groups import BASELINES, GROUP_KEYS
from eval.report.load import DIAGNOSTICS, FLOORS, METRICS, PROBE_PREFIX

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
ALPHA = 0.05
SEED = 0


def bootstrap_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap CI of the mean along the last axis of ``values`` (..., n).

    The same interval as ``scipy.stats.bootstrap(..., method="percentile")`` with
    ``rng=default_rng(SEED)``: the same resample indices, one (resamples, n) draw shared by
    all rows, so a row's interval does not depend on the rows beside it. Computed as one
    matrix product of resample counts and values, so hundreds of groups take milliseconds.
    n < 2 gives NaN bounds.
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    if n < 2:
        nan = np.full(values.shape[:-1], np.nan)
        return nan, nan.copy()
    draws = np.random.default_rng(SEED).integers(0, n, (N_RESAMPLES, n))
    counts = np.zeros((N_RESAMPLES, n))
    np.add.at(counts, (np.arange(N_RESAMPLES)[:, None], draws), 1.0)
    means = values @ counts.T / n                                           # (..., resamples)
    tail = 100.0 * (1.0 - CONFIDENCE) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=-1)
    return low, high


def paired_t_p(mean: np.ndarray, std: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Two-sided p-values of paired t-tests from the mean, sample std and number of the
    paired differences (NaN where n < 2). Equal differences (std 0) give p = 0 when they
    are non-zero and p = 1 when they are all zero."""
    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(mean) / (std / np.sqrt(n))
        p = 2.0 * scipy.stats.t.sf(t, df=n - 1)
    p = np.where(std == 0.0, np.where(mean == 0.0, 1.0, 0.0), p)
    return np.where(n >= 2, p, np.nan)


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
    for each probe column ``<p>_mean``, ``<p>_std``, ``<p>_n``; the mean curves
    ``pck_mean`` and ``pa_pck_mean`` on the thresholds ``pck_thresholds_mm`` (the first
    run's; curves on other thresholds are interpolated); and ``per_joint_pa_epe_mm_mean`` /
    ``_std`` (arrays of 21).
    """
    table = table.sort_values(["seed", "run"], kind="stable").reset_index(drop=True)
    grouped = table.groupby(list(GROUP_KEYS), sort=False)
    codes = grouped.ngroup().to_numpy()
    probes = [c for c in table.columns if c.startswith(PROBE_PREFIX)]
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
    _add_intervals(groups, table[list(METRICS)].to_numpy(dtype=float), codes)
    return groups


def _add_intervals(groups: pd.DataFrame, values: np.ndarray, codes: np.ndarray) -> None:
    """Fill ``<m>_ci_low`` / ``<m>_ci_high`` from ``values`` (runs, metrics) in seed order
    within each group: one bootstrap call per group size."""
    rows_of = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes))[:-1])
    sizes = np.array([len(rows) for rows in rows_of])
    low = np.full((len(groups), len(METRICS)), np.nan)
    high = low.copy()
    for n in np.unique(sizes):
        which = np.flatnonzero(sizes == n)
        stacked = np.stack([values[rows_of[g]].T for g in which])          # (groups, metrics, n)
        low[which], high[which] = bootstrap_ci(stacked)
    for j, metric in enumerate(METRICS):
        groups[f"{metric}_ci_low"] = low[:, j]
        groups[f"{metric}_ci_high"] = high[:, j]


def compare(table: pd.DataFrame, groups: pd.DataFrame,
            baselines: Sequence[str] = BASELINES) -> pd.DataFrame:
    """``groups`` with the change of every metric against each baseline, where present.

    Adds, for baseline ``b`` and metric ``m``: ``<m>_vs_<b>_pct`` (relative change of the
    group mean, %), ``<m>_vs_<b>_diff`` (mean paired difference, group - baseline, in the
    metric's unit), ``<m>_vs_<b>_pairs`` (seeds shared with the baseline group) and
    ``<m>_vs_<b>_p`` (paired t-test). NaN where the setting has no such baseline group,
    and on the baseline's own row. A baseline group shares the group's head and setting.
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
        spread = pairs.groupby(keys, sort=False)[list(METRICS)].agg(["mean", "std", "count"])
        spread.columns = [f"{m}_{s}" for m, s in spread.columns]
        spread = out[keys].merge(spread.reset_index(), on=keys, how="left")        # aligned with out
        for metric in METRICS:
            base = base_means[f"{metric}_mean"].to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                pct = 100.0 * (out[f"{metric}_mean"].to_numpy() - base) / base
            n = spread[f"{metric}_count"].fillna(0).to_numpy()
            p = paired_t_p(spread[f"{metric}_mean"], spread[f"{metric}_std"], n)
            out[f"{metric}_vs_{baseline}_pct"] = np.where(is_base | (base == 0), np.nan, pct)
            out[f"{metric}_vs_{baseline}_diff"] = np.where(is_base, np.nan, spread[f"{metric}_mean"])
            out[f"{metric}_vs_{baseline}_pairs"] = np.where(is_base, 0, n).astype(int)
            out[f"{metric}_vs_{baseline}_p"] = np.where(is_base, np.nan, p)
    return out
