"""What an instructor adds by hand: manual points with a comment, and a roster for the LMS.

overrides.csv (kept by the instructor, read on every run, so it survives re-runs):

    submission,points,comment
    alice/lab01_tokens.ipynb,8,"history_cost was right; the check's tolerance was too tight"

roster.csv (optional; maps submission files to learner IDs; writes OUT/lms.csv):

    submission,learner_id
    alice/lab01_tokens.ipynb,a.smith@example.edu

`submission` is the name grades.csv shows. A roster learner with no submission gets a
`missing` row in lms.csv, so nobody drops out of the export silently.
"""

from __future__ import annotations

import copy
import csv
import io
from pathlib import Path

from .report import csv_text, number


def _rows(path: Path, required: tuple[str, ...]) -> list[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(
            f"{path} needs the columns {', '.join(required)}; missing: {', '.join(missing)}"
        )
    return list(reader)


def read_overrides(path: Path) -> dict[str, dict]:
    """submission -> {"points": float, "comment": str}; raises ValueError on a bad row."""
    overrides = {}
    for line, row in enumerate(_rows(path, ("submission", "points")), start=2):
        try:
            points = float(row["points"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}, line {line}: points {row['points']!r} is not a number"
            ) from None
        if points < 0:
            raise ValueError(f"{path}, line {line}: points must be >= 0, got {points:g}")
        overrides[row["submission"]] = {
            "points": points,
            "comment": (row.get("comment") or "").strip(),
        }
    return overrides


def apply_override(result: dict, overrides: dict[str, dict]) -> dict:
    """The result with the instructor's points (the graded points kept), or without any override."""
    result = copy.deepcopy(result)
    previous = result.pop("override", None)
    if previous is not None:  # from an earlier run: back to what the checks gave
        result["points"] = previous["graded_points"]
    manual = overrides.get(result["submission"])
    if manual is not None:
        result["override"] = {
            "points": manual["points"],
            "comment": manual["comment"],
            "graded_points": result["points"],
        }
        result["points"] = manual["points"]
    return result


def read_roster(path: Path) -> dict[str, str]:
    """submission -> learner ID."""
    roster = {}
    for line, row in enumerate(_rows(path, ("submission", "learner_id")), start=2):
        if not row["learner_id"].strip():
            raise ValueError(f"{path}, line {line}: empty learner_id")
        roster[row["submission"]] = row["learner_id"].strip()
    return roster


def lms_csv(results: list[dict], roster: dict[str, str]) -> str:
    """learner_id, points, max_points, status, submission: one row per roster learner."""
    by_name = {r["submission"]: r for r in results}
    top = max((r["max_points"] for r in results), default=0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["learner_id", "points", "max_points", "status", "submission"])
    for submission, learner in sorted(roster.items(), key=lambda item: item[1]):
        r = by_name.get(submission)
        if r is None:
            writer.writerow([csv_text(learner), "", number(top), "missing", csv_text(submission)])
        else:
            writer.writerow(
                [
                    csv_text(learner),
                    number(r["points"]),
                    number(r["max_points"]),
                    r["status"],
                    csv_text(submission),
                ]
            )
    return buffer.getvalue()
