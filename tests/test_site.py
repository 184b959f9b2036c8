"""`make site`: the executed lectures as static HTML that reads offline (unmasked.site).

The pages typeset math with MathJax and draw ```mermaid fences with Mermaid, both copied into the
site from node_modules/ (`npm ci`, which `make setup` runs). Without them the tests that need them
skip and say so; in CI (CI=true or UNMASKED_REQUIRE_BROWSER=1) they fail. The browser test opens a
page from disk in Chromium with every request that is not a local file refused, as in
tests/browser/harness.py: it skips without Chromium, and fails without it under
UNMASKED_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from browser.harness import (
    CHROMIUM_ARGS,
    browser_required,
    chromium_or_skip,
    mangled_math,
)

from unmasked import site

# A Markdown cell as the lectures write it: math, a price written with \$ (one backslash, and two
# as JupyterLab needs), and a Mermaid diagram.
MATH_AND_DIAGRAM = r"""# Math and a diagram

The cost grows as $x^2$ in the length, and

$$\sum_{i=1}^{n} i = \frac{n(n+1)}{2}$$

The planner is \$3/M input and \$15/M output; the compactor \\$0.25/M and \\$0.75/M.

```mermaid
flowchart LR
    H["history"] --> T{"over the threshold?"}
    T -- "yes" --> C["compactor"]
    C --> P["planner"]
```
"""
MONEY = [
    "The planner is $3/M input and $15/M output",
    "the compactor $0.25/M and $0.75/M.",
]
HTML_OUTPUT_MONEY = "$9 is 20 turns and $"  # a text/html output's dollars are not math either
DIAGRAM_LABELS = ["history", "over the threshold?", "yes", "compactor", "planner"]


def _ci() -> bool:
    return browser_required() or os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """node_modules/ with MathJax and Mermaid as package.json pins them; skip (fail in CI)
    without."""
    path = site.ROOT / "node_modules"
    missing = [
        f"{pkg}/{rel}"
        for pkg, script in site.JS_PACKAGES.items()
        for rel in (script, "LICENSE", "package.json")
        if not (path / pkg / rel).is_file()
    ]
    if missing:
        reason = f"{path} lacks {', '.join(missing)}: run `npm ci` (make setup does, given npm)"
        if _ci():
            pytest.fail(f"CI builds the site with MathJax and Mermaid, but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def _math_page(out: Path, node_modules: Path) -> Path:
    """A page built from a notebook that holds math, money, a diagram and math/HTML outputs,
    with its scripts beside it. Nothing executes: the outputs are written in."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(MATH_AND_DIAGRAM)]
    code = nbformat.v4.new_code_cell("show()")
    code.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/latex": "$\\displaystyle y^3$", "text/plain": "y**3"}
        ),
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": f"<table><tr><td>{HTML_OUTPUT_MONEY}</td></tr></table>"},
        ),
    ]
    nb.cells.append(code)
    site.copy_scripts(out, node_modules)
    page = out / "math.html"
    page.write_text(site.export_html(nb), encoding="utf-8")
    return page


def _notebook(title: str, code: list[str]):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    nb.cells = [nbformat.v4.new_markdown_cell(f"Intro line.\n\n# {title}\n\nSome *prose*.")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in code]
    return nb


def test_lecture_order_follows_the_readme_then_the_rest(tmp_path):
    paths = [tmp_path / f"{n}.ipynb" for n in ("00_a", "01_b", "02_c")]
    readme = tmp_path / "README.md"
    readme.write_text("| 01 | `01_b` — b |\n| 00 | `00_a` — a |\n| 09 | `09_missing` |\n")
    assert site.lecture_order(paths, readme) == [paths[1], paths[0], paths[2]]
    assert site.lecture_order(paths, None) == paths


def test_notebook_title_is_the_first_heading():
    assert (
        site.notebook_title(_notebook("01 · Why *context* hurts", [])) == "01 · Why context hurts"
    )
    assert site.notebook_title(nbformat.v4.new_notebook()) == ""


@pytest.mark.slow
def test_build_site_from_tiny_notebooks(tmp_path, node_modules):
    src = tmp_path / "notebooks"
    src.mkdir()
    figure = (
        "import plotly.graph_objects as go\nfrom unmasked import viz  # noqa: F401\n"
        "go.Figure(go.Bar(y=[1, 3, 2]), layout_title_text='tiny bars')"
    )
    slider = "import ipywidgets as W\nW.IntSlider(description='knob')"
    nbformat.write(_notebook("Tiny figure", [figure]), src / "00_figure.ipynb")
    nbformat.write(
        _notebook(
            "Tiny widget",
            [slider, "print('ran in fast mode:', __import__('os').environ.get('UNMASKED_FAST'))"],
        ),
        src / "01_widget.ipynb",
    )
    readme = tmp_path / "README.md"
    readme.write_text("| 01 | `01_widget` |\n| 00 | `00_figure` |\n")
    out = tmp_path / "site"

    pages = site.build_site(
        sorted(src.glob("*.ipynb")),
        out,
        readme=readme,
        node_modules=node_modules,
        log=lambda _: None,
    )

    index = (out / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
    assert links[-2:] == ["mathjax/LICENSE", "mermaid/LICENSE"]  # the shipped renderers' licences
    assert all((out / link).is_file() for link in links)
    links = links[:-2]
    assert links == ["01_widget.html", "00_figure.html"]  # README order, not file order
    assert "Tiny widget" in index and "Tiny figure" in index
    assert [p.name for p in pages] == links and all((out / link).is_file() for link in links)
    assert (
        out / site.PLOTLY_JS
    ).stat().st_size > 1_000_000  # plotly.js itself, once, beside the pages

    for page in [out / "index.html", *pages]:
        text = page.read_text()
        scripts = re.findall(r"<script[^>]*\bsrc=[\"']?([^\"' >]+)", text)
        assert all("://" not in s and not s.startswith("//") for s in scripts), (page.name, scripts)
        stylesheets = re.findall(r"<link[^>]*\bhref=[\"']?([^\"' >]+)", text)
        assert all("://" not in s for s in stylesheets), (page.name, stylesheets)
    figure_page = (out / "00_figure.html").read_text()
    assert (
        'src="plotly.min.js"' in figure_page
        and "Plotly.newPlot" in figure_page
        and "tiny bars" in figure_page
    )
    widget_page = (out / "01_widget.html").read_text()
    assert "needs a live kernel" in widget_page and "ran in fast mode: 1" in widget_page
    assert 'href="index.html"' in widget_page


@pytest.mark.slow
def test_build_site_from_notebooks_make_test_full_kept(tmp_path, node_modules, monkeypatch):
    """CI builds the site from the lectures make test-full has just run: the page shows that
    run's outputs (a random number the site could not print again), nothing is run twice, and the
    index says the mode the kept copies ran in."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_notebooks", site.ROOT / "benchmarks" / "bench_notebooks.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    src, kept = tmp_path / "notebooks", tmp_path / "kept"
    src.mkdir()
    lecture = src / "00_random.ipynb"
    draw = "import random, time\ntime.sleep(1.2)\nprint('drew', random.random())"
    nbformat.write(_notebook("Random", [draw]), lecture)
    monkeypatch.delenv("UNMASKED_FAST", raising=False)  # as make test-full runs them
    row = bench.run_notebook(lecture, timeout=300, keep=kept)
    assert row["error"] is None and row["run_all_s"] is not None
    drew = re.search(r"drew [0-9.]+", row["printed"]["1"]).group()

    def never(*_):
        raise AssertionError("a kept lecture was executed again")

    monkeypatch.setattr(site, "execute", never)
    out = tmp_path / "site"
    pages = site.build_site(
        [lecture], out, executed=kept, node_modules=node_modules, log=lambda _: None
    )

    assert drew in pages[0].read_text()
    index = (out / "index.html").read_text()
    assert "(default knobs)" in index and "00_random.html" in index
    seconds = site.run_all_seconds(nbformat.read(kept / lecture.name, as_version=4))
    assert seconds >= 1.2 and f"ran in {seconds:.0f} s" in index  # the run's, not a new one's


START, REPLY = "2026-12-04T10:00:00.000000Z", "2026-12-04T10:00:01.000000Z"


def _kept(tmp_path, cells: list[tuple[str, list]], ran=True, tags=()):
    """A lecture and an executed copy of it in tmp_path/kept: cells are (source, outputs). With
    ran=False the last cell started and never answered, as a timeout or a crash leaves it."""
    lecture = _notebook("Kept", [src for src, _ in cells])
    for cell in lecture.cells[1:]:
        cell.metadata["tags"] = list(tags)
    (tmp_path / "kept").mkdir(exist_ok=True)
    nbformat.write(lecture, tmp_path / "00_kept.ipynb")
    copy = nbformat.from_dict(json.loads(json.dumps(lecture)))
    for i, (cell, (_, outputs)) in enumerate(zip(copy.cells[1:], cells), 1):
        cell.outputs = [nbformat.v4.new_output(**o) for o in outputs]
        cell.execution_count = i  # nbclient numbers a cell as it starts
        cell.metadata["execution"] = {"iopub.execute_input": START, "shell.execute_reply": REPLY}
    if not ran:
        del copy.cells[-1].metadata["execution"]["shell.execute_reply"]
    copy.metadata["unmasked"] = {"fast_mode": True}
    nbformat.write(copy, tmp_path / "kept" / "00_kept.ipynb")
    return tmp_path / "00_kept.ipynb"


ERROR = {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []}


def test_read_executed_takes_a_whole_clean_run_of_the_same_lecture(tmp_path):
    printed = {"output_type": "stream", "name": "stdout", "text": "4\n"}
    lecture = _kept(tmp_path, [("print(2 + 2)", [printed]), ("x = 1", [])])
    nb = site.read_executed(lecture, tmp_path / "kept")
    assert nb.cells[1].outputs[0]["text"] == "4\n"
    assert nb.metadata["unmasked"] == {"fast_mode": True}
    # what nbclient lets through, the site does too: an error a cell is tagged to raise
    lecture = _kept(tmp_path, [("1 / 0", [ERROR])], tags=["raises-exception"])
    assert site.read_executed(lecture, tmp_path / "kept").cells[1].outputs[0]["ename"]


@pytest.mark.parametrize(
    "problem, says",
    [
        ("missing", "is missing: make test-full keeps"),
        ("raised", "cell 1 raised"),
        ("stopped mid-cell", "cell 2 never finished"),
        ("edited since", "was run from another version"),
    ],
)
def test_read_executed_refuses_a_copy_the_site_must_not_show(tmp_path, capsys, problem, says):
    outputs = [ERROR] if problem == "raised" else []
    cells = [("1 / 0", outputs), ("while True: pass", [])]
    lecture = _kept(tmp_path, cells, ran=problem != "stopped mid-cell")
    if problem == "missing":
        (tmp_path / "kept" / "00_kept.ipynb").unlink()
    if problem == "edited since":
        nb = nbformat.read(lecture, as_version=4)
        nb.cells[1].source = "1 / 1"
        nbformat.write(nb, lecture)
    with pytest.raises(site.UnusableExecution, match=re.escape(says)):
        site.read_executed(lecture, tmp_path / "kept")
    # the command line says the same in a line, not a traceback, and writes nothing
    code = site.main(
        [str(lecture), "--executed", str(tmp_path / "kept"), "--out", str(tmp_path / "site")]
    )
    assert code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_executed_and_defaults_do_not_go_together(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        site.main(["--executed", str(tmp_path), "--defaults", "--out", str(tmp_path / "site")])
    assert exit_.value.code == 2 and "--defaults would run them again" in capsys.readouterr().err


def test_run_all_seconds_spans_first_start_to_last_reply():
    nb = nbformat.v4.new_notebook()
    stamps = [("2026-12-04T10:00:00.000000Z", "2026-12-04T10:00:02.500000Z"), (None, None)]
    stamps.append(("2026-12-04T10:00:03.000000Z", "2026-12-04T10:00:10.250000Z"))
    for start, end in stamps:
        cell = nbformat.v4.new_code_cell("pass")
        if start:
            cell.metadata["execution"] = {"iopub.execute_input": start, "shell.execute_reply": end}
        nb.cells.append(cell)
    assert site.run_all_seconds(nb) == pytest.approx(10.25)
    assert site.run_all_seconds(nbformat.v4.new_notebook()) is None


def test_math_and_mermaid_reach_the_page_for_the_local_renderers():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(MATH_AND_DIAGRAM)]
    page = site.export_html(nb)

    scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", page)
    assert site.MATHJAX_JS in scripts and site.MERMAID_JS in scripts, scripts
    assert not [s for s in scripts if "://" in s or s.startswith("//")], scripts
    # nbconvert's Mermaid markup, with the diagram's source for mermaid.run to draw
    block = re.search(r'<div class="jp-Mermaid"><pre class="mermaid">(.*?)</pre>', page, re.S)
    assert block and block.group(1).strip().startswith("flowchart LR"), page[-3000:]
    assert "&quot;over the threshold?&quot;" in block.group(1) or '"over the threshold?"' in (
        block.group(1)
    )
    # math delimited as \\(...\\) and \\[...\\]; the prices stay plain text with their dollars
    assert r"\(x^2\)" in page and r"\[\sum_{i=1}^{n} i = \frac{n(n+1)}{2}\]" in page
    assert "The planner is $3/M input and $15/M output" in page
    assert "the compactor \\$0.25/M and \\$0.75/M." in page  # which MathJax shows as "$"
    config = json.loads(re.search(r"window\.MathJax = (\{.*?\});</script>", page).group(1))
    assert config["tex"]["inlineMath"] == [["\\(", "\\)"]]  # a bare $ never opens math
    assert config["tex"]["displayMath"] == [["\\[", "\\]"]]


def test_copy_scripts_ships_each_renderer_with_its_licence(tmp_path, node_modules):
    versions = site.copy_scripts(tmp_path, node_modules)

    pins = json.loads((site.ROOT / "package.json").read_text())["dependencies"]
    assert versions == pins  # the versions package.json pins are the ones shipped
    for package, script in site.JS_PACKAGES.items():
        shipped = tmp_path / package / Path(script).name
        assert shipped.read_bytes() == (node_modules / package / script).read_bytes()
        assert shipped.stat().st_size > 500_000, shipped  # the renderer itself, not a loader stub
    assert "Apache License" in (tmp_path / "mathjax" / "LICENSE").read_text()
    assert "MIT License" in (tmp_path / "mermaid" / "LICENSE").read_text()
    assert (tmp_path / site.PLOTLY_JS).is_file()


def test_copy_scripts_without_npm_ci_says_what_to_run(tmp_path):
    with pytest.raises(site.MissingJavaScript, match="npm ci"):
        site.copy_scripts(tmp_path / "site", tmp_path / "no_node_modules")
    assert site.main(["--out", str(tmp_path / "site"), "--node-modules", str(tmp_path)]) == 2


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip("the site's browser test")


# What the page shows once MathJax and Mermaid are done: each <mjx-container> (its display flag,
# the text MathJax read as math from its assistive MathML, and its SVG's size), each diagram's SVG
# (size and labels), and the page's text outside the math.
JS_RENDERED = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const math = [...document.querySelectorAll('mjx-container')].map((n) => ({
    display: n.getAttribute('display') === 'true',
    text: (n.querySelector('mjx-assistive-mml') || n).textContent,
    svg: n.querySelector('svg') ? box(n.querySelector('svg')) : null,
  }));
  const diagrams = [...document.querySelectorAll('.jp-Mermaid')].map((d) => {
    const svg = d.querySelector('svg');
    return {svg: svg ? box(svg) : null,
            labels: svg ? [...svg.querySelectorAll('.nodeLabel, .edgeLabel')].map(
              (l) => l.textContent.trim()).filter((t) => t) : [],
            error: !!d.querySelector('.error-icon')};
  });
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('mjx-container, .jp-Mermaid, style').forEach((n) => n.remove());
  return {math, diagrams, text: main.textContent, mermaid: document.body.dataset.mermaid};
}"""


def test_page_draws_math_and_diagrams_offline_in_chromium(tmp_path, node_modules, chromium):
    from playwright.sync_api import sync_playwright

    page_path = _math_page(tmp_path / "site", node_modules)
    problems, loaded = [], []

    def only_local_files(route):
        if route.request.url.startswith("file://"):
            loaded.append(route.request.url.rsplit("/site/", 1)[-1])
            route.continue_()
        else:  # the page must not need the network
            problems.append(f"request to {route.request.url}")
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)
            context.route("**/*", only_local_files)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto(page_path.as_uri())
            page.wait_for_function("document.body.dataset.mermaid === 'done'", timeout=120_000)
            page.evaluate("MathJax.startup.promise")
            shown = page.evaluate(JS_RENDERED)
            page.screenshot(path=str(tmp_path / "math.png"), full_page=True)
        finally:
            browser.close()

    assert problems == [], problems
    assert sorted(loaded) == sorted(
        ["math.html", site.PLOTLY_JS, site.MATHJAX_JS, site.MERMAID_JS]
    ), loaded
    # the three pieces of math, typeset as SVG: x^2 inline, the sum displayed, the latex output
    assert [(m["display"], m["text"]) for m in shown["math"]] == [
        (False, "x2"),
        (True, "∑i=1ni=n(n+1)2"),
        (False, "y3"),
    ], shown["math"]
    assert all(m["svg"] and m["svg"][0] > 5 and m["svg"][1] > 5 for m in shown["math"]), shown
    assert not [m["text"] for m in shown["math"] if mangled_math(m["text"])]
    # the prices read as prices, and no TeX source is left for a reader to see
    for money in [*MONEY, HTML_OUTPUT_MONEY]:
        assert money in shown["text"], (money, shown["text"])
    assert "\\(" not in shown["text"] and "\\[" not in shown["text"], shown["text"]
    # the diagram is drawn: an SVG of real size holding every node and edge label
    assert shown["mermaid"] == "done"
    [diagram] = shown["diagrams"]
    assert not diagram["error"] and diagram["svg"][0] > 200 and diagram["svg"][1] > 50, diagram
    assert set(diagram["labels"]) == set(DIAGRAM_LABELS), diagram
    assert "flowchart LR" not in shown["text"]  # the fence's source is not shown as code
