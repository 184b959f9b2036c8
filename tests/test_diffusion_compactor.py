"""The course's own models as compactors: windows, records, the anchored merge, the endpoint."""

from __future__ import annotations

import importlib.util

import pytest
from nbhelpers import ROOT

from unmasked.compaction import (
    COMPACTORS,
    MODEL_COMPACTORS,
    SUMMARY_PREFIX,
    DiffusionCompactor,
    LLMCompactor,
    compact_context,
    get_compactor,
    render,
    to_messages,
)
from unmasked.compaction.diffusion import (
    AutoregressiveCompactor,
    MergedRecord,
    endpoint_handler,
    grounded,
    history_turns,
    parse_record,
    render_record,
    short_session_window,
    split_windows,
    untrained_autoregressive,
)
from unmasked.sessions import ToolCall, Turn
from unmasked.tokens import count_tokens

TASK = "add soft delete to orders in shop-api"


def history(n_rounds: int = 2) -> list[Turn]:
    """A small coding session: reads, an edit, a failing run, decisions and a next step."""
    turns = [
        Turn("system", "You are a coding agent."),
        Turn("user", f"Please {TASK}. The repo is checked out."),
    ]
    for i in range(n_rounds):
        read, edit, run = f"r{i}", f"e{i}", f"t{i}"
        turns += [
            Turn(
                "assistant",
                f"Reading src/models/orders{i}.py.",
                [ToolCall(read, "read_file", {"path": f"src/models/orders{i}.py"})],
            ),
            Turn(
                "tool",
                "\n".join(f"{k}\tdef f{k}(x): return x" for k in range(60)),
                tool_call_id=read,
            ),
            Turn("assistant", "We'll use postgres because we need transactions."),
            Turn(
                "assistant",
                f"Adding the deleted_at column to src/models/orders{i}.py.",
                [ToolCall(edit, "edit_file", {"path": f"src/models/orders{i}.py"})],
            ),
            Turn("tool", f"Edited src/models/orders{i}.py", tool_call_id=edit),
            Turn(
                "assistant",
                "Running the tests.",
                [ToolCall(run, "run_command", {"cmd": "pytest -q"})],
            ),
            Turn(
                "tool",
                "collected 12 items\nKeyError: 'deleted_at'\n1 failed, 11 passed",
                tool_call_id=run,
            ),
        ]
    turns.append(Turn("assistant", "Next step: backfill the deleted_at column."))
    return turns


CACHE: dict = {}  # window prompt -> record ids, so that tests over the same windows pay once


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core machine, two threads that wait on each other made the
    same compaction several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def diffusion(request):
    from conftest import shipped_checkpoint_path

    shipped_checkpoint_path()
    return DiffusionCompactor(cache=CACHE)


@pytest.fixture(scope="module")
def compacted(diffusion):
    """One compaction of the small session, shared by the tests that only read it."""
    diffusion.reset()
    ctx = compact_context(history(), TASK, threshold_tokens=500, keep_last=3, compactor=diffusion)
    return ctx, list(diffusion.last_records)


# ---- registry ---------------------------------------------------------------------------------


def test_registered_by_name_but_off_the_ladder():
    assert MODEL_COMPACTORS == ("diffusion", "autoregressive")
    assert not set(MODEL_COMPACTORS) & set(COMPACTORS)  # notebook 07/08 loops stay model-free
    assert isinstance(get_compactor("diffusion"), DiffusionCompactor)
    assert isinstance(get_compactor("autoregressive"), AutoregressiveCompactor)
    from unmasked import evaluation  # the probe harness takes the names too, not only instances

    assert [type(c) for c in evaluation._check_compactors(["diffusion", "autoregressive"])] == [
        DiffusionCompactor,
        AutoregressiveCompactor,
    ]
    with pytest.raises(ValueError, match="diffusion, autoregressive"):
        get_compactor("difusion")
    with pytest.raises(ValueError, match="tau"):
        DiffusionCompactor(tau=1.5)


# ---- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("turn_tokens", [24, 56])
def test_windows_cover_every_history_turn_once_and_fit(diffusion, turn_tokens):
    _, vocab, _ = diffusion.parts()
    messages = to_messages(history(6))
    messages.insert(3, {"role": "user", "content": SUMMARY_PREFIX + "an earlier summary"})
    room = diffusion.prompt_room()
    windows = split_windows(messages, TASK, vocab, room, turn_tokens=turn_tokens)
    covered = [i for w in windows for i in w.turns]
    assert covered == history_turns(messages)  # in order, each once
    assert 0 not in covered and 3 not in covered  # the system turn and the earlier summary
    assert len(windows) > 1
    for w in windows:
        assert len(w.prompt) <= room and w.prompt[-1] == vocab.sep_id
        assert w.text.startswith(f"user: {TASK}\n")  # every window opens with the request
        assert len(w.text.split("\n")) == len(w.turns) + 1  # one line per turn
    # a turn too long for any window is cut in the middle, never dropped
    huge = [{"role": "tool", "content": "x " * 5000 + "FATAL: disk full", "tool_call_id": "a"}]
    (only,) = split_windows(huge, TASK, vocab, room, turn_tokens=turn_tokens)
    assert only.turns == [0] and "FATAL: disk full" in only.text and " ... " in only.text
    with pytest.raises(ValueError, match="prompt_room"):
        split_windows(messages, TASK, vocab, 40)


# ---- records and the merge --------------------------------------------------------------------


def test_grounding_drops_values_the_window_does_not_contain():
    record = parse_record(
        '{"task": "Add Soft Delete", "database": "mysql", "decision": "use a queue", '
        '"files": ["src/a.py", "src/zz.py", "src/a.py"], "error": "KeyError: \'x\'", '
        '"next_step": "deploy"}'
    )
    text = "user: add   soft delete\ntool: Edited src/a.py\ntool: KeyError: 'x'"
    kept = grounded(record, text)
    assert kept == {
        "task": "Add Soft Delete",  # case and spacing aside
        "database": None,
        "decision": None,
        "files": ["src/a.py"],
        "error": "KeyError: 'x'",
        "next_step": None,
    }
    broken = parse_record('{"task": "a", "database": "redis", "files": ["b.py"')
    assert broken["database"] == "redis" and broken["files"] is None


def test_merge_latest_wins_and_the_summary_fits_its_budget():
    merged = MergedRecord()
    merged.merge({"database": "mysql", "decision": "use cron", "files": ["a.py"], "error": "E1"})
    merged.merge({"database": "postgres", "decision": "use celery", "files": ["b.py", "a.py"]})
    merged.merge({"error": "E1", "next_step": "ship it"})
    assert merged.databases[-1] == "postgres" and merged.decisions[-1] == "use celery"
    assert merged.files == ["b.py", "a.py"] and merged.errors == ["E1"]
    text = render_record(merged, "the task", 500)
    assert "CURRENT: use celery" in text and "SUPERSEDED (by: use celery): use cron" in text
    assert "CURRENT: postgres" in text and "ship it" in text
    for budget in (5, 20, 40):
        assert count_tokens(render_record(merged, "the task", budget)) <= budget


# ---- the diffusion compactor through compact_context ------------------------------------------


def test_plugs_into_compact_context(compacted):
    ctx, records = compacted
    turns = history()
    assert ctx.was_compacted and ctx.compactor == "diffusion"
    assert 0 < ctx.summary_tokens <= ctx.summary_budget
    assert [t.content for t in ctx.recent_turns] == [t.content for t in turns[-3:]]
    assert ctx.summary.startswith("## Task\nCurrent task: " + TASK)
    assert render(ctx)[1]["content"].startswith(SUMMARY_PREFIX)
    assert len(records) >= 2  # the span took more than one window
    for r in records:  # every record was read back, and what was kept is in its window
        assert set(r.record) == {"task", "database", "decision", "files", "error", "next_step"}
        low = " ".join(r.window.text.lower().split())
        for value in [v for k, v in r.kept.items() if k != "files" and v] + r.kept["files"]:
            assert " ".join(value.lower().split()) in low


def test_summary_respects_a_tight_budget_and_keep_last(diffusion):
    turns = history()
    for keep_last, ratio in ((1, 0.02), (5, 0.05)):
        diffusion.reset()
        ctx = compact_context(
            turns,
            TASK,
            threshold_tokens=500,
            keep_last=keep_last,
            target_ratio=ratio,
            compactor=diffusion,
        )
        assert ctx.summary_tokens <= ctx.summary_budget == int(ctx.raw_tokens * ratio)
        assert [t.content for t in ctx.recent_turns] == [t.content for t in turns[-keep_last:]]


def test_deterministic(compacted):
    ctx, records = compacted
    again = DiffusionCompactor()
    ctx2 = compact_context(history(), TASK, threshold_tokens=500, keep_last=3, compactor=again)
    assert ctx2.summary == ctx.summary
    assert [r.text for r in again.last_records] == [r.text for r in records]


def test_records_only_is_the_record_without_the_verbatim_tail(compacted):
    ctx, _ = compacted
    bare = DiffusionCompactor(fill=False, cache=CACHE)
    summary = bare.summarize(to_messages(history())[:-3], TASK, ctx.summary_budget)
    assert "Latest exchanges" not in summary and ctx.summary.startswith(summary)


def test_the_endpoint_serves_the_same_summary_as_the_direct_path(compacted):
    from unmasked.llm import ChatServer

    ctx, records = compacted
    handler = endpoint_handler(DiffusionCompactor())
    with ChatServer(handler) as server:
        client_side = LLMCompactor(base_url=server.base_url, model="diffusion")
        served = compact_context(
            history(), TASK, threshold_tokens=500, keep_last=3, compactor=client_side
        )
    assert served.summary == ctx.summary
    # the server read the same windows and wrote the same records, not just the same summary
    assert [r.window.prompt for r in handler.compactor.last_records] == [
        r.window.prompt for r in records
    ]
    assert [r.text for r in handler.compactor.last_records] == [r.text for r in records]
    assert "<transcript>" in client_side.last_request[1]["content"]  # it really went over HTTP


def test_anchored_state_carries_between_compactions(diffusion):
    diffusion.reset()
    turns = history(3)
    first = compact_context(
        turns[:16], TASK, threshold_tokens=300, keep_last=2, compactor=diffusion
    )
    files_after_first = list(diffusion.merged.files)
    second_turns = [*render(first), *[t.to_message() for t in turns[16:]]]
    compact_context(second_turns, TASK, threshold_tokens=300, keep_last=2, compactor=diffusion)
    assert diffusion.merges == 2
    assert all(f in diffusion.merged.files for f in files_after_first)  # nothing forgotten
    assert all(SUMMARY_PREFIX not in w.text for w in diffusion.last_windows)  # not re-read


# ---- the autoregressive twin ------------------------------------------------------------------


def test_missing_ar_checkpoint_is_a_clear_error(tmp_path):
    from unmasked.checkpoints import CheckpointError

    missing = tmp_path / "autoregressive.pt"
    engine = AutoregressiveCompactor(missing)
    with pytest.raises(CheckpointError, match=r"autoregressive\.pt.*make checkpoint-ar"):
        compact_context(history(), TASK, threshold_tokens=500, compactor=engine)


def test_untrained_twin_writes_records_for_the_same_windows(diffusion):
    twin = untrained_autoregressive(seed=0)
    assert twin.trained is False and twin.parts()[0].config.causal
    turns = history(1)
    ctx = compact_context(turns, TASK, threshold_tokens=300, keep_last=3, compactor=twin)
    assert ctx.compactor == "autoregressive" and ctx.summary_tokens <= ctx.summary_budget
    span = to_messages(turns)[1:-3]
    assert [r.window.prompt for r in twin.last_records] == [
        w.prompt for w in diffusion.windows(span, TASK)
    ]
    _, vocab, layout = twin.parts()
    assert twin.last_passes == layout.length(vocab)  # one batch, one pass per record token
    assert all(set(r.record) == set(r.kept) for r in twin.last_records)


# ---- the model on what it was trained for -----------------------------------------------------


def test_on_held_out_training_style_sessions_the_records_are_right(diffusion):
    """The pipeline (windows, batched sampling, reading the record back) loses nothing the model
    knows: on held-out short sessions, one window each, the records are mostly exact."""
    from unmasked.sessions import generate_short_splits

    _, test = generate_short_splits(n_train=0, n_test=6, seed=0)
    _, vocab, _ = diffusion.parts()
    right = total = 0
    for s in test:
        window = short_session_window(s, vocab, diffusion.prompt_room())
        assert window.text == s.text  # exactly as the model was trained on it
        (record,) = diffusion.write_records([window])
        for key in ("database", "decision", "error", "next_step"):
            right += record.kept[key] == s.record[key]
            total += 1
    assert right / total >= 0.75, f"{right}/{total}"


def _bench_script():
    spec = importlib.util.spec_from_file_location(
        "bench_diffusion_compactor", ROOT / "benchmarks" / "bench_diffusion_compactor.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_merges_style_runs_and_refuses_parts_that_do_not_fit():
    """The 250-session run is one process per style on its own core; the merged file keeps
    every part's command, date and device, takes the speed race from the part that ran it
    (whichever comes first), and refuses a style scored twice, other settings or session
    counts, or two parts that both ran the extras."""
    merge = _bench_script().merge_parts
    part = {"settings": {"tau": 0.9}, "date": "d1", "device": "core 0", "wall_seconds": 5.0}
    plain = {
        **part,
        "command": "python b.py --styles plain",
        "styles": {"plain": {"sessions": ["a", "b"]}},
        "settings": {"tau": 0.9, "fixtures": {"keep_last": 1}},
        "speed": {"ratio_ar_over_diffusion": 0.2},
    }
    para = {
        **part,
        "command": "python b.py --styles paraphrased --no-extras",
        "styles": {"paraphrased": {"sessions": ["a-p", "b-p"]}},
        "wall_seconds": 7.0,
    }
    merged = merge([para, plain])
    assert set(merged["styles"]) == {"plain", "paraphrased"}
    assert merged["speed"]["ratio_ar_over_diffusion"] == 0.2 and "parallel_note" in merged["speed"]
    assert merged["settings"]["fixtures"] == {"keep_last": 1}
    assert merged["command"] == f"{para['command']} & {plain['command']}"
    assert [p["command"] for p in merged["parts"]] == [para["command"], plain["command"]]
    assert merged["wall_seconds"] == 7.0
    with pytest.raises(ValueError, match="same style"):
        merge([para, {**para, "command": "again"}])
    with pytest.raises(ValueError, match="more than one part"):
        merge([plain, {**plain, "styles": {"paraphrased": {"sessions": ["a", "b"]}}}])
    with pytest.raises(ValueError, match="different settings"):
        merge([plain, {**para, "settings": {"tau": 0.5}}])
    with pytest.raises(ValueError, match="session counts"):
        merge([plain, {**para, "styles": {"paraphrased": {"sessions": ["a-p"]}}}])
    with pytest.raises(ValueError, match="nothing"):
        merge([])


def test_a_retrained_twins_scores_replace_only_its_own_rows():
    """--replace-twin: the twin's means, verdicts, seconds, ratios and per-session scores come from
    the part; every other context and the speed race stay; the file records the rescoring; and a
    part whose full-context scores differ (another harness) or that scored other sessions is
    refused."""
    replace = _bench_script().replace_twin
    scores = {
        "full": {"recall": 5.0},
        "extractive": {"recall": 4.9},
        "autoregressive": {"recall": 1.0},
    }
    style = {
        "sessions": ["a", "b"],
        "mean_score": scores,
        "verdicts": {"extractive": {"recall": 0.1}, "autoregressive": {"recall": 4.0}},
        "compact_seconds_per_session": {"full": 0.0, "autoregressive": 1.7},
        "median_ratio": {"full": 1.0, "autoregressive": 11.0},
        "session_scores": {"full": {"recall": [5, 5]}, "autoregressive": {"recall": [1, 1]}},
    }
    header = {"settings": {"tau": 0.9}, "ar_trained": True, "torch": "2"}
    recorded = {**header, "styles": {"plain": style}, "speed": {"ratio_ar_over_diffusion": 0.17}}
    new_style = {
        "sessions": ["a", "b"],
        "mean_score": {"full": {"recall": 5.0}, "autoregressive": {"recall": 3.0}},
        "verdicts": {"autoregressive": {"recall": 2.0}},
        "compact_seconds_per_session": {"full": 0.0, "autoregressive": 1.8},
        "median_ratio": {"full": 1.0, "autoregressive": 10.5},
        "session_scores": {"full": {"recall": [5, 5]}, "autoregressive": {"recall": [3, 3]}},
    }
    part = {
        **header,
        "command": "python b.py --twin-only",
        "date": "d2",
        "styles": {"plain": new_style},
    }
    out = replace(recorded, part)
    got = out["styles"]["plain"]
    assert got["mean_score"]["autoregressive"] == {"recall": 3.0}
    assert got["mean_score"]["extractive"] == {"recall": 4.9}
    assert got["verdicts"] == {"extractive": {"recall": 0.1}, "autoregressive": {"recall": 2.0}}
    assert got["session_scores"]["autoregressive"] == {"recall": [3, 3]}
    assert got["median_ratio"]["autoregressive"] == 10.5 and out["speed"] == recorded["speed"]
    assert recorded["styles"]["plain"]["mean_score"]["autoregressive"] == {"recall": 1.0}
    (entry,) = out["rescored"]
    assert entry["command"] == part["command"] and entry["scored"] == ["plain"]
    assert entry["mean_score_before"] == {"plain": {"recall": 1.0}}
    moved = {**new_style, "mean_score": {**new_style["mean_score"], "full": {"recall": 4.0}}}
    with pytest.raises(ValueError, match="full context"):
        replace(recorded, {**part, "styles": {"plain": moved}})
    with pytest.raises(ValueError, match="other sessions"):
        replace(recorded, {**part, "styles": {"plain": {**new_style, "sessions": ["a"]}}})
    with pytest.raises(ValueError, match="no paraphrased"):
        replace(recorded, {**part, "styles": {"paraphrased": new_style}})
    with pytest.raises(ValueError, match="other settings"):
        replace(recorded, {**part, "settings": {"tau": 0.5}})
    with pytest.raises(ValueError, match="no trained twin"):
        replace(recorded, {**part, "ar_trained": False})


def test_the_recorded_250_session_run_is_whole_and_agrees_with_itself():
    """data/bench/diffusion_compactor_250.json (lecture 10 reads it): every committed session in
    each style, every context's per-session scores, and the means and verdicts recomputed from
    those scores equal the ones it states."""
    import json

    from unmasked import evaluation
    from unmasked.sessions import load_sessions

    result = json.loads((ROOT / "data" / "bench" / "diffusion_compactor_250.json").read_text())
    assert set(result["styles"]) == {"plain", "paraphrased"}
    assert {"command", "date", "device"} <= set(result) and len(result["parts"]) == 2
    ids = [s.id for s in load_sessions()]
    for style, part in result["styles"].items():
        assert part["sessions"] == [i if style == "plain" else f"{i}-{style}" for i in ids]
        assert {"full", "observation_masking", "extractive", "anchored", "diffusion"} <= set(
            part["session_scores"]
        )
        frame = evaluation.session_scores_frame(
            part["session_scores"], part["sessions"], part["median_ratio"]
        )
        for r in evaluation.verdicts(frame).itertuples():
            assert r.mean == pytest.approx(part["mean_score"][r.compactor][r.category], abs=2e-3)
            if r.compactor != "full":
                stated = part["verdicts"][r.compactor][r.category]
                assert r.gap == pytest.approx(stated["gap"], abs=2e-3)
                assert r.within == stated["within_0.3"]
