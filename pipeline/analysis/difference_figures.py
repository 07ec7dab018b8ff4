"""The figures of a report's paired differences, in points (accuracy x 100), drawn from tables
and arrays: each comparison's interval, each seed's difference, and the difference by epoch,
all against the zero line and the shaded ±margin band of equivalence."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

VERDICT_COLORS = {
    "better": "#1a7f37",
    "worse": "#cf222e",
    "equivalent": "#0969da",
    "undecided": "#6e7781",
}
METRIC_NAMES = {"test_accuracy": "test accuracy", "test_macro_f1": "macro F1"}
BAND_COLOR = "#0969da"


def comparison_label(candidate: str, reference: str, metric: str, with_metric: bool) -> str:
    """`candidate vs reference`, followed by the metric's name when a figure mixes metrics."""
    label = f"{candidate} vs {reference}"
    return f"{label} ({METRIC_NAMES.get(metric, metric)})" if with_metric else label


def reference_lines(axis: plt.Axes, margin: float | None, vertical: bool):
    """The zero line and, for a positive margin, the shaded ±margin band around it; vertical
    when the differences lie along the x axis."""
    span, line = (axis.axvspan, axis.axvline) if vertical else (axis.axhspan, axis.axhline)
    if margin is not None and np.isfinite(margin) and margin > 0:
        label = f"±{margin:.2f}-point margin"
        span(-margin, margin, color=BAND_COLOR, alpha=0.12, lw=0, label=label, gid="margin")
    line(0, color="black", lw=0.8, gid="zero")


def forest_figure(comparisons: pd.DataFrame, margin: float | None) -> plt.Figure:
    """Each comparison's mean difference with its 95% interval, one row each from the top,
    coloured and labelled by its verdict, over the ±margin band and the zero line."""
    rows = comparisons.reset_index(drop=True)
    with_metric = rows["metric"].nunique() > 1
    figure, axis = plt.subplots(figsize=(9, 1.4 + 0.5 * len(rows)), layout="constrained")
    reference_lines(axis, margin, vertical=True)
    for position, row in enumerate(rows.itertuples()):
        color = VERDICT_COLORS.get(row.verdict, VERDICT_COLORS["undecided"])
        error = [[row.mean_difference - row.ci95_low], [row.ci95_high - row.mean_difference]]
        axis.errorbar(row.mean_difference, position, xerr=error, fmt="o", color=color, capsize=4)
        axis.annotate(
            row.verdict,
            (1.01, position),
            xycoords=("axes fraction", "data"),
            color=color,
            va="center",
            fontweight="bold",
        )
    labels = [
        comparison_label(row.candidate, row.reference, row.metric, with_metric)
        for row in rows.itertuples()
    ]
    axis.set_yticks(range(len(rows)), labels)
    axis.set_ylim(len(rows) - 0.5, -0.5)
    axis.set_xlabel("candidate - reference (points): mean and 95% CI")
    axis.grid(axis="x", alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower right", fontsize="small")
    return figure


def seed_differences_figure(
    differences_by_comparison: dict[tuple[str, str, str], np.ndarray], margin: float | None
) -> plt.Figure:
    """Each seed's paired difference as a dot, one row per comparison (keyed candidate,
    reference, metric) with a little vertical jitter, and the row's mean as a black bar, over
    the ±margin band and the zero line."""
    keys = list(differences_by_comparison)
    with_metric = len({metric for _, _, metric in keys}) > 1
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    jitter = np.random.default_rng(0)  # the same page for the same numbers
    figure, axis = plt.subplots(figsize=(9, 1.4 + 0.7 * len(keys)), layout="constrained")
    reference_lines(axis, margin, vertical=True)
    for position, key in enumerate(keys):
        values = np.asarray(differences_by_comparison[key], dtype=float)
        heights = position + jitter.uniform(-0.2, 0.2, len(values))
        color = colors[position % len(colors)]
        axis.scatter(values, heights, s=18, alpha=0.6, color=color, lw=0, gid="seeds")
        label = "mean" if position == 0 else None
        axis.plot(
            values.mean(), position, "|", ms=26, mew=3, color="black", label=label, gid="mean"
        )
    axis.set_yticks(range(len(keys)), [comparison_label(*key, with_metric) for key in keys])
    axis.set_ylim(len(keys) - 0.5, -0.5)
    axis.set_xlabel("candidate - reference (points), one dot per seed")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    return figure


def crossing_marker(axis: plt.Axes, crossing: pd.DataFrame, color: str):
    """A diamond on the zero line at the epoch where a line crosses zero, its interval as a
    horizontal error bar; nothing when `crossing` (a group's row, if any) holds no epoch."""
    if crossing.empty or not np.isfinite(crossing["crossing_epoch"].iloc[0]):
        return
    epoch, low, high = crossing[["crossing_epoch", "crossing_low", "crossing_high"]].iloc[0]
    error = [[epoch - low], [high - epoch]] if np.isfinite([low, high]).all() else None
    axis.errorbar(epoch, 0, xerr=error, fmt="D", ms=7, color=color, mec="black", capsize=5)


def effect_by_epoch_figure(
    table: pd.DataFrame, margin: float | None, crossings: pd.DataFrame | None = None
) -> plt.Figure:
    """The paired difference against epoch, one line per group (`table`: group, epoch,
    mean_difference, ci95_low, ci95_high) with its 95% band, over the ±margin band and the zero
    line, with a marker where a line crosses zero (`crossings`: group, crossing_epoch,
    crossing_low, crossing_high, NaN where it does not; by default those columns of `table`).
    The epoch axis is logarithmic when the epochs span more than 10x."""
    if crossings is None:
        crossings = table.drop_duplicates("group")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axis = plt.subplots(figsize=(9, 4.5), layout="constrained")
    reference_lines(axis, margin, vertical=False)
    for index, (group, rows) in enumerate(table.groupby("group", sort=False)):
        rows = rows.sort_values("epoch")
        color = colors[index % len(colors)]
        label = group or "candidate - reference"
        axis.plot(rows["epoch"], rows["mean_difference"], color=color, label=label, gid="effect")
        axis.fill_between(
            rows["epoch"], rows["ci95_low"], rows["ci95_high"], color=color, alpha=0.2
        )
        crossing_marker(axis, crossings[crossings["group"] == group], color)
    if table["epoch"].max() > 10 * table["epoch"].min():
        axis.set_xscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("candidate - reference (points), 95% CI")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure
