"""Run All seconds per notebook at its default knobs: what a learner waits for (issue #25).

    python benchmarks/bench_notebooks.py [PATH ...] [--fast] [--timeout S] [--budget S] [--keep DIR]
                                         [--out FILE]

PATH is a notebook or a folder (its *.ipynb, sorted); with none, every lecture
(notebooks/[0-9][0-9]_*.ipynb). `make test-full` runs `notebooks solutions`: every lecture and every
worked lab. Each notebook is executed headless with nbclient in a fresh kernel, in its own folder,
one at a time, at its defaults unless --fast sets UNMASKED_FAST=1. A notebook that raises, or runs
past --timeout seconds in all, fails; the others still run, and the exit status is 1 if any failed.

The figure is the wall-clock seconds from the first cell's start to the last cell's end (kernel
start-up excluded, as in JupyterLab, where the kernel is already running when a learner presses Run
All), with the three slowest cells. A notebook over --budget (the learner's limit, 180 s on a quiet
2-core machine) is flagged, not failed: a loaded CI machine is slower. It prints a line per notebook
and writes the figures, with the device, command, date, the kernel's CPU seconds and the load
average before and after each notebook, and what each cell printed, to
data/bench/notebooks_defaults.json (--out). The figures
depend on the machine and on what else runs on it: compare runs on a quiet machine only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError

from unmasked.env import describe_machine, fast_mode
from unmasked.site import cell_stamp, run_all_seconds

ROOT = Path(__file__).resolve().parents[1]
LECTURES = "[0-9][0-9]_*.ipynb"
TIMEOUT_S = 600  # per notebook: a loaded CI machine runs the 3-minute lectures 2-3 times slower
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours in a kernel's traceback
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "UNMASKED_FAST")
BUDGET_S = 180  # a learner's limit for Run All on a quiet 2-core machine (issue #25)


def discover(paths: list[Path], root: Path = ROOT) -> list[Path]:
    """The notebooks to run, in order: each file as given, each folder's *.ipynb sorted; with no
    paths, the lectures. Duplicates are dropped; a path that does not exist is an error."""
    if not paths:
        return sorted((root / "notebooks").glob(LECTURES))
    found: list[Path] = []
    for path in paths:
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            found += sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))
        elif path.is_file() and path.suffix == ".ipynb":
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: not a notebook or a folder of notebooks")
    unique = []
    for path in found:
        if path.resolve() not in [p.resolve() for p in unique]:
            unique.append(path)
    return unique


def display_name(path: Path, root: Path = ROOT) -> str:
    """notebooks/03_training.ipynb: relative to the repository when it is inside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def remaining(deadline: float, now: float) -> int:
    """Seconds a cell may run before the notebook's deadline; at least 1, because nbclient reads
    0 as no limit."""
    return max(1, int(deadline - now + 0.999))


def cell_seconds(nb) -> list[tuple[int, str, float]]:
    """(cell index, first line, seconds) of each executed code cell, from nbclient's timing
    metadata."""
    rows = []
    for i, cell in enumerate(nb.cells):
        start = cell_stamp(cell, "iopub.execute_input")
        end = cell_stamp(cell, "shell.execute_reply")
        if cell.cell_type == "code" and start is not None and end is not None:
            first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
            rows.append((i, first, end - start))
    return rows


def printed_text(nb, limit: int = 4000) -> dict[str, str]:
    """What each code cell printed (stdout), by cell index, each cut to its last `limit`
    characters: the figures a run showed, kept beside its seconds so that a note can cite them."""
    out = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        text = "".join(
            o.get("text", "")
            for o in cell.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stdout"
        )
        if text.strip():
            out[str(i)] = ANSI.sub("", text)[-limit:]
    return out


def short_error(exc: BaseException) -> str:
    """The exception's type and the last line of its message (nbclient's traceback ends with the
    error)."""
    lines = [line for line in ANSI.sub("", str(exc)).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1][:300] if lines else ''}"


def unfinished_cell(nb) -> int | None:
    """The index of the cell that started and never replied: where a timeout struck."""
    for i, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" not in timing:
            return i
    return None


def children_cpu_s() -> float:
    """CPU seconds used by this process's finished children: the kernels. Less sensitive to other
    load than wall time (though busy threads spin), so it helps read a run on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_notebook(path: Path, timeout: int, keep: Path | None = None) -> dict:
    """Execute one notebook in a fresh kernel with `timeout` seconds for all its cells together;
    a failure is reported with the time it ran, not raised. With `keep`, the executed notebook
    (outputs, errors included) is written there under its own name."""
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + timeout
    client = NotebookClient(
        nb,
        timeout=timeout,
        timeout_func=lambda cell: remaining(deadline, time.monotonic()),
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    load_before = os.getloadavg()[0]
    cpu_before = children_cpu_s()
    t0 = time.perf_counter()
    error = detail = None
    try:
        client.execute()
    except CellTimeoutError as exc:
        cell = unfinished_cell(nb)
        error = f"CellTimeoutError: past the {timeout} s limit for the notebook, in cell {cell}"
        detail = ANSI.sub("", str(exc))[-4000:]
    except Exception as exc:  # reported with the time it ran, then the next notebook runs
        error, detail = short_error(exc), ANSI.sub("", str(exc))[-4000:]
    total = time.perf_counter() - t0
    # nbclient answers SIGINT/SIGTERM by shutting the kernel down, and the cell then fails; it
    # leaves this future behind, so a Ctrl-C stops the whole run instead of the next notebook
    # starting.
    interrupted = getattr(client, "_async_cleanup_kernel_future", None) is not None
    if keep is not None:  # stamped with its mode, for `python -m unmasked.site --executed`
        nb.metadata["unmasked"] = {"fast_mode": fast_mode()}
        keep.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / path.name)
    kernel_cpu = children_cpu_s() - cpu_before  # the kernel is our child, reaped at shutdown
    cells = cell_seconds(nb)
    run_all = run_all_seconds(nb)
    slowest = sorted(cells, key=lambda r: -r[2])[:3]
    return {
        "notebook": display_name(path),
        "run_all_s": None if run_all is None else round(run_all, 1),
        "with_kernel_start_s": round(total, 1),
        "kernel_cpu_s": round(kernel_cpu, 1),
        "slowest_cells": [{"cell": i, "source": src, "s": round(s, 1)} for i, src, s in slowest],
        "cell_s": {str(i): round(s, 1) for i, _, s in cells},  # every code cell, by index
        "printed": printed_text(nb),
        "error": "interrupted" if interrupted else error,
        "error_detail": detail,
        "interrupted": interrupted,
        "load_average": {"start": load_before, "end": os.getloadavg()[0]},
    }


def progress_line(i: int, n: int, row: dict, budget: float) -> str:
    """One line per notebook: its seconds, the load average around it, its slowest cell, and
    whether it failed or went over the learner's budget."""
    top = row["slowest_cells"][0] if row["slowest_cells"] else {"s": 0, "source": ""}
    load = row["load_average"]
    # a failed notebook's cell stamps stop at the cell that failed: show how long it really ran
    failed = row["error"] or row["run_all_s"] is None
    secs = row["with_kernel_start_s"] if failed else row["run_all_s"]
    note = ""
    if row["error"]:
        note = f"  FAILED {row['error']}"
    elif secs > budget:
        note = f"  over the {budget:.0f} s budget"
    width = len(str(n))
    return (
        f"[{i:>{width}}/{n}] {row['notebook']:<40} {secs:>7.1f} s  "
        f"cpu {row.get('kernel_cpu_s', 0):>6.1f} s  "
        f"load {load['start']:>4.1f}>{load['end']:<4.1f}  slowest {top['s']} s {top['source']!r}"
        + note
    )


def device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda ({torch.cuda.get_device_name(0)})"
    except ImportError:
        pass
    return "cpu"


def report(
    results: list[dict],
    *,
    fast: bool,
    command: str,
    budget: float,
    timeout: int,
    date: str,
    device: str,
    note: str | None = None,
) -> dict:
    """The JSON artifact: what was run, where, when, and each notebook's seconds."""
    mode = "in fast mode (UNMASKED_FAST=1)" if fast else "at the default knobs"
    return {
        "what": "issue #25: Run All seconds per notebook, executed headless with nbclient " + mode,
        "device": device,
        "machine": describe_machine(),
        "python": platform.python_version(),
        "command": command,
        "date": date,
        # torch's default thread count follows these; on an oversubscribed CPU, several torch
        # threads per kernel can run many times slower than one
        "environment": {k: os.environ.get(k) for k in THREAD_VARS},
        "note": note,
        "timeout_per_notebook_s": timeout,
        "budget_s": budget,
        "total_s": round(sum(r["with_kernel_start_s"] for r in results), 1),
        "failed": [r["notebook"] for r in results if r["error"]],
        "over_budget": [
            r["notebook"]
            for r in results
            if not r["error"] and r["run_all_s"] is not None and r["run_all_s"] > budget
        ],
        "notebooks": results,
    }


def run_all(notebooks: list[Path], args) -> list[dict]:
    mode = "fast mode" if args.fast else "default knobs"
    print(
        f"{len(notebooks)} notebooks at their {mode}, one at a time, {args.timeout} s each at most",
        flush=True,
    )
    results = []
    for i, path in enumerate(notebooks, 1):
        width = len(str(len(notebooks)))
        print(f"[{i:>{width}}/{len(notebooks)}] {display_name(path)} ...", flush=True)
        row = run_notebook(path.resolve(), args.timeout, args.keep)
        results.append(row)
        print(progress_line(i, len(notebooks), row, args.budget), flush=True)
        if row["interrupted"]:
            print("interrupted: the remaining notebooks are not run", flush=True)
            break
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks or folders")
    parser.add_argument(
        "--fast", action="store_true", help="UNMASKED_FAST=1 (as make test), not the defaults"
    )
    parser.add_argument(
        "--timeout", type=int, default=TIMEOUT_S, help="seconds per notebook, all cells together"
    )
    parser.add_argument(
        "--budget", type=float, default=BUDGET_S, help="flag notebooks slower than this"
    )
    parser.add_argument("--note", help="a line about the run (the machine's state) for the JSON")
    parser.add_argument(
        "--keep", type=Path, help="write each executed notebook (with its outputs) to this folder"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "data" / "bench" / "notebooks_defaults.json"
    )
    args = parser.parse_args(argv)
    try:
        notebooks = discover(args.paths)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not notebooks:
        parser.error("no notebooks found")
    saved = os.environ.get("UNMASKED_FAST")
    try:
        if args.fast:
            os.environ["UNMASKED_FAST"] = "1"  # the kernels inherit it
        else:
            os.environ.pop("UNMASKED_FAST", None)
        results = run_all(notebooks, args)
    finally:  # a caller in the same process (a test under make test) keeps its fast mode
        if saved is None:
            os.environ.pop("UNMASKED_FAST", None)
        else:
            os.environ["UNMASKED_FAST"] = saved

    command = "python benchmarks/bench_notebooks.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    result = report(
        results,
        fast=args.fast,
        command=command.strip(),
        budget=args.budget,
        timeout=args.timeout,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=device(),
        note=args.note,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['total_s']} s in all; wrote {args.out}")
    for row in results:
        if row["error"]:
            print(f"\n=== {row['notebook']} FAILED\n{row['error_detail']}", file=sys.stderr)
    if result["failed"]:
        print(f"failed: {', '.join(result['failed'])}", file=sys.stderr)
    if any(r["interrupted"] for r in results):
        return 130
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
