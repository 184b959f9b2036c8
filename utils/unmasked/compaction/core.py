"""compact_context: the compaction step of a coding agent, as one pure function.

The seed's design: when the history reaches `threshold_tokens`, everything but the last
`keep_last` turns is handed to a compactor together with the current task, and replaced by
its summary, which may use at most min(raw_tokens * target_ratio, max_summary_tokens) tokens.
Leading system turns (the agent's instructions, not its history) are kept as they are. The
reasoning model then receives `render(context)`: instructions, the summary, the recent turns.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

from unmasked.tokens import count_tokens, decode, encode

from .messages import safe_cut, summary_message, to_messages
from .registry import get_compactor


@dataclass
class CompactedContext:
    """What the reasoning model gets after compaction, and what it cost to get there.

    compression_ratio is compacted_tokens / raw_tokens (the fraction kept, like target_ratio):
    1.0 when nothing was compacted, 0.05 when the context shrank twenty-fold.
    """

    summary: str
    recent_turns: list
    was_compacted: bool
    raw_tokens: int
    compacted_tokens: int
    compression_ratio: float
    seconds: float
    pinned_turns: list = field(default_factory=list)  # leading system turns, kept verbatim
    summary_budget: int = 0  # the token budget the summary was held to
    compactor: str = ""  # the name of the compactor that wrote the summary
    n_compacted_turns: int = 0  # how many turns the summary replaced
    # Indexes into recent_turns of turns whose content was cut to fit max_recent_tokens (those
    # are copies, not the caller's objects), and what the caller should know about the result.
    # Not in the repr, which lists the turns themselves.
    cut_turns: list = field(default_factory=list, repr=False)
    warnings: list = field(default_factory=list, repr=False)

    @property
    def summary_tokens(self) -> int:
        return count_tokens(self.summary) if self.summary else 0


def summary_budget(raw_tokens: int, target_ratio: float, max_summary_tokens: int) -> int:
    """The seed's budget: a fixed fraction of the history, capped."""
    return max(0, min(int(raw_tokens * target_ratio), max_summary_tokens))


def fit_to_budget(text: str, budget: int) -> str:
    """`text` cut (at a line break where possible) so that count_tokens(text) <= budget.

    The compactors aim for the budget themselves; this is the guarantee, for any compactor,
    including a language model that ignores what it was told.
    """
    if budget <= 0 or not text:
        return ""
    if count_tokens(text) <= budget:
        return text
    cut = decode(encode(text)[:budget])
    newline = cut.rfind("\n")
    if newline > len(cut) // 2:
        cut = cut[:newline]
    while cut and count_tokens(cut) > budget:  # decode/encode may merge differently at the edge
        cut = cut[:-1]
    return cut


def _check_int(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        rule = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {rule}, got {value!r}")


def validate_settings(
    n_turns: int,
    threshold_tokens,
    keep_last,
    target_ratio,
    max_summary_tokens,
    max_recent_tokens=None,
) -> None:
    """The ValueErrors of compact_context's knobs, each saying what is accepted.

    A keep_last larger than the history is not an error: an agent that compacts every turn
    meets it on its first turns, and gets its history back unchanged.
    """
    _check_int("threshold_tokens", threshold_tokens, minimum=1)
    if (
        isinstance(target_ratio, bool)
        or not isinstance(target_ratio, (int, float))
        or not 0 < target_ratio <= 1
    ):
        raise ValueError(
            f"target_ratio must be a number with 0 < target_ratio <= 1, got {target_ratio!r}"
        )
    _check_int("max_summary_tokens", max_summary_tokens, minimum=1)
    _check_int("keep_last", keep_last, minimum=0)
    if max_recent_tokens is not None:
        _check_int("max_recent_tokens", max_recent_tokens, minimum=1)


def split_history(messages: list[dict], keep_last: int) -> tuple[int, int]:
    """(end of the pinned system prefix, start of the recent turns) for a validated history.

    The recent turns are the last keep_last, reaching further back when the first of them is a
    tool result (or a call) whose partner would otherwise be summarized away.
    """
    pinned = 0
    while pinned < len(messages) and messages[pinned]["role"] == "system":
        pinned += 1
    cut = safe_cut(messages, max(0, len(messages) - keep_last))
    if cut < pinned:  # the recent turns reach into the system prefix: nothing is pinned separately
        pinned = cut
    return pinned, cut


CUT_MARKER = "\n[... {tokens} tokens cut here to fit the context ...]\n"


def cut_middle(text: str, keep_tokens: int) -> str:
    """`text` with its middle cut out so that about keep_tokens tokens of it remain.

    A third is kept from the head (what the output is) and two thirds from the tail (where a
    log's error, a test run's verdict or a diff's last hunk sits), with a marker between them.
    """
    ids = encode(text)
    if len(ids) <= keep_tokens:
        return text
    keep_tokens = max(0, keep_tokens)
    head = keep_tokens // 3
    tail = keep_tokens - head
    marker = CUT_MARKER.format(tokens=len(ids) - keep_tokens)
    return decode(ids[:head]) + marker + (decode(ids[len(ids) - tail :]) if tail else "")


def _with_content(turn, content: str):
    """A copy of `turn` (dict, Turn or other) with new content; the caller's turn is not changed."""
    if isinstance(turn, Mapping):
        return {**turn, "content": content}
    if dataclasses.is_dataclass(turn) and hasattr(turn, "content"):
        return dataclasses.replace(turn, content=content)
    return {**to_messages([turn])[0], "content": content}


def fit_recent(turns: list, messages: list[dict], budget: int) -> tuple[list, list[int], list[str]]:
    """The recent turns with the largest contents cut (in the middle) until they fit `budget`
    tokens.

    Returns (turns, indexes of the turns that were cut, what was done, in words). Turns that were
    not cut are the caller's objects. Only text content is cut: a turn whose tool-call arguments
    alone overflow the budget stays over it, and the words say so.
    """
    total = count_tokens(messages)
    if total <= budget:
        return list(turns), [], []
    contents = [m["content"] for m in messages]
    sizes = [count_tokens(t) if t else 0 for t in contents]
    current, new = list(sizes), list(contents)
    for _ in range(
        2 * len(messages) + 2
    ):  # the largest content first, by what is over (and its marker)
        excess = count_tokens([{**m, "content": t} for m, t in zip(messages, new)]) - budget
        i = max(range(len(new)), key=lambda k: (current[k], -k))
        if excess <= 0 or current[i] == 0:
            break
        new[i] = cut_middle(contents[i], max(0, current[i] - excess - 16))
        if (
            new[i] == contents[i] or count_tokens(new[i]) >= current[i]
        ):  # too short to cut: give it up
            new[i] = ""
        current[i] = count_tokens(new[i]) if new[i] else 0
    cut = [i for i in range(len(new)) if new[i] != contents[i]]
    out = [(_with_content(t, new[i]) if i in cut else t) for i, t in enumerate(turns)]
    after = count_tokens([{**m, "content": t} for m, t in zip(messages, new)])
    notes = [
        f"recent turn {i} ({messages[i]['role']}) was cut from {sizes[i]:,} to "
        f"{count_tokens(new[i]):,} content tokens to fit max_recent_tokens={budget:,}"
        for i in cut
    ]
    if after > budget:
        notes.append(
            f"the recent turns still take {after:,} tokens, over max_recent_tokens={budget:,}: "
            "what is left is framing and tool-call arguments, which are not cut"
        )
    return out, cut, notes


def compact_context(
    turns,
    current_task: str,
    *,
    threshold_tokens: int = 25_000,
    keep_last: int = 3,
    target_ratio: float = 0.10,
    max_summary_tokens: int = 8_000,
    compactor="extractive",
    max_recent_tokens: int | None = None,
) -> CompactedContext:
    """Compact a history once it reaches threshold_tokens; below it, return it unchanged.

    turns: Turn objects or chat-format dicts. compactor: a Compactor, or one of the names in
    `unmasked.compaction.COMPACTORS`. The summary never exceeds its budget, the last keep_last turns
    come back as the very objects passed in, and no tool call is split from its result. A history of
    keep_last turns or fewer comes back unchanged. max_recent_tokens (default: threshold_tokens,
    since recent turns that alone reach the threshold would set compaction off again on the next
    turn) bounds the recent turns together: when one of them is too large (a 400K-token diff), its
    content is cut in the middle to fit, and `cut_turns` and `warnings` say so.
    """
    start = time.perf_counter()
    messages = to_messages(turns)
    if not isinstance(current_task, str):
        raise ValueError(f"current_task must be text (str), got {type(current_task).__name__}")
    validate_settings(
        len(messages),
        threshold_tokens,
        keep_last,
        target_ratio,
        max_summary_tokens,
        max_recent_tokens,
    )
    engine = get_compactor(compactor)
    name = getattr(engine, "name", type(engine).__name__)
    raw = count_tokens(messages)
    pinned, cut = split_history(messages, keep_last)
    if raw < threshold_tokens or cut <= pinned:
        notes = []
        if raw >= threshold_tokens:
            notes.append(
                f"the history is {raw:,} tokens, at or above "
                f"threshold_tokens={threshold_tokens:,}, "
                f"but its {len(messages)} turns are all pinned or among the last "
                f"keep_last={keep_last}: "
                "nothing was compacted"
            )
        return CompactedContext(
            summary="",
            recent_turns=list(turns),
            was_compacted=False,
            raw_tokens=raw,
            compacted_tokens=raw,
            compression_ratio=1.0,
            seconds=time.perf_counter() - start,
            compactor=name,
            warnings=notes,
        )
    budget = summary_budget(raw, target_ratio, max_summary_tokens)
    summary = engine.summarize(messages[pinned:cut], current_task, budget)
    if not isinstance(summary, str):
        raise TypeError(f"compactor {engine!r} returned {type(summary).__name__}, not str")
    summary = fit_to_budget(summary.strip(), budget)
    recent_budget = threshold_tokens if max_recent_tokens is None else max_recent_tokens
    recent, cut_turns, notes = fit_recent(list(turns[cut:]), messages[cut:], recent_budget)
    context = CompactedContext(
        summary=summary,
        recent_turns=recent,
        was_compacted=True,
        raw_tokens=raw,
        compacted_tokens=0,
        compression_ratio=0.0,
        seconds=0.0,
        pinned_turns=list(turns[:pinned]),
        summary_budget=budget,
        compactor=name,
        n_compacted_turns=cut - pinned,
        cut_turns=cut_turns,
        warnings=notes,
    )
    context.compacted_tokens = count_tokens(render(context))
    context.compression_ratio = context.compacted_tokens / raw
    if cut_turns:
        warnings.warn("compact_context: " + "; ".join(notes), stacklevel=2)
    if context.compacted_tokens >= threshold_tokens:
        notes.append(
            f"after compaction the context is still {context.compacted_tokens:,} tokens, at or "
            "above "
            f"threshold_tokens={threshold_tokens:,}: the next turn will compact again"
        )
    context.seconds = time.perf_counter() - start
    return context


def render(context: CompactedContext) -> list[dict]:
    """The chat messages the reasoning model receives: pinned system turns, summary, recent
    turns."""
    if not isinstance(context, CompactedContext):
        raise ValueError(f"render() takes a CompactedContext, got {type(context).__name__}")
    out = [to_messages([t])[0] for t in context.pinned_turns]
    if context.was_compacted and context.summary:
        out.append(summary_message(context.summary))
    out.extend(to_messages([t])[0] for t in context.recent_turns)
    return out
