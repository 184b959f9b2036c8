"""Structural facts from real agents' logs: exact on every fixture, and the shell parsing behind
them."""

from __future__ import annotations

import pytest
from test_formats import FILES, FIXTURES, TASKS

from unmasked.sessions import load_transcript
from unmasked.trajectory import error_line, shell_edits, trajectory_facts

# (files modified in order of first edit, files in the final diff,
#  failed commands as (command's first line, exit code, error's last line), last action, its result)
EXPECTED = {
    "anthropic": (
        ["/repo/exporter/csv_export.py"],
        [],  # the log names no working directory: the path stays whole
        [("cd /repo && python tests/check_export.py", None, "AssertionError: 2024-1-5,3")],
        "bash: cd /repo && python tests/check_export.py && echo OK",
        "OK",
    ),
    "openai": (
        ["tests/test_units.py", "src/stock/units.py"],
        [],
        [
            (
                "python -m pytest tests/test_units.py -q",
                1,
                "ValueError: could not convert string to float: '3 kg'",
            )
        ],
        "bash: python -m pytest tests/test_units.py -q",
        "2 passed in 0.03s",
    ),
    "claude_code": (
        ["tests/test_config.py", "src/app/config.py", "src/app/cli.py"],
        [],
        [("python -m pytest tests/test_config.py -q", 1, "KeyError: 'server'")],
        "Bash: python -m pytest -q",
        "3 passed in 0.05s",
    ),
    "swe_agent": (
        ["reproduce.py", "ledger/money.py"],
        ["ledger/money.py"],
        [("python /testbed/reproduce.py", None, "AssertionError: 0.50")],
        "submit: {}",
        '+    return f"{sign}{cents // 100}.{cents % 100:02d}"',
    ),
    "mini_swe_agent": (
        ["repro.py", "textkit/slug.py", "tests/test_slug.py"],
        ["textkit/slug.py", "tests/test_slug.py"],
        [
            (
                "cat <<'EOF' > repro.py",
                1,
                "UnicodeEncodeError: 'ascii' codec can't encode character "
                "'\\xe8' in position 2: ordinal not in range(128)",
            )
        ],
        "bash: rm repro.py && echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff "
        "--cached",
        '+    assert slugify("Crème brûlée") == "creme-brulee"',
    ),
    "openhands": (
        ["weather/cli.py"],
        [],
        [("cd /workspace && python weather/cli.py", 1, "IndexError: list index out of range")],
        "execute_bash: cd /workspace && python weather/cli.py; echo status=$?",
        "status=2",
    ),
    "aider": (
        ["todo/store.py", "tests/test_store.py"],
        [],
        [("python -m pytest tests/test_store.py -q", None, "AssertionError: assert False is None")],
        "run: python -m pytest tests/test_store.py -q",
        "2 passed in 0.02s",
    ),
    "codex": (
        ["shop/cart.py", "tests/test_cart.py"],
        [],
        [("pytest -q tests/test_cart.py", 2, "ModuleNotFoundError: No module named 'shop'")],
        "shell: PYTHONPATH=. pytest -q tests/test_cart.py",
        "1 passed in 0.01s",
    ),
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_each_fixture_gives_its_structural_facts_exactly(fmt):
    facts = trajectory_facts(load_transcript(FIXTURES / FILES[fmt]))
    files, diff, failed, last_action, last_result = EXPECTED[fmt]
    assert facts.task == TASKS[fmt]
    assert facts.files_modified == files
    assert facts.final_diff_files == diff and facts.only_in_diff == []
    assert [
        (f.command.split("\n")[0], f.exit_code, f.error) for f in facts.failed_commands
    ] == failed
    assert facts.last_action == last_action and facts.last_result == last_result


def test_a_demonstration_contributes_no_facts():
    t = load_transcript(FIXTURES / FILES["swe_agent"])
    t.turns[
        1
    ].content += (
        "\nmarshmallow/fields.py\n```python\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```"
    )
    assert "marshmallow/fields.py" not in trajectory_facts(t).files_modified


@pytest.mark.parametrize(
    "command,expected",
    [
        ("sed -i 's/a/b/' src/x.py", [("src/x.py", "sed -i")]),
        ("sed -i.bak -e 's/a/b/' -e 's/c/d/' a.py b.py", [("a.py", "sed -i"), ("b.py", "sed -i")]),
        ("sed -n '1,20p' src/x.py", []),
        ("cat > notes.md <<'EOF'\nrm -rf / > gone.txt\nEOF", [("notes.md", "heredoc")]),
        ("echo 'x = 1' >> cfg.py && python -m pytest 2>&1 | tail", [("cfg.py", "echo >")]),
        ("python run.py > /dev/null 2>&1", []),
        ("git mv old.py new.py", [("old.py", "git mv"), ("new.py", "git mv")]),
        ("mv a.txt b.txt; rm -f c.txt", [("a.txt", "mv"), ("b.txt", "mv"), ("c.txt", "rm")]),
        ("printf 'x' | tee out.log", [("out.log", "tee")]),
        ("grep -rn 'x > y' src/", []),
    ],
)
def test_shell_edits(command, expected):
    assert shell_edits(command) == expected


def test_error_line_prefers_the_last_exception_then_a_failure_line():
    assert (
        error_line("Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'a'\n")
        == "KeyError: 'a'"
    )
    assert (
        error_line("E   TypeError: bad\nFAILED t.py::x - TypeError: bad\n1 failed in 0.1s")
        == "TypeError: bad"
    )
    assert error_line("make: *** [all] Error 2\n") == "make: *** [all] Error 2"
    assert (
        error_line("fatal: not a git repository\n[exit code: 128]") == "fatal: not a git repository"
    )


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_the_extractive_summary_keeps_every_modified_file_and_failing_error(fmt):
    from unmasked.compaction import ExtractiveCompactor, compact_context, render

    t = load_transcript(FIXTURES / FILES[fmt])
    facts = trajectory_facts(t)
    summary = ExtractiveCompactor().summarize(t.messages(), t.task, 1_500)
    for path in facts.files_modified:
        assert path in summary, f"{path} lost from the summary:\n{summary}"
    for failure in facts.failed_commands:
        assert failure.error in summary, f"{failure.error!r} lost from the summary:\n{summary}"
    assert "TimeDelta" not in summary  # nothing from the SWE-agent demonstration
    ctx = compact_context(
        t.turns,
        t.task,
        threshold_tokens=1,
        keep_last=1,
        max_recent_tokens=10_000,
        target_ratio=1.0,
        max_summary_tokens=1_500,
    )
    text = "\n".join(m["content"] for m in render(ctx))
    assert all(p in text for p in facts.files_modified) and all(
        f.error in text for f in facts.failed_commands
    )


def test_swe_agent_thought_action_edits_land_on_the_open_file(tmp_path):
    """SWE-agent before function calling: actions are command strings, and `edit` names no file."""
    import json

    history = [
        {
            "role": "system",
            "content": "SETTING: you are an autonomous programmer.",
            "agent": "primary",
        },
        {
            "role": "user",
            "content": "We're currently solving the following issue within our repository. Here's "
            "the "
            "issue text:\nISSUE:\nint_or_none('') raises instead of returning None.\n\n"
            "INSTRUCTIONS:\nNow, you're going to solve this issue on your own.",
            "agent": "primary",
        },
        {
            "role": "assistant",
            "content": "Open the helper.\n```\nopen src/util/convert.py\n```",
            "thought": "Open the helper.",
            "action": "open src/util/convert.py\n",
            "agent": "primary",
        },
        {
            "role": "user",
            "content": "[File: /repo/src/util/convert.py (12 lines total)]\n1:def int_or_none(s):\n"
            "2:    return int(s)\n(Open file: /repo/src/util/convert.py)",
            "agent": "primary",
        },
        {
            "role": "assistant",
            "content": "Guard the empty string.",
            "thought": "Guard the empty string.",
            "action": "edit 2:2\n    return int(s) if s else None\nend_of_edit\n",
            "agent": "primary",
        },
        {"role": "user", "content": "File updated.", "agent": "primary"},
        {
            "role": "assistant",
            "content": "Check it.",
            "thought": "Check it.",
            "action": "python -c \"from util.convert import int_or_none; print(int_or_none(''))\"",
            "agent": "primary",
        },
        {"role": "user", "content": "None", "agent": "primary"},
    ]
    path = tmp_path / "old.traj"
    path.write_text(
        json.dumps(
            {
                "history": history,
                "trajectory": [],
                "info": {"exit_status": "submitted", "submission": ""},
            }
        )
    )
    t = load_transcript(path)
    assert t.format == "swe_agent" and t.task == "int_or_none('') raises instead of returning None."
    facts = trajectory_facts(t)
    assert [(e.path, e.how) for e in facts.edits] == [("src/util/convert.py", "edit (open file)")]
    assert facts.last_result == "None" and facts.failed_commands == []
