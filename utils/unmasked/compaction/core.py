"""compact_context: the compaction step of a coding agent, as one pure function.

The seed's design: when the history reaches `threshold_tokens`, everything but the last
`keep_last` turns is handed to a compactor together with the current task, and replaced by
its summary, which may use at most min(raw_tokens * target_ratio, max_summary_tokens) tokens.
Leading system turns (the agent's instructions, not its history) are kept as they are. The
reasoning model then receives `render(context)`: instructions, the summary, the recent turns.
"""

from __future__ import annotations

import time
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


def validate_settings(n_turns: int, threshold_tokens, keep_last, target_ratio, max_summary_tokens) -> None:
    """The ValueErrors of compact_context's knobs, each saying what is accepted."""
    _check_int("threshold_tokens", threshold_tokens, minimum=1)
    if isinstance(target_ratio, bool) or not isinstance(target_ratio, (int, float)) or not 0 < target_ratio <= 1:
        raise ValueError(f"target_ratio must be a number with 0 < target_ratio <= 1, got {target_ratio!r}")
    _check_int("max_summary_tokens", max_summary_tokens, minimum=1)
    _check_int("keep_last", keep_last, minimum=0)
    if keep_last > n_turns:
        raise ValueError(
            f"keep_last={keep_last} is larger than the history ({n_turns} turns); "
            f"accepted: 0 <= keep_last <= {n_turns}"
        )


def split_history(messages: list[dict], keep_last: int) -> tuple[int, int]:
    """(end of the pinned system prefix, start of the recent turns) for a validated history.

    The recent turns are the last keep_last, reaching further back when the first of them is a
    tool result (or a call) whose partner would otherwise be summarized away.
    """
    pinned = 0
    while pinned < len(messages) and messages[pinned]["role"] == "system":
        pinned += 1
    cut = safe_cut(messages, len(messages) - keep_last)
    if cut < pinned:  # the recent turns reach into the system prefix: nothing is pinned separately
        pinned = cut
    return pinned, cut


def compact_context(
    turns,
    current_task: str,
    *,
    threshold_tokens: int = 25_000,
    keep_last: int = 3,
    target_ratio: float = 0.10,
    max_summary_tokens: int = 8_000,
    compactor="extractive",
) -> CompactedContext:
    """Compact a history once it reaches threshold_tokens; below it, return it unchanged.

    turns: Turn objects or chat-format dicts. compactor: a Compactor, or one of the names in
    `unmasked.compaction.COMPACTORS`. The summary never exceeds its budget, the last keep_last
    turns come back as the very objects passed in, and no tool call is split from its result.
    """
    start = time.perf_counter()
    messages = to_messages(turns)
    if not isinstance(current_task, str):
        raise ValueError(f"current_task must be text (str), got {type(current_task).__name__}")
    validate_settings(len(messages), threshold_tokens, keep_last, target_ratio, max_summary_tokens)
    engine = get_compactor(compactor)
    raw = count_tokens(messages)
    pinned, cut = split_history(messages, keep_last)
    if raw < threshold_tokens or cut <= pinned:
        return CompactedContext(
            summary="", recent_turns=list(turns), was_compacted=False, raw_tokens=raw,
            compacted_tokens=raw, compression_ratio=1.0, seconds=time.perf_counter() - start,
            compactor=getattr(engine, "name", type(engine).__name__),
        )
    budget = summary_budget(raw, target_ratio, max_summary_tokens)
    summary = engine.summarize(messages[pinned:cut], current_task, budget)
    if not isinstance(summary, str):
        raise TypeError(f"compactor {engine!r} returned {type(summary).__name__}, not str")
    summary = fit_to_budget(summary.strip(), budget)
    context = CompactedContext(
        summary=summary, recent_turns=list(turns[cut:]), was_compacted=True, raw_tokens=raw,
        compacted_tokens=0, compression_ratio=0.0, seconds=0.0, pinned_turns=list(turns[:pinned]),
        summary_budget=budget, compactor=getattr(engine, "name", type(engine).__name__), n_compacted_turns=cut - pinned,
    )
    context.compacted_tokens = count_tokens(render(context))
    context.compression_ratio = context.compacted_tokens / raw
    context.seconds = time.perf_counter() - start
    return context


def render(context: CompactedContext) -> list[dict]:
    """The chat messages the reasoning model receives: pinned system turns, summary, recent turns."""
    if not isinstance(context, CompactedContext):
        raise ValueError(f"render() takes a CompactedContext, got {type(context).__name__}")
    out = [to_messages([t])[0] for t in context.pinned_turns]
    if context.was_compacted and context.summary:
        out.append(summary_message(context.summary))
    out.extend(to_messages([t])[0] for t in context.recent_turns)
    return out
