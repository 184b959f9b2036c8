"""Rungs 4 and 5: an extractive structured summary, and its anchored iterative merge.

No model. What the structure of the trajectory says comes first (`unmasked.trajectory`): the
files that edit calls and shell commands changed, the commands that failed with their error's
last line, the last action and its result. Then a few sentence cues of the kind agents write
(decisions, reversals, "currently", "next, I'll") add decisions, state and next step; none was
added because our session generator writes it. The summary lays this out in sections, in the
spirit of Claude Code's compaction prompt (primary request, key decisions, files and code,
errors and fixes, current work, next step). Sentences are copied, not paraphrased, so exact
error messages, ports, versions and paths survive; decisions that were later reversed are kept
but marked superseded (latest wins).

`extract_notes` is incremental: the anchored compactor (Factory's "anchored iterative
summarization") keeps one `Notes` object and merges only the newly dropped span into it, while
the regenerate compactor rebuilds the notes each time from what is left in the context, its
own previous summary included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from unmasked.tokens import count_tokens
from unmasked.trajectory import trajectory_facts

from .compactors import Compactor, newest_that_fit
from .messages import SUMMARY_PREFIX, arguments_of, call_name

# ---- patterns ---------------------------------------------------------------------------------

_EXT = (
    r"py|pyi|ts|tsx|js|jsx|mjs|go|rs|java|kt|rb|php|c|h|cc|cpp|hpp|cs|swift|scala|sql|sh|toml|json|"
    r"ya?ml|md|rst|txt|cfg|ini|lock|mod|sum|env|html|css|scss|proto|tf|ipynb|csv|xml|conf"
)
PATH_BODY = (
    rf"(?:\.{{0,2}}/)?(?:[\w.-]+/)*[\w-][\w.-]*\.(?:{_EXT})|(?:[\w.-]+/)*(?:Makefile|Dockerfile)"
)
PATH = re.compile(rf"(?<![\w/.@-])({PATH_BODY})(?![\w/-])")
DECISION = re.compile(
    r"\b(decided|decision\b|we(?:'ll| will| should) (?:use|go|keep|switch|stick|move)|going "
    r"with|go with|"
    r"let's (?:use|go|switch|keep)|switch(?:ed|ing)? (?:to|back|from)|chose|choose|picked|settled? "
    r"on|"
    r"stick(?:ing)? with|opt(?:ed)? for|instead of|rather than|ruled (?:it )?out|considered but|"
    r"change of plan|reverse (?:the|that|our)|revert(?:ing)? to|the plan is to|plan:|"
    r"let me (?:first )?try|(?:I|we) will "
    r"(?:run|use|keep|switch|move|go|store|stick)|abandon(?:ed|ing)?)",
    re.I,
)
REVERSAL = re.compile(
    r"\b(change of plan|actually|switch(?:ed|ing)? back|switch(?:ed|ing)? "
    r"(?:from|away)|revert(?:ed|ing)? to|"
    r"revers(?:e|ed|ing)|no longer|scrap(?:ped)?|on second thought|turns out|"
    r"we(?:'re| are) dropping|abandon(?:ed|ing)?|does not work|did not work|doesn't work)\b",
    re.I,
)
REASON = re.compile(r"\b(?:because|since|so that|due to|given that)\b\s*(.+?)\.?$", re.I)
STATE = re.compile(r"\b(?:current state|status:|so far,|right now|at this point|currently)\b", re.I)
DONE = re.compile(r"\b(?:done|finished|completed)\b", re.I)
NEXT = re.compile(
    r"(?:\bnext(?: step)?\s*[:,-]|\bnext,? (?:I|we)(?:'ll| will)|\bthen (?:I|we)(?:'ll| "
    r"will)|\bTODO:|"
    r"\bremaining:|\b(?:I|we)(?:'ll| will) now\b|\bthe next step\b|\bafter that,? (?:I|we)(?:'ll| "
    r"will))",
    re.I,
)
ERROR = re.compile(
    r"^[^\n]*?(?:\b[A-Z]\w*(?:Error|Exception)\b|\bTraceback\b|\bFAILED\b|\berror(?:\[\w+\])?:|\bERROR\b|"
    r"\bfatal:|\bpanic:|\bfailed:|\bfailed with\b|\bcrashed with\b)[^\n]*$",
    re.M,
)
ERROR_CORE = re.compile(
    r"(?:\b[A-Za-z_][\w.]*(?:Error|Exception)\b|\bpanic|\bfatal|\bFAILED\b)[:\s][^\n]*"
)
TEST_RESULT = re.compile(
    r"^[^\n]*(?:\b\d+ (?:passed|failed)\b|\btests? (?:passed|failed)\b|^(?:ok|FAIL|PASS)\b\s|"
    r"\bTests:\s+\d+)[^\n]*$",
    re.M | re.I,
)
VALUE_PATTERNS = (
    (
        "port",
        re.compile(
            r"\bport\s*(?:=|:|is|to|of)?\s*(\d{2,5})\b|(?:localhost|127\.0\.0\.1|0\.0\.0\.0):(\d{2,5})\b",
            re.I,
        ),
    ),
    ("env", re.compile(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+|[A-Z]{3,})\s*=\s*([^\s,;]+)")),
    (
        "version",
        re.compile(
            r"\b([A-Za-z][\w.-]*)\s*(?:==|>=|<=|~=|@)\s*v?(\d+(?:\.\d+)+)\b|"
            r"\b(?:pin(?:ned)?|upgrade[ds]?|downgrade[ds]?|bump(?:ed)?)\s+(?:the\s+)?([A-Za-z][\w.-]*)"
            r"\s+(?:\w+\s+)?to\s+v?(\d+(?:\.\d+)+)\b",
            re.I,
        ),
    ),
    (
        "setting",
        re.compile(
            r"\bset(?:ting)?\s+(?:the\s+)?([A-Za-z_][\w.-]*(?:\s[a-z_]+)?)\s+to\s+([^\s,;]+)", re.I
        ),
    ),
)
READ_TOOL = re.compile(r"read|view|open|cat|grep|search|find|list|ls|glob|look", re.I)
BACKTICKED = re.compile(r"`([^`\n]+)`")
FILE_STATUS = re.compile(
    rf"(?<![\w/.@-])({PATH_BODY})\s*[\[(](modified|created|changed|edited|read "
    r"only|reverted)[^\])]*[\])]"
    r"(?::\s*([^\n]*))?",
    re.I,
)
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])|\n+")
WORD = re.compile(r"[a-z][a-z0-9_.-]{2,}")
STOP = frozenset(
    "the and for with that this from into then than have has had will would should could been were "
    "was are "
    "our use using used instead rather because since decided decision going let's we'll choose "
    "chose picked "
    "back plan change actually not but its it's all any can just now also only still new old one "
    "two via per "
    "after before when what which who why how there their them they you your yes out off too very "
    "much more "
    "less over under keep kept stick settle settled switch switched switching moved move make made "
    "done "
    "first last next step approach work here does did option simplest try let plan".split()
)
MAX_LINE = 300
REPORTS = 3  # how many of the agent's latest reports (messages without tool calls) the notes keep
# How the summary marks what is no longer true, so that a reader (or a probe answerer) can skip it.
SUPERSEDED = "SUPERSEDED"
REVERTED = "REVERTED (edit undone)"
OLD_VALUE = "(old, replaced later) "
STALE_MARKERS = (SUPERSEDED, REVERTED, OLD_VALUE.strip())


def _clip(text: str, n: int = MAX_LINE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3].rstrip() + "..."


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text) if s and s.strip()]


def _topic(text: str) -> set[str]:
    """Content words, crudely singular, for matching a reversal to the decision it reverses."""
    words = (w.strip(".-") for w in WORD.findall(text.lower()))
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words if w not in STOP}


def _clean_path(p: str) -> str | None:
    p = p.strip("`'\",;:()[]").rstrip(".")
    m = PATH.fullmatch(p) or PATH.search(p)
    return m.group(1) if m else None


# ---- the notes ----------------------------------------------------------------------------------


@dataclass
class Decision:
    text: str
    reason: str
    turn: int
    superseded_by: int | None = None  # index into Notes.decisions of the decision that replaced it


@dataclass
class FileNote:
    path: str
    modified: bool = False
    read: bool = False
    reverted: bool = False
    changes: list[str] = field(default_factory=list)
    last_turn: int = 0


@dataclass
class ErrorNote:
    text: str
    first_turn: int
    last_turn: int
    count: int = 1
    discussed: bool = False


@dataclass
class ValueNote:
    key: str
    text: str
    turn: int
    superseded: bool = False


@dataclass
class Notes:
    """Everything the extractive compactor keeps, before it is laid out within a budget."""

    task: str = ""
    request: str = ""
    decisions: list[Decision] = field(default_factory=list)
    files: dict[str, FileNote] = field(default_factory=dict)
    errors: list[ErrorNote] = field(default_factory=list)
    error_index: dict[str, int] = field(default_factory=dict)  # text -> index, to count repeats
    values: list[ValueNote] = field(default_factory=list)
    current_values: dict[str, int] = field(default_factory=dict)  # key -> index of its live value
    state: str = ""  # the latest sentence that says where things stand
    last_message: str = ""  # the latest assistant message, as a fallback for the state
    reports: list[str] = field(
        default_factory=list
    )  # the latest assistant messages that call no tool
    last_action: str = ""  # the last tool call and the last line of its result
    tests: str = ""
    next_step: str = ""
    turns_seen: int = 0

    def current_decisions(self) -> list[Decision]:
        return [d for d in self.decisions if d.superseded_by is None]

    def superseded_decisions(self) -> list[Decision]:
        return [d for d in self.decisions if d.superseded_by is not None]


def _add_decision(notes: Notes, sentences: list[str], turn: int) -> None:
    """One decision per message: its decision sentences together, since a reversal and its
    replacement are usually said in one breath ("Change of plan: ... Decision: X, because Y")."""
    text = _clip(" ".join(sentences), 2 * MAX_LINE)
    if any(d.text == text for d in notes.decisions[-20:]):
        return
    m = next((REASON.search(x) for x in sentences if REASON.search(x)), None)
    reason = _clip(m.group(1) if m else "", 160)
    cues = [x for x in sentences if REVERSAL.search(x)]
    if cues:  # a reversal supersedes the live decision it shares most content words with
        topic = _topic(" ".join(cues))
        best, best_shared = None, 0
        for d in notes.decisions:
            if d.superseded_by is None:
                shared = len(topic & _topic(d.text))
                if shared >= best_shared and shared > 0:
                    best, best_shared = d, shared
        if best is not None:
            best.superseded_by = len(notes.decisions)
    notes.decisions.append(Decision(text, reason, turn))


def _add_value(notes: Notes, key: str, line: str, turn: int) -> None:
    """Latest wins: a new line for the same key marks the previous one as replaced."""
    current = notes.current_values.get(key)
    if current is not None and notes.values[current].text == line:
        notes.values[current].turn = turn
        return
    if current is not None:
        notes.values[current].superseded = True
    notes.current_values[key] = len(notes.values)
    notes.values.append(ValueNote(key, line, turn))


def _file(notes: Notes, path: str, turn: int) -> FileNote:
    note = notes.files.get(path)
    if note is None:
        note = notes.files[path] = FileNote(path)
    note.last_turn = turn
    return note


def _mark_modified(notes: Notes, path: str, change: str, turn: int) -> None:
    note = _file(notes, path, turn)
    note.modified = True
    note.reverted = False  # a later edit supersedes an earlier revert
    change = _clip(change, 160)
    if change and change not in note.changes:
        note.changes.append(change)


def _mark_reverted(notes: Notes, path: str, turn: int) -> None:
    note = _file(notes, path, turn)
    note.reverted = True


# substring tests before the regular expressions: most tool outputs contain neither
_TEST_WORDS = ("passed", "failed", "Passed", "Failed", "PASS", "FAIL", "ok ", "Tests:")
_PORT_WORDS = ("port", "Port", "PORT", "localhost", "127.0.0.1", "0.0.0.0")
_READ_TOOL = re.compile(r"read|view|open|cat|grep|search|find|list|ls|glob|look", re.I)
_PATH_KEYS = ("path", "file_path", "notebook_path", "file", "filename", "target")
_REVERT_COMMAND = re.compile(r"\bgit (?:checkout\s+(?:\S+\s+)?--|restore)\s|\bgit revert\b")


def _from_structure(notes: Notes, messages: list[dict], turn0: int) -> None:
    """Files changed, commands failed and the last action, from the trajectory's structure."""
    facts = trajectory_facts(messages, task=notes.task)
    edited = {e.turn for e in facts.edits}
    for m_index, m in enumerate(messages):
        said = _sentences(m.get("content") or "") if m_index in edited else []
        for call in m.get("tool_calls") or []:
            args = arguments_of(call)
            command = next(
                (args[k] for k in ("command", "cmd", "script") if isinstance(args.get(k), str)), ""
            )
            if command and _REVERT_COMMAND.search(command):
                for path in PATH.findall(command):
                    _mark_reverted(notes, path, turn0 + m_index)
            elif _READ_TOOL.search(call_name(call)):
                for key in _PATH_KEYS:
                    path = _clean_path(args[key]) if isinstance(args.get(key), str) else None
                    if path:
                        _file(notes, path, turn0 + m_index).read = True
        for edit in (e for e in facts.edits if e.turn == m_index):
            # what changed: the call's own old -> new where it has one, else the words that came
            # with it
            change = edit.change if "->" in edit.change or not said else said[0]
            _mark_modified(notes, edit.path, change, turn0 + m_index)
    for failure in facts.failed_commands:
        code = "" if failure.exit_code is None else f" (exit {failure.exit_code})"
        line = _clip(f"{failure.error} [from `{_clip(failure.command.splitlines()[0], 80)}`{code}]")
        known = notes.error_index.get(failure.error)
        if known is not None:
            e = notes.errors[known]
            e.last_turn, e.count, e.text = turn0 + failure.turn, e.count + 1, line
        else:
            notes.error_index[failure.error] = len(notes.errors)
            notes.errors.append(
                ErrorNote(line, turn0 + failure.turn, turn0 + failure.turn, discussed=True)
            )
    if facts.last_action:
        notes.last_action = _clip(
            f"{facts.last_action} -> {facts.last_result or '(no result yet)'}", 300
        )


def _from_text(
    notes: Notes,
    role: str,
    text: str,
    turn: int,
    *,
    summary: bool = False,
    quoted_errors: bool = True,
) -> None:
    # errors the user or the agent quote in prose (the tools' errors come from the structure)
    if role in ("user", "assistant") and quoted_errors:
        for m in ERROR.finditer(text):
            line = m.group(0).strip()
            if line.startswith("Traceback") and line.rstrip(":").endswith("last)"):
                continue
            quoted = next((q for q in BACKTICKED.findall(line) if ERROR_CORE.search(q)), None)
            core = ERROR_CORE.search(line)
            line = _clip(quoted or (core.group(0) if core and len(line) > 200 else line))
            if any(line in e.text or e.text.startswith(line) for e in notes.errors):
                continue
            notes.error_index[line] = len(notes.errors)
            notes.errors.append(ErrorNote(line, turn, turn, discussed=True))
    if role == "tool":
        tests = TEST_RESULT.findall(text) if any(w in text for w in _TEST_WORDS) else None
        if tests:
            notes.tests = _clip(tests[-1], 200)
    for kind, pattern in VALUE_PATTERNS:
        if kind != "port" and role == "tool":
            continue  # install logs and file dumps are full of versions nobody chose
        if kind == "port" and not any(w in text for w in _PORT_WORDS):
            continue
        for m in pattern.finditer(text):
            name = next((g for g in m.groups() if g), "")
            key = "port" if kind == "port" else f"{kind}:{name.lower()}"
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line = _clip(text[line_start : line_end if line_end >= 0 else len(text)], 200)
            _add_value(notes, key, line, turn)
    if role not in ("user", "assistant"):
        return
    if summary:  # a previous summary's file lines: "src/app.py [modified]: ...", "x.py [read only]"
        for m in FILE_STATUS.finditer(text):
            status, change = m.group(2).lower(), (m.group(3) or "").strip()
            if status.startswith("read"):
                _file(notes, m.group(1), turn).read = True
            elif status.startswith("reverted"):
                _mark_modified(notes, m.group(1), change, turn)
                _mark_reverted(notes, m.group(1), turn)
            else:
                _mark_modified(notes, m.group(1), change, turn)
    sentences = _sentences(text)
    decisions = []
    for sentence in sentences:
        if DECISION.search(sentence) or REVERSAL.search(sentence):
            decisions.append(sentence)
        if role != "assistant":
            continue
        if STATE.search(sentence):
            notes.state = _clip(sentence)
        if NEXT.search(sentence):
            notes.next_step = _clip(sentence)
        elif (
            notes.next_step
            and DONE.search(sentence)
            and len(_topic(sentence) & _topic(notes.next_step)) >= 2
        ):
            notes.next_step = ""  # the planned step is done; an old "next" would mislead
    if decisions:
        _add_decision(notes, decisions, turn)


_LABEL = re.compile(
    r"^(?:## .*|- |CURRENT: |SUPERSEDED \(by: .*?\): |\(old, replaced later\) |Current task: |"
    r"Original request: |Last assistant message: |Last test run: |Last action: |Latest report: )+",
)


_SEEN = re.compile(r" \(seen \d+x\)$")


def read_summary(text: str) -> str:
    """A previous summary read back as plain text: headers and list labels gone, sentences kept.

    This is how the regenerate compactor sees its own earlier output: as prose, with no memory
    of which line was superseded or which path was only read.
    """
    body = text[len(SUMMARY_PREFIX) :] if text.startswith(SUMMARY_PREFIX) else text
    lines = (
        _SEEN.sub("", _LABEL.sub("", line))
        for line in body.split("\n")
        if not line.startswith("## ")
    )
    return "\n".join(lines)


def _from_summary(notes: Notes, text: str, turn: int) -> None:
    """Read a previous summary line by line, as any reader of it would: what it states, it keeps."""
    for line in text[len(SUMMARY_PREFIX) :].split("\n"):
        if (
            not line.strip()
            or line.startswith("## ")
            or line.startswith(("Current task: ", "Last assistant message: "))
        ):
            continue
        if line.startswith("Original request: "):
            notes.request = notes.request or line.removeprefix("Original request: ")
            continue
        if line.startswith("Last test run: "):
            notes.tests = line.removeprefix("Last test run: ")
            continue
        if line.startswith("Last action: "):
            notes.last_action = line.removeprefix("Last action: ")
            continue
        _from_text(notes, "assistant", read_summary(line), turn, summary=True)


def extract_notes(
    messages: list[dict], current_task: str = "", notes: Notes | None = None
) -> Notes:
    """Notes from a span of chat messages, merged into `notes` when given (the anchored merge).

    System turns (instructions, demonstrations, injected context) are not history: they are
    skipped, so an example run or a rule in a system prompt never becomes a fact of this session.
    """
    notes = notes if notes is not None else Notes()
    if current_task:
        notes.task = _clip(current_task, 600)
    turn0 = notes.turns_seen
    history = [
        m if m["role"] != "system" else {**m, "content": "", "tool_calls": []} for m in messages
    ]
    _from_structure(notes, [m for m in history if not _is_summary(m)], turn0)
    for m in history:
        turn = notes.turns_seen
        notes.turns_seen += 1
        role, text = m["role"], m.get("content") or ""
        if _is_summary(m):
            _from_summary(notes, text, turn)  # the agent's own earlier notes, read back as prose
            continue
        if role == "system":
            continue
        request = role == "user" and not notes.request and bool(text.strip())
        if request:
            notes.request = _clip(text, 600)
        if text:
            _from_text(
                notes, role, text, turn, quoted_errors=not request
            )  # a task that names an error is not one
        if role == "assistant" and text.strip():
            notes.last_message = _clip(text, 400)
            if not m.get("tool_calls"):  # a message that acts on nothing reports to the user
                notes.reports = [r for r in notes.reports if r != _clip(text, 400)][
                    -(REPORTS - 1) :
                ]
                notes.reports.append(_clip(text, 400))
        if role == "user" and text.strip() and NEXT.search(text):
            notes.next_step = _clip(text)
    return notes


def _is_summary(m: dict) -> bool:
    return m["role"] == "user" and (m.get("content") or "").startswith(SUMMARY_PREFIX)


# ---- laying the notes out within a budget ------------------------------------------------------

SECTIONS = (
    ("task", "## Task"),
    ("decisions", "## Decisions (latest wins)"),
    ("files", "## Files"),
    ("errors", "## Errors (verbatim)"),
    ("values", "## Config and values"),
    ("state", "## Current state"),
    ("next", "## Next step"),
)


def _items(notes: Notes) -> list[tuple[int, str, int, str]]:
    """(priority, section, order, line): lower priority numbers are kept first when space runs
    out."""
    items = []
    if notes.task:
        items.append((0, "task", 0, f"Current task: {notes.task}"))
    if notes.request and notes.request != notes.task:
        items.append((4, "task", 1, f"Original request: {notes.request}"))
    if notes.next_step:
        items.append((1, "next", 0, notes.next_step))
    if notes.state:
        items.append((2, "state", 0, notes.state))
    if notes.last_action:
        items.append((2, "state", 1, f"Last action: {notes.last_action}"))
    if notes.tests:
        items.append((3, "state", 2, f"Last test run: {notes.tests}"))
    if (
        notes.last_message
        and notes.last_message != notes.state
        and notes.last_message not in notes.reports
    ):
        items.append((5, "state", 3, f"Last assistant message: {notes.last_message}"))
    for k, report in enumerate(notes.reports):
        if report != notes.state:
            items.append(
                (
                    3 if k == len(notes.reports) - 1 else 5,
                    "state",
                    4 + k,
                    f"Latest report: {report}",
                )
            )
    for i, d in enumerate(notes.decisions):
        if d.superseded_by is None:
            items.append((3, "decisions", i, f"- CURRENT: {d.text}"))
        else:
            later = notes.decisions[d.superseded_by].text
            items.append((7, "decisions", i, f"- {SUPERSEDED} (by: {_clip(later, 80)}): {d.text}"))
    files = sorted(notes.files.values(), key=lambda f: -f.last_turn)
    for rank, f in enumerate(files):
        if f.modified or f.reverted:
            status = REVERTED if f.reverted else "modified"
            changes = "; ".join(f.changes[-3:])
            line = f"- {f.path} [{status}]" + (f": {changes}" if changes else "")
            items.append((2, "files", rank, _clip(line, 400)))
    for rank, f in enumerate(files):
        if f.read and not (f.modified or f.reverted):
            items.append((8, "files", 1000 + rank, f"- {f.path} [read only]"))
    for e in notes.errors:
        seen = f" (seen {e.count}x)" if e.count > 1 else ""
        items.append((2 if e.discussed else 7, "errors", e.last_turn, f"- {e.text}{seen}"))
    for i, v in enumerate(notes.values):
        if v.superseded:
            items.append((9, "values", i, f"- {OLD_VALUE}{v.text}"))
        else:
            items.append((6, "values", i, f"- {v.text}"))
    return items


def render_notes(notes: Notes, budget_tokens: int) -> str:
    """The notes as sectioned text within `budget_tokens` (highest-priority lines first, newest
    first)."""
    if budget_tokens <= 0:
        return ""
    items = _items(notes)
    # within a priority, prefer newer items (higher order) except for files (already newest-first)
    ranked = sorted(items, key=lambda it: (it[0], it[2] if it[1] == "files" else -it[2]))
    headers = {name: title for name, title in SECTIONS}
    used, chosen, opened = 0, [], set()
    for _priority, section, order, line in ranked:
        cost = count_tokens(line) + 1
        if section not in opened:
            cost += count_tokens(headers[section]) + 2
        if used + cost > budget_tokens:
            if budget_tokens - used < 4:
                break  # full: nothing else can fit
            continue
        used += cost
        opened.add(section)
        chosen.append((section, order, line))
    out = []
    for name, title in SECTIONS:
        lines = sorted((o, line) for s, o, line in chosen if s == name)
        if lines:
            out.append(title)
            out.extend(line for _, line in lines)
            out.append("")
    return "\n".join(out).strip()


LATEST = "## Latest exchanges (verbatim, newest last)"


def fill_budget(summary: str, messages: list[dict], budget_tokens: int) -> str:
    """The notes, then as many of the newest exchanges, verbatim, as the rest of the budget holds.

    Notes are short; without this, a generous budget goes unspent and the target ratio does not
    set the size of the context. The newest turns are what the notes summarize least. System
    turns (instructions, demonstrations) are not history and are never copied here.
    """
    left = budget_tokens - count_tokens(summary) - count_tokens(LATEST) - 4
    if left < 200:
        return summary
    fresh = [
        m for m in messages if m["role"] != "system" and not _is_summary(m)
    ]  # history, not instructions
    tail = newest_that_fit(fresh, left)
    return f"{summary}\n\n{LATEST}\n{tail}" if tail else summary


class ExtractiveCompactor(Compactor):
    """Rung 4: deterministic structured summary of the dropped span, rebuilt at every compaction."""

    name = "extractive"

    def summarize(self, messages, current_task, budget_tokens):
        return fill_budget(
            render_notes(extract_notes(messages, current_task), budget_tokens),
            messages,
            budget_tokens,
        )


class RegenerateCompactor(ExtractiveCompactor):
    """Regenerate-from-scratch: what an agent does when it re-summarizes its context each time.

    At a second compaction the earlier turns are gone; only the previous summary (a user
    message) is left, and it is read like any other text. Compare with AnchoredCompactor.
    """

    name = "regenerate"


class AnchoredCompactor(Compactor):
    """Rung 5: one persistent set of notes; each compaction merges only the newly dropped turns.

    A previous summary message in the span is skipped, because its content is already in the
    notes: nothing is ever re-summarized, so nothing drifts through repeated paraphrase.
    """

    name = "anchored"
    stateful = True

    def __init__(self):
        self.notes = Notes()
        self.merges = 0

    def reset(self) -> None:
        self.notes = Notes()
        self.merges = 0

    def summarize(self, messages, current_task, budget_tokens):
        fresh = [
            m
            for m in messages
            if not (m["role"] == "user" and m["content"].startswith(SUMMARY_PREFIX))
        ]
        extract_notes(fresh, current_task, self.notes)
        self.merges += 1
        return fill_budget(render_notes(self.notes, budget_tokens), fresh, budget_tokens)
