"""The live decode race of lecture 05 (unmasked.race): its methods, timing budget, arithmetic and
figures."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from unmasked import race
from unmasked.bench import tiny_models
from unmasked.records import encode_prompt

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    return tiny_models(seed=0)


def _row(method, median_s, L=64, K=None, arch="diffusion", batch=1, passes=None):
    r = {"L": L, "batch": batch, "method": method, "arch": arch, "median_s": median_s}
    if K is not None:
        r["K"] = K
    r["passes_per_record"] = passes if passes is not None else (K or L)
    r["tokens_per_s"] = batch * L / median_s
    return r


def _rows_from_costs(L, s_per_token, s_per_pass, ks):
    rows = [
        _row(race.AR_CACHE, L * s_per_token, L, arch="autoregressive"),
        _row(race.AR_NO_CACHE, L * s_per_pass, L, arch="autoregressive"),
    ]
    rows += [_row(f"diffusion K={k}", k * s_per_pass, L, K=k) for k in ks]
    return rows


def test_methods_are_the_bench_grid_with_duplicate_k_dropped():
    names = [m["method"] for m in race.race_methods(64)]
    assert names == [
        "AR, KV cache",
        "AR, no cache",
        "diffusion K=L",
        "diffusion K=L/2",
        "diffusion K=L/4",
        "diffusion K=L/8",
        "diffusion K=L/16",
        "diffusion tau=0.9",
    ]
    ks = [m["K"] for m in race.race_methods(8, divisors=(1, 8, 16), tau=None) if "K" in m]
    assert ks == [8, 1]  # 8 // 16 = 0 -> K = 1, already there from 8 // 8
    with pytest.raises(ValueError, match="divisors"):
        race.race_methods(64, divisors=(0,))
    with pytest.raises(ValueError, match="length"):
        race.race_methods(0)


def test_race_times_every_method_and_scales_to_ar_with_cache(tiny):
    vocab = tiny["vocab"]
    prompts = [encode_prompt(s, vocab) for s in tiny["sessions"][:2]]
    methods = race.race_methods(8, divisors=(1, 4), tau=0.9)
    rows = race.race(tiny, prompts, 8, methods, "cpu", repeats=2, budget_s=60, progress=False)
    assert [r["method"] for r in rows] == [m["method"] for m in methods]
    for r in rows:
        assert len(r["seconds"]) == 2 and r["tokens_per_s"] > 0
        assert r["tokens_per_s"] == pytest.approx(2 * 8 / r["median_s"])
    assert rows[0]["speed_vs_ar_cache"] == 1.0
    assert {r["passes_per_record"] for r in rows if r.get("K") == 2} == {2.0}


def test_a_method_over_its_budget_is_timed_once(tiny):
    vocab = tiny["vocab"]
    prompts = [encode_prompt(tiny["sessions"][0], vocab)]
    method = race.race_methods(8)[0]
    once = race.time_within(method, tiny, prompts, 8, vocab, "cpu", repeats=5, budget_s=0.0)
    assert len(once["seconds"]) == 1
    with pytest.raises(ValueError, match="repeats"):
        race.time_within(method, tiny, prompts, 8, vocab, "cpu", repeats=0)


def test_unit_costs_and_predicted_crossover_agree_with_the_rows_they_come_from():
    rows = _rows_from_costs(64, s_per_token=0.001, s_per_pass=0.008, ks=(64, 32, 16, 8, 4))
    costs = race.unit_costs(rows)
    assert costs["ar_s_per_token"] == pytest.approx(0.001)
    assert costs["diffusion_s_per_pass"] == pytest.approx(0.008)
    k_star = race.predicted_crossover(64, costs["ar_s_per_token"], costs["diffusion_s_per_pass"])
    assert k_star == pytest.approx(8.0)  # 64 tokens x 1 ms = 8 passes x 8 ms
    assert race.measured_crossover(rows) == 8  # equal speed counts as at least as fast
    slower = _rows_from_costs(64, s_per_token=0.001, s_per_pass=0.1, ks=(64, 32))
    assert race.measured_crossover(slower) is None
    with pytest.raises(ValueError, match="one"):
        race.unit_costs(rows + [_row(race.AR_CACHE, 1.0, L=32, arch="autoregressive")])


def test_arithmetic_intensity_matches_torch_flop_count(tiny):
    """2 FLOPs per weight per token, checked against FlopCounterMode on the real model."""
    model = tiny["diffusion"]["model"]
    linear = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)
    )  # lm_head shares wte's weight and is counted once, as it is multiplied once per token
    T = 8
    idx = torch.randint(5, model.config.vocab_size, (1, T))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(idx)
    flops = counter.get_total_flops()
    assert 2 * linear * T <= flops <= 1.2 * 2 * linear * T  # attention adds a little at small T
    bytes_per_param = 4
    intensity = race.arithmetic_intensity(T, bytes_per_param)
    assert intensity == pytest.approx(2 * linear * T / (bytes_per_param * linear))
    assert race.arithmetic_intensity(1, 2) == 1.0  # a cached AR step in bf16: 1 FLOP per byte
    with pytest.raises(ValueError):
        race.arithmetic_intensity(0, 2)


def test_seed_revisit_reproduces_the_seed_from_its_own_unit_costs():
    seed = race.seed_revisit(0.010, 0.060, tokens_per_pass=8000)
    assert seed["ar_s"] == pytest.approx(80.0)
    assert seed["diffusion_s"] == pytest.approx(0.96)
    assert seed["pass_over_token"] == pytest.approx(6.0)
    short = race.seed_revisit(0.010, 0.060, tokens_per_pass=800)  # a pass 10x longer at 8000
    assert short["pass_scale"] == pytest.approx(10.0)
    assert short["diffusion_s"] == pytest.approx(9.6)
    with pytest.raises(ValueError):
        race.seed_revisit(0.0, 0.06, 100)


def test_load_recorded_reads_races_and_reports_what_it_skipped(tmp_path):
    rows = _rows_from_costs(64, 0.001, 0.008, (64, 8))
    good = {"name": "decode", "device": "cuda", "date": "2026-01-02", "rows": rows}
    (tmp_path / "decode_cuda.json").write_text(json.dumps(good))
    (tmp_path / "decode_broken.json").write_text("{not json")
    (tmp_path / "tau_cpu.json").write_text(json.dumps({"name": "tau", "rows": [1]}))
    found = race.load_recorded(tmp_path)
    assert [r["file"] for r in found] == ["decode_broken.json", "decode_cuda.json"]
    assert "error" in found[0] and found[1]["rows"] == rows
    assert race.recorded_label(found[1]).startswith("decode_cuda.json: cuda")


def test_the_repository_ships_a_cpu_race():
    shipped = [r for r in race.load_recorded() if "error" not in r]
    assert any(r["device"] == "cpu" for r in shipped)


def test_speed_figure_marks_the_crossover_and_sets_accuracy_beside():
    rows = _rows_from_costs(64, 0.001, 0.008, (64, 32, 16, 8, 4))
    rows.append(_row("diffusion tau=0.9", 0.009, 64, passes=1.2))
    acc = {"diffusion K=64": 99.0, "diffusion K=8": 97.0, "diffusion tau=0.9": 98.0}
    fig = race.speed_vs_k_figure(rows, accuracy=acc, crossover_k=8.0)
    names = [t.name for t in fig.data]
    assert names[:2] == ["diffusion, fixed K", "diffusion, adaptive tau"]
    assert {"AR, KV cache", "AR, no cache", "diffusion accuracy"} <= set(names)
    assert "AR accuracy" not in names  # no AR accuracy given: none drawn
    assert any("crossover" in a.text for a in fig.layout.annotations)
    accuracy_trace = next(t for t in fig.data if t.name == "diffusion accuracy")
    assert sorted(accuracy_trace.y) == [97.0, 98.0, 99.0]
    with_ar = race.speed_vs_k_figure(rows, accuracy={**acc, race.AR_CACHE: 96.0})
    assert "AR accuracy" in [t.name for t in with_ar.data]


def test_batch_figure_draws_a_line_per_method_across_batches():
    rows = []
    for batch in (1, 8, 64):
        for r in _rows_from_costs(64, 0.001 / batch, 0.008 / batch**0.5, (64, 8)):
            rows.append({**r, "batch": batch, "tokens_per_s": r["tokens_per_s"] * batch})
    fig = race.batch_figure(rows, 64)
    assert [t.name for t in fig.data] == list(dict.fromkeys(r["method"] for r in rows))
    cached = next(t for t in fig.data if t.name == race.AR_CACHE)
    assert list(cached.x) == [1, 8, 64] and cached.y[2] > cached.y[0]
    with pytest.raises(ValueError, match="one batch size"):
        race.batch_figure([r for r in rows if r["batch"] == 1], 64)


def test_tau_and_reliability_figures():
    rows = [
        {"tau": 0.9, "passes_mean": 1.3, "accuracy": 98.7, "all_fields": 92.0},
        {"tau": 0.5, "passes_mean": 1.0, "accuracy": 97.6, "all_fields": 86.0},
    ]
    fig = race.tau_figure(rows)
    assert list(fig.data[0].x) == [1.0, 1.3]  # sorted by tau
    with pytest.raises(ValueError):
        race.tau_figure([])
    curve = [
        {"confidence": 0.95, "accuracy": 0.9, "n": 12},
        {"confidence": 0.5, "accuracy": 0.4, "n": 3},
    ]
    rel = race.reliability_figure({"tau=0.9": curve})
    assert [t.name for t in rel.data] == ["calibrated", "tau=0.9"]
