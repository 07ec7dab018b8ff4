"""The report pages and their figures, from synthetic tables (no training): the study page leads
with the answer, its tables read in points under readable headers, the figures hold what they
show, and both pages fit a 1,280-pixel screen in headless Chromium (screenshots printed, -s)."""

# The pages write negative numbers with the minus sign (U+2212), as these strings do.
# ruff: noqa: RUF001

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from mlflow_ui import CHROMIUM, chromium_page

from pipeline.analysis import regime_map
from pipeline.analysis.difference_figures import (
    effect_by_epoch_figure,
    forest_figure,
    seed_differences_figure,
)
from pipeline.analysis.reports import study_report_html, study_report_markdown

pytestmark = pytest.mark.fast

MARGIN = 0.5
VERDICTS = {"light": "better", "heavy": "worse", "medium": "equivalent"}
TEXT = "**Study `tiny`**: digits, 40 paired seeds.\n\nDoes **light** beat **baseline**? Yes."


def comparison_row(candidate: str, metric: str, differences: np.ndarray) -> dict:
    """A comparisons row as the study makes it, around one pair's per-seed differences."""
    mean, half = differences.mean(), 0.123456
    return {
        "candidate": candidate,
        "reference": "baseline",
        "metric": metric,
        "seeds": len(differences),
        "mean_difference": mean,
        "ci95_low": mean - half,
        "ci95_high": mean + half,
        "equivalence_low": mean - 0.8 * half,
        "equivalence_high": mean + 0.8 * half,
        "p_value": 0.003223 if VERDICTS[candidate] != "equivalent" else 0.41234,
        "p_equivalence": 0.0026,
        "probability_of_improvement": 0.61234,
        "improvement_low": 0.51234,
        "improvement_high": 0.70001,
        "seeds_for_power": np.nan if candidate == "light" else 57.0,
        "margin": MARGIN,
        "verdict": VERDICTS[candidate],
    }


@pytest.fixture(scope="module")
def study_tables():
    """Three candidates against a baseline on 40 seeds, both metrics: comparisons, differences
    and a per-config summary."""
    rng = np.random.default_rng(0)
    shifts = {"light": 1.2, "heavy": -1.234567, "medium": 0.05}
    differences, rows = {}, []
    for metric in ("test_accuracy", "test_macro_f1"):
        for candidate, shift in shifts.items():
            noise = rng.normal(0, 0.4, 40)
            values = shift + noise - noise.mean()
            differences[candidate, "baseline", metric] = values
            rows.append(comparison_row(candidate, metric, values))
    summary = pd.DataFrame(
        {
            "config": ["baseline", *shifts],
            "dropout_rates": ["0,0,0", "0.1,0,0", "0.5,0.5,0.5", "0.3,0.2,0"],
            "mean_rate": [0.0, 1 / 30, 0.5, 1 / 6],
        }
    )
    for metric, mean in (
        ("test_accuracy", 0.9712345),
        ("test_macro_f1", 0.968765),
        ("final_generalization_gap", 0.0123456),
        ("best_epoch", 17.25),
        ("test_tied_top_fraction", 0.0012345),
    ):
        summary[f"{metric}_mean"] = mean
        summary[f"{metric}_std"] = mean / 50
        summary[f"{metric}_ci95_low"] = mean * 0.99
        summary[f"{metric}_ci95_high"] = mean * 1.01
    return pd.DataFrame(rows), differences, summary


def effect_tables(crossing_groups=("train_size 1000",)):
    """The difference by epoch for two train sizes, and where each line crosses zero."""
    epochs = np.array([1, 2, 5, 10, 20, 50, 100])
    rows, crossings = [], []
    for group, slope in (("train_size 1000", 1.0), ("train_size 10000", 0.2)):
        mean = slope * np.log(epochs) - 1.5
        for epoch, value in zip(epochs, mean, strict=True):
            rows.append([group, epoch, value, value - 0.4, value + 0.4, 40])
        crossed = group in crossing_groups
        crossings.append([group, *((4.5, 3.0, 6.5) if crossed else (np.nan,) * 3)])
    columns = ["group", "epoch", "mean_difference", "ci95_low", "ci95_high", "seeds"]
    crossing_columns = ["group", "crossing_epoch", "crossing_low", "crossing_high"]
    return pd.DataFrame(rows, columns=columns), pd.DataFrame(crossings, columns=crossing_columns)


def curves_figure():
    figure, axis = plt.subplots(figsize=(12, 4.5))
    axis.plot([1, 2, 3], [0.5, 0.7, 0.8])
    return figure


@pytest.fixture(scope="module")
def study_page(study_tables):
    comparisons, differences, summary = study_tables
    effect, crossings = effect_tables()
    figure = curves_figure()
    page = study_report_html(
        "Does dropout help?", TEXT, summary, comparisons, differences, figure, effect, crossings
    )
    plt.close(figure)
    return page


def regime_table() -> pd.DataFrame:
    """A 2 x 2 grid's regime table as `regime_map.regime_table` makes it (fractions)."""
    rows = []
    for train_size in ("0", "1000"):
        for epochs in ("10", "100"):
            for metric in ("test_accuracy", "test_macro_f1"):
                rows.append(
                    {
                        "train_size": train_size,
                        "epochs": epochs,
                        "candidate": "dropout",
                        "reference": "baseline",
                        "metric": metric,
                        "mean_difference": -0.0123456,
                        "ci95_low": -0.0151234,
                        "ci95_high": -0.0090001,
                        "p_value": 0.0001234,
                        "p_value_holm": 0.0004936,
                        "verdict": "worse",
                        "reference_generalization_gap": 0.2345678,
                        "candidate_generalization_gap": 0.1234567,
                    }
                )
    return pd.DataFrame(rows)


def grid_page() -> str:
    """The grid's page, its map drawn from the table as the grid draws it."""
    table = regime_table()
    factors = [("train_size", [0, 1000]), ("epochs", [10, 100])]
    map_figure = regime_map.regime_figure(table, factors, "tiny grid: test accuracy")
    effect, crossings = effect_tables()
    effect_figure = effect_by_epoch_figure(effect, MARGIN, crossings)
    page = regime_map.map_report_html(TEXT, table, map_figure, effect_figure)
    plt.close(map_figure)
    plt.close(effect_figure)
    return page


POINTS = r"[+−]\d+\.\d\d"
P_VALUE = r"(0\.0*[1-9]\d\d|[1-9]\.\d\d)(e[+−-]\d+)?"  # 3 significant digits
PERCENT = r"\d+\.\d%"


def spread(number: str) -> str:
    """A summary cell: mean ± std, then the 95% interval."""
    return rf"{number} ± {number}  \[{number}, {number}\]"


FORMATS = {
    "Difference (points)": POINTS,
    "95% CI": rf"\[{POINTS}, {POINTS}\]",
    "Equivalence CI": rf"\[{POINTS}, {POINTS}\]",
    "Margin (points)": r"±\d+\.\d\d",
    "p-value": P_VALUE,
    "p (equivalence)": P_VALUE,
    "p (Holm)": P_VALUE,
    "P(improvement)": rf"{PERCENT}  \[{PERCENT}, {PERCENT}\]",
    "Seeds": r"\d+",
    "Seeds for power": r"\d+|—",
    "Mean rate": r"\d\.\d\d",
    "Test accuracy (%)": spread(r"\d+\.\d\d"),
    "Macro F1 (%)": spread(r"\d+\.\d\d"),
    "Generalization gap": spread(r"−?\d+\.\d{3}"),
    "Best epoch": spread(r"\d+\.\d"),
    "Tied top scores (%)": spread(r"\d+\.\d"),
    "Reference gap": r"−?\d\.\d{3}",
    "Candidate gap": r"−?\d\.\d{3}",
}


def headers(page: str) -> list[str]:
    return re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", page)


def cells(page: str) -> list[str]:
    """The text of every table cell of a page, tags dropped."""
    return [re.sub(r"<[^>]+>", " ", cell).strip() for cell in re.findall(r"<td.*?</td>", page)]


def columns(page: str) -> dict[str, list[str]]:
    """Each table column's cells under its header, over all of a page's tables."""
    found = {}
    for table in re.findall(r"<table.*?</table>", page):
        texts = cells(table)
        names = headers(table)
        for index, name in enumerate(names):
            found.setdefault(name, []).extend(texts[index :: len(names)])
    return found


def assert_rounded_alike(page: str):
    """Every number column reads in its one format: no 0.003223 beside 0.0026."""
    for name, texts in columns(page).items():
        if name in FORMATS:
            for text in texts:
                assert re.fullmatch(FORMATS[name], text), (name, text)


def test_the_study_page_leads_with_a_headline_per_comparison(study_page):
    body = study_page[study_page.index("<main>") :]
    answer = re.search(r"<ul class='answer'>(.*?)</ul>", body).group(1)
    assert body.index("class='answer'") < body.index("<p>") < body.index("<img")
    headlines = re.findall(r"<li>(.*?)</li>", answer)
    assert len(headlines) == 3  # test accuracy only
    words = [re.sub(r"<[^>]+>", "", line) for line in headlines]
    assert words[1] == "heavy vs baseline: worse, −1.23 points [−1.36, −1.11], 40 seeds"
    assert "<span class='verdict worse'>worse</span>" in headlines[1]
    for line, verdict in zip(words, VERDICTS.values(), strict=True):
        assert re.fullmatch(
            rf"\w+ vs baseline: {verdict}, [+−]\d+\.\d\d points "
            r"\[[+−]\d+\.\d\d, [+−]\d+\.\d\d\], 40 seeds",
            line,
        )
    assert "<strong>tiny</strong>" not in body and "<code>tiny</code>" in body


def test_the_tables_read_in_points_under_readable_headers(study_page):
    shown = columns(study_page)
    for header in ("Difference (points)", "95% CI", "P(improvement)", "Seeds", "Verdict"):
        assert header in shown
    assert set(shown) <= {*FORMATS, "Comparison", "Verdict", "Config", "Dropout rates"}
    assert len(shown["Difference (points)"]) == 6 and len(shown["Test accuracy (%)"]) == 4
    tables = "".join(re.findall(r"<table.*?</table>", study_page))
    for raw in ("ci95", "mean_difference", "p_value", "_mean", "_std", "seeds_for_power"):
        assert raw not in tables
    assert_rounded_alike(study_page)
    texts = cells(study_page)
    assert "0.00322" in texts and "0.00260" in texts and "0.412" in texts  # 3 significant digits
    assert "−1.23" in texts and "[−1.36, −1.11]" in texts  # points: 2 decimals
    assert "61.2%  [51.2%, 70.0%]" in texts  # percentages: 1 decimal
    assert "97.12 ± 1.94  [96.15, 98.09]" in texts  # accuracy in points
    assert "0.012 ± 0.000  [0.012, 0.012]" in texts and "17.2 ± 0.3  [17.1, 17.4]" in texts
    assert texts.count("—") == 2  # light's seeds for power, in both metrics' tables


def test_the_markdown_report_has_the_headlines_and_tables_in_points(study_tables):
    comparisons, _, summary = study_tables
    markdown = study_report_markdown("Does dropout help?", TEXT, summary, comparisons)
    assert "- heavy vs baseline: **worse**, −1.23 points [−1.36, −1.11], 40 seeds" in markdown
    assert markdown.index("- light vs") < markdown.index(TEXT) < markdown.index("| Comparison")
    assert "| 0.00322 " in markdown and "ci95" not in markdown


def test_the_grid_page_leads_with_the_map_then_words_then_a_table_in_points():
    page = grid_page()
    body = page[page.index("<main>") :]
    assert body.count("<img") == 2 and body.rindex("<img") < body.index("<p>") < body.index(
        "<table"
    )
    assert headers(page)[:4] == ["Train size", "Epochs", "Comparison", "Difference (points)"]
    texts = cells(page)
    assert {"all", "−1.23", "[−1.51, −0.90]", "0.000123", "0.235"} <= set(texts)
    assert_rounded_alike(page)


def test_the_forest_plot_draws_an_interval_per_comparison_and_the_margin_band(study_tables):
    comparisons = study_tables[0]
    accuracy = comparisons[comparisons["metric"] == "test_accuracy"]
    figure = forest_figure(accuracy, MARGIN)
    axis = figure.axes[0]
    assert sum(isinstance(c, ErrorbarContainer) for c in axis.containers) == 3
    band = [patch for patch in axis.patches if patch.get_gid() == "margin"]
    assert len(band) == 1 and band[0].get_x() == -MARGIN
    assert [line.get_gid() for line in axis.lines].count("zero") == 1
    assert [t.get_text() for t in axis.get_yticklabels()][1] == "heavy vs baseline"
    plt.close(figure)
    unbanded = forest_figure(comparisons, np.nan)  # both metrics, no margin
    assert not unbanded.axes[0].patches and len(unbanded.axes[0].containers) == 6
    assert "(macro F1)" in unbanded.axes[0].get_yticklabels()[5].get_text()
    plt.close(unbanded)


def test_the_seed_plot_draws_each_seed_and_each_mean(study_tables):
    differences = {
        key: values for key, values in study_tables[1].items() if key[2] == "test_accuracy"
    }
    figure = seed_differences_figure(differences, MARGIN)
    axis = figure.axes[0]
    dots = [c for c in axis.collections if c.get_gid() == "seeds"]
    assert [len(c.get_offsets()) for c in dots] == [40, 40, 40]
    means = [line for line in axis.lines if line.get_gid() == "mean"]
    expected = [values.mean() for values in differences.values()]
    assert [line.get_xdata()[0] for line in means] == pytest.approx(expected)
    assert [patch.get_gid() for patch in axis.patches] == ["margin"]
    plt.close(figure)


@pytest.mark.parametrize("crossing_groups", [("train_size 1000",), ()])
def test_effect_by_epoch_draws_a_line_per_group_and_only_the_crossings_there_are(
    crossing_groups,
):
    effect, crossings = effect_tables(crossing_groups)
    figure = effect_by_epoch_figure(effect, MARGIN, crossings)
    axis = figure.axes[0]
    assert [line.get_gid() for line in axis.lines].count("effect") == 2
    markers = [c for c in axis.containers if isinstance(c, ErrorbarContainer)]
    assert len(markers) == len(crossing_groups)
    if markers:
        assert markers[0].lines[0].get_xdata()[0] == 4.5  # on zero at the crossing epoch
        assert markers[0].lines[0].get_ydata()[0] == 0
    assert axis.get_xscale() == "log"  # epochs 1 to 100
    plt.close(figure)


def test_effect_by_epoch_reads_crossings_from_the_table_and_keeps_short_spans_linear():
    effect, crossings = effect_tables()
    short = effect[effect["epoch"] <= 10].merge(crossings, on="group")
    figure = effect_by_epoch_figure(short, MARGIN)
    axis = figure.axes[0]
    assert axis.get_xscale() == "linear"
    assert sum(isinstance(c, ErrorbarContainer) for c in axis.containers) == 1
    plt.close(figure)


# No table or figure sticks out of the page's centred column (inside its padding).
INSIDE_THE_COLUMN = """(() => {
    const main = document.querySelector("main");
    const padding = parseFloat(getComputedStyle(main).paddingRight);
    const right = main.getBoundingClientRect().right - padding;
    return [...document.querySelectorAll("table, img")].every(
        element => element.getBoundingClientRect().right <= right + 0.5);
})()"""


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")
def test_both_pages_fit_a_laptop_screen_without_scrolling_sideways(study_page, tmp_path):
    """Each page opened at 1280 x 800 scrolls only down; a full-page screenshot of each."""
    with chromium_page(tmp_path / "chromium-profile", width=1280, height=800) as page:
        for name, html in (("study", study_page), ("grid", grid_page())):
            path = tmp_path / f"{name}_report.html"
            path.write_text(html, encoding="utf-8")
            page.goto(path.as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280, name
            assert page.evaluate(INSIDE_THE_COLUMN), name
            assert page.evaluate("document.images.length") == html.count("<img")
            assert page.evaluate("[...document.images].every(image => image.naturalWidth > 0)")
            screenshot = tmp_path / f"{name}_report.png"
            page.screenshot(path=screenshot, full_page=True)
            print(f"screenshot: {screenshot}")
