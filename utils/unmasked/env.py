"""Where the course runs: device choice, seeding and the fast-mode switch.

Nothing in the course assumes a GPU. `pick_device` prefers cuda, then mps, then cpu, and
always says why it chose what it chose, so a learner on a laptop knows what to expect.
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass

VALID_DEVICES = ("cuda", "mps", "cpu")


@dataclass(frozen=True)
class DeviceChoice:
    """The device picked and the reason, printable as one line for the learner."""

    device: str
    reason: str

    def __str__(self) -> str:
        return f"device={self.device} ({self.reason})"


def _available() -> dict[str, bool]:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return {
        "cuda": torch.cuda.is_available(),
        "mps": bool(mps is not None and mps.is_available()),
        "cpu": True,
    }


def pick_device(prefer: str | None = None, *, verbose: bool = False) -> DeviceChoice:
    """Choose cuda, then mps, then cpu; `prefer` or UNMASKED_DEVICE overrides the order.

    An override naming a device that is not there is an error rather than a silent fallback:
    a learner who asked for cuda should hear that it is missing, not wait on the CPU.
    """
    available = _available()
    requested, source = prefer, "argument"
    if requested is None and os.environ.get("UNMASKED_DEVICE"):
        requested, source = os.environ["UNMASKED_DEVICE"], "UNMASKED_DEVICE"
    if requested is not None:
        name = requested.strip().lower()
        kind = name.split(":")[0]
        if kind not in VALID_DEVICES:
            raise ValueError(
                f"unknown device {requested!r} from {source}; accepted: {', '.join(VALID_DEVICES)}"
                " (cuda may carry an index, as in cuda:1)"
            )
        if not available[kind]:
            raise RuntimeError(
                f"{source} asks for {requested!r} but torch sees no {kind} device here; "
                f"available: {', '.join(k for k, v in available.items() if v)}"
            )
        choice = DeviceChoice(name, f"requested by {source}")
    elif available["cuda"]:
        import torch

        choice = DeviceChoice("cuda", f"CUDA GPU found: {torch.cuda.get_device_name(0)}")
    elif available["mps"]:
        choice = DeviceChoice("mps", "Apple GPU (MPS) found, no CUDA")
    else:
        choice = DeviceChoice("cpu", "no CUDA or MPS GPU found; every notebook runs on CPU")
    if verbose:
        print(choice)
    return choice


def describe_machine(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The machine a figure was measured on, down to the chip's name.

    Two hosts both called "x86_64, 2 CPUs, AMD EPYC" ran the twin's bfloat16 step an order of
    magnitude apart (one has avx512_bf16, the other emulates it), so every artifact names the chip,
    and whether it does bfloat16 natively, where the OS says it.
    """
    model, named, flags = platform.processor() or "", False, None
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and not named:
                    model, named = line.split(":", 1)[1].strip(), True
                elif line.startswith(("flags", "Features")) and flags is None:  # x86, Arm
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    line = f"{platform.machine()}, {os.cpu_count()} CPUs"
    line = f"{line}, {model}" if model else line
    if flags is None:  # no flags to read: say nothing rather than guess
        return line
    # the same chip name came with and without these, and bf16 training ran 10x apart (#19)
    bf16 = [f for f in ("amx_bf16", "avx512_bf16", "bf16") if f in flags]
    return f"{line}, " + (" and ".join(bf16) if bf16 else "no native bf16")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so that the same run prints the same numbers on CPU."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is a dependency, but seeding should never be what breaks
        pass
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def fast_mode() -> bool:
    """True when UNMASKED_FAST is set to a true value: notebooks shrink their work for CI."""
    value = os.environ.get("UNMASKED_FAST", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"UNMASKED_FAST={value!r}; accepted: 1/true/yes/on or 0/false/no/off")


def fast_or(full, fast):
    """The value for this run: `fast` in fast mode, else `full` (the learner's default)."""
    return fast if fast_mode() else full


def pin_to_one_core(core: int | None = None) -> str:
    """Run this process (and the thread pools it starts later) on one core, for benchmarks.

    The course's speed targets are stated for one CPU core, so a figure should not depend on how
    many cores the machine happens to have. `core` picks which (default: the lowest allowed), so
    that two benchmark processes can run side by side without sharing one. Returns a line saying
    what was done.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if hasattr(os, "sched_setaffinity"):
        allowed = os.sched_getaffinity(0)
        if core is None:
            core = min(allowed)
        elif core not in allowed:
            raise ValueError(f"core {core} is not one this process may run on: {sorted(allowed)}")
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity on this OS)"
