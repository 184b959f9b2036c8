"""What the instructor gets: grades.csv, one feedback page per submission, a score histogram.

Every file is written atomically (a temporary file in the same folder, then os.replace), so a
grader killed mid-write leaves the previous version, never half a file.
"""

from __future__ import annotations

import csv
import html
import io
import os
import tempfile
from collections import Counter
from pathlib import Path

import plotly.graph_objects as go

from .results import STATUSES

CSV_FIELDS = ("submission", "lab", "points", "max_points", "status", "reason")


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def number(x: float) -> str:
    return f"{x:g}"


def csv_text(text) -> str:
    """A CSV cell a spreadsheet shows as text: one line, and no formula (=, +, -, @ lead with ')."""
    text = " ".join(str(text).splitlines())
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def grades_csv(results: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in sorted(results, key=lambda r: r["submission"]):
        row = {k: csv_text(r[k]) for k in CSV_FIELDS}
        writer.writerow(
            {**row, "points": number(r["points"]), "max_points": number(r["max_points"])}
        )
    return buffer.getvalue()


def _md(text) -> str:
    """Learner-controlled text made inline Markdown: one line, no HTML, no table breaks."""
    text = " ".join(str(text).splitlines())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def feedback_markdown(result: dict) -> str:
    """The learner-facing page: the score, a table of checks, then what to fix and why."""
    lines = [
        f"# Feedback: {_md(result['submission'])}",
        "",
        f"**Lab:** {result['lab']}  ",
        f"**Score:** {number(result['points'])} / {number(result['max_points'])}  ",
        f"**Status:** {result['status']}: {_md(result['reason'])}",
        "",
        "| Check | Points | Result |",
        "|---|---|---|",
    ]
    for c in result["checks"]:
        verdict = "passed" if c["passed"] else ("not run" if not c["ran"] else "failed")
        lines.append(
            f"| {_md(c['name'])} | {number(c['points'])} / {number(c['max_points'])} | {verdict} |"
        )
    override = result.get("override")
    if override:
        lines += [
            "",
            f"**Adjusted by your instructor:** {number(override['graded_points'])} -> "
            f"{number(override['points'])} points"
            + (f": {_md(override['comment'])}" if override["comment"] else ""),
        ]
    failed = [c for c in result["checks"] if not c["passed"]]
    if failed:
        lines += ["", "## What to fix", ""]
        for c in failed:
            lines.append(f"- **{_md(c['name'])}**: {_md(c['message'])}")
            if c.get("hint"):
                lines.append(f"  *Hint:* {_md(c['hint'])}")
    errors = result.get("cell_errors") or []
    if errors:
        lines += ["", "## Cells that raised an error", ""]
        lines += [
            f"- {_md(e['cell'])}: {_md(e['ename'])}"
            + (f": {_md(e['evalue'])}" if e["evalue"] else "")
            for e in errors
        ]
    if result.get("interrupted"):
        lines += ["", "## Cells stopped by the time limit", ""]
        lines += [f"- {_md(cell)}" for cell in result["interrupted"]]
    if result.get("truncated"):
        lines += [
            "",
            "The notebook printed more than the grader keeps; the rest of its output was dropped.",
        ]
    lines += [
        "",
        "---",
        "The hidden checks call your functions with inputs drawn afresh for every grading run, so "
        "a",
        "function that only works for the examples in the notebook will not pass them.",
        "",
    ]
    return "\n".join(lines)


def score_figure(results: list[dict], lab: str = "", warning: str | None = None) -> go.Figure:
    """Points on a 0-to-max axis (one colour per status, so crashes stand apart from low
    scores) beside each check's pass rate."""
    from plotly.subplots import make_subplots

    counts = Counter(r["status"] for r in results)
    top = max((r["max_points"] for r in results), default=1) or 1
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.5, 0.5],
        horizontal_spacing=0.28,
        subplot_titles=("points per submission", "share of submissions passing each check"),
    )
    for status in STATUSES:
        points = [r["points"] for r in results if r["status"] == status]
        if points:
            fig.add_trace(
                go.Histogram(
                    x=points,
                    name=f"{status} ({counts[status]})",
                    xbins=dict(start=-0.5, end=top + 0.5, size=1),
                ),
                row=1,
                col=1,
            )
    rates = pass_rates(results)
    if rates:
        names = [_short(name, 45) for name in rates]
        fig.add_trace(
            go.Bar(
                x=[rate for rate, _ in rates.values()],
                y=names,
                orientation="h",
                name="pass rate",
                marker_color="#4c78a8",
                showlegend=False,
                text=[f"{rate:.0%} of {n}" for rate, n in rates.values()],
                textposition="auto",
            ),
            row=1,
            col=2,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=2)
        fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    fig.update_xaxes(
        range=[-0.5, top + 0.5], title_text=f"points (out of {number(top)})", row=1, col=1
    )
    fig.update_yaxes(title_text="submissions", row=1, col=1)
    fig.update_layout(
        barmode="stack",
        title=f"Scores{' · ' + lab if lab else ''} ({len(results)} submissions)",
        height=max(420, 60 + 28 * len(rates)),
    )
    if warning:
        fig.add_annotation(
            text=f"<b>{html.escape(warning[:160])}</b>",
            xref="paper",
            yref="paper",
            x=0,
            y=1.25,
            showarrow=False,
            font=dict(color="#b00020", size=13),
            align="left",
        )
        fig.update_layout(margin=dict(t=130))
    return fig


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def pass_rates(results: list[dict]) -> dict[str, tuple[float, int]]:
    """check name -> (share of submissions that passed it, submissions counted), in check order."""
    passed, seen = Counter(), Counter()
    for r in results:
        for c in r.get("checks", []):
            seen[c["name"]] += 1
            passed[c["name"]] += bool(c["passed"])
    return {name: (passed[name] / n, n) for name, n in seen.items()}


def failures_html(results: list[dict]) -> str:
    """Who failed what: one row per check, listing the submissions that did not pass it."""
    rates = pass_rates(results)
    rows = []
    for name, (rate, _) in rates.items():
        failed = sorted(
            r["submission"]
            for r in results
            if any(c["name"] == name and not c["passed"] for c in r.get("checks", []))
        )
        who = ", ".join(html.escape(f) for f in failed) or "nobody"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{rate:.0%}</td><td>{who}</td></tr>")
    return (
        "<h2>Who failed what</h2><table border=1 cellpadding=4 style='border-collapse:collapse'>"
        "<tr><th>check</th><th>passed</th><th>did not pass</th></tr>" + "".join(rows) + "</table>"
    )


def write_figure(
    fig: go.Figure, path: Path, extra_html: str = "", warning: str | None = None
) -> None:
    """HTML that works offline: plotly.js is written once next to it, not embedded in every page."""
    import plotly.offline

    bundle = path.parent / "plotly.min.js"
    if not bundle.exists():
        atomic_write(bundle, plotly.offline.get_plotlyjs())
    page = fig.to_html(include_plotlyjs="directory", full_html=True)
    banner = (
        (
            f"<p style='color:#b00020;font-weight:bold;border:2px solid #b00020;padding:8px'>"
            f"WARNING: {html.escape(warning)}</p>"
        )
        if warning
        else ""
    )
    page = page.replace("<body>", "<body>" + banner, 1).replace(
        "</body>", extra_html + "</body>", 1
    )
    atomic_write(path, page)
