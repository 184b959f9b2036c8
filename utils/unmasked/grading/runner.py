"""Grade a folder of submissions in parallel, each in its own worker process and scratch folder.

The parent never runs a learner's code. For each submission it checks the file, copies a
clean version with the parameters injected into a fresh scratch folder, starts a worker
(unmasked.grading.worker) in its own session, and kills that worker and everything it started
if it outlives --timeout. Every finished grade is written at once (results/, feedback/,
grades.csv, atomically), so killing the grader loses nothing that finished; a re-run skips a
submission whose file and checks are unchanged since it was graded.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import checks as registry
from .instructor import apply_override, lms_csv, read_overrides, read_roster
from .notebook import (
    MAX_SUBMISSION_BYTES,
    InvalidSubmission,
    cell_label,
    inject_parameters,
    read_submission,
)
from .procs import kill_tree
from .report import (
    atomic_write,
    failures_html,
    feedback_markdown,
    grades_csv,
    score_figure,
    write_figure,
)
from .results import STATUSES, make_result, no_kernel_reason, not_run
from .sandbox import MODES as SANDBOX_MODES
from .sandbox import Sandbox, hidden_for, kernel_python, readable_for
from .sandbox import resolve as resolve_sandbox
from .worker import START_SLACK_S, entry

GRACE_S = 10.0  # the worker stops itself at --timeout; the parent kills it this much later


def _context():
    """A forkserver that has papermill and tiktoken loaded: each worker forks from it, warm.

    Forking from the grader itself would copy its threads (the pool, tqdm); the forkserver is
    single-threaded. Platforms without fork fall back to spawn, which is slower but the same.
    """
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(["unmasked.grading._warm"])
        else:
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT


_CONTEXT = None


@dataclass
class Options:
    jobs: int = 2
    timeout: float = (
        300.0  # wall clock per submission, from its kernel's first answer to the last check
    )
    start_timeout: float = 30.0  # for a kernel to answer; one that does not is started again
    start_attempts: int = 3  # kernel starts per submission before it gets an error row
    cell_timeout: float = 60.0  # per cell; the cell is interrupted and the run goes on
    force: bool = False
    seed: int = 0  # injected as SEED when the lab has that parameter
    check_seed: int | None = None  # None: a secret seed per submission
    kernel_name: str = "python3"
    max_output_mb: float = 5.0
    progress: bool = True
    keep_scratch: bool = False
    sandbox: str = "auto"  # auto | namespaces | none (see unmasked.grading.sandbox)
    memory_gb: float = 4.0  # per submission, inside the sandbox
    only: str | None = None  # regrade only submissions whose name matches this glob
    overrides: str | None = None  # CSV: submission, points, comment (see instructor.py)
    roster: str | None = None  # CSV: submission, learner_id; writes lms.csv
    save_executed: bool = True  # the executed notebook, beside each result (instructor only)
    dask: str | None = None  # address of a Dask distributed scheduler: grade there (see cluster.py)

    def __post_init__(self):
        if self.jobs < 1:
            raise ValueError(f"-j must be at least 1, got {self.jobs}")
        if min(self.timeout, self.cell_timeout, self.start_timeout) <= 0:
            raise ValueError(
                f"timeouts must be > 0 s, got --timeout {self.timeout}, --cell-timeout "
                f"{self.cell_timeout} "
                f"and --start-timeout {self.start_timeout}"
            )
        if self.start_attempts < 1:
            raise ValueError(f"--start-attempts must be at least 1, got {self.start_attempts}")
        if self.sandbox not in SANDBOX_MODES:
            raise ValueError(
                f"--sandbox {self.sandbox!r}; choose one of {', '.join(SANDBOX_MODES)}"
            )
        if self.memory_gb <= 0:
            raise ValueError(f"--memory-gb must be > 0, got {self.memory_gb}")


SCRATCH_PREFIX = "unmasked-grading-"


def sweep_scratch() -> None:
    """Remove scratch folders left by graders that were killed (their pid file names a dead pid)."""
    for root in Path(tempfile.gettempdir()).glob(SCRATCH_PREFIX + "*"):
        try:
            pid = int((root / "grader.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(root, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours to judge: unreadable, or a live grader's


def find_submissions(folder: Path) -> list[Path]:
    """Everything named *.ipynb under `folder`, skipping hidden folders and .ipynb_checkpoints.

    Folders that are symlinks are followed (once each); entries that are not notebook files
    (a folder or a device named *.ipynb, a broken link) are kept, so that they get a row.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"submissions folder {folder} does not exist or is not a folder")
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link loop, or two links to one folder
            dirs[:] = []
            continue
        seen.add(real)
        named = [d for d in dirs if d.endswith(".ipynb")]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(".ipynb"))
        for name in files + named:
            if not name.startswith(".") and name.endswith(".ipynb"):
                found.append(Path(root) / name)
    return sorted(found, key=lambda p: os.fsencode(p))


def submission_name(path: Path, folder: Path) -> str:
    """The submission's name in grades.csv: its path under `folder`, undecodable bytes as \\xNN."""
    raw = os.fsencode(Path(path).relative_to(folder).as_posix())
    return raw.decode("utf-8", "backslashreplace")


def submission_key(rel: str | bytes) -> str:
    """A unique, stable file name for a submission's feedback and result.

    `alice/lab01.ipynb` -> `alice__lab01-<8 hex>`: the readable part for people, the hash of
    the full path (its bytes) so that `a/b` and `a__b`, or two names in another script, never
    share a file.
    """
    raw = rel if isinstance(rel, bytes) else str(rel).encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "replace")
    stem = text[: -len(".ipynb")] if text.endswith(".ipynb") else text
    readable = re.sub(r"[^\w.-]+", "_", stem.replace("/", "__"), flags=re.ASCII).strip("._")[:80]
    return f"{readable or 'submission'}-{hashlib.sha256(raw).hexdigest()[:8]}"


def describe_entry(path: Path) -> str | None:
    """None for a regular file (after links); else what it is, for an `invalid` row."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return (
            "it is a link to nothing" if os.path.islink(path) else "it vanished before it was read"
        )
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ]
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"it is {kind} named .ipynb, not a notebook file"


class Grader:
    def __init__(self, lab: str | Path, submissions: Path, out: Path, options: Options):
        self.lab = registry.load(lab)
        self.outline = self.lab.outline()
        self.submissions, self.out, self.opts = Path(submissions), Path(out), options
        self.parameters = dict(self.lab.parameters)
        if "SEED" in self.parameters:
            self.parameters["SEED"] = options.seed
        self.lock = threading.RLock()  # re-entered when Ctrl-C lands inside _store
        self.live: set = set()  # worker processes not yet reaped
        self.stopping = False
        self.results: dict[str, dict] = {}
        self.sandboxed, self.warning = resolve_sandbox(
            options.sandbox
        )  # raises for `namespaces` without
        self.readable: tuple[str, ...] = ()
        self.overrides = read_overrides(Path(options.overrides)) if options.overrides else {}
        self.roster = read_roster(Path(options.roster)) if options.roster else None

    # ---- one submission ------------------------------------------------------------------

    def fingerprint(self, sha: str) -> str:
        text = f"{sha}:{self.lab.fingerprint}:{json.dumps(self.parameters, sort_keys=True)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def grade_one(self, path: Path, rel: str) -> dict | None:
        started = time.monotonic()
        what = describe_entry(path)
        if what is not None:
            return self._result(rel, "invalid", what, "", started)
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_SUBMISSION_BYTES + 1)
        except OSError as exc:
            return self._result(
                rel, "invalid", f"cannot read the file: {exc.strerror}", "", started
            )
        sha = hashlib.sha256(data).hexdigest()
        try:
            nb = inject_parameters(read_submission(data), self.parameters)
        except InvalidSubmission as exc:
            return self._result(rel, "invalid", str(exc), sha, started)
        scratch = Path(tempfile.mkdtemp(prefix="grade-", dir=self.scratch_root))
        try:
            notebook = (
                scratch / "submission.ipynb"
            )  # its own name may be anything, even invalid UTF-8
            nbformat.write(nb, notebook)
            key = submission_key(os.fsencode(Path(path).relative_to(self.submissions).as_posix()))
            return self._run_worker(nb, notebook, scratch, rel, sha, started, key)
        finally:
            if not self.opts.keep_scratch:
                shutil.rmtree(scratch, ignore_errors=True)
                (scratch.parent / f".bwrap-args-{scratch.name}").unlink(missing_ok=True)

    def _run_worker(
        self, nb, notebook: Path, scratch: Path, rel: str, sha: str, started: float, key: str
    ) -> dict | None:
        """Run the worker; start it again while its kernel never answers, since no learner code
        ran."""
        check_seed = (
            self.opts.check_seed if self.opts.check_seed is not None else secrets.randbelow(2**62)
        )
        for attempt in range(1, self.opts.start_attempts + 1):
            result = self._attempt(nb, notebook, scratch, rel, check_seed, key)
            if (
                result is None
                or result.get("kernel_started", True)
                or attempt == self.opts.start_attempts
            ):
                break
        if result is None:
            return None
        if not result.get("kernel_started", True):
            result["reason"] += (
                f"; tried {attempt} time{'s' * (attempt > 1)}: the grading machine's fault, "
                "not the submission's; re-run the grader to grade it"
            )
        result["start_attempts"] = attempt
        return self._finish(result, sha, started)

    def _attempt(
        self, nb, notebook: Path, scratch: Path, rel: str, check_seed: int, key: str
    ) -> dict | None:
        """One worker, from fork to its result row (without sha and timing); None if the grader
        is stopping."""
        job = {
            "submission": rel,
            "notebook": str(notebook),
            "scratch": str(scratch),
            "lab": self.lab.lab,
            "cell_timeout": self.opts.cell_timeout,
            "timeout": self.opts.timeout,
            "start_timeout": self.opts.start_timeout,
            "check_seed": check_seed,
            "grader_pid": os.getpid(),
            "kernel_name": self.opts.kernel_name,
            "max_output_bytes": int(self.opts.max_output_mb * 2**20),
            "sandbox": self._sandbox(scratch),
            "executed": str(self.out / "executed" / f"{key}.ipynb")
            if self.opts.save_executed
            else None,
        }
        reader, writer = _context().Pipe(duplex=False)
        with self.lock:
            if self.stopping:
                return None
            proc = _context().Process(target=entry, args=(job, writer), daemon=False)
            proc.start()
            self.live.add(proc)
        writer.close()  # ours; the worker holds its own copy, so its exit reads as EOF here
        events, killed = [], False
        # The worker keeps its own limits; these are the backstop, GRACE_S later.
        deadline = time.monotonic() + self.opts.start_timeout + START_SLACK_S + GRACE_S
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    killed = True
                    self._kill(proc)
                    break
                if reader.poll(min(remaining, 1.0)):
                    try:
                        events.append(json.loads(reader.recv_bytes()))
                    except EOFError:
                        break
                    except ValueError:
                        continue
                    if events[-1].get("event") == "ready":
                        deadline = time.monotonic() + self.opts.timeout + GRACE_S
                    elif events[-1].get("event") == "result":
                        break
            proc.join(GRACE_S)
            if proc.exitcode is None:
                self._kill(proc)
                proc.join()
        finally:
            reader.close()
            with self.lock:
                self.live.discard(proc)
        if self.stopping:
            return None
        result = next((e["result"] for e in reversed(events) if e.get("event") == "result"), None)
        result = self._accept(result, rel)
        if result is not None:
            return result
        ready = any(e.get("event") == "ready" for e in events)
        cells = [e["index"] for e in events if e.get("event") == "cell"]
        where = (
            cell_label(nb.cells[cells[-1]])
            if cells and cells[-1] < len(nb.cells)
            else ("the hidden checks" if ready else "starting the kernel")
        )
        if killed and ready:
            reason = (
                f"ran past the {self.opts.timeout:g} s limit for a submission, in {where}; killed"
            )
            return self._row(rel, "timeout", reason, check_seed=check_seed)
        if killed:
            reason = no_kernel_reason(self.opts.start_timeout, "its worker hung")
            return self._row(rel, "error", reason, check_seed=check_seed, kernel_started=False)
        crash = next((e for e in events if e.get("event") == "crash"), None)
        if crash:
            print(
                f"grading worker crashed on {rel}:\n{crash.get('traceback', '')}", file=sys.stderr
            )
        code = proc.exitcode or 0
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        detail = crash["error"][:200] if crash else "no message"
        reason = f"the grading worker {how} in {where}: {detail}"
        return self._row(rel, "error", reason, check_seed=check_seed)

    def _accept(self, result, rel: str) -> dict | None:
        """The worker's result filed under the submission we launched, or None if it is malformed.

        The name inside the result is never used; the checks must be this lab's, in order, and
        the points are added up again here.
        """
        try:
            checks = result["checks"]
            if result["status"] not in STATUSES or [
                (c["name"], c["max_points"]) for c in checks
            ] != [(name, points) for name, points in self.outline]:
                return None
            for c in checks:
                if not (0 <= c["points"] <= c["max_points"]) or c["passed"] != (
                    c["points"] == c["max_points"]
                ):
                    return None
            extra = {
                k: v
                for k, v in result.items()
                if k
                not in ("submission", "lab", "points", "max_points", "status", "reason", "checks")
            }
            return make_result(
                rel, self.lab.lab, result["status"], str(result["reason"]), checks, **extra
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def _preflight(self) -> None:
        """Start Python once in the sandbox; `auto` falls back (loudly) if it cannot."""
        from .sandbox import SandboxUnavailable, preflight
        from .worker import kernel_env

        scratch = Path(tempfile.mkdtemp(prefix="preflight-", dir=self.scratch_root))
        try:
            box = Sandbox.from_json(self._sandbox(scratch))
            problem = preflight(box, kernel_python(self.opts.kernel_name), kernel_env(scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if problem is None:
            return
        if self.opts.sandbox == "namespaces":
            raise SandboxUnavailable(f"--sandbox namespaces: {problem}")
        self.sandboxed = False
        self.warning = f"NO SANDBOX: {problem}. Submissions run as the grader's user"
        bar = "!" * 78
        print(f"{bar}\nwarning: {self.warning}\n{bar}", file=sys.stderr)

    def _sandbox(self, scratch: Path) -> dict | None:
        """What this submission's kernel may read; None when the sandbox is off."""
        if not self.sandboxed:
            return None
        if not self.readable:
            python = kernel_python(self.opts.kernel_name)
            self.readable = readable_for(python, os.environ.get("PYTHONPATH", ""))
        solutions = Path(registry.__file__).resolve().parents[4] / "solutions"
        hidden = hidden_for(
            self.readable, [self.out, self.submissions, self.scratch_root, solutions]
        )
        box = Sandbox(
            str(scratch.resolve()), self.readable, hidden, int(self.opts.memory_gb * 2**30)
        )
        return box.to_json()

    def _row(self, rel, status, reason, **extra) -> dict:
        return make_result(
            rel, self.lab.lab, status, reason, not_run(self.outline, reason), **extra
        )

    def _result(self, rel, status, reason, sha, started, **extra) -> dict:
        return self._finish(self._row(rel, status, reason, **extra), sha, started)

    def _finish(self, result: dict, sha: str, started: float) -> dict:
        result.update(
            sha256=sha,
            fingerprint=self.fingerprint(sha),
            duration_s=round(time.monotonic() - started, 2),
            graded_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        return result

    def _kill(self, proc) -> None:
        if proc.exitcode is None and proc.pid:  # not reaped yet, so its pid is still its own
            kill_tree(proc.pid)

    # ---- the whole folder ----------------------------------------------------------------

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.out / "results" / f"{key}.json", self.out / "feedback" / f"{key}.md"

    def _store(self, key: str, result: dict) -> None:
        result_path, feedback_path = self._paths(key)
        result = apply_override(result, self.overrides)
        with self.lock:
            self.results[key] = result
            atomic_write(result_path, json.dumps(result, indent=1))
            atomic_write(feedback_path, feedback_markdown(result))
            atomic_write(self.out / "grades.csv", grades_csv(list(self.results.values())))

    def _previous(self, key: str, rel: str, path: Path) -> dict | None:
        result_path, _ = self._paths(key)
        if describe_entry(path) is not None:
            return None
        try:
            old = json.loads(result_path.read_text(encoding="utf-8"))
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except (OSError, ValueError):
            return None
        if old.get("kernel_started") is False:  # nothing of it ran: grade it this time
            return None
        if old.get("submission") == rel and old.get("fingerprint") == self.fingerprint(sha):
            return self._accept(old, rel)  # a file that is not a well-formed grade is graded again
        return None

    def _grade_safely(self, path: Path, rel: str) -> dict | None:
        """grade_one, but a bug of ours on one submission costs that row, never the class."""
        started = time.monotonic()
        try:
            return self.grade_one(path, rel)
        except Exception as exc:
            import traceback

            print(f"grader error on {rel}:\n{traceback.format_exc()}", file=sys.stderr)
            return self._result(
                rel,
                "error",
                f"the grader failed on this file ({type(exc).__name__}: "
                f"{str(exc)[:200]}); please report it",
                "",
                started,
            )

    def _restore(self) -> None:
        """Rewrite any result or feedback file that changed behind our back during the run.

        In the sandbox a kernel cannot see this folder; without it, learner code runs as the
        grader's user and could write here if it found it. The grades in memory are the ones
        we trust.
        """
        for key, result in self.results.items():
            for path, expected in zip(
                self._paths(key), (json.dumps(result, indent=1), feedback_markdown(result))
            ):
                try:
                    intact = path.read_text(encoding="utf-8") == expected
                except (OSError, UnicodeDecodeError):
                    intact = False
                if not intact:
                    print(f"warning: {path} changed during grading; restored", file=sys.stderr)
                    atomic_write(path, expected)

    def run(self) -> list[dict]:
        if self.warning:
            bar = "!" * 78
            print(f"{bar}\nwarning: {self.warning}\n{bar}", file=sys.stderr)
        sweep_scratch()
        self.scratch_root = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        (self.scratch_root / "grader.pid").write_text(str(os.getpid()))
        try:
            if self.sandboxed:
                self._preflight()
            return self._run()
        finally:
            if not self.opts.keep_scratch:
                shutil.rmtree(self.scratch_root, ignore_errors=True)

    def _run(self) -> list[dict]:
        from tqdm.auto import tqdm

        subs = find_submissions(self.submissions)
        if not subs:
            raise ValueError(f"no .ipynb files under {self.submissions}")
        self.out.mkdir(parents=True, exist_ok=True)
        pending, keys = [], []
        for path in subs:
            rel = submission_name(path, self.submissions)
            key = submission_key(os.fsencode(path.relative_to(self.submissions).as_posix()))
            keys.append(key)
            chosen = self.opts.only is None or fnmatch.fnmatchcase(rel, self.opts.only)
            old = (
                None
                if self.opts.force or (chosen and self.opts.only)
                else self._previous(key, rel, path)
            )
            if old is not None:
                self.results[key] = apply_override(old, self.overrides)
            elif chosen:
                pending.append((path, rel, key))
            else:
                keys.pop()  # not asked for and never graded: no row this time
        if self.opts.only and not pending:
            raise ValueError(
                f"--only {self.opts.only!r} matches no submission under {self.submissions}"
            )
        bar = tqdm(
            total=len(keys),
            initial=len(keys) - len(pending),
            desc=f"grading {self.lab.lab}",
            unit="nb",
            disable=not self.opts.progress,
            file=sys.stderr,
        )
        if self.opts.dask:
            from .cluster import ClusterPool

            pool = ClusterPool(self.opts.dask, self.lab.lab, self.opts)
            wait_all = pool.as_completed
        else:
            pool = ThreadPoolExecutor(max_workers=self.opts.jobs)
            wait_all = as_completed
        try:
            futures = {
                pool.submit(self._grade_safely, path, rel): (key, rel) for path, rel, key in pending
            }
            for future in wait_all(futures):
                result = future.result()
                key, rel = futures[future]
                if (
                    result is not None and self.opts.dask
                ):  # filed under what we sent, whatever came back
                    result = self._accept(result, rel) or self._result(
                        rel,
                        "error",
                        "the cluster returned a result that is not a grade",
                        "",
                        time.monotonic(),
                    )
                if result is not None:
                    self._store(key, result)
                    bar.set_postfix_str(
                        f"{result['submission'][:30]}: {result['status']}", refresh=False
                    )
                bar.update()
        except BaseException:
            with self.lock:
                self.stopping = True
                for proc in list(self.live):
                    self._kill(proc)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
            pool.shutdown(wait=True)
            if self.results:
                self._restore()
                atomic_write(self.out / "grades.csv", grades_csv(list(self.results.values())))
        ordered = [self.results[key] for key in keys]
        write_figure(
            score_figure(ordered, self.lab.lab, warning=self.warning),
            self.out / "scores.html",
            extra_html=failures_html(ordered),
            warning=self.warning,
        )
        if self.roster is not None:
            atomic_write(self.out / "lms.csv", lms_csv(ordered, self.roster))
        return ordered


def grade(lab: str | Path, submissions: str | Path, out: str | Path, **options) -> list[dict]:
    """Grade every notebook under `submissions` against `lab`'s hidden checks; results in `out`."""
    return Grader(lab, Path(submissions), Path(out), Options(**options)).run()
