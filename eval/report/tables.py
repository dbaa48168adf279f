"""The report's five tables, each written as Markdown, CSV and LaTeX.

A builder takes the group statistics (``stats.compare(...)`` output) and returns a
:class:`Table`: ``shown`` holds the formatted cells of the Markdown and LaTeX versions,
``data`` the numbers behind them for the CSV (one row per group, or per group and joint,
full precision; column names say the unit). Setting keys that take one value in a table
are stated once above it instead of as columns. A builder raises
``groups.NothingToShow`` when the records hold nothing for its table. A table holds the
groups of one pose head (``build`` splits the records by head).

The main table shows the 2D keypoint error and the no-image floor only where some group
has them (records without ``baselines`` or 2D metrics give the table they always gave); a
group whose mean PA-EPE is not below its floor carries :data:`FLOOR_MARK` in its PA-EPE cell.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.units import flops_text
from eval.report.groups import (BASELINES, FLOOR, SETTING_KEYS, NothingToShow, at_full_labels, describe,
                                fraction_label, match_order, not_below_floor, setting_line, sort_groups,
                                varying)
from eval.report.load import JOINTS, METRICS, PROBE_PREFIX, TRANSFER_PREFIX
from eval.report.stats import ALPHA, CONFIDENCE, POWER, holm

MISSING = "–"
HEADERS = {"data": "data", "profile": "profile", "budget": "budget", "match": "match",
           "label_fraction": "labels", "backbone": "backbone", "method": "method"}
PROBES = {"gesture_acc": "gesture accuracy", "viewpoint_err_deg": "viewpoint error (deg)",
          "rel_viewpoint_err_deg": "relative viewpoint error (deg)"}
STATS_NOTE = (f"Mean ± sample standard deviation (ddof=1) over seeds; {CONFIDENCE:.0%} CI: Student's t "
              f"interval of the mean, mean ± t({0.5 + CONFIDENCE / 2:g}, n−1)·s/√n.")
CHANGE_NOTE = (f"vs random / vs imagenet: relative change of the mean PA-EPE against that init in the "
               f"same setting (negative = lower error = better); * = two-sided paired t-test over the "
               f"seeds shared with that baseline, p < {ALPHA:g} after Holm's adjustment over every "
               f"comparison with that baseline in this table (raw p and p_holm in the CSV). A change "
               f"without * is not a finding; the CSV's _mde is the smallest paired difference each "
               f"comparison could detect ({POWER:.0%} power, α = {ALPHA:g}).")
COMPARISON = ("pct", "diff", "pairs", "p", "p_holm", "mde")
FLOOR_MARK = "†"
FLOOR_NAME = "canonical hand (no image)"
FLOOR_NOTE = (f"floor: PA-EPE (mm) of the no-image floor, one constant canonical hand (the Procrustes mean "
              f"of the fine-tuning poses) scored on the group's own evaluation set, mean over the group's "
              f"runs; {FLOOR_MARK} = the group's mean PA-EPE is not below its floor: it does not beat a "
              f"predictor that never looks at the image.")
NOTE_2D = ("2D EPE: mean end-point error of the 21 image keypoints in pixels of the network input, "
           "mean ± sd over seeds (as a fraction of the crop side in the CSV).")
COLUMNS_2D = ("epe_2d_px_mean", "epe_2d_px_std", "epe_2d_frac_mean", "epe_2d_frac_std", "auc_2d_mean",
              "auc_2d_std")
COLUMNS_FLOOR = (FLOOR, "floor_pa_auc_mean", "floor_epe_mm_mean", "one_point_pa_epe_mm_mean",
                 "not_below_floor")
CELL_FLOOR_NOTE = (f"{FLOOR_MARK} = the cell's mean PA-EPE is not below its no-image floor (one constant "
                   f"canonical hand, {FLOOR} in the CSV): it does not beat a predictor that ignores "
                   f"the image, and ranks nothing.")
LATEX = {"±": r"$\pm$", "–": "--", "·": r"$\cdot$", FLOOR_MARK: r"$^\dagger$"}


@dataclass(frozen=True)
class Table:
    """One table: formatted cells (``shown``), its numbers (``data``), and the text around it."""

    shown: pd.DataFrame
    data: pd.DataFrame
    setting: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    label_columns: int = 1          # leading columns that hold names, not numbers


def _num(value: float, digits: int) -> str:
    return MISSING if value is None or math.isnan(value) else f"{value:.{digits}f}"


def mean_std(mean: float, std: float, digits: int) -> str:
    """"7.12 ± 0.10"; the mean alone when the std is undefined (one seed)."""
    if math.isnan(mean):
        return MISSING
    return _num(mean, digits) if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def interval(low: float, high: float, digits: int) -> str:
    return MISSING if math.isnan(low) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def change(pct: float, p: float) -> str:
    """"-14.5%*": relative change with the significance marker (``p``: the Holm-adjusted
    p-value); empty without a baseline."""
    if math.isnan(pct):
        return ""
    return f"{pct:+.1f}%" + ("*" if p < ALPHA else "")


def with_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one table's groups) with ``<m>_vs_<b>_p_holm``: the raw p-values of the
    comparisons with baseline b on metric m, adjusted by Holm's method as one family."""
    out = frame.copy()
    for baseline in BASELINES:
        for metric in METRICS:
            column = f"{metric}_vs_{baseline}_p"
            if column in out.columns:
                out[f"{column}_holm"] = holm(out[column].to_numpy(dtype=float))
    return out


def _labels(groups: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The label columns of a shown table: the given setting keys, then method."""
    shown = pd.DataFrame({HEADERS[key]: groups[key] for key in keys})
    if "label_fraction" in keys:
        shown[HEADERS["label_fraction"]] = groups["label_fraction"].map(fraction_label)
    shown["method"] = groups["method"]
    return shown


def _data(groups: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    data = groups[[*SETTING_KEYS, "method", *columns]].copy()
    if "seeds" in data.columns:
        data["seeds"] = data["seeds"].map(lambda seeds: ";".join(map(str, seeds)))
    return data


def _has(frame: pd.DataFrame, column: str) -> bool:
    """Whether some group has a value in ``column`` (an optional score the records may lack)."""
    return column in frame.columns and bool(frame[column].notna().any())


def _floor_column(frame: pd.DataFrame) -> pd.Series | None:
    """The CSV's ``not_below_floor``: True/False per group, NaN for a group without a floor;
    None when no group has one."""
    return not_below_floor(frame).where(frame[FLOOR].notna()) if _has(frame, FLOOR) else None


def _pa_epe_cells(main: pd.DataFrame) -> list[str]:
    """Mean ± sd PA-EPE, with :data:`FLOOR_MARK` where the group does not beat its floor."""
    marked = not_below_floor(main)
    return [mean_std(m, s, 2) + (f" {FLOOR_MARK}" if mark else "")
            for m, s, mark in zip(main["pa_epe_mm_mean"], main["pa_epe_mm_std"], marked)]


def main_table(groups: pd.DataFrame) -> Table:
    """Table 1: method x backbone -> PA-EPE, PA-AUC, EPE, AUC, compute, change vs baselines;
    the no-image floor and the 2D error (px) where the records have them."""
    main = with_holm(sort_groups(at_full_labels(groups)))
    has_floor, has_2d = _has(main, FLOOR), _has(main, "epe_2d_px_mean")
    keys = [k for k in varying(main) if k != "backbone"] + ["backbone"]
    shown = _labels(main, keys)
    shown["PA-EPE (mm)"] = _pa_epe_cells(main)
    shown[f"PA-EPE {CONFIDENCE:.0%} CI (t)"] = [interval(lo, hi, 2) for lo, hi in
                                           zip(main["pa_epe_mm_ci_low"], main["pa_epe_mm_ci_high"])]
    if has_floor:
        shown["floor PA-EPE (mm)"] = [_num(v, 2) for v in main[FLOOR]]
    shown["PA-AUC"] = [mean_std(m, s, 3) for m, s in zip(main["pa_auc_mean"], main["pa_auc_std"])]
    shown["EPE (mm)"] = [mean_std(m, s, 2) for m, s in zip(main["epe_mm_mean"], main["epe_mm_std"])]
    shown["AUC"] = [mean_std(m, s, 3) for m, s in zip(main["auc_mean"], main["auc_std"])]
    if has_2d:
        shown["2D EPE (px)"] = [mean_std(m, s, 2) for m, s in
                                zip(main["epe_2d_px_mean"], main["epe_2d_px_std"])]
    shown["n"] = main["n"].astype(str)
    shown["compute"] = [flops_text(f) + (" + ext." if isinstance(ext, str) else "")
                        for f, ext in zip(main["total_flops_mean"], main["external_pretrain"])]
    for baseline in BASELINES:
        changes = zip(main[f"pa_epe_mm_vs_{baseline}_pct"], main[f"pa_epe_mm_vs_{baseline}_p_holm"])
        shown[f"vs {baseline}"] = [change(pct, p) for pct, p in changes]
    columns = ["n", "seeds"]
    for metric in METRICS:
        columns += [f"{metric}_{s}" for s in ("mean", "std", "ci_low", "ci_high")]
    if has_2d:
        columns += COLUMNS_2D
    if has_floor:
        columns += COLUMNS_FLOOR
    columns += ["pretrain_flops_mean", "finetune_flops_mean", "total_flops_mean", "wall_s_mean",
                "external_pretrain"]
    for baseline in BASELINES:
        for metric in METRICS:
            columns += [f"{metric}_vs_{baseline}_{s}" for s in COMPARISON]
    externals = sorted(set(main["external_pretrain"].dropna()))
    notes = [STATS_NOTE, CHANGE_NOTE,
             "compute: FLOPs spent on pre-training + fine-tuning, mean over seeds."]
    if has_floor:
        notes.append(FLOOR_NOTE)
    if has_2d:
        notes.append(NOTE_2D)
    if externals:
        notes.append(f"ext.: the backbone started from external pre-training ({'; '.join(externals)}) "
                     "whose compute is not counted.")
    data = _data(main.assign(not_below_floor=_floor_column(main)), columns)
    return Table(shown, data, setting_line(main, [k for k in SETTING_KEYS if k != "backbone"]),
                 tuple(notes), len(keys) + 1)


def floor_sentence(main: Table) -> str:
    """One sentence on the no-image floor of Table 1 and the groups that do not beat it;
    empty where no group has a floor. The floor in mm PA-EPE, one value, or the range
    where the groups' evaluation sets differ."""
    data = main.data
    if not _has(data, FLOOR):
        return ""
    low, high = (_num(v, 2) for v in (data[FLOOR].min(), data[FLOOR].max()))
    value = (f"{low} mm PA-EPE on this evaluation set" if low == high
             else f"{low}–{high} mm PA-EPE on these evaluation sets (per group in Table 1's floor column)")
    failing = data[not_below_floor(data)]
    keys = varying(data)
    names = [failing["method"].iat[i] + (f" ({describe(failing, keys, i)})" if keys else "")
             for i in range(len(failing))]
    verdict = (f"groups marked {FLOOR_MARK} in Table 1 do not beat it: {', '.join(names)}." if names
               else "every group in Table 1 beats it.")
    return f"The no-image floor, a constant canonical hand, scores {value}; {verdict}"


def detect_sentence(main: Table, baseline: str = "random") -> str:
    """What Table 1 can and cannot tell against ``baseline``: the smallest PA-EPE difference its
    comparisons could detect, and which differences are findings (Holm-adjusted p < ALPHA);
    empty where no group was compared with that baseline."""
    data = main.data
    column = f"pa_epe_mm_vs_{baseline}_mde"
    if column not in data.columns or data[column].notna().sum() == 0:
        return ""
    compared = data[data[column].notna()]
    mde = compared[column]
    seeds = sorted({int(k) for k in compared[f"pa_epe_mm_vs_{baseline}_pairs"]})
    pct = compared[f"pa_epe_mm_vs_{baseline}_pct"]
    base = compared["pa_epe_mm_mean"] * 100 / (100 + pct)           # each comparison's baseline mean
    worst = (mde / base).max()
    share = f" (up to {100 * worst:.1f}% of {baseline}'s mean PA-EPE)" if np.isfinite(worst) else ""
    spread = (f"; per comparison {mde.min():.2f}–{mde.max():.2f} mm" if len(mde) > 1 else "")
    text = (f"With {'–'.join(map(str, seeds))} seeds this study can detect PA-EPE differences against "
            f"{baseline} of ≥ {mde.max():.2f} mm{share}{spread} ({POWER:.0%} power, α = {ALPHA:g} "
            f"two-sided, from each comparison's spread of paired differences).")
    keys = varying(data)
    found = compared[compared[f"pa_epe_mm_vs_{baseline}_p_holm"] < ALPHA]
    names = [f"{found['method'].iat[i]}" + (f" ({describe(found, keys, i)})" if keys else "")
             + f" {found[f'pa_epe_mm_vs_{baseline}_diff'].iat[i]:+.2f} mm" for i in range(len(found))]
    if names:
        text += (f" Differences against {baseline} that are findings (Holm-adjusted p < {ALPHA:g}): "
                 f"{', '.join(names)}; every other difference in Table 1 is not.")
    else:
        text += f" No difference against {baseline} in Table 1 is significant after Holm's adjustment: none is a finding."
    return text


def label_efficiency_table(groups: pd.DataFrame) -> Table:
    """Table 2: PA-EPE per method (rows) and label fraction (columns)."""
    if groups["label_fraction"].nunique() < 2:
        raise NothingToShow("every record was fine-tuned with the same label fraction")
    ordered = with_holm(sort_groups(groups))
    keys = [k for k in varying(ordered) if k != "label_fraction"]
    rows = ordered.drop_duplicates([*keys, "method"])[[*keys, "method"]].reset_index(drop=True)
    shown = _labels(rows, keys)
    for fraction in sorted(ordered["label_fraction"].unique()):
        cells = ordered[ordered["label_fraction"] == fraction]
        cells = rows.merge(cells, on=[*keys, "method"], how="left")
        shown[f"PA-EPE (mm), {fraction_label(fraction)} labels"] = _pa_epe_cells(cells)
    columns = ["n", "seeds", "pa_epe_mm_mean", "pa_epe_mm_std", "pa_epe_mm_ci_low",
               "pa_epe_mm_ci_high", *(f"pa_epe_mm_vs_random_{s}" for s in COMPARISON)]
    if (marks := _floor_column(ordered)) is not None:
        ordered = ordered.assign(not_below_floor=marks)
        columns += [FLOOR, "not_below_floor"]
    notes = [STATS_NOTE, "Labels: the fraction of the labelled training set used for fine-tuning; "
             "n per cell in the CSV."]
    if bool(not_below_floor(ordered).any()):
        notes.append(CELL_FLOOR_NOTE)
    setting = setting_line(ordered, [k for k in SETTING_KEYS if k != "label_fraction"])
    return Table(shown, _data(ordered, columns), setting, tuple(notes), len(keys) + 1)


def protocol_table(groups: pd.DataFrame) -> Table:
    """Table 3: PA-EPE and change vs random under match=pretrain and match=total, side by side."""
    main = with_holm(sort_groups(at_full_labels(groups)))
    if main["match"].nunique() < 2:
        raise NothingToShow(f"every record used the same protocol (match={main['match'].iat[0]})")
    keys = [k for k in varying(main) if k != "match"]
    rows = main.drop_duplicates([*keys, "method"])[[*keys, "method"]].reset_index(drop=True)
    shown = _labels(rows, keys)
    for match in match_order(main["match"]):
        cells = rows.merge(main[main["match"] == match], on=[*keys, "method"], how="left")
        shown[f"PA-EPE (mm), match={match}"] = _pa_epe_cells(cells)
        changes = zip(cells["pa_epe_mm_vs_random_pct"], cells["pa_epe_mm_vs_random_p_holm"])
        shown[f"vs random, match={match}"] = [change(pct, p) for pct, p in changes]
    data = _data(main, ["n", "seeds", "pa_epe_mm_mean", "pa_epe_mm_std", "pa_epe_mm_ci_low",
                        "pa_epe_mm_ci_high", "total_flops_mean",
                        *(f"pa_epe_mm_vs_random_{s}" for s in COMPARISON)])
    notes = (STATS_NOTE, CHANGE_NOTE.replace("vs random / vs imagenet", "vs random"),
             "match=pretrain: every method gets the same pre-training compute and the same fine-tuning; "
             "match=total: the same pre-training + fine-tuning compute, so an init without "
             "pre-training fine-tunes longer.") + ((CELL_FLOOR_NOTE,) if bool(not_below_floor(main).any()) else ())
    setting = setting_line(main, [k for k in SETTING_KEYS if k != "match"])
    return Table(shown, data, setting, notes, len(keys) + 1)


def probe_table(groups: pd.DataFrame) -> Table:
    """Table 4: probe results (gesture accuracy, viewpoint errors) of the groups that have them,
    at full labels (probes read the pre-trained backbone, so label fractions repeat them)."""
    probes = sorted(c[:-len("_mean")] for c in groups.columns
                    if c.startswith(PROBE_PREFIX) and c.endswith("_mean"))
    if not probes:
        raise NothingToShow("no record has probe results")
    with_probes = sort_groups(at_full_labels(groups[groups[[f"{p}_n" for p in probes]].sum(axis=1) > 0]))
    keys = varying(with_probes)
    shown = _labels(with_probes, keys)
    columns = ["n", "seeds"]
    for probe in probes:
        name = probe[len(PROBE_PREFIX):]
        digits = 2 if name.endswith("_deg") else 3
        shown[PROBES.get(name, name)] = [mean_std(m, s, digits) for m, s in
                                         zip(with_probes[f"{probe}_mean"], with_probes[f"{probe}_std"])]
        columns += [f"{probe}_{s}" for s in ("mean", "std", "n")]
    notes = (STATS_NOTE, "Probes are fitted on the pre-trained backbone's features; viewpoint errors "
             "in degrees (lower is better), accuracy as recorded (higher is better).")
    return Table(shown, _data(with_probes, columns), setting_line(with_probes), notes, len(keys) + 1)


def per_joint_table(groups: pd.DataFrame) -> Table:
    """Table 5: aligned (PA) error of each joint (columns, FreiHAND order) per group (rows)."""
    main = sort_groups(at_full_labels(groups))
    keys = varying(main)
    means = np.stack(main["per_joint_pa_epe_mm_mean"].to_list())          # (groups, joints)
    stds = np.stack(main["per_joint_pa_epe_mm_std"].to_list())
    shown = _labels(main, keys)
    for j, joint in enumerate(JOINTS):
        shown[joint] = [_num(v, 2) for v in means[:, j]]
    shown["mean"] = [_num(v, 2) for v in means.mean(axis=1)]
    data = main.loc[main.index.repeat(len(JOINTS)), [*SETTING_KEYS, "method", "n"]].reset_index(drop=True)
    data["joint_index"] = np.tile(np.arange(len(JOINTS)), len(main))
    data["joint"] = np.tile(np.array(JOINTS), len(main))
    data["pa_epe_mm_mean"] = means.ravel()
    data["pa_epe_mm_std"] = stds.ravel()
    notes = ("PA-EPE (mm) per joint after per-sample Procrustes alignment, mean over seeds "
             "(standard deviations in the CSV, one row per group and joint); joints in FreiHAND "
             "order: wrist, then thumb CMC, MCP, IP, tip and each finger's MCP, PIP, DIP, tip.",)
    return Table(shown, data, setting_line(main), notes, len(keys) + 1)


PRETEXT = "pretext_"


def _objective(method: str) -> str:
    """The logged scalar a registered method's table row shows (``Method.objective``)."""
    import methods

    return methods.get(method).objective if method in methods.names() else "loss"


def _change(start: float, end: float) -> str:
    """A relative change where both ends are positive (a loss), else the difference (BYOL's
    negative cosine runs from 0 towards -1, where a ratio means nothing)."""
    if not (np.isfinite(start) and np.isfinite(end)):
        return MISSING
    if start > 0 and end > 0:
        return f"{100 * (end / start - 1):+.0f} %"
    return f"{end - start:+.3f}"


def _verdicts(share: float, n: float) -> str:
    """How many of the ``n`` seeds with a verdict learned (``share`` of them)."""
    if not (np.isfinite(share) and n > 0):
        return MISSING
    learned = round(share * n)
    return "yes" if learned == n else "no" if learned == 0 else f"{learned} of {int(n)}"


def pretraining_table(groups: pd.DataFrame) -> Table:
    """Table 6: each pre-training's own objective on held-out frames, before its first step
    and after its last, beside its chance level and collapse indicators: whether it learned
    its task at all, before its fine-tuned score is read as that task's effect."""
    if f"{PRETEXT}start_mean" not in groups.columns:
        raise NothingToShow("no record measured its pre-training on held-out frames")
    held = groups[groups[f"{PRETEXT}start_n"] > 0]
    held = sort_groups(held.drop_duplicates([k for k in held.columns
                                             if k in (*SETTING_KEYS, "method", "backbone")
                                             and k != "label_fraction"]))
    keys = [k for k in varying(held) if k != "label_fraction"]
    shown = _labels(held, keys)
    shown["objective"] = [_objective(m) for m in held["method"]]
    columns = ["n", "seeds"]
    for name, title in (("start", "start"), ("end", "end"), ("chance", "chance level"),
                        ("baseline", "image-blind"), ("embedding_std", "embedding std (end)"),
                        ("teacher_entropy", "teacher entropy (end, nats)")):
        col = f"{PRETEXT}{name}"
        if f"{col}_mean" not in held.columns:
            continue
        shown[title] = [MISSING if not np.isfinite(m) else mean_std(m, s, 3) if np.isfinite(s)
                        else _num(m, 3) for m, s in zip(held[f"{col}_mean"], held[f"{col}_std"])]
        columns += [f"{col}_{x}" for x in ("mean", "std", "n")]
    shown["change"] = [_change(a, b) for a, b in zip(held[f"{PRETEXT}start_mean"],
                                                      held[f"{PRETEXT}end_mean"])]
    if f"{PRETEXT}learned_mean" in held.columns:
        shown["learned"] = [_verdicts(m, n) for m, n in zip(held[f"{PRETEXT}learned_mean"],
                                                             held[f"{PRETEXT}learned_n"])]
        columns += [f"{PRETEXT}learned_{x}" for x in ("mean", "n")]
    notes = ("Each method's own objective (the loss, or for DINO the cross-entropy less the "
             "teacher's entropy) on held-out frames the pre-training never saw (synthetic frames "
             "of another world seed, the triplets' test split), with the same views at both "
             "ends; mean ± sd over seeds. Chance level: the objective of embeddings that carry "
             "no information (NT-Xent: log(2B−1); MAE: 1, predicting the patch mean), where the "
             "method states one. Embedding std: the per-dimension std of the L2-normalised "
             "projections × √dim (about 1 when spread, 0 when collapsed; Chen and He 2021). "
             "Teacher entropy: of DINO's mean teacher output, log(K) when uniform, 0 when one-hot.",
             "Change: relative where both ends are positive, else the difference. A loss that does "
             "not fall, or ends at its chance level, means the pre-training did "
             "not learn its task at this budget: its fine-tuned score then measures a warm start, "
             "not the method.",
             "Image-blind: the objective of a predictor that ignores the image on the same views "
             "(supervised2d: one 2D pose, each coordinate's median). Learned: the seeds whose "
             "record says pretraining.learned, by the method's criterion (pretraining.criterion; "
             "by default the objective ends below its start and 5 % below the image-blind "
             "score, else chance, else its start, with embedding std ≥ 0.2 where logged).")
    return Table(shown, _data(held, columns), setting_line(held), notes, len(keys) + 1)


def transfer_table(groups: pd.DataFrame) -> Table:
    """Table 7: generalisation: each group (fine-tuned on its ``data``, a row) scored on the
    other sets of ``eval.also`` (columns) without training on them, beside each set's floor."""
    sets = sorted(c[len(TRANSFER_PREFIX):-len("_pa_epe_mm_mean")] for c in groups.columns
                  if c.startswith(TRANSFER_PREFIX) and c.endswith("_pa_epe_mm_mean")
                  and not c.endswith("_floor_pa_epe_mm_mean"))
    if not sets:
        raise NothingToShow("no record was scored on another data set (eval.also)")
    scored = groups[groups[[f"{TRANSFER_PREFIX}{x}_pa_epe_mm_n" for x in sets]].sum(axis=1) > 0]
    scored = sort_groups(scored)
    keys = sorted(set(varying(scored)) | {"data"}, key=list(HEADERS).index)
    shown = _labels(scored, keys)
    shown = shown.rename(columns={HEADERS["data"]: "fine-tuned on"})
    columns = ["n", "seeds"]
    for x in sets:
        col, floor = f"{TRANSFER_PREFIX}{x}_pa_epe_mm", f"{TRANSFER_PREFIX}{x}_floor_pa_epe_mm"
        shown[f"{x} PA-EPE mm"] = [MISSING if not np.isfinite(m) else mean_std(m, sd, 2)
                                   if np.isfinite(sd) else _num(m, 2)
                                   for m, sd in zip(scored[f"{col}_mean"], scored[f"{col}_std"])]
        shown[f"{x} floor"] = [MISSING if not np.isfinite(m) else _num(m, 2)
                               for m in scored[f"{floor}_mean"]]
        columns += [f"{col}_{k}" for k in ("mean", "std", "n")] + [f"{floor}_mean"]
    notes = (STATS_NOTE, "Rows: the set fine-tuned on; columns: the set scored on, without "
             "training on it (eval.also), its scored split in full. Floor: the constant canonical "
             "hand of the fine-tuning labels, scored on the same samples; a score near its floor "
             "did not transfer.")
    return Table(shown, _data(scored, columns), setting_line(scored), notes, len(keys) + 1)


def markdown(table: Table) -> str:
    """The table as a GitHub Markdown pipe table (label columns left, numbers right-aligned)."""
    def cell(text: object) -> str:
        return str(text).replace("|", r"\|")

    columns = list(table.shown.columns)
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join(":---" if i < table.label_columns else "---:" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in table.shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(ch, ch) for ch in text)


def latex(table: Table, title: str, label: str) -> str:
    """The table as a LaTeX ``table`` float (booktabs rules; needs ``\\usepackage{booktabs}``)."""
    caption = " ".join(latex_escape(part if part.endswith(".") else part + ".")
                       for part in (title, table.setting, *table.notes) if part)
    styler = table.shown.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    text = styler.to_latex(caption=caption, label=label, hrules=True, position_float="centering",
                           column_format="l" * table.label_columns
                           + "r" * (table.shown.shape[1] - table.label_columns))
    for symbol, command in LATEX.items():
        text = text.replace(symbol, command)
    return text


def write(table: Table, directory: Path, stem: str, title: str) -> list[Path]:
    """Write ``<stem>.md``, ``.csv`` and ``.tex`` into ``directory``; returns their paths."""
    header = [f"# {title}", ""] + ([table.setting, ""] if table.setting else [])
    md = "\n".join(header) + "\n" + markdown(table) + "\n" + "\n\n".join(table.notes) + "\n"
    paths = [directory / f"{stem}.{ext}" for ext in ("md", "csv", "tex")]
    paths[0].write_text(md, encoding="utf-8")
    table.data.to_csv(paths[1], index=False, lineterminator="\n")
    paths[2].write_text(latex(table, title, f"tab:{stem}"), encoding="utf-8")
    return paths
