"""Probes: questions about a session, answered from a context, scored 0-5 against the truth.

The method follows Factory's probe-based evaluation of compaction: after compaction, ask what
an agent must still know (a recalled fact, the latest decision, the files touched, the next
step), answer from the compacted context, and score the answer against the truth. The answer
from the FULL context is the baseline; a good compactor stays close to it.

Two roles are kept apart on purpose, so that the harness cannot pass by reading the truth:

- an *answerer* is `answer(messages, question) -> str`. It gets the context (chat messages) and
  the question text, never the Probe. `Reader` is the deterministic one (lexical retrieval of
  the lines that best match the question); `LLMAnswerer` asks a model.
- a *scorer* is `score(answer, probe) -> Score`. It sees the truth. `rubric_score` is the
  deterministic 0-5 rubric; `LLMJudge` asks a model to apply the same rubric.

The rubric, in full (see `rubric_score`):
1. coverage: score = 5 * (key facts stated) / (key facts); a fact is stated when the answer
   contains its text or one of its variants, case-insensitively, as whole words.
2. staleness: each stale fact (true once, later reversed) that the answer states *as current*
   costs STALE_PENALTY points. Mentioning a stale fact is not the same as asserting it: "we
   switched from cron to celery" is the right answer, and a reader that says so must not lose
   points for it. So a stale fact counts only when it sits in a sentence that carries no
   supersession marker ("no longer", "moved", "instead", "reverted", "done", "superseded",
   "replaced", "switched", "from X to", ...), and text that is itself a key fact is not
   searched for stale facts (a reason such as "offset queries got slow" names the old option
   while stating the new decision's reason).
3. the score is clipped to [0, 5].
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from unmasked.sessions import PROBE_CATEGORIES, KeyFact, Probe, Session

MAX_SCORE = 5.0
STALE_PENALTY = 2.0  # a contradiction (old value stated as current) misleads more than a gap

Answerer = Callable[[Sequence[Mapping], str], str]

# ---- probes --------------------------------------------------------------------------------


def make_probes(session: Session) -> list[Probe]:
    """The session's four probes, one per category in PROBE_CATEGORIES order.

    The probes are written by the session generator from what it planted (its truths); here we
    only check that each category is there exactly once, so a broken session fails loudly.
    """
    by_category: dict[str, Probe] = {}
    for probe in session.probes:
        if probe.category not in PROBE_CATEGORIES:
            raise ValueError(
                f"session {session.id}: probe category {probe.category!r} is unknown; "
                f"accepted: {', '.join(PROBE_CATEGORIES)}"
            )
        if probe.category in by_category:
            raise ValueError(f"session {session.id}: two probes in category {probe.category!r}")
        if not probe.key_facts:
            raise ValueError(
                f"session {session.id}: the {probe.category} probe has no key facts to score"
            )
        by_category[probe.category] = probe
    missing = [c for c in PROBE_CATEGORIES if c not in by_category]
    if missing:
        raise ValueError(f"session {session.id} has no probe for {', '.join(missing)}")
    return [by_category[c] for c in PROBE_CATEGORIES]


# ---- probes without planted truths ---------------------------------------------------------------

# What any transcript can be asked with a deterministic answer, from its structure alone
# (unmasked.trajectory). Factual recall and decision tracking are not among them: what a fact or
# a decision *is* cannot be read off the structure, so they need planted truths or an LLM judge.
STRUCTURAL_CATEGORIES = ("task", "artifact_management", "error_recall", "logical_continuation")


def _first_sentence(text: str, limit: int = 120) -> str:
    """The task's first statement: its first line of three words or more (a heading or a markup tag
    such as "# Issue" or "<pr_description>" states nothing), up to its first sentence end."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = next((ln for ln in lines if len(terms(ln)) >= 3), lines[0] if lines else "")
    cut = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    if len(cut) > limit:
        cut = cut[:limit].rsplit(" ", 1)[0]
    return cut.strip()


def _variants(path: str, others: Sequence[str]) -> list[str]:
    name = path.rsplit("/", 1)[-1]
    return [name] if name != path and sum(o.rsplit("/", 1)[-1] == name for o in others) == 1 else []


def structural_probes(session, facts=None) -> list[Probe]:
    """Probes with deterministic answers for any transcript, from its trajectory facts.

    task: the task's first sentence; artifact_management: every file modified; error_recall:
    every failed command's error line (no probe when nothing failed); logical_continuation: the
    last command and the last line of its result.
    """
    from unmasked.trajectory import trajectory_facts

    facts = trajectory_facts(session) if facts is None else facts
    probes = []
    if facts.task.strip():
        first = _first_sentence(facts.task)
        probes.append(
            Probe(
                "task",
                "What is the task we are working on?",
                facts.task.strip(),
                [KeyFact(first)],
                [],
            )
        )
    files = facts.files_modified
    if files:
        probes.append(
            Probe(
                "artifact_management",
                "Which files have been modified so far?",
                "Modified: " + ", ".join(files),
                [KeyFact(f, _variants(f, files)) for f in files],
                [],
            )
        )
    if facts.failed_commands:
        errors = list(dict.fromkeys(f.error for f in facts.failed_commands if f.error))
        probes.append(
            Probe(
                "error_recall",
                "Which commands failed, and with what error?",
                "; ".join(
                    f"{f.command.splitlines()[0]} failed: {f.error}" for f in facts.failed_commands
                ),
                [KeyFact(e) for e in errors],
                [],
            )
        )
    if facts.last_action:
        name, _, command = facts.last_action.partition(": ")
        command = command.splitlines()[0].strip() if command.strip() else ""
        if not command or command.startswith(
            "{"
        ):  # a call with arguments but no command: its tool's name
            command = name
        keys = [KeyFact(command)] + (
            [KeyFact(facts.last_result)] if facts.last_result.strip() else []
        )
        probes.append(
            Probe(
                "logical_continuation",
                "What was the last command, and what did it print?",
                f"{facts.last_action} -> {facts.last_result}",
                keys,
                [],
            )
        )
    return probes


def probes_for(session) -> list[Probe]:
    """The session's planted probes when it has them (generated sessions), else structural ones."""
    return make_probes(session) if session.probes else structural_probes(session)


# ---- matching facts in text ----------------------------------------------------------------------

_PATTERNS: dict[str, re.Pattern] = {}


def _form_pattern(form: str) -> re.Pattern:
    """A case-insensitive pattern for `form` as whole words: "9000" must not match "19000"."""
    pattern = _PATTERNS.get(form)
    if pattern is None:
        body = re.escape(form.strip())
        left = r"(?<![A-Za-z0-9])" if form.strip()[:1].isalnum() else ""
        right = r"(?![A-Za-z0-9])" if form.strip()[-1:].isalnum() else ""
        pattern = _PATTERNS[form] = re.compile(left + body + right, re.I)
    return pattern


def fact_spans(fact: KeyFact, text: str) -> list[tuple[int, int]]:
    """Where `text` states `fact` (its text or any variant), as (start, end) character spans."""
    spans = []
    for form in [fact.text, *fact.variants]:
        if form.strip():
            spans.extend(m.span() for m in _form_pattern(form).finditer(text))
    return spans


def states(fact: KeyFact, text: str) -> bool:
    """True when `text` states the fact: its text or a variant, case-insensitive, as whole words."""
    return any(
        _form_pattern(form).search(text) for form in [fact.text, *fact.variants] if form.strip()
    )


SUPERSEDED = re.compile(
    r"\b(?:no longer|not any ?more|anymore|instead|mov(?:e|es|ed|ing)|from now "
    r"on|switch(?:es|ed|ing)?|chang(?:e|ed) (?:of plan|to|from)|"
    r"replac(?:e|ed|ing)|supersed(?:e|ed|es)|revert(?:ed|ing)?|undo(?:ne)?|undid|rolled "
    r"back|roll(?:ed)? back|"
    r"abandon(?:ed|ing)?|dropp?(?:ed|ing)?|scrapp?(?:ed)?|done|finished|completed|old|previously|formerly|"
    r"originally|initially|at first|used to|earlier|was|were|from\b[^.\n]*\bto)\b",
    re.I,
)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def sentences(text: str) -> list[str]:
    """Sentences of an answer, line by line: the unit in which a stale fact is judged.

    A sentence end inside parentheses does not split ("SUPERSEDED (by: ... ids. D...): For ..."
    is one statement).
    """
    out = []
    for line in text.split("\n"):
        buffer = ""
        for piece in _SENTENCE_END.split(line):
            buffer = f"{buffer} {piece}" if buffer else piece
            if buffer.count("(") <= buffer.count(")"):
                out.append(buffer)
                buffer = ""
        if buffer:
            out.append(buffer)
    return [s for s in out if s.strip()]


def stale_as_current(stale: KeyFact, answer: str, key_facts: Sequence[KeyFact] = ()) -> bool:
    """True when `answer` asserts the stale fact as if it still held.

    Key-fact text is blanked first (a key fact may contain the stale option's name, as in
    "LIKE queries could not use the index"); then the stale fact counts only in a sentence
    without a supersession marker ("moved from port 3000 to 8080" mentions 3000 correctly).
    """
    masked = list(answer)
    for fact in key_facts:
        for a, b in fact_spans(fact, answer):
            masked[a:b] = " " * (b - a)
    text = "".join(masked)
    for sentence in sentences(text):
        if states(stale, sentence) and not SUPERSEDED.search(sentence):
            return True
    return False


# ---- the rubric
# ------------------------------------------------------------------------------------


@dataclass
class Score:
    """A 0-5 score and why: which key facts the answer stated, missed, and which stale ones it
    asserted."""

    score: float
    covered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    judge: str = "rubric"
    rationale: str = ""


def rubric_score(answer: str, probe: Probe, *, stale_penalty: float = STALE_PENALTY) -> Score:
    """The deterministic 0-5 rubric: key-fact coverage, minus `stale_penalty` per stale fact
    stated as current."""
    if not isinstance(answer, str):
        raise ValueError(f"answer must be text (str), got {type(answer).__name__}")
    if not probe.key_facts:
        raise ValueError("the probe has no key facts, so there is nothing to score against")
    covered = [f.text for f in probe.key_facts if states(f, answer)]
    missing = [f.text for f in probe.key_facts if not states(f, answer)]
    stale = [f.text for f in probe.stale_facts if stale_as_current(f, answer, probe.key_facts)]
    raw = MAX_SCORE * len(covered) / len(probe.key_facts) - stale_penalty * len(stale)
    return Score(round(min(MAX_SCORE, max(0.0, raw)), 4), covered, missing, stale)


# ---- the context as lines
# ----------------------------------------------------------------------------


def _arguments(call: Mapping) -> dict:
    import json

    function = call.get("function", call)
    args = function.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return {"raw": args}
    return args if isinstance(args, dict) else {"value": args}


def context_lines(messages: Sequence[Mapping]) -> list[str]:
    """Every non-empty line the model would read, in order: message text, then tool-call arguments.

    A tool call's arguments become one line ("edit_file: path=..., instructions=...") unless
    the message's own text already says all of it.
    """
    return context_units(messages)[0]


class LineMeta(NamedTuple):
    """Where a line sits in the conversation: what a reader sees besides the words."""

    message: int  # index of its message
    role: str  # the message's role
    part: str  # "text", "call" (a tool call, or the text line that spells its command) or "result"
    at: int  # how many of its message's request lines come before it
    tags: frozenset  # structural tags (see STRUCTURE)


def _call_tags(name: str, args: Mapping) -> frozenset:
    from unmasked.trajectory import call_edits, command_of, shell_edits

    command = command_of(name, args)
    writes = call_edits(name, args) or (shell_edits(command) if command else [])
    return frozenset({"call", "write"} if writes else {"call"})


def context_units(messages: Sequence[Mapping]) -> tuple[list[str], list[LineMeta]]:
    """The context's lines (as `context_lines`) and, for each, where it sits (`LineMeta`).

    The structure is what any chat transcript shows: the first user message is the request;
    tool calls are actions and tool messages their results; a result that shows a non-zero exit
    code or a traceback failed; a markdown heading titles the lines under it.
    """
    from unmasked.trajectory import _EXCEPTION_LINE, exit_code_in, looks_failed

    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError(
            f"context must be a list of chat messages (dicts), got {type(messages).__name__}"
        )
    lines: list[str] = []
    meta: list[LineMeta] = []
    request = None
    failed_calls = set()  # the calls whose results failed: "which commands failed" names them
    for m in messages:
        m = m.to_message() if hasattr(m, "to_message") else m
        if (
            isinstance(m, Mapping)
            and m.get("role") == "tool"
            and isinstance(m.get("content") or "", str)
        ):
            text = m.get("content") or ""
            code = exit_code_in(text)
            if (code is not None and code != 0) or looks_failed(text):
                failed_calls.add(str(m.get("tool_call_id")))
    for i, m in enumerate(messages):
        if hasattr(m, "to_message"):
            m = m.to_message()
        if not isinstance(m, Mapping):
            raise ValueError(
                f"context message {i} is a {type(m).__name__}; accepted: chat message dicts"
            )
        content = m.get("content") or ""
        if not isinstance(content, str):
            raise ValueError(
                f"context message {i} has {type(content).__name__} content; accepted: str"
            )
        role = str(m.get("role", ""))
        base: set[str] = set()
        own = [line.strip() for line in content.split("\n") if line.strip()]
        tags = [set(base) for _ in own]
        if (
            role == "user" and request is None
        ):  # the request: its lines that say something (not markup)
            request = i
            for k, line in enumerate(own):
                if len(terms(line)) >= 3:
                    tags[k].add("request")
        if role == "tool":
            base.add("result")
            for t in tags:
                t.add("result")
            if (
                str(m.get("tool_call_id")) in failed_calls
            ):  # its error: the exception lines, else all of it
                named = [k for k, line in enumerate(own) if _EXCEPTION_LINE.fullmatch(line)]
                for k in named or range(len(own)):
                    tags[k].add("failed")
        extra: list[tuple[str, frozenset]] = []
        for call in m.get("tool_calls") or []:
            fn = call.get("function", call)
            name, args = str(fn.get("name", "tool")), _arguments(call)
            call_tags = _call_tags(name, args) | (
                {"failed"} if str(call.get("id")) in failed_calls else set()
            )
            values = [str(v) for v in args.values()]
            if not values:  # a call without arguments is still an action
                extra.append((name, call_tags))
            elif values and not all(v in content for v in values):
                extra.append(
                    (f"{name}: " + ", ".join(f"{k}={v}" for k, v in args.items()), call_tags)
                )
            else:  # the text spells the call out: its lines that hold the command are the action
                for k, line in enumerate(own):
                    if any(line in v for v in values if len(line) > 2):
                        tags[k] |= call_tags
        at = 0
        plain = frozenset(base)
        for line, t in [*zip(own, tags), *extra]:
            lines.append(line)
            t = plain if t == base else frozenset(t) | plain
            part = "result" if role == "tool" else "call" if "call" in t else "text"
            meta.append(LineMeta(i, role, part, at, t))
            at += "request" in t  # a request's lines count from its first statement
    return lines, meta


# ---- the deterministic reader
# ---------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(
    r"(?<=[a-z0-9])(?=[A-Z][a-z])"
)  # AssertionError -> Assertion Error, as code search splits
_SPECIFIC = re.compile(r"[a-z0-9_-]+(?:[./][a-z0-9_-]+)+|\d{3,}")
STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i i'll in "
    "into is it its "
    "it's ll me my of on or our so than that the their them then there these they this to was we "
    "were what "
    "when where which who why will with would you your".split()
)
# What a question can ask about the conversation's structure rather than its words: the user's
# request, the actions (tool calls), their results, the ones that failed, the files written. A
# question word of a group matches the lines that have that part in the structure (`LineMeta`),
# whatever words those lines use. The groups list how anyone asks about those parts; they name no
# word of any session, and no synonym that would stand for a session's own vocabulary.
STRUCTURE = {
    "request": "task goal request asked objective assignment",
    "call": "command commands run ran execute executed call invoked action tool",
    "result": "print printed output result return returned show showed display produce",
    "failed": "fail failed failure error errors crash crashed exception broke",
    "write": "modify modified change changed edit edited write wrote update updated alter rewrite",
}
# Words that ask for the latest state: lines count more the later they come.
RECENCY = "last latest final finally recent recently now current currently newest".split()


def stem(word: str) -> str:
    """A light suffix stripper: listens/listening -> listen, decided/decide -> decid, files ->
    fil."""
    w = word
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    if w.endswith("i"):
        w = w[:-1] + "y"
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


_STEMS: dict[str, str] = {}


def terms(text: str) -> list[str]:
    """Stemmed content words of `text` (stopwords and one-letter words dropped)."""
    out = []
    cache = _STEMS
    for w in _WORD.findall(text if text.islower() else _CAMEL.sub(" ", text).lower()):
        s = cache.get(w)
        if s is None:
            s = cache[w] = "" if (w in STOPWORDS or len(w) < 2) else stem(w)
        if s:
            out.append(s)
    return out


def query_terms(question: str) -> dict[str, float]:
    """The question's terms with weights: its own words 1.0, the structural tags they ask about
    1.0."""
    weights: dict[str, float] = {}
    for w in _WORD.findall(question.lower()):
        if (
            w in STOPWORDS or len(w) < 2 or w in RECENCY
        ):  # "last" orders the lines; it is not their topic
            continue
        weights[stem(w)] = 1.0
        for tag, stems in _STRUCTURE_STEMS.items():
            if stem(w) in stems:
                weights[_TAG + tag] = 1.0
                if (
                    tag == "write"
                ):  # a change is reported in many verbs ("Applied edit to", "updated")
                    for other in stems:
                        weights.setdefault(other, 0.5)
    return weights


def asks_for_latest(question: str) -> bool:
    """True when the question asks for the latest state ("last", "now", "finally", ...)."""
    return bool(set(_WORD.findall(question.lower())) & set(RECENCY))


_TAG = "\x00"  # structural tags live beside the words, under a prefix no word has
_STRUCTURE_STEMS = {tag: {stem(w) for w in words.split()} for tag, words in STRUCTURE.items()}


_IPS = {"127.0.0.1", "0.0.0.0", "localhost"}
_FILE_TERMS = {stem("file"), stem("files"), stem("path"), _TAG + "write"}
# Words of reasoning and of change in any English: shared by unrelated lines, so not evidence that
# they are about the same thing. (The words of our generator's carrier phrases, "decision", "plan",
# "next step", "done", "finished", "first try", "approach", are not here: on 60 plain sessions
# dropping them changed no score.)
_DISCOURSE = {
    stem(w)
    for w in (
        "because use using will no longer instead every now also then later change "
        "superseded old replaced reverted moved"
    ).split()
}
# What the reader takes as "this line reports a change to something said before" (narrower
# than the rubric's SUPERSEDED: "was" or "old" in passing must not hide an earlier line).
CHANGE = re.compile(
    r"\b(?:no longer|instead|mov(?:e|es|ed|ing)\b|switch(?:es|ed|ing)? (?:to|from|back)|"
    r"change of plan|replac(?:e|es|ed|ing)|supersed(?:e|es|ed)|revert(?:s|ed|ing)?|"
    r"undo|undone|undid|"
    r"abandon(?:s|ed|ing)?|roll(?:ed)? back|finished|done:|from now on)",
    re.I,
)
_CHANGE_LOW = re.compile(CHANGE.pattern)  # the same, for text that is already lower-case (faster)


class LineIndex:
    """BM25 statistics over the lines of one context, built once and queried per question.

    Built for speed on 100k-token contexts: the text is scanned by regular expressions (in C),
    and only the words a question asks about are looked up, never every token in Python.
    """

    def __init__(self, lines: list[str], meta: Sequence[LineMeta] | None = None):
        self.lines = lines
        self.meta = list(meta) if meta is not None else None
        if self.meta is not None and len(self.meta) != len(lines):
            raise ValueError(f"meta has {len(self.meta)} entries for {len(lines)} lines")
        self.low = [line.lower() for line in lines]
        # the text words are counted in: identifiers split at their capitals (AssertionError ->
        # assertion error)
        scan = [
            _CAMEL.sub(" ", line).lower() if _CAMEL.search(line) else low
            for line, low in zip(lines, self.low)
        ]
        self.scan = scan
        self.text = "\n".join(scan)
        self.starts = []
        at = 0
        for line in scan:  # a call's line may hold newlines: offsets, not splits, say which line
            self.starts.append(at)
            at += len(line) + 1
        self._lengths: dict[int, int] = {}
        # the mean line length from an even sample of lines: BM25 needs its scale, not its last
        # digit
        sample = range(0, len(lines), max(1, len(lines) // 400))
        self.avg_len = max(1.0, sum(self.length(i) for i in sample) / len(sample)) if lines else 1.0
        self._counts: dict[str, dict[int, int]] = {}
        self.markers = sorted({self._line_of(m.start()) for m in _CHANGE_LOW.finditer(self.text)})
        self._marker_set = set(self.markers)
        self._words: dict[int, set[str]] = {}
        self._specific: dict[int, set[str]] = {}
        # a markdown heading titles the lines under it, up to the next heading or message
        self._titled: list[tuple[int, int]] = []  # (heading line, last line it titles)
        for i, line in enumerate(lines):
            if line.startswith("#") and line.lstrip("#")[:1] == " ":
                if self._titled and self._titled[-1][1] >= i:
                    self._titled[-1] = (self._titled[-1][0], i - 1)
                end = i
                while (
                    end + 1 < len(lines)
                    and not lines[end + 1].startswith("#")
                    and (self.meta is None or self.meta[end + 1].message == self.meta[i].message)
                ):
                    end += 1
                self._titled.append((i, end))

    def _line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def length(self, i: int) -> int:
        """How many content words line i has (as `terms` counts them)."""
        if i not in self._lengths:
            self._lengths[i] = len(terms(self.scan[i]))
        return self._lengths[i]

    def term_counts(self, stems) -> dict[str, dict[int, int]]:
        """For each stem, {line: how often a word with that stem occurs in it}; one scan for all new
        stems.

        A structural tag (`_TAG` + name) occurs once in each line that has it; a heading's words
        count once more in each line it titles.
        """
        todo = [s for s in dict.fromkeys(stems) if s not in self._counts]
        for s in todo:
            self._counts[s] = {}
        words = [s for s in todo if not s.startswith(_TAG)]
        if words:
            # every word that starts like a wanted stem, then keep those whose stem is wanted
            prefixes = sorted({s[:-1] if len(s) > 3 else s for s in words}, key=len, reverse=True)
            pattern = re.compile(
                r"(?<![a-z0-9])(?:" + "|".join(map(re.escape, prefixes)) + r")[a-z0-9]*"
            )
            wanted = set(words)
            for m in pattern.finditer(self.text):
                word = m.group(0)
                st = _STEMS.get(word)
                if st is None:
                    st = _STEMS[word] = "" if (word in STOPWORDS or len(word) < 2) else stem(word)
                if st in wanted:
                    counts = self._counts[st]
                    line = bisect.bisect_right(self.starts, m.start()) - 1
                    counts[line] = counts.get(line, 0) + 1
            for head, end in self._titled:
                for st in wanted & set(terms(self.lines[head])):
                    counts = self._counts[st]
                    for line in range(head + 1, end + 1):
                        counts[line] = counts.get(line, 0) + 1
        tags = [s for s in todo if s.startswith(_TAG)]
        if tags and self.meta is not None:
            for i, m in enumerate(self.meta):
                for s in tags:
                    if s[len(_TAG) :] in m.tags:
                        self._counts[s][i] = 1
        return {s: self._counts[s] for s in stems}

    def bm25(
        self, weights: Mapping[str, float], k1: float = 1.2, b: float = 0.75
    ) -> dict[int, float]:
        """Each line's BM25 score for the weighted query terms (lines that match nothing are
        absent)."""
        return {i: sum(p.values()) for i, p in self.bm25_parts(weights, k1, b).items()}

    def bm25_parts(
        self, weights: Mapping[str, float], k1: float = 1.2, b: float = 0.75
    ) -> dict[int, dict[str, float]]:
        """Per line, each query term's share of its BM25 score."""
        n = len(self.lines)
        scores: dict[int, dict[str, float]] = {}
        for term, hits in self.term_counts(list(weights)).items():
            if not hits:
                continue
            tag = term.startswith(_TAG)
            # a part of the structure that the question asks for outright weighs as much as its
            # rarest word could: that most lines are tool results does not make "what did it print"
            # vaguer
            idf = (
                math.log(1 + (n - 0.5) / 1.5)
                if tag
                else math.log(1 + (n - len(hits) + 0.5) / (len(hits) + 0.5))
            )
            for i, tf in hits.items():
                # a part of the structure: no length to normalise; a request opens with its point
                if tag:
                    norm = 1.0 / (1.0 + 0.1 * self.meta[i].at) if term == _TAG + "request" else 1.0
                else:
                    norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * self.length(i) / self.avg_len))
                scores.setdefault(i, {})[term] = weights[term] * idf * norm
        return scores

    def is_marker(self, i: int) -> bool:
        """True when line i reports a change ("moved", "no longer", "reverted", "instead", ...)."""
        return i in self._marker_set

    def specific(self, i: int) -> set[str]:
        """Paths and numbers of 3+ digits in line i: the things two lines can be about."""
        if i not in self._specific:
            self._specific[i] = set(_SPECIFIC.findall(self.low[i])) - _IPS
        return self._specific[i]

    def paths(self, i: int) -> set[str]:
        """The file paths (and other dotted or slashed names) in line i."""
        return {t for t in self.specific(i) if not t.isdigit()}

    def words(self, i: int) -> set[str]:
        """Stemmed content words of line i apart from paths and numbers (which a path prefix
        would inflate)."""
        if i not in self._words:
            self._words[i] = set(terms(_SPECIFIC.sub(" ", self.low[i]))) - _DISCOURSE
        return self._words[i]

    def restated(self, candidates: Sequence[int]) -> set[int]:
        """Lines that a later line says again with other numbers ("Listening on :8000", then
        "...:5000"): same words, same paths, different numbers. The later one is the value that
        holds now."""
        latest: dict[tuple, set[str]] = {}
        out = set()
        for i in sorted(candidates, reverse=True):
            numbers = {t for t in self.specific(i) if t[:1].isdigit()}
            if not numbers:
                continue
            words = self.words(i)
            if len(words) < 2:
                continue
            key = (frozenset(words), frozenset(self.paths(i) - numbers))
            if key in latest and latest[key] != numbers:
                out.add(i)
            latest.setdefault(key, numbers)
        return out

    def superseded(self, i: int) -> bool:
        """True when a later line that reports a change is about the same thing as line i:
        it names the same path or number, or shares most of its words (at least 3)."""
        if self.is_marker(i):
            return (
                False  # a statement of change stays true as history ("we moved from 3000 to 8080")
            )
        mine, specific = self.words(i), self.specific(i)
        for j in self.markers[bisect.bisect_right(self.markers, i) :]:
            if specific & self.specific(j):
                return True
            if len(mine) >= 2 and len(mine & self.words(j)) >= max(2, 0.5 * len(mine)):
                return True
        return False


@dataclass
class Reader:
    """The deterministic answerer: the lines of the context that best match the question.

    It ranks lines with BM25 over the question's words and the parts of the conversation it asks
    about (`STRUCTURE`: the request, the actions, their results, the failures, the writes, each
    known from roles and tool calls, not from wording; "last" or "now" favour later lines),
    considers the lines scoring at least `min_relative` of the best, and picks up to `max_lines` of
    them greedily, so that a many-part question gets a line for each part: a question term that
    chosen lines already matched counts less each time (`repeat`), except that when the question
    asks about files, a line naming a new file counts in full (a list answer). A line is dropped
    when a later line says it changed ("latest wins": a reversed decision, a moved port, a reverted
    edit) or says it again with other numbers. The chosen lines come back in the order they appear.
    It never sees the probe, only the question, so it can only be right when the context still holds
    the answer.
    """

    max_lines: int = 8
    min_relative: float = 0.15
    repeat: float = 0.5  # a question term already matched by k chosen lines counts repeat**k
    list_relative: float = (
        0.2  # ...unless the question asks about files, and the line names a new one and
    )
    #                             scores at least this share of the best line
    pool: int = 200  # how many of the best lines the greedy choice looks at
    k1: float = 1.2
    b: float = 0.3  # mild length normalisation: a planted sentence is longer than a log line
    name: str = "reader"

    def __call__(self, messages: Sequence[Mapping], question: str) -> str:
        return self.answer(messages, question)

    def answer(self, messages: Sequence[Mapping], question: str) -> str:
        return self.answer_many(messages, [question])[0]

    def answer_many(self, messages: Sequence[Mapping], questions: Sequence[str]) -> list[str]:
        """Answers to several questions about one context; the index is built once."""
        index = LineIndex(*context_units(messages))
        index.term_counts(
            [t for q in questions for t in query_terms(q)]
        )  # one scan for all questions
        return [self.answer_index(index, q) for q in questions]

    def answer_index(self, index: LineIndex, question: str) -> str:
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        weights = query_terms(question)
        parts = index.bm25_parts(weights, self.k1, self.b)
        if not parts:
            return ""
        total = {i: sum(p.values()) for i, p in parts.items()}
        factor = {}
        if index.meta and asks_for_latest(
            question
        ):  # "last", "now": the later a line, the more it counts
            last = max(1, index.meta[-1].message)
            factor = {
                i: 0.8 + 0.2 * index.meta[i].message / last for i in total
            }  # mild: it orders, words decide
            total = {i: v * factor[i] for i, v in total.items()}
        best = max(total.values())
        candidates: list[int] = []
        copies: Counter = (
            Counter()
        )  # lines that match the same terms equally and name the same things
        for i in sorted(total, key=lambda i: (-total[i], -i)):
            if total[i] < self.min_relative * best or len(candidates) >= self.pool:
                break
            shape = (
                tuple(sorted((t, round(v, 6)) for t, v in parts[i].items())),
                frozenset(index.specific(i)),
            )
            copies[shape] += 1
            if copies[shape] <= 2:  # 300 identical git-log lines are one piece of evidence, not 300
                candidates.append(i)
        if factor:
            parts = {i: {t: v * factor[i] for t, v in parts[i].items()} for i in candidates}
        restated = index.restated(candidates)
        chosen: list[int] = []
        seen: set[str] = set()
        covered: Counter = Counter()
        named: set[str] = set()  # paths and numbers the chosen lines already name
        dropped: set[int] = set()

        asks_for_files = bool(_FILE_TERMS & set(weights))

        def gain(i: int) -> float:
            if asks_for_files and total[i] >= self.list_relative * best and index.paths(i) - named:
                return total[
                    i
                ]  # the question asks about files and this line names a new one: a new list item
            return sum(v * self.repeat ** covered[t] for t, v in parts[i].items())

        while len(chosen) < self.max_lines:
            # the line that adds most: a question term that k chosen lines already matched counts
            # repeat**k, unless the line names a path or number that no chosen line names yet
            gains = {i: gain(i) for i in candidates if i not in dropped}
            if not gains:
                break
            i = max(gains, key=lambda k: (gains[k], k))
            dropped.add(i)
            if index.lines[i] in seen or i in restated or index.superseded(i):
                continue
            seen.add(index.lines[i])
            chosen.append(i)
            covered.update(parts[i].keys())
            named.update(index.paths(i))
        return "\n".join(index.lines[i] for i in sorted(chosen))


# ---- an ablation: the context without its facts
# ------------------------------------------------------


def redact_facts(
    messages: Sequence[Mapping], probes: Sequence[Probe], placeholder: str = "[removed]"
) -> list[dict]:
    """The context with every message that states a key or stale fact of `probes` blanked out.

    The structure stays (roles, tool-call ids), so compactors still accept it; only the text
    and the call arguments of those messages go. A fair harness must score low on this: if it
    does not, it is reading the answer from somewhere other than the context.
    """
    facts = [f for p in probes for f in (*p.key_facts, *p.stale_facts)]
    out = []
    for m in messages:
        m = dict(m.to_message() if hasattr(m, "to_message") else m)
        calls = m.get("tool_calls") or []
        text = (m.get("content") or "") + "\n" + "\n".join(str(_arguments(c)) for c in calls)
        if any(states(f, text) for f in facts):
            m["content"] = placeholder
            if calls:
                m["tool_calls"] = [
                    {**c, "function": {**c.get("function", {}), "arguments": "{}"}} for c in calls
                ]
        out.append(m)
    return out


# ---- answers and scores from a language model
# -------------------------------------------------------------

ANSWER_INSTRUCTIONS = (
    "You are a coding agent resuming work. Answer the question using ONLY the conversation below "
    "(which may have been compacted). Be specific: give exact names, paths, values and reasons. "
    "If something was changed, reverted or replaced, say what holds now and say that the old one "
    "was "
    "replaced. If the conversation does not contain the answer, say you do not know."
)
_QUESTION = re.compile(r"<question>\n?(.*?)\n?</question>", re.S)
_CONVERSATION = re.compile(r"<conversation>\n?(.*?)\n?</conversation>", re.S)


def llm_configured() -> bool:
    """True when an OpenAI-compatible endpoint and model are set in the environment (see
    unmasked.llm)."""
    import os

    base = os.environ.get("UNMASKED_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    return bool((base or "").strip() and os.environ.get("UNMASKED_LLM_MODEL", "").strip())


def _client(client, settings):
    if client is not None:
        return client
    from unmasked.llm import client_from_env

    return client_from_env(*settings)


def build_answer_request(
    messages: Sequence[Mapping], question: str, *, max_context_tokens: int | None = None
) -> list[dict]:
    """The chat request an LLM answerer sends: instructions, then the context as a transcript and
    the question.

    The context travels as one transcript (not as raw tool-call messages) so that any endpoint
    accepts it; max_context_tokens keeps its newest part for a model with a small window.
    """
    from unmasked.compaction.messages import to_messages, transcript
    from unmasked.tokens import keep_newest_tokens

    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    text = keep_newest_tokens(
        transcript(to_messages(list(messages))),
        max_context_tokens,
        "[... the oldest part of the conversation is cut to fit the model ...]",
    )
    user = f"<conversation>\n{text}\n</conversation>\n\n<question>\n{question}\n</question>"
    return [{"role": "system", "content": ANSWER_INSTRUCTIONS}, {"role": "user", "content": user}]


class LLMAnswerer:
    """Answers from a model behind an OpenAI-compatible endpoint; like `Reader`, it never sees the
    probe.

    Settings come from the arguments, else from UNMASKED_LLM_BASE_URL / UNMASKED_LLM_MODEL /
    UNMASKED_LLM_API_KEY (see unmasked.llm). The client is made on first use.
    """

    name = "llm"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        client=None,
        max_context_tokens: int | None = None,
        max_tokens: int = 400,
        timeout: float = 120.0,
    ):
        self._settings = (base_url, model, api_key, timeout)
        self.client = client
        self.max_context_tokens = max_context_tokens
        self.max_tokens = max_tokens

    def __call__(self, messages: Sequence[Mapping], question: str) -> str:
        self.client = _client(self.client, self._settings)
        request = build_answer_request(
            messages, question, max_context_tokens=self.max_context_tokens
        )
        return self.client.chat(request, max_tokens=self.max_tokens).strip()


def reader_endpoint(body: dict) -> str:
    """A chat-completions handler that answers an LLMAnswerer request with the deterministic Reader.

    Served by `unmasked.llm.ChatServer`, it stands in for a model in tests and notebooks: the same
    protocol end to end, a deterministic answer, nothing to download.
    """
    from unmasked.compaction.messages import parse_transcript

    joined = "\n".join(
        m.get("content") or "" for m in body.get("messages", []) if isinstance(m, dict)
    )
    question, conversation = _QUESTION.search(joined), _CONVERSATION.search(joined)
    if question is None or conversation is None:
        raise ValueError(
            "the request has no <conversation>...</conversation> and <question>...</question> "
            "blocks"
        )
    return Reader().answer(parse_transcript(conversation.group(1)), question.group(1))


JUDGE_INSTRUCTIONS = """\
You grade an answer that a coding agent gave about its own session, on a 0-5 scale.
Apply this rubric exactly:
1. Start from 5 * (key facts stated) / (number of key facts). A key fact is stated when the
   answer says it, in its words or an equivalent one (the variants listed are accepted forms).
2. Subtract {penalty} for each stale fact that the answer states AS CURRENT. A stale fact was
   true once and was later reversed. Mentioning it as replaced, reverted, moved or superseded
   ("we switched from X to Y") is correct and costs nothing.
3. Clip to the range 0-5.
Reply with one line "SCORE: <number>" and then one short line of reasons."""
_SCORE = re.compile(r"SCORE:\s*\**\s*([0-9]+(?:\.[0-9]+)?)", re.I)
_PROBE_JSON = re.compile(r"<probe>\n?(.*?)\n?</probe>", re.S)
_ANSWER = re.compile(r"<answer>\n?(.*?)\n?</answer>", re.S)


def build_judge_request(
    answer: str, probe: Probe, *, stale_penalty: float = STALE_PENALTY
) -> list[dict]:
    """The chat request an LLM judge gets: the rubric, the probe's truth as JSON, and the answer."""
    import json

    truth = {
        "category": probe.category,
        "question": probe.question,
        "reference_answer": probe.reference_answer,
        "key_facts": [{"text": f.text, "variants": list(f.variants)} for f in probe.key_facts],
        "stale_facts": [{"text": f.text, "variants": list(f.variants)} for f in probe.stale_facts],
    }
    probe_json = json.dumps(truth, ensure_ascii=False, indent=1)
    user = f"<probe>\n{probe_json}\n</probe>\n\n<answer>\n{answer}\n</answer>"
    system = JUDGE_INSTRUCTIONS.replace("{penalty}", f"{stale_penalty:g}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_judge_reply(text: str) -> float:
    """The score in a judge's reply ("SCORE: 3.5"), clipped to 0-5; ValueError when there is
    none."""
    match = _SCORE.search(text or "")
    if match is None:
        raise ValueError(f"the judge's reply has no 'SCORE: <number>' line: {str(text)[:200]!r}")
    return min(MAX_SCORE, max(0.0, float(match.group(1))))


class LLMJudge:
    """The same 0-5 rubric, applied by a model (for answers whose wording the string rubric cannot
    follow).

    Use it when an endpoint is configured (`llm_configured()`); it returns a Score like
    rubric_score, with covered/missing/stale filled in by the string rubric for reference.
    """

    name = "llm_judge"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        client=None,
        max_tokens: int = 120,
        timeout: float = 120.0,
        stale_penalty: float = STALE_PENALTY,
    ):
        self._settings = (base_url, model, api_key, timeout)
        self.client = client
        self.max_tokens = max_tokens
        self.stale_penalty = stale_penalty

    def __call__(self, answer: str, probe: Probe) -> Score:
        self.client = _client(self.client, self._settings)
        reply = self.client.chat(
            build_judge_request(answer, probe, stale_penalty=self.stale_penalty),
            max_tokens=self.max_tokens,
        )
        strings = rubric_score(answer, probe, stale_penalty=self.stale_penalty)
        return Score(
            parse_judge_reply(reply),
            strings.covered,
            strings.missing,
            strings.stale,
            judge="llm",
            rationale=reply.strip(),
        )


def rubric_endpoint(body: dict) -> str:
    """A chat-completions handler that grades an LLMJudge request with the string rubric (for
    offline tests)."""
    import json

    joined = "\n".join(
        m.get("content") or "" for m in body.get("messages", []) if isinstance(m, dict)
    )
    probe_json, answer = _PROBE_JSON.search(joined), _ANSWER.search(joined)
    if probe_json is None or answer is None:
        raise ValueError("the request has no <probe>...</probe> and <answer>...</answer> blocks")
    data = json.loads(probe_json.group(1))
    probe = Probe(
        data["category"],
        data["question"],
        data["reference_answer"],
        [KeyFact(**f) for f in data["key_facts"]],
        [KeyFact(**f) for f in data["stale_facts"]],
    )
    result = rubric_score(answer.group(1), probe)
    return f"SCORE: {result.score:g}\nmissing: {result.missing}; stale as current: {result.stale}"
