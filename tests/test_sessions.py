"""Tests for unmasked.sessions: planted truths, lengths, storage, the short corpus, the loader."""

from __future__ import annotations

import gzip
import hashlib
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmasked.sessions import (
    MAX_SHORT_TOKENS,
    PROBE_CATEGORIES,
    ROLES,
    SHORT_RECORD_FIELDS,
    KeyFact,
    Session,
    Turn,
    generate_session,
    generate_sessions,
    generate_short_sessions,
    load_sessions,
    load_short_sessions,
    load_transcript,
    record_fields,
    record_to_json,
)
from unmasked.sessions.__main__ import main as cli_main
from unmasked.sessions.long import MIN_TARGET_TOKENS, generate_session_range
from unmasked.sessions.short import generate_short_splits
from unmasked.sessions.store import (
    DEFAULT_DIR,
    LONG_PATTERN,
    LONG_SHARD,
    MANIFEST,
    SHORT_FILES,
    long_shard_name,
    write_jsonl_gz,
)
from unmasked.tokens import count_tokens

SESSION_ARGS = st.tuples(st.integers(0, 10**6), st.integers(MIN_TARGET_TOKENS, 60_000))
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def first(text: str, needle: str) -> int:
    i = text.lower().find(needle.lower())
    assert i >= 0, f"{needle!r} not found"
    return i


# ---- long sessions -------------------------------------------------------------------------------


@FAST
@given(SESSION_ARGS)
def test_every_key_and_stale_fact_appears_in_the_text(args):
    s = generate_session(*args)
    text = s.text().lower()
    assert [p.category for p in s.probes] == list(PROBE_CATEGORIES)
    for probe in s.probes:
        assert probe.key_facts
        for fact in probe.key_facts + probe.stale_facts:
            assert fact.text.lower() in text, (probe.category, fact.text)
        for fact in probe.key_facts:  # the reference answer states every key fact
            assert fact.stated_in(probe.reference_answer), (probe.category, fact.text)
    for f in s.facts:
        assert f.text in s.turns[f.turn_index].content


@FAST
@given(SESSION_ARGS)
def test_stale_facts_come_before_their_replacement(args):
    s = generate_session(*args)
    text = s.text()
    replacing = [f for f in s.facts if f.replaces]
    assert (
        len(replacing) >= 4
    )  # port, reversed decision, abandoned approach, next step, reverted file
    stale = {f.text: f for f in s.facts if f.stale}
    for f in replacing:
        old = stale[f.replaces]
        assert old.turn_index < f.turn_index
        assert first(text, f.replaces) < first(text, f.text)
    for (
        probe
    ) in s.probes:  # every stale fact a probe lists is planted as stale, earlier than a key fact
        for sf in probe.stale_facts:
            assert any(
                sf.text.lower() in old.lower() or old.lower() in sf.text.lower() for old in stale
            )


@FAST
@given(SESSION_ARGS)
def test_length_within_5_percent_and_counted_exactly(args):
    seed, target = args
    s = generate_session(seed, target)
    assert s.n_tokens == count_tokens(s.messages())
    assert abs(s.n_tokens - target) <= 0.05 * target, (s.n_tokens, target)


def test_record_values_appear_verbatim_and_positions_cover_the_session():
    for seed, target in ((1, 5_000), (2, 30_000), (3, 120_000)):
        s = generate_session(seed, target)
        text = s.text()
        rec = s.record
        assert list(rec) == [
            "task",
            "decisions",
            "files_modified",
            "errors",
            "current_state",
            "next_step",
        ]
        values = [rec["task"], rec["current_state"], rec["next_step"], *rec["errors"]]
        values += [v for d in rec["decisions"] for v in (d["decision"], d["reason"])]
        values += [v for f in rec["files_modified"] for v in (f["path"], f["change"])]
        for v in values:
            assert v in text, v
        assert {f.position for f in s.facts} == {"early", "middle", "late"}
        assert {f.category for f in s.facts} == set(PROBE_CATEGORIES)
        reverted = next(f for f in s.facts if f.text.startswith("Reverted "))
        assert reverted.text.removeprefix("Reverted ") not in [
            f["path"] for f in rec["files_modified"]
        ]
        # noise dominates: in the dataset's range, planted-fact turns hold a small share of the
        # tokens
        if target >= 20_000:
            planted = sum(count_tokens([s.turns[i]]) for i in {f.turn_index for f in s.facts})
            assert planted < 0.1 * s.n_tokens


def test_turns_have_the_chat_api_shape():
    s = generate_session(7, 8_000)
    calls = {}
    for t in s.turns:
        assert t.role in ROLES
        m = t.to_message()
        for c in m.get("tool_calls", []):
            assert c["type"] == "function" and isinstance(
                json.loads(c["function"]["arguments"]), dict
            )
            calls[c["id"]] = c["function"]["name"]
        if t.role == "tool":
            assert t.tool_call_id in calls  # every result answers an earlier call
        else:
            assert t.tool_call_id is None
    assert sum(t.role == "tool" for t in s.turns) >= 5


def test_generation_is_seeded_and_round_trips():
    a, b = generate_session(11, 6_000), generate_session(11, 6_000)
    assert a.to_dict() == b.to_dict()
    assert generate_session(12, 6_000).to_dict() != a.to_dict()
    again = Session.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again == a


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_bad_seed_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="seed"):
        generate_session(bad, 5_000)


@pytest.mark.parametrize("bad", [10, MIN_TARGET_TOKENS - 1, 10**7])
def test_bad_target_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="target_tokens"):
        generate_session(1, bad)


def test_generate_sessions_spreads_lengths():
    ss = generate_sessions(5, seed=3, min_tokens=4_000, max_tokens=9_000, progress=False)
    assert len({s.id for s in ss}) == 5
    assert min(s.n_tokens for s in ss) < 4_300 and max(s.n_tokens for s in ss) > 8_500


# ---- storage -------------------------------------------------------------------------------------


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_regenerates_byte_identical_files(tmp_path):
    args = [
        "--n",
        "3",
        "--seed",
        "5",
        "--min-tokens",
        "4000",
        "--max-tokens",
        "6000",
        "--short-train",
        "50",
        "--short-test",
        "10",
        "--no-progress",
    ]
    cli_main([*args, "--out", str(tmp_path / "a")])
    cli_main([*args, "--out", str(tmp_path / "b")])
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["manifest.json", long_shard_name(0), *sorted(SHORT_FILES.values())]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    header = json.loads(gzip.open(tmp_path / "a" / long_shard_name(0), "rt").readline())
    assert header["schema_version"] == 1 and header["count"] == 3
    loaded = load_sessions(tmp_path / "a")
    assert [s.to_dict() for s in loaded] == [
        s.to_dict() for s in generate_sessions(3, 5, 4000, 6000, False)
    ]


def test_committed_files_match_their_manifest_and_a_fresh_generation(tmp_path):
    manifest = json.loads((DEFAULT_DIR / MANIFEST).read_text())
    assert manifest["schema_version"] == 1
    for name, entry in manifest["files"].items():
        assert _sha(DEFAULT_DIR / name) == entry["sha256"], f"{name} differs from its manifest"
    long = manifest["long"]
    n, seed = long["count"], manifest["seed"]
    shards = sorted(p.name for p in DEFAULT_DIR.glob(LONG_PATTERN))
    assert len(shards) == -(-n // LONG_SHARD)
    # Regenerating the first shard byte for byte, a few sessions of the others, and both short
    # splits keeps this test to seconds; the CLI test above shows the writer is deterministic.
    ss = generate_session_range(n, seed, long["min_tokens"], long["max_tokens"], 0, LONG_SHARD)
    sha = write_jsonl_gz(tmp_path / "x.jsonl.gz", "long", (s.to_dict() for s in ss))
    assert sha == manifest["files"][long_shard_name(0)]["sha256"], (
        "shard 0 is not what the code generates"
    )
    last_shard = load_sessions(DEFAULT_DIR / long_shard_name(len(shards) - 1))
    assert (
        sum(
            entry["count"]
            for name, entry in manifest["files"].items()
            if name.startswith("sessions-")
        )
        == n
    )
    for i in (n - len(last_shard), n - 1):
        fresh = generate_session_range(n, seed, long["min_tokens"], long["max_tokens"], i, i + 1)[0]
        assert fresh.to_dict() == last_shard[i - (n - len(last_shard))].to_dict(), (
            f"session {i} differs"
        )
    counts = {split: manifest["files"][f]["count"] for split, f in SHORT_FILES.items()}
    train, test = generate_short_splits(counts["train"], counts["test"], seed)
    for split, rows in (("train", train), ("test", test)):
        sha = write_jsonl_gz(
            tmp_path / "s.jsonl.gz",
            "short",
            ({"id": s.id, "text": s.text, "record": s.record} for s in rows),
        )
        assert sha == manifest["files"][SHORT_FILES[split]]["sha256"], split


def test_committed_long_sessions_load_and_span_the_range():
    ss = load_sessions(limit=60)  # crosses a shard boundary
    assert len(ss) == 60 and len({s.id for s in ss}) == 60
    assert all(17_000 < s.n_tokens < 160_000 for s in ss)
    assert load_sessions("data/sessions", limit=1)[0].to_dict() == ss[0].to_dict()


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        load_sessions(tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_short_sessions("validation")
    with pytest.raises(ValueError, match="limit"):
        load_sessions(limit=-1)
    bad = tmp_path / "old.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write(
            json.dumps(
                {"schema": "unmasked.sessions", "schema_version": 0, "kind": "long", "count": 0}
            )
            + "\n"
        )
    with pytest.raises(ValueError, match="schema_version"):
        load_sessions(bad)


# ---- short corpus --------------------------------------------------------------------------------


def _check_short(s):
    assert tuple(s.record) == SHORT_RECORD_FIELDS
    assert isinstance(s.record["files"], list) and s.record["files"]
    for key, value in s.record.items():
        for part in value if key == "files" else [value]:
            assert isinstance(part, str) and part and part in s.text, (key, part)
    assert count_tokens(s.text) <= MAX_SHORT_TOKENS
    assert json.loads(record_to_json(s.record)) == s.record
    assert record_fields(s.record)["files"] == ", ".join(s.record["files"])


def test_short_sessions_are_short_and_copyable():
    ss = generate_short_sessions(400, seed=9)
    for s in ss:
        _check_short(s)
    assert generate_short_sessions(5, seed=9)[:5] == ss[:5]
    assert (
        generate_short_sessions(3, seed=9, start=397) == ss[397:]
    )  # a corpus extends without regenerating
    with pytest.raises(ValueError, match="start"):
        generate_short_sessions(3, seed=9, start=-1)
    # not trivial: distractors are present in a good share of sessions
    assert (
        sum("rejected" in s.text or "ruled it out" in s.text or "Not " in s.text for s in ss) > 100
    )
    assert len({s.record["database"] for s in ss}) >= 8


def test_committed_short_corpus():
    train = load_short_sessions("train")
    test = load_short_sessions("test")
    assert len(train) >= 20_000 and len(test) >= 500
    assert not {s.text for s in test} & {s.text for s in train}  # held out
    for s in random.Random(0).sample(train, 300) + test[:200]:
        _check_short(s)
    assert load_short_sessions("test", limit=3) == test[:3]


def test_record_to_json_rejects_wrong_keys():
    with pytest.raises(ValueError, match="missing"):
        record_to_json({"task": "x"})


# ---- the transcript loader -----------------------------------------------------------------------

GOOD = [
    {"role": "system", "content": "You are a coding agent."},
    {
        "role": "user",
        "content": [{"type": "text", "text": "Fix the bug"}, {"type": "text", "text": "in app.py"}],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "read_file", "arguments": '{"path": "app.py"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "read_file", "content": "print('hi')"},
    {"role": "assistant", "content": "Done."},
]


def test_load_transcript_from_list_json_and_jsonl(tmp_path):
    s = load_transcript(GOOD)
    assert [t.role for t in s.turns] == [m["role"] for m in GOOD]
    assert s.turns[1].content == "Fix the bug\nin app.py"
    assert (
        s.turns[2].tool_calls[0].arguments == {"path": "app.py"} and s.turns[3].tool_call_id == "c1"
    )
    assert s.n_tokens == count_tokens(s.messages()) and s.task.startswith("Fix the bug")
    (tmp_path / "t.json").write_text(json.dumps({"id": "mine", "messages": GOOD}))
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(m) for m in GOOD) + "\n\n")
    assert load_transcript(tmp_path / "t.json").id == "mine"
    assert load_transcript(str(tmp_path / "t.jsonl")).messages() == s.messages()
    gen = generate_session(4, 4_500)  # a generated session loads back unchanged
    assert [t.to_message() for t in load_transcript(gen.messages()).turns] == gen.messages()


BAD = {
    "missing role": ([{"content": "hi"}], "no 'role'"),
    "unknown role": ([{"role": "robot", "content": "hi"}], "unknown role 'robot'"),
    "developer role": ([{"role": "developer", "content": "hi"}], "use 'system'"),
    "tool result with no call": (
        [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "c9", "content": "out"},
        ],
        "no earlier assistant message made that call",
    ),
    "tool result with no id": ([{"role": "tool", "content": "out"}], "no tool_call_id"),
    "image content": (
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        "only text",
    ),
    "number content": ([{"role": "user", "content": 3}], "content of type int"),
    "missing content": ([{"role": "user"}], "no 'content'"),
    "null content": ([{"role": "user", "content": None}], "content null"),
    "unknown field": ([{"role": "user", "content": "x", "audio": {}}], "would be lost"),
    "tool calls on user": (
        [
            {"role": "user", "content": "x", "tool_calls": []},
        ],
        None,
    ),
    "bad arguments": (
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{not json"},
                    }
                ],
            }
        ],
        "not JSON",
    ),
    "duplicate call id": (
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]
                * 2,
            }
        ],
        "already used",
    ),
    "not a dict": (["hello"], "not an object"),
    "empty": ([], "no messages"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_load_transcript_rejects_malformed_input(name):
    messages, match = BAD[name]
    if match is None:  # an empty tool_calls list on a user message carries nothing: accepted
        assert load_transcript(messages).turns[0].role == "user"
        return
    with pytest.raises(ValueError, match=match):
        load_transcript(messages)


def test_load_transcript_file_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_transcript(tmp_path / "missing.json")
    (tmp_path / "bad.jsonl").write_text('{"role": "user", "content": "x"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        load_transcript(tmp_path / "bad.jsonl")
    (tmp_path / "bad.json").write_text('{"role": "user"')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_transcript(tmp_path / "bad.json")
    (tmp_path / "obj.json").write_text(json.dumps({"messages": GOOD, "extra": 1}))
    with pytest.raises(ValueError, match="extra"):
        load_transcript(tmp_path / "obj.json")
    with pytest.raises(ValueError, match="list of message dicts"):
        load_transcript(42)


def test_keyfact_matching_is_case_insensitive():
    k = KeyFact("Postgres", ["postgresql"])
    assert k.stated_in("we use POSTGRESQL") and not k.stated_in("we use mysql")
    assert Turn("user", "x").to_message() == {"role": "user", "content": "x"}


# ---- anatomy -------------------------------------------------------------------------------------


def test_token_breakdown_adds_up_and_tools_dominate():
    from unmasked.sessions import fact_table, plot_fact_map, plot_token_breakdown, token_breakdown

    s = generate_session(21, 25_000)
    rows = token_breakdown(s)
    assert sum(r["tokens"] for r in rows) + 3 == s.n_tokens  # + the reply priming
    assert sum(r["turns"] for r in rows) == len(s.turns)
    assert abs(sum(r["share"] for r in rows) - 1) < 1e-9
    assert sum(r["share"] for r in rows if r["kind"].startswith("tool")) > 0.8
    facts = fact_table(s)
    assert len(facts) == len(s.facts) and all(0 < f["share"] < 1 for f in facts)
    for f in facts:
        expected = "early" if f["share"] < 1 / 3 else "middle" if f["share"] < 2 / 3 else "late"
        assert f["position"] == expected
    assert len(plot_token_breakdown([s, generate_session(22, 5_000)]).data) == 1
    fig = plot_fact_map(s)
    assert sum(len(tr.x) for tr in fig.data if tr.mode == "markers") == len(s.facts)
    with pytest.raises(ValueError):
        token_breakdown([])


def test_load_transcript_accepts_a_bom_and_names_the_file_for_bytes_that_are_not_utf8(tmp_path):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(m) for m in GOOD).encode())
    assert load_transcript(bom).messages() == load_transcript(GOOD).messages()
    latin = tmp_path / "latin1.json"
    latin.write_bytes(
        json.dumps([{"role": "user", "content": "caf\u00e9"}], ensure_ascii=False).encode("latin-1")
    )
    with pytest.raises(
        ValueError, match=r"latin1\.json: not UTF-8 text \(byte 0xe9 at offset \d+, line 1\)"
    ):
        load_transcript(latin)


# ---- the paraphrased style
# ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 5])
def test_the_paraphrased_style_plants_the_same_facts_in_other_sentences(seed):
    plain = generate_session(seed, 12_000)
    para = generate_session(seed, 12_000, style="paraphrased")
    assert (
        para.probes == plain.probes and para.record == plain.record
    )  # the same truths, word for word
    assert para.id.endswith("-paraphrased") and abs(para.n_tokens - 12_000) < 600
    text = "\n".join(t.content for t in para.turns)
    for probe in para.probes:
        for fact in probe.key_facts:
            assert fact.stated_in(text), fact.text
    for phrase in (
        "Decision:",
        "Where things stand",
        "Next step:",
        "Change of plan",
        "it is the simplest option",
        "Edited ",
        "Reverted ",
        "The failure is",
        "I'll edit",
    ):
        assert phrase not in text, phrase
    edits = [c for t in para.turns for c in t.tool_calls if c.name == "edit_file"]
    assert edits == []  # files are changed only through commands
    assert (
        generate_session(seed, 12_000).to_dict() == plain.to_dict()
    )  # plain is unchanged by the option


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="style must be one of plain, paraphrased"):
        generate_session(1, 5_000, style="fancy")


def test_the_command_line_writes_the_paraphrased_style_to_its_own_folder(tmp_path, capsys):
    from unmasked.sessions.__main__ import main
    from unmasked.sessions.store import load_sessions as load

    main(
        [
            "--n",
            "1",
            "--style",
            "paraphrased",
            "--out",
            str(tmp_path),
            "--short-train",
            "0",
            "--min-tokens",
            "5000",
            "--max-tokens",
            "5000",
            "--no-progress",
        ]
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["style"] == "paraphrased"
    assert load(tmp_path)[0].id.endswith("-paraphrased")
