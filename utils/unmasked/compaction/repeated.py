"""Many compactions over one long session, the way an agent loop meets them.

The agent appends turns; whenever its context reaches the threshold, it compacts and carries
on from `render(context)`. From the second compaction on, the compactor sees its own earlier
summary instead of the turns it summarized, which is where regenerate-from-scratch and the
anchored merge part ways. `fact_retention` measures, after each compaction, which planted
facts the agent has already seen are still in its context.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from unmasked.tokens import TOKENS_REPLY_PRIMING, count_tokens

from .core import compact_context, render
from .messages import to_messages
from .registry import get_compactor


@dataclass
class Round:
    """One compaction in the loop."""

    index: int  # 1 for the first compaction
    at_turn: int  # the session turn that was appended just before it (0-based)
    raw_tokens: int
    compacted_tokens: int
    summary: str
    seconds: float
    context: list[dict] = field(repr=False, default_factory=list)  # the rendered messages after it


@dataclass
class LoopTrace:
    """The whole run: every compaction, and the context size after every appended turn."""

    compactor: str
    rounds: list[Round]
    tokens_after_turn: list[int]  # context tokens after appending turn i (before any compaction)
    final_context: list[dict] = field(repr=False, default_factory=list)


def _cost(message: dict) -> int:
    return count_tokens([message]) - TOKENS_REPLY_PRIMING


def repeated_compaction(
    turns,
    current_task: str,
    compactor="anchored",
    *,
    threshold_tokens: int = 25_000,
    keep_last: int = 3,
    target_ratio: float = 0.10,
    max_summary_tokens: int = 8_000,
    progress: bool = False,
) -> LoopTrace:
    """Replay `turns` through an agent loop that compacts whenever the context reaches the
    threshold.

    A stateful compactor (anchored) is reset first, so one instance can be reused across runs.
    """
    engine = get_compactor(compactor)
    if hasattr(engine, "reset"):
        engine.reset()
    messages = to_messages(turns)
    context: list[dict] = []
    costs: list[int] = []
    rounds: list[Round] = []
    trace: list[int] = []
    iterator = range(len(messages))
    if progress:
        iterator = tqdm(iterator, desc=f"replaying ({getattr(engine, 'name', 'compactor')})")
    for i in iterator:
        context.append(messages[i])
        costs.append(_cost(messages[i]))
        total = sum(costs) + TOKENS_REPLY_PRIMING
        trace.append(total)
        if total < threshold_tokens or len(context) <= keep_last:
            continue
        start = time.perf_counter()
        ctx = compact_context(
            context,
            current_task,
            threshold_tokens=threshold_tokens,
            keep_last=keep_last,
            target_ratio=target_ratio,
            max_summary_tokens=max_summary_tokens,
            compactor=engine,
        )
        if not ctx.was_compacted:
            continue
        context = render(ctx)
        costs = [_cost(m) for m in context]
        rounds.append(
            Round(
                len(rounds) + 1,
                i,
                ctx.raw_tokens,
                ctx.compacted_tokens,
                ctx.summary,
                time.perf_counter() - start,
                list(context),
            )
        )
    return LoopTrace(getattr(engine, "name", type(engine).__name__), rounds, trace, context)


def fact_retention(trace: LoopTrace, facts) -> list[dict]:
    """Per compaction: of the planted facts already seen (current ones, not stale), which survive.

    facts: PlantedFact-like objects (text, turn_index, category, stale). A fact survives when its
    text is still somewhere in the context the agent continues from (case-insensitive).
    """
    rows = []
    for r in trace.rounds:
        text = "\n".join(m.get("content") or "" for m in r.context).lower()
        seen = [f for f in facts if f.turn_index <= r.at_turn and not f.stale]
        kept = [f for f in seen if f.text.lower() in text]
        lost = [f.text for f in seen if f.text.lower() not in text]
        rows.append(
            {
                "round": r.index,
                "at_turn": r.at_turn,
                "seen": len(seen),
                "kept": len(kept),
                "retention": len(kept) / len(seen) if seen else 1.0,
                "lost": lost,
                "summary_tokens": count_tokens(r.summary) if r.summary else 0,
            }
        )
    return rows


def summary_drift(previous: str, current: str) -> dict[str, list[str]]:
    """Lines of a summary that a later compaction dropped, and lines it added."""
    before = [ln for ln in previous.splitlines() if ln.strip() and not ln.startswith("## ")]
    after = [ln for ln in current.splitlines() if ln.strip() and not ln.startswith("## ")]
    after_set, before_set = set(after), set(before)
    return {
        "lost": [ln for ln in before if ln not in after_set],
        "added": [ln for ln in after if ln not in before_set],
    }
