"""Where does dropout help? A grid study's regime map: every candidate config against the
reference in every cell, paired by seed, with verdicts (better, worse, equivalent, undecided)
whose level is split over the many tests (Bonferroni, see analysis.sequential); a heatmap of
the differences; and the answer in plain words, set against how much the reference overfits.
From the cells' seed results: no training, no tracking.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from pipeline.analysis import report_page as page
from pipeline.analysis.paired import SeedResult, comparison_table, seeds_words
from pipeline.analysis.sequential import SequentialDesign
from pipeline.config.entry_points import GRID, format_param
from pipeline.config.factors import Factors, level_text
from pipeline.config.study import StudyConfig

MAP_METRIC = "test_accuracy"
VERDICT_WORDS = {
    "better": "helps",
    "worse": "hurts",
    "equivalent": "is equivalent (within the margin)",
    "undecided": "is undecided",
}
GAP = "final_generalization_gap"
DIVERGED = "diverged"  # the verdict of a cell whose training diverged: no numbers


def display(factor: str, text: str) -> str:
    return "all" if factor == "train_size" and text == "0" else text


def cell_words(row: dict, factors: Factors) -> str:
    return ", ".join(f"{name} {display(name, row[name])}" for name, _ in factors)


def regime_table(
    factors: Factors,
    cell_results: Sequence[tuple[dict, list[SeedResult]]],
    names: Sequence[str],
    design: SequentialDesign,
    diverged: Sequence[dict] = (),
) -> pd.DataFrame:
    """One row per cell x candidate x compared metric: the grid's levels, the candidate's
    comparison with the reference (the first of `names`; paired.COMPARISON_COLUMNS, in points,
    judged by `design`, whose family is the grid's cells x candidates), and both configs' mean
    final generalization gap (val_loss - loss at the cell's last epoch). The `diverged` cells
    follow, verdict `diverged`, without numbers."""
    rows = []
    for cell, results in cell_results:
        comparisons = comparison_table(names, results, design)
        gaps = {
            name: float(np.mean([r.metrics[GAP] for r in results if r.config == name]))
            for name in names
        }
        for row in comparisons[comparisons["reference"] == names[0]].to_dict("records"):
            rows.append(
                {
                    **{name: level_text(cell[name]) for name, _ in factors},
                    **row,
                    "reference_generalization_gap": gaps[row["reference"]],
                    "candidate_generalization_gap": gaps[row["candidate"]],
                }
            )
    table = pd.DataFrame(rows)
    failed = [
        {
            **{name: level_text(cell[name]) for name, _ in factors},
            **{"candidate": candidate, "reference": names[0], "metric": metric},
            "verdict": DIVERGED,
        }
        for cell in diverged
        for candidate in names[1:]
        for metric in (table["metric"].unique() if len(table) else (MAP_METRIC,))
    ]
    if table.empty:
        return pd.DataFrame(failed)
    return pd.concat([table, pd.DataFrame(failed, columns=table.columns)], ignore_index=True)


def regime_figure(table: pd.DataFrame, factors: Factors, title: str) -> plt.Figure:
    """A heatmap per candidate (and per level of each factor beyond the first two) of the mean
    test-accuracy difference in points, each cell annotated with its interval, verdict and
    seeds."""
    rows = table[table["metric"] == MAP_METRIC]
    levels = {name: [level_text(value) for value in values] for name, values in factors}
    names = list(levels)
    x_name, y_name, extra = names[0], (names[1:2] or [None])[0], names[2:]
    x_levels, y_levels = levels[x_name], levels[y_name] if y_name else [""]
    panels = [
        (candidate, dict(zip(extra, combination, strict=True)))
        for candidate in rows["candidate"].unique()
        for combination in itertools.product(*(levels[name] for name in extra))
    ]
    limit = max(2 * rows["mean_difference"].abs().max(), 1.0)  # light colors: legible text
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(max(7.0, 1.5 + 2.2 * len(x_levels) * len(panels)), 1.8 + 1.1 * len(y_levels)),
        squeeze=False,
        layout="constrained",
    )
    for axis, (candidate, fixed) in zip(axes[0], panels, strict=True):
        values = np.full((len(y_levels), len(x_levels)), np.nan)
        for row in rows[rows["candidate"] == candidate].to_dict("records"):
            if any(row[name] != level for name, level in fixed.items()):
                continue
            i, j = y_levels.index(row[y_name]) if y_name else 0, x_levels.index(row[x_name])
            if row["verdict"] == DIVERGED:
                axis.text(j, i, DIVERGED, ha="center", va="center", fontsize="small")
                continue
            values[i, j] = row["mean_difference"]
            axis.text(
                j,
                i,
                f"{values[i, j]:+.1f}\n[{row['ci95_low']:+.1f}, {row['ci95_high']:+.1f}]\n"
                f"{row['verdict']} ({row['seeds']})",
                ha="center",
                va="center",
                fontsize="small",
            )
        image = axis.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        axis.set_xticks(range(len(x_levels)), [display(x_name, x) for x in x_levels])
        axis.set_xlabel(x_name)
        axis.set_yticks(range(len(y_levels)), [display(y_name, y) for y in y_levels])
        axis.set_ylabel(y_name or "")
        axis.tick_params(axis="y", left=bool(y_name))
        extra_words = "".join(f", {name} {display(name, level)}" for name, level in fixed.items())
        axis.set_title(f"{candidate} - {rows['reference'].iloc[0]}{extra_words}", fontsize="medium")
    figure.colorbar(image, ax=axes[0], label="test accuracy difference (points)", shrink=0.9)
    figure.suptitle(title, fontsize="medium")
    return figure


def _overfitting(rows: pd.DataFrame, factors: Factors, alpha: float) -> str:
    """How the candidate's difference follows the reference's final generalization gap."""
    reference, candidate = rows["reference"].iloc[0], rows["candidate"].iloc[0]
    ordered = rows.sort_values("reference_generalization_gap")
    steps = "; ".join(
        f"{cell_words(row, factors)} (gap {row['reference_generalization_gap']:.3f}): "
        f"{row['mean_difference']:+.1f} points, {row['verdict']}"
        for row in ordered.to_dict("records")
    )
    text = (
        f"Against how much **{reference}** overfits (its final val_loss - loss), from least "
        f"to most: {steps}."
    )
    gaps, differences = rows["reference_generalization_gap"], rows["mean_difference"]
    if len(rows) < 3 or np.ptp(gaps) == 0 or np.ptp(differences) == 0:
        return text
    tau, p_value = stats.kendalltau(gaps, differences)  # exact p-value for few cells, no ties
    direction = "more" if tau > 0 else "less"
    trend = (
        f"the more {reference} overfits, the {direction} {candidate} gains"
        if p_value < alpha
        else f"no detectable trend at alpha {alpha} over {len(rows)} cells"
    )
    return (
        f"{text} Kendall's rank correlation of that gap with {candidate}'s difference: "
        f"tau = {tau:+.2f} (p = {p_value:.2g}): {trend}."
    )


def map_findings(
    config: StudyConfig, factors: Factors, table: pd.DataFrame, design: SequentialDesign
) -> list[str]:
    """The map in plain words: what was run, how verdicts are reached, then per candidate where
    it helps, hurts, is equivalent or undecided, and how that follows the reference's
    overfitting."""
    rates = {name: format_param(values) for name, values in config.named_configs}
    names = [name for name, _ in factors]
    fixed = ", ".join(
        f"{name} {display(name, format_param(getattr(config, name)))}"
        for name in GRID.fields
        if name not in names and (name != "max_norm" or config.max_norm)
    )
    accuracy = table[table["metric"] == MAP_METRIC]
    grid = ";".join(f"{name}={','.join(map(level_text, levels))}" for name, levels in factors)
    paragraphs = [
        f"**Grid study `{config.name}`**: {config.dataset}, {config.recipe} recipe, {fixed}; "
        f"grid `{grid}` ({len(accuracy) // accuracy['candidate'].nunique()} cells); "
        f"{seeds_words(config)}.",
        verdict_rule_words(config, design),
    ]
    for candidate, rows in accuracy.groupby("candidate", sort=False):
        reference = rows["reference"].iloc[0]
        parts = []
        for verdict, words in {**VERDICT_WORDS, DIVERGED: "diverged"}.items():
            matching = rows[rows["verdict"] == verdict].to_dict("records")
            if matching:
                where = "; ".join(_cell_result(row, factors) for row in matching)
                parts.append(f"{words} in {len(matching)} of {len(rows)} cells ({where})")
        paragraphs.append(
            f"**{candidate}** ({rates[candidate]}) against **{reference}** "
            f"({rates[reference]}): " + ", ".join(parts) + "."
        )
        paragraphs.append(_overfitting(rows[rows["verdict"] != DIVERGED], factors, config.alpha))
    return paragraphs


def _cell_result(row: dict, factors: Factors) -> str:
    """A cell and its difference with interval, in points; only the cell when it diverged."""
    if row["verdict"] == DIVERGED:
        return cell_words(row, factors)
    return (
        f"{cell_words(row, factors)}: {row['mean_difference']:+.1f} "
        f"[{row['ci95_low']:+.1f}, {row['ci95_high']:+.1f}], {row['seeds']} seeds"
    )


def regime_display(table: pd.DataFrame) -> pd.DataFrame:
    """The regime table's rows as text under readable headers (differences in points, intervals
    at the level of each verdict's look)."""
    factors = table.columns[: table.columns.get_loc("candidate")]
    columns = (
        *(
            (name.replace("_", " ").capitalize(), (name,), lambda text, n=name: display(n, text))
            for name in factors
        ),
        ("Comparison", ("candidate", "reference"), lambda candidate, ref: f"{candidate} vs {ref}"),
        ("Difference (points)", ("mean_difference",), page.signed),
        page.INTERVAL_COLUMN,
        page.IMPROVEMENT_COLUMN,
        ("Seeds", ("seeds",), page.count),
        ("p-value", ("p_value",), page.p_value),
        page.VERDICT_COLUMN,
        ("Reference gap", ("reference_generalization_gap",), lambda gap: page.fixed(gap, 3)),
        ("Candidate gap", ("candidate_generalization_gap",), lambda gap: page.fixed(gap, 3)),
    )
    return page.display_frame(table, columns)


def verdict_rule_words(config: StudyConfig, design: SequentialDesign) -> str:
    """How the map's verdicts are reached, in words."""
    looks = (
        f"looking every {design.batch} seeds up to {design.max_seeds} with O'Brien-Fleming "
        "alpha spending (a cell stops at its first verdict and keeps it)"
        if config.adaptive
        else "at one look"
    )
    return (
        f"Verdicts: each cell's paired t-test (better, worse) and TOST within ±{config.margin:g} "
        f"points (equivalent), else undecided, at family-wise alpha {config.alpha} split over "
        f"the {design.family_size} tests of the grid (cells x candidates, Bonferroni: "
        f"{design.cell_alpha:.3g} each), {looks}. Differences in test-accuracy points; intervals "
        "at the level of the look each verdict rests on, so they are wider than 95%."
    )


def map_report_markdown(text: str, table: pd.DataFrame) -> str:
    tables = page.metric_tables(table, regime_display, page.table_markdown)
    return (
        f"# Where does dropout help?\n\n![regime map](regime_map.png)\n\n{text}\n\n"
        "## Every cell and candidate (candidate - reference)\n\n"
        + "\n\n".join(f"### {name}\n\n{rows}" for name, rows in tables)
        + "\n"
    )


def map_report_html(
    text: str, table: pd.DataFrame, figure: plt.Figure, effect_figure: plt.Figure | None = None
) -> str:
    """The grid's page: the map and, if given, the difference by epoch; the words; then a
    table per metric in points (gaps: val_loss - loss at the last epoch)."""
    labels = table.columns.get_loc("candidate") + 1
    tables = page.metric_tables(table, regime_display, lambda rows: page.table_html(rows, labels))
    figures = [figure, *([effect_figure] if effect_figure is not None else [])]
    return page.page_html(
        "Where does dropout help?",
        [
            *(page.figure_html(each, "regime map") for each in figures),
            page.text_html(text),
            page.section_html(
                "Every cell and candidate (candidate - reference)",
                *(f"<h3>{name}</h3>{rows}" for name, rows in tables),
            ),
        ],
    )
