"""How long the grader takes for a class: 30 lab01 submissions at -j 2 (target: at most 5 minutes).

    python benchmarks/bench_grading.py [--n 30] [--jobs 2] [--out DIR]

The class is made from the lab and its solution: complete answers, untouched labs, and
answers with one exercise left undone. It is graded exactly as `make grade` would, and the
script prints the wall time, the statuses, the points, and the first rows of grades.csv.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat

from unmasked.grading import grade
from unmasked.labs import make_lab

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "lab01_tokens.ipynb"


def make_class(folder: Path, n: int, seed: int = 0) -> Counter:
    """n submissions: a third complete, a third untouched, a third with one exercise undone."""
    rng = random.Random(seed)
    solution = nbformat.read(SOLUTION, as_version=4)
    lab = make_lab(solution, SOLUTION.name)
    answers = [i for i, c in enumerate(solution.cells) if "### BEGIN SOLUTION" in c.source]
    kinds = Counter()
    for k in range(n):
        kind = ("complete", "untouched", "partial")[k % 3]
        nb = nbformat.from_dict(solution) if kind != "untouched" else nbformat.from_dict(lab)
        if kind == "partial":
            undone = rng.choice(answers)
            nb.cells[undone] = nbformat.from_dict(lab.cells[undone])
        kinds[kind] += 1
        student = folder / f"student{k:02d}"
        student.mkdir()
        nbformat.write(nb, student / "lab01_tokens.ipynb")
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep grades here (default: a temp folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        subs = work / "submissions"
        subs.mkdir()
        kinds = make_class(subs, args.n)
        out = args.out or work / "grades"
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        started = time.monotonic()
        results = grade("labs/lab01_tokens.ipynb", subs, out, jobs=args.jobs, force=True, progress=False)
        elapsed = time.monotonic() - started
        print(f"class: {dict(kinds)}; cores: {os.cpu_count()}; load average before: {load:.1f}")
        print(f"graded {len(results)} submissions at -j {args.jobs} in {elapsed:.1f} s "
              f"({elapsed / len(results):.2f} s per submission; target: 300 s for 30)")
        print("statuses:", dict(Counter(r["status"] for r in results)))
        print("points:", dict(sorted(Counter(r["points"] for r in results).items())))
        per = sorted(r["duration_s"] for r in results)
        print(f"per-submission wall time: median {per[len(per) // 2]:.1f} s, max {per[-1]:.1f} s")
        print("first rows of grades.csv:")
        print("".join((out / "grades.csv").read_text().splitlines(keepends=True)[:6]), end="")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
