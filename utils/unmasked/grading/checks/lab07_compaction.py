"""Hidden checks for lab07_compaction: mask_observations, find_cut, compact_context.

Every history is drawn from the grader's secret seed: OpenAI-format message dicts with tool
calls (some parallel), their results right after them, and random text. The expected answers
come from unmasked.compaction (mask_observations without targets, safe_cut, compact_context).

compact_context returns a CompactedContext. The kernel reports an object it cannot turn into
JSON as its repr (500 characters at most), so the compact_context cases are drawn small enough
that the expected result's repr fits, and the fields are read back from that repr. A kernel that
reports dataclasses as dicts of their fields is read directly.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import random
from collections.abc import Sequence

from unmasked.compaction import compact_context, mask_observations, safe_cut
from unmasked.tokens import count_tokens

from ..spec import Call, Check, Outcome, leaves_args_unchanged, raises, returns, short
from .lab01_tokens import random_text

PARAMETERS = {"FAST": True, "SEED": 0}
CALL_TIMEOUT_S = 5.0  # small histories: milliseconds of work each, even for compact_context

_TOOLS = (
    "read_file",
    "run_command",
    "grep",
    "write_file",
    "list_dir",
    "apply_patch",
    "search_code",
    "run_tests",
)
_FILES = (
    "src/app.py",
    "src/auth.py",
    "tests/test_login.py",
    "README.md",
    "lib/db.ts",
    "Makefile",
    "cmd/main.go",
)
_SYSTEM = (
    "You are a coding agent.",
    "Be brief.",
    "Use tools.",
    "Reply in English.",
    "You fix bugs.",
)
_REPR_LIMIT = 490  # the kernel keeps 500 characters of a repr (measured with the widest floats)


# ---- random histories -----------------------------------------------------------------------


class _Ids:
    """Unique random tool-call ids for one history."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def __call__(self) -> str:
        while True:
            cid = self.rng.choice(("call_", "toolu_", "c", "")) + f"{self.rng.randrange(16**5):x}"
            if cid not in self.used:
                self.used.add(cid)
                return cid


def _call(rng: random.Random, cid: str, tool: str | None = None) -> dict:
    tool = tool or rng.choice(_TOOLS)
    args = rng.choice(
        (
            {"path": rng.choice(_FILES)},
            {"cmd": "pytest -q"},
            {"pattern": rng.choice(_SYSTEM)[:6]},
            {},
        )
    )
    return {
        "id": cid,
        "type": "function",
        "function": {"name": tool, "arguments": json.dumps(args)},
    }


def _exchange(
    rng: random.Random, ids: _Ids, size: tuple[int, int], *, none_content: bool = True
) -> list[dict]:
    """An assistant message calling 1-3 tools, then each result (in any order among themselves)."""
    calls = [_call(rng, ids()) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
    content = None if none_content and rng.random() < 0.3 else random_text(rng, rng.randint(1, 8))
    results = [
        {"role": "tool", "tool_call_id": c["id"], "content": random_text(rng, rng.randint(*size))}
        for c in calls
    ]
    rng.shuffle(results)
    return [{"role": "assistant", "content": content, "tool_calls": calls}] + results


def random_history(
    rng: random.Random, n_steps: int, *, size=(2, 40), system: bool = True, orphans: int = 0
) -> list[dict]:
    """A chat history with at least one tool call; `orphans` tool messages answer an id no call
    made."""
    ids = _Ids(rng)
    messages = [{"role": "system", "content": rng.choice(_SYSTEM)}] if system else []
    messages.append({"role": "user", "content": random_text(rng, rng.randint(3, 20))})
    for step in range(n_steps):
        kind = rng.random()
        if kind < 0.6 or step == n_steps // 2:
            messages += _exchange(rng, ids, size)
        elif kind < 0.8:
            messages.append({"role": "assistant", "content": random_text(rng, rng.randint(2, 30))})
        else:
            messages.append({"role": "user", "content": random_text(rng, rng.randint(2, 15))})
    for _ in range(orphans):
        at = rng.randint(1, len(messages))
        messages.insert(
            at,
            {
                "role": "tool",
                "tool_call_id": ids(),
                "content": random_text(rng, rng.randint(2, 20)),
            },
        )
    return messages


# ---- compact_context: what came back, field by field ------------------------------------------

FIELDS = (
    "was_compacted",
    "raw_tokens",
    "summary_budget",
    "n_compacted_turns",
    "summary",
    "pinned_turns",
    "recent_turns",
    "compacted_tokens",
)
_FIELD_HINTS = {
    "was_compacted": "compact only when raw_tokens >= threshold_tokens and some turn lies between "
    "the pinned "
    "system turns and the cut",
    "raw_tokens": "raw_tokens is count_tokens(messages) of the whole history",
    "summary_budget": "the budget is min(int(raw * target_ratio), max_summary_tokens); 0 when "
    "nothing is compacted",
    "n_compacted_turns": "n_compacted_turns = cut - pinned, with the cut from find_cut",
    "summary": "summarize messages[pinned:cut], strip it, then fit_to_budget(summary, budget)",
    "pinned_turns": "the leading system turns are pinned (turns[:pinned]); none when nothing is "
    "compacted",
    "recent_turns": "recent_turns are the caller's own turns, list(turns[cut:]) (or list(turns) "
    "when nothing is "
    "compacted), not the validated copies from to_messages",
    "compacted_tokens": "compacted_tokens = count_tokens(render(context)); raw_tokens when nothing "
    "is compacted",
}


def read_fields(outcome: Outcome) -> dict | str:
    """The returned object's fields as a dict (those before the cut, for a repr the kernel cut
    short), or what went wrong reading them."""
    value = outcome.value
    if isinstance(value, dict) and "__repr__" not in value:
        return value
    text = value.get("__repr__", "") if isinstance(value, dict) else ""
    if not text:
        return f"returned {short(value)} (a {outcome.type}), not a CompactedContext"
    # the whole repr, else the longest prefix that ends before a field: `Name(a=1, b=2` + `)`
    ends = [len(text) - 1] + sorted(
        (i for i in range(len(text)) if text.startswith(", ", i)), reverse=True
    )
    for end in ends:
        try:
            node = ast.parse(
                text[: end + 1] if end == len(text) - 1 else text[:end] + ")", mode="eval"
            ).body
            if isinstance(node, ast.Call) and not node.args:
                return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            continue
    return f"returned {short(text, 80)}, which could not be read back as a CompactedContext"


def expected_fields(context) -> dict:
    return {name: getattr(context, name) for name in FIELDS}


def _repr_fits(context) -> bool:
    widest = dataclasses.replace(
        context, seconds=1.2345678901234567e-05, compression_ratio=0.12345678901234567
    )
    return len(repr(widest)) <= _REPR_LIMIT


def compact_check(
    name: str, points: float, cases: Sequence[tuple[list, str, dict]], hint: str
) -> Check:
    """compact_context(turns, task, **settings) must match the reference in every field of
    FIELDS."""
    calls = tuple(
        Call("compact_context", (turns, task), dict(settings)) for turns, task, settings in cases
    )
    wanted = [
        expected_fields(compact_context(turns, task, **settings)) for turns, task, settings in cases
    ]

    def verify(calls, outcomes):
        for call, outcome, want in zip(calls, outcomes, wanted):
            if not outcome.ok:
                return f"{call.show()} {outcome.show()}"
            got = read_fields(outcome)
            if isinstance(got, str):
                return f"{call.show()} {got}"
            for field in FIELDS:
                if field in got and (
                    got[field] != want[field] or type(got[field]) is not type(want[field])
                ):
                    return (
                        f"{call.show()}: {field} is {short(got[field])}; expected "
                        f"{short(want[field])} "
                        f"({_FIELD_HINTS[field]})"
                    )
            missing = [field for field in FIELDS if field not in got]
            if missing:
                if isinstance(outcome.value, dict) and "__repr__" in outcome.value:
                    return (
                        f"{call.show()} returned a CompactedContext longer than expected, too long "
                        "to read "
                        "back in full (what could be read is right); expected "
                        f"{len(want['recent_turns'])} "
                        f"recent turns and a summary of {count_tokens(want['summary'])} tokens"
                    )
                return f"{call.show()} returned a result without {', '.join(missing)}"
        return None

    return Check(name, points, calls, verify, hint)


def messages_returned(
    name: str, points: float, func: str, cases: Sequence[tuple], expected: Sequence[list], hint: str
) -> Check:
    """`func(*case)` must return the message list `expected[i]`; feedback names the first message
    that differs."""
    calls = tuple(Call(func, tuple(case)) for case in cases)
    wanted = list(expected)

    def verify(calls, outcomes):
        for call, outcome, want in zip(calls, outcomes, wanted):
            if not outcome.ok:
                return f"{call.show()} {outcome.show()}"
            got = outcome.value
            if outcome.type != "list" or not isinstance(got, list):
                return f"{call.show()} returned a {outcome.type}; expected a list of messages"
            if len(got) != len(want):
                return (
                    f"{call.show()} returned {len(got)} messages; expected {len(want)}, one "
                    "for "
                    "each message in"
                )
            for i, (a, b) in enumerate(zip(got, want)):
                if a != b:
                    return (
                        f"{call.show()}: message {i} is {short(a, 120)}; expected {short(b, 120)}"
                        f" (the input's message {i}: {short(call.args[0][i], 80)})"
                    )
        return None

    return Check(name, points, calls, verify, hint)


def _task(rng: random.Random) -> str:
    return rng.choice(("Fix", "Refactor", "Speed up", "Test")) + " " + rng.choice(_FILES)


def _short(rng: random.Random, role: str = "assistant") -> dict:
    return {"role": role, "content": random_text(rng, rng.randint(1, 3))[:30]}


def _compacting_case(
    rng: random.Random,
    *,
    recent_call: bool,
    at_threshold: bool = False,
    budget_from_ratio: bool = False,
) -> tuple[list, str, dict]:
    """A history above its threshold: short pinned and recent turns, long turns to summarise
    between."""
    for _ in range(200):  # draw until the expected result's repr is small enough to read back
        ids = _Ids(rng)
        head = [
            {"role": "system", "content": rng.choice(_SYSTEM)}
            for _ in range(rng.choice((0, 1, 1, 2)))
        ]
        if recent_call:
            head = head[:1]
        middle = [{"role": "user", "content": random_text(rng, rng.randint(5, 30))}]
        for _ in range(rng.randint(1, 4)):
            middle += _exchange(rng, ids, (10, 60)) if rng.random() < 0.7 else [_short(rng)]
        if recent_call:  # the last turn is a tool result: the cut must move back to its call
            cid = ids()
            call = {
                "id": cid,
                "function": {"name": rng.choice(("grep", "ls", "cat", "sed")), "arguments": "{}"},
            }
            # content None: the caller's turn comes back as passed (to_messages would make it "")
            tail = [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": cid, "content": random_text(rng, 1)[:6]},
            ]
            keep_last = 1
        else:
            tail = [_short(rng, rng.choice(("user", "assistant")))]
            keep_last = 1
        turns = head + middle + tail
        raw = count_tokens(turns)
        threshold = raw if at_threshold else rng.randint(max(1, raw // 4), raw)
        if budget_from_ratio:  # int(raw * ratio) below the cap
            ratio, cap = rng.uniform(2.0, 9.0) / raw, rng.randint(50, 9_000)
        else:
            ratio = rng.choice((0.1, 0.25, 0.5, 1.0, rng.uniform(0.05, 1.0)))
            cap = rng.randint(1, 4 if recent_call else 8)
        settings = dict(
            threshold_tokens=threshold,
            keep_last=keep_last,
            target_ratio=ratio,
            max_summary_tokens=cap,
        )
        task = _task(rng)
        reference = compact_context(turns, task, **settings)
        # the lab's compact_context has no max_recent_tokens guard: draw cases where it does not
        # fire
        if reference.was_compacted and not reference.cut_turns and _repr_fits(reference):
            return turns, task, settings
    raise RuntimeError("could not draw a compact_context case whose result fits the kernel's repr")


def _unchanged_case(rng: random.Random, kind: str) -> tuple[list, str, dict]:
    """A history compact_context must hand back as it is."""
    for _ in range(200):
        ids = _Ids(rng)
        turns = [_short(rng, "system")] if rng.random() < 0.5 else []
        turns.append(_short(rng, "user"))
        if rng.random() < 0.5:
            call = _call(rng, ids(), rng.choice(_TOOLS))
            call["function"]["arguments"] = "{}"
            turns += [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": random_text(rng, 1)[:8]},
            ]
        turns.append(_short(rng))
        raw = count_tokens(turns)
        if kind == "below":  # one token short of the threshold
            settings = dict(
                threshold_tokens=raw + rng.choice((1, 1, rng.randint(2, 10_000))),
                keep_last=rng.randint(0, len(turns)),
            )
        elif kind == "keep_all":  # above the threshold, but every turn is recent
            settings = dict(threshold_tokens=rng.randint(1, raw), keep_last=len(turns))
        elif kind == "over":  # keep_last longer than the history: handed back unchanged
            settings = dict(
                threshold_tokens=rng.randint(1, raw), keep_last=len(turns) + rng.randint(1, 5)
            )
        else:  # only system turns before an empty recent part
            turns = [_short(rng, "system") for _ in range(rng.randint(1, 3))]
            settings = dict(threshold_tokens=1, keep_last=0)
        settings.update(
            target_ratio=rng.uniform(0.05, 1.0), max_summary_tokens=rng.randint(1, 9_000)
        )
        task = _task(rng)
        reference = compact_context(turns, task, **settings)
        if not reference.was_compacted and _repr_fits(reference):
            return turns, task, settings
    raise RuntimeError(
        "could not draw an unchanged compact_context case that fits the kernel's repr"
    )


# ---- the checks ------------------------------------------------------------------------------


def build(rng: random.Random) -> list[Check]:
    masked_histories = [random_history(rng, rng.randint(2, 9)) for _ in range(4)]
    masked_histories.append(random_history(rng, 3, system=False))
    n_tool = [sum(m["role"] == "tool" for m in h) for h in masked_histories]
    keep_cases = [
        (h, rng.choice((1, rng.randint(1, max(1, n)), n, n + rng.randint(1, 3))))
        for h, n in zip(masked_histories, n_tool)
    ]
    orphan_histories = [
        random_history(rng, rng.randint(1, 5), orphans=rng.randint(1, 3)) for _ in range(3)
    ]
    negative = [(masked_histories[i], -rng.randint(1, 9)) for i in range(3)]

    def masked(messages, keep=0):
        return mask_observations(messages, keep, show_target=False)

    cut_histories = [
        random_history(rng, rng.randint(3, 10), system=rng.random() < 0.7) for _ in range(4)
    ]
    on_results, cut_cases = [], []
    for (
        h
    ) in cut_histories:  # every keep_last that lands on a result (up to 6), and 0, all and 4 others
        landing = [k for k in range(1, len(h)) if h[len(h) - k]["role"] == "tool"]
        plain = [k for k in range(1, len(h)) if k not in landing]
        on_results += [(h, k) for k in sorted(rng.sample(landing, min(6, len(landing))))]
        cut_cases += [(h, k) for k in [0, len(h)] + sorted(rng.sample(plain, min(4, len(plain))))]
        cut_cases.append((h, len(h) + rng.randint(1, 3)))  # longer than the history: cut at 0

    unchanged = [
        _unchanged_case(rng, kind) for kind in ("below", "below", "keep_all", "over", "system_only")
    ]
    compacting = [
        _compacting_case(rng, recent_call=False),
        _compacting_case(rng, recent_call=False, at_threshold=True),
        _compacting_case(rng, recent_call=False, budget_from_ratio=True),
    ]
    recent_calls = [_compacting_case(rng, recent_call=True) for _ in range(3)]

    base_turns, base_task, _ = compacting[0]
    n = len(base_turns)
    good = dict(
        threshold_tokens=rng.randint(1, 5_000),
        keep_last=rng.randint(0, n),
        target_ratio=0.1,
        max_summary_tokens=rng.randint(1, 8_000),
    )
    bad_settings = [
        dict(threshold_tokens=rng.choice((0, -rng.randint(1, 10**6)))),
        dict(target_ratio=rng.choice((0, 0.0, -rng.uniform(0.01, 1.0)))),
        dict(target_ratio=rng.uniform(1.0001, 5.0)),
        dict(max_summary_tokens=rng.choice((0, -rng.randint(1, 500)))),
        dict(keep_last=-rng.randint(1, 5)),
    ]
    bad_calls = tuple(
        Call("compact_context", (base_turns, base_task), {**good, **bad}) for bad in bad_settings
    )

    # and the same call with good settings must work: a stub that always raises does not pass
    valid = compact_check(
        "compact_context with good settings", 1, [(base_turns, base_task, good)], hint=""
    )

    def raises_value_error(calls, outcomes):
        n = len(bad_calls)
        for call, outcome in zip(calls[:n], outcomes[:n]):
            if outcome.error == "Timeout" or not outcome.raised("ValueError"):
                return f"{call.show(40)} {outcome.show()}; expected it to raise ValueError"
        problem = valid.verify(calls[n:], outcomes[n:])
        return f"it must also work with good settings: {problem}" if problem else None

    return [
        messages_returned(
            "mask_observations replaces every tool output with its placeholder",
            2,
            "mask_observations",
            [(h,) for h in masked_histories],
            [masked(h) for h in masked_histories],
            hint="Look up each tool message's call by tool_call_id in the assistants' tool_calls, "
            "and write "
            "PLACEHOLDER.format(tool=call['function']['name'], tokens=count_tokens(original "
            "content)).",
        ),
        messages_returned(
            "mask_observations keeps the newest keep_outputs outputs",
            2,
            "mask_observations",
            keep_cases,
            [masked(h, k) for h, k in keep_cases],
            hint="Only the last keep_outputs tool messages stay as they are; a keep_outputs larger "
            "than the "
            "number of tool messages keeps them all.",
        ),
        messages_returned(
            "mask_observations names a result without a matching call 'tool'",
            1,
            "mask_observations",
            [(h,) for h in orphan_histories],
            [masked(h) for h in orphan_histories],
            hint="When no assistant message made a call with that id, use tool='tool' in the "
            "placeholder.",
        ),
        leaves_args_unchanged(
            "mask_observations leaves its input unchanged",
            1,
            "mask_observations",
            [(h, 0) for h in masked_histories[:3]],
            expected=[masked(h, 0) for h in masked_histories[:3]],  # doing nothing does not pass
            hint="Copy a message dict (dict(m)) before you replace its content; never assign into "
            "the caller's.",
        ),
        raises(
            "mask_observations rejects a negative keep_outputs with ValueError",
            1,
            "mask_observations",
            negative,
            "ValueError",
            works=(
                [keep_cases[0]],
                [masked(*keep_cases[0])],
            ),  # a stub that always raises does not pass
            hint="Check keep_outputs first and raise ValueError when it is below 0.",
        ),
        returns(
            "find_cut starts the recent turns at len - keep_last",
            1,
            "find_cut",
            cut_cases,
            [safe_cut(h, max(0, len(h) - k)) for h, k in cut_cases],
            accept_types=("int",),
            hint="The recent turns are the last keep_last messages: they start at len(messages) - "
            "keep_last.",
        ),
        returns(
            "find_cut never leaves a tool result without its call",
            2,
            "find_cut",
            on_results,
            [safe_cut(h, len(h) - k) for h, k in on_results],
            accept_types=("int",),
            hint="While the cut lands on a tool message, move it back one; the results of one call "
            "(several "
            "for parallel calls) directly follow the assistant message that made it.",
        ),
        compact_check(
            "compact_context returns a history it must not compact unchanged",
            2,
            unchanged,
            hint="Below threshold_tokens (or with no turn between the pinned system turns and the "
            "cut) return "
            "summary='', recent_turns=list(turns), was_compacted=False and compacted_tokens=raw.",
        ),
        compact_check(
            "compact_context compacts a history at or above its threshold",
            3,
            compacting,
            hint="Pinned system turns, a summary of messages[pinned:cut] held to min(int(raw * "
            "target_ratio), "
            "max_summary_tokens), the recent turns as passed in; then "
            "count_tokens(render(context)).",
        ),
        compact_check(
            "compact_context keeps a tool call with its results in the recent turns",
            2,
            recent_calls,
            hint="Take the cut from find_cut(messages, keep_last), and return the caller's "
            "turns[cut:] (an "
            "assistant message with content None must come back with content None).",
        ),
        Check(
            "compact_context rejects bad settings with ValueError",
            1,
            bad_calls + valid.calls,
            raises_value_error,
            hint="threshold_tokens >= 1, 0 < target_ratio <= 1, max_summary_tokens >= 1 and "
            "keep_last >= 0; raise ValueError otherwise.",
        ),
    ]
