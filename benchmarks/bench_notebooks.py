"""Run All seconds per lecture at its default knobs: what a learner waits for (issue #25).

    python benchmarks/bench_notebooks.py [notebooks/00_welcome.ipynb ...] [--fast] [--out FILE]

Each lecture (default: every notebooks/[0-9][0-9]_*.ipynb, in order) is executed headless with
nbclient in a fresh kernel, at its defaults unless --fast sets UNMASKED_FAST=1. The figure is the
wall-clock seconds from the first cell's start to the last cell's end (kernel start-up excluded, as
in JupyterLab, where the kernel is already running when a learner presses Run All), with the three
slowest cells. It prints a table and writes the figures with the device, command, date and the load
average before and after each lecture to data/bench/notebooks_defaults.json (--out). The figures
depend on the machine and on what else runs on it: compare runs on a quiet machine only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def _stamp(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def cell_seconds(nb) -> list[tuple[int, str, float]]:
    """(cell index, first line, seconds) of each executed code cell, from nbclient's timing
    metadata."""
    rows = []
    for i, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = (
            _stamp(timing.get("iopub.execute_input")),
            _stamp(timing.get("shell.execute_reply")),
        )
        if cell.cell_type == "code" and start is not None and end is not None:
            rows.append(
                (
                    i,
                    cell.source.strip().splitlines()[0][:60] if cell.source.strip() else "",
                    end - start,
                )
            )
    return rows


def run_notebook(path: Path, timeout: int) -> dict:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except (
        Exception
    ) as exc:  # a lecture that fails is reported with the time it ran, then the next one runs
        error = (
            f"{type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ''}"
        )
    total = time.perf_counter() - t0
    cells = cell_seconds(nb)
    starts = [_stamp(c.metadata.get("execution", {}).get("iopub.execute_input")) for c in nb.cells]
    ends = [_stamp(c.metadata.get("execution", {}).get("shell.execute_reply")) for c in nb.cells]
    starts, ends = [s for s in starts if s], [e for e in ends if e]
    run_all = (max(ends) - min(starts)) if starts and ends else None
    slowest = sorted(cells, key=lambda r: -r[2])[:3]
    return {
        "notebook": path.name,
        "run_all_s": None if run_all is None else round(run_all, 1),
        "with_kernel_start_s": round(total, 1),
        "slowest_cells": [{"cell": i, "source": src, "s": round(s, 1)} for i, src, s in slowest],
        "error": error,
        "load_average": {"start": load_before, "end": os.getloadavg()[0]},
    }


def device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda ({torch.cuda.get_device_name(0)})"
    except ImportError:
        pass
    return "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument(
        "--fast", action="store_true", help="UNMASKED_FAST=1 (what CI runs), not the defaults"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "data" / "bench" / "notebooks_defaults.json"
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.fast:
        os.environ["UNMASKED_FAST"] = "1"  # the kernels inherit it
    else:
        os.environ.pop("UNMASKED_FAST", None)

    results = []
    print(f"{'lecture':<28} {'Run All s':>9} {'load':>9}  slowest cell")
    for path in notebooks:
        row = run_notebook(path.resolve(), args.timeout)
        results.append(row)
        top = row["slowest_cells"][0] if row["slowest_cells"] else {"s": 0, "source": ""}
        load = row["load_average"]
        print(
            f"{path.stem:<28} {row['run_all_s'] if row['run_all_s'] is not None else '-':>9} "
            f"{load['start']:>4.1f}>{load['end']:<4.1f}  {top['s']} s {top['source']!r}"
            + (f"  FAILED {row['error']}" if row["error"] else ""),
            flush=True,
        )

    result = {
        "what": "issue #25: Run All seconds per lecture, executed headless with nbclient "
        + ("in fast mode (UNMASKED_FAST=1)" if args.fast else "at the default knobs"),
        "device": device(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or '?'}",
        "python": platform.python_version(),
        "command": "python benchmarks/bench_notebooks.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "notebooks": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
