"""Chat histories as plain message dicts: validation, tool-call units and a text transcript.

Everything in `unmasked.compaction` accepts a history as Turn objects (anything with
`.to_message()`) or as OpenAI chat-format dicts, and works on the dicts internally. The unit
of compaction is not the message but the *exchange*: an assistant message that calls tools,
together with the tool messages that answer it. Cutting between a call and its result leaves
the model an answer to a question it never asked (or the reverse), which chat APIs reject.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

ROLES = ("system", "user", "assistant", "tool")

# The opening of the user message that carries a summary into the continued conversation.
SUMMARY_PREFIX = (
    "This session continues an earlier conversation that was compacted to save context. "
    "Summary of the earlier part:\n\n"
)


def summary_message(summary: str) -> dict:
    """The summary as the user message that opens the continued conversation (as Claude Code
    does)."""
    return {"role": "user", "content": SUMMARY_PREFIX + summary}


def to_message(turn, index: int | None = None) -> dict:
    """One turn as a validated chat-format dict (a copy: the caller's turn is never changed)."""
    where = "turn" if index is None else f"turn {index}"
    if hasattr(turn, "to_message"):
        message = turn.to_message()
    elif isinstance(turn, Mapping):
        message = dict(turn)
    else:
        raise ValueError(
            f"{where} is a {type(turn).__name__}; accepted: a chat message dict with 'role' and "
            "'content', or a Turn (anything with .to_message())"
        )
    role = message.get("role")
    if role not in ROLES:
        raise ValueError(f"{where} has role {role!r}; accepted roles: {', '.join(ROLES)}")
    content = message.get("content")
    if content is None and role == "assistant" and message.get("tool_calls"):
        content = ""  # OpenAI allows content=null on a message that only calls tools
    if not isinstance(content, str):
        raise ValueError(
            f"{where} ({role}) has {type(content).__name__} content; accepted: text (str). "
            "Flatten multimodal or list content to text before compacting."
        )
    message["content"] = content
    calls = message.get("tool_calls") or []
    if calls and role != "assistant":
        raise ValueError(
            f"{where} is a {role} turn with tool_calls; only assistant turns call tools"
        )
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise ValueError(
            f"{where} is a tool turn without a tool_call_id (str) naming the call it answers"
        )
    return message


def to_messages(turns) -> list[dict]:
    """Validate a whole history; an empty one is an error, since there is nothing to compact."""
    if isinstance(turns, (str, bytes, Mapping)) or not isinstance(turns, Sequence):
        raise ValueError(
            f"turns must be a list of chat messages or Turns, got {type(turns).__name__}"
        )
    if len(turns) == 0:
        raise ValueError("turns is empty; accepted: a non-empty list of chat messages or Turns")
    return [to_message(t, i) for i, t in enumerate(turns)]


def call_ids(message: Mapping) -> list[str]:
    return [c.get("id") for c in (message.get("tool_calls") or []) if c.get("id") is not None]


def units(messages: Sequence[Mapping]) -> list[tuple[int, int]]:
    """Half-open index ranges that must stay together: a tool-calling assistant turn plus its
    results.

    A tool message answers the nearest earlier assistant call with its id; every message between
    the call and its last answer belongs to the same unit, so no cut can separate them.
    """
    owner: dict[str, int] = {}
    spans = [(i, i + 1) for i in range(len(messages))]
    for i, m in enumerate(messages):
        for cid in call_ids(m):
            owner[cid] = i
        if m.get("role") == "tool" and m.get("tool_call_id") in owner:
            spans.append((owner[m["tool_call_id"]], i + 1))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def safe_cut(messages: Sequence[Mapping], cut: int) -> int:
    """The largest index <= cut at which the history may be split without separating a call from
    its result."""
    for a, b in units(messages):
        if a < cut < b:
            return a
    return cut


def is_paired(messages: Sequence[Mapping]) -> bool:
    """True when every tool result follows its call and every call has its result."""
    open_calls: set[str] = set()
    answered: set[str] = set()
    for m in messages:
        for cid in call_ids(m):
            open_calls.add(cid)
        if m.get("role") == "tool":
            cid = m.get("tool_call_id")
            if cid not in open_calls:
                return False
            answered.add(cid)
    return open_calls == answered


# ---- a readable, parseable transcript ---------------------------------------------------------

_HEADER = re.compile(r"^=== (?P<role>system|user|assistant|tool)(?: (?P<extra>.*))? ===$", re.M)


def arguments_of(call: Mapping) -> dict:
    """The arguments of a tool call as a dict (they travel as a JSON string in the chat format)."""
    function = call.get("function", call)
    args = function.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return {"raw": args}
    return args if isinstance(args, dict) else {"value": args}


def call_name(call: Mapping) -> str:
    return str(call.get("function", call).get("name", ""))


def transcript(messages: Sequence[Mapping]) -> str:
    """The history as plain text a model (or a person) can read, and `parse_transcript` can
    invert."""
    parts = []
    for m in messages:
        extra = f"id={m['tool_call_id']}" if m.get("role") == "tool" else ""
        parts.append(f"=== {m['role']}{' ' + extra if extra else ''} ===")
        if m.get("content"):
            parts.append(m["content"])
        for c in m.get("tool_calls") or []:
            args = json.dumps(arguments_of(c), ensure_ascii=False, sort_keys=True)
            parts.append(f"-> call {call_name(c)}({args}) id={c.get('id')}")
    return "\n".join(parts)


_CALL = re.compile(r"^-> call (?P<name>[\w.\-]+)\((?P<args>.*)\) id=(?P<id>\S+)$")


def parse_transcript(text: str) -> list[dict]:
    """Invert `transcript`: the messages back as chat-format dicts (used by the local test
    server)."""
    messages: list[dict] = []
    heads = list(_HEADER.finditer(text))
    for k, h in enumerate(heads):
        last = k + 1 == len(heads)
        body = text[h.end() : len(text) if last else heads[k + 1].start()]
        body = body.removeprefix("\n")
        if not last:
            body = body.removesuffix("\n")  # the newline that joins it to the next header
        m: dict = {"role": h["role"], "content": ""}
        if h["role"] == "tool":
            m["tool_call_id"] = (h["extra"] or "").removeprefix("id=")
        lines = body.split("\n") if body else []
        calls = []
        while h["role"] == "assistant" and lines and (c := _CALL.match(lines[-1])):
            calls.insert(
                0,
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["args"]},
                },
            )
            lines.pop()
        m["content"] = "\n".join(lines)
        if calls:
            m["tool_calls"] = calls
        messages.append(m)
    return messages
