import os
import random

import numpy as np
import pytest
import torch

from unmasked import env


def test_pick_device_without_gpu_says_cpu_and_why(monkeypatch):
    monkeypatch.delenv("UNMASKED_DEVICE", raising=False)
    monkeypatch.setattr(env, "_available", lambda: {"cuda": False, "mps": False, "cpu": True})
    choice = env.pick_device()
    assert choice.device == "cpu"
    assert "no CUDA or MPS" in choice.reason
    assert str(choice).startswith("device=cpu")


def test_pick_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.delenv("UNMASKED_DEVICE", raising=False)
    monkeypatch.setattr(env, "_available", lambda: {"cuda": False, "mps": True, "cpu": True})
    assert env.pick_device().device == "mps"
    monkeypatch.setattr(env, "_available", lambda: {"cuda": True, "mps": True, "cpu": True})
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Test GPU")
    choice = env.pick_device()
    assert choice.device == "cuda" and "Test GPU" in choice.reason


def test_pick_device_override_by_argument_and_environment(monkeypatch):
    monkeypatch.setenv("UNMASKED_DEVICE", "cpu")
    monkeypatch.setattr(env, "_available", lambda: {"cuda": True, "mps": False, "cpu": True})
    choice = env.pick_device()
    assert choice.device == "cpu" and "UNMASKED_DEVICE" in choice.reason
    choice = env.pick_device("cuda:0")
    assert choice.device == "cuda:0" and "argument" in choice.reason


def test_pick_device_rejects_unknown_and_missing(monkeypatch):
    monkeypatch.setattr(env, "_available", lambda: {"cuda": False, "mps": False, "cpu": True})
    with pytest.raises(ValueError, match="accepted: cuda, mps, cpu"):
        env.pick_device("tpu")
    monkeypatch.setenv("UNMASKED_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="no cuda device"):
        env.pick_device()


def test_pick_device_verbose_prints(monkeypatch, capsys):
    monkeypatch.delenv("UNMASKED_DEVICE", raising=False)
    env.pick_device(verbose=True)
    assert capsys.readouterr().out.startswith("device=")


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    env.seed_everything(123)
    first = draw()
    env.seed_everything(123)
    assert draw() == first
    env.seed_everything(124)
    assert draw() != first


def test_seed_everything_rejects_bad_seed():
    with pytest.raises(ValueError):
        env.seed_everything(-1)


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("0", False), ("1", True), ("true", True), ("off", False)]
)
def test_fast_mode(monkeypatch, value, expected):
    monkeypatch.setenv("UNMASKED_FAST", value)
    assert env.fast_mode() is expected
    assert env.fast_or("full", "fast") == ("fast" if expected else "full")


def test_fast_mode_rejects_garbage(monkeypatch):
    monkeypatch.setenv("UNMASKED_FAST", "maybe")
    with pytest.raises(ValueError, match="UNMASKED_FAST"):
        env.fast_mode()


def test_pin_to_one_core_takes_a_chosen_core_and_refuses_one_it_may_not_use(monkeypatch):
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity on this OS")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        monkeypatch.setenv(var, "restored after the test")  # pin_to_one_core sets them
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "restored after the test")
    before = os.sched_getaffinity(0)
    try:
        core = max(before)
        assert env.pin_to_one_core(core) == f"pinned to core {core}"
        assert os.sched_getaffinity(0) == {core}
        with pytest.raises(ValueError, match="not one this process may run on"):
            env.pin_to_one_core(10_000)
    finally:
        os.sched_setaffinity(0, before)


def test_describe_machine_names_the_chip_so_speeds_can_be_compared(tmp_path, monkeypatch):
    monkeypatch.setattr(env.platform, "processor", lambda: "")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: Chip\nmodel name\t: Example Chip 9000\n")
    line = env.describe_machine(str(cpuinfo))
    assert line.endswith(", Example Chip 9000")
    assert f"{os.cpu_count()} CPUs" in line
    # the same name with and without native bfloat16 trained the twin 10x apart: say which
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n" * 2)
    assert env.describe_machine(str(cpuinfo)).endswith(", AMD EPYC, avx512_bf16")
    cpuinfo.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx2\n")
    assert env.describe_machine(str(cpuinfo)).endswith(", AMD EPYC, no native bf16")
    # Arm lists them as Features, not flags
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert env.describe_machine(str(cpuinfo)).endswith(", bf16")
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm\n")
    assert env.describe_machine(str(cpuinfo)).endswith(", no native bf16")
    # no cpuinfo (macOS, Windows) and no processor string: the architecture and count still
    assert env.describe_machine(str(tmp_path / "missing")) == (
        f"{env.platform.machine()}, {os.cpu_count()} CPUs"
    )
