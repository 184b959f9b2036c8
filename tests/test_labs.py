"""Labs come from solutions: the stripping machinery, the sync check, and labs that run to their
first exercise."""

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbhelpers import ROOT

from unmasked import labs

SOLVED = """def f(x):
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION
"""


def test_strip_solution_keeps_indentation_and_counts_regions():
    text, n = labs.strip_solution(SOLVED + "\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n")
    assert n == 2
    assert "return x + 1" not in text and "y = 2" not in text
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in text
    assert text.startswith("def f(x):")
    namespace = {}
    exec(text.split("\n\n")[0], namespace)  # the stubbed function still parses
    with pytest.raises(NotImplementedError):
        namespace["f"](1)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n### END SOLUTION\n", "without a"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
    ],
)
def test_unbalanced_markers_are_errors(source, message):
    with pytest.raises(labs.LabSourceError, match=message):
        labs.strip_solution(source)


def _notebook(*cells):
    nb = new_notebook()
    nb.cells = list(cells)
    return nb


def test_make_lab_clears_outputs_and_requires_an_exercise():
    cell = new_code_cell(
        SOLVED, execution_count=3, outputs=[nbformat.v4.new_output("stream", text="hi")]
    )
    lab = labs.make_lab(_notebook(new_markdown_cell("# Lab"), cell))
    assert lab.cells[1].outputs == [] and lab.cells[1].execution_count is None
    assert "NotImplementedError" in lab.cells[1].source
    assert "return x + 1" in cell.source, "the solution notebook itself is not modified"
    with pytest.raises(labs.LabSourceError, match="no ### BEGIN SOLUTION"):
        labs.make_lab(_notebook(new_code_cell("x = 1")))


def test_build_labs_writes_then_reports_in_sync(tmp_path):
    solutions, out = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    nbformat.write(_notebook(new_code_cell(SOLVED)), solutions / "lab99_demo.ipynb")
    assert labs.build_labs(solutions, out, check=True) == [f"{out / 'lab99_demo.ipynb'} is missing"]
    assert not out.exists(), "check mode writes nothing"
    labs.build_labs(solutions, out)
    assert labs.build_labs(solutions, out, check=True) == []
    (out / "lab99_demo.ipynb").write_text("{}")
    assert "stale" in labs.build_labs(solutions, out, check=True)[0]
    (out / "orphan.ipynb").write_text("{}")
    assert any("no solution" in p for p in labs.build_labs(solutions, out, check=True))


def test_committed_labs_are_in_sync_with_solutions():
    problems = labs.build_labs(ROOT / "solutions", ROOT / "labs", check=True)
    assert problems == [], "run `make labs`: " + "; ".join(problems)


LAB_NOTEBOOKS = sorted((ROOT / "labs").glob("*.ipynb"))


@pytest.mark.parametrize("path", LAB_NOTEBOOKS, ids=[p.stem for p in LAB_NOTEBOOKS])
def test_lab_runs_until_its_first_exercise(path, monkeypatch):
    """Everything before the first exercise works; the first failure is the learner's
    NotImplementedError."""
    monkeypatch.setenv("UNMASKED_FAST", "1")
    nb = nbformat.read(path, as_version=4)
    # A correctness test, not a speed test: limits a loaded 2-core CI machine never reaches.
    client = NotebookClient(
        nb,
        timeout=600,
        startup_timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "labs")}},
    )
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert "NotImplementedError" in str(info.value), (
        f"{path.name} failed before its first exercise:\n{info.value}"
    )
    failed = next(
        c
        for c in nb.cells
        if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.outputs)
    )
    before = nb.cells[: nb.cells.index(failed) + 1]
    assert any("YOUR CODE HERE" in c.source for c in before if c.cell_type == "code")
