"""Build a static HTML site of the executed lectures: `python -m unmasked.site --out site`.

Each lecture is executed (fast mode unless --defaults) and exported with nbconvert's lab template,
then an index page lists the lectures in the README's order. The site reads offline, even opened
from disk: the template's CDN scripts (require.js, MathJax, Mermaid, the widget manager) are left
out, and what the pages need is copied once beside them and loaded from there: plotly.js from the
plotly package, and MathJax (math typeset as SVG, so no font files) and Mermaid (diagrams drawn from
the ```mermaid fences) from the npm packages that package.json pins, with their licence files.
`npm ci` installs those into node_modules/ (`make setup` runs it). Widgets need a live kernel, so a
widget output becomes a note that says so. With --executed DIR the lectures are not run again:
the copies another run left in DIR are exported (CI passes make test-full's build/test-full, which
ran them at their default knobs a moment before), and a copy that raised, stopped early, or came
from another version of the lecture is refused.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from jinja2 import DictLoader, pass_context
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_JS = "plotly.min.js"
ROOT = Path(__file__).resolve().parents[2]  # the repository: package.json, node_modules/

# The one script the pages load from each npm package that package.json pins. It is copied from
# node_modules/<package>/ to <site>/<package>/, with the package's LICENSE beside it.
JS_PACKAGES = {"mathjax": "es5/tex-svg-full.js", "mermaid": "dist/mermaid.min.js"}
MATHJAX_JS = "mathjax/" + Path(JS_PACKAGES["mathjax"]).name
MERMAID_JS = "mermaid/" + Path(JS_PACKAGES["mermaid"]).name

# MathJax typesets what nbconvert's Markdown parser read as math (_MathRenderer writes it as \(...\)
# or \[...\]) and LaTeX environments, not every pair of dollar signs on the page; \$ shows "$".
# <pre> and <code> (code, text outputs) are skipped, as in the lab. SVG output needs no font files,
# so the math also typesets in a page opened from disk.
_MATHJAX_CONFIG = {
    "tex": {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
    },
    "svg": {"fontCache": "global"},
}

# Mermaid draws each fence that nbconvert emits as <div class="jp-Mermaid"><pre class="mermaid">;
# the body's data-mermaid says when it is done (the test waits for it).
_MERMAID_RUN = """
document.addEventListener("DOMContentLoaded", async () => {
  const blocks = document.querySelectorAll(".jp-Mermaid > pre.mermaid");
  if (!blocks.length) return;
  if (!window.mermaid) {
    document.body.dataset.mermaid = "missing";
    return;
  }
  mermaid.initialize({
    startOnLoad: false,
    securityLevel: "strict",
    theme: "default",
    fontFamily: getComputedStyle(document.body).getPropertyValue("--jp-ui-font-family"),
  });
  try {
    await mermaid.run({ nodes: blocks, suppressErrors: true });
  } finally {
    document.body.dataset.mermaid = "done";
  }
});
"""

# nbconvert's lab page with every script that would come from a CDN replaced by the copy beside
# the pages. A text/latex output ("$$x^2$$", what IPython.display.Math shows) goes through the
# Markdown renderer too, so that its math gets the delimiters MathJax looks for.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}<script src="PLOTLY_JS"></script>{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}
{% raw %}<script>window.MathJax = MATHJAX_CONFIG;</script>{% endraw %}
<script defer src="MATHJAX_JS"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}
<script defer src="MERMAID_JS"></script>
{% raw %}<script>MERMAID_RUN</script>{% endraw %}
<style>
.jp-Mermaid > pre.mermaid { background: none; border: none; text-align: center; }
</style>
{%- endblock html_head_js_mermaidjs -%}
{%- block data_latex scoped -%}
<div class="jp-RenderedLatex jp-OutputArea-output {{ extra_class }}" data-mime-type="text/latex">
{{ output.data['text/latex'] | markdown2html }}
</div>
{%- endblock data_latex -%}
{%- block body_header -%}{{ super() }}
<nav style="padding: 8px 16px; font: 14px sans-serif">
<a href="index.html">&larr; all lectures</a></nav>
{%- endblock body_header -%}
"""
for _name, _value in {
    "PLOTLY_JS": PLOTLY_JS,
    "MATHJAX_CONFIG": json.dumps(_MATHJAX_CONFIG),
    "MATHJAX_JS": MATHJAX_JS,
    "MERMAID_JS": MERMAID_JS,
    "MERMAID_RUN": _MERMAID_RUN,
}.items():
    _TEMPLATE = _TEMPLATE.replace(_name, _value)

# The index's words for a run's mode, by fast_mode: this build's, or the one that
# benchmarks/bench_notebooks.py stamps on each copy `make test-full` keeps.
MODES = {True: "fast mode", False: "default knobs"}

WIDGET_NOTE = (
    "<p><em>An interactive control is shown here when the notebook runs in JupyterLab "
    "(<code>make lab</code>); it needs a live kernel.</em></p>"
)


def lecture_order(notebooks: list[Path], readme: Path | None) -> list[Path]:
    """The notebooks in the order the README's course map names them; any it does not name come
    last."""
    by_stem = {nb.stem: nb for nb in notebooks}
    named = []
    if readme is not None and readme.is_file():
        for stem in re.findall(r"`(\d\d_[A-Za-z0-9_]+)`", readme.read_text(encoding="utf-8")):
            if stem in by_stem and by_stem[stem] not in named:
                named.append(by_stem[stem])
    return named + sorted(nb for nb in notebooks if nb not in named)


def notebook_title(nb) -> str:
    """The text of the notebook's first Markdown heading, without Markdown emphasis."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            m = re.match(r"\s*#{1,6}\s+(.*\S)", line)
            if m:
                return re.sub(r"[*_`]", "", m.group(1)).strip()
    return ""


def static_outputs(nb) -> None:
    """Outputs a static page can show offline: plotly figures as HTML that uses the shared
    plotly.js, widgets as a note (they need a kernel)."""
    import plotly.io as pio

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            if WIDGET_MIME in data:
                out["data"] = {"text/html": WIDGET_NOTE}
            elif PLOTLY_MIME in data:
                fig = data.pop(PLOTLY_MIME)
                out["data"] = {
                    "text/html": pio.to_html(
                        fig,
                        include_plotlyjs=False,
                        full_html=False,
                        validate=False,
                        config={"responsive": True},
                    )
                }
    nb.metadata.pop("widgets", None)


def cell_stamp(cell, key: str) -> float | None:
    """One of nbclient's timing stamps for a cell (record_timing: "iopub.execute_input" when it
    started, "shell.execute_reply" when it ended), as a POSIX time; None if it has none."""
    value = cell.get("metadata", {}).get("execution", {}).get(key)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def run_all_seconds(nb) -> float | None:
    """Seconds from the first cell's start to the last cell's end: Run All as a learner waits
    for it, the kernel's start-up left out."""
    starts = [t for c in nb.cells if (t := cell_stamp(c, "iopub.execute_input")) is not None]
    ends = [t for c in nb.cells if (t := cell_stamp(c, "shell.execute_reply")) is not None]
    return max(ends) - min(starts) if starts and ends else None


class UnusableExecution(ValueError):
    """A kept copy the site must not show: missing, raised, stopped early, or run from a
    different version of the lecture."""


def read_executed(path: Path, executed: Path):
    """The lecture as another run left it (`make test-full` keeps each notebook it executes, with
    nbclient's timings), so that CI exports what it has just run instead of running every lecture
    once more. Refuses a copy that raised, did not finish a cell (a timeout or a crash leaves the
    cell started and never answered), or no longer matches the lecture's cells. Only the cells
    are compared: a copy is as fresh as the run that kept it, which in CI is a moment before."""
    kept = executed / path.name
    if not kept.is_file():
        raise UnusableExecution(
            f"{kept} is missing: make test-full keeps each notebook it runs there; run it, or "
            "build without --executed"
        )
    nb = nbformat.read(kept, as_version=4)
    lecture = nbformat.read(path, as_version=4)
    if [(c.cell_type, c.source) for c in nb.cells] != [
        (c.cell_type, c.source) for c in lecture.cells
    ]:
        raise UnusableExecution(f"{kept} was run from another version of {path}: run it again")
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or not cell.source.strip() or "skip-execution" in tags:
            continue  # nbclient does not run these either
        raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        if raised and "raises-exception" not in tags:
            raise UnusableExecution(f"{kept}: cell {i} raised; the site shows lectures that ran")
        if cell_stamp(cell, "shell.execute_reply") is None:
            raise UnusableExecution(f"{kept}: cell {i} never finished; the site shows whole runs")
    return nb


def execute(nb, cwd: Path, timeout: int) -> None:
    from nbclient import NotebookClient

    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()


class _MathRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer, but the math it found reaches the page as \\(...\\) and
    \\[...\\], the only inline and display delimiters MathJax looks for here. A dollar sign that
    is not math stays a dollar: nbconvert writes "\\$3 and \\$9" as "$3 and $9", which MathJax,
    reading the page again with $ as a delimiter, would typeset as the math "3 and"."""

    def inline_math(self, body: str) -> str:
        return f"\\({self.escape_html(body)}\\)"

    def block_math(self, body: str) -> str:
        return f"\\[{self.escape_html(body)}\\]"


class SiteExporter(HTMLExporter):
    """The lab template with the site's local scripts (_TEMPLATE), and math delimited by
    _MathRenderer."""

    def __init__(self, **kw):
        super().__init__(
            template_name="lab",
            extra_loaders=[DictLoader({"unmasked_site.html.j2": _TEMPLATE})],
            **kw,
        )
        self.template_file = "unmasked_site.html.j2"

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = _MathRenderer(
            escape=False,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )
        return MarkdownWithMath(renderer=renderer).render(source)


def export_html(nb) -> str:
    body, _ = SiteExporter().from_notebook_node(nb)
    return body


class MissingJavaScript(FileNotFoundError):
    """MathJax or Mermaid is not installed where the site copies it from."""


def copy_scripts(out: Path, node_modules: Path = ROOT / "node_modules") -> dict[str, str]:
    """Copy what the pages load into out/: plotly.js, and each JS_PACKAGES script with its
    package's licence into out/<package>/. Returns {npm package: version}. Fails before any
    notebook runs when `npm ci` has not installed them."""
    import plotly

    out.mkdir(parents=True, exist_ok=True)
    versions = {}
    for package, script in JS_PACKAGES.items():
        src = node_modules / package
        for rel in (script, "LICENSE"):
            if not (src / rel).is_file():
                raise MissingJavaScript(
                    f"{src / rel} is missing: the site's MathJax and Mermaid come from npm. "
                    f"Install them with `npm ci` in {ROOT} (`make setup` does, where npm is "
                    "installed), or pass --node-modules"
                )
        dest = out / package
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / script, dest / Path(script).name)
        shutil.copyfile(src / "LICENSE", dest / "LICENSE")
        meta = json.loads((src / "package.json").read_text(encoding="utf-8"))
        versions[package] = meta.get("version", "?")
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / PLOTLY_JS, out / PLOTLY_JS)
    return versions


def index_html(
    entries: list[tuple[str, str, str, float]], mode: str, js_versions: dict[str, str] | None = None
) -> str:
    """entries: (page, stem, title, run seconds); js_versions: {npm package: version} shipped."""
    rows = "\n".join(
        f'<li><a href="{html.escape(page)}">{html.escape(title or stem)}</a>'
        f" <small>({html.escape(stem)}, ran in {secs:.0f} s)</small></li>"
        for page, stem, title, secs in entries
    )
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shipped = ""
    if js_versions:
        names = {"mathjax": "MathJax", "mermaid": "Mermaid"}
        parts = ", ".join(
            f'{names.get(p, p)} {html.escape(v)} (<a href="{p}/LICENSE">licence</a>)'
            for p, v in js_versions.items()
        )
        shipped = f"<p><small>Math and diagrams are drawn in the page by {parts}.</small></p>\n"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Unmasked: the lectures</title>
<style>body {{ font: 16px/1.5 sans-serif; max-width: 760px; margin: 2em auto; padding: 0 1em; }}
li {{ margin: 0.5em 0; }} small {{ color: #666; }}</style></head>
<body><h1>Unmasked: the lectures</h1>
<p>Each lecture as executed ({html.escape(mode)}), built {built}. Interactive controls need a live
kernel: run the course with <code>make lab</code>.</p>
<ul style="list-style: none; padding: 0">
{rows}
</ul>
{shipped}</body></html>
"""


def build_site(
    notebooks: list[Path],
    out: Path,
    *,
    readme: Path | None = None,
    fast: bool = True,
    executed: Path | None = None,
    timeout: int = 1800,
    node_modules: Path = ROOT / "node_modules",
    log=print,
) -> list[Path]:
    """Execute each notebook (or, with `executed`, take the copy another run left there, in the
    mode it ran in: `fast` is then ignored), export it to out/<stem>.html, write out/index.html;
    returns the pages. The index gives each lecture's seconds: with `executed`, Run All's, kernel
    start-up left out."""
    order = lecture_order(notebooks, readme)
    # every kept copy is checked before anything is written
    kept = {path: read_executed(path, executed) for path in order} if executed else {}
    js_versions = copy_scripts(out, node_modules)
    entries, pages, modes = [], [], set()
    saved = os.environ.get("UNMASKED_FAST")
    if fast:
        os.environ["UNMASKED_FAST"] = "1"  # the kernels inherit it
    else:
        os.environ.pop("UNMASKED_FAST", None)
    try:
        for path in order:
            t0 = time.monotonic()
            if executed is None:
                nb = nbformat.read(path, as_version=4)
                execute(nb, path.parent, timeout)
                secs = time.monotonic() - t0
                modes.add(MODES[fast])
            else:
                nb = kept[path]
                secs = run_all_seconds(nb) or 0.0
                stamped = nb.metadata.get("unmasked", {}).get("fast_mode")
                modes.add(MODES.get(stamped, f"as kept in {executed}"))
            static_outputs(nb)
            page = out / f"{path.stem}.html"
            page.write_text(export_html(nb), encoding="utf-8")
            entries.append((page.name, path.stem, notebook_title(nb), secs))
            pages.append(page)
            how = "ran" if executed is None else f"as run in {executed},"
            log(f"site: {path.name} {how} in {secs:.1f} s -> {page}")
    finally:
        if saved is None:
            os.environ.pop("UNMASKED_FAST", None)
        else:
            os.environ["UNMASKED_FAST"] = saved
    mode = modes.pop() if len(modes) == 1 else "in more than one mode"
    (out / "index.html").write_text(index_html(entries, mode, js_versions), encoding="utf-8")
    return pages


def main(argv: list[str] | None = None) -> int:
    root = Path.cwd()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="default: notebooks/[0-9][0-9]_*.ipynb"
    )
    parser.add_argument("--out", type=Path, default=root / "site")
    parser.add_argument(
        "--readme", type=Path, default=root / "README.md", help="its course map sets the order"
    )
    parser.add_argument(
        "--defaults", action="store_true", help="run at the default knobs, not fast mode"
    )
    parser.add_argument(
        "--executed",
        type=Path,
        help="export the lectures as executed in this folder (make test-full keeps them in "
        "build/test-full) instead of running them again; a copy must match the lecture's cells, "
        "and is as fresh as the run that kept it",
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument(
        "--node-modules",
        type=Path,
        default=ROOT / "node_modules",
        help="where `npm ci` installed MathJax and Mermaid",
    )
    args = parser.parse_args(argv)
    if args.executed and args.defaults:
        parser.error("--executed shows the copies as they ran; --defaults would run them again")
    notebooks = args.notebooks or sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print("site: no notebooks found (run from the repository root)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        build_site(
            notebooks,
            args.out,
            readme=args.readme,
            fast=not args.defaults,
            executed=args.executed,
            timeout=args.timeout,
            node_modules=args.node_modules,
        )
    except (MissingJavaScript, UnusableExecution) as err:
        print(f"site: {err}", file=sys.stderr)
        return 2
    print(
        f"site: {len(notebooks)} lectures in {time.monotonic() - t0:.0f} s; open "
        f"{args.out / 'index.html'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
