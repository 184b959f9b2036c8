"""What a hidden check is: calls into the learner's notebook, and a verdict on what came back.

A check never runs grader code inside the learner's kernel. It names functions the notebook
defines and the arguments to call them with; the kernel only reports what each call returned
or raised. The expected answers are computed here, in the grader, from inputs drawn with a
seed the notebook never sees, so knowing the checks (they ship in the package) does not let a
submission hard-code the answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One call the kernel makes after the learner's cells: `func(*args, **kwargs)`.

    Arguments must be JSON values (they travel inside the appended cell); `make` describes
    one the kernel builds before the call (a tensor, a dataclass, a DataFrame). With
    `watch_args`, the kernel also reports the arguments after the call, to catch mutation.
    """

    func: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    watch_args: bool = False

    def show(self, width: int = 60) -> str:
        """`func(arg, ...)` shortened for a feedback line."""
        parts = [short(a, width) for a in self.args] + [
            f"{k}={short(v, width)}" for k, v in self.kwargs.items()
        ]
        return f"{self.func}({', '.join(parts)})"


@dataclass(frozen=True)
class Outcome:
    """What one call did in the learner's kernel, as the kernel reported it."""

    value: Any = None
    type: str | None = None  # the returned value's type name
    error: str | None = None  # exception class name; "Timeout" when the call ran too long
    bases: tuple[str, ...] = ()  # the exception's class and its bases, for `raised`
    message: str = ""
    args_after: list | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def raised(self, name: str) -> bool:
        return name in self.bases

    def show(self) -> str:
        """`returned 7` or `raised ValueError: ...`, for feedback."""
        if self.error == "Timeout":
            return f"did not return in time ({self.message})"
        if self.error:
            return (
                f"raised {self.error}: {self.message}" if self.message else f"raised {self.error}"
            )
        return f"returned {short(self.value)}"

    @classmethod
    def from_report(cls, report: dict) -> Outcome:
        return cls(
            value=report.get("value"),
            type=report.get("type"),
            error=report.get("error"),
            bases=tuple(report.get("bases") or ()),
            message=str(report.get("message") or ""),
            args_after=report.get("args_after"),
        )


# verify(calls, outcomes) returns None when the check passes, else the feedback: what was wrong.
Verify = Callable[[Sequence[Call], Sequence[Outcome]], "str | None"]


@dataclass(frozen=True)
class Check:
    """A hidden check: worth `points`, passed when `verify` finds nothing wrong."""

    name: str
    points: float
    calls: tuple[Call, ...]
    verify: Verify
    hint: str = ""  # added to the feedback when the check fails

    def __post_init__(self):
        if not self.name or self.points <= 0:
            raise ValueError(
                f"a check needs a name and points > 0, got {self.name!r} with {self.points}"
            )
        if not self.calls:
            raise ValueError(f"check {self.name!r} makes no calls into the notebook")


def make(path: str, *args, **kwargs) -> dict:
    """An argument the kernel builds by calling `path` ("module:name") on (built) JSON arguments.

    make("torch:tensor", [[1, 2]], dtype=ref("torch:long")) arrives as a LongTensor. The value
    travels as {"__call__": path, "args": [...], "kwargs": {...}} and shows as such in feedback.
    """
    return {"__call__": path, "args": list(args), "kwargs": dict(kwargs)}


def ref(path: str) -> dict:
    """An argument that is an object found by its path, e.g. ref("torch:float32")."""
    return {"__ref__": path}


def last(*steps) -> dict:
    """Build `steps` in order and pass the last one: last(make("torch:manual_seed", 0),
    make(...))."""
    return {"__last__": list(steps)}


def short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---- builders for the common shapes of check -------------------------------------------------


def returns(
    name: str,
    points: float,
    func: str,
    cases: Sequence[tuple],
    expected: Sequence[Any],
    *,
    compare: Callable[[Any, Any], bool] | None = None,
    accept_types: tuple[str, ...] | None = None,
    hint: str = "",
) -> Check:
    """`func(*case)` must return `expected[i]` for every case (compared with `compare`)."""
    if len(cases) != len(expected):
        raise ValueError(f"{name}: {len(cases)} cases but {len(expected)} expected values")
    calls = tuple(Call(func, tuple(case)) for case in cases)
    compare = compare or (lambda got, want: got == want)
    wanted = list(expected)

    def verify(calls: Sequence[Call], outcomes: Sequence[Outcome]) -> str | None:
        for call, outcome, want in zip(calls, outcomes, wanted):
            if not outcome.ok:
                return f"{call.show()} {outcome.show()}"
            if accept_types and outcome.type not in accept_types:
                return (
                    f"{call.show()} returned a {outcome.type}; expected {' or '.join(accept_types)}"
                )
            if not compare(outcome.value, want):
                return f"{call.show()} returned {short(outcome.value)}; expected {short(want)}"
        return None

    return Check(name, points, calls, verify, hint)


def _works(calls: Sequence[Call], outcomes: Sequence[Outcome], wanted, compare) -> str | None:
    """What is wrong with the calls that must return `wanted` (None: all right)."""
    for call, outcome, want in zip(calls, outcomes, wanted):
        if not outcome.ok:
            return f"{call.show()} {outcome.show()}"
        if not compare(outcome.value, want):
            return f"{call.show()} returned {short(outcome.value)}; expected {short(want)}"
    return None


def raises(
    name: str,
    points: float,
    func: str,
    cases: Sequence[tuple],
    error: str,
    *,
    works: tuple[Sequence[tuple], Sequence[Any]] | None = None,
    compare: Callable[[Any, Any], bool] | None = None,
    hint: str = "",
) -> Check:
    """`func(*case)` must raise `error` (or a subclass) for every case.

    With `works=(cases, expected)`, `func` must also return the expected values for valid
    input: a raise alone is cheap to fake (a stub that always raises, a forged report), a
    right answer to inputs drawn in secret is not.
    """
    raising = tuple(Call(func, tuple(case)) for case in cases)
    valid_cases, wanted = works or ((), ())
    valid = tuple(Call(func, tuple(case)) for case in valid_cases)
    compare = compare or (lambda got, want: got == want)

    def verify(calls: Sequence[Call], outcomes: Sequence[Outcome]) -> str | None:
        for call, outcome in zip(calls[: len(raising)], outcomes[: len(raising)]):
            if outcome.error == "Timeout" or not outcome.raised(error):
                return f"{call.show()} {outcome.show()}; expected it to raise {error}"
        problem = _works(calls[len(raising) :], outcomes[len(raising) :], wanted, compare)
        return f"it must also work for valid input: {problem}" if problem else None

    return Check(name, points, raising + valid, verify, hint)


def leaves_args_unchanged(
    name: str,
    points: float,
    func: str,
    cases: Sequence[tuple],
    *,
    expected: Sequence[Any] | None = None,
    compare: Callable[[Any, Any], bool] | None = None,
    hint: str = "",
) -> Check:
    """`func(*case)` must return normally and leave its (list or dict) arguments as they were.

    With `expected`, it must also return those values, so that a function that does nothing
    (or a forged report) does not pass. A call whose arguments were not reported back fails.
    """
    calls = tuple(Call(func, tuple(case), watch_args=True) for case in cases)
    compare = compare or (lambda got, want: got == want)

    def verify(calls: Sequence[Call], outcomes: Sequence[Outcome]) -> str | None:
        for call, outcome in zip(calls, outcomes):
            if not outcome.ok:
                return f"{call.show()} {outcome.show()}"
            if outcome.args_after is None:
                return f"{call.show()}: the arguments after the call were not reported"
            if list(outcome.args_after) != list(call.args):
                after = outcome.args_after[0] if len(call.args) == 1 else outcome.args_after
                return f"{call.show()} changed its argument to {short(after)}"
        if expected is not None:
            return _works(calls, outcomes, expected, compare)
        return None

    return Check(name, points, calls, verify, hint)


def also_works(check: Check, working: Check) -> Check:
    """`check` (a raise, say) that passes only when `working`'s calls are right as well.

    A raise alone is cheap to fake: a stub that always raises, or a report rewritten in the
    kernel. Right values for inputs drawn in secret are not. Name, points and hint are `check`'s.
    """
    n = len(check.calls)

    def verify(calls: Sequence[Call], outcomes: Sequence[Outcome]) -> str | None:
        problem = check.verify(calls[:n], outcomes[:n])
        if problem:
            return problem
        problem = working.verify(calls[n:], outcomes[n:])
        return f"it must also work for valid input: {problem}" if problem else None

    return Check(check.name, check.points, check.calls + working.calls, verify, check.hint)


def isclose(rel_tol: float = 1e-9, abs_tol: float = 1e-12) -> Callable[[Any, Any], bool]:
    """A float comparison for `returns`; never equal for non-numbers."""

    def compare(got: Any, want: float) -> bool:
        return is_number(got) and math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)

    return compare
