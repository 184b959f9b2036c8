"""The multi-model stack of lecture 10: rounds, tool search, validation, the run, the bill, the
surface and the router."""

import dataclasses
import math
import random

import pytest

from unmasked import costs, stack
from unmasked.llm import ChatClient, ChatServer
from unmasked.sessions import generate_session


@pytest.fixture(scope="module")
def session():
    return generate_session(5, 30_000)


@pytest.fixture(scope="module")
def classifier():
    train = [generate_session(100 + i, 8_000) for i in range(10)]
    return stack.train_validator(*stack.validation_examples(train))


@pytest.fixture(scope="module")
def run(session, classifier):
    rounds = stack.planner_rounds(session.turns, 20)
    seen = []

    def answer(body):
        seen.append(body["metadata"]["round"])
        return stack.replay_planner(session, rounds)(body)

    with ChatServer(answer) as server:
        result = stack.run_stack(
            session,
            compactor="anchored",
            validator=classifier,
            client=ChatClient(server.base_url, "replay"),
            threshold_tokens=8_000,
            k=10,
        )
    result.calls_seen = seen
    return result


def test_seed_claims_come_from_the_ledger():
    assert stack.SEED_COST_SAVING == pytest.approx(0.90)
    assert stack.SEED_LATENCY_SAVING == pytest.approx(0.82)


def test_rounds_cover_the_session_and_start_where_the_planner_speaks(session):
    msgs = session.messages()
    rounds = stack.planner_rounds(session.turns, 20)
    assert len(rounds) == 20 and rounds[-1][1] == len(msgs)
    assert all(a < b for a, b in rounds)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(rounds, rounds[1:]))
    for start, _ in rounds:
        assert msgs[start]["role"] == "assistant" and msgs[start - 1]["role"] != "assistant"
    with pytest.raises(ValueError, match="n_rounds"):
        stack.planner_rounds(session.turns, 0)
    with pytest.raises(ValueError, match="fewer than"):
        stack.planner_rounds(session.turns, 10_000)


def test_tool_search_ranks_lines_that_share_the_query_s_words():
    lines = [
        "src/a.py:1: def load_cursor(batch):",
        "src/b.py:9: total = sum(rows)",
        "src/c.py:4: cursor = open_cursor()",
        "docs/x.md:3: nothing here",
    ]
    search = stack.ToolSearch(lines)
    hits = search.search("cursor", 10)
    assert set(hits) == {lines[0], lines[2]}, "only lines with the word, identifiers split at _"
    assert search.search("cursor", 1) in ([lines[0]], [lines[2]])
    assert search.search("unrelated", 5) == []
    with pytest.raises(ValueError, match="k must be"):
        search.search("cursor", 0)
    with pytest.raises(ValueError, match="at least one line"):
        stack.ToolSearch([])


def test_grep_recall_counts_files_not_lines():
    listing = "a.py:1: x_cursor()\na.py:7: y_cursor()\nb.py:2: z_cursor()"
    assert stack.grep_recall(["a.py:1: x_cursor()"], listing) == 0.5
    assert stack.grep_recall(["a.py:7: y", "b.py:2: z"], listing) == 1.0
    assert stack.grep_recall([], "") == 1.0


def test_file_lines_index_reads_and_grep_hits(session):
    lines = stack.file_lines(session.turns)
    assert lines and len(lines) == len(set(lines))
    assert all(line.count(":") >= 2 for line in lines)


@pytest.mark.parametrize(
    ("output", "failed"),
    [
        ("$ pytest\na PASSED\n\n==== 12 passed, 0 failed in 1.0s ====", False),
        ("$ pytest\na FAILED\n==== 11 passed, 1 failed in 1.0s ====", True),
        ('Traceback (most recent call last):\n  File "x"\nValueError: bad', True),
        ("Listening on http://127.0.0.1:9000\nReady.", False),
        ("", False),
    ],
)
def test_split_verdict_reads_the_last_line_and_hides_it(output, failed):
    body, label = stack.split_verdict(output)
    assert label is failed
    last = output.strip().splitlines()[-1] if output.strip() else ""
    assert last not in body.splitlines() or not last


def test_validator_scores_arithmetic():
    scores = stack.validator_scores([True, False, True, False], [True, True, False, False])
    assert scores == dict(accuracy=0.5, failures_caught=0.5, false_alarms=0.5, n=4, n_failed=2)
    with pytest.raises(ValueError):
        stack.validator_scores([True], [True, False])


def test_classifier_beats_no_check_on_the_other_style(classifier):
    test = [generate_session(200 + i, 8_000, style="paraphrased") for i in range(6)]
    bodies, labels = stack.validation_examples(test)
    assert any(labels) and not all(labels)
    learned = stack.validator_scores(classifier.predict(bodies), labels)
    none = stack.validator_scores([False] * len(labels), labels)
    assert learned["accuracy"] > none["accuracy"]
    assert learned["failures_caught"] > 0.5
    with pytest.raises(ValueError, match="both"):
        stack.train_validator(["a", "b"], [False, False])


def test_run_sends_every_round_to_the_planner_and_reads_less(run, session):
    assert run.calls_seen == list(range(20))
    assert len(run.rounds) == 20
    assert all(r.stack_prompt <= r.baseline_prompt for r in run.rounds)
    assert run.rounds[-1].stack_prompt < run.rounds[-1].baseline_prompt
    assert run.compactions >= 1 and 0 < run.summary_ratio < 1
    assert run.stack_input_tokens < run.input_tokens
    assert run.grep_tokens[1] <= run.grep_tokens[0]
    assert run.command_tokens[1] < run.command_tokens[0]
    assert run.output_tokens == sum(r.output_tokens for r in run.rounds) > 0
    assert run.search_recall and all(0 <= x <= 1 for x in run.search_recall)
    assert run.validated
    scores = stack.probe_scores(session, run.final_context)
    assert set(scores) == {p.category for p in session.probes}
    assert all(0 <= v <= 5 for v in scores.values())


def test_the_replay_planner_answers_with_the_recorded_reply(session):
    rounds = stack.planner_rounds(session.turns, 20)
    answer = stack.replay_planner(session, rounds)
    start, stop = rounds[3]
    text = answer({"metadata": {"round": 3}, "messages": []})
    for m in session.messages()[start:stop]:
        if m["role"] == "assistant" and m["content"]:
            assert m["content"] in text


def test_predicted_failures_reach_the_planner_whole(session):
    class AllFailed:
        def predict(self, bodies):
            return [True] * len(bodies)

    whole = stack.run_stack(session, compactor="anchored", validator=AllFailed(), k=10)
    assert whole.command_tokens[0] == whole.command_tokens[1]


def test_the_bill_comes_from_the_calculator(run):
    prices = costs.load_prices()
    results = stack.session_results(run, prices=prices, threshold_tokens=8_000)
    n = len(run.rounds)
    base = costs.simulate_session(
        n,
        round(run.input_tokens / n),
        run.planner,
        output_tokens=round(run.output_tokens / n),
        system_tokens=run.prefix_tokens,
        prices=prices,
        on_overflow="compact",
    )
    assert results["frontier planner alone"].total_cost == pytest.approx(base.total_cost)
    stacked = results["with the stack"]
    assert stacked.compactions >= 1
    assert all(t.compaction_cost == 0 for t in stacked.turns), "the local compactor bills nothing"
    assert all(t.compaction_s == run.compaction_seconds for t in stacked.turns if t.compacted)
    r = stack.reductions(results, run)
    assert 0 < r["cost_reduction"] < 1 and r["cost_with"] < r["cost_without"]
    assert r["latency_reduction"] == pytest.approx(1 - r["latency_with"] / r["latency_without"])
    parts = stack.saving_by_part(run, prices=prices, threshold_tokens=8_000)
    assert parts.loc["the whole stack", "cost_usd"] == pytest.approx(r["cost_with"])
    assert parts.loc["the whole stack", "cost_reduction"] >= parts["cost_reduction"].max() - 1e-9


def test_a_stack_that_changes_nothing_saves_nothing(run):
    same = dataclasses.replace(run, stack_input_tokens=run.input_tokens)
    results = stack.session_results(same, threshold_tokens=10**8)
    assert stack.reductions(results, same)["cost_reduction"] == pytest.approx(0.0)


def test_speed_ratio_note_says_what_was_measured():
    note = stack.speed_ratio_note(
        {"diffusion": 0.5, "autoregressive": 2.0}, "diffusion", "autoregressive"
    )
    assert "4.00x" in note
    assert "not measured" in stack.speed_ratio_note({"anchored": 0.1}, "anchored", "autoregressive")


def test_choose_compactor_prefers_diffusion_and_falls_back(monkeypatch):
    from unmasked.compaction import AnchoredCompactor, registry

    monkeypatch.delitem(registry.REGISTRY, "diffusion", raising=False)
    name, note = stack.choose_compactor()
    assert name == "anchored" and "not registered" in note
    monkeypatch.setitem(registry.REGISTRY, "diffusion", AnchoredCompactor)
    assert stack.choose_compactor()[0] == "diffusion"


def test_compaction_times_are_measured_in_one_run(session):
    times = stack.compaction_times(session, ["observation_masking", "anchored"])
    assert set(times) == {"observation_masking", "anchored"}
    assert all(t > 0 for t in times.values())
    with pytest.raises(ValueError, match="unknown compactor"):
        stack.compaction_times(session, ["no-such-compactor"])


def test_surface_places_every_role_and_the_routing_table_follows_its_rule(run, session):
    prices = costs.load_prices()
    import pandas as pd

    verdicts = pd.DataFrame(
        [
            dict(compactor=c, category=k, mean=m)
            for c, m in (("full", 5.0), ("anchored", 4.0), ("truncation", 1.0))
            for k in ("a", "b")
        ]
    )
    test = [generate_session(300 + i, 8_000, style="paraphrased") for i in range(3)]
    bodies, labels = stack.validation_examples(test)

    class Rule:
        def predict(self, xs):
            return [stack.keyword_rule(x) for x in xs]

    options = (
        stack.planner_options(run, prices, threshold_tokens=8_000)
        + stack.compactor_options(verdicts, {"anchored": 0.1, "truncation": 0.01}, run, prices)
        + stack.search_options(session, (5, 50), prices[stack.PLANNER])
        + stack.validation_options(bodies, labels, Rule(), prices[stack.PLANNER])
        + stack.completion_options(prices)
    )
    assert {o.role for o in options} == set(stack.ROLES)
    assert all(o.dollars >= 0 and o.seconds >= 0 for o in options)
    assert all(o.quality is None or 0 <= o.quality <= 1 for o in options)
    table = stack.routing_table(options).set_index("role")
    assert table.loc["planner", "route_to"] == stack.PLANNER
    assert table.loc["compactor", "route_to"] == "anchored"
    assert table.loc["tool_search", "quality"] >= 0.98 * max(
        o.quality for o in options if o.role == "tool_search"
    )
    assert len(stack.surface_figure(options).data) >= len(stack.ROLES)
    assert len(stack.surface_table(options)) == len(options)
    router = stack.router_options(options)
    assert "planner" not in router and "tool_search" in router


OPTIONS = {
    "a": [
        dict(name="a-cheap", dollars=0.0, seconds=1.0, quality=0.2),
        dict(name="a-mid", dollars=2.0, seconds=2.0, quality=0.7),
        dict(name="a-best", dollars=5.0, seconds=4.0, quality=0.9),
    ],
    "b": [
        dict(name="b-cheap", dollars=0.0, seconds=1.0, quality=0.1),
        dict(name="b-best", dollars=3.0, seconds=1.0, quality=0.8),
    ],
}


def test_route_maximises_quality_within_the_budget():
    assert stack.route(["a", "b"], OPTIONS, dict(dollars=100, seconds=100)) == ["a-best", "b-best"]
    # greedy by quality per dollar takes b-best then cannot afford a-mid; the optimum can
    assert stack.route(["a", "b"], OPTIONS, dict(dollars=5, seconds=100)) == ["a-mid", "b-best"]
    assert stack.route(["a", "b"], OPTIONS, dict(dollars=0, seconds=2)) == ["a-cheap", "b-cheap"]
    with pytest.raises(ValueError, match="no plan fits"):
        stack.route(["a", "b"], OPTIONS, dict(dollars=100, seconds=1.5))
    with pytest.raises(ValueError, match="no options"):
        stack.route(["c"], OPTIONS, dict(dollars=1, seconds=1))
    assert stack.plan_totals(["a", "b"], OPTIONS, ["a-mid", "b-best"]) == pytest.approx(
        dict(dollars=5.0, seconds=3.0, quality=1.5)
    )
    with pytest.raises(ValueError):
        stack.plan_totals(["a"], OPTIONS, ["b-best"])


def test_route_agrees_with_brute_force_on_random_surfaces():
    import itertools

    rng = random.Random(0)
    for _ in range(30):
        options = {
            r: [
                dict(
                    name=f"{r}{i}",
                    dollars=rng.uniform(0, 1),
                    seconds=rng.uniform(0, 1),
                    quality=rng.random(),
                )
                for i in range(rng.randint(1, 4))
            ]
            for r in "xyz"
        }
        subtasks = [rng.choice("xyz") for _ in range(rng.randint(1, 4))]
        budget = dict(dollars=rng.uniform(0, 2), seconds=rng.uniform(0, 2))
        feasible = [
            sum(o["quality"] for o in plan)
            for plan in itertools.product(*(options[s] for s in subtasks))
            if sum(o["dollars"] for o in plan) <= budget["dollars"]
            and sum(o["seconds"] for o in plan) <= budget["seconds"]
        ]
        if not feasible:
            with pytest.raises(ValueError):
                stack.route(subtasks, options, budget)
            continue
        got = stack.plan_totals(subtasks, options, stack.route(subtasks, options, budget))
        assert got["dollars"] <= budget["dollars"] + 1e-9
        assert got["seconds"] <= budget["seconds"] + 1e-9
        assert math.isclose(got["quality"], max(feasible))


def _verdicts(check, route, plan_totals=stack.plan_totals):
    """check.verify on what `route` returns for the check's calls (as the kernel would report)."""
    import json

    from unmasked.grading.spec import Outcome

    funcs = {"route": route, "plan_totals": plan_totals}
    outcomes = []
    for call in check.calls:
        args = json.loads(json.dumps(list(call.args)))
        try:
            outcomes.append(Outcome(value=funcs[call.func](*args), type="list"))
        except Exception as exc:
            name = type(exc).__name__
            outcomes.append(Outcome(error=name, bases=(name, "Exception"), message=str(exc)))
    return check.verify(check.calls, outcomes)


def test_lab10_hidden_checks_pass_the_router_and_fail_the_easy_wrong_answers():
    from unmasked.grading.checks import lab10_router as lab10
    from unmasked.grading.checks import load

    def cheapest(subtasks, options, budget):
        return [
            min(options[r], key=lambda o: (o["dollars"], o["seconds"]))["name"] for r in subtasks
        ]

    def best(subtasks, options, budget):
        return [max(options[r], key=lambda o: o["quality"])["name"] for r in subtasks]

    def greedy(subtasks, options, budget):
        plan = lab10.greedy(subtasks, options, budget)
        if plan is None:
            raise ValueError("nothing fits")
        return plan

    checks = load("lab10_router")
    for seed in range(25):
        built = checks.build(seed)
        for check in built:
            assert _verdicts(check, stack.route) is None, (seed, check.name)
        [tight] = [c for c in built if "tight" in c.name]
        for wrong in (cheapest, best, greedy):
            assert _verdicts(tight, wrong) is not None, (seed, wrong.__name__)
        [impossible] = [c for c in built if "no plan fits" in c.name]
        assert _verdicts(impossible, cheapest) is not None, "returning a plan that does not fit"
