"""Readable results: HTML tables that wrap and escape, lines that stay visible when they
coincide."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from unmasked.presentation import (
    coinciding_traces,
    distinct_lines,
    failures_html,
    text_table_html,
)


def test_text_table_wraps_to_the_output_and_escapes_what_mathjax_and_html_would_read():
    rows = pd.DataFrame(
        [
            {"a": "costs $3 and $4 <b>not bold</b>", "b": ["x.py", "y.py"], "c": 1 / 3},
            {"a": "line one\nline two", "b": [], "c": float("nan")},
        ]
    )
    html = text_table_html(rows, {"a": "text", "b": "files", "c": "score"}, widths={"a": "60%"})
    # MathJax skips the table (an &#36; entity would not stop it: the browser decodes it first)
    assert "class='mathjax_ignore tex2jax_ignore'" in html and "costs $3 and $4" in html
    assert "<b>not bold</b>" not in html and "&lt;b&gt;" in html
    assert "width:100%" in html and "table-layout:fixed" in html and "pre-wrap" in html
    assert "x.py; y.py" in html and ">0.33<" in html and "line one\nline two" in html
    assert "<col style='width:60%'>" in html and html.count("<tr>") == 3


def test_text_table_cuts_long_text_and_reports_bad_columns():
    html = text_table_html([{"a": "x" * 50}], ["a"], max_chars=10)
    assert "x" * 9 + "…" in html and "x" * 10 not in html
    with pytest.raises(KeyError, match="no field b"):
        text_table_html([{"a": 1}], ["a", "b"])
    with pytest.raises(KeyError, match="widths for columns not shown: z"):
        text_table_html([{"a": 1}], ["a"], widths={"z": "10%"})
    with pytest.raises(ValueError, match="no columns"):
        text_table_html([{"a": 1}], [])


def test_failures_html_shows_probe_answer_truth_and_what_was_lost():
    failures = pd.DataFrame(
        [
            {
                "session": "s-1",
                "category": "factual_recall",
                "compactor": "extractive",
                "score": 1.0,
                "full_score": 5.0,
                "answer": "",
                "reference": "We chose postgres for $JSONB.",
                "missing": ["postgres"],
                "stale": [],
            }
        ]
    )
    html = failures_html(failures)
    assert "s-1\nfactual_recall\nextractive\nscore 1.0 (full 5.0)" in html
    assert "(empty)" in html and "missing: postgres\nstale: -" in html and "for $JSONB." in html
    assert "mathjax_ignore" in html


def _lines(*ys):
    fig = go.Figure()
    for name, y in zip("abc", ys):
        fig.add_scatter(name=name, x=[1, 2, 3], y=y, mode="lines+markers")
    return fig


def test_distinct_lines_styles_every_line_and_names_the_ones_that_coincide():
    fig = distinct_lines(_lines([0, 1, 2], [0, 1, 2], [0, 2, 4]))
    assert coinciding_traces(fig) == [("a", "b")]
    styles = {(t.line.dash, t.marker.symbol) for t in fig.data}
    assert len(styles) == 3, "each line its own dash and marker"
    assert fig.data[0].marker.size > fig.data[1].marker.size, (
        "the line underneath keeps a larger ring"
    )
    assert "a = b" in fig.layout.legend.title.text
    apart = distinct_lines(_lines([0, 1, 2], [0, 1, 2.5]))
    assert coinciding_traces(apart) == [] and not apart.layout.legend.title.text
