"""The grader: planted submissions end as rows with reasons, and its pure parts behave.

The slow tests grade every fixture in tests/fixtures/grading/ once (-j 2, short timeouts) and
assert its row; see make_fixtures.py there for what each fixture plants.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import multiprocessing
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from unmasked.grading import checks as registry
from unmasked.grading import runner
from unmasked.grading.__main__ import main as cli
from unmasked.grading.notebook import (
    MIME,
    InvalidSubmission,
    inject_parameters,
    make_probe,
    read_probe,
    read_submission,
)
from unmasked.grading.procs import kill_tree
from unmasked.grading.report import grades_csv, score_figure
from unmasked.grading.results import score_checks
from unmasked.grading.runner import Grader, Options, grade, submission_key
from unmasked.grading.spec import Call, Outcome, raises, returns

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)
EXPECTED = make_fixtures.EXPECTED
_spec = importlib.util.spec_from_file_location("attacks", FIXTURES / "attacks.py")
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)
# Limits for correctness are generous: CI runs these on a loaded 2-core machine, where a plain
# cell of lab01 (imports) can take seconds. Timeouts are tested with cells that never end, so
# they trip whatever the limit; no test asserts that the grader is fast.
FAST = dict(jobs=2, timeout=300, cell_timeout=60, progress=False)


# ---- the planted submissions, graded for real --------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    started = time.monotonic()
    results = grade("labs/lab01_tokens.ipynb", FIXTURES, out, **FAST)
    print(f"graded {len(results)} fixtures in {time.monotonic() - started:.0f} s")
    return out, {Path(r["submission"]).stem: r for r in results}


def test_fixtures_are_in_sync_with_the_lab():
    assert make_fixtures.main(["--check"]) == 0, (
        "run python tests/fixtures/grading/make_fixtures.py"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_planted_submission_gets_its_row(graded, name):
    _, results = graded
    status, points, phrase = EXPECTED[name]
    row = results[name]
    assert (row["status"], row["points"], row["max_points"]) == (
        status,
        points,
        make_fixtures.MAX,
    ), row["reason"]
    assert phrase in row["reason"]
    assert len(row["checks"]) == 6 and all(c["message"] for c in row["checks"] if not c["passed"])


@pytest.mark.slow
def test_outputs_on_disk(graded):
    out, results = graded
    with open(out / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["submission"] for r in rows] == sorted(f"{n}.ipynb" for n in EXPECTED)
    assert all(r["reason"] and r["lab"] == "lab01_tokens" and r["max_points"] == "9" for r in rows)
    assert {r["submission"]: float(r["points"]) for r in rows} == {
        f"{n}.ipynb": results[n]["points"] for n in EXPECTED
    }
    for name in EXPECTED:
        key = submission_key(f"{name}.ipynb")
        feedback = (out / "feedback" / f"{key}.md").read_text()
        assert f"**Score:** {results[name]['points']:g} / 9" in feedback
        assert json.loads((out / "results" / f"{key}.json").read_text()) == results[name]
    assert "plotly" in (out / "scores.html").read_text()[:5000].lower()
    executed = nbformat.read(
        out / "executed" / f"{submission_key('kernel_death.ipynb')}.ipynb", as_version=4
    )
    assert any(c.get("outputs") for c in executed.cells), (
        "the instructor can look into a kernel-died row"
    )
    assert not (out / "executed" / f"{submission_key('empty.ipynb')}.ipynb").exists()  # never ran
    html = (out / "scores.html").read_text()
    assert "Who failed what" in html and "did not pass" in html
    # nothing but the grader's own files: no temp files left, nothing written by a submission
    expected = ["executed", "feedback", "grades.csv", "plotly.min.js", "results", "scores.html"]
    assert sorted(p.name for p in out.iterdir()) == expected


@pytest.mark.slow
def test_cheater_finds_no_checks_and_cannot_touch_grades(graded):
    out, results = graded
    first = results["cheater"]["checks"][0]
    # count_text_tokens answers 1000 + the number of files holding hidden checks that it found
    assert "returned 1000;" in first["message"], first["message"]
    assert "hacked" not in (out / "grades.csv").read_text()


@pytest.mark.slow
def test_untouched_lab_fails_every_check_with_feedback(graded):
    _, results = graded
    checks = results["untouched"]["checks"]
    assert all(
        c["ran"] and not c["passed"] and "NotImplementedError" in c["message"] for c in checks
    )
    assert all(c["hint"] for c in checks)


@pytest.mark.slow
def test_wall_clock_limit_stops_a_submission(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "infinite_loop.ipynb", subs)
    started = time.monotonic()
    [row] = grade(
        "lab01_tokens", subs, tmp_path / "out", **{**FAST, "timeout": 6, "cell_timeout": 60}
    )
    assert (
        time.monotonic() - started < 6 + 30 + 10 + 120
    )  # limit + kernel start + slack + load: not 600
    assert row["status"] == "timeout" and "ran past the 6 s limit" in row["reason"], row["reason"]
    assert row["points"] == 0 and not any(c["ran"] for c in row["checks"])


HANGING_KERNEL = """import os, sys, time
from pathlib import Path

counter, hangs = Path(sys.argv[1]), int(sys.argv[2])
starts = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(starts + 1))
if starts < hangs:
    # started, but never answers: the rare hang seen when kernels start side by side
    time.sleep(600)
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *sys.argv[3:]])
"""


def _hanging_kernel(root: Path, monkeypatch, hangs: int) -> Path:
    """A kernelspec 'hangs' whose first `hangs` starts never answer; returns its start counter."""
    spec = root / "jupyter" / "kernels" / "hangs"
    spec.mkdir(parents=True, exist_ok=True)
    (root / "hang.py").write_text(HANGING_KERNEL)
    counter = root / "starts.txt"
    counter.unlink(missing_ok=True)
    argv = [
        sys.executable,
        str(root / "hang.py"),
        str(counter),
        str(hangs),
        "-f",
        "{connection_file}",
    ]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "hangs", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(root / "jupyter"))
    # spawn, not the shared forkserver: a fresh worker sees JUPYTER_PATH (and this covers the
    # fallback)
    monkeypatch.setattr(runner, "_CONTEXT", multiprocessing.get_context("spawn"))
    return counter


@pytest.mark.slow
def test_a_kernel_that_never_answers_is_started_again(tmp_path, monkeypatch):
    counter = _hanging_kernel(tmp_path, monkeypatch, hangs=1)
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "solution.ipynb", subs)
    # sandbox off: the kernelspec's script and counter live in pytest's tmp folder, outside its view
    options = {
        **FAST,
        "kernel_name": "hangs",
        "start_timeout": 20,
        "sandbox": "none",
    }  # 20 s: a real start
    [row] = grade("lab01_tokens", subs, tmp_path / "out", **options)
    assert counter.read_text() == "2"
    assert (row["status"], row["points"], row["start_attempts"]) == ("graded", 9, 2), row["reason"]
    assert row["kernel_started"]


@pytest.mark.slow
def test_a_kernel_that_never_starts_gets_an_error_row_and_a_rerun_grades_it(
    tmp_path, monkeypatch, capsys
):
    counter = _hanging_kernel(tmp_path, monkeypatch, hangs=99)
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    shutil.copy(FIXTURES / "solution.ipynb", subs)
    started = time.monotonic()
    assert (
        cli(
            [
                "lab01_tokens",
                str(subs),
                "--out",
                str(out),
                "-q",
                "--kernel",
                "hangs",
                "--cell-timeout",
                "30",
                "--start-timeout",
                "3",
                "--start-attempts",
                "2",
                "--sandbox",
                "none",
            ]
        )
        == 0
    )
    assert (
        time.monotonic() - started < 2 * (3 + 10) + 120
    )  # two starts cut at their limit, not 600 s each
    assert "1 submission(s) never got a kernel that answered" in capsys.readouterr().out
    row = json.loads((out / "results" / f"{submission_key('solution.ipynb')}.json").read_text())
    assert counter.read_text() == "2"
    assert (row["status"], row["points"], row["start_attempts"], row["kernel_started"]) == (
        "error",
        0,
        2,
        False,
    )
    assert "did not start within 3 s" in row["reason"] and "tried 2 times" in row["reason"], row[
        "reason"
    ]
    assert not any(c["ran"] for c in row["checks"])
    _hanging_kernel(
        tmp_path, monkeypatch, hangs=0
    )  # the machine recovers: a plain re-run grades it
    [again] = grade(
        "lab01_tokens", subs, out, **{**FAST, "kernel_name": "hangs", "sandbox": "none"}
    )
    assert (again["status"], again["points"], again["start_attempts"]) == ("graded", 9, 1), again[
        "reason"
    ]


@pytest.mark.slow
def test_killing_the_grader_loses_no_finished_grade(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    for k in range(2):
        shutil.copy(FIXTURES / "solution.ipynb", subs / f"s{k}.ipynb")
    command = [
        sys.executable,
        "-m",
        "unmasked.grading",
        "lab01_tokens",
        str(subs),
        "--out",
        str(out),
        "-j",
        "1",
        "-q",
        "--cell-timeout",
        "30",
        "--timeout",
        "300",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (out / "grades.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    finished = {
        json.loads(p.read_text())["submission"][:-6]: json.loads(p.read_text())
        for p in (out / "results").glob("*.json")
    }
    with open(out / "grades.csv", newline="") as handle:
        rows = {r["submission"] for r in csv.DictReader(handle)}
    assert rows and rows <= {f"{k}.ipynb" for k in finished}
    roots = [
        r
        for r in Path(tempfile.gettempdir()).glob("unmasked-grading-*")
        if (r / "grader.pid").exists() and (r / "grader.pid").read_text() == str(proc.pid)
    ]
    assert len(roots) == 1
    deadline = time.monotonic() + 60  # the orphaned worker stops its kernel and removes its scratch
    while list(roots[0].glob("grade-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(roots[0].glob("grade-*"))
    results = grade("lab01_tokens", subs, out, **FAST)
    assert [(r["status"], r["points"]) for r in results] == [("graded", 9)] * 2
    assert all(results[int(k[1:])]["graded_at"] == old["graded_at"] for k, old in finished.items())
    assert not roots[0].exists(), "the next run sweeps what a killed grader left"


def test_rerun_skips_what_is_graded_unless_forced_or_changed(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("empty", "not_json"):  # graded without a kernel: fast
        shutil.copy(FIXTURES / f"{name}.ipynb", subs)
    out = tmp_path / "out"
    calls = []
    original = Grader.grade_one

    def counting(self, path, rel):
        calls.append(rel)
        return original(self, path, rel)

    monkeypatch.setattr(Grader, "grade_one", counting)
    first = grade("lab01_tokens", subs, out, **FAST)
    assert sorted(calls) == ["empty.ipynb", "not_json.ipynb"]
    calls.clear()
    assert grade("lab01_tokens", subs, out, **FAST) == first and calls == []
    (subs / "empty.ipynb").write_text("{}")  # resubmitted: graded again, with the new reason
    again = grade("lab01_tokens", subs, out, **FAST)
    assert calls == ["empty.ipynb"] and "not a Jupyter notebook" in again[0]["reason"]
    calls.clear()
    grade("lab01_tokens", subs, out, **{**FAST, "force": True})
    assert sorted(calls) == ["empty.ipynb", "not_json.ipynb"]
    # a result file that is not a well-formed grade (its checks do not add up) is graded again
    calls.clear()
    forged = out / "results" / f"{submission_key('not_json.ipynb')}.json"
    row = json.loads(forged.read_text())
    row["checks"][0].update(points=row["checks"][0]["max_points"] + 5)
    forged.write_text(json.dumps(row))
    assert grade("lab01_tokens", subs, out, **FAST)[1]["points"] == 0 and calls == [
        "not_json.ipynb"
    ]


# ---- a class that tries to cheat (tests/fixtures/grading/attacks.py) -----------------------


def namespaces_or_skip():
    """Skip where Linux namespaces are unavailable; in CI (CI=true) that is a failure instead."""
    import os

    from unmasked.grading.sandbox import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the sandbox tests: {reason}")
        pytest.skip(reason)


def survivors(marker: str, wait_s: float = 15) -> list[str]:
    """Command lines still carrying `marker`, after giving killed processes time to be reaped."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmdline and state != "Z":
                alive.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:120])
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def _rows(out: Path) -> list[dict]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sandboxed_class(tmp_path_factory):
    namespaces_or_skip()
    import hashlib

    root = tmp_path_factory.mktemp("attacks-sandboxed")
    subs, out = root / "subs", root / "grades"
    subs.mkdir()
    marker = f"unmasked-attack-{time.time_ns()}"
    expected = attacks.build_sandboxed(subs, marker)
    checks_file = Path(registry.__file__).parent / "lab01_tokens.py"
    before = hashlib.sha256(checks_file.read_bytes()).hexdigest()
    results = grade("lab01_tokens", subs, out, **{**FAST, "sandbox": "namespaces"})
    after = hashlib.sha256(checks_file.read_bytes()).hexdigest()
    return out, {r["submission"]: r for r in results}, expected, marker, before == after


@pytest.mark.slow
def test_sandboxed_attacks_gain_nothing_and_change_no_other_row(sandboxed_class):
    out, results, expected, _, _ = sandboxed_class
    assert sorted(results) == sorted(expected)
    for name, (status, points, phrase) in expected.items():
        row = results[name]
        assert (name, row["status"], row["points"]) == (name, status, points), row["reason"]
        assert phrase in row["reason"], (name, row["reason"])
    rows = _rows(out)
    assert sorted(r["submission"] for r in rows) == sorted(expected)
    assert all(r["reason"] != "hacked" and r["submission"] != "daemon" for r in rows)


@pytest.mark.slow
def test_sandboxed_attacks_leave_no_process_and_no_trace(sandboxed_class):
    out, _, _, marker, checks_intact = sandboxed_class
    assert survivors(marker) == []
    assert checks_intact, "a submission rewrote the installed checks"
    time.sleep(1)  # a daemon that survived would append to grades.csv within 0.1 s
    assert "hacked" not in (out / "grades.csv").read_text()


@pytest.fixture(scope="module")
def cheating_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks-anywhere")
    subs, out = root / "subs", root / "grades"
    subs.mkdir()
    marker = f"unmasked-sleeper-{time.time_ns()}"
    expected = attacks.build_anywhere(subs, marker)
    results = grade("lab01_tokens", subs, out, **FAST)
    return subs, out, results, expected, marker


@pytest.mark.slow
def test_every_file_gets_one_row_whatever_its_name_or_bytes(cheating_class):
    import os

    subs, out, results, expected, _ = cheating_class
    names = {r["submission"]: r for r in results}
    assert len(results) == len(expected) == len(names)
    for raw, (status, points, phrase) in expected.items():
        row = names[raw.decode("utf-8", "backslashreplace")]
        assert (raw, row["status"], row["points"]) == (raw, status, points), row["reason"]
        assert phrase in row["reason"], (raw, row["reason"])
    keys = {submission_key(raw) for raw in expected}
    assert len(keys) == len(expected)
    assert {p.stem for p in (out / "results").glob("*.json")} == keys
    assert {p.stem for p in (out / "feedback").glob("*.md")} == keys
    assert os.fsencode(subs / "bad\udcffname.ipynb") == os.fsencode(subs) + b"/bad\xffname.ipynb"


@pytest.mark.slow
def test_learner_text_is_escaped_in_csv_and_feedback(cheating_class):
    _, out, _, _, _ = cheating_class
    rows = _rows(out)
    assert all(not value.startswith(("=", "+", "-", "@")) for r in rows for value in r.values())
    assert any(r["submission"] == "'=SUM(A1).ipynb" for r in rows)
    feedback = (out / "feedback" / f"{submission_key(b'injects.ipynb')}.md").read_text()
    assert "Injected heading" in feedback
    assert not any(line.lstrip().startswith("# Injected") for line in feedback.splitlines())
    assert [line for line in feedback.splitlines() if line.startswith("#")][:1] == [
        "# Feedback: injects.ipynb"
    ]


@pytest.mark.slow
def test_no_daemon_outlives_the_run_even_without_the_sandbox(cheating_class, tmp_path):
    *_, marker = cheating_class
    assert survivors(marker) == []
    subs = tmp_path / "subs"
    subs.mkdir()
    lab = attacks._read(attacks.LAB)
    attacks._write(
        subs / "sleeper.ipynb",
        attacks._with(lab, attacks.SLEEPER.replace("MARKER", marker + "-none")),
    )
    [row] = grade("lab01_tokens", subs, tmp_path / "out", **{**FAST, "sandbox": "none"})
    assert (row["status"], row["points"]) == ("graded", 0), row["reason"]
    assert survivors(marker + "-none") == []


def test_without_namespaces_auto_warns_loudly_and_namespaces_refuses(tmp_path, monkeypatch, capsys):
    from unmasked.grading import sandbox

    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "empty.ipynb", subs)  # no kernel needed: the warning is what is tested
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "no user namespaces here")
    [row] = grade("lab01_tokens", subs, tmp_path / "out", **FAST)
    assert row["status"] == "invalid"
    assert "NO SANDBOX: no user namespaces here" in capsys.readouterr().err
    assert (
        "WARNING: NO SANDBOX: no user namespaces here"
        in (tmp_path / "out" / "scores.html").read_text()
    )
    with pytest.raises(ValueError, match="--sandbox namespaces: no user namespaces here"):
        grade("lab01_tokens", subs, tmp_path / "out", **{**FAST, "sandbox": "namespaces"})
    assert (
        cli(
            [
                "lab01_tokens",
                str(subs),
                "--out",
                str(tmp_path / "o"),
                "-q",
                "--sandbox",
                "namespaces",
            ]
        )
        == 2
    )


def test_a_sandbox_that_cannot_start_python_is_caught_before_grading(tmp_path, monkeypatch, capsys):
    namespaces_or_skip()
    from unmasked.grading import sandbox

    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "empty.ipynb", subs)
    monkeypatch.setattr(
        sandbox, "preflight", lambda box, python, env: "the sandboxed Python failed: boom"
    )
    grade("lab01_tokens", subs, tmp_path / "out", **FAST)
    assert "NO SANDBOX: the sandboxed Python failed: boom" in capsys.readouterr().err
    with pytest.raises(ValueError, match="boom"):
        grade(
            "lab01_tokens",
            subs,
            tmp_path / "out",
            **{**FAST, "sandbox": "namespaces", "force": True},
        )


# ---- for instructors -----------------------------------------------------------------------


def test_only_overrides_and_roster(tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "alice").mkdir(parents=True)
    (subs / "bob").mkdir()
    shutil.copy(
        FIXTURES / "empty.ipynb", subs / "alice" / "lab01.ipynb"
    )  # graded without a kernel: fast
    shutil.copy(FIXTURES / "not_json.ipynb", subs / "bob" / "lab01.ipynb")
    overrides, roster = tmp_path / "overrides.csv", tmp_path / "roster.csv"
    overrides.write_text(
        'submission,points,comment\nalice/lab01.ipynb,4.5,"emailed it; the upload broke"\n'
    )
    roster.write_text(
        "submission,learner_id\nalice/lab01.ipynb,=a001\nbob/lab01.ipynb,b002\ncarol/lab01.ipynb,c003\n"
    )
    options = {**FAST, "overrides": str(overrides), "roster": str(roster)}
    alice, bob = grade("lab01_tokens", subs, out, **options)
    assert (alice["points"], alice["override"]["graded_points"], bob["points"]) == (4.5, 0, 0)
    feedback = (out / "feedback" / f"{submission_key('alice/lab01.ipynb')}.md").read_text()
    assert (
        "Adjusted by your instructor:** 0 -> 4.5 points: emailed it; the upload broke" in feedback
    )
    lms = list(csv.DictReader((out / "lms.csv").read_text().splitlines()))
    assert [(r["learner_id"], r["points"], r["status"]) for r in lms] == [
        ("'=a001", "4.5", "invalid"),
        ("b002", "0", "invalid"),
        ("c003", "", "missing"),
    ]
    # a re-run keeps the override; --only regrades bob alone
    first = {r["submission"]: r["graded_at"] for r in (alice, bob)}
    time.sleep(1.1)
    again = grade("lab01_tokens", subs, out, **{**options, "only": "bob/*"})
    assert [r["points"] for r in again] == [4.5, 0]
    assert (
        again[0]["graded_at"] == first["alice/lab01.ipynb"]
        and again[1]["graded_at"] != first["bob/lab01.ipynb"]
    )
    # the instructor removes the override: the checks' points come back
    overrides.write_text("submission,points,comment\n")
    assert [r["points"] for r in grade("lab01_tokens", subs, out, **options)] == [0, 0]
    with pytest.raises(ValueError, match="matches no submission"):
        grade("lab01_tokens", subs, out, **{**options, "only": "nobody/*"})
    overrides.write_text("submission,points\nalice/lab01.ipynb,lots\n")
    with pytest.raises(ValueError, match="line 2: points 'lots' is not a number"):
        grade("lab01_tokens", subs, out, **options)


def test_scores_page_has_a_full_axis_pass_rates_and_who_failed_what():
    from unmasked.grading.report import failures_html, pass_rates

    def row(name, points, passed):
        checks = [
            {"name": "a", "passed": passed[0], "points": 6 * passed[0], "max_points": 6},
            {"name": "b", "passed": passed[1], "points": 3 * passed[1], "max_points": 3},
        ]
        return {
            "submission": name,
            "points": points,
            "max_points": 9,
            "status": "graded",
            "checks": checks,
        }

    rows = [
        row("x.ipynb", 9, (True, True)),
        row("<y>.ipynb", 6, (True, False)),
        row("z.ipynb", 6, (True, False)),
    ]
    fig = score_figure(rows, "lab01_tokens", warning="NO SANDBOX: test")
    assert tuple(fig.layout.xaxis.range) == (-0.5, 9.5)  # 0 to max, not the 6-9 the scores span
    assert pass_rates(rows) == {"a": (1.0, 3), "b": (1 / 3, 3)}
    table = failures_html(rows)
    assert "&lt;y&gt;.ipynb, z.ipynb" in table and "nobody" in table
    assert any("NO SANDBOX" in a.text for a in fig.layout.annotations)


def test_cell_labels_count_code_cells_as_jupyter_does():
    from unmasked.grading.notebook import cell_label

    nb = read_submission(
        _nb(
            new_markdown_cell("# Lab"),
            new_code_cell("import os"),
            new_markdown_cell("text"),
            new_code_cell("def f():\n    return `1`"),
        )
    )
    assert [cell_label(c) for c in nb.cells if c.cell_type == "code"] == [
        "code cell [1] (`import os`)",
        "code cell [2] (`def f():`)",
    ]


@pytest.mark.slow
def test_grading_on_a_dask_cluster_gives_the_same_rows_and_resumes(tmp_path):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "alice").mkdir(parents=True)
    shutil.copy(FIXTURES / "solution.ipynb", subs / "alice" / "lab01.ipynb")
    shutil.copy(FIXTURES / "untouched.ipynb", subs / "bob.ipynb")
    shutil.copy(FIXTURES / "empty.ipynb", subs / "carol.ipynb")
    (subs / "dir.ipynb").mkdir()
    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        options = {**FAST, "dask": cluster.scheduler_address}
        rows = grade("lab01_tokens", subs, out, **options)
        assert [(r["submission"], r["status"], r["points"]) for r in rows] == [
            ("alice/lab01.ipynb", "graded", 9),
            ("bob.ipynb", "graded", 0),
            ("carol.ipynb", "invalid", 0),
            ("dir.ipynb", "invalid", 0),
        ]
        assert (
            json.loads((out / "results" / f"{submission_key('bob.ipynb')}.json").read_text())
            == rows[1]
        )
        again = grade("lab01_tokens", subs, out, **options)  # resumed: same rows, same graded_at
        assert (
            again[:3] == rows[:3]
        )  # (a folder named .ipynb is looked at again each run: no kernel)


# ---- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "found"),
    [
        (
            [
                "import unmasked.tokens\ndef count_text_tokens(t):\n    return "
                "unmasked.tokens.count_tokens(t)"
            ],
            True,
        ),
        (["from unmasked.tokens import count_tokens as c", "count_text_tokens = c"], True),
        (
            [
                "from unmasked import tokens as T\n_ref = T.count_tokens",
                "def count_text_tokens(t):\n    'mine, honest'\n    return _ref(t)",
            ],
            True,
        ),
        (
            [
                "from unmasked.tokens import *",
                "def count_text_tokens(t):\n    return count_tokens(t)",
            ],
            True,
        ),
        (
            [
                "%%time\nfrom unmasked.compaction import safe_cut as s",
                "def safe_cut(m, k):\n    return s(m, k)",
            ],
            True,
        ),
        (["from unmasked.compaction import *", "safe_cut = safe_cut"], True),
        # one's own work, also when it imports the course's helpers for something else
        (
            [
                "import tiktoken, unmasked.tokens\ndef count_text_tokens(t):\n"
                "    return len(tiktoken.get_encoding('cl100k_base').encode(t, "
                "disallowed_special=()))"
            ],
            False,
        ),
        (
            [
                "from unmasked.compaction import *",
                "def safe_cut(m, k):\n    return k if k < 2 else safe_cut(m, k - 1)",
            ],
            False,
        ),
        (
            [
                "from unmasked.tokens import count_tokens\ndef count_text_tokens(t):\n    return "
                "count_tokens(t)",
                "def count_text_tokens(t):\n    import tiktoken\n    return "
                "len(tiktoken.get_encoding('cl100k_base').encode(t))",
            ],
            False,
        ),  # the last definition is the one that runs
    ],
)
def test_delegation_to_the_course_implementation_is_found_in_the_code(cells, found):
    from unmasked.grading.delegation import delegations

    refs = {"count_text_tokens": ("unmasked.tokens.count_tokens",)}
    funcs = ("count_text_tokens", "safe_cut")
    assert bool(delegations(cells, funcs, refs)) is found, delegations(cells, funcs, refs)


def test_no_solution_or_stub_counts_as_delegation(repo_root):
    from unmasked.grading.delegation import delegations

    for lab in registry.available():
        checks = registry.load(lab)
        funcs = {call.func for check in checks.build(0) for call in check.calls}
        for folder in ("solutions", "labs"):
            nb = nbformat.read(repo_root / folder / f"{lab}.ipynb", as_version=4)
            sources = [c.source for c in nb.cells if c.cell_type == "code"]
            assert delegations(sources, funcs, checks.references) == {}, (folder, lab)


def _nb(*cells):
    return nbformat.writes(new_notebook(cells=list(cells))).encode()


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a Jupyter notebook"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"cells": [42], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "cell 1 is not"),
    ],
)
def test_read_submission_rejects_what_is_not_a_notebook(data, phrase):
    with pytest.raises(InvalidSubmission, match=phrase):
        read_submission(data)


def test_read_submission_keeps_sources_only():
    from nbformat.v4 import new_output

    cell = new_code_cell("x = 1", outputs=[new_output("stream", name="stdout", text="junk")])
    cell.metadata["tags"] = ["parameters"]
    nb = read_submission(_nb(new_markdown_cell("# hi"), cell))
    assert [c.source for c in nb.cells] == ["# hi", "x = 1"]
    assert nb.cells[1].outputs == [] and nb.cells[1].metadata["tags"] == ["parameters"]
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_inject_parameters_does_not_trust_tags():
    params = {"FAST": True, "SEED": 3}
    tagged = new_code_cell("SEED = 0\nFAST = False")
    tagged.metadata["tags"] = ["parameters"]
    forged = new_code_cell("FAST = False")
    forged.metadata["tags"] = ["injected-parameters"]  # a learner's fake injection is dropped
    nb = inject_parameters(
        read_submission(_nb(forged, tagged, new_code_cell("print(SEED)"))), params
    )
    sources = [c.source for c in nb.cells]
    assert sources[0].endswith("FAST = True\nSEED = 3\n") and sources[2] == sources[0]
    assert sources[1] == "SEED = 0\nFAST = False" and len(sources) == 4
    # tag deleted: the cell is found by what it assigns
    cells = _nb(new_code_cell("import os"), new_code_cell("SEED = 0  # mine"))
    untagged = inject_parameters(read_submission(cells), params)
    assert [c.source for c in untagged.cells] == [
        sources[0],
        "import os",
        "SEED = 0  # mine",
        sources[0],
    ]
    # no parameters cell at all: injected at the top only
    bare = inject_parameters(read_submission(_nb(new_code_cell("print(1)"))), params)
    assert [c.source for c in bare.cells] == [sources[0], "print(1)"]


def test_submission_key_is_a_safe_unique_stable_file_name():
    assert submission_key("alice/lab01 tokens.ipynb").startswith("alice__lab01_tokens-")
    assert submission_key("../../etc/passwd.ipynb").startswith("etc__passwd-")
    assert "/" not in submission_key("a/b/c.ipynb")
    assert submission_key("a/b.ipynb") != submission_key("a__b.ipynb")
    assert submission_key("张三.ipynb") != submission_key("李四.ipynb")
    assert submission_key(b"bad\xff.ipynb") != submission_key(b"bad\xfe.ipynb")
    assert submission_key("x.ipynb") == submission_key(b"x.ipynb") == submission_key("x.ipynb")
    assert all(len(submission_key(n)) < 100 for n in ("a" * 500 + ".ipynb", "张" * 300 + ".ipynb"))


def test_checks_registry():
    assert "lab01_tokens" in registry.available()
    lab = registry.load("labs/lab01_tokens.ipynb")
    assert lab.max_points == 9 and lab.parameters == {"FAST": True, "SEED": 0}
    with pytest.raises(ValueError, match="lab01_tokens"):
        registry.load("lab99_nothing")


def test_lab01_inputs_change_with_the_seed_but_the_outline_does_not():
    lab = registry.load("lab01_tokens")
    a, b = lab.build(1), lab.build(2)
    assert [(c.name, c.points) for c in a] == [(c.name, c.points) for c in b]
    assert [c.calls for c in a] != [c.calls for c in b]
    assert [c.calls for c in a] == [c.calls for c in lab.build(1)]


LENGTH_HEURISTICS = {
    "len(text) // 4": lambda t: len(t) // 4,
    "ceil(len(text) / 4)": lambda t: -(-len(t) // 4),
    "round(len(text) / 4)": lambda t: round(len(t) / 4),
    "max(1, len(text) // 4)": lambda t: max(1, len(t) // 4) if t else 0,
    "len(text.split())": lambda t: len(t.split()),
}


@pytest.mark.parametrize("heuristic", sorted(LENGTH_HEURISTICS))
def test_lab01_counting_check_is_not_fooled_by_a_length_heuristic(heuristic):
    """The drawn texts include ones where characters / 4 is several-fold off, for every seed."""
    from unmasked.tokens import count_tokens

    guess = LENGTH_HEURISTICS[heuristic]
    lab = registry.load("lab01_tokens")
    for seed in range(40):
        [check] = [
            c for c in lab.build(seed) if c.name == "count_text_tokens counts cl100k_base tokens"
        ]
        texts = [call.args[0] for call in check.calls]
        right = [Outcome(value=count_tokens(t), type="int") for t in texts]
        assert check.verify(check.calls, right) is None
        fooled = check.verify(check.calls, [Outcome(value=guess(t), type="int") for t in texts])
        assert fooled and "expected" in fooled, (heuristic, seed)
        # and not only through the fixed edge cases: a drawn text alone gives it away
        drawn = [(call, t) for call, t in zip(check.calls, texts) if t not in ("", "x", " ")]
        assert any(guess(t) != count_tokens(t) for _, t in drawn), (heuristic, seed)
        far = [t for t in texts if abs(guess(t) - count_tokens(t)) >= max(3, count_tokens(t) / 2)]
        assert far, f"seed {seed}: no drawn text where {heuristic} is far off"


@pytest.mark.parametrize("lab", registry.available())
def test_every_check_module_keeps_the_contract(lab):
    """Same outline for any seed; arguments survive the trip into the kernel as JSON."""
    checks = registry.load(lab)
    a, b = checks.build(0), checks.build(12345)
    assert [(c.name, c.points) for c in a] == [(c.name, c.points) for c in b]
    for check in a:
        for call in check.calls:
            assert json.loads(json.dumps(list(call.args))) == list(call.args), (check.name, call)
    make_probe(a, checks.call_timeout_s)  # raises if anything is not JSON


@pytest.mark.slow
@pytest.mark.parametrize(
    "lab", [lab for lab in registry.available() if lab != "lab01_tokens"]
)  # lab01: fixtures
def test_every_lab_with_checks_gives_its_solution_full_marks_and_its_stub_zero(
    lab, tmp_path, repo_root
):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(repo_root / "solutions" / f"{lab}.ipynb", subs / "solution.ipynb")
    shutil.copy(repo_root / "labs" / f"{lab}.ipynb", subs / "untouched.ipynb")
    solution, untouched = grade(lab, subs, tmp_path / "out", **FAST)
    assert solution["status"] == "graded" and solution["points"] == solution["max_points"], (
        solution["reason"]
    )
    assert untouched["points"] == 0, untouched["reason"]


def test_a_sampler_that_reuses_one_forward_pass_fails_lab04s_hidden_check_for_every_seed():
    """lab04's `sample` run once and its logits reused at every step writes generate's tokens on an
    untrained transformer now and then; the hidden check's context-sensitive cases catch it for
    every drawn seed, and the right sampler passes them."""
    import random

    import torch

    from unmasked.grading.checks import lab04_unmasking as lab04
    from unmasked.labtools import one_pass_sampler
    from unmasked.sampling import generate

    def right(model, prompt, length, steps, mask_id):
        out, _ = generate(model, torch.tensor([prompt]), length, steps, mask_id=mask_id)
        return out[0].tolist()

    def verdict(sample, check):
        outcomes = []
        for call in check.calls:
            args = lab04.build_here(list(call.args))
            with torch.no_grad():
                outcomes.append(Outcome(value=sample(*args)))
        return check.verify(check.calls, outcomes)

    for seed in range(40):
        [check] = [
            c for c in lab04.build(random.Random(seed)) if c.name.startswith("sample matches")
        ]
        assert verdict(one_pass_sampler, check) is not None, f"check seed {seed}"
        assert verdict(right, check) is None, f"check seed {seed}"


@pytest.mark.slow
def test_a_patched_display_gains_no_point_on_any_lab(tmp_path, repo_root):
    """The checks' report rewritten in the kernel (errors into ValueError, watched calls into
    clean returns) scores no more than the untouched stub: every check needs right values."""
    for lab in registry.available():
        subs = tmp_path / lab
        subs.mkdir()
        stub = attacks._read(repo_root / "labs" / f"{lab}.ipynb")
        attacks._write(subs / "patched.ipynb", attacks._with(stub, attacks.PATCH_DISPLAY))
        [row] = grade(lab, subs, tmp_path / f"out-{lab}", **FAST)
        assert (lab, row["points"]) == (lab, 0), row["reason"]


def _run_probe(checks, namespace, monkeypatch, timeout=0.5):
    """Execute the appended cell in-process and return the outcomes the grader reads back."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    probe = make_probe(checks, timeout)
    exec(probe.cell.source, namespace)
    cell = {"outputs": [{"output_type": "display_data", "data": obj} for obj in shown]}
    return probe, read_probe(cell, probe)


def test_probe_reports_values_errors_timeouts_and_mutation(monkeypatch):
    def loops(x):
        while True:
            pass

    def mutates(x):
        x.append(1)
        return x

    namespace = {
        "double": lambda x: 2 * x,
        "boom": lambda x: 1 / 0,
        "loops": loops,
        "mutates": mutates,
        "n": 3,
    }
    check = returns("double", 1, "double", [(1,), (2.5,)], [2, 5.0])
    odd = returns("odd", 1, "boom", [(1,)], [0])
    slow = returns("slow", 1, "loops", [(1,), (2,)], [0, 0])
    missing = returns("missing", 1, "nowhere", [(1,)], [0])
    not_callable = returns("n", 1, "n", [(1,)], [0])
    from unmasked.grading.spec import leaves_args_unchanged

    mut = leaves_args_unchanged("mut", 1, "mutates", [([1, 2],)])
    checks = [check, odd, slow, missing, not_callable, mut]
    started = time.monotonic()
    probe, outcomes = _run_probe(checks, namespace, monkeypatch)
    assert time.monotonic() - started < 60, "a call that never returns is cut at its deadline"
    assert outcomes["0:0"] == Outcome(value=2, type="int") and outcomes["0:1"].value == 5.0
    assert outcomes["1:0"].raised("ZeroDivisionError") and outcomes["1:0"].raised("ArithmeticError")
    assert outcomes["2:0"].error == "Timeout" and "skipped" in outcomes["2:1"].message
    assert outcomes["3:0"].error == "NameError" and outcomes["4:0"].error == "TypeError"
    assert outcomes["5:0"].args_after == [[1, 2, 1]]
    verdicts = score_checks(checks, outcomes)
    assert [v["passed"] for v in verdicts] == [True, False, False, False, False, False]
    assert "changed its argument" in verdicts[5]["message"]


def test_probe_report_must_be_ours_and_single(monkeypatch):
    probe = make_probe([returns("x", 1, "f", [(1,)], [1])], 1)
    ours = {"token": probe.token, "results": [{"id": "0:0", "value": 1, "type": "int"}]}
    forged = {"token": "guess", "results": [{"id": "0:0", "value": 1, "type": "int"}]}

    def out(*objs):
        return {"outputs": [{"output_type": "display_data", "data": {MIME: o}} for o in objs]}

    assert read_probe(out(ours), probe)["0:0"].value == 1
    from unmasked.grading.notebook import ProbeError

    for cell in (out(), out(forged), out(forged, ours)):
        with pytest.raises(ProbeError):
            read_probe(cell, probe)


def test_a_check_that_crashes_on_odd_values_fails_instead_of_crashing_the_grader():
    check = raises("r", 1, "f", [(1,)], "ValueError")
    broken = type(check)("b", 2, (Call("f"),), lambda calls, outs: outs[0].value.nope)
    verdicts = score_checks(
        [check, broken], {"0:0": Outcome(value=1, type="int"), "1:0": Outcome(value=1)}
    )
    assert [v["points"] for v in verdicts] == [0, 0] and "could not check" in verdicts[1]["message"]


def test_grades_csv_and_figure():
    rows = [
        {
            "submission": "b.ipynb",
            "lab": "l",
            "points": 1.5,
            "max_points": 9,
            "status": "graded",
            "reason": "a, b",
        },
        {
            "submission": "a.ipynb",
            "lab": "l",
            "points": 0,
            "max_points": 9,
            "status": "invalid",
            "reason": "empty",
        },
    ]
    text = grades_csv(rows)
    assert text.splitlines()[0] == "submission,lab,points,max_points,status,reason"
    assert text.splitlines()[1:] == ["a.ipynb,l,0,9,invalid,empty", 'b.ipynb,l,1.5,9,graded,"a, b"']
    fig = score_figure(rows, "l")
    assert sorted(t.name for t in fig.data) == ["graded (1)", "invalid (1)"]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_kill_tree_reaches_a_child_in_another_session():
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    child = int(parent.stdout.readline())
    kill_tree(parent.pid)
    assert parent.wait(timeout=60) == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state == "Z":  # killed, waiting for init to reap it
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or state == "Z"


def test_cli_reports_bad_input(tmp_path, capsys):
    assert cli(["lab99_nothing", str(tmp_path), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "no hidden checks for lab 'lab99_nothing'" in capsys.readouterr().err
    assert cli(["lab01_tokens", str(tmp_path), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "no .ipynb files" in capsys.readouterr().err
    with pytest.raises(ValueError, match="-j must be at least 1"):
        Options(jobs=0)
    with pytest.raises(ValueError, match="--start-timeout 0"):
        Options(start_timeout=0)
    with pytest.raises(ValueError, match="--start-attempts must be at least 1"):
        Options(start_attempts=0)


def test_kernel_env_keeps_the_kernel_in_its_scratch_folder(tmp_path, monkeypatch):
    from unmasked.grading.worker import kernel_env

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/shared/cache")
    monkeypatch.setenv("UNMASKED_GRADING_OUT", "/secret/grades")
    env = kernel_env(tmp_path)
    assert env["HOME"] == env["PWD"] == str(tmp_path) and env["UNMASKED_FAST"] == "1"
    assert all(
        env[k].startswith(str(tmp_path)) for k in ("TMPDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR")
    )
    assert "TIKTOKEN_CACHE_DIR" not in env and "UNMASKED_GRADING_OUT" not in env


def test_probe_builds_arguments_and_reports_dataclasses(monkeypatch):
    from dataclasses import dataclass

    from unmasked.grading.spec import last, make, ref

    @dataclass
    class Point:
        x: int
        y: list

    namespace = {
        "total": lambda t: t.sum().item(),
        "kind": lambda t: str(t.dtype),
        "point": lambda x: Point(x, [x, x]),
        "same": lambda v: v,
    }
    tensor = make("torch:tensor", [[1, 2], [3, 4]], dtype=ref("torch:float64"))
    checks = [
        returns("total", 1, "total", [(tensor,)], [10.0]),
        returns("kind", 1, "kind", [(tensor,)], ["torch.float64"]),
        returns("point", 1, "point", [(3,)], [{"x": 3, "y": [3, 3]}]),
        returns(
            "last", 1, "same", [(last(make("builtins:int", "4"), make("builtins:int", "5")),)], [5]
        ),
        returns(
            "plain dicts pass through", 1, "same", [({"a": [1, {"b": 2}]},)], [{"a": [1, {"b": 2}]}]
        ),
        returns("bad path", 1, "same", [(make("no_such_module:thing"),)], [0]),
    ]
    _, outcomes = _run_probe(checks, namespace, monkeypatch)
    assert (
        outcomes["5:0"].error == "ModuleNotFoundError"
        and "could not build" in outcomes["5:0"].message
    )
    verdicts = score_checks(checks, outcomes)
    assert [v["passed"] for v in verdicts] == [True, True, True, True, True, False], [
        v["message"] for v in verdicts
    ]


def test_the_sandbox_hides_the_grader_and_the_repository_s_secrets(tmp_path):
    from unmasked.grading.sandbox import Sandbox, hidden_for

    repo = tmp_path / "course"
    for folder in ("utils/unmasked/grading/checks", "solutions", "tests/fixtures", "data", ".git"):
        (repo / folder).mkdir(parents=True)
    site = tmp_path / "site-packages"
    (site / "unmasked" / "grading").mkdir(parents=True)
    hidden = hidden_for([str(repo), str(repo / "utils"), str(site)], [str(tmp_path / "grades")])
    for path in ("utils/unmasked/grading", "solutions", "tests", ".git"):
        assert str(repo / path) in hidden
    assert (
        str(repo / "utils" / "unmasked" / "grading") in hidden
        and str(site / "unmasked" / "grading") in hidden
    )
    assert str(repo / "data") not in hidden
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    box = Sandbox(str(scratch), (str(repo), str(repo / "utils")), hidden, 2**30)
    argv = box.wrap(["python", "-V"])
    assert str(repo) not in " ".join(argv)  # the paths travel in a file, not on the command line
    options = Path(box.args_file).read_bytes().split(b"\0")[:-1]
    text = " ".join(o.decode() for o in options) + " " + " ".join(argv)
    assert (
        f"--ro-bind {repo} {repo}" in text and f"--ro-bind {repo}/utils" not in text
    )  # inside a bind
    assert f"--tmpfs {repo}/solutions" in text and f"--bind {scratch} {scratch}" in text
    assert (
        "--unshare-all" in text
        and "--as=1073741824:1073741824" in text
        and argv[-2:] == ["python", "-V"]
    )
    assert str(tmp_path / "grades") not in text  # not inside anything bound: not there at all


PROBE_VIEW = r"""
import json, os, socket, sys
from pathlib import Path
import unmasked
init = open("/proc/1/cmdline", "rb").read().replace(b"\0", b" ").decode()
out = {"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
       "env": sorted(os.environ), "init": init}
root = Path(unmasked.__file__).resolve().parents[1]
out["checks"] = sorted(os.listdir(root / "unmasked" / "grading"))
out["solutions"] = os.path.exists(root.parent / "solutions")
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3)
    out["net"] = True
except OSError:
    out["net"] = False
targets = ("/tmp/escaped.txt", str(root / "escaped.txt"), os.path.expanduser("~/../escaped.txt"))
for target in targets:
    try:
        open(target, "w").write("x")
        out.setdefault("wrote", []).append(target)
    except OSError:
        pass
open("inside.txt", "w").write("ok")
try:
    bytearray(3 * 2**30)
    out["memory"] = "allowed"
except MemoryError:
    out["memory"] = "capped"
print(json.dumps(out))
"""


def test_inside_the_sandbox_a_process_sees_and_reaches_only_its_scratch(tmp_path, monkeypatch):
    namespaces_or_skip()
    import os

    from unmasked.grading.sandbox import Sandbox, hidden_for, readable_for
    from unmasked.grading.worker import kernel_env

    monkeypatch.setenv("INSTRUCTOR_TOKEN", "secret")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    readable = readable_for(sys.executable, os.environ.get("PYTHONPATH", ""))
    box = Sandbox(str(scratch), readable, hidden_for(readable), 2 * 2**30)
    done = subprocess.run(
        box.wrap([sys.executable, "-c", PROBE_VIEW]),
        capture_output=True,
        text=True,
        env=kernel_env(scratch),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["uid"] == 65534 and seen["pids"] == [
        1,
        2,
    ]  # bubblewrap's init and itself: no grader
    assert (
        "--args 3" in seen["init"] and "--ro-bind" not in seen["init"]
    )  # no paths of the instructor's
    assert "INSTRUCTOR_TOKEN" not in seen["env"] and "HOME" in seen["env"]
    assert seen["checks"] == [] and not seen["solutions"] and not seen["net"]
    assert "wrote" not in seen and (scratch / "inside.txt").read_text() == "ok"
    assert seen["memory"] == "capped"
