"""Make the learners' labs from the worked solutions.

One source yields both, as in nbgrader: a solution notebook marks its answers with
`### BEGIN SOLUTION` / `### END SOLUTION`, and the lab gets a stub in their place that raises
NotImplementedError. We use ~40 lines over nbformat instead of nbgrader's ClearSolutions:
nbgrader pulls in a server stack and a database that a course repo does not need.

    python -m unmasked.labs            # regenerate labs/ from solutions/
    python -m unmasked.labs --check    # exit 1 if labs/ is out of date (used by the tests)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>### (?:BEGIN|END) SOLUTION)[ \t]*$")


class LabSourceError(ValueError):
    """A solution cell whose markers do not pair up."""


def strip_solution(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace each marked region with an indented stub; return the new source and the count."""
    out: list[str] = []
    regions, inside = 0, False
    for lineno, line in enumerate(source.splitlines(), start=1):
        match = _MARKER.match(line)
        if match and match["marker"] == BEGIN:
            if inside:
                raise LabSourceError(f"{where}, line {lineno}: {BEGIN} inside another region")
            inside, regions = True, regions + 1
            out.extend(match["indent"] + stub for stub in STUB)
        elif match and match["marker"] == END:
            if not inside:
                raise LabSourceError(f"{where}, line {lineno}: {END} without a {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise LabSourceError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out), regions


def make_lab(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The learner's copy of a solution notebook: answers stubbed, outputs cleared."""
    lab = nbformat.from_dict(solution)
    total = 0
    for index, cell in enumerate(lab.cells):
        if cell.cell_type == "code":
            cell.source, n = strip_solution(cell.source, f"{name} cell {index}")
            cell.outputs, cell.execution_count = [], None
            total += n
        elif BEGIN in cell.source:
            raise LabSourceError(f"{name} cell {index}: solution markers belong in code cells")
    if total == 0:
        raise LabSourceError(f"{name}: no {BEGIN} region, so the lab would equal the solution")
    lab.metadata.pop("widgets", None)
    return lab


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def build_labs(solutions: Path, labs: Path, *, check: bool = False) -> list[str]:
    """Write labs/ from solutions/; with check=True, only report what is stale or missing."""
    problems = []
    expected = set()
    for source in sorted(solutions.glob("*.ipynb")):
        target = labs / source.name
        expected.add(target.name)
        text = render(make_lab(nbformat.read(source, as_version=4), source.name))
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            problems.append(f"{target} is {'stale' if current else 'missing'}")
            if not check:
                labs.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    for orphan in sorted(labs.glob("*.ipynb")):
        if orphan.name not in expected:
            problems.append(f"{orphan} has no solution in {solutions}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solutions", type=Path, default=Path("solutions"))
    parser.add_argument("--labs", type=Path, default=Path("labs"))
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    problems = build_labs(args.solutions, args.labs, check=args.check)
    for problem in problems:
        print(problem)
    if args.check and problems:
        print("labs/ is out of date: run `make labs`", file=sys.stderr)
        return 1
    if not args.check:
        print(f"labs/ is up to date ({len(list(args.solutions.glob('*.ipynb')))} labs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
