"""`make test-full`'s runner (benchmarks/bench_notebooks.py): which notebooks it finds, that a
failing or never-ending notebook fails the run, and what its JSON artifact records. No timing is
asserted: the figures are measurements, not tests."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest
from nbhelpers import ROOT

_spec = importlib.util.spec_from_file_location(
    "bench_notebooks", ROOT / "benchmarks" / "bench_notebooks.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, path)
    return path


def test_no_paths_means_every_lecture_in_order():
    found = bench.discover([])
    names = [p.name for p in found]
    assert names == sorted(names) and len(names) >= 9
    assert all(p.parent == ROOT / "notebooks" for p in found)
    assert "00_welcome.ipynb" in names


def test_folders_expand_sorted_files_stay_and_duplicates_go(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".ipynb_checkpoints").mkdir()
    for name in ("lab02_x.ipynb", "lab01_y.ipynb", ".hidden.ipynb", "notes.md"):
        (tmp_path / "b" / name).write_text("{}")
    (tmp_path / "b" / ".ipynb_checkpoints" / "lab01_y-checkpoint.ipynb").write_text("{}")
    one = tmp_path / "one.ipynb"
    one.write_text("{}")
    found = bench.discover([one, tmp_path / "b", tmp_path / "b" / "lab01_y.ipynb"], root=tmp_path)
    assert [p.name for p in found] == ["one.ipynb", "lab01_y.ipynb", "lab02_x.ipynb"]


def test_make_test_full_finds_every_lecture_and_solution():
    found = bench.discover([bench.Path("notebooks"), bench.Path("solutions")])
    expected = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted(
        (ROOT / "solutions").glob("*.ipynb")
    )
    assert found == expected
    assert any(p.name.startswith("lab") for p in found)


def test_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        bench.discover([tmp_path / "nope"], root=tmp_path)


def test_remaining_never_reads_as_no_limit():
    assert bench.remaining(100.0, 40.0) == 60
    assert bench.remaining(100.0, 99.5) == 1
    assert bench.remaining(100.0, 140.0) == 1  # nbclient reads 0 as "no timeout"


def _row(name, secs, error=None):
    return {
        "notebook": name,
        "run_all_s": secs,
        "with_kernel_start_s": secs + 1,
        "slowest_cells": [{"cell": 2, "source": "train()", "s": secs - 1}],
        "error": error,
        "error_detail": None,
        "interrupted": False,
        "load_average": {"start": 1.0, "end": 2.0},
    }


def test_report_names_device_command_date_and_each_notebooks_seconds():
    rows = [
        _row("notebooks/00_a.ipynb", 10.0),
        _row("notebooks/03_b.ipynb", 200.0),
        _row("solutions/lab01.ipynb", 5.0, error="CellExecutionError: ValueError: x"),
    ]
    out = bench.report(
        rows,
        fast=False,
        command="python benchmarks/bench_notebooks.py notebooks solutions",
        budget=180,
        timeout=600,
        date="2026-12-01T17:00:00+00:00",
        device="cpu",
    )
    assert out["device"] == "cpu" and out["date"].startswith("2026-12-01")
    assert "OMP_NUM_THREADS" in out["environment"]
    assert out["command"].endswith("notebooks solutions")
    assert "default knobs" in out["what"]
    assert out["failed"] == ["solutions/lab01.ipynb"]
    assert out["over_budget"] == ["notebooks/03_b.ipynb"]
    assert out["total_s"] == 11.0 + 201.0 + 6.0
    assert [r["run_all_s"] for r in out["notebooks"]] == [10.0, 200.0, 5.0]
    json.dumps(out)  # it is written as JSON


def test_printed_text_keeps_each_cells_stdout_and_its_tail():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("x")]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="first line\n"),
        nbformat.v4.new_output("stream", name="stderr", text="a progress bar\n"),
        nbformat.v4.new_output("stream", name="stdout", text="\x1b[31mlast\x1b[0m line\n"),
    ]
    assert bench.printed_text(nb) == {"1": "first line\nlast line\n"}
    assert bench.printed_text(nb, limit=10) == {"1": "last line\n"}


def test_progress_line_says_failed_or_over_budget():
    failed = bench.progress_line(1, 12, _row("x.ipynb", 3.0, error="CellTimeoutError: t"), 180)
    assert "FAILED CellTimeoutError" in failed
    assert "    4.0 s" in failed, "a failed notebook shows how long it ran, kernel start included"
    assert "over the 180 s budget" in bench.progress_line(2, 12, _row("y.ipynb", 181.0), 180)
    line = bench.progress_line(3, 12, _row("z.ipynb", 179.0), 180)
    assert "budget" not in line and "FAILED" not in line and " 3/12]" in line


@pytest.mark.slow
def test_a_failing_and_a_never_ending_notebook_fail_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNMASKED_FAST", "1")
    ok = _notebook(tmp_path / "a_ok.ipynb", "import os\nprint(os.environ.get('UNMASKED_FAST'))")
    bad = _notebook(tmp_path / "b_bad.ipynb", "x = 1", "raise ValueError('planted failure')")
    # Two cells that each stay under the budget alone but never end together: the limit is
    # per notebook, not per cell.
    hangs = _notebook(
        tmp_path / "c_hangs.ipynb", "import time\ntime.sleep(4)", "while True:\n    time.sleep(1)"
    )
    out = tmp_path / "bench.json"
    keep = tmp_path / "executed"
    args = [str(ok), str(bad), str(hangs), "--timeout", "6", "--out", str(out), "--keep", str(keep)]
    code = bench.main(args)
    assert code == 1
    assert bench.os.environ["UNMASKED_FAST"] == "1", "the caller's fast mode is restored"
    result = json.loads(out.read_text())
    rows = {r["notebook"].rsplit("/", 1)[-1]: r for r in result["notebooks"]}
    assert rows["a_ok.ipynb"]["error"] is None
    assert rows["a_ok.ipynb"]["kernel_cpu_s"] > 0, "the kernel's start-up alone costs CPU"
    assert rows["a_ok.ipynb"]["printed"] == {"0": "None\n"}, "run at the defaults, not fast mode"
    assert "ValueError" in rows["b_bad.ipynb"]["error"]
    assert "planted failure" in rows["b_bad.ipynb"]["error_detail"]
    assert "Timeout" in rows["c_hangs.ipynb"]["error"]
    assert "past the 6 s limit for the notebook, in cell 1" in rows["c_hangs.ipynb"]["error"]
    assert rows["c_hangs.ipynb"]["with_kernel_start_s"] < 60
    assert result["failed"] == [r["notebook"] for r in result["notebooks"][1:]]
    kept = nbformat.read(keep / "b_bad.ipynb", as_version=4)
    assert kept.cells[1].outputs[0]["ename"] == "ValueError", "the failing cell keeps its error"
    printed = capsys.readouterr()
    assert "[1/3]" in printed.out and "FAILED" in printed.out
    assert "planted failure" in printed.err


@pytest.mark.slow
def test_a_signal_stops_the_whole_run(tmp_path):
    """nbclient turns SIGTERM/SIGINT into a kernel shutdown and a failed cell; the runner must then
    stop, not go on to the next notebook."""
    started = tmp_path / "started"
    hangs = _notebook(
        tmp_path / "a_hangs.ipynb",
        f"open({str(started)!r}, 'w').close()",
        "import time\nwhile True:\n    time.sleep(1)",
    )
    after = _notebook(tmp_path / "b_after.ipynb", "print('ran')")
    out = tmp_path / "bench.json"
    script = str(ROOT / "benchmarks" / "bench_notebooks.py")
    proc = subprocess.Popen(
        [sys.executable, script, str(hangs), str(after), "--timeout", "300", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "utils")},
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists(), "the first notebook's kernel never ran its first cell"
        time.sleep(1)  # now in the never-ending cell
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    printed = proc.stdout.read()
    assert code == 130, printed
    assert "interrupted: the remaining notebooks are not run" in printed
    assert "b_after" not in printed, printed
    result = json.loads(out.read_text())
    assert [r["interrupted"] for r in result["notebooks"]] == [True]
