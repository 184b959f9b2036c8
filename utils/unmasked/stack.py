"""The multi-model agent stack of lecture 10: a frontier planner, with local parts doing the
utility work around it, run over a simulated 20-turn coding session.

The seed's principle is "fast, cheap models for utility work, expensive models for reasoning".
Here each part of that runs for real on a generated session (unmasked.sessions):

- the planner, priced as a frontier API from data/prices.json. Offline it is a stand-in served
  over real HTTP by `unmasked.llm.ChatServer` that replays the session's recorded replies (the
  session goes on as recorded either way, so both runs read the same work); with an endpoint
  configured (UNMASKED_LLM_BASE_URL, UNMASKED_LLM_MODEL) the same client code calls it;
- the compactor, any name in unmasked.compaction's registry, run by `compact_context` whenever
  the planner's history passes the threshold (`choose_compactor` prefers "diffusion");
- tool search: a TF-IDF retriever (scikit-learn) over the lines of the files the session shows,
  answering the planner's grep calls with its top k lines instead of the whole listing;
- validation: a logistic-regression classifier over a command's output that predicts whether it
  failed; an output it calls a success reaches the planner cut to its head and tail.

Each part shrinks what the frontier planner reads. The cost and latency of the session with and
without the stack come from `unmasked.costs.simulate_session` (caching on, the planner's tier's
reference deployment), fed with the shape the real run measured. `surface` places every option
for every role at (seconds, dollars, quality); `route` is the lab's router (a reference answer).
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from unmasked import costs
from unmasked import latency as _lat
from unmasked.tokens import count_tokens

PLANNER = costs.SEED_ASSUMPTIONS["frontier_model"]  # the seed's named frontier model
PREFERRED_COMPACTOR = "diffusion"
FALLBACK_COMPACTOR = "anchored"
N_ROUNDS = 20  # the seed's session: 20 turns
ROLES = ("planner", "compactor", "tool_search", "code_completion", "validation")


def _seed_claim(label: str) -> float:
    """The seed's figure for a ledger row, as the midpoint of the interval the ledger judges."""
    for claim, claims, *_ in costs._ledger_rows(costs.SEED_ASSUMPTIONS):
        if claim == label:
            return round((claims[0].lo + claims[0].hi) / 2, 6)
    raise KeyError(label)


SEED_COST_SAVING = _seed_claim("90% less cost with compaction")
SEED_LATENCY_SAVING = _seed_claim("82% less latency with compaction")


def is_registered(name: str) -> bool:
    """Whether `compact_context(..., compactor=name)` knows the name."""
    from unmasked.compaction import registry

    return name in registry.REGISTRY


def compaction_times(session, names: Sequence[str], keep_last: int = 3) -> dict[str, float]:
    """Seconds of one forced compaction of `session` by each compactor, in one run; a model
    compactor's checkpoint is loaded first, so that loading is not counted. A compactor that
    cannot run (a missing checkpoint) raises its own error."""
    import warnings

    from unmasked.compaction import compact_context, get_compactor

    out = {}
    for name in names:
        engine = get_compactor(name)
        if hasattr(engine, "parts"):  # a model compactor loads its checkpoint on first use
            engine.parts()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # forced compaction: the recent turns are cut, as meant
            ctx = compact_context(
                session.turns,
                session.task,
                threshold_tokens=1,
                keep_last=keep_last,
                compactor=engine,
                max_recent_tokens=session.n_tokens,
            )
        out[name] = ctx.seconds
    return out


def speed_ratio_note(seconds: Mapping[str, float], compactor: str, twin: str) -> str:
    """The twin's mean compaction time over the compactor's, from one evaluation run, in words."""
    if compactor not in seconds or twin not in seconds:
        missing = twin if compactor in seconds else compactor
        return f"speed ratio against {twin!r}: not measured ({missing!r} was not evaluated)"
    if seconds[compactor] <= 0:
        return f"speed ratio against {twin!r}: not measured ({compactor!r} took no time)"
    ratio = seconds[twin] / seconds[compactor]
    return (
        f"{twin!r} takes {ratio:.2f}x the time of {compactor!r} per compaction "
        f"({seconds[twin]:.3f} s against {seconds[compactor]:.3f} s, same sessions, one run)"
    )


def choose_compactor(
    preferred: str = PREFERRED_COMPACTOR, fallback: str = FALLBACK_COMPACTOR
) -> tuple[str, str]:
    """(compactor name, a note): `preferred` when the registry has it, else `fallback`."""
    from unmasked.compaction import registry

    if preferred in registry.REGISTRY:
        return preferred, f"compactor: {preferred!r}"
    if fallback not in registry.REGISTRY:
        raise ValueError(f"neither {preferred!r} nor {fallback!r} is a registered compactor")
    return fallback, (
        f"compactor: {fallback!r} (the {preferred!r} compactor is not registered in this copy of "
        f"unmasked.compaction, so the stack uses {fallback!r} instead)"
    )


# --------------------------------------------------------------------------- the session


def _messages(turns) -> list[dict]:
    from unmasked.compaction import to_messages

    return to_messages(turns)


def planner_rounds(turns, n_rounds: int = N_ROUNDS) -> list[tuple[int, int]]:
    """Split a session into `n_rounds` planner calls of about equal tokens: (start, stop) indexes.

    A round starts at an assistant message that follows a user or tool message: the planner reads
    everything before `start` and writes the round's assistant messages; the round's tool results
    join the history for the next call. The system prompt and the user's first message come
    before the first round.
    """
    if isinstance(n_rounds, bool) or not isinstance(n_rounds, int) or n_rounds < 1:
        raise ValueError(f"n_rounds must be a positive int, got {n_rounds!r}")
    msgs = _messages(turns)
    starts = [
        i
        for i in range(1, len(msgs))
        if msgs[i]["role"] == "assistant" and msgs[i - 1]["role"] != "assistant"
    ]
    if len(starts) < n_rounds:
        raise ValueError(
            f"the session has {len(starts)} places where a planner call can start, fewer than "
            f"n_rounds={n_rounds}; use a longer session or fewer rounds"
        )
    sizes = np.cumsum([count_tokens([m]) for m in msgs])
    first = starts[0]
    base, total = sizes[first - 1], sizes[-1]
    chosen = [first]
    for k in range(1, n_rounds):
        target = base + (total - base) * k / n_rounds
        later = [s for s in starts if s > chosen[-1]]
        room = n_rounds - k - 1  # starts left for the rounds after this one
        candidates = later[: len(later) - room] if room else later
        chosen.append(min(candidates, key=lambda s: (abs(sizes[s - 1] - target), s)))
    return list(zip(chosen, chosen[1:] + [len(msgs)]))


def _calls(turns) -> dict[str, tuple[str, dict]]:
    """tool_call_id -> (tool name, arguments) over a session's messages."""
    import json

    out = {}
    for m in _messages(turns):
        for call in m.get("tool_calls") or ():
            args = call["function"].get("arguments") or "{}"
            try:
                args = json.loads(args) if isinstance(args, str) else dict(args)
            except (json.JSONDecodeError, TypeError):
                args = {}
            out[call["id"]] = (call["function"]["name"], args if isinstance(args, dict) else {})
    return out


# --------------------------------------------------------------------------- tool search

_READ_LINE = re.compile(r"^\s*(\d+)\t(.*)$")
TOKEN_PATTERN = r"[A-Za-z0-9]+"  # identifiers split at "_", ".", "/": load_cursor -> load, cursor


def file_lines(turns) -> list[str]:
    """Every distinct `path:line: text` line the session shows: read_file outputs and grep hits.

    This is the repository as far as the session reveals it, the index that tool search reads.
    """
    calls = _calls(turns)
    seen: dict[str, None] = {}
    for m in _messages(turns):
        if m["role"] != "tool" or m.get("tool_call_id") not in calls:
            continue
        name, args = calls[m["tool_call_id"]]
        if name == "read_file" and isinstance(args.get("path"), str):
            for line in (m["content"] or "").splitlines():
                hit = _READ_LINE.match(line)
                if hit and hit.group(2).strip():
                    seen[f"{args['path']}:{hit.group(1)}: {hit.group(2).strip()}"] = None
        elif name == "grep":
            for line in (m["content"] or "").splitlines():
                if line.count(":") >= 2 and line.strip():
                    path, number, text = line.split(":", 2)
                    seen[f"{path}:{number}: {text.strip()}"] = None
    return list(seen)


class ToolSearch:
    """TF-IDF over file lines (scikit-learn); `search(query, k)` returns the k best lines."""

    def __init__(self, lines: Sequence[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not lines:
            raise ValueError("tool search needs at least one line to index")
        self.lines = list(lines)
        self.vectorizer = TfidfVectorizer(token_pattern=TOKEN_PATTERN, sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(self.lines)

    def search(self, query: str, k: int = 10) -> list[str]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        scores = (self.matrix @ self.vectorizer.transform([query]).T).toarray().ravel()
        order = np.lexsort((np.arange(len(scores)), -scores))
        return [self.lines[i] for i in order[:k] if scores[i] > 0]


def _path(line: str) -> str:
    return line.split(":", 1)[0]


def grep_recall(hits: Sequence[str], grep_output: str) -> float:
    """Share of the files grep listed that the retrieved lines also name (1.0 when grep found
    none)."""
    wanted = {_path(line) for line in grep_output.splitlines() if line.count(":") >= 2}
    if not wanted:
        return 1.0
    return len(wanted & {_path(h) for h in hits}) / len(wanted)


# --------------------------------------------------------------------------- validation

_SUMMARY = re.compile(r"\b(\d+) failed\b")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b")


def split_verdict(output: str) -> tuple[str, bool]:
    """(body, failed) of a command's output: the last non-empty line stands in for the exit code.

    Generated sessions record no exit codes, so the label is read from the verdict a shell
    prints last: a test summary with failures ("2 failed") or an exception line. The classifier
    sees only the body, never that line. A real agent has the exit code and needs no parser.
    """
    lines = (output or "").rstrip().splitlines()
    if not lines:
        return "", False
    last = lines[-1].strip()
    summary = _SUMMARY.search(last)
    failed = bool(_EXCEPTION.match(last)) or bool(summary and int(summary.group(1)) > 0)
    return "\n".join(lines[:-1]), failed


def validation_examples(sessions) -> tuple[list[str], list[bool]]:
    """(bodies, failed) of every run_command output in `sessions`."""
    bodies, labels = [], []
    for session in sessions:
        calls = _calls(session.turns)
        for m in session.messages():
            if m["role"] == "tool" and calls.get(m.get("tool_call_id"), ("",))[0] == "run_command":
                body, failed = split_verdict(m["content"])
                bodies.append(body)
                labels.append(failed)
    return bodies, labels


def train_validator(bodies: Sequence[str], labels: Sequence[bool], seed: int = 0):
    """Logistic regression over TF-IDF words of command outputs (letters only, so that numbers
    and ids are not memorised); classes balanced, since failures are rare."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(set(labels)) < 2:
        raise ValueError("the training outputs need both failures and successes")
    model = make_pipeline(
        TfidfVectorizer(token_pattern=r"[A-Za-z]{2,}", sublinear_tf=True, max_features=5_000),
        LogisticRegression(class_weight="balanced", max_iter=2_000, random_state=seed),
    )
    return model.fit(list(bodies), [bool(x) for x in labels])


def keyword_rule(body: str) -> bool:
    """The baseline a classifier must beat: 'error' or 'fail' anywhere means failed."""
    return bool(re.search(r"error|fail", body, re.I))


def validator_scores(predicted: Sequence[bool], labels: Sequence[bool]) -> dict:
    """accuracy, failures caught (recall on failures), false alarms (on successes), counts."""
    p, y = np.asarray(predicted, bool), np.asarray(labels, bool)
    if len(p) != len(y) or not len(y):
        raise ValueError("predicted and labels must be non-empty and of one length")
    caught = float(p[y].mean()) if y.any() else float("nan")
    alarms = float(p[~y].mean()) if (~y).any() else float("nan")
    return dict(
        accuracy=float((p == y).mean()),
        failures_caught=caught,
        false_alarms=alarms,
        n=int(len(y)),
        n_failed=int(y.sum()),
    )


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class RoundRecord:
    """One planner call, without the stack (baseline_*) and with it (stack_*)."""

    round: int
    baseline_prompt: int  # tokens the planner reads with the raw history
    stack_prompt: int  # tokens it reads after the stack's parts
    output_tokens: int  # what it writes (the recorded assistant messages)
    compacted: bool
    compaction_seconds: float
    compacted_tokens: int  # history tokens replaced by the summary
    summary_tokens: int
    search_seconds: float
    validation_seconds: float
    planner_seconds: float  # the stand-in's (or the endpoint's) wall time, measured


@dataclass
class StackRun:
    """What a run measured: rounds, the session's shape, and each local part's record."""

    session_id: str
    compactor: str
    planner: str
    rounds: list[RoundRecord]
    prefix_tokens: int  # system prompt and the user's first message
    input_tokens: int  # user and tool tokens after the prefix, raw
    stack_input_tokens: int  # the same after tool search and validation
    output_tokens: int
    search_recall: list[float] = field(default_factory=list)
    grep_tokens: tuple[int, int] = (0, 0)  # (raw, retrieved)
    validated: list[tuple[bool, bool]] = field(default_factory=list)  # (predicted, label)
    command_tokens: tuple[int, int] = (0, 0)  # (raw, after validation)
    endpoint: str = ""
    final_context: list = field(default_factory=list, repr=False)  # what the planner reads last

    @property
    def compactions(self) -> int:
        return sum(r.compacted for r in self.rounds)

    @property
    def summary_ratio(self) -> float:
        """Summary tokens per compacted token, over the run's compactions."""
        done = [r for r in self.rounds if r.compacted and r.compacted_tokens]
        if not done:
            return float("nan")
        return sum(r.summary_tokens for r in done) / sum(r.compacted_tokens for r in done)

    @property
    def compaction_seconds(self) -> float:
        """Mean seconds of one compaction on this machine (0 when none ran)."""
        done = [r.compaction_seconds for r in self.rounds if r.compacted]
        return float(np.mean(done)) if done else 0.0

    @property
    def local_seconds_per_round(self) -> float:
        """Tool search and validation, measured, per round."""
        return float(np.mean([r.search_seconds + r.validation_seconds for r in self.rounds]))


def replay_planner(session, rounds: Sequence[tuple[int, int]]):
    """A ChatServer handler that answers round r (sent as metadata) with the session's
    recorded assistant text for that round: an offline stand-in for the frontier planner."""
    msgs = session.messages()

    def answer(body: dict) -> str:
        r = int((body.get("metadata") or {}).get("round", 0))
        start, stop = rounds[r]
        return "\n".join(m["content"] for m in msgs[start:stop] if m["role"] == "assistant")

    return answer


def run_stack(
    session,
    *,
    compactor: str,
    validator=None,
    client=None,
    n_rounds: int = N_ROUNDS,
    threshold_tokens: int = 25_000,
    keep_last: int = 6,
    k: int = 10,
    validated_keep_tokens: int = 120,
    planner: str = PLANNER,
) -> StackRun:
    """Run `session` as `n_rounds` planner calls through the stack; see the module docstring.

    compactor: a registered name, made once for the session (compact_context's keep_last counts
    messages here). validator:
    a fitted classifier with predict([body]) -> [failed] (None: outputs pass unvalidated).
    client: a ChatClient for the planner (None: no planner call is made, planner_seconds is 0).
    k: lines tool search returns for a grep call. A command output the validator calls a
    success is cut to validated_keep_tokens (head and tail); a predicted failure is kept whole.
    """
    from unmasked.compaction import compact_context, get_compactor, render
    from unmasked.compaction.core import cut_middle

    # one instance for the whole session: a stateful compactor (anchored, diffusion) merges each
    # compaction into what it kept from the earlier ones
    engine = get_compactor(compactor)
    if hasattr(engine, "reset"):
        engine.reset()
    msgs = session.messages()
    rounds = planner_rounds(session.turns, n_rounds)
    calls = _calls(session.turns)
    search = ToolSearch(file_lines(session.turns))
    sizes = [count_tokens([m]) for m in msgs]
    prefix_end = rounds[0][0]
    history = [dict(m) for m in msgs[:prefix_end]]
    records, recall, validated = [], [], []
    grep_raw = grep_kept = cmd_raw = cmd_kept = stack_input = 0
    for r, (start, stop) in enumerate(rounds):
        compacted, c_seconds, c_tokens, s_tokens = False, 0.0, 0, 0
        if count_tokens(history) > threshold_tokens:
            ctx = compact_context(
                history,
                session.task,
                threshold_tokens=threshold_tokens,
                keep_last=keep_last,
                compactor=engine,
            )
            if ctx.was_compacted:
                compacted, c_seconds = True, ctx.seconds
                first = len(ctx.pinned_turns)
                c_tokens = count_tokens(history[first : first + ctx.n_compacted_turns])
                s_tokens = ctx.summary_tokens
                history = render(ctx)
        prompt = count_tokens(history)
        planner_s = 0.0
        if client is not None:
            t0 = time.perf_counter()
            client.chat(history, max_tokens=1_024, metadata={"round": r})
            planner_s = time.perf_counter() - t0
        search_s = valid_s = 0.0
        for m in msgs[start:stop]:
            m = dict(m)
            if m["role"] == "tool":
                name, args = calls.get(m.get("tool_call_id"), ("", {}))
                if name == "grep" and args.get("pattern"):
                    t0 = time.perf_counter()
                    hits = search.search(str(args["pattern"]), k)
                    search_s += time.perf_counter() - t0
                    recall.append(grep_recall(hits, m["content"]))
                    grep_raw += count_tokens(m["content"])
                    m["content"] = "\n".join(hits) or "(no match)"
                    grep_kept += count_tokens(m["content"])
                elif name == "run_command" and validator is not None:
                    body, failed = split_verdict(m["content"])
                    t0 = time.perf_counter()
                    predicted = bool(validator.predict([body])[0])
                    valid_s += time.perf_counter() - t0
                    validated.append((predicted, failed))
                    cmd_raw += count_tokens(m["content"])
                    if not predicted:
                        m["content"] = cut_middle(m["content"], validated_keep_tokens)
                    cmd_kept += count_tokens(m["content"])
            if m["role"] != "assistant":
                stack_input += count_tokens([m])
            history.append(m)
        records.append(
            RoundRecord(
                round=r + 1,
                baseline_prompt=count_tokens(msgs[:start]),
                stack_prompt=prompt,
                output_tokens=sum(
                    n
                    for m, n in zip(msgs[start:stop], sizes[start:stop])
                    if m["role"] == "assistant"
                ),
                compacted=compacted,
                compaction_seconds=c_seconds,
                compacted_tokens=c_tokens,
                summary_tokens=s_tokens,
                search_seconds=search_s,
                validation_seconds=valid_s,
                planner_seconds=planner_s,
            )
        )
    after = msgs[prefix_end:]
    return StackRun(
        session_id=session.id,
        compactor=compactor,
        planner=planner,
        rounds=records,
        prefix_tokens=count_tokens(msgs[:prefix_end]),
        input_tokens=sum(s for m, s in zip(after, sizes[prefix_end:]) if m["role"] != "assistant"),
        stack_input_tokens=stack_input,
        output_tokens=sum(r.output_tokens for r in records),
        search_recall=recall,
        grep_tokens=(grep_raw, grep_kept),
        validated=validated,
        command_tokens=(cmd_raw, cmd_kept),
        endpoint=getattr(client, "url", ""),
        final_context=history,
    )


def probe_scores(session, messages: Sequence[Mapping]) -> dict[str, float]:
    """The session's probes answered from `messages` by the deterministic Reader and scored by
    the rubric (0-5), per category: how much of the session a context still answers."""
    from unmasked.probes import Reader, probes_for, rubric_score

    reader = Reader()
    return {
        p.category: float(rubric_score(reader(list(messages), p.question), p).score)
        for p in probes_for(session)
    }


# --------------------------------------------------------------------------- cost and latency


def local_model(name: str) -> costs.ModelPrice:
    """A price entry for a part that runs on your machine: no tokens billed."""
    return costs.ModelPrice(
        name=name,
        input_cost_per_token=0.0,
        output_cost_per_token=0.0,
        cache_read_input_token_cost=0.0,
        cache_creation_input_token_cost=0.0,
        max_input_tokens=10**9,
        source="runs locally: no tokens billed",
        date="",
        tier="fast",
    )


def _simulate(
    run: StackRun, input_tokens: int, compact: bool, prices, caching: bool, threshold_tokens: int
) -> costs.SessionResult:
    """run's shape through costs.simulate_session; with `compact`, the local compactor."""
    prices = dict(prices)
    n = len(run.rounds)
    local = local_model(f"local {run.compactor}")
    prices[local.name] = local
    policy = None
    if compact:
        ratio = run.summary_ratio
        policy = costs.CompactionPolicy(
            threshold=threshold_tokens,
            keep_last=1,
            ratio=min(1.0, ratio) if ratio == ratio and ratio > 0 else 0.1,
            compactor=local.name,
            max_summary_tokens=8_000,
        )
    result = costs.simulate_session(
        n,
        round(input_tokens / n),
        run.planner,
        output_tokens=round(run.output_tokens / n),
        system_tokens=run.prefix_tokens,
        caching=caching,
        prices=prices,
        on_overflow="compact",
        policy=policy,
    )
    turns = tuple(
        replace(t, compaction_s=run.compaction_seconds) if t.compacted else t for t in result.turns
    )
    return replace(result, turns=turns)


def session_results(
    run: StackRun,
    *,
    prices: Mapping[str, costs.ModelPrice] | None = None,
    caching: bool = True,
    threshold_tokens: int = 25_000,
) -> dict[str, costs.SessionResult]:
    """The session billed and timed by costs.simulate_session, without and with the stack.

    Both sessions have the run's rounds, prefix and mean output per round. Without the stack the
    planner reads every tool output whole and never compacts; with it each round adds the tokens
    the run measured after tool search and validation, and the local compactor (no tokens billed)
    compacts past `threshold_tokens` at the summary ratio the run measured, keeping the last
    round. The calculator would time a compaction on a reference GPU; each compaction turn's
    time is replaced by the compaction time measured here.
    """
    prices = costs.load_prices() if prices is None else prices
    args = (prices, caching, threshold_tokens)
    return {
        "frontier planner alone": _simulate(run, run.input_tokens, False, *args),
        "with the stack": _simulate(run, run.stack_input_tokens, True, *args),
    }


def reductions(results: Mapping[str, costs.SessionResult], run: StackRun) -> dict:
    """Cost and mean-turn-latency reductions of the stack, beside the seed's claims."""
    base, stacked = results["frontier planner alone"], results["with the stack"]
    base_s = base.mean_latency_s()
    stack_s = stacked.mean_latency_s() + run.local_seconds_per_round
    return dict(
        cost_without=base.total_cost,
        cost_with=stacked.total_cost,
        cost_reduction=1 - stacked.total_cost / base.total_cost,
        seed_cost_reduction=SEED_COST_SAVING,
        latency_without=base_s,
        latency_with=stack_s,
        latency_reduction=1 - stack_s / base_s,
        seed_latency_reduction=SEED_LATENCY_SAVING,
        compactions=stacked.compactions,
    )


def saving_by_part(
    run: StackRun,
    *,
    prices: Mapping[str, costs.ModelPrice] | None = None,
    caching: bool = True,
    threshold_tokens: int = 25_000,
):
    """Cost and latency reductions against the planner alone: compaction alone, tool search and
    validation alone, and the whole stack (a DataFrame, one row each)."""
    import pandas as pd

    prices = costs.load_prices() if prices is None else prices
    args = (prices, caching, threshold_tokens)
    base = _simulate(run, run.input_tokens, False, *args)
    local = run.local_seconds_per_round
    rows = []
    for label, tokens, compact, extra in (
        ("compaction alone", run.input_tokens, True, 0.0),
        ("tool search and validation alone", run.stack_input_tokens, False, local),
        ("the whole stack", run.stack_input_tokens, True, local),
    ):
        res = _simulate(run, tokens, compact, *args)
        rows.append(
            dict(
                parts=label,
                cost_usd=res.total_cost,
                cost_reduction=1 - res.total_cost / base.total_cost,
                mean_turn_s=res.mean_latency_s() + extra,
                latency_reduction=1 - (res.mean_latency_s() + extra) / base.mean_latency_s(),
                compactions=res.compactions,
            )
        )
    return pd.DataFrame(rows).set_index("parts")


def stack_figure(results: Mapping[str, costs.SessionResult], run: StackRun):
    """Cumulative dollars and per-turn seconds of both sessions, side by side."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("cumulative cost (USD)", "seconds per planner turn")
    )
    for (label, res), colour in zip(results.items(), ("#d62728", "#1f77b4")):
        x = [t.turn for t in res.turns]
        extra = run.local_seconds_per_round if label == "with the stack" else 0.0
        fig.add_scatter(x=x, y=res.cumulative_cost, name=label, line_color=colour, row=1, col=1)
        fig.add_scatter(
            x=x,
            y=[t.latency_s + extra for t in res.turns],
            name=label,
            line_color=colour,
            showlegend=False,
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="planner turn")
    fig.update_layout(height=380, title=f"{run.planner} planning a {len(run.rounds)}-turn session")
    return fig


def prompt_figure(run: StackRun):
    """Tokens the planner reads on each turn, with the raw history and through the stack; a
    compaction shows as a drop."""
    import plotly.graph_objects as go

    x = [r.round for r in run.rounds]
    fig = go.Figure()
    fig.add_scatter(
        x=x, y=[r.baseline_prompt for r in run.rounds], name="raw history", line_color="#d62728"
    )
    fig.add_scatter(
        x=x, y=[r.stack_prompt for r in run.rounds], name="through the stack", line_color="#1f77b4"
    )
    done = [r for r in run.rounds if r.compacted]
    if done:
        fig.add_scatter(
            x=[r.round for r in done],
            y=[r.stack_prompt for r in done],
            mode="markers",
            marker=dict(size=11, symbol="triangle-down", color="#1f77b4"),
            name=f"compacted ({run.compactor})",
        )
    fig.update_layout(
        height=360,
        title="What the planner reads on each turn",
        xaxis_title="planner turn",
        yaxis_title="prompt tokens",
    )
    return fig


# --------------------------------------------------------------------------- the surface


@dataclass(frozen=True)
class Option:
    """One way to do one role's work, per call: dollars, seconds and quality (0-1, None when
    nothing here measures it), and where the figures come from."""

    role: str
    name: str
    dollars: float
    seconds: float
    quality: float | None
    source: str
    note: str = ""


def _write_price(model: costs.ModelPrice, caching: bool) -> float:
    """What one new input token costs the planner: written to the cache, or plain input."""
    return model.cache_creation_input_token_cost if caching else model.input_cost_per_token


def planner_options(
    run: StackRun, prices, caching: bool = True, threshold_tokens: int = 25_000
) -> list[Option]:
    """Every autoregressive, unretired model as the planner of the stacked session: mean dollars
    and seconds per turn from simulate_session. Nothing here measures a planner's quality."""
    out = []
    for model in prices.values():
        if model.kind != "autoregressive" or model.retired:
            continue
        res = session_results(
            replace(run, planner=model.name),
            prices=prices,
            caching=caching,
            threshold_tokens=threshold_tokens,
        )["with the stack"]
        out.append(
            Option(
                "planner",
                model.name,
                res.total_cost / len(res.turns),
                res.mean_latency_s() + run.local_seconds_per_round,
                None,
                "prices.json; latency model (tier deployment)",
                f"{model.tier} tier",
            )
        )
    return out


def compactor_options(
    verdicts, seconds: Mapping[str, float], run: StackRun, prices
) -> list[Option]:
    """Local compactors at their measured probe score (mean over categories / 5) and seconds;
    hosted models priced for one compaction of the run's mean size, quality not measured here."""
    from unmasked.probes import MAX_SCORE

    out = []
    means = verdicts.groupby("compactor")["mean"].mean()
    for name, mean in means.items():
        if name == "full":
            continue
        out.append(
            Option(
                "compactor",
                name,
                0.0,
                float(seconds.get(name, float("nan"))),
                float(mean) / MAX_SCORE,
                "measured here (probes; seconds on this machine)",
                "runs locally",
            )
        )
    done = [r for r in run.rounds if r.compacted]
    read = int(np.mean([r.compacted_tokens for r in done])) if done else 25_000
    write = max(1, round(read * (run.summary_ratio if done else 0.1)))
    for model in prices.values():
        if model.retired or model.name == "claude-sonnet-4-6":
            continue
        if model.tier not in ("frontier", "fast") or read > model.max_input_tokens:
            continue
        dep = _lat.deployment_for(model.tier)
        # AR: the tier's bandwidth-bound decode; diffusion: its published speed, else the seed's
        # 16 steps of 60 ms (the calculator's own rule)
        decode = costs._decode_seconds(model, write, read, dep, None, None)
        out.append(
            Option(
                "compactor",
                model.name,
                read * model.input_cost_per_token + write * model.output_cost_per_token,
                dep.prefill.seconds(read) + decode,
                None,
                "prices.json; latency model, published speed or the seed's steps",
                f"reads {read:,}, writes {write:,} tokens",
            )
        )
    return out


def search_options(
    session, ks: Sequence[int], planner: costs.ModelPrice, caching: bool = True
) -> list[Option]:
    """grep's whole listing against TF-IDF top-k lines, for every grep call of `session`.

    Quality: share of grep's files the lines name (grep itself: 1 by definition). Dollars: the
    planner reading the result. Seconds: the search, measured, plus the planner's prefill of it.
    """
    calls = _calls(session.turns)
    greps = [
        (str(calls[m["tool_call_id"]][1].get("pattern", "")), m["content"])
        for m in session.messages()
        if m["role"] == "tool" and calls.get(m.get("tool_call_id"), ("",))[0] == "grep"
    ]
    if not greps:
        raise ValueError("the session has no grep calls to answer")
    price = _write_price(planner, caching)
    prefill = _lat.deployment_for(planner.tier or "frontier").prefill
    tokens = float(np.mean([count_tokens(out) for _, out in greps]))
    out = [
        Option(
            "tool_search",
            "grep, whole listing",
            tokens * price,
            prefill.seconds(tokens),
            1.0,
            "measured here; prices.json",
            f"{tokens:,.0f} tokens per call",
        )
    ]
    search = ToolSearch(file_lines(session.turns))
    for k in ks:
        recall, kept, spent = [], [], []
        for pattern, listing in greps:
            t0 = time.perf_counter()
            hits = search.search(pattern, k)
            spent.append(time.perf_counter() - t0)
            recall.append(grep_recall(hits, listing))
            kept.append(count_tokens("\n".join(hits)))
        tokens = float(np.mean(kept))
        out.append(
            Option(
                "tool_search",
                f"TF-IDF top {k}",
                tokens * price,
                float(np.mean(spent)) + prefill.seconds(tokens),
                float(np.mean(recall)),
                "measured here; prices.json",
                f"{tokens:,.0f} tokens per call",
            )
        )
    return out


def validation_options(
    bodies: Sequence[str],
    labels: Sequence[bool],
    classifier,
    planner: costs.ModelPrice,
    caching: bool = True,
    keep_tokens: int = 120,
) -> list[Option]:
    """Ways to check a command's output, on held-out outputs: the planner reads it whole (quality
    not measured here), the classifier, the keyword rule, or no check (everything 'passed').

    Quality is accuracy against the verdict line; dollars are what the planner still reads (a
    predicted success cut to keep_tokens); seconds the check, measured, plus that prefill.
    """
    from unmasked.compaction.core import cut_middle

    price = _write_price(planner, caching)
    prefill = _lat.deployment_for(planner.tier or "frontier").prefill
    full = [count_tokens(b) for b in bodies]
    cut = [min(n, count_tokens(cut_middle(b, keep_tokens))) for b, n in zip(bodies, full)]
    t0 = time.perf_counter()
    learned = [bool(p) for p in classifier.predict(list(bodies))]
    learned_s = (time.perf_counter() - t0) / len(bodies)
    t0 = time.perf_counter()
    rule = [keyword_rule(b) for b in bodies]
    rule_s = (time.perf_counter() - t0) / len(bodies)
    mean_full = float(np.mean(full))
    out = [
        Option(
            "validation",
            "planner reads it whole",
            mean_full * price,
            prefill.seconds(mean_full),
            None,
            "prices.json; latency model",
            f"{mean_full:,.0f} tokens per output",
        )
    ]
    for name, predicted, spent in (
        ("logistic regression", learned, learned_s),
        ("keyword rule", rule, rule_s),
        ("no check", [False] * len(bodies), 0.0),
    ):
        tokens = float(np.mean([f if p else c for p, f, c in zip(predicted, full, cut)]))
        out.append(
            Option(
                "validation",
                name,
                tokens * price,
                spent + prefill.seconds(tokens),
                validator_scores(predicted, labels)["accuracy"],
                "measured here (held-out style); prices.json",
                f"{tokens:,.0f} tokens per output reach the planner",
            )
        )
    return out


def completion_options(
    prices, prompt_tokens: int = 2_000, output_tokens: int = 200
) -> list[Option]:
    """Code completion is not run here: each fast or frontier model priced for one completion
    of `prompt_tokens` in and `output_tokens` out; seconds from its tier's deployment or its
    published speed."""
    out = []
    for model in prices.values():
        if model.retired or model.tier not in ("fast", "frontier"):
            continue
        dep = _lat.deployment_for(model.tier)
        decode = costs._decode_seconds(model, output_tokens, prompt_tokens, dep, None, None)
        if model.speed_is_published:
            how = "published speed"
        elif model.kind == "diffusion":
            how = "the seed's 16 steps x 60 ms"
        else:
            how = "latency model"
        out.append(
            Option(
                "code_completion",
                model.name,
                prompt_tokens * model.input_cost_per_token
                + output_tokens * model.output_cost_per_token,
                dep.prefill.seconds(prompt_tokens) + decode,
                None,
                f"prices.json; {how}",
                f"{prompt_tokens:,} in, {output_tokens:,} out; not run here",
            )
        )
    return out


def surface_table(options: Sequence[Option]):
    """The options as a DataFrame, one row each, in ROLES order."""
    import pandas as pd

    df = pd.DataFrame([vars(o) for o in options])
    df["role"] = pd.Categorical(df["role"], ROLES, ordered=True)
    return df.sort_values(["role", "dollars", "seconds"]).reset_index(drop=True)


def surface_figure(options: Sequence[Option]):
    """Every option at (seconds, dollars) per call, one panel per role, coloured by quality
    (grey: not measured here)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    roles = [r for r in ROLES if any(o.role == r for o in options)]
    fig = make_subplots(rows=1, cols=len(roles), subplot_titles=roles, horizontal_spacing=0.05)
    for col, role in enumerate(roles, start=1):
        for measured in (True, False):
            part = [o for o in options if o.role == role and (o.quality is not None) == measured]
            if not part:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[max(o.seconds, 1e-5) for o in part],
                    y=[o.dollars for o in part],
                    mode="markers+text",
                    text=[o.name for o in part],
                    textposition="top center",
                    textfont_size=9,
                    marker=dict(
                        size=12,
                        color=[o.quality for o in part] if measured else "#bbbbbb",
                        colorscale="Viridis",
                        cmin=0,
                        cmax=1,
                        showscale=measured and col == 1,
                        colorbar=dict(title="quality"),
                        line=dict(width=1, color="#333"),
                    ),
                    customdata=[
                        [o.quality if o.quality is not None else "not measured", o.source]
                        for o in part
                    ],
                    hovertemplate="%{text}<br>%{x:.3g} s, $%{y:.4f}<br>quality %{customdata[0]}"
                    "<br>%{customdata[1]}<extra></extra>",
                    showlegend=False,
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", title_text="seconds per call", row=1, col=col)
    fig.update_yaxes(title_text="dollars per call", row=1, col=1)
    fig.update_layout(
        height=460, title="The trade-off surface: speed, cost and quality of every option"
    )
    return fig


def routing_table(options: Sequence[Option], planner: str = PLANNER, margin: float = 0.02):
    """The seed's routing table rebuilt: for each role, the cheapest measured option within
    `margin` of the best measured quality. The planner and code completion have no measured
    quality here: the planner is the frontier model (the seed's principle: reasoning stays
    there), code completion the fastest fast-tier option (cited figures only)."""
    import pandas as pd

    rows = []
    for role in ROLES:
        part = [o for o in options if o.role == role]
        if not part:
            continue
        measured = [o for o in part if o.quality is not None]
        if role == "planner":
            pick = next((o for o in part if o.name == planner), part[0])
            why = "reasoning stays on the frontier model (quality not measured here)"
        elif measured:
            best = max(o.quality for o in measured)
            near = [o for o in measured if o.quality >= best - margin]
            pick = min(near, key=lambda o: (o.dollars, o.seconds, o.name))
            why = f"cheapest within {margin:g} of the best measured quality ({best:.2f})"
        else:
            pick = min(part, key=lambda o: (o.seconds, o.dollars, o.name))
            why = "fastest option (cited figures; quality not measured here)"
        rows.append(
            dict(
                role=role,
                route_to=pick.name,
                dollars_per_call=pick.dollars,
                seconds_per_call=pick.seconds,
                quality=pick.quality,
                source=pick.source,
                why=why,
            )
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the router


def router_options(options: Sequence[Option]) -> dict[str, list[dict]]:
    """role -> [{name, dollars, seconds, quality}] for the options whose quality was measured:
    the shape the lab's router reads."""
    out: dict[str, list[dict]] = {}
    for o in options:
        if o.quality is not None:
            out.setdefault(o.role, []).append(
                dict(name=o.name, dollars=o.dollars, seconds=o.seconds, quality=o.quality)
            )
    return out


def plan_totals(subtasks: Sequence[str], options: Mapping, choice: Sequence[str]) -> dict:
    """Summed dollars, seconds and quality of sending subtask i to the option named choice[i]."""
    if len(choice) != len(subtasks):
        raise ValueError(f"{len(subtasks)} subtasks but {len(choice)} choices")
    total = dict(dollars=0.0, seconds=0.0, quality=0.0)
    for role, name in zip(subtasks, choice):
        if role not in options:
            raise ValueError(f"no options for subtask {role!r}")
        found = [o for o in options[role] if o["name"] == name]
        if not found:
            raise ValueError(f"{name!r} is not an option for {role!r}")
        for key in total:
            total[key] += found[0][key]
    return total


def route(subtasks: Sequence[str], options: Mapping, budget: Mapping) -> list[str]:
    """The option for each subtask that maximises total quality within budget["dollars"] and
    budget["seconds"] (sums over subtasks); ties go to the cheaper, then the faster plan.

    Exhaustive: fine for the handful of subtasks and options of a stack. Raises ValueError when
    no plan fits the budget.
    """
    for role in subtasks:
        if not options.get(role):
            raise ValueError(f"no options for subtask {role!r}")
    best, best_key = None, None
    eps = 1e-12
    for plan in itertools.product(*(options[r] for r in subtasks)):
        dollars = math.fsum(o["dollars"] for o in plan)
        seconds = math.fsum(o["seconds"] for o in plan)
        if dollars > budget["dollars"] + eps or seconds > budget["seconds"] + eps:
            continue
        key = (-math.fsum(o["quality"] for o in plan), dollars, seconds)
        if best_key is None or key < best_key:
            best, best_key = plan, key
    if best is None:
        raise ValueError(f"no plan fits the budget {dict(budget)}")
    return [o["name"] for o in best]


def measure_surface(
    seed: int = 0,
    *,
    session_tokens: int = 30_000,
    n_train: int = 8,
    n_test: int = 4,
    n_eval: int = 2,
    eval_tokens: int = 20_000,
    ks: Sequence[int] = (5, 10, 20, 50),
    compactors: Sequence[str] = ("observation_masking", "extractive", "anchored"),
    planner: str = PLANNER,
    threshold_tokens: int = 25_000,
) -> list[Option]:
    """The whole surface in one call, small: lecture 10's measurements at sizes that take a few
    seconds (the lab starts from it)."""
    from unmasked import evaluation
    from unmasked.sessions import generate_session

    prices = costs.load_prices()
    session = generate_session(seed, session_tokens)
    train = [generate_session(10_000 + seed + i, 8_000) for i in range(n_train)]
    test = [generate_session(20_000 + seed + i, 8_000, "paraphrased") for i in range(n_test)]
    classifier = train_validator(*validation_examples(train), seed=seed)
    bodies, labels = validation_examples(test)
    run = run_stack(
        session,
        compactor=compactors[-1],
        validator=classifier,
        threshold_tokens=threshold_tokens,
        planner=planner,
    )
    styles = ("plain", "paraphrased")
    scored = evaluation.evaluate(
        [generate_session(30_000 + seed + i, eval_tokens, styles[i % 2]) for i in range(n_eval)],
        ["full", *compactors],
        progress=False,
    )
    seconds = scored.groupby("compactor")["seconds"].mean().to_dict()
    return (
        planner_options(run, prices, threshold_tokens=threshold_tokens)
        + compactor_options(evaluation.verdicts(scored), seconds, run, prices)
        + search_options(session, ks, prices[planner])
        + validation_options(bodies, labels, classifier, prices[planner])
        + completion_options(prices)
    )
