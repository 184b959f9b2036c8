"""How long the grader takes for a class: 30 lab01 submissions at -j 2 (target: at most 5 minutes).

    python benchmarks/bench_grading.py [--n 30] [--jobs 2] [--out DIR] [--sandbox
    auto|namespaces|none] python benchmarks/bench_grading.py --compare [--rounds 2] [--json
    data/bench/grading_sandbox.json]

The class is made from the lab and its solution: complete answers, untouched labs, and
answers with one exercise left undone. It is graded exactly as `make grade` would, and the
script prints the wall time, the statuses, the points, and the first rows of grades.csv.

--compare grades the same class several times in one run, with the sandbox (namespaces) and
without it (none), in ABBA order, and prints the sandbox's cost per submission as a ratio;
--json writes the figures with the device, the command and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nbformat

from unmasked.env import describe_machine
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


def run_once(subs: Path, out: Path, jobs: int, sandbox: str) -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.monotonic()
    results = grade(
        "labs/lab01_tokens.ipynb", subs, out, jobs=jobs, force=True, progress=False, sandbox=sandbox
    )
    elapsed = time.monotonic() - started
    per = sorted(r["duration_s"] for r in results)
    print(
        f"[--sandbox {sandbox}] graded {len(results)} submissions at -j {jobs} in {elapsed:.1f} s "
        f"({elapsed / len(results):.2f} s per submission; target: 300 s for 30); load before: "
        f"{load:.1f}"
    )
    print("  statuses:", dict(Counter(r["status"] for r in results)))
    print("  points:", dict(sorted(Counter(r["points"] for r in results).items())))
    print(f"  per-submission wall time: median {statistics.median(per):.2f} s, max {per[-1]:.2f} s")
    return {
        "sandbox": sandbox,
        "wall_s": round(elapsed, 2),
        "submissions": len(results),
        "load_before": round(load, 2),
        "per_submission_median_s": round(statistics.median(per), 3),
        "per_submission_max_s": per[-1],
        "statuses": dict(Counter(r["status"] for r in results)),
        "points": {f"{k:g}": v for k, v in sorted(Counter(r["points"] for r in results).items())},
    }


def device() -> str:
    # The kernel release matters here too: the sandbox is built from its namespaces.
    return f"{describe_machine()}, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=None, help="keep grades here (default: a temp folder)"
    )
    parser.add_argument("--sandbox", default="auto", choices=("auto", "namespaces", "none"))
    parser.add_argument(
        "--compare", action="store_true", help="grade with --sandbox namespaces and none, one run"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="write the figures here (with --compare)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="with --compare: ABBA rounds (default: 2)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        subs = work / "submissions"
        subs.mkdir()
        kinds = make_class(subs, args.n)
        print(f"class: {dict(kinds)}; cores: {os.cpu_count()}")
        out = args.out or work / "grades"
        if not args.compare:
            run_once(subs, out, args.jobs, args.sandbox)
            print("first rows of grades.csv:")
            print("".join((out / "grades.csv").read_text().splitlines(keepends=True)[:6]), end="")
            return
        # ABBA (none, namespaces, namespaces, none, ...): a machine whose load drifts during the
        # run biases neither mode; each run grades the same files, forced
        order = [
            m
            for r in range(args.rounds)
            for m in (("none", "namespaces"), ("namespaces", "none"))[r % 2]
        ]
        runs = [
            run_once(subs, work / f"grades-{i}-{mode}", args.jobs, mode)
            for i, mode in enumerate(order)
        ]
        per_mode = {m: [r for r in runs if r["sandbox"] == m] for m in ("none", "namespaces")}
        median = {
            m: statistics.median(r["per_submission_median_s"] for r in rs)
            for m, rs in per_mode.items()
        }
        wall = {m: statistics.mean(r["wall_s"] for r in rs) for m, rs in per_mode.items()}
        ratio, wall_ratio = median["namespaces"] / median["none"], wall["namespaces"] / wall["none"]
        print(
            f"sandbox cost over {len(runs)} runs (ABBA): {ratio:.2f}x the per-submission median "
            "time of "
            f"--sandbox none ({median['namespaces']:.2f} s vs {median['none']:.2f} s); "
            f"mean wall {wall_ratio:.2f}x ({wall['namespaces']:.0f} s vs {wall['none']:.0f} s)"
        )
        if args.json:
            record = {
                "what": f"grading {args.n} lab01 submissions at -j {args.jobs}, with and without "
                "the sandbox",
                "device": device(),
                "command": " ".join(["python", *sys.argv]),
                "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "class": dict(kinds),
                "runs": runs,
                "per_submission_median_s": {m: round(v, 3) for m, v in median.items()},
                "mean_wall_s": {m: round(v, 2) for m, v in wall.items()},
                "sandbox_cost_ratio_per_submission_median": round(ratio, 3),
                "sandbox_cost_ratio_wall": round(wall_ratio, 3),
                "note": "one invocation, modes in ABBA order on a shared 2-core machine (other "
                "jobs running; "
                "load_before is the 1-min load average); per-mode figure = median of the runs' "
                "medians",
            }
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(record, indent=1) + "\n")
            print(f"wrote {args.json}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
