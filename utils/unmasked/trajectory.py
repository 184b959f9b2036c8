"""Structural facts of an agent's trajectory: what it changed, what failed, what it was asked, where
it stopped.

Read from the structure of any loaded transcript (tool calls, their arguments, exit codes, the
final diff), not from how anyone phrased things:

- files modified: edit tool calls of every kind (str_replace_editor, Claude Code's Edit / Write /
  MultiEdit, apply_patch, write_file, ...), shell commands that write files (`sed -i`, `> file`,
  heredocs, `tee`, `rm`, `mv`, `touch`, ...), SWE-agent's `edit` on the open file, and aider's
  SEARCH/REPLACE blocks; cross-checked with the final diff where the log has one;
- failed commands: a non-zero exit code, a tool result marked as an error, or, where the log
  records no exit code, a traceback or a test runner's failure summary; each with the error's
  last line;
- the task (the transcript's, never a demonstration's);
- the last action and its result.

    from unmasked.trajectory import trajectory_facts
    facts = trajectory_facts(load_transcript("run.traj"))
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from unmasked.sessions import Session, Transcript

_PATH_KEYS = (
    "path",
    "file_path",
    "notebook_path",
    "filename",
    "file",
    "target_file",
    "dest",
    "destination",
)
_COMMAND_KEYS = ("command", "cmd", "script", "code")
_EDIT_TOOL = re.compile(
    r"write|edit|patch|replace|create|insert|append|delete|remove|rename|move", re.I
)
_COMMAND_TOOL = re.compile(
    r"^(?:bash|shell|sh|run|exec|execute_bash|execute_command|terminal|run_command|"
    r"run_shell_command|local_shell|container\.exec)$",
    re.I,
)
_EDITOR_WRITES = {"create", "str_replace", "insert", "undo_edit", "write", "edit", "append"}


@dataclass
class FileEdit:
    """One change to one file: where it happened and how."""

    path: str
    # the tool or shell construct: "str_replace_editor", "apply_patch", "sed -i", "heredoc", ...
    how: str
    turn: int  # index of the assistant turn that made it
    change: str = ""  # what changed, when the call says (old -> new, or the command)


@dataclass
class FailedCommand:
    """A command (or tool call) that failed, with the last line of its error."""

    command: str
    exit_code: int | None
    error: str
    turn: int  # index of the tool result that reports the failure
    call_id: str = ""


@dataclass
class TrajectoryFacts:
    task: str
    edits: list[FileEdit] = field(default_factory=list)
    failed_commands: list[FailedCommand] = field(default_factory=list)
    last_action: str = ""
    last_result: str = ""
    final_diff_files: list[str] = field(default_factory=list)
    format: str = ""

    @property
    def files_modified(self) -> list[str]:
        """Every file an edit touched, in the order of its first edit."""
        return list(dict.fromkeys(e.path for e in self.edits))

    @property
    def confirmed_by_diff(self) -> list[str]:
        return [p for p in self.files_modified if p in self.final_diff_files]

    @property
    def only_in_diff(self) -> list[str]:
        """Files the final diff changes that no edit in the log was seen to touch."""
        return [p for p in self.final_diff_files if p not in self.files_modified]


# ---- paths
# -----------------------------------------------------------------------------------------

_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)|^\+\+\+ (?:b/)?(\S+)", re.M)


def diff_files(diff: str) -> list[str]:
    """The files a unified or git diff changes, in order."""
    out = []
    for m in _DIFF_FILE.finditer(diff or ""):
        path = m.group(2) or m.group(3)
        if path and path != "/dev/null":
            out.append(path)
    return list(dict.fromkeys(out))


def relative(path: str, root: str = "", known: Sequence[str] = ()) -> str:
    """A path as the repository names it: relative to the agent's working directory."""
    path = path.strip().strip("'\"")
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1 :]
    for k in known:
        if path.endswith("/" + k):
            return k
    return path.removeprefix("./")


# ---- edits in shell commands
# -------------------------------------------------------------------------

_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_REDIRECT = re.compile(r"(?<![0-9&<>])>>?\s*(?!&)([^\s;&|<>()]+)")
_SPLIT = re.compile(r"&&|\|\||[;|\n]")


def _strip_heredocs(command: str) -> tuple[str, bool]:
    """The command without the bodies of its heredocs (whose lines are data, not commands)."""
    lines, out, had = command.split("\n"), [], False
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        delimiters = [m.group(2) for m in _HEREDOC.finditer(line)]
        i += 1
        for d in delimiters:
            had = True
            while i < len(lines) and lines[i].strip() != d:
                i += 1
            i += 1  # the delimiter line
    return "\n".join(out), had


def _words(simple: str) -> list[str]:
    try:
        return shlex.split(simple, posix=True)
    except ValueError:
        return simple.split()


def _redirect_targets(simple: str) -> list[str]:
    """Files an output redirection (`>`, `>>`) writes, outside quotes."""
    try:
        lexer = shlex.shlex(simple, posix=True, punctuation_chars=True)
        tokens = list(lexer)
    except ValueError:
        return [m.group(1) for m in _REDIRECT.finditer(simple)]
    out = []
    for k, tok in enumerate(tokens[:-1]):
        if tok in (">", ">>", ">|") and not (
            k and tokens[k - 1].isdigit() and tokens[k - 1] != "1"
        ):
            out.append(tokens[k + 1])
    return out


def shell_edits(command: str) -> list[tuple[str, str]]:
    """(path, how) for every file a shell command writes, moves or deletes."""
    body, heredoc = _strip_heredocs(command)
    found: list[tuple[str, str]] = []
    for simple in _SPLIT.split(body):
        simple = simple.strip()
        if not simple:
            continue
        for target in _redirect_targets(simple):
            if target.startswith("/dev/") or target.startswith("$"):
                continue
            how = (
                "heredoc"
                if heredoc and "<<" in simple
                else f"{_words(simple)[0] if _words(simple) else ''} >"
            )
            found.append((target, how.strip()))
        words = _words(re.sub(r"(?<![0-9&<>])>>?\s*\S+|<<-?\s*\S+|<\s*\S+|2>&1|2>\S+", " ", simple))
        while words and re.fullmatch(r"\w+=\S*", words[0]):
            words = words[1:]  # VAR=value before the command
        if not words:
            continue
        prog, args = words[0].rsplit("/", 1)[-1], words[1:]
        if prog == "sed" and any(a.startswith("-i") or a == "--in-place" for a in args):
            plain = [a for a in args if not a.startswith("-")]
            scripted = any(a in ("-e", "--expression") or a.startswith("-f") for a in args)
            for p in plain if scripted else plain[1:]:
                found.append((p, "sed -i"))
        elif prog in ("tee",):
            found += [(a, "tee") for a in args if not a.startswith("-")]
        elif prog in ("rm", "touch", "truncate"):
            found += [(a, prog) for a in args if not a.startswith("-")]
        elif prog in ("mv", "cp") and len([a for a in args if not a.startswith("-")]) >= 2:
            plain = [a for a in args if not a.startswith("-")]
            found += [(a, prog) for a in (plain if prog == "mv" else plain[-1:])]
        elif prog == "git" and args[:1] in (["mv"], ["rm"]):
            found += [(a, f"git {args[0]}") for a in args[1:] if not a.startswith("-")]
    return [(p, how) for p, how in found if p and not p.endswith("/")]


# ---- edits in tool calls
# -------------------------------------------------------------------------------

_PATCH_FILE = re.compile(r"^\*\*\* (?:Update|Add|Delete) File: (.+)$|^\*\*\* Move to: (.+)$", re.M)


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def command_of(name: str, args: Mapping) -> str:
    for key in _COMMAND_KEYS:
        value = args.get(key)
        if (
            isinstance(value, str)
            and value.strip()
            and not (key == "command" and value in _EDITOR_WRITES | {"view"})
        ):
            return value
        if isinstance(value, list) and value and all(isinstance(w, str) for w in value):
            return " ".join(value[2:] if value[1:2] in (["-lc"], ["-c"]) else value)
    return ""


def call_edits(name: str, args: Mapping) -> list[tuple[str, str, str]]:
    """(path, how, change) for the files a tool call changes, from its name and arguments."""
    out = []
    texts = [v for v in args.values() if isinstance(v, str)]
    patches = [t for t in texts if "*** Begin Patch" in t or _PATCH_FILE.search(t)]
    for patch in patches:
        for m in _PATCH_FILE.finditer(patch):
            out.append(((m.group(1) or m.group(2)).strip(), "apply_patch", ""))
    if patches:
        return out
    for t in texts:
        if t.startswith("diff --git") or "\n+++ " in t:
            out += [(p, name or "patch", "") for p in diff_files(t)]
    if out:
        return out
    paths = [args[k] for k in _PATH_KEYS if isinstance(args.get(k), str)]
    sub = args.get("command") if isinstance(args.get("command"), str) else ""
    if paths and (
        sub in _EDITOR_WRITES or (sub not in ("view",) and _EDIT_TOOL.search(name or ""))
    ):
        if isinstance(args.get("old_str"), str) or isinstance(args.get("old_string"), str):
            old = args.get("old_str", args.get("old_string"))
            new = args.get("new_str", args.get("new_string", ""))
            change = f"{_clip(old, 60)!r} -> {_clip(new, 60)!r}"
        elif isinstance(args.get("edits"), list):
            change = f"{len(args['edits'])} replacements"
        elif (
            sub == "create"
            or isinstance(args.get("file_text"), str)
            or isinstance(args.get("content"), str)
        ):
            change = "wrote the whole file"
        else:
            change = sub
        out += [(p, name if not sub else f"{name} {sub}".strip(), change) for p in paths]
    return out


_AIDER_BLOCK = re.compile(
    r"^([^\s`][^\n`]*?)\n```[^\n]*\n<<<<<<< SEARCH\n(.*?)\n=======\n(.*?)\n>>>>>>> REPLACE",
    re.M | re.S,
)
_AIDER_APPLIED = re.compile(r"^Applied edit to (\S+)", re.M)
_OPEN = re.compile(r"^(?:open|create|goto_file)\s+\"?([^\s\"]+)", re.M)
_FILE_HEADER = re.compile(r"^\[File: (\S+) \(\d+ lines total\)\]", re.M)
_SWE_EDIT = re.compile(r"^edit\s+\d+:\d+", re.M)


# ---- failures
# --------------------------------------------------------------------------------------------

_EXIT_MARK = re.compile(
    r"\[?(?:exit code|exit status|returncode|Process exited with code|The command completed "
    r"with exit code)[:\s]+(-?\d+)\.?\]?",
    re.I,
)
_EXCEPTION_LINE = re.compile(
    r"^\s*(?:E\s+)?((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failure)"
    r"(?::.*)?)\s*$",
    re.M,
)
_FAIL_WORDS = re.compile(r"\b(?:error|fatal|FAILED|failed|panic)\b", re.I)
_TEST_FAILURE = re.compile(
    r"^=*\s*(?:\d+ failed|\d+ errors?)\b.*\bin [\d.]+s\b|^FAILED \S+|^ERROR \S+", re.M
)


def error_line(text: str) -> str:
    """The last line of an error: the final exception line, else the last line that says it
    failed."""
    lines = [
        ln
        for ln in (text or "").splitlines()
        if ln.strip() and not _EXIT_MARK.fullmatch(ln.strip())
    ]
    exceptions = _EXCEPTION_LINE.findall("\n".join(lines))
    if exceptions:
        return exceptions[-1].strip()
    for line in reversed(lines):
        if _FAIL_WORDS.search(line):
            return line.strip()
    return lines[-1].strip() if lines else ""


def exit_code_in(text: str) -> int | None:
    """An exit code the tool printed into its own output ("[exit code: 1]", "Exit code 2")."""
    text = text or ""
    if len(text) > 1_200:  # tools print it first ("Exit code 1") or last ("[exit code: 1]")
        text = text[:400] + "\n" + text[-600:]
    marks = list(_EXIT_MARK.finditer(text))
    return int(marks[-1].group(1)) if marks else None


def looks_failed(text: str) -> bool:
    """For logs with no exit code: a Python traceback or a test runner's failure summary."""
    text = text or ""
    return "Traceback (most recent call last)" in text or bool(_TEST_FAILURE.search(text[-4_000:]))


# ---- the facts
# -------------------------------------------------------------------------------------------


def _as_turns(source):
    if isinstance(source, Session):
        return source
    return None


def _messages(source) -> list[dict]:
    if isinstance(source, Session):
        return source.messages()
    return [m.to_message() if hasattr(m, "to_message") else dict(m) for m in source]


def _arguments(call: Mapping) -> dict:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return {"input": args}
    return args if isinstance(args, dict) else {"input": args}


def trajectory_facts(source, task: str | None = None) -> TrajectoryFacts:
    """The structural facts of a Transcript, a Session, or a list of chat messages."""
    transcript = source if isinstance(source, Transcript) else None
    messages = _messages(source)
    kinds = transcript.kinds if transcript else [m["role"] for m in messages]
    root = transcript.root if transcript else ""
    final = diff_files(transcript.final_diff) if transcript else []
    if task is None:
        task = (
            source.task
            if isinstance(source, Session)
            else next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
        )
    facts = TrajectoryFacts(
        task=task, final_diff_files=final, format=transcript.format if transcript else ""
    )
    calls: dict[str, tuple[str, dict, int]] = {}
    open_file = ""
    for i, m in enumerate(messages):
        role, text = m.get("role"), m.get("content") or ""
        if kinds[i] in ("system_prompt", "demonstration", "instructions"):
            continue
        if role == "assistant":
            for block in _AIDER_BLOCK.finditer(text):
                path = block.group(1).strip().strip("`*")
                facts.edits.append(
                    FileEdit(
                        relative(path, root, final),
                        "aider edit block",
                        i,
                        f"{_clip(block.group(2), 60)!r} -> {_clip(block.group(3), 60)!r}",
                    )
                )
            for call in m.get("tool_calls") or []:
                name = str(call.get("function", call).get("name", ""))
                args = _arguments(call)
                calls[str(call.get("id"))] = (name, args, i)
                command = command_of(name, args)
                edits = call_edits(name, args)
                for path, how, change in edits:
                    facts.edits.append(FileEdit(relative(path, root, final), how, i, change))
                if command and not edits:
                    for path, how in shell_edits(command):
                        facts.edits.append(
                            FileEdit(relative(path, root, final), how, i, _clip(command, 120))
                        )
                    opened = _OPEN.search(command)
                    if opened:
                        open_file = opened.group(1)
                    if _SWE_EDIT.search(command) and open_file:
                        facts.edits.append(
                            FileEdit(
                                relative(open_file, root, final),
                                "edit (open file)",
                                i,
                                _clip(command, 120),
                            )
                        )
                shown = command or _clip(json.dumps(args, ensure_ascii=False, sort_keys=True), 120)
                facts.last_action = f"{name}: {shown}"
                facts.last_result = ""
        elif role == "tool":
            cid = str(m.get("tool_call_id"))
            header = _FILE_HEADER.search(text) if "[File: " in text else None
            if header and not (
                open_file and header.group(1).endswith("/" + open_file.lstrip("./"))
            ):
                open_file = header.group(
                    1
                )  # the editor's own header, unless it is the file just opened
            name, args, _ = calls.get(cid, ("", {}, i))
            command = command_of(name, args)
            code = transcript.exit_codes.get(cid) if transcript else None
            code = exit_code_in(text) if code is None else code
            marked = bool(transcript and transcript.failed.get(cid))
            is_command = bool(command) or bool(_COMMAND_TOOL.match(name))
            failed = (
                (code is not None and code != 0)
                or marked
                or (code is None and is_command and looks_failed(text))
            )
            if failed:
                label = (
                    command
                    or f"{name}({', '.join(f'{k}={_clip(v, 40)}' for k, v in args.items())})"
                )
                facts.failed_commands.append(FailedCommand(label, code, error_line(text), i, cid))
            tail = text[-2_000:].splitlines()[1:] if len(text) > 2_000 else text.splitlines()
            lines = [
                ln.strip() for ln in tail if ln.strip() and not _EXIT_MARK.fullmatch(ln.strip())
            ]
            facts.last_result = (
                lines[-1][:200] if lines else "(no output)"
            )  # verbatim, as the context has it
        elif role == "system" and kinds[i] == "output":
            for applied in _AIDER_APPLIED.findall(text):
                path = relative(applied, root, final)
                if path not in facts.files_modified:
                    facts.edits.append(FileEdit(path, "aider (applied edit)", i))
    return facts


def facts_table(facts: TrajectoryFacts) -> list[dict]:
    """The facts as rows (fact, value) for a notebook table."""
    rows = [{"fact": "task", "value": _clip(facts.task, 200)}]
    for path in facts.files_modified:
        hows = sorted({e.how for e in facts.edits if e.path == path})
        confirmed = " (in the final diff)" if path in facts.final_diff_files else ""
        rows.append({"fact": "file modified", "value": f"{path} via {', '.join(hows)}{confirmed}"})
    for path in facts.only_in_diff:
        rows.append({"fact": "file in the final diff only", "value": path})
    for f in facts.failed_commands:
        code = "?" if f.exit_code is None else f.exit_code
        rows.append(
            {"fact": "failed command", "value": f"{_clip(f.command, 80)} (exit {code}): {f.error}"}
        )
    rows.append({"fact": "last action", "value": facts.last_action})
    rows.append({"fact": "its result", "value": facts.last_result})
    return rows


__all__ = [
    "FailedCommand",
    "FileEdit",
    "TrajectoryFacts",
    "call_edits",
    "command_of",
    "diff_files",
    "error_line",
    "exit_code_in",
    "facts_table",
    "looks_failed",
    "relative",
    "shell_edits",
    "trajectory_facts",
]
