"""A study's claims, as the papers state them, each with a verdict computed from the records.

A sweep file may list its study's claims (``claims:``; ``bench report --claims SWEEP.yaml``
reads them), one mapping each::

    - id: C1
      statement: PeCLR beats SimCLR
      source: Spurr et al., ICCV 2021
      paper: "the paper's own figure, quoted beside the verdict"
      better: peclr                 # the method(s) the claim says have the lower PA-EPE
      than: simclr                  # the method(s) they are compared with, each with each
      where: {match: pretrain, label_fraction: 1.0}     # the records the claim is read on
      than_where: {match: total}    # optional: where the compared method's records differ
      holds: all                    # all (default): every comparison must hold; any: one suffices
      across: {label_fraction: [0.1, 1.0]}              # interaction claims only (below)

**Comparisons.** Each method of ``better`` is paired with ``than`` by seed, in every setting
the ``where`` records leave (runs that share head, data, profile, budget, match, label
fraction and backbone). ``than_where`` reads the compared method elsewhere (its keys
override ``where`` for it, and settings are then matched on the other keys): random init
under ``match=total`` against pre-trainings under ``match=pretrain`` at the same total
FLOPs, or a budget in steps against one in epochs. The effect is the improvement ``than - better`` in PA-EPE (mm,
positive where the claim goes). With ``across`` the claim is an interaction: the gain
``than - better`` at the first value of the key minus the gain at the last, per seed
(positive: the gain is larger at the first, e.g. at fewer labels).

**Statistics** (the conventions of ``eval.report.stats``): a two-sided paired t-test of each
comparison's per-seed effects; Holm's adjustment over every comparison of every claim in the
file (the study's family); a comparison holds where p_holm < ``ALPHA`` and its effect is
positive, and is contradicted where p_holm < ``ALPHA`` and its effect is negative. A claim's
minimum detectable effect is stated the way its verdict is tested: the pooled standard
deviation of its comparisons' effects (root mean square of their sds), at 80 % power, at
Holm's first step (``ALPHA / m`` for the family's m comparisons), for its smallest number of
pairs; beside it the seeds that would bring it to 3 % of ``than``'s mean PA-EPE.

**Verdict.** ``supported`` (every comparison holds, or one with ``holds: any``),
``contradicted`` (one is contradicted, or every one with ``holds: any``), otherwise ``not
detectable at MDE x mm``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks.errors import UserError
from eval.report.groups import GROUP_KEYS, describe, varying
from eval.convergence import CONVERGED
from eval.report.stats import ALPHA, detectable_d, holm, paired_p

METRIC = "pa_epe_mm"
TARGET_SHARE = 0.03          # the MDE a study aims for: 3 % of the baseline's mean
MAX_SEEDS = 1000             # seeds beyond this are reported as "more than"
KEYS = ("id", "statement", "source", "paper", "better", "than", "where", "than_where", "holds", "across")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    better: tuple[str, ...]
    than: tuple[str, ...]                # one method or several, each compared with every better one
    where: dict = field(default_factory=dict)
    than_where: dict = field(default_factory=dict)
    source: str = ""
    paper: str = ""
    holds: str = "all"
    across: tuple | None = None          # (key, first value, last value)

    def __post_init__(self):
        if isinstance(self.than, str):
            object.__setattr__(self, "than", (self.than,))


def read_claims(path: Path) -> list[Claim]:
    """The ``claims`` list of a sweep file; one line (``UserError``) for whatever is wrong."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"--claims {str(path)!r} cannot be read: {str(err).splitlines()[0]}") from None
    entries = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"--claims {str(path)!r} has no claims list (a top-level 'claims:' of mappings)")
    claims, seen = [], set()
    for i, entry in enumerate(entries):
        where = f"{path}: claims[{i}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where} is not a mapping")
        unknown = sorted(set(entry) - set(KEYS))
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; a claim has {', '.join(KEYS)}")
        for key in ("id", "statement", "better", "than"):
            if not entry.get(key):
                raise UserError(f"{where} needs {key!r}")
        if entry["id"] in seen:
            raise UserError(f"{where}: id {entry['id']!r} is used twice")
        seen.add(entry["id"])
        better = entry["better"] if isinstance(entry["better"], list) else [entry["better"]]
        holds = entry.get("holds", "all")
        if holds not in ("all", "any"):
            raise UserError(f"{where}: holds must be all or any (got {holds!r})")
        filters, elsewhere = entry.get("where") or {}, entry.get("than_where") or {}
        if not isinstance(filters, dict) or not isinstance(elsewhere, dict):
            raise UserError(f"{where}: where and than_where must be mappings of record fields to values")
        loose = sorted(set(elsewhere) - set(filters))
        if loose:
            raise UserError(f"{where}: than_where sets {', '.join(loose)} for the compared method; set "
                            f"{'it' if len(loose) == 1 else 'them'} in where too, for the better ones")
        across = entry.get("across")
        if across is not None:
            if (not isinstance(across, dict) or len(across) != 1
                    or not isinstance(next(iter(across.values())), list) or len(next(iter(across.values()))) != 2):
                raise UserError(f"{where}: across must be one key with two values, e.g. "
                                "{label_fraction: [0.1, 1.0]}")
            key, (first, last) = next(iter(across.items()))
            across = (key, first, last)
        claims.append(Claim(id=str(entry["id"]), statement=str(entry["statement"]),
                            better=tuple(str(b) for b in better),
                            than=tuple(str(t) for t in (entry["than"] if isinstance(entry["than"], list)
                                                        else [entry["than"]])),
                            where=dict(filters), than_where=dict(elsewhere), source=str(entry.get("source", "")),
                            paper=str(entry.get("paper", "")), holds=holds, across=across))
    return claims


def _matching(table: pd.DataFrame, where: dict) -> pd.DataFrame:
    keep = np.ones(len(table), dtype=bool)
    for key, value in where.items():
        if key not in table.columns:
            raise UserError(f"a claim reads records where {key}={value!r}, but records have no {key!r}")
        column = table[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and not pd.api.types.is_numeric_dtype(column):
            raise UserError(f"a claim reads records where {key}={value!r}, but {key} holds text "
                            f"(e.g. {column.iat[0]!r}); quote the value")
        keep &= np.isclose(column.astype(float), float(value)) if numeric else (column == value).to_numpy()
    return table[keep]


def _per_seed(rows: pd.DataFrame, method: str) -> pd.Series:
    return rows[rows["method"] == method].groupby("seed")[METRIC].mean()


def _effects(claim: Claim, table: pd.DataFrame) -> list[dict]:
    """One row per (method of ``better``, method of ``than``, setting): the per-seed effects in mm."""
    return [row for than in claim.than for row in _against(claim, than, table)]


def _against(claim: Claim, than: str, table: pd.DataFrame) -> list[dict]:
    """:func:`_effects` against one compared method ``than``."""
    rows = _matching(table, claim.where)
    rows = rows[rows["method"] != than]
    others = _matching(table, {**claim.where, **claim.than_where})
    rows = pd.concat([rows, others[others["method"] == than]])
    settings = [k for k in GROUP_KEYS if k != "method" and k not in claim.than_where
                and (claim.across is None or k != claim.across[0])]
    shown = varying(rows, settings) if len(rows) else []
    out = []
    for _, group in rows.groupby(settings, sort=False):
        if claim.across is not None:            # the two values compared, nothing between them
            key, first, last = claim.across
            group = pd.concat([_matching(group, {key: first}), _matching(group, {key: last})])
        for method in claim.better:
            if claim.across is None:
                gain = _per_seed(group, than) - _per_seed(group, method)
            else:
                key, first, last = claim.across
                at = {v: _matching(group, {key: v}) for v in (first, last)}
                gains = {v: _per_seed(at[v], than) - _per_seed(at[v], method) for v in (first, last)}
                gain = gains[first] - gains[last]
            gain = gain.dropna()            # a method without records keeps its row, with no pairs
            versus = than + "".join(f" ({describe(group[group['method'] == than], [k])})"
                                          for k in claim.than_where if (group["method"] == than).any())
            if claim.across is not None:
                versus += f", gain at {claim.across[0]} {claim.across[1]:g} minus at {claim.across[2]:g}" \
                    if isinstance(claim.across[1], (int, float)) else f", gain at {claim.across[1]} minus at {claim.across[2]}"
            both = group[group["method"].isin([method, than])]
            change = both["val_change"] if "val_change" in both.columns else pd.Series(dtype=float)
            out.append({"claim": claim.id, "comparison": f"{method} vs {versus}",
                        "converged": int((change.abs() < CONVERGED).sum()), "with_curve": int(change.notna().sum()),
                        "setting": describe(group, shown) or "all",
                        "than_mean": float(_per_seed(group, than).mean()),
                        "n": len(gain), "effect": float(gain.mean()) if len(gain) else math.nan,
                        "sd": float(gain.std(ddof=1)) if len(gain) >= 2 else math.nan,
                        "p": float(paired_p(gain.to_numpy()[:, None])[0]) if len(gain) else math.nan})
    return out


def seeds_for(sd: float, target: float, alpha: float) -> int | None:
    """The fewest seeds whose MDE (pooled ``sd``, at ``alpha``) is at most ``target``; None when
    more than ``MAX_SEEDS`` would be needed or the sd is unknown."""
    if not (np.isfinite(sd) and np.isfinite(target)) or target <= 0:
        return None
    n = 2
    while detectable_d(n, alpha) * sd > target:
        if n == MAX_SEEDS:
            return None
        n = min(n * 2 if n < 64 else n + 64, MAX_SEEDS)
    low = max(2, n // 2)                 # the smallest n between the last two tried
    while low < n and detectable_d(low, alpha) * sd > target:
        low += 1
    return low


def evaluate(claims: list[Claim], table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(comparisons, claims): one row per comparison with its Holm-adjusted p and whether it
    holds; one row per claim with its pooled sd, MDE at Holm's first step, the seeds for a 3 %
    MDE and its verdict."""
    rows = pd.DataFrame([r for c in claims for r in _effects(c, table)],
                        columns=["claim", "comparison", "converged", "with_curve", "setting", "than_mean",
                                 "n", "effect", "sd", "p"])
    rows["p_holm"] = holm(rows["p"].to_numpy(dtype=float)) if len(rows) else []
    m = max(1, int(rows["p"].notna().sum()))
    alpha = ALPHA / m
    significant = rows["p_holm"] < ALPHA
    rows["holds"] = np.where(rows["n"] < 2, "no pairs",
                             np.where(significant & (rows["effect"] > 0), "yes",
                                      np.where(significant & (rows["effect"] < 0), "contradicted",
                                               "not detectable")))
    summary = []
    for claim in claims:
        own = rows[rows["claim"] == claim.id]
        tested = own[own["n"] >= 2]
        pooled = float(np.sqrt(np.mean(tested["sd"] ** 2))) if len(tested) else math.nan
        n = int(tested["n"].min()) if len(tested) else 0
        mde = detectable_d(n, alpha) * pooled if n >= 2 else math.nan
        target = TARGET_SHARE * float(own["than_mean"].mean()) if len(own) else math.nan   # over its comparisons
        holds = list(own["holds"])
        if not holds:
            verdict = "no records"
        elif (claim.holds == "all" and all(h == "yes" for h in holds)) or \
                (claim.holds == "any" and any(h == "yes" for h in holds)):
            verdict = "supported"
        elif (claim.holds == "all" and "contradicted" in holds) or \
                (claim.holds == "any" and all(h == "contradicted" for h in holds)):
            verdict = "contradicted"
        else:
            verdict = f"not detectable at MDE {mde:.2f} mm" if np.isfinite(mde) else "not detectable"
        summary.append({"claim": claim.id, "statement": claim.statement, "source": claim.source,
                        "paper": claim.paper, "comparisons": len(own), "pairs": n,
                        "pooled_sd": pooled, "mde": mde, "target": target,
                        "seeds_for_target": seeds_for(pooled, target, alpha), "verdict": verdict})
    return rows, pd.DataFrame(summary)


def _signed(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:+.2f}"


def _num(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3f}"


def _p(value: float) -> str:
    return "–" if not np.isfinite(value) else "< 0.001" if value < 0.001 else f"{value:.3f}"


def markdown(rows: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The verdicts, then every comparison, as Markdown."""
    m = int(rows["p"].notna().sum())
    lines = ["| claim | statement | source | verdict | MDE (mm) | seeds for MDE ≤ 3 % | paper |",
             "|:---|:---|:---|:---|---:|---:|:---|"]
    for s in summary.itertuples():
        seeds = "–" if s.seeds_for_target is None or (isinstance(s.seeds_for_target, float)
                                                      and not np.isfinite(s.seeds_for_target)) \
            else str(int(s.seeds_for_target))
        lines.append(f"| {s.claim} | {s.statement} | {s.source} | {s.verdict} | {_num(s.mde)} | "
                     f"{seeds} | {s.paper} |")
    lines += ["", "| claim | comparison | setting | pairs | effect (mm) | sd (mm) | p | p (Holm) | holds "
              "| converged |",
              "|:---|:---|:---|---:|---:|---:|---:|---:|:---|---:|"]
    for r in rows.itertuples():
        converged = f"{r.converged} of {r.with_curve}" if r.with_curve else "–"
        lines.append(f"| {r.claim} | {r.comparison} | {r.setting} | {r.n} | {_signed(r.effect)} | "
                     f"{_num(r.sd)} | {_p(r.p)} | {_p(r.p_holm)} | {r.holds} | {converged} |")
    lines += ["", f"Effect: the improvement the claim states, in PA-EPE mm (the compared method's "
              f"error minus the claimed better one's, paired by seed; for an interaction, the gain "
              f"at the first value minus the gain at the last); positive goes the claim's way. "
              f"Two-sided paired t-tests, Holm's adjustment over the study's {m} comparisons; a "
              f"comparison holds at p (Holm) < {ALPHA:g}. MDE: the pooled sd of a claim's effects "
              f"at 80 % power and Holm's first step (α = {ALPHA:g}/{max(m, 1)}), for its fewest "
              f"pairs; seeds for MDE ≤ 3 %: of the compared method's mean PA-EPE, at that sd. "
              f"Converged: the runs of the comparison whose validation PA-EPE changed by less than "
              f"{CONVERGED:.0%} over their last quarter of fine-tuning (validation.convergence), of "
              f"those with a validation curve."]
    return "\n".join(lines) + "\n"
