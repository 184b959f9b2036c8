"""Committed notebooks are clean sources: no outputs, python3 kernel, a parameters cell where one
is needed."""

import pytest
from nbhelpers import ROOT, all_notebooks, parameters_cell, read

NOTEBOOKS = all_notebooks()


def _id(path):
    return str(path.relative_to(ROOT))


def test_the_course_has_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert "00_welcome.ipynb" in names and "lab01_tokens.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_no_outputs_or_execution_counts(path):
    nb = read(path)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count)
    ]
    assert not dirty, f"{_id(path)}: cells {dirty} have outputs; clear them before committing"
    assert "widgets" not in nb.metadata, f"{_id(path)} carries saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_kernel_is_python3(path):
    assert read(path).metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_has_a_parameters_cell_near_the_top(path):
    nb = read(path)
    cell = parameters_cell(nb)
    assert cell is not None, f"{_id(path)} has no cell tagged 'parameters'"
    assert nb.cells.index(cell) <= 4, "the parameters cell belongs near the top"


def test_numbered_lectures_are_unique():
    numbers = [p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb")]
    assert all(n.isdigit() for n in numbers)
    assert len(numbers) == len(set(numbers))
