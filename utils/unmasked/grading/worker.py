"""Grade one submission in this process: papermill runs it, then the hidden checks run in its
kernel.

The parent (unmasked.grading.runner) forks one of these per submission from a forkserver that
has papermill and tiktoken loaded already, and kills it and everything it started if it
outlives its limits: --start-timeout for the kernel to answer, then --timeout. The job arrives
as a dict; events and exactly one result leave through a pipe the kernel does not inherit.
Before the kernel starts, this process points fds 0-2 at /dev/null, so nothing the kernel
writes to an inherited stdout can pass for a result.

For debugging one submission by hand:  python -m unmasked.grading.worker < job.json
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

# the worker's own setup before the kernel starts: loading the checks, reading the notebook
START_SLACK_S = 10.0


class Reporter:
    """Sends events and exactly one result to the parent; safe to call from the watchdog."""

    def __init__(self, send):
        self.send = send  # takes one line of JSON text
        self.lock = threading.Lock()
        self.done = False

    def event(self, **fields) -> None:
        with self.lock:
            if not self.done:
                self._write(fields)

    def finish(self, result: dict) -> bool:
        with self.lock:
            if self.done:
                return False
            self.done = True
            self._write({"event": "result", "result": result})
            return True

    def _write(self, fields: dict) -> None:
        try:
            self.send(json.dumps(fields))
        except (OSError, ValueError):
            pass


class RunState:
    """What the papermill client reports while it runs: the kernel, the cell, timeouts, output."""

    def __init__(
        self,
        scratch: Path,
        env: dict,
        cell_timeout: float,
        probe_timeout: float,
        max_output: int,
        report,
    ):
        self.scratch, self.env = scratch, env
        self.cell_timeout, self.probe_timeout = cell_timeout, probe_timeout
        self.max_output, self.stored, self.truncated = max_output, 0, False
        self.report = report
        self.kernel_pid: int | None = None
        self.ready_at: float | None = (
            None  # when the kernel first answered; the submission's clock starts here
        )
        self.current: int | None = None
        self.interrupted: list[str] = []  # labels of the cells interrupted for time
        self.interrupted_ids: set[int] = set()
        self.nb_man = None
        self.sandbox = None  # a sandbox.Sandbox, or None to run the kernel as the worker's user
        self.socket_prefix = str(scratch / ".runtime" / "k")

    def timeout_for(self, cell) -> float:
        from .notebook import META

        return (
            self.probe_timeout
            if cell.metadata.get(META, {}).get("role") == "checks"
            else self.cell_timeout
        )


# The only variables of the grader's environment a kernel sees: what finds programs and
# libraries, the locale, thread counts. Tokens, keys and paths to the grades stay out.
PASSED_ENV = (
    "PATH",
    "PYTHONPATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "SYSTEMROOT",
)


def kernel_env(scratch: Path) -> dict:
    """The kernel's environment: HOME, temp and config dirs inside scratch, fast mode on.

    Built from an allow-list: nothing else of the instructor's environment reaches the kernel.
    """
    tmp = scratch / ".tmp"
    tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("LC_")}
    env.update(
        HOME=str(scratch),
        PWD=str(scratch),
        TMPDIR=str(tmp),
        TEMP=str(tmp),
        TMP=str(tmp),
        IPYTHONDIR=str(scratch / ".ipython"),
        MPLCONFIGDIR=str(scratch / ".config" / "matplotlib"),
        XDG_CACHE_HOME=str(scratch / ".cache"),
        XDG_CONFIG_HOME=str(scratch / ".config"),
        XDG_DATA_HOME=str(scratch / ".local" / "share"),
        JUPYTER_CONFIG_DIR=str(scratch / ".jupyter"),
        JUPYTER_DATA_DIR=str(scratch / ".local" / "share" / "jupyter"),
        JUPYTER_RUNTIME_DIR=str(scratch / ".runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONDONTWRITEBYTECODE="1",
        UNMASKED_FAST="1",
    )
    return env


def _engine(state: RunState):
    """A papermill engine whose client tells `state` what happens, caps output, escalates
    timeouts."""
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import CellTimeoutError
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.log import logger

    from .notebook import MIME, cell_label

    class Client(PapermillNotebookClient):
        def create_kernel_manager(self):
            km = super().create_kernel_manager()
            if state.sandbox is not None:
                # No network in the sandbox: the kernel's sockets are files in its scratch folder.
                km.transport = "ipc"
                (state.scratch / ".runtime").mkdir(mode=0o700, exist_ok=True)
                km.connection_file = str(state.scratch / ".runtime" / "kernel.json")
                km.ip = state.socket_prefix
                # A signal would reach bubblewrap, not the kernel: interrupt through the control
                # channel.
                km.kernel_spec.interrupt_mode = "message"
                plain = km.format_kernel_cmd
                km.format_kernel_cmd = lambda extra_arguments=None: state.sandbox.wrap(
                    plain(extra_arguments)
                )
            return km

        async def async_start_new_kernel(self, **kwargs):
            kwargs.setdefault("env", state.env)
            kwargs.setdefault("cwd", str(state.scratch))
            await super().async_start_new_kernel(**kwargs)
            provisioner = getattr(self.km, "provisioner", None)
            process = getattr(provisioner, "process", None)
            state.kernel_pid = getattr(provisioner, "pid", None) or getattr(process, "pid", None)
            state.report.event(event="kernel", pid=state.kernel_pid)

        start_new_kernel = run_sync(async_start_new_kernel)

        async def async_start_new_kernel_client(self):
            client = await super().async_start_new_kernel_client()
            state.ready_at = time.monotonic()
            state.report.event(event="ready")
            return client

        start_new_kernel_client = run_sync(async_start_new_kernel_client)

        async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
            state.current = cell_index
            state.report.event(event="cell", index=cell_index)
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

        execute_cell = run_sync(async_execute_cell)

        async def _async_handle_timeout(self, timeout, cell=None):
            # First time: interrupt (KeyboardInterrupt in the cell; the run goes on). If the
            # kernel ignores that for another timeout, give up on this submission.
            key = id(cell)
            if key in state.interrupted_ids:
                raise CellTimeoutError.error_from_timeout_and_cell(
                    "the cell ignored the interrupt", timeout, cell
                )
            state.interrupted_ids.add(key)
            state.interrupted.append(cell_label(cell) if cell is not None else "a cell")
            return await super()._async_handle_timeout(timeout, cell)

        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content", {})
            data = content.get("data") or {}
            if MIME not in data:
                size = len(content.get("text", "")) + sum(len(str(v)) for v in data.values())
                size += sum(len(line) for line in content.get("traceback", []))
                if state.stored + size > state.max_output:
                    if not state.truncated:
                        state.truncated = True
                        outs.append(
                            _stream(
                                "\n[the grader dropped the output after "
                                f"{state.max_output / 2**20:g} MB]\n"
                            )
                        )
                    return None
                state.stored += size
            return super().output(outs, msg, display_id, cell_index)

    def _stream(text):
        from nbformat.v4 import new_output

        return new_output("stream", name="stderr", text=text)

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls, nb_man, kernel_name, start_timeout=60, execution_timeout=None, **kwargs
        ):
            state.nb_man = nb_man
            client = Client(
                nb_man,
                kernel_name=kernel_name,
                timeout=execution_timeout,
                timeout_func=state.timeout_for,
                startup_timeout=start_timeout,
                allow_errors=True,  # a failing cell must not cost the checks of other exercises
                interrupt_on_timeout=True,
                raise_on_iopub_timeout=False,
                iopub_timeout=10,
                shutdown_kernel="immediate",
                log=logger,
            )
            return client.execute()

    return Engine


def run(job: dict, report: Reporter) -> dict:
    """Execute the submission with the hidden checks appended; return its result."""
    import nbformat

    from . import checks as registry
    from .delegation import delegations
    from .notebook import (
        META,
        ProbeError,
        calls_exit,
        cell_errors,
        cell_label,
        make_probe,
        read_probe,
    )
    from .procs import kill_descendants, kill_session
    from .results import make_result, no_kernel_reason, not_run, score_checks, summary_reason

    started = time.monotonic()
    scratch = Path(job["scratch"])
    lab = registry.load(job["lab"])
    checks = lab.build(
        job["check_seed"]
    )  # expected answers are computed now, before any learner code runs
    outline = [(c.name, c.points) for c in checks]
    probe = make_probe(checks, lab.call_timeout_s)
    extra = {"check_seed": job["check_seed"]}

    def done(status, reason, verdicts, **more):
        return make_result(
            job["submission"],
            lab.lab,
            status,
            reason,
            verdicts,
            duration_s=round(time.monotonic() - started, 2),
            kernel_started=state.ready_at is not None,
            **extra,
            **more,
        )

    def no_kernel(detail: str) -> dict:
        # Nothing of the submission has run, so this is the machine's fault, not the learner's:
        # kernel_started=False tells the runner to try again with a fresh worker.
        reason = no_kernel_reason(job["start_timeout"], detail)
        return done("error", reason, not_run(outline, "the hidden checks did not run: " + reason))

    nb = nbformat.read(job["notebook"], as_version=4)
    nb.cells.append(probe.cell)  # in memory only: the scratch copy never holds the checks
    os.environ["JUPYTER_RUNTIME_DIR"] = str(scratch / ".runtime")  # the connection file
    probe_timeout = lab.call_timeout_s * len(probe.calls) + 30
    state = RunState(
        scratch,
        kernel_env(scratch),
        job["cell_timeout"],
        probe_timeout,
        job["max_output_bytes"],
        report,
    )
    if job.get("sandbox"):
        from .sandbox import MAX_SOCKET_PATH, Sandbox

        state.sandbox = Sandbox.from_json(job["sandbox"])
        if len(state.socket_prefix) > MAX_SOCKET_PATH:  # a unix socket's path has at most 107 bytes
            state.socket_prefix = str(Path(state.socket_prefix).parent.relative_to(scratch) / "k")
    memory_gb = (job.get("sandbox") or {}).get("memory_bytes", 0) / 2**30

    def label(index):
        cells = state.nb_man.nb.cells if state.nb_man is not None else nb.cells
        return (
            cell_label(cells[index])
            if index is not None and index < len(cells)
            else (
                "starting the kernel"
                if state.ready_at is None
                else "the kernel, before the first cell"
            )
        )

    # The watchdog: past a deadline, report, kill the kernel's session and leave. Until the kernel
    # answers, the deadline is the start limit (plus a little for the setup above); from then on
    # the submission has --timeout. A kernel that never answers is a known, rare hang in starting
    # Jupyter kernels side by side; it must not cost a learner the run.
    start_deadline = started + job["start_timeout"] + START_SLACK_S
    parent = os.getppid()

    def grader_gone() -> bool:
        if os.getppid() != parent:
            return True
        try:
            os.kill(job["grader_pid"], 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError):
            pass
        return False

    def watchdog():
        while True:
            time.sleep(0.2)
            if grader_gone():  # the grader was killed: stop, and leave no scratch behind
                if state.kernel_pid:
                    kill_session(state.kernel_pid)
                kill_descendants(os.getpid())
                shutil.rmtree(scratch, ignore_errors=True)
                (scratch.parent / f".bwrap-args-{scratch.name}").unlink(missing_ok=True)
                os._exit(3)
            if state.ready_at is None:
                if time.monotonic() > start_deadline:
                    report.finish(no_kernel("it never answered"))
                    if state.kernel_pid:
                        kill_session(state.kernel_pid)
                    kill_descendants(os.getpid())
                    os._exit(0)
            elif time.monotonic() > state.ready_at + job["timeout"]:
                reason = (
                    f"ran past the {job['timeout']:g} s limit for a submission, in "
                    f"{label(state.current)}"
                )
                stopped = not_run(outline, "the submission was stopped before the checks ran")
                report.finish(done("timeout", reason, stopped))
                if state.kernel_pid:
                    kill_session(state.kernel_pid)
                kill_descendants(os.getpid())
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()

    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    papermill_engines.register("unmasked-grading", _engine(state))
    raised = None
    try:
        papermill.execute_notebook(
            nb,
            None,
            engine_name="unmasked-grading",
            kernel_name=job["kernel_name"],
            progress_bar=False,
            request_save_on_cell_execute=False,
            execution_timeout=job["cell_timeout"],
            start_timeout=job["start_timeout"],
            cwd=str(scratch),
        )
    except PapermillExecutionError:
        pass  # cells raised; with allow_errors every cell and the checks still ran
    except Exception as exc:
        raised = exc
    finally:
        if state.kernel_pid:
            kill_session(state.kernel_pid)  # whatever the learner's code left running
        kill_descendants(os.getpid())  # and what left the kernel's session (we are its subreaper)

    what = f"{type(raised).__name__}: {str(raised)[:200]}" if raised is not None else ""
    if state.ready_at is None:  # it died or hung while starting, before any cell ran
        return no_kernel(what or "no reason given")
    failure = None
    if isinstance(raised, DeadKernelError):
        ran = state.nb_man.nb.cells[: (state.current or 0) + 1] if state.nb_man is not None else []
        exits = [c for c in ran if c.cell_type == "code" and calls_exit(c.source)]
        if exits:
            failure = (
                "error",
                f"the kernel stopped after {cell_label(exits[-1])}, which calls exit(); "
                "a notebook must not stop its kernel",
            )
        else:
            cause = f"more than {memory_gb:g} GB of memory" if memory_gb else "out of memory"
            failure = (
                "error",
                f"the kernel died in {label(state.current)} (os._exit, a crash, or {cause})",
            )
    elif isinstance(raised, CellTimeoutError):
        failure = (
            "timeout",
            f"{label(state.current)} ran past {job['cell_timeout']:g} s and ignored the interrupt",
        )
    elif raised is not None:  # papermill failed: still a row, with the reason
        failure = ("error", f"running the notebook failed in {label(state.current)}: {what}")

    executed = state.nb_man.nb if state.nb_man is not None else nb
    if job.get("executed"):  # for the instructor: what ran, outputs included (never in feedback)
        try:
            from .report import atomic_write

            atomic_write(Path(job["executed"]), nbformat.writes(executed))
        except (OSError, ValueError):
            pass
    errors = cell_errors(executed)
    timed_out = list(state.interrupted)
    extra.update(cell_errors=errors, interrupted=timed_out, truncated=state.truncated)
    if failure:
        return done(
            failure[0], failure[1], not_run(outline, "the hidden checks did not run: " + failure[1])
        )
    checks_cell = next(
        (c for c in reversed(executed.cells) if c.metadata.get(META, {}).get("role") == "checks"),
        None,
    )
    try:
        if checks_cell is None:
            raise ProbeError("the hidden checks cell is missing from the executed notebook")
        outcomes = read_probe(checks_cell, probe)
    except ProbeError as exc:
        return done("error", str(exc), not_run(outline, str(exc)))
    sources = [
        c.source
        for c in executed.cells
        if c.cell_type == "code" and META in c.metadata and "cell" in c.metadata[META]
    ]
    delegated = delegations(
        sources, {call.func for check in checks for call in check.calls}, lab.references
    )
    verdicts = score_checks(checks, outcomes, delegated)
    status = "timeout" if timed_out else "graded"
    return done(
        status, summary_reason(verdicts, errors, timed_out, state.truncated, memory_gb), verdicts
    )


def _quiet(scratch: str) -> None:
    """fds 0-2 to /dev/null (the kernel inherits them), cwd to scratch."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    os.chdir(scratch)


def _guarded(job: dict, report: Reporter) -> int:
    try:
        report.finish(run(job, report))
        return 0
    except BaseException as exc:  # the grader's own bug: say so in the row rather than vanish
        import traceback

        report.event(
            event="crash",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc()[-3000:],
        )
        return 1


def entry(job: dict, conn) -> None:
    """multiprocessing target: grade `job`, reporting through the pipe end `conn`."""
    os.setsid()  # our own session: the parent kills it whole
    from .procs import become_subreaper

    become_subreaper()
    _quiet(job["scratch"])
    code = _guarded(job, Reporter(lambda text: conn.send_bytes(text.encode())))
    conn.close()
    os._exit(code)  # don't wait on threads or atexit handlers of a kernel client


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    job = json.loads(sys.stdin.read())
    _quiet(job["scratch"])
    return _guarded(job, Reporter(lambda text: (out.write(text + "\n"), out.flush())))


if __name__ == "__main__":
    os._exit(main())
