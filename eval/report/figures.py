"""The report's figures, drawn on matplotlib's object API in seaborn's look, saved as PNG and PDF.

Every figure uses one method order (``groups.method_order``) and one colour per method
(:func:`method_colours`). A figure shows the headline slice of the records
(``groups.headline``: full labels, the largest budget, the default protocol), except along
the setting it plots (label fraction in Figure 3; budget and protocol in Figure 5); the
tables hold every setting. Where the shown groups still differ in a setting (e.g. two
backbones), the figure draws one panel per value. The title states the shared setting.
Figures are built
on ``matplotlib.figure.Figure`` (no pyplot, no global backend or style change); build and
save them inside :func:`style`. The look is seaborn's (its white-grid style at the notebook
context scaled by 0.8, its colour-blind palette), written out here as ``STYLE`` and
``COLOURBLIND``: importing seaborn costs 2 s (it pulls in pyplot and ``scipy.stats``), more
than half of a report's start-up, for a dictionary and ten colours. The tests hold both equal
to seaborn's. Saved files carry no timestamps or version strings, so
identical records give identical bytes. A builder raises ``groups.NothingToShow`` when
the records hold nothing for its figure. A figure shows the groups of one pose head
(``build`` splits the records by head).

Figures 1 and 4 draw the no-image floor (the constant canonical hand's PA-EPE on the
evaluation set, mean over the panel's groups, which share that set) as a dashed horizontal
line, and Figure 1 marks each method that does not beat its floor with ``tables.FLOOR_MARK``
after its name. Where no record has the floor (``baselines``), nothing of it is drawn.
"""
from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from eval.report.groups import (FLOOR, GROUP_KEYS, SETTING_KEYS, NothingToShow, describe, fraction_label,
                                headline, match_order, method_order, not_below_floor, setting_line,
                                sort_groups, varying)
from benchmarks.units import flops_text
from eval.report.tables import FLOOR_MARK, FLOOR_NAME
from methods import MODULES

DPI = 150
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
PANEL_INCHES = (4.2, 3.3)
LEGEND_INCHES = 1.8
MIN_WIDTH_INCHES = 7.0
CHARS_PER_INCH = 11             # title characters per inch of figure width, at the titles' font size
MAX_COLUMNS = 3
STYLE = {          # seaborn.axes_style("whitegrid") | seaborn.plotting_context("notebook", font_scale=0.8)
    "axes.axisbelow": True, "axes.edgecolor": ".8", "axes.grid": True, "axes.labelcolor": ".15",
    "axes.labelsize": 9.6, "axes.linewidth": 1.25, "axes.titlesize": 9.6,
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "font.size": 9.6, "grid.color": ".8", "grid.linewidth": 1.0, "legend.fontsize": 8.8,
    "legend.title_fontsize": 9.6, "lines.solid_capstyle": "round", "patch.edgecolor": "w",
    "patch.force_edgecolor": True, "text.color": ".15", "xtick.bottom": False, "xtick.color": ".15",
    "xtick.labelsize": 8.8, "xtick.major.size": 6.0, "xtick.major.width": 1.25, "xtick.minor.size": 4.0,
    "xtick.minor.width": 1.0, "ytick.color": ".15", "ytick.labelsize": 8.8, "ytick.left": False,
    "ytick.major.size": 6.0, "ytick.major.width": 1.25, "ytick.minor.size": 4.0, "ytick.minor.width": 1.0,
}
COLOURBLIND = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",       # seaborn.color_palette(
               "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9")       # "colorblind", 10)
BASELINE_COLOURS = {"random": (0.6, 0.6, 0.6), "imagenet": (0.15, 0.15, 0.15)}
MATCH_STYLES = {"pretrain": "-o", "total": "--s"}          # matplotlib fmt: line style and marker
PA_EPE_LABEL = "PA-EPE (mm), lower is better"
FLOOR_STYLE = {"color": (0.35, 0.35, 0.35), "linestyle": "--", "linewidth": 1.0}


def method_colours(methods: Iterable[str]) -> dict[str, tuple[float, float, float]]:
    """Method -> RGB, in method order: grey and black for the random and ImageNet inits, then
    seaborn's colour-blind palette (without its grey) in registry order, then hues evenly
    spaced around the HSV circle for the rest of the registry, so a registry method keeps its
    colour whatever else is present; methods outside the registry follow alphabetically, on
    darker hues between those."""
    ordered = method_order(methods)
    registry = [m for m in MODULES if m not in BASELINE_COLOURS]
    outside = [m for m in ordered if m not in MODULES and m not in BASELINE_COLOURS]
    palette = [matplotlib.colors.to_rgb(c) for i, c in enumerate(COLOURBLIND) if i != 7]
    palette += _hues(len(registry) - len(palette), 0.85)
    palette = palette[:len(registry)] + _hues(len(outside), 0.55)
    colours = {**BASELINE_COLOURS, **dict(zip(registry + outside, palette))}
    return {m: colours[m] for m in ordered}


def _hues(count: int, value: float) -> list[tuple[float, float, float]]:
    """``count`` colours at evenly spaced hues (the first half a step from red), saturation 0.6."""
    return [tuple(float(c) for c in matplotlib.colors.hsv_to_rgb(((i + 0.5) / count, 0.6, value)))
            for i in range(max(count, 0))]


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Seaborn's white-grid style and readable font sizes (``STYLE``), for the figures built inside."""
    with matplotlib.rc_context(STYLE):
        yield


def save(fig: Figure, directory: Path, stem: str) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` with byte-stable metadata; returns their paths.

    Each file is drawn once. ``savefig`` on a figure with a layout engine first draws the
    whole figure unrendered, to lay it out, and then draws it again; here the engine lays
    the figure out once, at the PNG's resolution, and is switched off before either file is
    drawn. The bytes are those of matplotlib's own path, ``savefig`` with the engine on for
    the PNG and the layout kept for the PDF (a test compares them).
    """
    png, pdf = directory / f"{stem}.png", directory / f"{stem}.pdf"
    fig.set_dpi(DPI)
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
        with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
            fig.set_layout_engine(None)     # None with these two off: no engine, so no layout draw
    fig.savefig(png, dpi=DPI, metadata=PNG_METADATA)
    fig.savefig(pdf, metadata=PDF_METADATA)
    return [png, pdf]


def _panels(frame: pd.DataFrame, exclude: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per combination of the settings that vary in ``frame`` and are not excluded."""
    frame = sort_groups(frame)
    keys = [k for k in varying(frame) if k not in exclude]
    if not keys:
        return [("", frame)]
    return [(describe(rows, keys), rows.reset_index(drop=True))
            for _, rows in frame.groupby(keys, sort=False)]


def wrap_phrases(text: str, width: int, separators: Sequence[str] = ("; ", " · ")) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken only between its phrases (the
    parts between ``separators``, which end the line they close); a phrase longer than a line
    is broken between words, and a word longer than a line stands whole on its own line
    (never split, so its closing separator stays attached)."""
    parts = [text]
    for sep in separators:
        split = []
        for part in parts:
            chunks = part.split(sep)
            split += [c + sep.rstrip() for c in chunks[:-1]] + chunks[-1:]
        parts = split
    lines: list[str] = []
    for phrase in parts:
        if lines and len(lines[-1]) + 1 + len(phrase) <= width:
            lines[-1] += " " + phrase
        elif len(phrase) <= width:
            lines.append(phrase)
        else:
            lines += textwrap.wrap(phrase, width, break_long_words=False, break_on_hyphens=False)
    return lines


def _title(fig: Figure, title: str, shown: pd.DataFrame) -> None:
    """The figure's claim, and below it the setting every panel shares, wrapped to the figure
    between phrases, never inside one."""
    width = int(fig.get_figwidth() * CHARS_PER_INCH)
    setting = setting_line(shown, SETTING_KEYS)
    fig.suptitle("\n".join([*wrap_phrases(title, width), *wrap_phrases(setting, width)]),
                 fontsize="medium")


def _interval_words(shown: pd.DataFrame) -> str:
    """What the error bars are: a 95% t-interval over seeds, or, where no group has two
    seeds, nothing an interval could be drawn from."""
    if (shown["n"] >= 2).any():
        return "mean and 95% t-interval over seeds"
    return "one seed per group: no interval"


def dodge(x: Sequence[float], index: int, count: int, decades: float = 0.12) -> list[float]:
    """``x`` moved for the ``index``-th of ``count`` series on a log axis, so that series at
    one x stand side by side: spread over ``decades`` (a factor of 10**decades) in all."""
    if count < 2:
        return list(x)
    offset = (index - (count - 1) / 2) * decades / (count - 1)
    return [v * 10 ** offset for v in x]


def _grid(n_panels: int, title: str, shown: pd.DataFrame) -> tuple[Figure, list[Axes]]:
    columns = min(n_panels, MAX_COLUMNS)
    rows = math.ceil(n_panels / columns)
    fig = Figure(figsize=(max(columns * PANEL_INCHES[0] + LEGEND_INCHES, MIN_WIDTH_INCHES),
                          rows * PANEL_INCHES[1] + 0.7), layout="constrained")
    axes = list(fig.subplots(rows, columns, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.remove()
    _title(fig, title, shown)
    return fig, axes[:n_panels]


def _method_legend(fig: Figure, colours: dict[str, tuple], extra: Sequence[Line2D] = ()) -> None:
    handles = [Line2D([], [], color=c, marker="o", label=m) for m, c in colours.items()]
    fig.legend(handles=[*handles, *extra], loc="outside right center", frameon=False, title="method")


def _floor_line(ax: Axes, rows: pd.DataFrame) -> bool:
    """Draw the no-image floor of the panel's groups (mean of their floors, mm) as a dashed
    horizontal line; False, drawing nothing, where none of them has a floor."""
    floors = rows[FLOOR].dropna() if FLOOR in rows.columns else pd.Series(dtype=float)
    if floors.empty:
        return False
    ax.axhline(floors.mean(), zorder=1, **FLOOR_STYLE)
    return True


def _floor_handle() -> Line2D:
    """The floor line's legend entry."""
    return Line2D([], [], label=FLOOR_NAME, **FLOOR_STYLE)


def _interval_bars(ax: Axes, x: Sequence[float], rows: pd.DataFrame, colour: tuple, fmt: str) -> None:
    """Mean PA-EPE with its t-interval as error bars (a bare marker where n < 2)."""
    mean = rows["pa_epe_mm_mean"].to_numpy()
    low = np.nan_to_num(mean - rows["pa_epe_mm_ci_low"].to_numpy())
    high = np.nan_to_num(rows["pa_epe_mm_ci_high"].to_numpy() - mean)
    ax.errorbar(x, mean, yerr=np.stack([low, high]), fmt=fmt, color=colour, capsize=3, markersize=5, zorder=3)


def pa_epe_per_method(groups: pd.DataFrame, runs: pd.DataFrame) -> Figure:
    """Figure 1: PA-EPE per method with 95% t-intervals, single seeds as dots beside them; the
    no-image floor as a dashed line, and a mark after each method that does not beat it."""
    main = headline(groups)
    colours = method_colours(main["method"])
    panels = _panels(main, exclude=("method",))
    fig, axes = _grid(len(panels), f"PA-EPE per method: {_interval_words(main)}; "
                                   "small dots: single seeds", main)
    floors = False
    for ax, (title, rows) in zip(axes, panels):
        methods = list(rows["method"])
        seeds = runs.merge(rows[list(GROUP_KEYS)], on=list(GROUP_KEYS))
        for i, method in enumerate(methods):
            values = seeds.loc[seeds["method"] == method, "pa_epe_mm"].to_numpy()
            ax.scatter(np.full(len(values), i + 0.15), values, s=12, color=colours[method], alpha=0.6,
                       linewidths=0, zorder=2)
            _interval_bars(ax, [i], rows[rows["method"] == method], colours[method], "o")
        floors = _floor_line(ax, rows) or floors
        names = [m + (f" {FLOOR_MARK}" if mark else "") for m, mark in zip(methods, not_below_floor(rows))]
        ax.set_xticks(range(len(methods)), names, rotation=35, ha="right")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set(xlabel="", ylabel=PA_EPE_LABEL, title=title)
    if floors:
        note = Line2D([], [], linestyle="none", label=f"{FLOOR_MARK}: mean not below it")
        fig.legend(handles=[_floor_handle(), note], loc="outside right center", frameon=False)
    return fig


def pck_curves(groups: pd.DataFrame) -> Figure:
    """Figure 2: 3D PCK curves, aligned and unaligned, mean over seeds, AUC in the legend."""
    main = headline(groups)
    colours = method_colours(main["method"])
    panels = _panels(main, exclude=("method",))
    fig = Figure(figsize=(2 * PANEL_INCHES[0] + 0.4, len(panels) * PANEL_INCHES[1] + 0.7),
                 layout="constrained")
    axes = fig.subplots(len(panels), 2, squeeze=False)
    low, high = main["pck_thresholds_mm"].iat[0][0], main["pck_thresholds_mm"].iat[0][-1]
    _title(fig, "3D PCK against error threshold, mean over seeds; "
                f"AUC over {low:g}-{high:g} mm in the legend", main)
    views = (("pa_pck_mean", "pa_auc_mean", "aligned (Procrustes)"), ("pck_mean", "auc_mean", "unaligned"))
    for row_axes, (title, rows) in zip(axes, panels):
        for ax, (curve, auc, view) in zip(row_axes, views):
            for i, method in enumerate(rows["method"]):
                ax.plot(rows["pck_thresholds_mm"].iat[i], rows[curve].iat[i], color=colours[method],
                        label=f"{method} (AUC {rows[auc].iat[i]:.3f})")
            ax.set(xlabel="error threshold (mm)", ylabel="3D PCK (fraction of keypoints)", ylim=(0, 1.01),
                   xlim=(low, high), title=view + (f" · {title}" if title else ""))
            ax.legend(loc="lower right", fontsize="small")
    return fig


def label_efficiency(groups: pd.DataFrame) -> Figure:
    """Figure 3: PA-EPE against the fraction of labelled data used for fine-tuning."""
    shown = headline(groups, keep=("label_fraction",))
    if shown["label_fraction"].nunique() < 2:
        raise NothingToShow("every record was fine-tuned with the same label fraction")
    colours = method_colours(shown["method"])
    panels = _panels(shown, exclude=("method", "label_fraction"))
    fig, axes = _grid(len(panels), f"PA-EPE against labelled data: {_interval_words(shown)}; "
                                   "methods side by side at each fraction", shown)
    fractions = sorted(shown["label_fraction"].unique())
    for ax, (title, rows) in zip(axes, panels):
        methods = list(dict.fromkeys(rows["method"]))
        for i, method in enumerate(methods):
            lines = rows[rows["method"] == method].sort_values("label_fraction")
            x = dodge(lines["label_fraction"].to_list(), i, len(methods))
            _interval_bars(ax, x, lines, colours[method], "-o")
        ax.set_xscale("log")
        ax.set_xticks(fractions, [fraction_label(f) for f in fractions])
        ax.minorticks_off()
        ax.set(xlabel="labelled training data (log scale)", ylabel=PA_EPE_LABEL, title=title)
    _method_legend(fig, colours)
    return fig


def convergence(groups: pd.DataFrame, runs: pd.DataFrame, evals: pd.DataFrame) -> Figure:
    """Figure 4: PA-EPE during fine-tuning against fine-tuning steps, mean ± 1 sd over seeds."""
    main = headline(groups)
    keys = list(GROUP_KEYS)
    points = evals.merge(runs[["run", *keys]], on="run").merge(main[keys], on=keys)
    if points.empty:
        raise NothingToShow("no record has periodic fine-tuning evaluations (curves.eval)")
    with_points = main.merge(points[keys].drop_duplicates(), on=keys)
    colours = method_colours(with_points["method"])
    panels = _panels(with_points, exclude=("method",))
    fig, axes = _grid(len(panels), "Convergence: PA-EPE during fine-tuning, mean ± 1 sd over seeds",
                      with_points)
    floors = False
    for ax, (title, rows) in zip(axes, panels):
        shown = points.merge(rows[keys], on=keys)
        for method in rows["method"]:
            curve = shown[shown["method"] == method].groupby("step")["pa_epe_mm"].agg(["mean", "std"])
            step, mean, std = curve.index.to_numpy(), curve["mean"].to_numpy(), curve["std"].to_numpy()
            ax.plot(step, mean, color=colours[method])
            ax.fill_between(step, mean - std, mean + std, color=colours[method], alpha=0.2, linewidth=0)
        floors = _floor_line(ax, rows) or floors
        ax.set(xlabel="fine-tuning step", ylabel=PA_EPE_LABEL, title=title)
    _method_legend(fig, colours, [_floor_handle()] if floors else [])
    return fig


def _flops_axis(ax, values: pd.Series, most: int = 6) -> None:
    """A log x-axis of FLOPs labelled "36.7 TFLOP": one tick per cluster of values plotted
    (values within 5 % of a cluster's smallest are one budget, spent to within a step) when
    there are at most ``most`` clusters, otherwise ticks at the decades."""
    ax.set_xscale("log")
    clusters: list[list[float]] = []
    for v in sorted(float(v) for v in values):
        if clusters and v <= clusters[-1][0] * 1.05:
            clusters[-1].append(v)
        else:
            clusters.append([v])
    ticks = [float(np.exp(np.mean(np.log(c)))) for c in clusters]
    if len(ticks) <= most:
        ax.set_xticks(ticks, [flops_text(v, trim=True) for v in ticks])
        ax.minorticks_off()
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: flops_text(v, trim=True)))
        ax.xaxis.set_minor_formatter(NullFormatter())


def accuracy_vs_compute(groups: pd.DataFrame) -> Figure:
    """Figure 5: PA-EPE against compute spent (pre-training + fine-tuning FLOPs, log scale)."""
    main = headline(groups, keep=("budget", "match"))
    main = main[main["total_flops_mean"] > 0]
    if main.empty:
        raise NothingToShow("no record reports compute spent")
    colours = method_colours(main["method"])
    panels = _panels(main, exclude=("method", "budget", "match"))
    externals = sorted({e for e in main["external_pretrain"] if isinstance(e, str)})
    fig, axes = _grid(len(panels), f"PA-EPE against compute spent: {_interval_words(main)}; "
                                   "methods side by side where they spent the same"
                      + (f"; external pre-training not counted ({', '.join(externals)})" if externals else ""),
                      main)
    matches = match_order(main["match"])
    styles = {m: MATCH_STYLES.get(m, ":^") for m in matches}
    for ax, (title, rows) in zip(axes, panels):
        methods = list(dict.fromkeys(rows["method"]))
        for (method, match), line in rows.groupby(["method", "match"], sort=False):
            line = line.sort_values("total_flops_mean")
            x = dodge(line["total_flops_mean"].to_list(), methods.index(method), len(methods), 0.08)
            _interval_bars(ax, x, line, colours[method], styles[match])
        _flops_axis(ax, rows["total_flops_mean"])
        ax.set(xlabel="compute spent: pre-training + fine-tuning (log scale)", ylabel=PA_EPE_LABEL,
               title=title)
    extra = [Line2D([], [], color="black", marker=styles[m][-1], linestyle=styles[m][:-1], label=f"match={m}")
             for m in matches] if len(matches) > 1 else []
    _method_legend(fig, colours, extra)
    return fig


def pretraining_curves(groups: pd.DataFrame, runs: pd.DataFrame, pretrain: pd.DataFrame) -> Figure:
    """Figure 6: each pre-training method's loss against its steps, one panel per method (the
    losses differ in kind and scale), mean ± 1 sd over seeds; the panel title gives the fall
    from the first to the last logged value. Fine-tunes that share a pre-training (label
    fractions, protocols) share its curve, so each (method, seed) counts once."""
    main = headline(groups, keep=("label_fraction", "match"))
    keys = [k for k in GROUP_KEYS if k not in ("label_fraction", "match")]
    points = pretrain.merge(runs[["run", "seed", *GROUP_KEYS]], on="run").merge(
        main[list(GROUP_KEYS)], on=list(GROUP_KEYS))
    if points.empty:
        raise NothingToShow("no record has a pre-training curve (curves.train)")
    points = points.drop_duplicates([*keys, "seed", "step"])
    shown = main.merge(points[keys].drop_duplicates(), on=keys)   # every fine-tune setting: the title
    colours = method_colours(shown["method"])
    methods = method_order(shown["method"])
    fig, axes = _grid(len(methods), "Pre-training loss per method: mean ± 1 sd over seeds; each method's "
                                    "own loss, so compare shapes, not heights", shown)
    for ax, method in zip(axes, methods):
        curve = points[points["method"] == method].groupby("step")["loss"].agg(["mean", "std", "count"])
        step, mean = curve.index.to_numpy(), curve["mean"].to_numpy()
        std = np.nan_to_num(curve["std"].to_numpy())
        ax.plot(step, mean, color=colours[method])
        ax.fill_between(step, mean - std, mean + std, color=colours[method], alpha=0.2, linewidth=0)
        change = 100 * (mean[-1] - mean[0]) / abs(mean[0]) if mean[0] else float("nan")
        seeds = int(curve["count"].max())
        ax.set(xlabel="pre-training step", ylabel="loss",
               title=f"{method}: {mean[0]:.3g} → {mean[-1]:.3g} ({change:+.0f}%), {seeds} seed"
                     + ("s" if seeds != 1 else ""))
    return fig
