"""The decode race (unmasked.bench decode) and its batched diffusion sampler
(sampling.fill_batch)."""

import json
import time

import pytest
import torch

from unmasked.bench import COLUMNS, decode_methods, main
from unmasked.sampling import fill_batch, generate_many
from unmasked.sessions import generate_short_sessions
from unmasked.train import build_vocab, encode_prompt, load_checkpoint

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def vocab_prompts():
    sessions = generate_short_sessions(6, seed=2)
    vocab = build_vocab(sessions)
    return vocab, [encode_prompt(s, vocab) for s in sessions]


@pytest.mark.parametrize("setting", [{"steps": 12}, {"steps": 5}, {"steps": 1}, {"threshold": 0.5}])
def test_fill_batch_writes_what_generate_many_writes(vocab_prompts, setting, random_lm):
    """Greedy low-confidence, linear schedule, one block: the same tokens, left padding or not."""
    vocab, prompts = vocab_prompts
    model = random_lm(vocab)
    L = 12
    out = fill_batch(model, prompts[:4], L, mask_id=vocab.mask_id, pad_id=vocab.pad_id, **setting)
    ref = generate_many(
        model,
        prompts[:4],
        L,
        setting.get("steps", L),
        mask_id=vocab.mask_id,
        pad_id=vocab.pad_id,
        threshold=setting.get("threshold"),
    )
    for row, steps, conf, passes, (ids, trace) in zip(
        out.x.tolist(), out.step.tolist(), out.confidence.tolist(), out.passes.tolist(), ref
    ):
        assert row[-L:] == ids[-L:]
        assert steps == trace.commit_step() and passes == trace.steps_used
        assert conf == pytest.approx(trace.commit_confidence(), abs=1e-6)
    assert vocab.mask_id not in out.x[:, -L:].tolist()


def test_fill_batch_never_writes_a_banned_token_and_checks_its_settings(vocab_prompts, random_lm):
    vocab, prompts = vocab_prompts
    model = random_lm(vocab)
    banned = list(range(vocab.size // 2))
    banned.remove(vocab.mask_id) if vocab.mask_id in banned else None
    out = fill_batch(
        model, prompts[:2], 6, mask_id=vocab.mask_id, pad_id=vocab.pad_id, steps=3, banned=banned
    )
    assert not set(out.x[:, -6:].flatten().tolist()) & set(banned)
    with pytest.raises(ValueError, match="exactly one"):
        fill_batch(model, prompts[:2], 6, mask_id=vocab.mask_id, pad_id=vocab.pad_id)
    with pytest.raises(ValueError, match="length"):
        fill_batch(model, prompts[:2], 0, mask_id=vocab.mask_id, pad_id=vocab.pad_id, steps=1)


def test_methods_cover_the_grid_of_the_issue():
    names = [m["method"] for m in decode_methods(218)]
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
    assert [m["K"] for m in decode_methods(218) if "K" in m] == [218, 109, 54, 27, 13]
    assert [m["K"] for m in decode_methods(4) if "K" in m] == [
        4,
        2,
        1,
    ]  # K never below 1, no repeats


def test_tiny_decode_bench_prints_a_well_formed_table_and_writes_its_json(tmp_path, capsys):
    """The CI smoke test: a table with every method at every (L, batch), and its JSON. Not a
    speed."""
    out = tmp_path / "decode.json"
    assert main(["decode", "--tiny", "--quiet", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    body = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert all(len(cells) == len(COLUMNS) for cells in body)
    expected = [
        (str(L), str(B), m["method"]) for L in (8, 16) for B in (1, 2) for m in decode_methods(L)
    ]
    assert [tuple(cells[:3]) for cells in body] == expected
    for cells in body:
        assert float(cells[3]) >= 1 and float(cells[4].replace(",", "")) > 0
        assert cells[6] in ("not a record", "untrained")
    result = json.loads(out.read_text())
    assert {
        "device",
        "torch",
        "command",
        "date",
        "threads",
        "grid",
        "models",
        "rows",
        "crossover",
    } <= set(result)
    assert result["command"].startswith("python -m unmasked.bench decode --tiny")
    assert not result["models"]["autoregressive"]["trained"]
    assert len(result["rows"]) == len(expected) and len(result["crossover"]) == 4
    for r in result["rows"]:
        assert len(r["seconds"]) == result["grid"]["repeats"] and r["median_s"] > 0
        assert r["tokens_per_s"] == pytest.approx(r["batch"] * r["L"] / r["median_s"])
        if r["arch"] == "autoregressive":
            assert r["passes_per_record"] == r["L"]
        elif "K" in r:
            assert r["passes_per_record"] == r["K"]


def test_tau_bench_on_the_shipped_checkpoint(tmp_path, shipped_checkpoint, capsys):
    out = tmp_path / "tau.json"
    assert (
        main(
            [
                "tau",
                "--n",
                "3",
                "--taus",
                "0.5,0.99",
                "--threads",
                "1",
                "--quiet",
                "--out",
                str(out),
                "--diffusion",
                str(shipped_checkpoint),
            ]
        )
        == 0
    )
    assert "| 0.99 |" in capsys.readouterr().out
    result = json.loads(out.read_text())
    _, vocab, layout, _ = load_checkpoint(shipped_checkpoint)
    assert {"device", "torch", "command", "date", "checkpoint", "n", "rows"} <= set(result)
    assert [r["tau"] for r in result["rows"]] == [0.5, 0.99]
    for r in result["rows"]:
        assert 1 <= r["passes_median"] <= r["passes_max"] and 0 <= r["accuracy"] <= 100
        assert sum(b["n"] for b in r["reliability"]) == 3 * layout.length(
            vocab
        )  # every answer position, committed once
        assert 0 <= r["calibration_error"] <= 1 and 0 <= r["calibration_error_values"] <= 1
        assert 0 < sum(b["n"] for b in r["reliability_values"]) < 3 * layout.length(vocab)


def test_time_method_budget_stops_repeats_and_warmup_batch_warms_on_fewer_prompts(monkeypatch):
    """A batch-64 cell on a CPU costs minutes a run: --budget-s caps the timed runs (never below
    one) and --warmup-batch warms up on a slice, while the timed runs keep the whole batch."""
    from unmasked import bench

    calls = []

    def fake_run(method, models, prompts, length, vocab):
        calls.append(len(prompts))
        time.sleep(0.02)
        return [[0] * length for _ in prompts], float(length)

    monkeypatch.setattr(bench, "run_method", fake_run)
    prompts = [[1, 2]] * 8
    timing = bench.time_method({}, {}, prompts, 4, None, "cpu", 2, 5, budget_s=0.01, warmup_batch=1)
    assert calls == [1, 1, 8] and len(timing["seconds"]) == 1
    calls.clear()
    timing = bench.time_method({}, {}, prompts, 4, None, "cpu", 1, 3)
    assert calls == [8, 8, 8, 8] and len(timing["seconds"]) == 3
    assert timing["tokens_per_s"] == pytest.approx(8 * 4 / timing["median_s"])


def test_decode_cli_records_budget_and_rejects_bad_values(tmp_path, capsys):
    out = tmp_path / "decode.json"
    args = ["decode", "--tiny", "--quiet", "--threads", "1", "--out", str(out)]
    assert main([*args, "--budget-s", "1e-9", "--warmup-batch", "1", "--lengths", "8"]) == 0
    result = json.loads(out.read_text())
    assert result["grid"]["budget_s"] == 1e-9 and result["grid"]["warmup_batch"] == 1
    assert all(len(r["seconds"]) == 1 for r in result["rows"])
    for bad in (["--budget-s", "0"], ["--warmup-batch", "0"]):
        with pytest.raises(SystemExit):
            main([*args, *bad])
        assert "must be" in capsys.readouterr().err


def test_rescore_measures_the_twins_accuracy_again_and_keeps_every_speed(tmp_path, capsys):
    """After the twin is retrained its accuracy column changes and its speeds do not (greedy
    decoding runs L passes whatever the weights): rescore rewrites that column only, and says
    so."""
    from unmasked.bench import rescore, tiny_models

    models = tiny_models()
    A = models["layout"].length(models["vocab"])
    out = tmp_path / "decode.json"
    common = ["--quiet", "--threads", "1", "--repeats", "1", "--batches", "1"]
    assert main(["decode", "--tiny", *common, "--lengths", f"8,{A}", "--out", str(out)]) == 0
    recorded = json.loads(out.read_text())
    models["autoregressive"]["trained"] = True  # as if a checkpoint had been trained
    result = rescore(recorded, models, "autoregressive", "python -m unmasked.bench rescore x", 3)
    assert recorded["rows"][0]["accuracy"] is None  # the recorded race is not changed in place
    for old, new in zip(recorded["rows"], result["rows"]):
        assert new["seconds"] == old["seconds"] and new["tokens_per_s"] == old["tokens_per_s"]
        if new["arch"] == "autoregressive" and new["L"] == A:
            assert 0 <= new["accuracy"] <= 100 and "rescored" in new["accuracy_note"]
        else:
            assert (new["accuracy"], new["accuracy_note"]) == (
                old["accuracy"],
                old["accuracy_note"],
            )
    at_a = {r["method"]: r["accuracy"] for r in result["rows"] if r["L"] == A}
    assert at_a["AR, KV cache"] == at_a["AR, no cache"]  # the same tokens, cache or not
    (entry,) = result["rescored"]
    assert entry["accuracy_n"] == 3 and entry["accuracy_before"]["AR, KV cache"] is None
    assert entry["accuracy_after"]["AR, KV cache"] == at_a["AR, KV cache"]
    assert {"command", "date", "why"} <= set(entry)
    with pytest.raises(ValueError, match="re-run the race"):
        rescore(recorded, models, "diffusion", "x", 3)
    models["autoregressive"]["trained"] = False
    with pytest.raises(ValueError, match="no trained"):
        rescore(recorded, models, "autoregressive", "x", 3)
    with pytest.raises(SystemExit):  # a tiny race is not a race of the shipped models
        main(["rescore", str(out)])
    assert "not a recorded race" in capsys.readouterr().err
