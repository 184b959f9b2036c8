"""The Compactor interface and the simple rungs of the ladder.

A compactor turns the older part of a history (chat dicts, calls and results never split) into
text that must fit `budget_tokens`. Every rung gets the same budget, so the comparison is
fair: truncation and observation masking spend it on a (masked) transcript of the newest old
turns, the summarizers on structured notes, keep-last-N spends none of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from unmasked.tokens import count_tokens

from .messages import arguments_of, call_name, transcript, units


class Compactor:
    """Base class: `summarize(old_messages, current_task, budget_tokens) -> str`."""

    name = "base"
    stateful = False

    def summarize(self, messages: list[dict], current_task: str, budget_tokens: int) -> str:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any state carried between compactions (only stateful compactors have some)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def newest_that_fit(messages: Sequence[dict], budget_tokens: int) -> str:
    """Transcript of the newest whole exchanges of `messages` that fit the budget together."""
    if budget_tokens <= 0:
        return ""
    chosen: list[str] = []
    used = 0
    for a, b in reversed(units(messages)):
        text = transcript(messages[a:b])
        n = count_tokens(text) + 1  # +1 for the joining newline
        if used + n > budget_tokens:
            break
        chosen.append(text)
        used += n
    return "\n".join(reversed(chosen))


class TruncationCompactor(Compactor):
    """Rung 1: drop the oldest turns; keep as many of the newest old ones as the budget holds."""

    name = "truncation"

    def summarize(self, messages, current_task, budget_tokens):
        return newest_that_fit(messages, budget_tokens)


class KeepLastCompactor(Compactor):
    """Rung 2: keep only the last keep_last turns; everything older is gone."""

    name = "keep_last"

    def summarize(self, messages, current_task, budget_tokens):
        return ""


def _target(call: dict) -> str:
    args = arguments_of(call)
    for key in (
        "path",
        "file_path",
        "file",
        "filename",
        "command",
        "cmd",
        "query",
        "pattern",
        "url",
    ):
        if isinstance(args.get(key), str):
            value = args[key]
            return value if len(value) <= 60 else value[:57] + "..."
    return ""


PLACEHOLDER = "[output of {tool} omitted: {tokens} tokens]"


def mask_observations(
    messages: Sequence[dict],
    keep_outputs: int = 0,
    placeholder: str = PLACEHOLDER,
    *,
    show_target: bool = True,
) -> list[dict]:
    """Replace every tool output but the newest `keep_outputs` with a short placeholder.

    The agent's reasoning and its calls stay; only what the tools printed goes. This is
    observation masking as in JetBrains' "The Complexity Trap" and OpenHands'
    ObservationMaskingCondenser. {tool} is the called tool's name, with its main argument
    when show_target (read_file(src/app.py)); {tokens} is the size of what was removed.
    Returns new dicts; the input is not changed.
    """
    if isinstance(keep_outputs, bool) or not isinstance(keep_outputs, int) or keep_outputs < 0:
        raise ValueError(f"keep_outputs must be an int >= 0, got {keep_outputs!r}")
    calls = {}
    for m in messages:
        for c in m.get("tool_calls") or []:
            calls[c.get("id")] = c
    tool_positions = [i for i, m in enumerate(messages) if m.get("role") == "tool"]
    keep = set(tool_positions[len(tool_positions) - keep_outputs :]) if keep_outputs else set()
    out = []
    for i, m in enumerate(messages):
        m = dict(m)
        if m.get("role") == "tool" and i not in keep:
            call = calls.get(m.get("tool_call_id"))
            tool = call_name(call) if call else "tool"
            target = _target(call) if call else ""
            label = f"{tool}({target})" if target and show_target else tool
            m["content"] = placeholder.format(
                tool=label, tokens=count_tokens(m.get("content") or "")
            )
        out.append(m)
    return out


class ObservationMaskingCompactor(Compactor):
    """Rung 3: old tool outputs become placeholders; then the newest exchanges that fit are kept."""

    name = "observation_masking"

    def __init__(self, keep_outputs: int = 0):
        self.keep_outputs = keep_outputs

    def summarize(self, messages, current_task, budget_tokens):
        return newest_that_fit(mask_observations(messages, self.keep_outputs), budget_tokens)
