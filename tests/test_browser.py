"""The course as a learner meets it: each lecture notebook in a real JupyterLab, in Chromium.

One JupyterLab server (scratch HOME, fast mode, a clean copy of notebooks/) serves the module; each
notebook gets a fresh browser context. After Run All the page must show no error output, no
"Loading widget...", every widget and plotly figure rendered, no prose that MathJax typeset as math,
and no console error. Every control (slider, dropdown, checkbox, toggle buttons) must update the
outputs within CONTROL_RESPONSE_LIMIT_S, and animations must play. Screenshots and report.json (run
times, and each control's response time) land in tests/artifacts/screenshots/.

Without Chromium these tests skip and say so; with UNMASKED_REQUIRE_BROWSER=1 (CI) they fail.
Run only them with: UNMASKED_FAST=1 .venv/bin/pytest tests/test_browser.py -m browser
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import nbformat
import pytest
from browser.harness import (
    CHROMIUM_ARGS,
    LabServer,
    NotebookPage,
    analyse,
    browser_required,
    chromium_or_skip,
    copy_notebooks,
    mangled_math,
    split_console,
)

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
LECTURES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Per notebook, for Run All to finish. Fast mode keeps each notebook under a minute headless; the
# browser renders on the same 2 cores, so allow a wide margin.
RUN_TIMEOUT = float(os.environ.get("UNMASKED_BROWSER_TIMEOUT", "300"))

# Every ipywidgets control (slider, dropdown, checkbox, toggle buttons) in a notebook is changed
# once, and the time from the change until the outputs have finished updating is measured and
# reported in report.json. The course aims at 1 s on a quiet 2-core machine (#25); the test allows
# for a loaded CI machine that also runs the browser and the kernel on the same cores.
CONTROL_RESPONSE_LIMIT_S = 3.0
# A control whose change leaves every output as it was for this long changed nothing a learner can
# see.
NO_RESPONSE_S = 8.0
# Lectures that must show controls: a lecture whose controls all failed to render would otherwise
# pass.
MUST_HAVE_CONTROLS = {"00_welcome", "04_unmasking", "07_compaction", "09_calculators"}
MUST_ANIMATE = {"04_unmasking"}  # notebooks that must hold at least one plotly animation

# Problems that the browser tests found and that belong to a notebook's owner, not to these tests.
# Each entry: notebook stem -> [(substring of the problem, what to do)]. A matching problem is
# reported as a warning and in report.json instead of failing the test; delete the entry once it is
# fixed.
KNOWN_PROBLEMS: dict[str, list[tuple[str, str]]] = {}

TIMINGS: dict[str, dict] = {}


def _split_known(name: str, problems: list[str]) -> tuple[list[str], list[str]]:
    known = KNOWN_PROBLEMS.get(name, [])
    hits = [p for p in problems if any(k in p for k, _ in known)]
    for p in hits:
        why = next(w for k, w in known if k in p)
        warnings.warn(f"{name}: known problem, not failing the test: {p} -- {why}", stacklevel=2)
    return [p for p in problems if p not in hits], hits


# -- fixtures
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip("the browser tests")


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory):
    home = tmp_path_factory.mktemp("lab-home")
    copy_notebooks(ROOT / "notebooks", home / "notebooks")
    with LabServer(home) as server:
        yield server
    _write_timings()


@pytest.fixture(scope="module")
def browser(chromium, lab):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


@pytest.fixture
def open_page(browser, lab):
    """Open a notebook in a fresh browser context; closes it and shuts its kernel down
    afterwards."""
    pages: list[NotebookPage] = []

    def _open(path: str) -> NotebookPage:
        page = NotebookPage(browser, lab, path)
        pages.append(page)
        return page

    yield _open
    for page in pages:
        page.close()
    try:
        lab.shutdown_kernels()  # a finished notebook's kernel holds memory the next one needs
    except Exception:
        pass


def _write_timings() -> None:
    if TIMINGS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "report.json").write_text(json.dumps(TIMINGS, indent=2))


def _fail_message(report, lab: LabServer) -> str:
    return report.summary() + "\n--- jupyter lab log (tail) ---\n" + lab.log_tail(20)


# -- pure checks of the harness (no browser)
# ----------------------------------------------------------
def _out(**kw):
    base = dict(
        type="display_data",
        mimes=[],
        isWidget=False,
        isPlotly=False,
        isFigureWidget=False,
        nFigureWidgets=0,
    )
    base.update(kw)
    return base


def _dom(**kw):
    base = dict(
        found=True,
        text="",
        loading=False,
        widgetError=False,
        nPlots=0,
        nPlotsOk=0,
        visibleChildren=5,
        height=100,
        modelAlive=True,
    )
    base.update(kw)
    return base


def test_analyse_counts_rendered_and_reports_each_failure():
    inspection = {
        "loadingAnywhere": False,
        "cells": [
            {
                "index": 0,
                "executionCount": 1,
                "source": "fig",
                "outputs": [_out(isPlotly=True, dom=_dom(nPlots=1, nPlotsOk=1))],
            },
            {
                "index": 1,
                "executionCount": 2,
                "source": "VBox",
                "outputs": [
                    _out(
                        isWidget=True,
                        isFigureWidget=True,
                        nFigureWidgets=2,
                        dom=_dom(nPlots=2, nPlotsOk=1),
                    )
                ],
            },
            {
                "index": 2,
                "executionCount": 3,
                "source": "slider",
                "outputs": [_out(isWidget=True, dom=_dom(text="Loading widget...", loading=True))],
            },
            {
                "index": 3,
                "executionCount": 4,
                "source": "tqdm",
                "outputs": [_out(isWidget=True, dom=_dom(visibleChildren=0, modelAlive=False))],
            },
            {
                "index": 4,
                "executionCount": 5,
                "source": "broken view",
                "outputs": [_out(isWidget=True, dom=_dom(visibleChildren=0, modelAlive=True))],
            },
            {
                "index": 5,
                "executionCount": 6,
                "source": "1/0",
                "outputs": [
                    _out(type="error", ename="ZeroDivisionError", evalue="division by zero")
                ],
            },
            {"index": 6, "executionCount": None, "source": "after", "outputs": []},
        ],
    }
    counts, problems = analyse(inspection)
    assert counts["plots_expected"] == 3 and counts["plots_rendered"] == 1
    assert counts["widgets_expected"] == 4 and counts["widgets_closed"] == 1
    text = "\n".join(problems)
    assert "rendered 1 of 2 plots" in text
    assert "Loading widget" in text
    assert "alive but its view shows nothing" in text
    assert "ZeroDivisionError" in text
    assert "cell 6 ('after') did not run" in text
    assert "tqdm" not in text and "'fig'" not in text


@pytest.mark.parametrize(
    "text, mangled",
    [
        ("9is20turnsthateachsend150,000tokens", True),  # notebook 09's claims ledger before the fix
        ("9perhourand", True),
        ("150,000tokensperturn", True),
        ("O(n2)", False),
        ("pθ(x0∣xt)", False),
        ("softmax(QKT/dk)", False),
        ("2N", False),
        ("2di", False),  # notebook 01's $2d_i$ and $4 L d \\cdot n^2/2 = 2 L d n^2$
        ("4Ld⋅n2/2=2Ldn2", False),
        ("2a+b", False),
        ("0.43to", True),  # notebook 09's ledger, "$0.43 to $8.55"
        ("0.28,inception/mercury−2", True),
        ("tokens per turn", False),  # \\text{...} keeps its spaces
    ],
)
def test_mangled_math_tells_prose_from_math(text, mangled):
    assert (mangled_math(text) is not None) == mangled


def test_analyse_reports_prose_typeset_as_math():
    inspection = {
        "cells": [],
        "math": [
            {
                "index": 3,
                "cellType": "markdown",
                "source": "The ledger",
                "text": "9is20turnsthateachsend150,000",
            },
            {"index": 4, "cellType": "markdown", "source": "Attention", "text": "O(n2)"},
        ],
    }
    counts, problems = analyse(inspection)
    assert counts["math_typeset"] == 2
    assert len(problems) == 1 and "markdown cell 3" in problems[0] and "9is20turns" in problems[0]


def test_console_allow_list_only_ignores_listed_messages(monkeypatch):
    from browser import harness

    monkeypatch.setattr(harness, "CONSOLE_ALLOW", [(re.compile(r"favicon\.ico"), "example entry")])
    bad, ignored = split_console(
        [
            "console.error: Failed to load resource: 404 (at http://127.0.0.1:1/favicon.ico:0)",
            "console.error: TypeError: x is undefined",
        ]
    )
    assert bad == ["console.error: TypeError: x is undefined"]
    assert len(ignored) == 1 and "allowed:" in ignored[0]


def test_browser_required_reads_the_ci_switch(monkeypatch):
    monkeypatch.setenv("UNMASKED_REQUIRE_BROWSER", "1")
    assert browser_required()
    monkeypatch.setenv("UNMASKED_REQUIRE_BROWSER", "0")
    assert not browser_required()
    monkeypatch.delenv("UNMASKED_REQUIRE_BROWSER")
    assert not browser_required()


# -- the lecture notebooks in the browser
# -------------------------------------------------------------
def _check_controls(page: NotebookPage, name: str) -> tuple[list[dict], list[str]]:
    """Change each control once; (one record per control, the problems a learner would meet)."""
    records, problems = [], []
    controls = page.controls()
    for index, control in enumerate(controls):
        rec = page.measure_control(index, control, idle=NO_RESPONSE_S)
        records.append(rec)
        what = f"{rec['kind']} {rec['label']!r} ({rec['before']} -> {rec['after']})"
        if rec["after"] == rec["before"]:
            problems.append(f"{what}: the control did not take the change")
        elif not rec["changed"]:
            problems.append(
                f"{what}: nothing in the notebook's outputs changed in {NO_RESPONSE_S:g} s; "
                f"FigureWidgets in the kernel: {page.kernel_figures()}"
            )
        elif rec["timed_out"]:
            problems.append(
                f"{what}: the outputs were still changing {rec['response_s']} s after the change"
            )
        elif rec["response_s"] > CONTROL_RESPONSE_LIMIT_S:
            problems.append(
                f"{what}: the outputs took {rec['response_s']} s to update "
                f"(limit {CONTROL_RESPONSE_LIMIT_S} s)"
            )
    if controls:
        page.screenshot(SCREENSHOTS / f"{name}_controls.png")
    return records, problems


def _check_animations(page: NotebookPage) -> list[str]:
    notes = []
    for index in page.play_buttons():
        before = page.animation_step(index)
        page.press_play(index)
        deadline = time.monotonic() + 20
        after = before
        while time.monotonic() < deadline and after == before:
            page.page.wait_for_timeout(250)
            after = page.animation_step(index)
        assert after != before, (
            f"figure {index}: pressed play, the displayed step stayed at {before}"
        )
        page.page.wait_for_timeout(3000)  # let it play on, so the screenshot shows a later step
        page.figure_screenshot(index, SCREENSHOTS / f"{Path(page.path).stem}_play{index}.png")
        after = page.animation_step(index)
        notes.append(f"figure {index}: play moved {before} -> {after}")
    return notes


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("name", [p.stem for p in LECTURES])
def test_lecture_in_jupyterlab(name, lab, open_page):
    page = open_page(f"notebooks/{name}.ipynb")
    report = page.run_and_check(RUN_TIMEOUT, screenshot=SCREENSHOTS / f"{name}.png")
    report.problems, known = _split_known(name, report.problems)
    TIMINGS[name] = {**report.times, **report.counts, "known_problems": known}
    assert report.counts["executed"] > 0, _fail_message(report, lab)

    # Controls are timed even when the page shows other problems, so that report.json holds every
    # lecture's response times.
    t0 = time.monotonic()
    notes = []
    controls, control_problems = _check_controls(page, name)
    TIMINGS[name]["controls"] = controls
    if controls:
        slowest = max(controls, key=lambda r: r["response_s"] or 0)
        TIMINGS[name]["slowest_control"] = {k: slowest[k] for k in ("label", "response_s")}
    _write_timings()
    assert not report.problems, _fail_message(report, lab)
    if name in MUST_HAVE_CONTROLS:
        assert controls, f"{name}: no ipywidgets control in the page"
    if name in MUST_ANIMATE:
        assert page.play_buttons(), f"{name}: no plotly figure with a play button"
    notes += _check_animations(page)
    TIMINGS[name].update(interact_s=round(time.monotonic() - t0, 1), interactions=notes)
    # after each notebook, so a failing run still leaves the figures measured so far
    _write_timings()
    late, _ = split_console(page.console)
    assert not late, f"{name}: console errors during interaction:\n" + "\n".join(late)
    control_problems, known = _split_known(name, control_problems)
    TIMINGS[name]["known_problems"] += known
    assert not control_problems, (
        f"{name}: controls:\n" + "\n".join(control_problems) + "\n" + lab.log_tail(20)
    )


# -- the harness catches breakage
# ---------------------------------------------------------------------
PLANTED = [
    # A widget view whose model the kernel never created: Lab shows "Loading widget..." or
    # "Error displaying widget: model not found".
    "# planted: missing model\nfrom IPython.display import display\n"
    "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'no-such-model', "
    "'version_major': 2,"
    " 'version_minor': 0}, 'text/plain': 'Planted()'}, raw=True)",
    # A widget whose JavaScript throws while rendering.
    "# planted: render throws\nimport anywidget\n"
    "class Planted(anywidget.AnyWidget):\n"
    '    _esm = \'export default { render({ el }) { throw new Error("planted render failure"); } '
    "}'\n"
    "Planted()",
    # A plotly figure that plotly.js cannot draw (the layout must be an object).
    "# planted: invalid plotly\n"
    "display({'application/vnd.plotly.v1+json': {'data': [{'type': 'scatter', 'y': [1, 2]}], "
    "'layout': 5}}, raw=True)",
    # Controls: healthy outputs that must not be reported, including a closed progress bar.
    "# control: healthy figure\nimport plotly.graph_objects as go\ngo.Figure(go.Bar(y=[1, 3, 2]))",
    "# control: closed progress bar\nfrom tqdm.auto import tqdm\nfor _ in tqdm(range(3), "
    "leave=False):\n    pass",
    # Anything fetched from the internet: the course must work offline.
    "# planted: needs the internet\nfrom IPython.display import HTML\n"
    'HTML(\'<img src="https://cdn.example.invalid/planted.png" alt="planted">\')',
    # Dollars in an HTML output: two of them make MathJax read the text between as math.
    "# planted: html dollars\nfrom IPython.display import HTML\n"
    "HTML('<p>The $9 row: 20 turns that each send $150,000 tokens in all.</p>')",
    # An entity is decoded before MathJax reads the page, so &#36; is typeset like $ (recorded, not
    # asserted); MathJax's own escape \\$ and its mathjax_ignore class work.
    "# escape: html entity\nfrom IPython.display import HTML\n"
    "HTML('<p>The &#36;9 row: 20 turns that each send &#36;150,000 tokens in all.</p>')",
    "# control: html backslash\nfrom IPython.display import HTML\n"
    "HTML(r'<p>The \\$9 row: 20 turns that each send \\$150,000 tokens in all.</p>')",
    "# control: html mathjax_ignore\nfrom IPython.display import HTML\n"
    'HTML(\'<p class="mathjax_ignore">The $9 row: 20 turns that each send $150,000 tokens in '
    "all.</p>')",
    "# control: widgets.HTML\nimport ipywidgets as W\n"
    "W.HTML('<p>The $9 row: 20 turns that each send $150,000 tokens in all.</p>')",
    # Controls: one that answers at once, one slower than the limit, one that changes nothing
    # visible.
    "# control: quick dropdown\nimport ipywidgets as W\n"
    "quick, quick_out = W.Dropdown(options=['a', 'b'], description='planted quick'), W.HTML('a')\n"
    "quick.observe(lambda c: setattr(quick_out, 'value', 'picked ' + c['new']), names='value')\n"
    "W.VBox([quick, quick_out])",
    "# planted: slow slider\nimport time\nimport ipywidgets as W\n"
    "slow = W.IntSlider(value=0, min=0, max=5, description='planted slow', "
    "continuous_update=False)\n"
    "slow_out = W.HTML('0')\n"
    f"slow.observe(lambda c: (time.sleep({CONTROL_RESPONSE_LIMIT_S + 1.5}), setattr(slow_out, "
    "'value', str(c['new']))),"
    " names='value')\nW.VBox([slow, slow_out])",
    "# planted: inert checkbox\nimport ipywidgets as W\nW.Checkbox(value=False, "
    "description='planted inert')",
    "# planted: raises\nraise ValueError('planted error')",
    "# planted: never runs\nprint('after the error')",
]
PLANTED_MARKDOWN = [
    # Two dollar amounts in prose: MathJax reads "9 per hour ... " as math and drops its spaces.
    "<!-- planted: markdown dollars -->\nA run costs $9 per hour and $150,000 per year.",
    # JupyterLab's Markdown renderer unescapes \\$ before MathJax sees it, so one backslash is not
    # enough (jupyterlab/jupyterlab#8645); two are. Whether one is, is recorded, not asserted.
    "<!-- escape: one backslash -->\nA run costs \\$9 per hour and \\$150,000 per year.",
    "<!-- control: two backslashes -->\nA run costs \\\\$9 per hour and \\\\$150,000 per year.",
    "<!-- control: real math -->\nAttention costs $O(n^2)$ and the model learns $p_\\theta(x_0 "
    "\\mid x_t)$.",
]


@pytest.mark.browser
@pytest.mark.slow
def test_planted_breakage_is_reported(lab, open_page):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    nb.cells = [nbformat.v4.new_markdown_cell(src) for src in PLANTED_MARKDOWN]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in PLANTED]
    (lab.home / "planted").mkdir(exist_ok=True)
    nbformat.write(nb, lab.home / "planted" / "planted_broken.ipynb")

    page = open_page("planted/planted_broken.ipynb")
    report = page.run_and_check(RUN_TIMEOUT, screenshot=SCREENSHOTS / "planted_broken.png")
    TIMINGS["planted_broken"] = {**report.times, **report.counts}
    problems = report.problems

    def reported(tag: str, *needles: str) -> bool:
        return any(tag in p and any(n in p for n in needles) for p in problems)

    summary = report.summary()
    assert reported("planted: missing model", "model not found", "Loading widget"), summary
    assert reported("planted: render throws", "view shows nothing"), summary
    assert any("planted render failure" in p for p in report.console_errors), summary
    assert reported("planted: invalid plotly", "no element", "rendered 0 of 1"), summary
    assert reported("planted: raises", "ValueError: planted error"), summary
    assert reported("planted: never runs", "did not run"), summary
    assert any(
        "outside 127.0.0.1" in m and "cdn.example.invalid" in m for m in report.console_errors
    ), summary
    assert not any("control:" in p for p in problems), summary
    assert report.counts["widgets_closed"] >= 1 and report.counts["plots_rendered"] >= 1, summary
    assert reported("planted: markdown dollars", "MathJax typeset prose"), summary
    assert reported("planted: html dollars", "MathJax typeset prose"), summary
    assert report.counts["math_typeset"] >= 2, (
        summary
    )  # the real math was typeset, and not reported
    TIMINGS["planted_broken"]["escapes_typeset_as_math"] = {
        tag: reported(tag, "MathJax typeset prose")
        for tag in ("escape: one backslash", "escape: html entity")
    }

    controls, control_problems = _check_controls(page, "planted_broken")
    TIMINGS["planted_broken"]["controls"] = controls
    _write_timings()
    text = "\n".join(control_problems) + f"\n{controls}"
    by_label = {c["label"]: c for c in controls}
    assert set(by_label) >= {"planted quick", "planted slow", "planted inert"}, text
    assert by_label["planted quick"]["response_s"] < CONTROL_RESPONSE_LIMIT_S, text
    assert by_label["planted slow"]["response_s"] > CONTROL_RESPONSE_LIMIT_S, text
    assert any("'planted slow'" in p and "limit" in p for p in control_problems), text
    assert any("'planted inert'" in p and "nothing" in p for p in control_problems), text
    assert not any("'planted quick'" in p for p in control_problems), text


def test_known_problems_are_warned_not_hidden(monkeypatch):
    monkeypatch.setitem(
        KNOWN_PROBLEMS, "09_calculators", [("does not show its 'title", "planted: fix the title")]
    )
    problems = [
        "cell 3 ('x'): plotly figure does not show its 'title: Cumulative session cost'",
        "cell 4 ('y') raised ValueError: boom",
    ]
    with pytest.warns(UserWarning, match="known problem"):
        left, known = _split_known("09_calculators", problems)
    assert left == ["cell 4 ('y') raised ValueError: boom"] and len(known) == 1
    assert _split_known("00_welcome", problems) == (problems, [])
