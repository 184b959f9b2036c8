"""Loaders for the logs coding agents really write, into one Transcript type.

Every format becomes OpenAI-style turns (system, user, assistant with tool calls, tool results),
plus what the format knows and chat messages do not: each turn's kind (system prompt,
demonstration, instructions, task, ...), each command's exit code, the final diff, the agent's
working directory. Demonstrations and injected instructions become system turns, so that
nothing downstream takes them for the task or the history.

    load_transcript("rollout-2025-...jsonl")          # the format is detected
    load_transcript("run.traj", format="swe_agent")   # or named

Formats (FORMATS): openai (chat messages with tool_calls), anthropic (Messages API, content
blocks), claude_code (session JSONL), swe_agent (.traj), mini_swe_agent (.traj.json), openhands
(event stream), aider (.aider.chat.history.md), codex (Codex CLI rollout JSONL). A malformed
file is an error that names the file, the line (or record) and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from .schema import ToolCall, Transcript, TranscriptError, Turn
from .transcript import load_messages

FORMATS = (
    "openai",
    "anthropic",
    "claude_code",
    "swe_agent",
    "mini_swe_agent",
    "openhands",
    "aider",
    "codex",
)
# What a turn is, beyond its role. A system turn may be the agent's instructions, an example
# run, or text injected by the harness; none of them is the task.
KINDS = (
    "system_prompt",
    "demonstration",
    "instructions",
    "task",
    "user",
    "assistant",
    "tool",
    "output",
)


def _fail(origin: str, where: str, what: str, problem: str) -> TranscriptError:
    return TranscriptError(f"{origin}: {where}: field {what!r}: {problem}")


class _Builder:
    """Collects turns in order, keeps tool results next to their calls, renames reused call ids."""

    def __init__(self, origin: str):
        self.origin = origin
        self.turns: list[Turn] = []
        self.kinds: list[str] = []
        self.exit_codes: dict[str, int] = {}
        self.failed: dict[str, bool] = {}
        self.used: set[str] = set()
        self.latest: dict[str, str] = {}  # an id as the log wrote it -> the id it has here
        self.task = ""

    def add(self, role: str, text: str, kind: str, calls=(), call_id: str | None = None) -> Turn:
        turn = Turn(role, text, list(calls), call_id)
        self.turns.append(turn)
        self.kinds.append(kind)
        return turn

    def system(self, text: str, kind: str = "system_prompt") -> None:
        if text.strip():
            self.add("system", text, kind)

    def user(self, text: str, *, task_text: str | None = None) -> None:
        if not text.strip():
            return
        if not self.task:
            self.task = (task_text or text).strip()
            self.add("user", text, "task")
        else:
            self.add("user", text, "user")

    def call(self, log_id, name: str, arguments) -> ToolCall:
        """A tool call; an id the log already used gets a suffix, and later results follow it."""
        base = str(log_id) if log_id not in (None, "") else f"call_{len(self.used)}"
        new, n = base, 1
        while new in self.used:
            n += 1
            new = f"{base}~{n}"
        self.used.add(new)
        self.latest[base] = new
        return ToolCall(
            new, name, arguments if isinstance(arguments, dict) else {"input": arguments}
        )

    def assistant(self, text: str, calls=()) -> None:
        if text.strip() or calls:
            self.add("assistant", text, "assistant", calls)

    def tool(
        self, log_id, text: str, where: str, *, exit_code=None, failed: bool | None = None
    ) -> None:
        cid = self.latest.get(str(log_id))
        if cid is None:
            raise _fail(
                self.origin,
                where,
                "tool_call_id",
                f"a tool result for call {log_id!r}, but no earlier assistant message made that "
                "call",
            )
        self.add("tool", text, "tool", call_id=cid)
        if isinstance(exit_code, int) and not isinstance(exit_code, bool):
            self.exit_codes[cid] = exit_code
        if failed:
            self.failed[cid] = True

    def build(
        self,
        fmt: str,
        source: str,
        *,
        sid: str,
        final_diff: str = "",
        root: str = "",
        project: str = "",
    ) -> Transcript:
        if not self.turns:
            raise TranscriptError(f"{self.origin}: no messages found in this {fmt} transcript")
        return Transcript(
            id=sid,
            seed=-1,
            project=project,
            task=self.task,
            turns=self.turns,
            probes=[],
            record={},
            facts=[],
            format=fmt,
            source=source,
            kinds=self.kinds,
            exit_codes=self.exit_codes,
            failed=self.failed,
            final_diff=final_diff or "",
            root=root or "",
        )


# ---- reading files
# --------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """A transcript file's text: UTF-8, with or without a byte-order mark; other bytes name the
    file."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TranscriptError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}, line "
            f"{line}); "
            "save the transcript as UTF-8, or convert it with `iconv -f <its encoding> -t utf-8`"
        ) from None


def json_lines(text: str, origin: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSONL file."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TranscriptError(f"{origin}: line {n} is not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise TranscriptError(
                f"{origin}: line {n} is a JSON {type(obj).__name__}, not an object"
            )
        rows.append((n, obj))
    return rows


def _json_document(text: str, origin: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TranscriptError(
            f"{origin} is not valid JSON ({exc.msg} at line {exc.lineno}); for one "
            "message per line, name the file .jsonl"
        ) from None


def _is_jsonl(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or not lines[0].lstrip().startswith("{"):
        return False
    try:
        json.loads(lines[0])
        return True
    except json.JSONDecodeError:
        return False


_CODEX_TYPES = {"session_meta", "response_item", "turn_context", "event_msg", "compacted"}
_ITEM_TYPES = {
    "message",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "reasoning",
    "local_shell_call",
}
_BLOCK_TYPES = {"tool_use", "tool_result", "thinking"}


def _has_blocks(messages) -> bool:
    return any(
        isinstance(m, Mapping)
        and isinstance(m.get("content"), list)
        and any(isinstance(b, Mapping) and b.get("type") in _BLOCK_TYPES for b in m["content"])
        for m in messages
    )


def detect_format(path: Path, text: str) -> str:
    """The format of a transcript file, from its name and its first records."""
    if path.name.endswith(".aider.chat.history.md") or text.lstrip().startswith(
        "# aider chat started at"
    ):
        return "aider"
    if path.suffix == ".jsonl" or _is_jsonl(text):
        rows = json_lines(text, str(path))
        if not rows:
            raise TranscriptError(f"{path}: the file has no JSON lines")
        first = [r for _, r in rows[:5]]
        if (
            any(r.get("type") in _CODEX_TYPES and "payload" in r for r in first)
            or ("instructions" in first[0] and "id" in first[0])
            or first[0].get("type") in _ITEM_TYPES
        ):
            return "codex"
        if any(
            "sessionId" in r
            or (r.get("type") in ("user", "assistant", "summary") and "role" not in r)
            for r in first
        ):
            return "claude_code"
        if all("role" in r for r in first):
            return "anthropic" if _has_blocks([r for _, r in rows]) else "openai"
        raise TranscriptError(
            f"{path}: line {rows[0][0]}: cannot tell the format from its keys "
            f"{sorted(first[0])[:8]}; pass format= one of {', '.join(FORMATS)}"
        )
    data = _json_document(text, str(path))
    if isinstance(data, Mapping):
        if str(data.get("trajectory_format", "")).startswith("mini-swe-agent") or (
            "messages" in data and "mini_version" in (data.get("info") or {})
        ):
            return "mini_swe_agent"
        if "history" in data and "trajectory" in data:
            return "swe_agent"
        if isinstance(data.get("events"), list):
            return "openhands"
        messages = data.get("messages")
        if isinstance(messages, list):
            return (
                "anthropic"
                if "system" in data
                and not any(isinstance(m, Mapping) and m.get("role") == "system" for m in messages)
                or _has_blocks(messages)
                else "openai"
            )
    if isinstance(data, list) and data and all(isinstance(e, Mapping) for e in data):
        if any("action" in e or "observation" in e for e in data[:5]) and "role" not in data[0]:
            return "openhands"
        return "anthropic" if _has_blocks(data) else "openai"
    raise TranscriptError(
        f"{path}: cannot tell the format of this JSON; pass format= one of {', '.join(FORMATS)}"
    )


# ---- helpers shared by the loaders
# ---------------------------------------------------------------------

_PR = re.compile(r"<pr_description>\s*(.*?)\s*</pr_description>", re.S)
_ISSUE = re.compile(r"ISSUE:\s*\n(.*?)\n\s*(?:INSTRUCTIONS:|$)", re.S)


def task_from_prompt(text: str) -> str:
    """The issue inside a benchmark harness's instance prompt, else the prompt itself."""
    m = _PR.search(text) or _ISSUE.search(text)
    body = m.group(1).strip() if m else text.strip()
    return body.removeprefix("Consider the following PR description:").strip()


def _arguments(raw, origin: str, where: str) -> dict:
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _fail(origin, where, "arguments", f"not JSON ({exc.msg})") from None
        return value if isinstance(value, dict) else {"input": value}
    raise _fail(
        origin, where, "arguments", f"a {type(raw).__name__}; expected a JSON object or string"
    )


def _text_of(content, origin: str, where: str) -> str:
    """Text of a content field: a string, or a list of text parts (other parts become a short
    marker)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, Mapping) and part.get("type") in (
                "image",
                "image_url",
                "input_image",
            ):
                parts.append("[image]")
            elif isinstance(part, Mapping) and part.get("type") in (
                "thinking",
                "redacted_thinking",
                "reasoning",
            ):
                continue
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise _fail(
                    origin, where, "content", f"a part of type {kind!r} that carries no text"
                )
        return "\n".join(parts)
    raise _fail(
        origin, where, "content", f"a {type(content).__name__}; expected text or a list of parts"
    )


# ---- OpenAI chat messages
# -------------------------------------------------------------------------------


def load_openai(data, origin: str, source: str) -> Transcript:
    return load_messages(data, origin, source)


# ---- Anthropic Messages and Claude Code
# ------------------------------------------------------------------


def _anthropic_message(b: _Builder, role: str, content, where: str, *, meta: bool = False) -> None:
    if role == "system":
        b.system(_text_of(content, b.origin, where))
        return
    if isinstance(content, str) or content is None:
        text = content or ""
        if role == "user":
            b.system(text, "instructions") if meta else b.user(text)
        else:
            b.assistant(text)
        return
    if not isinstance(content, list):
        raise _fail(
            b.origin,
            where,
            "content",
            f"a {type(content).__name__}; expected text or content blocks",
        )
    texts, calls = [], []
    for j, block in enumerate(content):
        if not isinstance(block, Mapping) or "type" not in block:
            raise _fail(b.origin, f"{where}, block {j}", "type", "a content block needs a 'type'")
        kind = block["type"]
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _fail(
                    b.origin,
                    f"{where}, block {j}",
                    "id/name",
                    "a tool_use block needs an id and a name",
                )
            calls.append(
                b.call(block["id"], block["name"], _arguments(block.get("input"), b.origin, where))
            )
        elif kind == "tool_result":
            if texts and role == "user":
                b.user("\n".join(texts))
                texts = []
            result = _text_of(block.get("content"), b.origin, f"{where}, block {j}")
            b.tool(
                block.get("tool_use_id"),
                result,
                f"{where}, block {j}",
                failed=bool(block.get("is_error")),
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        elif kind in ("image", "document"):
            texts.append(f"[{kind}]")
        else:
            texts.append(_text_of([block], b.origin, f"{where}, block {j}"))
    text = "\n".join(t for t in texts if t)
    if role == "assistant":
        b.assistant(text, calls)
    elif text:
        b.system(text, "instructions") if meta else b.user(text)


def load_anthropic(data, origin: str, source: str) -> Transcript:
    b = _Builder(origin)
    messages = data
    if isinstance(data, Mapping):
        b.system(_text_of(data.get("system"), origin, "system"))
        messages = data.get("messages")
    if not isinstance(messages, list):
        raise _fail(origin, "top level", "messages", "expected a list of messages")
    for i, m in enumerate(messages):
        where = f"message {i}"
        if not isinstance(m, Mapping) or m.get("role") not in ("user", "assistant", "system"):
            raise _fail(origin, where, "role", "expected 'user' or 'assistant'")
        _anthropic_message(b, m["role"], m.get("content"), where)
    return b.build("anthropic", source, sid=Path(source).stem if source else "transcript")


def load_claude_code(rows: list[tuple[int, dict]], origin: str, source: str) -> Transcript:
    """Claude Code's session JSONL: one record per line; an assistant message may span several
    lines."""
    b = _Builder(origin)
    sid, root = "", ""
    merged: list[tuple[int, str, object, bool]] = []  # (line, role, content, meta)
    last_id = None
    for n, row in rows:
        kind = row.get("type")
        if kind not in ("user", "assistant") or row.get("isSidechain"):
            continue  # summaries, system notices and subagent side chains are not this conversation
        message = row.get("message")
        if not isinstance(message, Mapping):
            raise _fail(
                origin, f"line {n}", "message", "a user or assistant record needs a message object"
            )
        sid = sid or str(row.get("sessionId", ""))
        root = root or str(row.get("cwd", ""))
        content = message.get("content")
        if (
            kind == "assistant"
            and merged
            and merged[-1][1] == "assistant"
            and message.get("id") == last_id
            and last_id is not None
        ):
            prev = merged[-1]
            merged[-1] = (prev[0], "assistant", list(prev[2]) + list(content or []), False)
            continue
        last_id = message.get("id") if kind == "assistant" else None
        if kind == "assistant" and isinstance(content, str):
            content = [{"type": "text", "text": content}]
        merged.append((n, kind, content, bool(row.get("isMeta"))))
    for n, role, content, meta in merged:
        _anthropic_message(b, role, content, f"line {n}", meta=meta)
    return b.build("claude_code", source, sid=sid or Path(source).stem, root=root)


# ---- SWE-agent and mini-swe-agent
# --------------------------------------------------------------------------


def load_swe_agent(data: Mapping, origin: str, source: str) -> Transcript:
    b = _Builder(origin)
    history = data.get("history")
    if not isinstance(history, list):
        raise _fail(origin, "top level", "history", "a .traj file needs a 'history' list")
    info = data.get("info") or {}
    steps = data.get("trajectory") or []
    root = (
        next(
            (
                s.get("state", {}).get("working_dir", "")
                for s in steps
                if isinstance(s, Mapping) and isinstance(s.get("state"), Mapping)
            ),
            "",
        )
        or ""
    )
    pending: list[str] = []  # synthesized calls (thought-action mode) awaiting their observation
    for i, m in enumerate(history):
        where = f"history[{i}]"
        if not isinstance(m, Mapping) or m.get("role") not in (
            "system",
            "user",
            "assistant",
            "tool",
        ):
            raise _fail(origin, where, "role", "expected one of system, user, assistant, tool")
        role, text = m["role"], _text_of(m.get("content"), origin, where)
        if m.get("is_demo") or m.get("message_type") == "demonstration":
            b.system(text, "demonstration")
        elif role == "system":
            b.system(text)
        elif role == "assistant":
            calls = []
            for j, c in enumerate(m.get("tool_calls") or []):
                fn = c.get("function", {}) if isinstance(c, Mapping) else {}
                if not isinstance(fn.get("name"), str):
                    raise _fail(
                        origin,
                        f"{where}.tool_calls[{j}]",
                        "function.name",
                        "a tool call needs a name",
                    )
                calls.append(
                    b.call(c.get("id"), fn["name"], _arguments(fn.get("arguments"), origin, where))
                )
            if not calls and str(m.get("action") or "").strip():
                calls.append(b.call(f"action_{i}", "bash", {"command": str(m["action"]).strip()}))
                pending = [calls[-1].id]
            b.assistant(str(m.get("thought") or text) if calls else text, calls)
        elif role == "tool":
            ids = m.get("tool_call_ids") or ([m["tool_call_id"]] if m.get("tool_call_id") else [])
            if not ids:
                raise _fail(
                    origin, where, "tool_call_ids", "a tool message must name the call it answers"
                )
            for cid in ids:
                b.tool(cid, text, where)
        elif pending and b.turns and b.turns[-1].role == "assistant":
            b.tool(pending.pop(), text, where)
        elif not b.task:
            b.user(text, task_text=task_from_prompt(text))
        else:
            b.user(text)
    return b.build(
        "swe_agent",
        source,
        sid=str(data.get("environment") or Path(source).stem),
        final_diff=str(info.get("submission") or ""),
        root=root or "/testbed",
    )


_BASH_BLOCK = re.compile(r"```(?:bash|sh|shell)?[ \t]*\n(.*?)\n```", re.S)
_RETURNCODE = re.compile(r"<returncode>\s*(-?\d+)\s*</returncode>")
_OUTPUT = re.compile(r"<output>\n?(.*?)</output>", re.S)


def load_mini_swe_agent(data: Mapping, origin: str, source: str) -> Transcript:
    b = _Builder(origin)
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise _fail(
            origin, "top level", "messages", "a mini-swe-agent trajectory needs a 'messages' list"
        )
    pending: str | None = None
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping) or m.get("role") not in (
            "system",
            "user",
            "assistant",
            "tool",
        ):
            raise _fail(origin, where, "role", "expected one of system, user, assistant, tool")
        role, text = m["role"], _text_of(m.get("content"), origin, where)
        if role == "system":
            b.system(text)
        elif role == "assistant":
            calls = []
            for c in m.get("tool_calls") or []:
                fn = c.get("function", {}) if isinstance(c, Mapping) else {}
                calls.append(
                    b.call(
                        c.get("id"),
                        str(fn.get("name", "bash")),
                        _arguments(fn.get("arguments"), origin, where),
                    )
                )
            if not calls:
                blocks = _BASH_BLOCK.findall(text)
                if blocks:
                    calls = [b.call(f"mini_{i}", "bash", {"command": blocks[-1].strip()})]
                    pending = calls[0].id
            b.assistant(text, calls)
        elif role == "tool":
            b.tool(m.get("tool_call_id"), text, where)
        elif pending is not None and _RETURNCODE.search(text):
            out = _OUTPUT.search(text)
            b.tool(
                pending,
                out.group(1) if out else text,
                where,
                exit_code=int(_RETURNCODE.search(text).group(1)),
            )
            pending = None
        else:
            pending = None
            b.user(text, task_text=task_from_prompt(text) if not b.task else None)
    info = data.get("info") or {}
    return b.build(
        "mini_swe_agent",
        source,
        sid=Path(source).name.split(".")[0],
        final_diff=str(info.get("submission") or ""),
    )


# ---- OpenHands
# ------------------------------------------------------------------------------------------

_OH_SKIP_OBSERVATIONS = {
    "recall",
    "agent_state_changed",
    "null",
    "user_rejected",
    "agent_condensation_observation",
}
_OH_BOOKKEEPING = {
    "thought",
    "blocking",
    "hidden",
    "confirmation_state",
    "is_input",
    "security_risk",
    "impl_source",
    "start",
    "end",
    "content",
    "image_urls",
    "wait_for_response",
    "include_extra",
}


def load_openhands(data, origin: str, source: str) -> Transcript:
    b = _Builder(origin)
    events = data.get("events") if isinstance(data, Mapping) else data
    if not isinstance(events, list):
        raise _fail(origin, "top level", "events", "expected a list of events")
    call_of: dict = {}  # event id of an action -> its call id
    root = ""
    for i, e in enumerate(events):
        where = f"event {e.get('id', i) if isinstance(e, Mapping) else i}"
        if not isinstance(e, Mapping):
            raise _fail(origin, where, "event", "an event must be an object")
        if "action" in e:
            action, args = e["action"], e.get("args", {})
            args = {} if args is None else args
            if not isinstance(args, Mapping):
                raise _fail(origin, where, "args", "expected an object")
            if action == "system":
                b.system(str(args.get("content") or e.get("message") or ""))
            elif action == "message":
                text = str(args.get("content") or e.get("message") or "")
                b.user(text) if e.get("source") == "user" else b.assistant(text)
            elif action in ("finish", "think"):
                b.assistant(
                    str(args.get("final_thought") or args.get("thought") or e.get("message") or "")
                )
            elif action in ("change_agent_state", "recall", "condensation"):
                continue
            else:
                meta = e.get("tool_call_metadata") or {}
                name = str(meta.get("function_name") or action)
                arguments = {
                    k: v
                    for k, v in args.items()
                    if k not in _OH_BOOKKEEPING and v not in (None, "")
                }
                if action == "edit" and "file_text" in args and args.get("file_text") is not None:
                    arguments["file_text"] = args["file_text"]
                call = b.call(meta.get("tool_call_id") or f"oh_{e.get('id', i)}", name, arguments)
                call_of[e.get("id", i)] = call.id
                b.assistant(str(args.get("thought") or ""), [call])
        elif "observation" in e:
            if e["observation"] in _OH_SKIP_OBSERVATIONS:
                continue
            cause = e.get("cause")
            extras = e.get("extras") or {}
            meta = extras.get("metadata") if isinstance(extras.get("metadata"), Mapping) else {}
            code = meta.get("exit_code", extras.get("exit_code"))
            root = root or str(meta.get("working_dir") or "")
            text = str(e.get("content") or "")
            if cause in call_of:
                b.latest[call_of[cause]] = call_of[cause]
                b.tool(
                    call_of[cause],
                    text,
                    where,
                    exit_code=code,
                    failed=e["observation"] == "error" or e.get("success") is False,
                )
            elif text:
                b.system(text, "output")
        else:
            raise _fail(
                origin,
                where,
                "action/observation",
                "an event is either an action or an observation",
            )
    return b.build("openhands", source, sid=Path(source).stem, root=root or "/workspace")


# ---- aider
# ------------------------------------------------------------------------------------------------

_RUN = re.compile(r"^/(?:run|test)\s+(.*)$|^!(.*)$", re.S)


def load_aider(text: str, origin: str, source: str) -> Transcript:
    """aider's markdown log: `#### ` lines are the user's, `> ` lines aider's own output, the
    rest the model's."""
    b = _Builder(origin)
    blocks: list[tuple[str, list[str]]] = []  # ("user" | "output" | "assistant", lines)
    # inside a ``` block of the model's reply, a line is the reply's, whatever it starts with
    fenced = False
    for line in text.splitlines():
        if fenced or (line.startswith("```") and not line.startswith(("> ", "#### "))):
            kind = "assistant"
            if line.startswith("```"):
                fenced = not fenced
        elif line.startswith("# aider chat started at"):
            kind = "start"
        elif line.startswith("#### ") or line == "####":
            kind, line = "user", line[5:]
        elif line.startswith("> ") or line.rstrip() == ">":
            kind, line = "output", line[2:]
            line = line[:-2] if line.endswith("  ") else line
        else:
            kind = "assistant"
        if kind == "start":
            blocks.append(("start", []))
            continue
        if blocks and blocks[-1][0] == kind:
            blocks[-1][1].append(line)
        elif kind == "assistant" and not line.strip():
            if blocks and blocks[-1][0] in ("user", "output"):
                continue  # the blank line that ends a user message or an output block
            blocks.append((kind, [line]))
        else:
            blocks.append((kind, [line]))
    pending: str | None = None
    for k, (kind, lines) in enumerate(blocks):
        body = "\n".join(lines).strip("\n")
        where = f"block {k + 1}"
        if kind == "start":
            continue
        if kind == "user":
            run = _RUN.match(body.strip())
            if run:
                command = (run.group(1) or run.group(2) or "").strip()
                call = b.call(f"aider_{k}", "run", {"command": command})
                b.add("user", body, "user")
                b.assistant("", [call])
                pending = call.id
            else:
                b.user(body)
        elif kind == "output":
            if pending is not None:
                b.tool(pending, body, where)
                pending = None
            elif b.turns:
                b.system(body, "output")
            else:
                b.system(
                    body, "instructions"
                )  # the launch banner: command line, model, files added
        elif body.strip():
            b.assistant(body)
    return b.build("aider", source, sid=Path(source).name.split(".")[0] or "aider")


# ---- Codex CLI
# ----------------------------------------------------------------------------------------------

_INJECTED = (
    "<environment_context>",
    "<user_instructions>",
    "# AGENTS.md",
    "<permissions",
    "<user_shell_command>",
)


def _codex_output(raw) -> tuple[str, int | None]:
    """A function_call_output's text and exit code (Codex wraps both in a JSON string)."""
    if isinstance(raw, Mapping):
        raw = raw.get("content", raw)
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return raw, None
        if isinstance(value, Mapping) and "output" in value:
            meta = value.get("metadata") or {}
            return str(value["output"]), meta.get("exit_code") if isinstance(
                meta, Mapping
            ) else None
        return raw, None
    return json.dumps(raw), None


def _codex_command(args: dict) -> dict:
    command = args.get("command")
    if isinstance(command, list):
        words = [str(w) for w in command]
        text = words[2] if len(words) >= 3 and words[1] in ("-lc", "-c") else " ".join(words)
        args = {**args, "command": text}
    return args


def load_codex(rows: list[tuple[int, dict]], origin: str, source: str) -> Transcript:
    b = _Builder(origin)
    root, sid = "", ""
    for n, row in rows:
        kind, item = row.get("type"), row.get("payload")
        where = f"line {n}"
        if kind == "session_meta" or (
            "instructions" in row and "id" in row and "payload" not in row
        ):
            meta = item if isinstance(item, Mapping) else row
            root, sid = str(meta.get("cwd") or root), str(meta.get("id") or sid)
            if meta.get("instructions"):
                b.system(str(meta["instructions"]))
            continue
        if kind in _ITEM_TYPES and item is None:
            item = row  # the older rollout format: response items at the top level
        elif kind != "response_item":
            continue  # turn_context, event_msg (the UI's copy of the same turns), compacted
        if not isinstance(item, Mapping):
            raise _fail(origin, where, "payload", "a response_item needs a payload object")
        t = item.get("type")
        if t == "message":
            role = item.get("role")
            text = _text_of(item.get("content"), origin, where)
            if role in ("developer", "system"):
                b.system(text, "instructions" if b.turns else "system_prompt")
            elif role == "user":
                b.system(text, "instructions") if text.lstrip().startswith(_INJECTED) else b.user(
                    text
                )
            elif role == "assistant":
                b.assistant(text)
            else:
                raise _fail(
                    origin, where, "role", f"{role!r}; expected user, assistant or developer"
                )
        elif t in ("function_call", "custom_tool_call", "local_shell_call"):
            if t == "custom_tool_call":
                args = {"input": item.get("input", "")}
            elif t == "local_shell_call":
                args = _codex_command(dict(item.get("action") or {}))
            else:
                args = _codex_command(_arguments(item.get("arguments"), origin, where))
            name = str(item.get("name") or ("shell" if t == "local_shell_call" else ""))
            if not name:
                raise _fail(origin, where, "name", "a function_call needs a name")
            call = b.call(item.get("call_id") or item.get("id"), name, args)
            last = b.turns[-1] if b.turns else None
            if last is not None and last.role == "assistant" and b.kinds[-1] == "assistant":
                last.tool_calls.append(call)  # calls made in one response share its assistant turn
            else:
                b.assistant("", [call])
        elif t in ("function_call_output", "custom_tool_call_output"):
            text, code = _codex_output(item.get("output"))
            b.tool(item.get("call_id"), text, where, exit_code=code)
        # reasoning items are encrypted or summaries of thought: not part of the conversation
    return b.build("codex", source, sid=sid or Path(source).stem, root=root)


LOADERS = {
    "openai": load_openai,
    "anthropic": load_anthropic,
    "claude_code": load_claude_code,
    "swe_agent": load_swe_agent,
    "mini_swe_agent": load_mini_swe_agent,
    "openhands": load_openhands,
    "aider": load_aider,
    "codex": load_codex,
}


def load_file(path: Path, format: str | None = None) -> Transcript:
    """Read, detect (unless `format` is given) and load a transcript file."""
    if format is not None and format not in FORMATS:
        raise ValueError(
            f"format={format!r} is not known; accepted: {', '.join(FORMATS)} (or None to detect it)"
        )
    text = read_text(path)
    fmt = format or detect_format(path, text)
    origin, source = str(path), str(path)
    if fmt == "aider":
        return load_aider(text, origin, source)
    if fmt in ("claude_code", "codex"):
        return LOADERS[fmt](json_lines(text, origin), origin, source)
    if fmt in ("openai", "anthropic") and (path.suffix == ".jsonl" or _is_jsonl(text)):
        data = [row for _, row in json_lines(text, origin)]
    else:
        data = _json_document(text, origin)
    if fmt in ("swe_agent", "mini_swe_agent") and not isinstance(data, Mapping):
        raise TranscriptError(
            f"{origin}: a {fmt} trajectory is a JSON object, got a {type(data).__name__}"
        )
    return LOADERS[fmt](data, origin, source)


def load_transcript(source, format: str | None = None) -> Transcript:
    """An agent's log as a Transcript (a Session with no probes, record or planted facts).

    source: a path to a log in one of FORMATS (detected unless `format` names it), or a list of
    OpenAI chat message dicts. Errors name the file, the line or record, and the field.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(
                f"{source!s}: no such file; pass a transcript path (formats: {', '.join(FORMATS)}) "
                "or a list of message dicts"
            )
        return load_file(path, format)
    if isinstance(source, list):
        if format in (None, "openai"):
            return load_messages(source, "transcript")
        if format == "anthropic":
            return load_anthropic(source, "transcript", "")
        raise ValueError(
            f"a list of messages is read as format 'openai' or 'anthropic', not {format!r}"
        )
    raise ValueError(
        f"load_transcript takes a path or a list of message dicts, got {type(source).__name__}"
    )
