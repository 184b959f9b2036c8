"""The course's own models as compaction subagents: the toy diffusion model and its AR twin.

    from unmasked.compaction import compact_context
    ctx = compact_context(session.turns, session.task, compactor="diffusion")
    ctx = compact_context(session.turns, session.task, compactor="autoregressive")  # the twin

    from unmasked.compaction.diffusion import DiffusionCompactor, make_diffusion_compactor
    engine = make_diffusion_compactor(tau=0.9, batch_size=64)   # the same, with its knobs
    engine.summarize(messages, task, budget_tokens)             # as every Compactor
    engine.last_windows, engine.last_records                    # what the model read and wrote

What the model can carry. The toy model (data/checkpoints/diffusion.pt, 1M parameters) was
trained on short sessions: at most 384 of its tokens of "role: text" lines ("prompt_room" in
data/checkpoints/diffusion.json), after which it writes one fixed-field JSON record in 218
slot tokens (unmasked.records):

    {"task": ..., "database": ..., "decision": ..., "files": [<= 3 paths], "error": ...,
     "next_step": ...}

Each value is a span it copies from the text, of at most its slot's width (task 21 tokens,
database 7, decision 23, each file 22, error 35, next step 20). It writes no prose and no
reasons: "we chose cassandra because writes arrive from many regions" leaves "cassandra" in
the record and the reason nowhere, and a port, a config value, a current state or an undone
edit has no field at all. Whatever the probes ask beyond these six fields can only survive in
the verbatim exchanges that fill the rest of the budget (as the anchored compactor fills it).

How a long session gets through it. The span to compact (system turns and earlier summaries
left out, as the anchored compactor does) is rendered in the training format, one line per
message: "user: ...", "assistant: ..." (with its tool calls as "(tool target)"), "tool: ...".
A line longer than `turn_tokens` model tokens keeps its head and, for twice as many tokens,
its tail, where an error or a verdict usually sits. Consecutive lines are packed into windows
that fit the prompt room, each window opened by the current task as a user line (every
training session opens with the request). `split_windows` puts every rendered turn in exactly
one window. All windows go through the sampler together, `batch_size` at a time:
`unmasked.sampling.fill_batch` with the adaptive threshold tau (Fast-dLLM: every position
more than tau sure is committed, at least one per pass), or, for the twin, greedy decoding
with a KV cache (`unmasked.autoregressive.greedy_decode`), one token per pass.

How the records merge. As the anchored compactor merges its notes: one persistent state,
each compaction merges only the newly dropped turns, window by window, oldest first, latest
wins. A later database or decision replaces the earlier one, which stays in the summary
marked SUPERSEDED; files are a union, newest last; errors a list without repeats; the next
step is the latest. A value the window does not contain is dropped: the model is trained to
copy, and a record with no source in its window (it always fills all six fields) is
invented. The summary's task line is the current task the compactor is given, as the
anchored compactor's is, not the model's copy of it (which the window's first line fed it).
The summary then lays the record out in sections and spends the rest of the budget on the
newest exchanges verbatim (`fill=True`, as the anchored compactor does), so that every rung
is compared at the same budget; `fill=False` keeps the record alone.

Serving it. `endpoint_handler(compactor)` is a chat-completions handler for
`unmasked.llm.ChatServer`: LLMCompactor (the client of any OpenAI-compatible endpoint) sends
its usual summary request, and the server answers with this compactor's summary, so the same
client code drives the local model and a hosted one.

The AR twin's checkpoint is data/checkpoints/autoregressive.pt, made by `make checkpoint-ar`.
Without it, the "autoregressive" compactor raises CheckpointError naming the file and the
command; `untrained_autoregressive()` builds a random causal twin of the diffusion model for
format and speed checks only (its records are noise).

How well and how fast: `python benchmarks/bench_diffusion_compactor.py` scores it on the probe
harness beside observation masking, extractive and anchored, and times it against the twin on
the same windows (data/bench/diffusion_compactor_250.json: all 250 sessions of each style, read
back by lecture 10). Expect the honest picture: a long
session's windows are not the text the model was trained on, so its confidence stays low,
adaptive decoding takes many passes where a training-style session takes one or two, and most
of what it writes fails grounding; that JSON holds the figures, both kinds of window. On a
busy 2-core machine, run torch on one thread (torch.set_num_threads(1)): two threads waiting
on each other made the tests' compaction several times slower.

Not in COMPACTORS. The ladder that notebooks 07 and 08, the figures and the tests loop over
stays the offline, model-free rungs; these two are in MODEL_COMPACTORS and `get_compactor`
accepts their names, as does the probe harness (unmasked.evaluation.evaluate); pass an instance
to choose tau, the device or the batch size. Like every module of this package it imports at the
top, so `import unmasked.compaction` now brings torch in (the models need it; most lectures have
it already through unmasked.viz).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from unmasked.autoregressive import banned_ids, greedy_decode
from unmasked.checkpoints import (
    DEFAULT_AR_CHECKPOINT,
    DEFAULT_CHECKPOINT,
    REBUILD_HINT,
    CheckpointError,
    load_checkpoint,
)
from unmasked.model import TransformerLM
from unmasked.records import answer_text, parse_record_fields
from unmasked.sampling import fill_batch
from unmasked.tokens import count_tokens

from .compactors import Compactor, _target
from .extractive import SUPERSEDED, fill_budget
from .llm_compactor import parse_summary_request
from .messages import SUMMARY_PREFIX, call_name

TAU = 0.9  # the adaptive threshold of notebook 04 and the decode benchmark
TURN_TOKENS = 56  # model tokens one rendered turn may take: about the longest training line (58)
TASK_TOKENS = 48  # model tokens of the current task line that opens every window
BATCH_SIZE = 64
MODEL_COMPACTORS = ("diffusion", "autoregressive")
CUT = " ... "


# ---- windows -------------------------------------------------------------------------------


@dataclass
class Window:
    """A run of consecutive turns rendered in the model's training format, within prompt room.

    turns: indexes into the span given to `split_windows` (the turns it rendered); text: the
    window as the model reads it (its task line first); prompt: its token ids, ending in [SEP].
    """

    turns: list[int]
    text: str
    prompt: list[int]


def _flat(text: str) -> str:
    return " ".join((text or "").split())


def _clip_ids(ids: list[int], limit: int, cut_ids: list[int]) -> list[int]:
    """`ids` cut in the middle to `limit` tokens: a third head, two thirds tail, the cut marked."""
    if len(ids) <= limit:
        return ids
    room = max(2, limit - len(cut_ids))
    head = room // 3
    return ids[:head] + cut_ids + ids[len(ids) - (room - head) :]


def render_turn(message: dict) -> str:
    """One message as a line of the training format: "role: text", a call as "(tool target)"."""
    role = message.get("role", "user")
    text = _flat(message.get("content") or "")
    if len(text) > 4000:  # the head and tail survive the clip anyway; spare the tokenizer
        text = text[:1000] + CUT + text[-2000:]
    calls = []
    for call in message.get("tool_calls") or []:
        target = _target(call)
        calls.append(f"({call_name(call)} {target})" if target else f"({call_name(call)})")
    return f"{role}: " + " ".join(x for x in [text, *calls] if x)


def _is_summary(m: dict) -> bool:
    return m.get("role") == "user" and (m.get("content") or "").startswith(SUMMARY_PREFIX)


def history_turns(messages: list[dict]) -> list[int]:
    """Indexes of the turns a window may hold: not system turns (instructions, not history), not
    an earlier summary (the merged record already holds it)."""
    return [i for i, m in enumerate(messages) if m.get("role") != "system" and not _is_summary(m)]


def split_windows(
    messages: list[dict],
    current_task: str,
    vocab,
    prompt_room: int,
    *,
    turn_tokens: int = TURN_TOKENS,
    task_tokens: int = TASK_TOKENS,
) -> list[Window]:
    """The history turns of `messages` packed, in order, into windows of at most `prompt_room`
    model tokens ([SEP] included). Every history turn lands in exactly one window."""
    if prompt_room < task_tokens + turn_tokens + 8:
        raise ValueError(
            f"prompt_room={prompt_room} cannot hold a task line of {task_tokens} and a turn of "
            f"{turn_tokens} model tokens"
        )
    newline = vocab.encode("\n")
    cut_ids = vocab.encode(CUT)
    task_ids = _clip_ids(vocab.encode("user: " + _flat(current_task)), task_tokens, cut_ids)
    room = prompt_room - 1  # the [SEP]
    windows: list[Window] = []
    turns: list[int] = []
    ids = list(task_ids)
    for i in history_turns(messages):
        line = _clip_ids(vocab.encode(render_turn(messages[i])), turn_tokens, cut_ids)
        if turns and len(ids) + len(newline) + len(line) > room:
            windows.append(Window(turns, vocab.decode(ids), ids + [vocab.sep_id]))
            turns, ids = [], list(task_ids)
        turns.append(i)
        ids += newline + line
    if turns:
        windows.append(Window(turns, vocab.decode(ids), ids + [vocab.sep_id]))
    return windows


def short_session_window(short_session, vocab, prompt_room: int) -> Window:
    """A training-style short session (unmasked.sessions.ShortSession) as one window, through
    the same path as a long session's turns: its first line is the request, the rest its turns.

    The text comes out as the model was trained on it, so this is where its records should be
    right and its passes few: the contrast to a long session's windows.
    """
    lines = short_session.text.split("\n")
    messages = [dict(zip(("role", "content"), line.split(": ", 1))) for line in lines[1:]]
    (window,) = split_windows(messages, lines[0].split(": ", 1)[1], vocab, prompt_room)
    return window


# ---- records -------------------------------------------------------------------------------


FIELDS = ("task", "database", "decision", "files", "error", "next_step")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def parse_record(text: str) -> dict:
    """The six fields of a written record: str (or list of str for files), None when unreadable."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        out = {}
        for k in FIELDS:
            v = data.get(k)
            if k == "files":
                out[k] = [str(x) for x in v] if isinstance(v, list) else None
            else:
                out[k] = v if isinstance(v, str) else None
        return out

    fields = parse_record_fields(text)
    files = fields.get("files")
    return {**fields, "files": None if files is None else [f for f in files.split(", ") if f]}


def grounded(record: dict, window_text: str) -> dict:
    """The record with every value its window does not contain (case and spacing aside) dropped.

    The model copies spans; a value with no source in the window is one it made up.
    """
    source = _norm(window_text)
    out = {}
    for k in FIELDS:
        v = record.get(k)
        if k == "files":
            kept = [f for f in (v or []) if f.strip() and _norm(f) in source]
            out[k] = list(dict.fromkeys(kept))
        else:
            out[k] = v if isinstance(v, str) and v.strip() and _norm(v) in source else None
    return out


@dataclass
class WindowRecord:
    """What the model wrote for one window: the raw text, the record read from it, and what
    survived grounding."""

    window: Window
    text: str
    record: dict
    kept: dict
    passes: int = 0  # forward passes this window's record took


@dataclass
class MergedRecord:
    """The anchored state: every window's kept values, merged oldest first, latest wins."""

    task: str = ""
    databases: list[str] = field(default_factory=list)  # the last is current
    decisions: list[str] = field(default_factory=list)  # the last is current
    files: list[str] = field(default_factory=list)  # newest touched last
    errors: list[str] = field(default_factory=list)  # newest last, no repeats
    next_step: str = ""
    windows: int = 0

    def merge(self, kept: dict) -> None:
        self.windows += 1
        if kept.get("task"):
            self.task = kept["task"]
        for key, values in (("database", self.databases), ("decision", self.decisions)):
            v = kept.get(key)
            if v:
                if v in values:
                    values.remove(v)
                values.append(v)
        for f in kept.get("files") or []:
            if f in self.files:
                self.files.remove(f)
            self.files.append(f)
        e = kept.get("error")
        if e:
            if e in self.errors:
                self.errors.remove(e)
            self.errors.append(e)
        if kept.get("next_step"):
            self.next_step = kept["next_step"]


def render_record(merged: MergedRecord, current_task: str, budget_tokens: int) -> str:
    """The merged record as sectioned text within `budget_tokens`, the most useful lines first."""
    if budget_tokens <= 0:
        return ""
    items = []  # (priority, section, order, line)
    task = _flat(current_task) or merged.task
    if task:
        items.append((0, "## Task", 0, f"Current task: {task}"))
    if merged.next_step:
        items.append((1, "## Next step", 0, merged.next_step))
    if merged.decisions:
        items.append((2, "## Decisions (latest wins)", 99, f"- CURRENT: {merged.decisions[-1]}"))
    for k, d in enumerate(merged.decisions[:-1]):
        later = merged.decisions[k + 1]
        items.append((6, "## Decisions (latest wins)", k, f"- {SUPERSEDED} (by: {later}): {d}"))
    if merged.databases:
        items.append((2, "## Database", 99, f"- CURRENT: {merged.databases[-1]}"))
    for k, d in enumerate(merged.databases[:-1]):
        later = merged.databases[k + 1]
        items.append((6, "## Database", k, f"- {SUPERSEDED} (by: {later}): {d}"))
    n = len(merged.files)
    for k, f in enumerate(reversed(merged.files)):
        items.append((3 if k < 6 else 5, "## Files", n - k, f"- {f}"))
    m = len(merged.errors)
    for k, e in enumerate(reversed(merged.errors)):
        items.append((3 if k < 2 else 5, "## Errors (verbatim)", m - k, f"- {e}"))
    order = [
        "## Task",
        "## Decisions (latest wins)",
        "## Database",
        "## Files",
        "## Errors (verbatim)",
        "## Next step",
    ]
    used, chosen, opened = 0, [], set()
    for _, section, rank, line in sorted(items, key=lambda it: (it[0], -it[2])):
        cost = count_tokens(line) + 1 + (0 if section in opened else count_tokens(section) + 2)
        if used + cost > budget_tokens:
            continue
        used += cost
        opened.add(section)
        chosen.append((section, rank, line))
    out = []
    for section in order:
        lines = sorted((r, line) for s, r, line in chosen if s == section)
        if lines:
            out += [section, *(line for _, line in lines), ""]
    return "\n".join(out).strip()


# ---- the models ----------------------------------------------------------------------------

_LOADED: dict = {}


def _load(path: Path, device: str, *, causal: bool, hint: str):
    """(model, vocab, layout) from a checkpoint, read once per path, version and device."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: {hint}")
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(device))
    if key not in _LOADED:
        model, vocab, layout, _ = load_checkpoint(path, device)
        if bool(model.config.causal) != causal:
            kind = "causal (autoregressive)" if model.config.causal else "bidirectional (diffusion)"
            raise CheckpointError(f"{path} holds a {kind} model; {hint}")
        _LOADED[key] = (model, vocab, layout)
    return _LOADED[key]


def _cut_at_eos(answer: list[int], spans, eos_id: int) -> list[int]:
    """Within each slot, everything after its first [EOS] is filler (as the layout says)."""
    out = list(answer)
    for _, lo, hi in spans:
        seg = out[lo:hi]
        if eos_id in seg:
            k = seg.index(eos_id)
            out[lo + k : hi] = [eos_id] * (hi - lo - k)
    return out


class _RecordCompactor(Compactor):
    """Shared by both models: windows, batched writing, grounding, the anchored merge, layout."""

    stateful = True
    arch = ""
    trained = True  # False only for untrained_autoregressive(): its records are noise

    def __init__(
        self,
        checkpoint=None,
        *,
        device: str = "cpu",
        batch_size: int = BATCH_SIZE,
        turn_tokens: int = TURN_TOKENS,
        fill: bool = True,
        model=None,
        vocab=None,
        layout=None,
        prompt_room: int | None = None,
        cache: dict | None = None,
    ):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if (model is None) != (vocab is None) or (model is None) != (layout is None):
            raise ValueError("give model, vocab and layout together (or none: the checkpoint)")
        self.checkpoint = checkpoint
        self.device = device
        self.batch_size = batch_size
        self.turn_tokens = turn_tokens
        self.fill = fill
        self._parts = None if model is None else (model.eval(), vocab, layout)
        self._prompt_room = prompt_room
        self.cache = cache  # prompt ids -> answer ids, shared by compactors over one model
        self.merged = MergedRecord()
        self.merges = 0
        self.last_windows: list[Window] = []
        self.last_records: list[WindowRecord] = []
        self.last_passes = 0  # forward calls of the last write_records, summed over its batches

    # what each model does differently
    def _default_checkpoint(self) -> Path:
        raise NotImplementedError

    def _hint(self) -> str:
        raise NotImplementedError

    def _write(self, model, vocab, prompts, length) -> tuple[list[list[int]], list[int]]:
        """(answer ids, forward passes) per prompt, for one batch."""
        raise NotImplementedError

    def parts(self):
        """(model, vocab, layout), loading the checkpoint on first use."""
        if self._parts is None:
            path = self.checkpoint or self._default_checkpoint()
            self._parts = _load(path, self.device, causal=self.arch == "ar", hint=self._hint())
        return self._parts

    def prompt_room(self) -> int:
        """Model tokens a window may take, [SEP] included: the model's length less the record's."""
        model, vocab, layout = self.parts()
        room = model.config.max_len - layout.length(vocab)
        return min(room, self._prompt_room) if self._prompt_room else room

    def reset(self) -> None:
        self.merged = MergedRecord()
        self.merges = 0

    def windows(self, messages: list[dict], current_task: str) -> list[Window]:
        _, vocab, _ = self.parts()
        return split_windows(
            messages, current_task, vocab, self.prompt_room(), turn_tokens=self.turn_tokens
        )

    def write_records(self, windows: list[Window]) -> list[WindowRecord]:
        """Every window's record, written `batch_size` windows at a time."""
        model, vocab, layout = self.parts()
        length = layout.length(vocab)
        spans = layout.spans(vocab)
        out: list[WindowRecord] = []
        self.last_passes = 0
        todo = [w for w in windows if self.cache is None or tuple(w.prompt) not in self.cache]
        written: dict[tuple, tuple[list[int], int]] = {}
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            answers, passes = self._write(model, vocab, [w.prompt for w in batch], length)
            self.last_passes += max(passes)
            for w, answer, n in zip(batch, answers, passes):
                written[tuple(w.prompt)] = (answer, int(n))
        if self.cache is not None:
            self.cache.update(written)
        for w in windows:
            answer, passes = written.get(tuple(w.prompt)) or self.cache[tuple(w.prompt)]
            text = answer_text(_cut_at_eos(answer, spans, vocab.eos_id), vocab)
            record = parse_record(text)
            out.append(WindowRecord(w, text, record, grounded(record, w.text), passes))
        return out

    def summarize(self, messages, current_task, budget_tokens):
        fresh = [m for m in messages if not _is_summary(m)]
        self.last_windows = self.windows(fresh, current_task)
        self.last_records = self.write_records(self.last_windows)
        for r in self.last_records:
            self.merged.merge(r.kept)
        self.merges += 1
        summary = render_record(self.merged, current_task, budget_tokens)
        return fill_budget(summary, fresh, budget_tokens) if self.fill else summary

    def __repr__(self) -> str:
        where = self.checkpoint or ("given model" if self._parts else self._default_checkpoint())
        return f"{type(self).__name__}({where}, device={self.device!r})"


class DiffusionCompactor(_RecordCompactor):
    """The toy masked diffusion model writes each window's record, adaptive steps at tau."""

    name = "diffusion"
    arch = "diffusion"

    def __init__(self, checkpoint=None, *, tau: float = TAU, **kwargs):
        if not isinstance(tau, (int, float)) or not 0 < tau < 1:
            raise ValueError(f"tau must be a number between 0 and 1 (0.9 is usual), got {tau!r}")
        super().__init__(checkpoint, **kwargs)
        self.tau = float(tau)

    def _default_checkpoint(self) -> Path:
        return DEFAULT_CHECKPOINT

    def _hint(self) -> str:
        return REBUILD_HINT

    def _write(self, model, vocab, prompts, length):
        out = fill_batch(
            model,
            prompts,
            length,
            mask_id=vocab.mask_id,
            pad_id=vocab.pad_id,
            threshold=self.tau,
            banned=banned_ids(vocab)[1:],  # [PAD] and [SEP]; [MASK] is never proposed
        )
        return out.x[:, -length:].tolist(), out.passes.tolist()


class AutoregressiveCompactor(_RecordCompactor):
    """The causal twin writes the same records left to right, greedy, with a KV cache."""

    name = "autoregressive"
    arch = "ar"

    def _default_checkpoint(self) -> Path:
        return DEFAULT_AR_CHECKPOINT

    def _hint(self) -> str:
        return (
            "the autoregressive twin is not trained yet; train it with `make checkpoint-ar` "
            "(python -m unmasked.train --arch autoregressive --out data/checkpoints), or use "
            "untrained_autoregressive() for format and speed checks only"
        )

    def _write(self, model, vocab, prompts, length):
        return greedy_decode(model, prompts, length, vocab, cache=True), [length] * len(prompts)


def make_diffusion_compactor(checkpoint=None, **kwargs) -> DiffusionCompactor:
    """A DiffusionCompactor with its knobs: tau, device, batch_size, turn_tokens, fill."""
    return DiffusionCompactor(checkpoint, **kwargs)


def untrained_autoregressive(seed: int = 0, checkpoint=None, **kwargs) -> AutoregressiveCompactor:
    """An AutoregressiveCompactor over a random causal twin of the diffusion model (same size,
    vocab and record layout): for format and speed, never for quality."""
    diffusion = DiffusionCompactor(checkpoint, device=kwargs.get("device", "cpu"))
    model, vocab, layout = diffusion.parts()
    torch.manual_seed(seed)
    twin = TransformerLM(dataclasses.replace(model.config, causal=True))
    twin = twin.to(kwargs.get("device", "cpu")).eval()
    compactor = AutoregressiveCompactor(model=twin, vocab=vocab, layout=layout, **kwargs)
    compactor.trained = False
    return compactor


# ---- serving -------------------------------------------------------------------------------


def endpoint_handler(compactor="diffusion"):
    """A `unmasked.llm.ChatServer` handler that answers LLMCompactor's summary request with
    `compactor`'s summary (a name or an instance; one instance, so its merged state carries from
    one request to the next, as a subagent serving one agent would)."""
    models = {"diffusion": DiffusionCompactor, "autoregressive": AutoregressiveCompactor}
    if isinstance(compactor, str):
        if compactor not in models:
            raise ValueError(f"unknown compactor {compactor!r}; accepted: {', '.join(models)}")
        engine = models[compactor]()
    elif callable(getattr(compactor, "summarize", None)):
        engine = compactor
    else:
        raise ValueError(f"compactor must be a name or have summarize(), got {compactor!r}")

    def answer(body: dict) -> str:
        messages, task, max_tokens = parse_summary_request(body)
        return engine.summarize(messages, task, int(max_tokens) if max_tokens else 8_000)

    answer.compactor = engine
    return answer


__all__ = [
    "MODEL_COMPACTORS",
    "TAU",
    "AutoregressiveCompactor",
    "DiffusionCompactor",
    "MergedRecord",
    "Window",
    "WindowRecord",
    "endpoint_handler",
    "grounded",
    "history_turns",
    "make_diffusion_compactor",
    "parse_record",
    "render_record",
    "render_turn",
    "short_session_window",
    "split_windows",
    "untrained_autoregressive",
]
