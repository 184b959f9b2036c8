"""Check that this environment can run the course: one [OK] or [FAIL] line per requirement.

python -m unmasked.check_env
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass

# import name, the smallest version the course is tested against
REQUIRED = (
    ("torch", "2.2"),
    ("numpy", "1.24"),
    ("jupyterlab", "4.0"),
    ("ipywidgets", "8.0"),
    ("plotly", "5.0"),
    ("anywidget", "0.9"),
    ("tiktoken", "0.7"),
    ("tqdm", "4.0"),
    ("papermill", "2.4"),
    ("nbval", "0.10"),
    ("nbformat", "5.0"),
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'OK' if self.ok else 'FAIL'}] {self.name}: {self.detail}"


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d*", piece).group()
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:  # a pre-release tag such as "0rc1" ends the release numbers
            break
    return tuple(parts)


def check_package(name: str, minimum: str) -> Check:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # an import can fail in many ways; all of them are a FAIL here
        return Check(name, False, f"cannot import ({type(exc).__name__}: {exc}); run `make setup`")
    version = getattr(module, "__version__", "unknown")
    if version != "unknown" and _version_tuple(version) < _version_tuple(minimum):
        return Check(name, False, f"{version} is older than {minimum}; run `make setup`")
    return Check(name, True, version)


def check_tokenizer() -> list[Check]:
    from unmasked import tokens

    checks = []
    for name in tokens.ENCODING_FILES:
        try:
            n = tokens.count_tokens("Unmasked runs offline.", name)
            checks.append(Check(f"tiktoken {name}", True, f"offline, {n} tokens in a test line"))
        except Exception as exc:
            checks.append(Check(f"tiktoken {name}", False, str(exc)))
    return checks


def check_device() -> Check:
    from unmasked.env import pick_device

    try:
        return Check("device", True, str(pick_device()))
    except Exception as exc:
        return Check("device", False, str(exc))


def run_checks() -> list[Check]:
    python_ok = sys.version_info >= (3, 10)
    checks = [
        Check("python", python_ok, sys.version.split()[0] + ("" if python_ok else " (need 3.10+)"))
    ]
    checks += [check_package(name, minimum) for name, minimum in REQUIRED]
    checks += check_tokenizer()
    checks.append(check_device())
    return checks


def main() -> int:
    checks = run_checks()
    for check in checks:
        print(check)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
