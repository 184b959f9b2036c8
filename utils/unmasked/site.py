"""Build a static HTML site of the executed lectures: `python -m unmasked.site --out site`.

Each lecture is executed (fast mode unless --defaults) and exported with nbconvert's lab template,
then an index page lists the lectures in the README's order. The site reads offline: plotly.js is
copied once next to the pages and loaded from there, and the template's CDN scripts (require.js,
MathJax, Mermaid, the widget manager) are left out. Widgets need a live kernel, so a widget output
becomes a note that says so; math shows as its LaTeX source.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_JS = "plotly.min.js"

# nbconvert's lab page with every script that would come from a CDN taken out.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}<script src="PLOTLY_JS"></script>{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}{{ super() }}
<nav style="padding: 8px 16px; font: 14px sans-serif">
<a href="index.html">&larr; all lectures</a></nav>
{%- endblock body_header -%}
""".replace("PLOTLY_JS", PLOTLY_JS)

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


def execute(nb, cwd: Path, timeout: int) -> None:
    from nbclient import NotebookClient

    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()


def export_html(nb) -> str:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[DictLoader({"unmasked_site.html.j2": _TEMPLATE})]
    )
    exporter.template_file = "unmasked_site.html.j2"
    body, _ = exporter.from_notebook_node(nb)
    return body


def index_html(entries: list[tuple[str, str, str, float]], mode: str) -> str:
    """entries: (page, stem, title, run seconds)."""
    rows = "\n".join(
        f'<li><a href="{html.escape(page)}">{html.escape(title or stem)}</a>'
        f" <small>({html.escape(stem)}, ran in {secs:.0f} s)</small></li>"
        for page, stem, title, secs in entries
    )
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Unmasked: the lectures</title>
<style>body {{ font: 16px/1.5 sans-serif; max-width: 760px; margin: 2em auto; padding: 0 1em; }}
li {{ margin: 0.5em 0; }} small {{ color: #666; }}</style></head>
<body><h1>Unmasked: the lectures</h1>
<p>Each lecture as executed ({html.escape(mode)}), built {built}. Interactive controls need a live
kernel: run the course with <code>make lab</code>.</p>
<ul style="list-style: none; padding: 0">
{rows}
</ul></body></html>
"""


def build_site(
    notebooks: list[Path],
    out: Path,
    *,
    readme: Path | None = None,
    fast: bool = True,
    timeout: int = 1800,
    log=print,
) -> list[Path]:
    """Execute each notebook, export it to out/<stem>.html, write out/index.html; returns the
    pages."""
    import plotly

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / PLOTLY_JS, out / PLOTLY_JS)
    entries, pages = [], []
    saved = os.environ.get("UNMASKED_FAST")
    if fast:
        os.environ["UNMASKED_FAST"] = "1"  # the kernels inherit it
    else:
        os.environ.pop("UNMASKED_FAST", None)
    try:
        for path in lecture_order(notebooks, readme):
            t0 = time.monotonic()
            nb = nbformat.read(path, as_version=4)
            execute(nb, path.parent, timeout)
            secs = time.monotonic() - t0
            static_outputs(nb)
            page = out / f"{path.stem}.html"
            page.write_text(export_html(nb), encoding="utf-8")
            entries.append((page.name, path.stem, notebook_title(nb), secs))
            pages.append(page)
            log(f"site: {path.name} ran in {secs:.1f} s -> {page}")
    finally:
        if saved is None:
            os.environ.pop("UNMASKED_FAST", None)
        else:
            os.environ["UNMASKED_FAST"] = saved
    (out / "index.html").write_text(
        index_html(entries, "fast mode" if fast else "default knobs"), encoding="utf-8"
    )
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
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print("site: no notebooks found (run from the repository root)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    build_site(
        notebooks, args.out, readme=args.readme, fast=not args.defaults, timeout=args.timeout
    )
    print(
        f"site: {len(notebooks)} lectures in {time.monotonic() - t0:.0f} s; open "
        f"{args.out / 'index.html'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
