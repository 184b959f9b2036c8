"""Each submission's kernel runs in a bubblewrap sandbox: its own namespaces, a read-only view.

Why the kernel, and not the worker with it: the worker holds the pipe its result leaves by.
Were it in the sandbox beside the learner's code, that code could find the pipe through
/proc/<ppid>/fd and write a result of its own. So the worker stays outside, as the grader's
user, and only the kernel goes in. The kernel has no network (its own, empty network
namespace), so it cannot talk TCP to the worker; jupyter_client's `transport="ipc"` puts the
kernel's sockets in the submission's scratch folder instead, the one folder both sides see.
What crosses is Jupyter messages, which the worker reads as data.

Inside (bubblewrap, https://github.com/containers/bubblewrap; we write no isolation layer):
- its own PID namespace: every process the learner starts, setsid daemons included, dies with
  the sandbox, and /proc shows neither the grader nor other submissions;
- its own network, IPC, UTS and cgroup namespaces, and a user namespace in which it is uid
  65534 (nobody) with no capabilities;
- a filesystem of read-only binds: the system's /usr, a few files of /etc, Python's prefixes,
  the kernel's sys.path and the course's data/ folder. The grading package (hidden checks
  included), the solutions, the grades and submissions folders and other scratch folders are
  not there or are covered by empty folders. The only writable place is its scratch folder.
- a memory cap: RLIMIT_AS through util-linux prlimit (a cgroup needs privileges that a grader
  should not need).
- the environment is the worker's curated one (worker.kernel_env), nothing else of the grader's.

What it does not do: limit CPU time beyond the grader's timeouts, limit disk use in scratch,
or hide what the read-only system shows (installed packages, /sys). Outside the user
namespace its processes are still the grader's user: the protection is the view, not the uid.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("auto", "namespaces", "none")
UID = GID = 65534  # nobody, inside the user namespace
ETC = (
    "passwd",
    "group",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "hosts",
    "host.conf",
    "mime.types",
    "alternatives",
    "fonts",
    "os-release",
)
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys/devices/system/cpu")
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; zmq appends "-<port>"


class SandboxUnavailable(ValueError):
    """Namespaces cannot be used here; the message says why."""


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when bubblewrap can make the sandbox on this machine, else why not."""
    if not sys.platform.startswith("linux"):
        return f"Linux namespaces do not exist on {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    probe = [
        bwrap,
        *_namespaces(),
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "true",
    ]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not run: {exc}"
    if done.returncode != 0:
        return f"bwrap cannot create namespaces here: {done.stderr.strip()[:300]}"
    return None


def resolve(mode: str) -> tuple[bool, str | None]:
    """(use the sandbox, warning to show). `namespaces` raises when they are unavailable."""
    if mode not in MODES:
        raise ValueError(f"--sandbox {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "none":
        return False, "the sandbox is off (--sandbox none): learner code runs as the grader's user"
    reason = unavailable_reason()
    if reason is None:
        return True, None
    if mode == "namespaces":
        raise SandboxUnavailable(f"--sandbox namespaces: {reason}")
    return False, (
        f"NO SANDBOX: {reason}. Submissions run as the grader's user and can read and write "
        "what it can; grade untrusted work on a machine with bubblewrap"
    )


def _namespaces() -> list[str]:
    args = [
        "--unshare-all",
        "--unshare-user",
        "--uid",
        str(UID),
        "--gid",
        str(GID),
        "--die-with-parent",
    ]
    return args + (["--disable-userns"] if _can_disable_userns() else [])


@functools.lru_cache(maxsize=1)
def _can_disable_userns() -> bool:
    """bubblewrap >= 0.8 can forbid nested user namespaces (less kernel surface for the learner)."""
    try:
        done = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--disable-userns" in done.stdout + done.stderr


@functools.lru_cache(maxsize=8)
def kernel_paths(python: str, pythonpath: str) -> tuple[str, ...]:
    """The directories on the kernel's sys.path (PYTHONPATH and .pth files included)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": pythonpath}
    code = "import json, sys; print(json.dumps(sys.path))"
    out = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    return tuple(p for p in json.loads(out.stdout) if p and os.path.isabs(p))


@dataclass(frozen=True)
class Sandbox:
    """What one submission's kernel sees; `wrap` turns a kernel command into a sandboxed one."""

    scratch: str
    readable: tuple[str, ...]
    hidden: tuple[str, ...] = ()
    memory_bytes: int | None = None
    extra: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return {
            "scratch": self.scratch,
            "readable": list(self.readable),
            "hidden": list(self.hidden),
            "memory_bytes": self.memory_bytes,
        }

    @classmethod
    def from_json(cls, data: dict) -> Sandbox:
        return cls(
            data["scratch"],
            tuple(data["readable"]),
            tuple(data["hidden"]),
            data.get("memory_bytes"),
        )

    @property
    def args_file(self) -> str:
        """Where bubblewrap's options go: beside the scratch folder, outside the sandbox's view."""
        folder, name = os.path.split(self.scratch.rstrip("/"))
        return os.path.join(folder, f".bwrap-args-{name}")

    def options(self) -> list[str]:
        """bubblewrap's options: the namespaces, then the view, built bind by bind."""
        args = _namespaces()
        for path in SYSTEM:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.exists(path):
                args += ["--ro-bind", path, path]
        for name in ETC:
            if os.path.lexists(f"/etc/{name}"):
                args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        bound = []
        for path in _outermost(self.readable):
            if os.path.exists(path) and not _inside(path, self.scratch):
                args += ["--ro-bind", path, path]
                bound.append(path)
        for path in sorted(set(self.hidden), key=len):
            if any(_inside(path, b) for b in bound) and os.path.exists(path):
                args += (
                    ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
                )
        args += ["--bind", self.scratch, self.scratch, "--proc", "/proc", "--dev", "/dev"]
        args += ["--remount-ro", "/", "--chdir", self.scratch]
        # ipykernel exits when its parent's pid (outside the PID namespace) is gone from view
        return args + ["--unsetenv", "JPY_PARENT_PID"]

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run in the sandbox. The options travel in a file (bwrap --args), so that the
        sandbox's /proc/1/cmdline does not list the instructor's paths."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        fd = os.open(self.args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(os.fsencode(a) + b"\0" for a in [*self.options(), "--"]))
        command = list(argv)
        if self.memory_bytes:
            prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
            command = [prlimit, f"--as={self.memory_bytes}:{self.memory_bytes}", "--", *command]
        launcher = 'f=$1; shift; exec "$@" 3<"$f"'
        return ["/bin/sh", "-c", launcher, "sh", self.args_file, bwrap, "--args", "3", *command]


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _outermost(paths) -> list[str]:
    """The paths with any that lie inside another dropped (that one's bind covers it)."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(os.path.realpath(p)) for p in paths}, key=len):
        if not any(_inside(path, k) for k in kept):
            kept.append(path)
    return kept


def readable_for(kernel_python: str, pythonpath: str) -> tuple[str, ...]:
    """What the kernel must read: Python's prefixes, its sys.path, the course's data folder."""
    import unmasked

    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(kernel_python)),
    }
    paths |= {
        p for p in kernel_paths(kernel_python, pythonpath) if os.path.isdir(p) or p.endswith(".zip")
    }
    data = Path(unmasked.__file__).resolve().parents[2] / "data"
    if data.is_dir():
        paths.add(str(data))
    return tuple(sorted(p for p in paths if os.path.exists(p)))


def hidden_for(readable, extra=()) -> tuple[str, ...]:
    """What must not be read even where a readable folder holds it: the grader and its checks."""
    hidden = set(os.path.realpath(p) for p in extra)
    for folder in readable:
        names = ["unmasked/grading", "solutions", ".git"]
        if os.path.isdir(
            os.path.join(folder, "utils", "unmasked")
        ):  # the course's repository itself
            names += ["tests", "benchmarks", "grades"]  # tests/fixtures hold a solution
        for name in names:
            candidate = os.path.join(folder, name)
            if os.path.exists(candidate):
                hidden.add(os.path.realpath(candidate))
    return tuple(sorted(hidden))


def kernel_python(kernel_name: str) -> str:
    """The Python a kernelspec starts (argv[0]; `python`/`python3` mean this one, as
    jupyter_client does)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        argv = KernelSpecManager().get_kernel_spec(kernel_name).argv
    except Exception:
        return sys.executable
    program = argv[0] if argv else "python"
    if program in (
        "python",
        f"python{sys.version_info[0]}",
        "python{}.{}".format(*sys.version_info[:2]),
    ):
        return sys.executable
    return shutil.which(program) or program


def preflight(box: Sandbox, python: str, env: dict) -> str | None:
    """None when a kernel's Python can start in `box` (imports ipykernel and unmasked), else why
    not.

    Run once per grading run, so that a view that misses something fails here, with the reason,
    instead of as a kernel that never starts for every submission.
    """
    command = box.wrap([python, "-c", "import ipykernel, unmasked"])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the sandboxed Python did not run: {exc}"
    if done.returncode != 0:
        return f"the sandboxed Python failed: {(done.stderr or done.stdout).strip()[-400:]}"
    return None
