"""One submission's grade: the checks' verdicts, the status and a one-line reason.

Statuses, as in grades.csv:
  graded   the notebook ran to the end and the hidden checks ran (cells may still have raised)
  timeout  a cell ran past --cell-timeout (interrupted; the checks still ran if the kernel
           recovered) or the submission ran past --timeout (everything killed, checks not run)
  error    the kernel died or never started, or the hidden checks could not report; checks that
           did not run score 0 (kernel_started=False rows are retried by the next run)
  invalid  the file is not a notebook we can run (empty, not JSON, not a notebook)
"""

from __future__ import annotations

from collections.abc import Sequence

from .spec import Check, Outcome

STATUSES = ("graded", "timeout", "error", "invalid")


def score_checks(
    checks: Sequence[Check], outcomes: dict[str, Outcome], delegated: dict[str, str] | None = None
) -> list[dict]:
    """Verdict per check; outcome ids are `check index:call index` (see notebook.make_probe).

    `delegated` maps a function to the course's implementation it hands its calls on to (see
    delegation.py): every check that calls it scores 0, whatever came back.
    """
    verdicts = []
    delegated = delegated or {}
    for i, check in enumerate(checks):
        got = [outcomes[f"{i}:{j}"] for j in range(len(check.calls))]
        handed = next(
            (f for f in dict.fromkeys(c.func for c in check.calls) if f in delegated), None
        )
        try:
            problem = check.verify(check.calls, got)
        except Exception as exc:  # a strange return value must cost the check, not the grader
            problem = f"could not check the values returned ({type(exc).__name__}: {exc})"
        if handed:
            problem = (
                f"{handed} hands its work on to {delegated[handed]}, the course's own "
                "implementation; "
                "the exercise is to write it yourself"
            )
        verdicts.append(
            {
                "name": check.name,
                "points": 0 if problem else check.points,
                "max_points": check.points,
                "passed": problem is None,
                "ran": True,
                "message": problem or "",
                "hint": check.hint if problem else "",
            }
        )
    return verdicts


def not_run(outline: Sequence[tuple[str, float]], why: str) -> list[dict]:
    """Zero for every check, each saying why it did not run."""
    return [
        {
            "name": name,
            "points": 0,
            "max_points": points,
            "passed": False,
            "ran": False,
            "message": why,
            "hint": "",
        }
        for name, points in outline
    ]


def make_result(
    submission: str, lab: str, status: str, reason: str, checks: list[dict], **extra
) -> dict:
    if status not in STATUSES:
        raise ValueError(f"status {status!r}; accepted: {', '.join(STATUSES)}")
    return {
        "submission": submission,
        "lab": lab,
        "points": round(sum(c["points"] for c in checks), 6),
        "max_points": round(sum(c["max_points"] for c in checks), 6),
        "status": status,
        "reason": reason,
        "checks": checks,
        **extra,
    }


def no_kernel_reason(start_timeout: float, detail: str) -> str:
    """The reason of a row whose kernel never answered: nothing of the submission ran."""
    return f"the kernel did not start within {start_timeout:g} s ({detail}); no cell ran"


def out_of_memory(error: dict) -> bool:
    """A cell error that means an allocation failed (Python's MemoryError, torch's allocator)."""
    return error["ename"] == "MemoryError" or "allocate memory" in error.get("evalue", "")


def summary_reason(
    checks: list[dict],
    errors: list[dict],
    timed_out: list[str],
    truncated: bool,
    memory_gb: float = 0,
) -> str:
    """One line for grades.csv: how many checks passed, then what went wrong in the run."""
    passed = sum(c["passed"] for c in checks)
    parts = [f"{passed}/{len(checks)} checks passed"]
    failed = [c["name"] for c in checks if not c["passed"]]
    if failed:
        parts.append(
            f"first failed: {failed[0]}"
            + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")
        )
    if timed_out:
        parts.append(f"interrupted after the cell timeout: {', '.join(timed_out[:2])}")
    errors = [
        e for e in errors if not (e["ename"] == "KeyboardInterrupt" and e["cell"] in timed_out)
    ]
    if errors:
        first = errors[0]
        more = f" (+{len(errors) - 1} more cells)" if len(errors) > 1 else ""
        if memory_gb and out_of_memory(first):
            parts.append(
                f"{first['cell']} used more than {memory_gb:g} GB of memory "
                f"({first['ename']}){more}"
            )
        else:
            parts.append(f"{first['cell']} raised {first['ename']}{more}")
    if truncated:
        parts.append("output over the limit was dropped")
    return " | ".join(parts)
