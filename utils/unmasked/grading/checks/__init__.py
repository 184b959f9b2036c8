"""The hidden checks, one module per lab, named after the lab's notebook (lab01_tokens.py).

A lab's module defines:

    PARAMETERS = {"FAST": True, "SEED": 0}   # injected into every submission before it runs
    CALL_TIMEOUT_S = 5.0                     # each call into the notebook gets this long
    REFERENCES = {"func": ("unmasked.mod.impl",)}  # optional: the course's versions of an exercise
    def build(rng: random.Random) -> list[Check]

`build` draws its test inputs from `rng` (seeded by the grader with a secret per run) and
computes the expected answers here, in the grader. The list's names and points must not depend
on `rng`: a submission that crashes still gets one zero per check. Adding a lab is adding a
module; nothing else changes.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
import random
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..spec import Check


@dataclass(frozen=True)
class LabChecks:
    """A lab's hidden checks, loaded and validated."""

    lab: str
    module: ModuleType
    parameters: dict
    call_timeout_s: float
    fingerprint: str  # changes when the checks change, so a re-run regrades
    references: dict = field(
        default_factory=dict
    )  # func -> the course's implementations (delegation.py)

    def build(self, seed: int) -> list[Check]:
        checks = list(self.module.build(random.Random(seed)))
        if not checks or not all(isinstance(c, Check) for c in checks):
            raise TypeError(f"checks for {self.lab}: build() must return a non-empty list of Check")
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            raise ValueError(f"checks for {self.lab}: check names repeat: {names}")
        return checks

    def outline(self) -> list[tuple[str, float]]:
        """(name, points) of every check: what a submission that never ran scores zero on."""
        return [(c.name, c.points) for c in self.build(0)]

    @property
    def max_points(self) -> float:
        return sum(points for _, points in self.outline())


def lab_name(lab: str | Path) -> str:
    """`labs/lab01_tokens.ipynb`, `lab01_tokens.ipynb` or `lab01_tokens` -> `lab01_tokens`."""
    name = Path(str(lab)).name
    return name[: -len(".ipynb")] if name.endswith(".ipynb") else name


def available() -> list[str]:
    """Labs that have hidden checks."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("lab"))


def load(lab: str | Path) -> LabChecks:
    """The hidden checks for `lab` (a lab notebook path or name)."""
    name = lab_name(lab)
    if name not in available():
        raise ValueError(
            f"no hidden checks for lab {name!r}; labs with checks: "
            f"{', '.join(available()) or 'none'}"
        )
    module = importlib.import_module(f"{__name__}.{name}")
    for attribute in ("PARAMETERS", "build"):
        if not hasattr(module, attribute):
            raise TypeError(
                f"{module.__name__} must define {attribute} (see unmasked.grading.checks)"
            )
    source = inspect.getsource(module).encode()
    return LabChecks(
        lab=name,
        module=module,
        parameters=dict(module.PARAMETERS),
        call_timeout_s=float(getattr(module, "CALL_TIMEOUT_S", 5.0)),
        fingerprint=hashlib.sha256(source).hexdigest()[:16],
        references={k: tuple(v) for k, v in getattr(module, "REFERENCES", {}).items()},
    )
