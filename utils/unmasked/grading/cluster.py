"""--dask ADDRESS: grade on an existing Dask distributed cluster instead of the local pool.

Grading one submission is a pure task: the notebook's bytes in, its result row out. Each task
runs the same code as a local run (a worker process, the kernel in the sandbox) on whichever
Dask worker the scheduler picks, in a throwaway folder there. The result comes back to this
process, which files it under the submission it sent, writes it atomically and skips it on a
re-run, exactly as for the local pool. Dask does the scheduling; we write none.

Needs the optional extra: pip install 'unmasked[dask]' (dask[distributed]), on every machine.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path


def grade_remote(lab: str, data: bytes, rel: str, options: dict) -> dict:
    """On a Dask worker: grade one submission given as bytes; the result row, never an exception."""
    from .runner import Grader, Options

    work = Path(tempfile.mkdtemp(prefix="unmasked-dask-"))
    try:
        (work / "subs").mkdir()
        path = work / "subs" / "submission.ipynb"
        path.write_bytes(data)
        local = {
            **options,
            "dask": None,
            "progress": False,
            "force": True,
            "only": None,
            "overrides": None,
            "roster": None,
            "save_executed": False,
            "jobs": 1,
        }
        grader = Grader(lab, work / "subs", work / "out", Options(**local))
        grader.scratch_root = work / "scratch"
        grader.scratch_root.mkdir()
        result = grader._grade_safely(path, rel)
        if result is None:
            raise RuntimeError("the grader on the Dask worker was stopped")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


class ClusterPool:
    """The two calls the runner makes of its pool (submit, shutdown), backed by a Dask client."""

    def __init__(self, address: str, lab: str, options):
        try:
            from distributed import Client
        except ImportError:
            raise ValueError(
                "--dask needs dask[distributed]: pip install 'unmasked[dask]'"
            ) from None
        self.client = Client(address, timeout="30s")
        self.lab = lab
        self.options = {k: v for k, v in dataclasses.asdict(options).items()}

    def submit(self, grade_safely, path: Path, rel: str):
        """Ship the file's bytes (read here: the cluster need not see our disk)."""
        from .runner import describe_entry

        started = __import__("time").monotonic()
        what = describe_entry(path)
        if what is not None:  # not a file: answered here, as the local pool would
            from concurrent.futures import Future

            future = Future()
            future.set_result(grade_safely.__self__._result(rel, "invalid", what, "", started))
            return future
        data = Path(path).read_bytes()
        return self.client.submit(grade_remote, self.lab, data, rel, self.options, pure=False)

    def as_completed(self, futures):
        from distributed import as_completed

        local = [f for f in futures if not hasattr(f, "key")]
        yield from local
        remote = [f for f in futures if hasattr(f, "key")]
        if remote:
            yield from as_completed(remote)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.client.close()
