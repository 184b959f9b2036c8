"""Context compaction for a coding agent: compact_context and a ladder of compactors to compare.

    from unmasked.compaction import compact_context, render
    ctx = compact_context(session.turns, session.task, compactor="extractive")
    messages = render(ctx)          # what the reasoning model receives next

The ladder (COMPACTORS, in order): truncation, keep_last, observation_masking, extractive,
anchored (with regenerate as its baseline), llm. Modules: messages (validation, tool-call
units, transcripts), core (compact_context, render, budgets), compactors (the interface and
the simple rungs), extractive (structured notes and the anchored merge), llm_compactor (the
model-written summary), repeated (many compactions over one long session), figures (plotly
figures and the widget playground of notebook 06; import it explicitly).
"""

from .compactors import (
    COMPACTORS,
    PLACEHOLDER,
    Compactor,
    KeepLastCompactor,
    ObservationMaskingCompactor,
    TruncationCompactor,
    get_compactor,
    mask_observations,
    newest_that_fit,
)
from .core import (
    SUMMARY_PREFIX,
    CompactedContext,
    compact_context,
    fit_to_budget,
    render,
    split_history,
    summary_budget,
    summary_message,
    validate_settings,
)
from .extractive import AnchoredCompactor, ExtractiveCompactor, Notes, RegenerateCompactor, extract_notes, render_notes
from .llm_compactor import LLMCompactor, build_summary_request, extractive_answer, load_prompt
from .repeated import LoopTrace, Round, fact_retention, repeated_compaction, summary_drift
from .messages import ROLES, is_paired, parse_transcript, safe_cut, to_messages, transcript, units

__all__ = [
    "COMPACTORS", "PLACEHOLDER", "LoopTrace", "Round", "fact_retention", "repeated_compaction", "summary_drift", "ROLES", "SUMMARY_PREFIX", "AnchoredCompactor", "CompactedContext", "Compactor",
    "ExtractiveCompactor", "KeepLastCompactor", "LLMCompactor", "Notes", "ObservationMaskingCompactor",
    "RegenerateCompactor", "TruncationCompactor", "build_summary_request", "compact_context", "extract_notes",
    "extractive_answer", "fit_to_budget", "get_compactor", "is_paired", "load_prompt", "mask_observations",
    "newest_that_fit", "parse_transcript", "render", "render_notes", "safe_cut", "split_history",
    "summary_budget", "summary_message", "to_messages", "transcript", "units", "validate_settings",
]
