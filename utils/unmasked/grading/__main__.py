"""python -m unmasked.grading LAB SUBMISSIONS_DIR --out GRADES_DIR [-j N] [--timeout S] [--force]"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from .checks import available
from .runner import Options, grade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unmasked.grading",
        description="Grade every notebook under SUBMISSIONS_DIR against LAB's hidden checks.",
        epilog=f"Labs with hidden checks: {', '.join(available())}. Outputs: OUT/grades.csv, "
        "OUT/feedback/*.md, OUT/results/*.json, OUT/executed/*.ipynb, OUT/scores.html (and "
        "OUT/lms.csv "
        "with --roster).",
    )
    parser.add_argument(
        "lab", help="the lab notebook (labs/lab01_tokens.ipynb) or its name (lab01_tokens)"
    )
    parser.add_argument(
        "submissions", type=Path, help="folder of submitted .ipynb files (searched recursively)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("grades"), help="where grades go (default: grades)"
    )
    parser.add_argument(
        "-j", "--jobs", type=int, default=2, help="submissions graded at once (default: 2)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds per submission once its kernel is up (default: 300)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=30,
        help="seconds for a kernel to answer before it is started again (default: 30)",
    )
    parser.add_argument(
        "--start-attempts",
        type=int,
        default=3,
        help="kernel starts per submission before it gets an error row (default: 3)",
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=60,
        help="seconds per cell before it is interrupted (default: 60)",
    )
    parser.add_argument("--force", action="store_true", help="regrade submissions already graded")
    parser.add_argument(
        "--seed", type=int, default=0, help="the SEED injected into each notebook (default: 0)"
    )
    parser.add_argument(
        "--check-seed",
        type=int,
        default=None,
        help="seed for the hidden checks' inputs (default: secret, new per submission)",
    )
    parser.add_argument("--kernel", default="python3", help="kernel name (default: python3)")
    parser.add_argument(
        "--max-output-mb", type=float, default=5, help="output kept per notebook (default: 5)"
    )
    parser.add_argument(
        "--sandbox",
        choices=("auto", "namespaces", "none"),
        default="auto",
        help="run each kernel in a bubblewrap sandbox: auto (if this machine can, else warn), "
        "namespaces (required), none (default: auto)",
    )
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=4,
        help="memory cap per submission in the sandbox, in GB (default: 4)",
    )
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        help="regrade only submissions whose name (as in grades.csv) matches this glob",
    )
    parser.add_argument(
        "--overrides",
        metavar="CSV",
        help="manual points: columns submission, points, comment (kept across re-runs)",
    )
    parser.add_argument(
        "--roster",
        metavar="CSV",
        help="columns submission, learner_id: also write OUT/lms.csv for an LMS import",
    )
    parser.add_argument(
        "--keep-scratch", action="store_true", help="keep the scratch folders, for debugging"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    try:
        options = Options(
            jobs=args.jobs,
            timeout=args.timeout,
            cell_timeout=args.cell_timeout,
            start_timeout=args.start_timeout,
            start_attempts=args.start_attempts,
            force=args.force,
            seed=args.seed,
            check_seed=args.check_seed,
            kernel_name=args.kernel,
            max_output_mb=args.max_output_mb,
            progress=not args.quiet,
            keep_scratch=args.keep_scratch,
            sandbox=args.sandbox,
            memory_gb=args.memory_gb,
            only=args.only,
            overrides=args.overrides,
            roster=args.roster,
        )
        results = grade(args.lab, args.submissions, args.out, **vars(options))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        grades = args.out / "grades.csv"
        print(
            f"\nstopped; finished grades are in {grades} (re-run to grade the rest)",
            file=sys.stderr,
        )
        return 130
    counts = Counter(r["status"] for r in results)
    print(
        f"{len(results)} submissions in {time.monotonic() - started:.0f} s: "
        + ", ".join(f"{n} {status}" for status, n in counts.most_common())
        + f"\ngrades: {args.out / 'grades.csv'}  feedback: {args.out / 'feedback'}/  plot: "
        f"{args.out / 'scores.html'}"
    )
    unstarted = sum(r.get("kernel_started") is False for r in results)
    if unstarted:
        print(
            f"{unstarted} submission(s) never got a kernel that answered (the machine, not the "
            "learner): "
            "run the same command again to grade them"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
