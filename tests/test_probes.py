"""Probes, the reader, the rubric, the LLM answerer and judge, and the evaluation harness."""

from __future__ import annotations

import inspect

import pandas as pd
import plotly.graph_objects as go
import pytest

from unmasked import evaluation as ev
from unmasked import probes as pr
from unmasked.llm import ChatClient, ChatServer
from unmasked.sessions import PROBE_CATEGORIES, KeyFact, Probe, generate_session, generate_sessions


@pytest.fixture(scope="module")
def sessions():
    return generate_sessions(16, seed=7, min_tokens=20_000, max_tokens=60_000, progress=False)


def _probe(key=("postgres",), stale=(), variants=None):
    variants = variants or {}
    return Probe(
        "factual_recall",
        "Which database?",
        "postgres",
        [KeyFact(k, variants.get(k, [])) for k in key],
        [KeyFact(s, variants.get(s, [])) for s in stale],
    )


def _mean_by_category(sessions, answerer, context=lambda s, ps: s.messages()):
    return ev.reader_means(sessions, context, answerer=answerer).to_dict()


# ---- probes and matching ------------------------------------------------------------------------


def test_make_probes_gives_one_per_category_in_order(sessions):
    probes = pr.make_probes(sessions[0])
    assert [p.category for p in probes] == list(PROBE_CATEGORIES)
    broken = generate_session(3, 5_000)
    broken.probes = broken.probes[:2]
    with pytest.raises(ValueError, match="has no probe for"):
        pr.make_probes(broken)


def test_states_is_case_insensitive_uses_variants_and_whole_words():
    fact = KeyFact("9000", ["port 9000"])
    assert pr.states(fact, "It listens on PORT 9000 now")
    assert not pr.states(fact, "request 19000 took 90001 ms")
    assert pr.states(KeyFact("postgres", ["postgresql"]), "We use PostgreSQL.")
    assert pr.states(KeyFact("src/app.py", ["app.py"]), "edited lib/app.py")


@pytest.mark.parametrize(
    ("answer", "stale"),
    [
        ("The dev server runs on port 3000.", True),
        ("We moved the dev server from port 3000 to 8080.", False),
        ("Port 3000 was taken, so we switched to 8080.", False),
        (
            "- SUPERSEDED (by: we will no longer use port 3000. D...): the server runs on port "
            "3000.",
            False,
        ),
        (
            "Decision: use cursor pagination, because offset queries got slow.",
            False,
        ),  # inside a key fact
        ("Use offset pagination.", True),
    ],
)
def test_stale_fact_counts_only_when_stated_as_current(answer, stale):
    probe = _probe(
        key=("8080", "offset queries got slow"),
        stale=("port 3000", "offset pagination"),
        variants={"offset pagination": ["offset"]},
    )
    assert bool(pr.rubric_score(answer, probe).stale) is stale


def test_rubric_scores_coverage_and_penalises_stale_facts():
    probe = _probe(key=("postgres", "concurrent writes", "8080"), stale=("port 3000",))
    assert pr.rubric_score("", probe).score == 0
    assert pr.rubric_score("postgres for concurrent writes on port 8080", probe).score == 5
    two = pr.rubric_score("Postgres, for concurrent writes.", probe)
    assert two.score == pytest.approx(5 * 2 / 3, abs=1e-3) and two.missing == ["8080"]
    stale = pr.rubric_score(
        "Postgres for concurrent writes, on port 8080. The server runs on port 3000.", probe
    )
    assert stale.score == pytest.approx(5 - pr.STALE_PENALTY) and stale.stale == ["port 3000"]
    assert pr.rubric_score("port 3000", probe).score == 0, "clipped at 0"
    with pytest.raises(ValueError, match="answer must be text"):
        pr.rubric_score(None, probe)


def test_every_reference_answer_scores_full_marks(sessions):
    """The truths are self-consistent: the reference answer states every key fact and no stale
    one."""
    for s in sessions:
        for p in pr.make_probes(s):
            result = pr.rubric_score(p.reference_answer, p)
            assert result.score == 5, (s.id, p.category, result)


# ---- the reader
# -----------------------------------------------------------------------------------


def test_reader_never_gets_the_probe():
    params = list(inspect.signature(pr.Reader.answer).parameters)
    assert params == ["self", "messages", "question"]
    params = list(inspect.signature(pr.LLMAnswerer.__call__).parameters)
    assert params == ["self", "messages", "question"]


def test_reader_on_full_context_scores_at_least_4_5_in_every_category(sessions):
    means = _mean_by_category(sessions, pr.Reader())
    assert all(m >= 4.5 for m in means.values()), means


def test_reader_with_the_facts_removed_scores_low(sessions):
    reader = pr.Reader()
    full = _mean_by_category(sessions, reader)
    redacted = _mean_by_category(sessions, reader, lambda s, ps: pr.redact_facts(s.messages(), ps))
    assert all(m <= 0.5 for m in redacted.values()), redacted
    assert min(full.values()) - max(redacted.values()) >= 4


def test_reader_without_the_planted_turns_scores_low(sessions):
    """Only the turns where facts were planted go; the noise (which names the files) stays."""

    def without_planted(s, ps):
        planted = {f.turn_index for f in s.facts}
        return [
            {**m, "content": "[removed]"} if i in planted else m for i, m in enumerate(s.messages())
        ]

    redacted = _mean_by_category(sessions, pr.Reader(), without_planted)
    assert sum(redacted.values()) / len(redacted) <= 1.5, redacted


def test_reader_prefers_the_latest_statement():
    messages = [
        {"role": "user", "content": "Set up the dev server please."},
        {"role": "assistant", "content": "The dev server runs on port 3000."},
        {"role": "assistant", "content": "Tests pass. Reading the logs now."},
        {
            "role": "assistant",
            "content": "Port 3000 clashes with grafana, so I moved the dev server to port 8080.",
        },
    ]
    answer = pr.Reader().answer(messages, "Which port does the dev server listen on now?")
    assert "8080" in answer and "The dev server runs on port 3000." not in answer
    probe = _probe(key=("8080",), stale=("port 3000",))
    assert pr.rubric_score(answer, probe).score == 5


def test_reader_is_deterministic_and_reads_tool_arguments(sessions):
    s = sessions[0]
    q = pr.make_probes(s)[2].question
    assert pr.Reader().answer(s.messages(), q) == pr.Reader().answer(s.messages(), q)
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "edit_file", "arguments": '{"path": "src/app.py"}'},
            }
        ],
    }
    assert pr.context_lines([call]) == ["edit_file: path=src/app.py"]
    assert "src/app.py" in pr.Reader().answer([call], "Which files did we edit?")


def test_reader_and_context_errors():
    with pytest.raises(ValueError, match="list of chat messages"):
        pr.context_lines("just text")
    with pytest.raises(ValueError, match="question must be"):
        pr.Reader().answer([{"role": "user", "content": "hi"}], " ")
    assert pr.Reader().answer([{"role": "user", "content": "hello"}], "Which database?") == ""


# ---- the LLM answerer and judge, over a real local endpoint
# -----------------------------------------


def test_llm_answerer_over_http_matches_the_reader(sessions):
    s = sessions[1]
    probe = pr.make_probes(s)[0]
    with ChatServer(pr.reader_endpoint) as server:
        answerer = pr.LLMAnswerer(client=ChatClient(server.base_url, "reader"))
        answer = answerer(s.messages(), probe.question)
    assert answer == pr.Reader().answer(s.messages(), probe.question)
    request = pr.build_answer_request(s.messages(), probe.question, max_context_tokens=500)
    assert (
        "cut to fit" in request[1]["content"]
        and probe.reference_answer not in request[1]["content"]
    )


def test_llm_judge_over_http_applies_the_same_rubric(sessions):
    probe = pr.make_probes(sessions[2])[1]
    answers = [probe.reference_answer, "", "No idea."]
    with ChatServer(pr.rubric_endpoint) as server:
        judge = pr.LLMJudge(client=ChatClient(server.base_url, "rubric"))
        for answer in answers:
            judged = judge(answer, probe)
            assert judged.judge == "llm" and judged.score == pr.rubric_score(answer, probe).score


def test_llm_judge_takes_its_score_from_the_reply_not_from_the_rubric(sessions):
    """An endpoint that answers a score the rubric would never give: the judge must return it."""
    probe = pr.make_probes(sessions[2])[1]
    requests = []

    def fixed(body):
        requests.append(body)
        return "SCORE: 1.25\nfixed reply from a test endpoint"

    with ChatServer(fixed) as server:
        judge = pr.LLMJudge(client=ChatClient(server.base_url, "fixed"))
        answers = [probe.reference_answer, "No idea."]
        judged = [judge(answer, probe) for answer in answers]
    rubric = [pr.rubric_score(answer, probe).score for answer in answers]
    assert 1.25 not in rubric and rubric == [5.0, 0.0]
    assert [j.score for j in judged] == [1.25, 1.25]
    assert all(
        j.judge == "llm" and j.rationale.endswith("fixed reply from a test endpoint")
        for j in judged
    )
    sent = "\n".join(m["content"] for m in requests[0]["messages"])
    assert "Apply this rubric exactly" in sent and probe.reference_answer in sent


def test_judge_reply_parsing_and_configuration(monkeypatch):
    assert pr.parse_judge_reply("SCORE: 3.5\nmissed the port") == 3.5
    assert pr.parse_judge_reply("**SCORE:** 9") == 5.0
    with pytest.raises(ValueError, match="SCORE"):
        pr.parse_judge_reply("I think it is fine")
    monkeypatch.delenv("UNMASKED_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert not pr.llm_configured()
    monkeypatch.setenv("UNMASKED_LLM_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("UNMASKED_LLM_MODEL", "m")
    assert pr.llm_configured()


# ---- evaluate and its statistics
# -------------------------------------------------------------------


@pytest.fixture(scope="module")
def table(sessions):
    return ev.evaluate(sessions[:6], ev.DETERMINISTIC, progress=False)


def test_evaluate_returns_a_tidy_table(table):
    for column in ("session", "category", "compactor", "score", "compression_ratio", "seconds"):
        assert column in table.columns
    assert len(table) == 6 * 4 * len(ev.DETERMINISTIC)
    assert table.groupby(["session", "category", "compactor"]).size().max() == 1
    full = table[table["compactor"] == "full"]
    assert (full["compression_ratio"] == 1).all() and (full["score"] >= 4.5).all()
    assert (table[table["compactor"] != "full"]["compression_ratio"] > 2).all()
    assert table["score"].between(0, 5).all()
    assert (
        table[table["compactor"] == "keep_last"]["score"].mean()
        < table[table["compactor"] == "extractive"]["score"].mean()
    )


def test_evaluate_is_deterministic_and_checks_its_input(sessions, table):
    again = ev.evaluate(sessions[:6], ev.DETERMINISTIC, progress=False)
    pd.testing.assert_series_equal(again["score"], table["score"])
    with pytest.raises(ValueError, match="unknown compactor.*diffusion"):
        ev.evaluate(sessions[:1], ["full", "magic"], progress=False)
    with pytest.raises(ValueError, match="non-empty list of Session"):
        ev.evaluate([], ["full"], progress=False)
    with pytest.raises(ValueError, match="distinct"):
        ev.evaluate(sessions[:1], ["full", "full"], progress=False)


def test_a_recorded_runs_session_scores_give_back_the_live_verdicts(table):
    """A benchmark file keeps one mean per session, context and category; read back, it gives
    the verdicts the live table gives, and intervals that resample sessions."""
    ids = list(dict.fromkeys(table["session"]))
    by = table.set_index(["compactor", "category", "session"])["score"]
    recorded = {
        c: {k: [float(by[c, k, i]) for i in ids] for k in PROBE_CATEGORIES}
        for c in dict.fromkeys(table["compactor"])
    }
    ratios = table.groupby("compactor")["compression_ratio"].median().to_dict()
    frame = ev.session_scores_frame(recorded, ids, ratios)
    assert len(frame) == len(table)
    live, back = ev.verdicts(table), ev.verdicts(frame)
    pd.testing.assert_frame_equal(
        live.sort_values(["compactor", "category"]).reset_index(drop=True),
        back.sort_values(["compactor", "category"]).reset_index(drop=True),
        check_exact=False,
    )
    assert set(ev.bootstrap_ci(frame)["n"]) == {len(ids)}
    recorded["full"]["task"] = [5.0]
    with pytest.raises(ValueError, match="1 scores for 6 sessions"):
        ev.session_scores_frame(recorded, ids)
    with pytest.raises(ValueError, match="no scores"):
        ev.session_scores_frame({}, ids)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean(table):
    a, b = ev.bootstrap_ci(table, seed=3), ev.bootstrap_ci(table, seed=3)
    pd.testing.assert_frame_equal(a, b)
    varied = a[a["note"] == ""]
    assert ((varied["lo"] <= varied["mean"] + 1e-9) & (varied["mean"] <= varied["hi"] + 1e-9)).all()
    assert len(a) == 4 * len(ev.DETERMINISTIC)
    constant = pd.DataFrame({"category": ["x"] * 5, "compactor": ["c"] * 5, "score": [2.0] * 5})
    row = ev.bootstrap_ci(constant).iloc[0]
    assert (
        pd.isna(row["lo"])
        and pd.isna(row["hi"])
        and row["note"].startswith("all 5 scores are 2: no interval")
    )
    ceiling = ev.bootstrap_ci(constant.assign(score=5.0)).iloc[0]
    assert "(the ceiling)" in ceiling["note"] and "under 60% of such probes" in ceiling["note"]
    with pytest.raises(ValueError, match="level"):
        ev.bootstrap_ci(table, level=95)


@pytest.mark.parametrize(
    ("score", "full", "within"),
    [(4.7, 5.0, True), (4.69, 5.0, False), (5.0, 4.0, True), (0.0, 0.3, True)],
)
def test_within_margin(score, full, within):
    assert ev.within_margin(score, full) is within


def _synthetic(rows):
    return pd.DataFrame(
        [
            {"session": s, "category": c, "compactor": k, "score": v, "compression_ratio": r}
            for s, c, k, v, r in rows
        ]
    )


def test_verdicts_compare_each_category_with_full_context():
    rows = []
    for i in range(4):
        rows += [
            (f"s{i}", "factual_recall", "full", 5.0, 1.0),
            (f"s{i}", "decision_tracking", "full", 4.0, 1.0),
            (f"s{i}", "factual_recall", "a", 4.8, 10.0),
            (f"s{i}", "decision_tracking", "a", 3.0, 10.0),
        ]
    v = ev.verdicts(_synthetic(rows))
    a = v[v["compactor"] == "a"].set_index("category")
    assert a.loc["factual_recall", "within"] and not a.loc["decision_tracking", "within"]
    assert a.loc["decision_tracking", "gap"] == pytest.approx(1.0)
    grid = ev.verdict_table(_synthetic(rows))
    assert bool(grid.loc["full", "every category"]) and not bool(grid.loc["a", "every category"])
    with pytest.raises(ValueError, match="no 'full' rows"):
        ev.verdicts(_synthetic([r for r in rows if r[2] != "full"]))


def test_largest_ratio_within_finds_the_last_passing_target():
    rows = []
    for target, score in [(2, 5.0), (5, 4.9), (10, 4.75), (20, 4.0), (50, 2.0)]:
        for c in ("factual_recall", "artifact_management"):
            rows.append(
                {
                    "session": "s",
                    "category": c,
                    "compactor": "x",
                    "score": score,
                    "compression_ratio": target * 1.5,
                    "target": float(target),
                }
            )
    for c in ("factual_recall", "artifact_management"):
        rows.append(
            {
                "session": "s",
                "category": c,
                "compactor": "full",
                "score": 5.0,
                "compression_ratio": 1.0,
                "target": 1.0,
            }
        )
    result = ev.largest_ratio_within(pd.DataFrame(rows)).set_index("compactor")
    assert result.loc["x", "largest_target"] == 10 and result.loc["x", "measured_ratio"] == 15
    assert result.loc["x", "targets_within"] == [2.0, 5.0, 10.0]


def test_ratio_sweep_runs_each_target_and_figures_build(sessions):
    sweep = ev.ratio_sweep(
        sessions[:2], ["extractive", "truncation"], ratios=(2, 10), progress=False
    )
    assert set(sweep["target"]) == {1.0, 2.0, 10.0}
    assert len(sweep) == 2 * 4 * (1 + 2 * 2)
    trunc = (
        sweep[sweep["compactor"] == "truncation"].groupby("target")["compression_ratio"].median()
    )
    assert trunc[10.0] > trunc[2.0] > 1
    summary = ev.sweep_summary(sweep)
    assert isinstance(ev.sweep_figure(summary), go.Figure)
    assert len(ev.sweep_figure(summary).data) == 2
    with pytest.raises(ValueError, match="ratios"):
        ev.ratio_sweep(sessions[:1], ["extractive"], ratios=(0.5,), progress=False)


def test_scores_figure_and_failures(table):
    ci = ev.bootstrap_ci(table)
    fig = ev.scores_figure(ci)
    assert isinstance(fig, go.Figure) and len(fig.data) == len(ev.DETERMINISTIC) + 1
    worst = ev.worst_failures(table, n=3)
    assert len(worst) == 3 and (worst["lost"].diff().dropna() <= 0).all()
    assert (worst["compactor"] != "full").all()
    assert isinstance(ev.failures_figure(worst), go.Figure)


# ---- probes without planted truths, on real agents' logs
# ---------------------------------------------


def test_structural_probes_come_from_the_trajectory_and_need_no_planted_truth():
    from test_formats import FILES, FIXTURES

    from unmasked.sessions import load_transcript
    from unmasked.trajectory import trajectory_facts

    for name in FILES.values():
        t = load_transcript(FIXTURES / name)
        facts = trajectory_facts(t)
        probes = pr.probes_for(t)
        assert [p.category for p in probes] == list(pr.STRUCTURAL_CATEGORIES)
        by = {p.category: p for p in probes}
        assert [k.text for k in by["artifact_management"].key_facts] == facts.files_modified
        assert [k.text for k in by["error_recall"].key_facts] == [
            f.error for f in facts.failed_commands
        ]
        assert by["task"].key_facts[0].text in t.task
        assert by["logical_continuation"].key_facts[-1].text == facts.last_result
        assert all(pr.rubric_score(p.reference_answer, p).score == 5.0 for p in probes)


def test_evaluate_runs_on_real_transcripts_and_the_summary_keeps_what_the_structure_says():
    from test_formats import FILES, FIXTURES

    from unmasked.sessions import load_transcript

    transcripts = [load_transcript(FIXTURES / name) for name in FILES.values()]
    # the fixtures are 0.6-2k tokens and the kept turns count against the target: at 0.7 the summary
    # has a few hundred tokens to spend
    df = ev.evaluate(
        transcripts,
        ["full", "truncation", "extractive"],
        keep_last=1,
        target_ratio=0.7,
        progress=False,
    )
    assert set(df["category"]) == set(pr.STRUCTURAL_CATEGORIES)
    ceiling = df.groupby(["compactor", "category"])["ceiling"].mean()
    for category in ("task", "error_recall", "artifact_management"):
        assert ceiling[("full", category)] == 5.0 and ceiling[("extractive", category)] == 5.0
    assert ceiling[("truncation", "task")] < 5.0  # dropping the oldest turns drops the task


def test_ratio_binding_says_when_a_target_does_not_set_the_size():
    rows = [
        {
            "session": "s",
            "category": "c",
            "compactor": k,
            "score": 5.0,
            "compression_ratio": r,
            "target": t,
        }
        for k, t, r in [("full", 1.0, 1.0), ("a", 10.0, 11.0), ("a", 2.0, 15.0), ("b", 50.0, 20.0)]
    ]
    table = ev.ratio_binding(pd.DataFrame(rows)).set_index(["compactor", "target"])
    assert bool(table.loc[("a", 10.0), "binds"]) and not bool(table.loc[("a", 2.0), "binds"])
    assert table.loc[("a", 2.0), "why"].startswith("compresses more than asked")
    assert table.loc[("b", 50.0), "why"].startswith("cannot reach it")


@pytest.mark.parametrize(
    "fmt",
    [
        "openai",
        "anthropic",
        "claude_code",
        "swe_agent",
        "mini_swe_agent",
        "openhands",
        "aider",
        "codex",
    ],
)
def test_the_reader_scores_the_maximum_on_every_structural_probe_of_the_full_context(fmt):
    # a probe that the full context cannot answer is a broken probe or a broken reader, not a
    # compaction loss
    from test_formats import FILES, FIXTURES

    from unmasked.sessions import load_transcript

    t = load_transcript(FIXTURES / FILES[fmt])
    probes = pr.structural_probes(t)
    assert {p.category for p in probes} == set(pr.STRUCTURAL_CATEGORIES)
    answers = pr.Reader().answer_many(t.messages(), [p.question for p in probes])
    scores = {p.category: pr.rubric_score(a, p).score for p, a in zip(probes, answers)}
    assert scores == {c: pr.MAX_SCORE for c in pr.STRUCTURAL_CATEGORIES}


def test_the_reader_reads_the_structure_not_only_the_words():
    messages = [
        {"role": "system", "content": "You solve tasks. Every task is a request from the user."},
        {
            "role": "user",
            "content": "<issue>\nparse_date drops the time zone of ISO strings.\n</issue>",
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "pytest -q"}'},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "a",
            "content": 'Traceback (most recent call last):\n  File "t.py"\n'
            "ZoneInfoNotFoundError: 'UTC+2'",
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "b", "type": "function", "function": {"name": "submit", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "b", "content": "diff --git a/d.py b/d.py\n+    keep tz"},
    ]
    reader = pr.Reader()
    # the request, though no line of it says "task"
    assert "parse_date drops the time zone" in reader(
        messages, "What is the task we are working on?"
    )
    # the exception line of the failed call, though its only "error" is inside an identifier
    assert "ZoneInfoNotFoundError: 'UTC+2'" in reader(
        messages, "Which commands failed, and with what error?"
    )
    # a call without arguments is an action too, and the newest result is the one asked for
    last = reader(messages, "What was the last command, and what did it print?")
    assert "submit" in last.splitlines() and "+    keep tz" in last


def test_the_task_probe_asks_for_the_tasks_first_statement_not_its_heading():
    from unmasked.trajectory import TrajectoryFacts

    facts = TrajectoryFacts(
        task="# Bug\n<issue>\nparse_date drops the zone. It should keep it.\n</issue>"
    )
    assert pr.structural_probes(None, facts)[0].key_facts[0].text == "parse_date drops the zone."


def test_a_value_said_again_later_replaces_the_old_one():
    messages = [
        {"role": "tool", "tool_call_id": "a", "content": "Listening on http://127.0.0.1:8000"},
        {"role": "assistant", "content": "Something else entirely happened in between."},
        {"role": "tool", "tool_call_id": "b", "content": "Listening on http://127.0.0.1:5000"},
    ]
    answer = pr.Reader()(messages, "Where is the app listening now?")
    assert ":5000" in answer and ":8000" not in answer


def test_the_reader_has_no_thesaurus_of_the_probe_questions():
    # the groups map question words to parts of the structure; none maps a question word to session
    # vocabulary
    assert not hasattr(pr, "SYNONYMS")
    for phrase in (
        "simplest option",
        "does not work here",
        "Decision:",
        "Change of plan",
        "Next step:",
        "Done: ... That part is finished.",
        "let me first try",
        "Abandoning that approach",
    ):
        words = [w for w in pr.terms(phrase) if w != pr.stem("change")]  # "change" is anyone's word
        assert not any(w in pr._DISCOURSE for w in words), phrase
