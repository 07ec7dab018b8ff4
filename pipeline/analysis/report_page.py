"""The parts a report page is made of: one self-contained HTML file (inline style, figures as
base64 PNG) that fits a 1,280-pixel screen, its tables of text under readable headers, and the
number formats every report shares: points with 2 decimals, p-values with 3 significant digits,
percentages with 1 decimal."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.analysis.difference_figures import METRIC_NAMES

MINUS = "\u2212"
MISSING = "—"
VERDICT_CLASSES = {"better", "worse", "equivalent", "undecided"}
STYLE = """
body { margin: 0; color: #1f2328; background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { box-sizing: border-box; max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; padding-bottom: .25rem;
  border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; }
p { margin: .5rem 0; max-width: 90ch; overflow-wrap: anywhere; }
.note { color: #57606a; font-size: .9rem; }
.answer { list-style: none; margin: 0 0 1.25rem; padding: 12px 18px; font-size: 1.1rem;
  background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; }
.answer li { margin: .2rem 0; }
figure { margin: .5rem 0 1rem; }
img { display: block; max-width: 100%; height: auto; }
table { width: 100%; border-collapse: collapse; margin: .25rem 0 1rem; font-size: .85rem;
  font-variant-numeric: tabular-nums; }
th, td { padding: 4px 6px; text-align: right; vertical-align: top;
  border-bottom: 1px solid #d8dee4; }
th { font-weight: 600; background: #f6f8fa; border-bottom: 2px solid #d0d7de; }
td { white-space: nowrap; }
th.label, td.label { min-width: 6em; text-align: left; white-space: normal;
  overflow-wrap: break-word; }
.sub { color: #57606a; font-size: .85em; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #f6f8fa; padding: 0 3px; border-radius: 3px; }
.verdict { font-weight: 600; }
.better { color: #1a7f37; } .worse { color: #cf222e; }
.equivalent { color: #0969da; } .undecided { color: #6e7781; }
"""

# A displayed column: its header, the source columns it reads, and how their values read.
Column = tuple[str, tuple[str, ...], Callable[..., str]]
COMPARISON_COLUMN: Column = ("Comparison", ("candidate", "reference"), lambda c, r: f"{c} vs {r}")
VERDICT_COLUMN: Column = ("Verdict", ("verdict",), str)


def missing(*values) -> bool:
    return any(value is None or (isinstance(value, float) and np.isnan(value)) for value in values)


def signed(value: float) -> str:
    """Points with their sign and 2 decimals: +1.23, -0.40 (a minus sign, not a hyphen)."""
    return MISSING if missing(value) else f"{value:+.2f}".replace("-", MINUS)


def fixed(value: float, decimals: int) -> str:
    return MISSING if missing(value) else f"{value:.{decimals}f}".replace("-", MINUS)


def interval(low: float, high: float) -> str:
    """A signed interval in points: [-1.50, -0.90]."""
    return MISSING if missing(low, high) else f"[{signed(low)}, {signed(high)}]"


def p_value(value: float) -> str:
    """A p-value with 3 significant digits: 0.0500, 0.00322, 1.00."""
    return MISSING if missing(value) else f"{value:#.3g}"


def percent(fraction: float) -> str:
    return MISSING if missing(fraction) else f"{100 * fraction:.1f}%"


def count(value: float) -> str:
    return MISSING if missing(value) else f"{int(value)}"


def verdict_class(verdict: str) -> str:
    """The colour class of a verdict: its own word, or undecided for any other."""
    return verdict if verdict in VERDICT_CLASSES else "undecided"


def verdict_html(verdict: str) -> str:
    return f"<span class='verdict {verdict_class(verdict)}'>{html.escape(verdict)}</span>"


def display_frame(frame: pd.DataFrame, columns: Sequence[Column]) -> pd.DataFrame:
    """`frame`'s rows as text under readable headers: a column per (header, sources, format)
    whose sources `frame` has, with at least one value, each cell formatted from them."""
    shown = {}
    for header, sources, format_cell in columns:
        if set(sources) <= set(frame.columns) and frame[list(sources)].notna().any().any():
            cells = frame[list(sources)].itertuples(index=False, name=None)
            shown[header] = [format_cell(*values) for values in cells]
    return pd.DataFrame(shown)


def cell_html(text: str) -> str:
    """A cell's text, its second line (an interval) set smaller below the first."""
    first, _, second = html.escape(text).partition("\n")
    return f"{first}<br><span class='sub'>{second}</span>" if second else first


def table_html(frame: pd.DataFrame, labels: int = 1) -> str:
    """A table of text cells under `frame`'s headers; its first `labels` columns are words
    (left-aligned, wrapping), the others numbers; a Verdict column's words are coloured."""

    def kind(index: int) -> str:
        return " class='label'" if index < labels else ""

    def cell(index: int, header: str, text: str) -> str:
        content = verdict_html(text) if header == "Verdict" else cell_html(text)
        return f"<td{kind(index)}>{content}</td>"

    head = "".join(
        f"<th{kind(index)}>{html.escape(header)}</th>" for index, header in enumerate(frame.columns)
    )
    rows = "".join(
        "<tr>"
        + "".join(cell(i, header, text) for i, (header, text) in enumerate(row.items()))
        + "</tr>"
        for _, row in frame.iterrows()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def sentence_case(words: str) -> str:
    return words[:1].upper() + words[1:]


def metric_tables(frame: pd.DataFrame, display, render) -> list[tuple[str, str]]:
    """Per metric of `frame` (in its order), the metric's name and its rows' table: `display`
    makes the rows text, `render` the text a table."""
    return [
        (sentence_case(METRIC_NAMES.get(metric, metric)), render(display(rows)))
        for metric, rows in frame.groupby("metric", sort=False)
    ]


def table_markdown(frame: pd.DataFrame) -> str:
    """The same table in markdown, each cell on one line, its text kept as written."""
    return frame.replace("\n", " ", regex=True).to_markdown(index=False, disable_numparse=True)


def text_html(text: str) -> str:
    """`text`'s paragraphs (blank-line separated), its **bold** and `code` marks kept."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        words = html.escape(paragraph)
        words = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", words)
        words = re.sub(r"`(.+?)`", r"<code>\1</code>", words)
        paragraphs.append(f"<p>{words}</p>")
    return "".join(paragraphs)


def figure_html(figure: plt.Figure, alt: str) -> str:
    """The figure as an inline PNG, scaled down to the page's width when wider."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></figure>"


def drawn_figure_html(figure: plt.Figure, alt: str) -> str:
    """A figure drawn for the page alone: inlined, then closed."""
    try:
        return figure_html(figure, alt)
    finally:
        plt.close(figure)


def section_html(heading: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>{''.join(parts)}</section>"


def note_html(words: str) -> str:
    return f"<p class='note'>{html.escape(words)}</p>"


def page_html(title: str, parts: Sequence[str]) -> str:
    """A self-contained page: `title` as its heading, then `parts` (HTML) in order."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{''.join(parts)}</main></body></html>"
    )
