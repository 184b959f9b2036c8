"""The shapes of a session: chat-API turns, planted facts, probes, and the gold record.

These mirror the OpenAI chat format so that a learner's own transcript, loaded with
`load_transcript`, and a generated session are the same kind of object downstream.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

PROBE_CATEGORIES = (
    "factual_recall",
    "decision_tracking",
    "artifact_management",
    "logical_continuation",
)
ROLES = ("system", "user", "assistant", "tool")
POSITIONS = ("early", "middle", "late")
RECORD_FIELDS = ("task", "decisions", "files_modified", "errors", "current_state", "next_step")
SHORT_RECORD_FIELDS = ("task", "database", "decision", "files", "error", "next_step")
SCHEMA_VERSION = 1


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict

    def to_message(self) -> dict:
        args = json.dumps(self.arguments, ensure_ascii=False)
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": args},
        }


@dataclass
class Turn:
    role: str  # one of ROLES
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant turns only
    tool_call_id: str | None = None  # tool turns only: the call it answers

    def to_message(self) -> dict:
        """This turn as an OpenAI chat message."""
        message = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


@dataclass
class KeyFact:
    """An atomic fact; an answer states it if it contains `text` or a variant (case-insensitive)."""

    text: str
    variants: list[str] = field(default_factory=list)

    def forms(self) -> list[str]:
        return [self.text, *self.variants]

    def stated_in(self, answer: str) -> bool:
        low = answer.lower()
        return any(form.lower() in low for form in self.forms())


@dataclass
class Probe:
    category: str
    question: str
    reference_answer: str
    key_facts: list[KeyFact]
    stale_facts: list[KeyFact]  # true once, later reversed: must not be stated as current


@dataclass
class PlantedFact:
    category: str
    text: str  # a string that occurs verbatim in turns[turn_index].content
    turn_index: int
    position: str  # "early" | "middle" | "late"
    stale: bool = False
    replaces: str | None = None  # for a fact that supersedes a stale one: the stale fact's text


@dataclass
class Session:
    id: str
    seed: int
    project: str
    task: str
    turns: list[Turn]
    probes: list[Probe]
    record: dict
    facts: list[PlantedFact]
    n_tokens: int = -1  # cl100k, as unmasked.tokens.count_tokens(self.messages()) counts them

    def __post_init__(self):
        if self.n_tokens < 0:
            from unmasked.tokens import count_tokens

            self.n_tokens = count_tokens(self.messages())

    def messages(self) -> list[dict]:
        return [turn.to_message() for turn in self.turns]

    def text(self) -> str:
        """All the text a model would read: contents and tool-call arguments, in order."""
        parts = []
        for turn in self.turns:
            parts.append(turn.content)
            for call in turn.tool_calls:
                parts.append(json.dumps(call.arguments, ensure_ascii=False))
        return "\n".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Session:
        turns = [
            Turn(
                role=t["role"],
                content=t["content"],
                tool_calls=[ToolCall(**c) for c in t.get("tool_calls", [])],
                tool_call_id=t.get("tool_call_id"),
            )
            for t in data["turns"]
        ]
        probes = [
            Probe(
                category=p["category"],
                question=p["question"],
                reference_answer=p["reference_answer"],
                key_facts=[KeyFact(**k) for k in p["key_facts"]],
                stale_facts=[KeyFact(**k) for k in p["stale_facts"]],
            )
            for p in data["probes"]
        ]
        facts = [PlantedFact(**f) for f in data["facts"]]
        return cls(
            id=data["id"],
            seed=data["seed"],
            project=data["project"],
            task=data["task"],
            turns=turns,
            probes=probes,
            record=data["record"],
            facts=facts,
            n_tokens=data.get("n_tokens", -1),
        )


class TranscriptError(ValueError):
    """A transcript that cannot be read: the message names the file, the line or record, and the
    field."""


@dataclass
class Transcript(Session):
    """A loaded agent log: a Session (turns, task) plus what its format recorded besides the
    messages."""

    format: str = ""
    source: str = ""
    kinds: list = field(default_factory=list)  # one of KINDS per turn
    exit_codes: dict = field(
        default_factory=dict
    )  # tool_call_id -> exit code, where the log has one
    failed: dict = field(
        default_factory=dict
    )  # tool_call_id -> True where the log marks the call failed
    final_diff: str = ""  # the submitted patch, where the log has one
    root: str = ""  # the working directory the agent's absolute paths start with, where known


@dataclass
class ShortSession:
    """A <= 256-token session and its flat record: training data for the toy diffusion model."""

    id: str
    text: str
    record: dict  # keys exactly SHORT_RECORD_FIELDS; "files" is list[str], the rest str


def record_to_json(record: dict) -> str:
    """The canonical JSON of a short record: fields in SHORT_RECORD_FIELDS order, no escaping."""
    missing = [k for k in SHORT_RECORD_FIELDS if k not in record]
    extra = [k for k in record if k not in SHORT_RECORD_FIELDS]
    if missing or extra:
        raise ValueError(
            f"a short record needs exactly the keys {SHORT_RECORD_FIELDS}; missing {missing}, "
            f"unexpected {extra}"
        )
    return json.dumps({k: record[k] for k in SHORT_RECORD_FIELDS}, ensure_ascii=False)


def record_fields(record: dict) -> dict[str, str]:
    """Per-field canonical strings for exact-match scoring; the file list is joined by ', '."""
    out = {}
    for key in SHORT_RECORD_FIELDS:
        if key not in record:
            raise ValueError(
                f"record has no {key!r}; a short record has the keys {SHORT_RECORD_FIELDS}"
            )
        value = record[key]
        out[key] = ", ".join(value) if isinstance(value, list) else str(value)
    return out
