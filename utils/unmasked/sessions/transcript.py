"""OpenAI chat messages as a Transcript: the strict loader behind format="openai".

Accepted: a list of chat messages, or {"messages": [...]} with optional "id", "project" and
"task". Anything the loader could not keep is an error with the message's number and what is
accepted: nothing is dropped silently. Other agents' formats are in `formats`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .schema import ROLES, ToolCall, Transcript, Turn

MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")
TOP_LEVEL_KEYS = ("messages", "id", "project", "task")


def _where(i: int, origin: str) -> str:
    return f"{origin}: message {i}"


def _content(msg: Mapping, where: str, role: str, has_calls: bool) -> str:
    if "content" not in msg:
        raise ValueError(
            f"{where} ({role}) has no 'content'; every message needs text content (\"\" is fine)"
        )
    content = msg["content"]
    if content is None:
        if role == "assistant" and has_calls:
            return ""  # the chat APIs send null content next to tool calls
        raise ValueError(
            f"{where} ({role}) has content null; only an assistant turn with tool_calls may"
        )
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text parts carry over
        texts = []
        for j, part in enumerate(content):
            if (
                not isinstance(part, Mapping)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise ValueError(
                    f"{where} ({role}) has a content part {j} of type {kind!r}; only text is "
                    "accepted "
                    '(a string, or a list of {"type": "text", "text": ...} parts)'
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise ValueError(
        f"{where} ({role}) has content of type {type(content).__name__}; accepted: a string, null "
        "next to "
        "tool_calls, or a list of text parts"
    )


def _tool_calls(msg: Mapping, where: str, seen: dict) -> list[ToolCall]:
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ValueError(f"{where} has tool_calls of type {type(calls).__name__}; expected a list")
    out = []
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, Mapping) else None
        if (
            not isinstance(call, Mapping)
            or not isinstance(call.get("id"), str)
            or not isinstance(fn, Mapping)
            or not isinstance(fn.get("name"), str)
        ):
            raise ValueError(
                f'{where}: tool call {j} must look like {{"id": str, "type": "function", '
                f'"function": {{"name": str, "arguments": JSON string}}}}, got {call!r:.200}'
            )
        if call["id"] in seen:
            raise ValueError(
                f"{where}: tool call id {call['id']!r} was already used by an earlier call"
            )
        args = fn.get("arguments", "{}")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{where}: tool call {call['id']!r} has arguments that are not JSON ({exc})"
                ) from None
        if not isinstance(args, dict):
            raise ValueError(
                f"{where}: tool call {call['id']!r} arguments must be a JSON object, got "
                f"{args!r:.100}"
            )
        seen[call["id"]] = fn["name"]
        out.append(ToolCall(call["id"], fn["name"], args))
    return out


def messages_to_turns(messages, origin: str = "transcript") -> list[Turn]:
    """Validate chat messages and turn them into Turns; ValueError names the bad message."""
    if not isinstance(messages, list):
        raise ValueError(
            f"{origin}: expected a list of chat messages, got {type(messages).__name__}"
        )
    if not messages:
        raise ValueError(f"{origin}: the transcript has no messages")
    turns, seen_calls = [], {}
    for i, msg in enumerate(messages):
        where = _where(i, origin)
        if not isinstance(msg, Mapping):
            raise ValueError(
                f"{where} is a {type(msg).__name__}, not an object with 'role' and 'content'"
            )
        if "role" not in msg:
            raise ValueError(f"{where} has no 'role'; accepted roles: {', '.join(ROLES)}")
        role = msg["role"]
        if role not in ROLES:
            hint = " (use 'system' for a developer message)" if role == "developer" else ""
            raise ValueError(
                f"{where} has unknown role {role!r}{hint}; accepted roles: {', '.join(ROLES)}"
            )
        extra = [k for k in msg if k not in MESSAGE_KEYS]
        if extra:
            raise ValueError(
                f"{where} ({role}) has fields {extra} that would be lost; accepted: {MESSAGE_KEYS}"
            )
        if msg.get("tool_calls") and role != "assistant":
            raise ValueError(
                f"{where} ({role}) has tool_calls; only assistant messages may call tools"
            )
        if "tool_call_id" in msg and role != "tool":
            raise ValueError(
                f"{where} ({role}) has a tool_call_id; only tool messages answer a call"
            )
        calls = _tool_calls(msg, where, seen_calls) if role == "assistant" else []
        content = _content(msg, where, role, bool(calls))
        call_id = None
        if role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise ValueError(
                    f"{where} is a tool result with no tool_call_id; it must name the call it "
                    "answers"
                )
            if call_id not in seen_calls:
                raise ValueError(
                    f"{where} is a tool result for call {call_id!r}, but no earlier assistant "
                    "message made that call"
                )
        if "name" in msg:  # kept only where it is redundant: the name of the tool that answers
            if role != "tool" or msg["name"] != seen_calls.get(call_id):
                raise ValueError(
                    f"{where} ({role}) has a 'name' field {msg['name']!r}, which a Turn cannot "
                    "keep; accepted only "
                    "on a tool message, equal to the name of the call it answers"
                )
        turns.append(Turn(role, content, calls, call_id))
    return turns


def load_messages(data, origin: str = "transcript", source: str = "") -> Transcript:
    """OpenAI chat messages (a list, or {"messages": [...]} with optional id, project, task) as a
    Transcript.

    System messages are marked as the system prompt; the first user message is the task unless
    the file names one.
    """
    meta = {}
    if isinstance(data, Mapping):
        extra = [k for k in data if k not in TOP_LEVEL_KEYS]
        if "messages" not in data or extra:
            raise ValueError(
                f"{origin}: a JSON object must have 'messages' and only the keys {TOP_LEVEL_KEYS}; "
                f"unexpected: {extra}"
                if extra
                else f"{origin}: a JSON object needs a 'messages' list"
            )
        for key in ("id", "project", "task"):
            if key in data and not isinstance(data[key], str):
                raise ValueError(f"{origin}: {key!r} must be a string")
        meta, data = data, data["messages"]
    turns = messages_to_turns(data, origin)
    first_user = next((i for i, t in enumerate(turns) if t.role == "user"), None)
    kinds = [
        "system_prompt" if t.role == "system" else "task" if i == first_user else t.role
        for i, t in enumerate(turns)
    ]
    return Transcript(
        id=meta.get("id", Path(source).stem if source else "transcript"),
        seed=-1,
        project=meta.get("project", ""),
        task=meta.get("task", turns[first_user].content if first_user is not None else ""),
        turns=turns,
        probes=[],
        record={},
        facts=[],
        format="openai",
        source=source,
        kinds=kinds,
    )
