"""Killing what a submission started, including what its kernel started.

jupyter_client starts each kernel in its own session, so killing the grader's worker process
group does not reach the kernel. On Linux we read /proc to find every descendant and every
process sharing a session with one; elsewhere we fall back to process groups.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_PROC = Path("/proc")


def _table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session) for every process we can see; empty without /proc."""
    table = {}
    if not _PROC.is_dir():
        return table
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 4:
            table[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return table


def _kill(pid: int) -> None:
    if pid in (0, 1, os.getpid()):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int) -> None:
    if pgid in (0, 1) or pgid == os.getpgid(0):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(root: int, sessions: tuple[int, ...] = ()) -> None:
    """SIGKILL `root`, its descendants, and every process in their sessions (or in `sessions`).

    Twice over, since a process may fork while we look.
    """
    own_session = os.getsid(0)
    for _ in range(2):
        table = _table()
        doomed = {root}
        grew = True
        while grew:
            children = {pid for pid, (ppid, _) in table.items() if ppid in doomed} - doomed
            doomed |= children
            grew = bool(children)
        marked = {table[p][1] for p in doomed if p in table} | set(sessions)
        marked.discard(own_session)
        doomed |= {pid for pid, (_, sid) in table.items() if sid in marked}
        for sid in marked:
            _killpg(sid)  # a session leader's pid is also its process group id
        for pid in doomed:
            _kill(pid)
    _killpg(root)


def kill_session(session: int) -> None:
    """SIGKILL every process left in `session` (a kernel's, after it exited)."""
    if session in (0, 1) or session == os.getsid(0):
        return
    _killpg(session)
    for pid, (_, sid) in _table().items():
        if sid == session:
            _kill(pid)


def become_subreaper() -> bool:
    """Make orphans of our descendants (setsid daemons) our children instead of init's (Linux).

    Without the sandbox's PID namespace, this is how the worker still finds a daemon that
    learner code started with start_new_session, to kill it when the run ends.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def kill_descendants(root: int) -> None:
    """SIGKILL every descendant of `root` (not `root`), with their sessions."""
    for pid, (ppid, _) in _table().items():
        if ppid == root:
            kill_tree(pid)
