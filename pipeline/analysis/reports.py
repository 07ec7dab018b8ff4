"""A study's report as a page that leads with the answer (a headline per comparison), then the
words, the figures of the differences, the tables in points and the learning curves; and the
same report in markdown (headlines, words, tables)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from pipeline.analysis.difference_figures import (
    effect_by_epoch_figure,
    forest_figure,
    seed_differences_figure,
)
from pipeline.analysis.report_page import (
    COMPARISON_COLUMN,
    VERDICT_COLUMN,
    Column,
    count,
    display_frame,
    drawn_figure_html,
    figure_html,
    fixed,
    interval,
    metric_tables,
    note_html,
    p_value,
    page_html,
    percent,
    section_html,
    signed,
    table_html,
    table_markdown,
    text_html,
    verdict_html,
)

HEADLINE_METRIC = "test_accuracy"
COMPARISON_COLUMNS: tuple[Column, ...] = (
    COMPARISON_COLUMN,
    ("Difference (points)", ("mean_difference",), signed),
    ("95% CI", ("ci95_low", "ci95_high"), interval),
    ("Equivalence CI", ("equivalence_low", "equivalence_high"), interval),
    ("Margin (points)", ("margin",), lambda margin: f"±{fixed(margin, 2)}"),
    ("p-value", ("p_value",), p_value),
    ("p (equivalence)", ("p_equivalence",), p_value),
    (
        "P(improvement)",
        ("probability_of_improvement", "improvement_low", "improvement_high"),
        lambda p, low, high: f"{percent(p)}\n[{percent(low)}, {percent(high)}]",
    ),
    ("Seeds", ("seeds",), count),
    ("Seeds for power", ("seeds_for_power",), count),
    VERDICT_COLUMN,
)
# Per summary metric: its header, the scale of its values, and their decimals.
SUMMARY_METRICS = {
    "test_accuracy": ("Test accuracy (%)", 100, 2),
    "test_macro_f1": ("Macro F1 (%)", 100, 2),
    "final_generalization_gap": ("Generalization gap", 1, 3),
    "best_epoch": ("Best epoch", 1, 1),
    "test_tied_top_fraction": ("Tied top scores (%)", 100, 1),
}


def spread_cell(scale: float, decimals: int):
    """How a summary metric's cell reads: mean ± std, its 95% interval on a second line."""

    def cell(mean: float, std: float, low: float, high: float) -> str:
        value = fixed(scale * mean, decimals)
        if not np.isnan(std):
            value += f" ± {fixed(scale * std, decimals)}"
        if np.isnan(low):
            return value
        return f"{value}\n[{fixed(scale * low, decimals)}, {fixed(scale * high, decimals)}]"

    return cell


SUMMARY_COLUMNS: tuple[Column, ...] = (
    ("Config", ("config",), str),
    ("Dropout rates", ("dropout_rates",), str),
    ("Mean rate", ("mean_rate",), lambda rate: fixed(rate, 2)),
    *(
        (
            header,
            tuple(f"{metric}_{stat}" for stat in ("mean", "std", "ci95_low", "ci95_high")),
            spread_cell(scale, decimals),
        )
        for metric, (header, scale, decimals) in SUMMARY_METRICS.items()
    ),
)


def headline(row, verdict: str, label: str) -> str:
    """One comparison's answer: `label: verdict, difference points [interval], seeds`."""
    return (
        f"{label}: {verdict}, {signed(row.mean_difference)} points "
        f"{interval(row.ci95_low, row.ci95_high)}, {count(row.seeds)} seeds"
    )


def labelled(comparisons: pd.DataFrame):
    """Each comparison row with its label, `candidate vs reference`."""
    return [(row, f"{row.candidate} vs {row.reference}") for row in comparisons.itertuples()]


def answer_html(comparisons: pd.DataFrame) -> str:
    lines = "".join(
        "<li>"
        + headline(row, verdict_html(row.verdict), f"<strong>{html.escape(label)}</strong>")
        + "</li>"
        for row, label in labelled(comparisons)
    )
    return f"<ul class='answer'>{lines}</ul>"


def headline_rows(comparisons: pd.DataFrame) -> pd.DataFrame:
    return comparisons[comparisons["metric"] == HEADLINE_METRIC]


def margin_of(comparisons: pd.DataFrame) -> float:
    """The comparisons' equivalence margin in points (NaN when they have none)."""
    margins = comparisons["margin"].dropna() if "margin" in comparisons else pd.Series()
    return float(margins.iloc[0]) if len(margins) else np.nan


def comparison_display(comparisons: pd.DataFrame) -> pd.DataFrame:
    return display_frame(comparisons, COMPARISON_COLUMNS)


def figures_html(comparisons, differences, effect, crossings) -> list[str]:
    """The figures of the test-accuracy differences: intervals, seeds, and by epoch if given."""
    margin = margin_of(comparisons)
    band = "" if np.isnan(margin) else f"; shaded: the ±{margin:.2f}-point margin of equivalence"
    keys = [(row.candidate, row.reference, row.metric) for row in comparisons.itertuples()]
    parts = [
        section_html(
            "Intervals",
            note_html(f"Mean paired difference in test-accuracy points, 95% CI{band}."),
            drawn_figure_html(forest_figure(comparisons, margin), "forest plot"),
        ),
        section_html(
            "Each seed's difference",
            note_html("One dot per seed: candidate - reference in test-accuracy points."),
            drawn_figure_html(
                seed_differences_figure({key: differences[key] for key in keys}, margin),
                "paired differences per seed",
            ),
        ),
    ]
    if effect is not None:
        figure = effect_by_epoch_figure(effect, margin, crossings)
        parts.append(
            section_html(
                "Difference by epoch",
                note_html(
                    f"Test-accuracy points, 95% CI{band}; diamonds: where a line crosses zero."
                ),
                drawn_figure_html(figure, "difference by epoch"),
            )
        )
    return parts


def study_report_html(
    title: str,
    text: str,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    differences: dict[tuple[str, str, str], np.ndarray],
    curves_figure,
    effect: pd.DataFrame | None = None,
    crossings: pd.DataFrame | None = None,
) -> str:
    """The study's page: headlines, words, figures of the test-accuracy differences, the
    comparisons' and the configs' tables, then the learning curves."""
    tables = "".join(
        f"<h3>{html.escape(name)}</h3>{table}"
        for name, table in metric_tables(comparisons, comparison_display, table_html)
    )
    accuracy = headline_rows(comparisons)
    return page_html(
        title,
        [
            answer_html(accuracy),
            text_html(text),
            *figures_html(accuracy, differences, effect, crossings),
            section_html("Paired comparisons (candidate - reference)", tables),
            section_html(
                "Per config (over seeds)",
                note_html("Mean ± std over seeds; 95% CI below."),
                table_html(display_frame(summary, SUMMARY_COLUMNS), labels=2),
            ),
            section_html("Learning curves", figure_html(curves_figure, "learning curves")),
        ],
    )


def study_report_markdown(
    title: str, text: str, summary: pd.DataFrame, comparisons: pd.DataFrame
) -> str:
    """The study's report in markdown: headlines, words, then the tables in points."""
    lines = "\n".join(
        f"- {headline(row, f'**{row.verdict}**', label)}"
        for row, label in labelled(headline_rows(comparisons))
    )
    tables = "\n\n".join(
        f"### {name}\n\n{table}"
        for name, table in metric_tables(comparisons, comparison_display, table_markdown)
    )
    summary_table = table_markdown(display_frame(summary, SUMMARY_COLUMNS))
    return (
        f"# {title}\n\n{lines}\n\n{text}\n\n## Paired comparisons (candidate - reference)\n\n"
        f"{tables}\n\n## Per config (over seeds)\n\n{summary_table}\n"
    )
