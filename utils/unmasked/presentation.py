"""Making results readable in JupyterLab: long text as tables that wrap, lines that don't hide.

A plotly Table has a fixed width and height and does not wrap a line that has a break
elsewhere in its cell, so answers of several hundred characters end clipped on the right with
empty space below. An HTML table wraps to the output area's width and grows to its content.

Two `$` in an HTML output make MathJax typeset the text between them. Writing `$` as `&#36;`
does not prevent it (the browser decodes the entity before MathJax reads the text); the class
`mathjax_ignore` (MathJax 3, JupyterLab 4) and `tex2jax_ignore` (MathJax 2) on the table does,
and the `$` stays a `$` to copy. Checked in JupyterLab 4.6.6.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

# (dash, line width, marker symbol, marker size): the first line wide with large open rings, the
# next ones thinner, dashed and with smaller markers, so that a line drawn over an identical one
# leaves the first one's ring and edges in sight.
LINE_STYLES = (
    ("solid", 5, "circle-open", 15),
    ("dash", 2, "diamond", 8),
    ("dot", 2, "square", 6),
    ("dashdot", 2, "x", 6),
    ("longdash", 2, "triangle-up", 6),
)


NO_MATH = "mathjax_ignore tex2jax_ignore"  # classes MathJax 3 and 2 skip


def _cell(value, max_chars: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        value = f"{value:.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, (list, tuple, set)):
        value = "; ".join(str(v) for v in value)
    text = str(value)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return html.escape(text)


def text_table_html(
    rows,
    columns: Mapping[str, str] | Sequence[str],
    *,
    widths: Mapping[str, str] | None = None,
    max_chars: int = 700,
    caption: str = "",
) -> str:
    """An HTML table of `rows` (a DataFrame or dicts) that wraps long text to the output's width.

    `columns` maps a field to its header (or lists the fields); `widths` gives some columns a
    CSS width ("30%"), the rest share what is left. Line breaks in a value are kept, lists are
    joined with "; ", floats shown with up to 2 decimals, and text over `max_chars` is cut
    with "…".
    """
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    rows = list(rows)
    headers = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    if not headers:
        raise ValueError("no columns to show")
    missing = sorted({c for c in headers for r in rows if c not in r})
    if missing:
        raise KeyError(f"rows have no field {', '.join(missing)}; fields: {', '.join(rows[0])}")
    widths = dict(widths or {})
    unknown = sorted(set(widths) - set(headers))
    if unknown:
        raise KeyError(f"widths for columns not shown: {', '.join(unknown)}")
    cell = (
        "text-align:left;vertical-align:top;white-space:pre-wrap;overflow-wrap:anywhere;"
        "padding:4px 8px;border-bottom:1px solid #ddd"
    )
    cols = "".join(f"<col style='width:{widths[c]}'>" if c in widths else "<col>" for c in headers)
    head = "".join(
        f"<th style='{cell};border-bottom:2px solid #999'>{html.escape(str(h))}</th>"
        for h in headers.values()
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td style='{cell}'>{_cell(r[c], max_chars)}</td>" for c in headers)
        + "</tr>"
        for r in rows
    )
    top = (
        f"<caption style='text-align:left;font-weight:bold'>{html.escape(caption)}</caption>"
        if caption
        else ""
    )
    return (
        f"<table class='{NO_MATH}' "
        "style='width:100%;table-layout:fixed;border-collapse:collapse;font-size:13px'>"
        f"{top}<colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def failures_html(failures, *, max_chars: int = 700) -> str:
    """evaluation.worst_failures as a table: the probe, the answer from the compacted context,
    the truth, and what was missing or stated stale."""
    rows = []
    for r in failures.to_dict("records") if hasattr(failures, "to_dict") else failures:
        rows.append(
            {
                "probe": f"{r['session']}\n{r['category']}\n{r['compactor']}\n"
                f"score {r['score']:.1f} (full {r.get('full_score', r['score']):.1f})",
                "answer": r["answer"] or "(empty)",
                "reference": r["reference"],
                "lost": "missing: "
                + "; ".join(r.get("missing") or ["-"])
                + "\nstale: "
                + "; ".join(r.get("stale") or ["-"]),
            }
        )
    headers = {
        "probe": "probe",
        "answer": "answer from the compacted context",
        "reference": "truth (reference answer)",
        "lost": "missing / stale",
    }
    return text_table_html(
        rows,
        headers,
        widths={"probe": "17%", "answer": "41%", "reference": "24%"},
        max_chars=max_chars,
    )


def coinciding_traces(fig, *, tol: float = 1e-9) -> list[tuple[str, str]]:
    """Pairs of named traces that draw the same points (same x and y, within `tol`)."""
    traces = [t for t in fig.data if t.x is not None and t.y is not None]
    pairs = []
    for i, a in enumerate(traces):
        for b in traces[i + 1 :]:
            if len(a.x) == len(b.x) and all(
                abs(float(p) - float(q)) <= tol for p, q in zip([*a.x, *a.y], [*b.x, *b.y])
            ):
                pairs.append((a.name, b.name))
    return pairs


def distinct_lines(fig, *, note: bool = True):
    """Give each line trace its own dash and marker, so an identical line drawn over it stays seen.

    With `note`, the legend's title says which lines coincide. Returns the figure.
    """
    lines = [t for t in fig.data if getattr(t, "mode", None) and "lines" in t.mode]
    for trace, (dash, width, symbol, size) in zip(
        lines, LINE_STYLES * (len(lines) // len(LINE_STYLES) + 1)
    ):
        trace.update(line={"dash": dash, "width": width}, marker={"symbol": symbol, "size": size})
    if note:
        same = coinciding_traces(fig)
        if same:
            said = "; ".join(f"{a} = {b}" for a, b in same)
            fig.update_layout(
                legend_title_text=f"same points, lines overlap:<br>{html.escape(said)}"
            )
    return fig
