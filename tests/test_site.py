"""`make site`: the executed lectures as static HTML that reads offline (unmasked.site)."""

from __future__ import annotations

import re

import nbformat
import pytest

from unmasked import site


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
def test_build_site_from_tiny_notebooks(tmp_path):
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

    pages = site.build_site(sorted(src.glob("*.ipynb")), out, readme=readme, log=lambda _: None)

    index = (out / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
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
