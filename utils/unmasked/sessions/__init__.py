"""Seeded synthetic coding-agent sessions with planted facts and probe truths.

Compaction, probe evaluation and the toy diffusion model's training data all read from here.
A long session is a chat transcript (system, user, assistant with tool calls, tool results)
in which noise dominates the tokens, as in real agent sessions, and a handful of facts are
planted at recorded early, middle and late positions, including a decision that is later
reversed and a file that is edited then reverted. Each session carries four probes (one per
category) and its gold compaction record. The short corpus pairs <= 256-token sessions with a
flat record, for training the toy model.

    python -m unmasked.sessions --n 250 --seed 0 --out data/sessions
"""

from .anatomy import (
    fact_table,
    format_turns,
    plot_fact_map,
    plot_token_breakdown,
    token_breakdown,
    turn_kind,
)
from .formats import FORMATS, KINDS, detect_format, load_transcript
from .long import STYLES, generate_session, generate_sessions
from .schema import (
    POSITIONS,
    PROBE_CATEGORIES,
    RECORD_FIELDS,
    ROLES,
    SCHEMA_VERSION,
    SHORT_RECORD_FIELDS,
    KeyFact,
    PlantedFact,
    Probe,
    Session,
    ShortSession,
    ToolCall,
    Transcript,
    TranscriptError,
    Turn,
    record_fields,
    record_to_json,
)
from .short import MAX_SHORT_TOKENS, generate_short_sessions, generate_short_splits
from .store import DEFAULT_DIR, load_sessions, load_short_sessions

__all__ = [
    "PROBE_CATEGORIES",
    "ROLES",
    "POSITIONS",
    "RECORD_FIELDS",
    "SHORT_RECORD_FIELDS",
    "SCHEMA_VERSION",
    "ToolCall",
    "Turn",
    "KeyFact",
    "Probe",
    "PlantedFact",
    "Session",
    "ShortSession",
    "generate_session",
    "generate_sessions",
    "STYLES",
    "load_sessions",
    "load_transcript",
    "Transcript",
    "TranscriptError",
    "FORMATS",
    "KINDS",
    "detect_format",
    "generate_short_sessions",
    "generate_short_splits",
    "load_short_sessions",
    "MAX_SHORT_TOKENS",
    "record_to_json",
    "record_fields",
    "DEFAULT_DIR",
    "token_breakdown",
    "fact_table",
    "format_turns",
    "plot_token_breakdown",
    "plot_fact_map",
    "turn_kind",
]
