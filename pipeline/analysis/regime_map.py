"""Where does dropout help? A grid study's regime map: every candidate config against the
reference in every cell, paired by seed, with verdicts corrected for the many tests (Holm); a
heatmap of the differences; and the answer in plain words, set against how much the reference
overfits. From the cells' seed results: no training, no tracking.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from pipeline.analysis import report_page as page
from pipeline.analysis import significance
from pipeline.analysis.paired import SeedResult, comparison_table
from pipeline.config.entry_points import GRID, StudyConfig, format_param
from pipeline.config.factors import Factors, level_text

MAP_METRIC = "test_accuracy"
VERDICT_WORDS = {
    "better": "helps",
    "worse": "hurts",
    "no detectable difference": "makes no detectable difference",
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
    alpha: float,
    seed: int,
    diverged: Sequence[dict] = (),
) -> pd.DataFrame:
    """One row per cell x candidate x compared metric: the candidate's paired difference to the
    reference (the first of `names`) with its 95% t-interval and t-test p-value, the p-value
    Holm-adjusted over all the table's tests of that metric, the verdict at `alpha` from it,
    and both configs' mean final generalization gap (val_loss - loss at the last epoch). The
    `diverged` cells follow, verdict `diverged`, without numbers and outside the correction."""
    rows = []
    for cell, results in cell_results:
        comparisons = comparison_table(names, results, alpha, seed)
        gaps = {
            name: float(np.mean([r.metrics[GAP] for r in results if r.config == name]))
            for name in names
        }
        for row in comparisons[comparisons["reference"] == names[0]].itertuples():
            rows.append(
                {
                    **{name: level_text(cell[name]) for name, _ in factors},
                    "candidate": row.candidate,
                    "reference": row.reference,
                    "metric": row.metric,
                    "mean_difference": row.mean_difference,
                    "ci95_low": row.t_ci95_low,
                    "ci95_high": row.t_ci95_high,
                    "p_value": row.t_test_p_value,
                    "reference_generalization_gap": gaps[row.reference],
                    "candidate_generalization_gap": gaps[row.candidate],
                }
            )
    table = pd.DataFrame(rows)
    holm = table.groupby("metric")["p_value"].transform(significance.holm_adjusted)
    table.insert(table.columns.get_loc("p_value") + 1, "p_value_holm", holm)
    direction = np.where(table["mean_difference"] > 0, "better", "worse")
    verdict = np.where(table["p_value_holm"] < alpha, direction, "no detectable difference")
    table.insert(table.columns.get_loc("p_value_holm") + 1, "verdict", verdict)
    failed = [
        {
            **{name: level_text(cell[name]) for name, _ in factors},
            **{"candidate": candidate, "reference": names[0], "metric": metric},
            "verdict": DIVERGED,
        }
        for cell in diverged
        for candidate in names[1:]
        for metric in table["metric"].unique()
    ]
    return pd.concat([table, pd.DataFrame(failed, columns=table.columns)], ignore_index=True)


def regime_figure(table: pd.DataFrame, factors: Factors, title: str) -> plt.Figure:
    """A heatmap per candidate (and per level of each factor beyond the first two) of the mean
    test-accuracy difference in points, each cell annotated with its interval and verdict."""
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
    limit = max(200 * rows["mean_difference"].abs().max(), 1.0)  # light colors: legible text
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
            values[i, j] = 100 * row["mean_difference"]
            axis.text(
                j,
                i,
                f"{values[i, j]:+.1f}\n[{100 * row['ci95_low']:+.1f}, "
                f"{100 * row['ci95_high']:+.1f}]\n{row['verdict']}",
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
        f"{100 * row['mean_difference']:+.1f} points, {row['verdict']}"
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


def map_findings(config: StudyConfig, factors: Factors, table: pd.DataFrame) -> list[str]:
    """The map in plain words: what was run, the correction, then per candidate where it helps,
    hurts or makes no detectable difference, and how that follows the reference's overfitting."""
    rates = {name: format_param(values) for name, values in config.named_configs}
    names = [name for name, _ in factors]
    fixed = ", ".join(
        f"{name} {display(name, format_param(getattr(config, name)))}"
        for name in GRID.fields
        if name not in names and (name != "max_norm" or config.max_norm)
    )
    accuracy = table[table["metric"] == MAP_METRIC]
    cells = len(accuracy) // accuracy["candidate"].nunique()
    tests = int((accuracy["verdict"] != DIVERGED).sum())
    paragraphs = [
        f"**Grid study `{config.name}`**: {config.dataset}, {config.recipe} recipe, {fixed}; "
        f"grid `{config.grid}` ({cells} cells); {config.seeds} paired seeds per cell "
        f"({config.seed}…{config.seed + config.seeds - 1}).",
        f"Verdicts: each cell's paired t-test, Holm-corrected over the {tests} tests of each "
        f"metric (cells x candidates), at family-wise alpha {config.alpha}. Intervals are each "
        "cell's own 95% t-interval of the paired difference, uncorrected (a cell's nested run "
        "holds its own report, with uncorrected verdicts). Differences in test-accuracy points.",
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
        f"{cell_words(row, factors)}: {100 * row['mean_difference']:+.1f} "
        f"[{100 * row['ci95_low']:+.1f}, {100 * row['ci95_high']:+.1f}]"
    )


def regime_display(table: pd.DataFrame) -> pd.DataFrame:
    """The regime table's rows as text under readable headers, differences in points."""
    factors = table.columns[: table.columns.get_loc("candidate")]
    columns = (
        *(
            (name.replace("_", " ").capitalize(), (name,), lambda text, n=name: display(n, text))
            for name in factors
        ),
        ("Comparison", ("candidate", "reference"), lambda candidate, ref: f"{candidate} vs {ref}"),
        ("Difference (points)", ("mean_difference",), lambda value: page.signed(100 * value)),
        (
            "95% CI",
            ("ci95_low", "ci95_high"),
            lambda low, high: page.interval(100 * low, 100 * high),
        ),
        ("p-value", ("p_value",), page.p_value),
        ("p (Holm)", ("p_value_holm",), page.p_value),
        page.VERDICT_COLUMN,
        ("Reference gap", ("reference_generalization_gap",), lambda gap: page.fixed(gap, 3)),
        ("Candidate gap", ("candidate_generalization_gap",), lambda gap: page.fixed(gap, 3)),
    )
    return page.display_frame(table, columns)


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
