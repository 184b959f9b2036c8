"""The training loop's parts (unmasked.train): lr schedule, batches, sizing, a run that learns, a
run in sittings, bfloat16."""

import copy
import json
import math
import random

import pytest
import torch

from unmasked.checkpoints import load_checkpoint
from unmasked.sessions import generate_short_sessions
from unmasked.train import (
    RecordLayout,
    TrainConfig,
    TrainRun,
    _report_progress,
    _speed_between,
    batches,
    build_vocab,
    encode_example,
    lr_at,
    main,
    new_model,
    sized_for,
    train_model,
)


@pytest.fixture(scope="module")
def tiny_task():
    """Eight real sessions, their vocabulary and slots: small enough to learn in seconds."""
    sessions = generate_short_sessions(8, seed=5)
    vocab = build_vocab(sessions)
    layout = RecordLayout.fit([s.record for s in sessions], vocab)
    return vocab, layout, [encode_example(s, vocab, layout) for s in sessions]


# --------------------------------------------------------------------------- learning-rate schedule


def test_lr_warms_up_linearly_then_decays_on_a_cosine_to_min_lr():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup=10)
    assert lr_at(0.0, cfg, 0) == pytest.approx(1e-4)  # step 0 of 10: a tenth of lr
    assert lr_at(0.0, cfg, 4) == pytest.approx(5e-4)
    assert lr_at(0.0, cfg, 9) == pytest.approx(1e-3)  # the last warmup step reaches lr
    assert lr_at(0.0, cfg, 10) == pytest.approx(1e-3)  # then the cosine starts at lr
    assert lr_at(0.5, cfg, 500) == pytest.approx((1e-3 + 1e-4) / 2)  # half way: the midpoint
    assert lr_at(1.0, cfg, 1000) == pytest.approx(1e-4)
    assert lr_at(3.0, cfg, 3000) == pytest.approx(1e-4)  # past the end (time budget): min_lr
    after = [lr_at(p / 20, cfg, 10 + p) for p in range(21)]
    assert all(a > b for a, b in zip(after, after[1:]))  # strictly falling after warmup


def test_lr_warmup_ignores_progress():
    """During warmup the step decides, even when a time budget has already used up the progress."""
    cfg = TrainConfig(lr=2e-3, min_lr=0.0, warmup=4)
    assert lr_at(0.9, cfg, 1) == pytest.approx(1e-3)


# ------------------------------------------------------------------------------------------ batches


def test_batches_are_full_cover_every_example_once_per_pass_and_are_seeded():
    n, size = 50, 4
    lengths = [random.Random(i).randint(10, 300) for i in range(n)]
    stream = batches(n, size, lengths, random.Random(0))
    per_pass = n // size  # 50 examples, one chunk: 12 full batches and a dropped remainder of 2
    first = [next(stream) for _ in range(per_pass)]
    assert all(len(b) == size for b in first)
    flat = [i for b in first for i in b]
    assert len(set(flat)) == len(flat) == per_pass * size  # no example twice in a pass
    second = [next(stream) for _ in range(per_pass)]
    assert sorted(map(sorted, second)) != sorted(map(sorted, first))  # the next pass: reshuffled
    again = batches(n, size, lengths, random.Random(0))
    assert [next(again) for _ in range(per_pass)] == first  # one seed, one order


def test_batches_group_examples_of_similar_length():
    n, size = 64, 8
    lengths = list(range(n))  # example i has length i
    random.Random(1).shuffle(lengths)
    for b in (next(batches(n, size, lengths, random.Random(s))) for s in range(5)):
        spread = max(lengths[i] for i in b) - min(lengths[i] for i in b)
        assert spread == size - 1  # sorted by length within the chunk: 8 neighbours


def test_batches_refuse_fewer_examples_than_a_batch_at_once():
    """Only full batches are yielded: 3 examples and batches of 4 used to loop forever at next()."""
    with pytest.raises(ValueError, match="3 training examples cannot fill a batch of 4"):
        batches(3, 4, [10, 20, 30], random.Random(0))  # the call raises; no next() needed
    with pytest.raises(ValueError, match="cannot fill"):
        batches(0, 1, [], random.Random(0))
    with pytest.raises(ValueError, match="batch_size"):
        batches(3, 0, [10, 20, 30], random.Random(0))
    with pytest.raises(ValueError, match="one length per example"):
        batches(3, 2, [10, 20], random.Random(0))
    assert len(next(batches(4, 4, [1, 2, 3, 4], random.Random(0)))) == 4  # exactly one batch: fine


def test_train_model_refuses_fewer_examples_than_a_batch(tiny_task):
    vocab, _, examples = tiny_task
    cfg = sized_for(
        TrainConfig(n_layer=1, n_head=2, n_embd=32, batch_size=16, steps=2, device="cpu"), examples
    )
    with pytest.raises(ValueError, match="8 training examples cannot fill a batch of 16"):
        train_model(new_model(vocab, cfg), vocab, examples, cfg, progress=False)


def test_command_line_refuses_a_limit_below_the_batch_size(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(
            [
                "--out",
                str(tmp_path),
                "--limit",
                "10",
                "--batch-size",
                "16",
                "--steps",
                "1",
                "--n-layer",
                "1",
                "--n-head",
                "2",
                "--n-embd",
                "32",
                "--eval-n",
                "1",
                "--device",
                "cpu",
            ]
        )
    assert info.value.code == 2
    assert "10 training examples cannot fill a batch of 16" in capsys.readouterr().err
    assert not (tmp_path / "diffusion.pt").exists()


# ------------------------------------------------------------------------------------------- sizing


def test_sized_for_fits_the_longest_prompt_with_room_to_spare(tiny_task):
    vocab, layout, examples = tiny_task
    longest = max(len(p) for p, _ in examples)
    cfg = sized_for(TrainConfig(), examples)
    assert cfg.prompt_room % 8 == 0 and longest + 32 <= cfg.prompt_room < longest + 40
    assert cfg.max_len == cfg.prompt_room + len(examples[0][1])
    assert len(examples[0][1]) == layout.length(vocab)
    assert (cfg.n_layer, cfg.batch_size, cfg.lr) == (
        TrainConfig().n_layer,
        TrainConfig().batch_size,
        TrainConfig().lr,
    )
    exact = [
        ([1] * 8, [2, 3]),
        ([1] * 16, [4, 5]),
    ]  # longest prompt 16: 16 + 32 = 48, a multiple of 8
    assert (
        sized_for(TrainConfig(), exact).prompt_room,
        sized_for(TrainConfig(), exact).max_len,
    ) == (48, 50)
    assert sized_for(TrainConfig(), [([1] * 17, [2])]).prompt_room == 56  # 49 rounds up
    with pytest.raises(ValueError, match="at least one"):
        sized_for(TrainConfig(), [])
    with pytest.raises(ValueError, match="same length"):
        sized_for(TrainConfig(), [([1], [2, 3]), ([1], [2])])


# ---------------------------------------------------------------------------------- the loop learns


def _mean(xs):
    return sum(xs) / len(xs)


def test_train_model_learns_a_tiny_task(tiny_task):
    """The real loop, not the model alone: on eight sessions the loss falls tenfold in 200 steps.

    It falls further than that in a few seconds on one thread. With lr=0 (the second run) it does
    not fall at all, so this fails when the optimizer, masks or loss stop reaching the weights.
    """
    vocab, _, examples = tiny_task

    def run(lr, steps):
        cfg = sized_for(
            TrainConfig(
                n_layer=1,
                n_head=2,
                n_embd=32,
                batch_size=4,
                steps=steps,
                warmup=5,
                lr=lr,
                min_lr=lr / 10,
                device="cpu",
                threads=1,
            ),
            examples,
        )
        return train_model(new_model(vocab, cfg), vocab, examples, cfg, progress=False)

    history = run(1e-2, 200)
    first, last = (
        _mean([h["loss"] for h in history[:10]]),
        _mean([h["loss"] for h in history[-10:]]),
    )
    assert first > math.log(vocab.size) / 2  # it starts near chance
    assert last < first / 10, (first, last)
    frozen = run(0.0, 30)
    assert _mean([h["loss"] for h in frozen[-10:]]) > 0.8 * _mean([h["loss"] for h in frozen[:10]])


def test_train_model_decays_matrices_only(tiny_task, monkeypatch):
    """AdamW gets two groups: weight decay on matrices, none on LayerNorm weights and biases."""
    vocab, _, examples = tiny_task
    seen = []
    real = torch.optim.AdamW

    def spy(params, **kwargs):
        params = list(params)
        seen.append(params)
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    cfg = sized_for(
        TrainConfig(
            n_layer=1, n_head=2, n_embd=32, batch_size=4, steps=1, weight_decay=0.05, device="cpu"
        ),
        examples,
    )
    model = new_model(vocab, cfg)
    train_model(model, vocab, examples, cfg, progress=False)
    (groups,) = seen
    decay = {id(p) for g in groups if g["weight_decay"] == 0.05 for p in g["params"]}
    none = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in none} == {n for n, p in model.named_parameters() if p.dim() == 1}
    assert {"wte.weight", "wpe.weight", "blocks.0.attn.qkv.weight"} <= {names[i] for i in decay}
    assert not decay & none and len(decay) + len(none) == len(list(model.parameters()))


# --------------------------------------------------------------------- the shipped checkpoint in CI


def test_a_missing_checkpoint_skips_on_a_laptop_and_fails_in_ci(tmp_path, monkeypatch):
    from conftest import checkpoint_required, shipped_checkpoint_path

    missing = tmp_path / "diffusion.pt"
    for name in ("CI", "UNMASKED_REQUIRE_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not checkpoint_required()
    with pytest.raises(pytest.skip.Exception, match="make checkpoint"):
        shipped_checkpoint_path(missing)
    for name in ("CI", "UNMASKED_REQUIRE_CHECKPOINT"):
        monkeypatch.setenv(name, "true")
        assert checkpoint_required()
        with pytest.raises(pytest.fail.Exception, match="CI needs the shipped checkpoint"):
            shipped_checkpoint_path(missing)
        monkeypatch.setenv(name, "0")
    assert not checkpoint_required()
    missing.write_bytes(b"")
    assert shipped_checkpoint_path(missing) == missing


def test_the_model_writes_the_records_the_generator_makes():
    """One list of record keys: train.FIELDS is the schema's, not a copy that could drift."""
    from unmasked.sessions.schema import SHORT_RECORD_FIELDS
    from unmasked.train import FIELDS

    assert FIELDS is SHORT_RECORD_FIELDS


# ---------------------------------------------------------------- stages and pictures (notebook 03)


def test_training_stages_walk_the_init_from_chain_oldest_first():
    from unmasked.train import training_stages

    first = {"steps": 1}
    second = {"steps": 2, "init_from": {**first, "path": "a.pt"}}
    last = {"steps": 3, "init_from": {**second, "path": "b.pt"}}
    assert [s["steps"] for s in training_stages(last)] == [1, 2, 3]
    assert training_stages(first) == [first]
    assert training_stages(last)[-1] is last


def test_stage_summary_says_steps_time_device_speed_and_files():
    from unmasked.train import stage_summary

    stage = {
        "steps": 5718,
        "train_seconds": 300.2,
        "device": "cuda",
        "accelerator": "NVIDIA H100",
        "tokens_per_s": 1_120_000.4,
        "extra_sessions": 150_000,
        "evaluations": [
            {"method": "one_shot", "n": 500, "accuracy": {"files": 0.5}},
            {"method": "slots", "n": 500, "accuracy": {"files": 0.874}},
        ],
    }
    assert stage_summary(stage) == (
        "5718 steps in 5 min on cuda (NVIDIA H100) (1,120,000 tokens/s, 150,000 of its "
        "sessions generated afresh); files 87.4% with slots on 500"
    )
    assert stage_summary(
        {"steps": 2, "train_seconds": 60, "device": "cpu", "tokens_per_s": 10}
    ) == ("2 steps in 1 min on cpu (10 tokens/s)")


def test_shipped_report_lists_the_stages_training_stages_finds(shipped_checkpoint):
    """diffusion.md (by _origin_lines) and training_stages agree on the chain, oldest first."""
    import json

    from unmasked.train import training_stages

    meta = json.loads((shipped_checkpoint.parent / "diffusion.json").read_text())
    stages = training_stages(meta)
    assert len(stages) >= 2 and stages[-1]["command"] == meta["command"]
    report = (shipped_checkpoint.parent / "diffusion.md").read_text()
    at = [report.index(f"continued `{s['path']}`") for s in stages[:-1]]
    assert at == sorted(at)


def test_files_misses_are_counted_per_number_of_changed_files_and_drawn_stacked():
    from unmasked.sessions import record_to_json
    from unmasked.train import FILES_MISS_KINDS, files_miss_figure, files_misses_by_length

    sessions = generate_short_sessions(60, seed=5)
    records = [s.record for s in sessions]
    texts = [record_to_json(r) for r in records]
    two = next(i for i, r in enumerate(records) if len(r["files"]) == 2)
    swapped = dict(records[two], files=records[two]["files"][::-1])
    texts[two] = record_to_json(swapped)  # right paths, wrong order
    one = next(i for i, r in enumerate(records) if len(r["files"]) == 1)
    texts[one] = "not json at all"
    by_length = files_misses_by_length(texts, records)
    lengths = sorted({len(r["files"]) for r in records})
    assert list(by_length) == lengths
    for n in lengths:
        assert sum(by_length[n].values()) == sum(len(r["files"]) == n for r in records)
        assert list(by_length[n]) == list(FILES_MISS_KINDS)
    assert by_length[2]["right paths, wrong order"] == 1 and by_length[1]["unreadable"] == 1
    assert sum(c["right"] for c in by_length.values()) == len(records) - 2
    fig = files_miss_figure(by_length, title="t")
    assert fig.layout.barmode == "stack" and fig.layout.title.text == "t"
    # only the kinds that occur
    assert [bar.name for bar in fig.data] == ["right", "right paths, wrong order", "unreadable"]
    assert list(fig.data[0].x) == [f"{n} changed file(s)" for n in lengths]
    totals = [sum(bar.y[i] for bar in fig.data) for i in range(len(lengths))]
    assert totals == [sum(len(r["files"]) == n for r in records) for n in lengths]
    with pytest.raises(ValueError, match="as many texts"):
        files_misses_by_length(texts[:-1], records)


# ---------------------------------------------------------------- sittings (--stop-after, --resume)
# Stopping and going on must train exactly the run one sitting would have, or a long run could not
# be split across a machine's idle hours.


class _Stop(Exception):
    pass


def _cfg(examples, **kw):
    base = dict(n_layer=1, n_head=2, n_embd=32, batch_size=4, steps=9, warmup=2, lr=3e-3)
    return sized_for(TrainConfig(**{**base, "device": "cpu", "threads": 1, **kw}), examples)


@pytest.mark.parametrize(
    "kw",
    [
        dict(arch="diffusion", sampler_frac=0.5),  # draws masks: the generator must go on too
        dict(arch="autoregressive", autocast="bfloat16"),
    ],
    ids=["diffusion", "autoregressive-bf16"],
)
def test_a_run_stopped_and_resumed_trains_exactly_as_one_sitting(tiny_task, kw):
    vocab, layout, examples = tiny_task
    cfg = _cfg(examples, **kw)
    torch.manual_seed(0)
    start = new_model(vocab, cfg).state_dict()

    whole = new_model(vocab, cfg)
    whole.load_state_dict(start)
    history = train_model(whole, vocab, examples, cfg, progress=False, layout=layout)
    assert len(history) == cfg.steps

    split = new_model(vocab, cfg)
    split.load_state_dict(start)
    run = TrainRun()

    def stop_at_4(step, loss, elapsed):
        if step == 4:
            raise _Stop

    with pytest.raises(_Stop):
        train_model(
            split, vocab, examples, cfg, progress=False, layout=layout, run=run, on_step=stop_at_4
        )
    saved = copy.deepcopy({"weights": split.state_dict(), "run": run.state()})
    later = new_model(vocab, cfg)  # a new process: nothing but what was saved
    later.load_state_dict(saved["weights"])
    resumed = TrainRun.from_state(saved["run"])
    train_model(later, vocab, examples, cfg, progress=False, layout=layout, run=resumed)

    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in history]
    for name, p in whole.state_dict().items():
        assert torch.equal(p, later.state_dict()[name]), name
    # and the optimizer state is what carried it: without it the same weights train otherwise
    fresh = new_model(vocab, cfg)
    fresh.load_state_dict(saved["weights"])
    no_opt = TrainRun(history=list(saved["run"]["history"]), gen_state=saved["run"]["gen"])
    train_model(fresh, vocab, examples, cfg, progress=False, layout=layout, run=no_opt)
    assert not torch.equal(fresh.wte.weight, whole.wte.weight)


def test_bf16_autocast_trains_and_is_recorded(tiny_task):
    vocab, layout, examples = tiny_task
    cfg = _cfg(examples, arch="autoregressive", autocast="bfloat16", steps=60, lr=1e-2)
    history = train_model(new_model(vocab, cfg), vocab, examples, cfg, progress=False)
    first = sum(h["loss"] for h in history[:5]) / 5
    last = sum(h["loss"] for h in history[-5:]) / 5
    assert last < first / 2, (first, last)
    with pytest.raises(ValueError, match="autocast"):
        TrainConfig(autocast="float16")


@pytest.fixture
def steady_clock(monkeypatch):
    """train.py's clock ticks 10 ms per reading, so that --stop-after 0.05 stops a tiny run after a
    step or two on any host: on a fast laptop, 0.05 real seconds trained all 12 steps."""
    import itertools
    import types

    import unmasked.train

    ticks = itertools.count()
    monkeypatch.setattr(
        unmasked.train, "time", types.SimpleNamespace(perf_counter=lambda: 0.01 * next(ticks))
    )


def _tiny_cli(out, *extra):
    return [
        "--out", str(out), "--limit", "24", "--steps", "12", "--n-layer", "1", "--n-head", "2",
        "--n-embd", "32", "--batch-size", "4", "--warmup", "1", "--eval-n", "2",
        "--eval-every", "0", "--threads", "1", "--device", "cpu", "--arch", "autoregressive",
        "--bf16", *extra,
    ]  # fmt: skip


def test_command_line_sittings_end_where_one_run_does(tmp_path, capsys, steady_clock):
    one, split = tmp_path / "one", tmp_path / "split"
    assert main(_tiny_cli(one)) == 0
    # the first sitting trains nothing (zero seconds), the second at least a step, the last the rest
    assert main(_tiny_cli(split, "--stop-after", "0")) == 0
    assert "sitting 1 stopped at step 0 of 12" in capsys.readouterr().out
    assert not (split / "autoregressive.md").exists()  # no report for a run not yet finished
    for again in (["--stop-after", "5"], ["--seed", "7"]):  # a new start would overwrite it
        with pytest.raises(SystemExit):
            main(_tiny_cli(split, *again))
        assert "holds a run not yet finished" in capsys.readouterr().err
    resume = ["--resume", "--arch", "autoregressive", "--out", str(split)]
    with pytest.raises(SystemExit):  # a sitting cannot change the run
        main([*resume, "--steps", "20"])
    assert "--steps would change the run" in capsys.readouterr().err
    assert main([*resume, "--stop-after", "0.05"]) == 0
    record = tmp_path / "progress.json"
    assert main(["--progress", str(record), "--arch", "autoregressive", "--out", str(split)]) == 0
    mid = json.loads(record.read_text())
    assert 1 <= mid["steps_done"] < 12  # the sitting trains at least one step, not the whole run
    assert mid["steps_total"] == 12 and mid["rows_this_run"] == 4 * mid["steps_done"]
    assert [s["steps"] for s in mid["sittings"]][0] == 0 and len(mid["sittings"]) == 2
    assert mid["autocast"] == "bfloat16" and "--progress" in mid["command"]
    assert mid["device"] == "cpu" and mid["date"]  # what a data/bench/ artifact must name
    # a fresh clone holds only the committed run file, not the checkpoint beside it
    (split / "autoregressive.pt").unlink()
    assert main(["--progress", str(record), "--arch", "autoregressive", "--out", str(split)]) == 0
    assert {k: v for k, v in json.loads(record.read_text()).items() if k != "date"} == {
        k: v for k, v in mid.items() if k != "date"
    }
    # sittings saved before --float32-sitting trained at the run's autocast, and say so
    blob = torch.load(split / "autoregressive.run.pt", weights_only=True)
    for sitting in blob["meta"]["run"]["meta"]["sittings"]:
        sitting.pop("autocast")
    torch.save(blob, split / "autoregressive.run.pt")
    assert main(["--progress", str(record), "--arch", "autoregressive", "--out", str(split)]) == 0
    assert [s["autocast"] for s in json.loads(record.read_text())["sittings"]] == ["bfloat16"] * 2
    assert "float32" not in capsys.readouterr().out
    # a run file saved before it kept the run's meta, with no checkpoint beside it: say which
    meta_copy = blob["meta"]["run"].pop("meta")
    torch.save(blob, split / "autoregressive.run.pt")
    with pytest.raises(SystemExit):
        main(["--progress", "-", "--arch", "autoregressive", "--out", str(split)])
    assert "was saved before run files kept a copy of the run's meta" in capsys.readouterr().err
    blob["meta"]["run"]["meta"] = meta_copy
    torch.save(blob, split / "autoregressive.run.pt")
    # a run saved before sittings kept their own speed gets it back from the history
    for sitting in blob["meta"]["run"]["sittings"]:
        sitting.pop("tokens_per_s")
    torch.save(blob, split / "autoregressive.run.pt")
    assert main(resume) == 0

    a, b = load_checkpoint(one / "autoregressive.pt"), load_checkpoint(split / "autoregressive.pt")
    for name, p in a[0].state_dict().items():
        assert torch.equal(p, b[0].state_dict()[name]), name
    meta = b[3]
    assert meta["steps"] == 12 and "--stop-after" not in meta["command"]
    # the process's clock saw only the last sitting, and the key says so
    assert "total_seconds" in a[3] and "total_seconds" not in meta
    assert 0 < meta["last_sitting_seconds"]
    assert [s["upto_step"] for s in meta["sittings"]][0] == 0 and len(meta["sittings"]) == 3
    assert sum(s["steps"] for s in meta["sittings"]) == 12
    assert meta["sittings"][1]["tokens_per_s"] > 0  # the second sitting trained at least a step
    assert meta["train"]["autocast"] == "bfloat16"
    report = (split / "autoregressive.md").read_text()
    assert "- trained in 3 sittings" in report and "matmuls in bfloat16" in report
    assert json.loads((split / "autoregressive.json").read_text())["sittings"][2][
        "command"
    ].endswith(f"--out {split}")
    assert not (split / "autoregressive.run.pt").exists()  # a finished run leaves none behind
    # make twin-sitting's --progress after the last sitting reads the finished checkpoint
    assert main(["--progress", str(record), "--arch", "autoregressive", "--out", str(split)]) == 0
    done = json.loads(record.read_text())
    assert done["finished"] and done["steps_done"] == done["steps_total"] == 12
    assert len(done["sittings"]) == 3 and done["sittings"][2]["upto_step"] == 12
    with pytest.raises(SystemExit):
        main([*resume, "--stop-after", "1"])
    assert "no checkpoint at" in capsys.readouterr().err


def test_a_time_budget_run_is_always_scored_and_never_told_to_resume(tmp_path, capsys):
    """A run cut by --time-budget is over, not a sitting: it gets its final scores and report."""
    out = tmp_path / "budget"
    assert main(_tiny_cli(out, "--time-budget", "1e-6")) == 0
    printed = capsys.readouterr().out
    assert "--resume" not in printed and "| autoregressive |" in printed
    assert (out / "autoregressive.md").exists() and not (out / "autoregressive.run.pt").exists()


def test_a_float32_sitting_changes_only_its_own_matmuls(tmp_path, capsys, steady_clock):
    """A CPU without native bfloat16 emulates autocast about 10x slower than float32: a sitting
    there may train in float32, and says so, while the run stays a bfloat16 run."""
    one, split = tmp_path / "one", tmp_path / "split"
    assert main(_tiny_cli(one)) == 0
    assert main(_tiny_cli(split, "--stop-after", "0")) == 0
    resume = ["--resume", "--arch", "autoregressive", "--out", str(split)]
    assert main([*resume, "--stop-after", "0.05", "--float32-sitting"]) == 0
    assert "this sitting: matmuls in float32 (the run asks for bfloat16)" in capsys.readouterr().out
    assert main(resume) == 0
    a, b = load_checkpoint(one / "autoregressive.pt"), load_checkpoint(split / "autoregressive.pt")
    meta = b[3]
    assert (
        meta["train"]["autocast"] == "bfloat16"
    )  # the run's, and the next sitting went back to it
    assert [s["autocast"] for s in meta["sittings"]] == ["bfloat16", None, "bfloat16"]
    assert meta["sittings"][1]["steps"] >= 1  # it trained, in float32, so the weights moved apart
    report = (split / "autoregressive.md").read_text()
    assert "but for the sittings with matmuls in float32" in report
    assert report.count("matmuls in float32") == 2  # the caveat and the one sitting
    assert not all(torch.equal(p, b[0].state_dict()[n]) for n, p in a[0].state_dict().items())


def test_progress_names_float32_sittings_only_in_a_bfloat16_run(capsys):
    """A run that never asked for bfloat16 trained every sitting in float32: nothing to flag."""
    base = {"arch": "autoregressive", "steps_done": 2, "steps_total": 4, "rows_all_stages": 8}
    base |= {"train_seconds": 120.0, "tokens_per_s": 10.0, "quick_evals": []}
    sittings = [
        {"date": "d", "steps": 1, "seconds": 60.0, "threads": 2, "autocast": autocast}
        for autocast in ("bfloat16", None)
    ]
    for run_autocast, flagged in (("bfloat16", 1), (None, 0)):
        _report_progress({**base, "autocast": run_autocast, "sittings": sittings}, None, "x")
        assert capsys.readouterr().out.count("matmuls in float32") == flagged


def test_a_float32_sitting_needs_a_run_to_resume(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_tiny_cli(tmp_path, "--float32-sitting"))
    assert "goes with --resume" in capsys.readouterr().err


def test_resume_without_a_saved_run_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--resume", "--arch", "autoregressive", "--out", str(tmp_path)])
    assert "--resume" in capsys.readouterr().err


def test_a_sittings_speed_is_its_own_tokens_over_its_own_seconds():
    """Sitting 2 ran twice as fast as sitting 1: the run's mean would say neither."""
    history = [
        {"tokens": 100, "seconds": 1.0},
        {"tokens": 200, "seconds": 2.0},  # sitting 1 ends: 100 tokens/s
        {"tokens": 400, "seconds": 3.0},
        {"tokens": 600, "seconds": 4.0},  # sitting 2: 400 tokens in 2 s
    ]
    assert _speed_between(history, 0, 2) == 100
    assert _speed_between(history, 2, 4) == 200
    assert _speed_between(history, 4, 4) == 0  # a sitting that trained nothing
