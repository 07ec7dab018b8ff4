"""Reports of a study or a grid as files: markdown, and HTML pages that carry their figures."""

from __future__ import annotations

import base64
import io

import pandas as pd


def figure_base64(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode()


def report_markdown(text: str, summary: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    return (
        f"# Does dropout help?\n\n{text}\n\n## Per config (over seeds)\n\n"
        f"{summary.to_markdown(index=False, floatfmt='.4f')}\n\n## Paired comparisons\n\n"
        f"{comparisons.to_markdown(index=False, floatfmt='.4g')}\n"
    )


def html_report(title: str, text: str, body: str) -> str:
    """A page of its own: the title, `text`'s paragraphs (markdown marks dropped), then `body`."""
    paragraphs = "".join(
        f"<p>{paragraph.replace('**', '').replace('`', '')}</p>" for paragraph in text.split("\n\n")
    )
    return (
        f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1>{paragraphs}{body}</body></html>"
    )


def image_html(figure) -> str:
    return f"<img src='data:image/png;base64,{figure_base64(figure)}'>"


def report_html(text: str, summary, comparisons, curves_figure) -> str:
    return html_report(
        "Does dropout help?",
        text,
        f"<h2>Per config (over seeds)</h2>"
        f"{summary.to_html(index=False, float_format='{:.4f}'.format)}"
        f"<h2>Paired comparisons</h2>"
        f"{comparisons.to_html(index=False, float_format='{:.4g}'.format)}"
        f"<h2>Learning curves</h2>{image_html(curves_figure)}",
    )
