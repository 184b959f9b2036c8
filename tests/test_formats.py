"""Loaders for real agents' logs: each format from a fixture written from its documentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unmasked.compaction import is_paired
from unmasked.sessions import FORMATS, KINDS, Transcript, TranscriptError, load_transcript

FIXTURES = Path(__file__).parent / "fixtures" / "transcripts"
FILES = {
    "openai": "openai_chat.json",
    "anthropic": "anthropic_messages.json",
    "claude_code": "claude_code_session.jsonl",
    "swe_agent": "sweagent_ledger-17.traj",
    "mini_swe_agent": "mini_swe_agent_textkit-4.traj.json",
    "openhands": "openhands_events.json",
    "aider": "todo.aider.chat.history.md",
    "codex": "rollout-2025-09-20T08-00-00-0199a2b4-7c1d-7e20-9f00-3b5c1d2e4f60.jsonl",
}
TASKS = {
    "anthropic": "csv_export.format_row writes dates as 2024-1-5; they must be zero-padded "
    "(2024-01-05).",
    "openai": 'parse_quantity("3 kg") in src/stock/units.py raises ValueError; it should return '
    "3.0. "
    "Fix it and add a test.",
    "claude_code": "load_config() in src/app/config.py crashes with KeyError when settings.toml "
    "has no [server] "
    "table. Default the port to 8080 instead, and cover it with a test.",
    "swe_agent": "format_amount(-0.5) returns '0.50': the minus sign of negative amounts is lost.",
    "mini_swe_agent": 'slugify() crashes with UnicodeEncodeError on accented input such as "Crème '
    'brûlée"; it '
    'should transliterate to "creme-brulee".',
    "openhands": "Running `python weather/cli.py` without an argument crashes. Print a usage line "
    "and exit with "
    "status 2 instead.",
    "aider": "`Store.remove` raises KeyError for an id that does not exist. Make it return False "
    "instead, and "
    "True when it removed something.",
    "codex": "The cart total ignores the discount code. apply_discount in shop/cart.py should "
    "subtract "
    "percent/100 of the subtotal; add a test in tests/test_cart.py.",
}


@pytest.fixture(scope="module", params=sorted(FILES))
def loaded(request) -> tuple[str, Transcript]:
    return request.param, load_transcript(FIXTURES / FILES[request.param])


def test_every_format_has_a_fixture():
    assert set(FILES) == set(FORMATS)


def test_each_fixture_loads_detected_with_its_task_and_paired_calls(loaded):
    fmt, t = loaded
    assert t.format == fmt and isinstance(t, Transcript)
    assert t.task == TASKS[fmt]
    assert len(t.kinds) == len(t.turns) and set(t.kinds) <= set(KINDS)
    assert t.kinds.count("task") == 1 and t.turns[t.kinds.index("task")].role == "user"
    assert is_paired(t.messages())
    assert all(
        t.turns[i].role == "system"
        for i, k in enumerate(t.kinds)
        if k in ("system_prompt", "demonstration", "instructions", "output")
    )
    assert (
        load_transcript(FIXTURES / FILES[fmt], format=fmt).messages() == t.messages()
    )  # named = detected


def test_demonstrations_and_injected_instructions_are_never_the_task():
    swe = load_transcript(FIXTURES / FILES["swe_agent"])
    assert swe.kinds[:3] == ["system_prompt", "demonstration", "task"]
    assert "TimeDelta" in swe.turns[1].content and "TimeDelta" not in swe.task
    codex = load_transcript(FIXTURES / FILES["codex"])
    assert codex.kinds[0] == "instructions" and codex.turns[0].content.startswith(
        "<environment_context>"
    )
    claude = load_transcript(FIXTURES / FILES["claude_code"])
    assert claude.kinds[0] == "instructions" and claude.turns[0].content.startswith("Caveat:")


def test_what_each_format_records_besides_the_messages():
    swe = load_transcript(FIXTURES / FILES["swe_agent"])
    assert swe.final_diff.startswith("diff --git a/ledger/money.py") and swe.root == "/testbed"
    ids = [c.id for t in swe.turns for c in t.tool_calls]
    assert (
        len(ids) == len(set(ids)) and "call_s2~2" in ids
    )  # the log reused call_s2; renamed, results follow
    mini = load_transcript(FIXTURES / FILES["mini_swe_agent"])
    assert list(mini.exit_codes.values()) == [1, 0, 0, 0]
    assert mini.turns[2].tool_calls[0].arguments["command"].startswith("cat <<'EOF' > repro.py")
    assert load_transcript(FIXTURES / FILES["codex"]).exit_codes == {
        "call_c1": 0,
        "call_c2": 0,
        "call_c3": 2,
        "call_c4": 0,
    }
    assert load_transcript(FIXTURES / FILES["claude_code"]).failed == {"toolu_03": True}
    oh = load_transcript(FIXTURES / FILES["openhands"])
    assert oh.exit_codes == {"toolu_h1": 1, "toolu_h3": 0} and oh.root == "/workspace"
    aider = load_transcript(FIXTURES / FILES["aider"])
    assert [c.arguments["command"] for t in aider.turns for c in t.tool_calls] == [
        "python -m pytest tests/test_store.py -q"
    ] * 2
    assert (
        ">>>>>>> REPLACE" in aider.turns[2].content
    )  # an edit block stays in the reply that wrote it


def test_anthropic_messages_with_content_blocks(tmp_path):
    doc = {
        "system": "You are a coding agent.",
        "messages": [
            {"role": "user", "content": "Rename util.py to helpers.py."},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Moving it."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "bash",
                        "input": {"command": "git mv util.py helpers.py"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": ""},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    t = load_transcript(tmp_path / "a.json")
    assert t.format == "anthropic" and [x.role for x in t.turns] == [
        "system",
        "user",
        "assistant",
        "tool",
        "user",
    ]
    assert t.task == "Rename util.py to helpers.py." and t.turns[2].tool_calls[0].name == "bash"


@pytest.mark.parametrize(
    "name,text,match",
    [
        (
            "bad.jsonl",
            '{"type": "session_meta", "payload": {"cwd": "/x"}}\n'
            '{"type": "response_item", "payload": {"type": "function_call_output", "call_id": '
            '"nope", '
            '"output": "x"}}\n',
            r"bad\.jsonl: line 2: field 'tool_call_id'",
        ),
        (
            "cc.jsonl",
            '{"type": "user", "sessionId": "s", "message": {"role": "user", "content": "hi"}}\n'
            '{"type": "assistant", "sessionId": "s", "message": "oops"}\n',
            r"cc\.jsonl: line 2: field 'message'",
        ),
        (
            "x.traj",
            json.dumps({"trajectory": [], "history": [{"role": "robot", "content": "x"}]}),
            r"x\.traj: history\[0\]: field 'role'",
        ),
        (
            "codex.jsonl",
            '{"type": "session_meta", "payload": {"cwd": "/x"}}\n'
            '{"type": "response_item", "payload": {"type": "function_call", "name": "shell", '
            '"call_id": "c", "arguments": "{not json"}}\n',
            r"codex\.jsonl: line 2: field 'arguments'",
        ),
        (
            "oh.json",
            json.dumps([{"id": 0, "source": "user", "action": "message", "args": []}]),
            r"oh\.json: event 0: field 'args'",
        ),
    ],
)
def test_malformed_files_name_the_file_the_line_and_the_field(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(TranscriptError, match=match):
        load_transcript(tmp_path / name)


def test_unknown_format_and_undetectable_files(tmp_path):
    with pytest.raises(ValueError, match="format='yaml' is not known"):
        load_transcript(FIXTURES / FILES["openai"], format="yaml")
    (tmp_path / "odd.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(TranscriptError, match="cannot tell the format"):
        load_transcript(tmp_path / "odd.json")
