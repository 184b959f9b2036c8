"""Context compaction for a coding agent: compact_context and a ladder of compactors to compare.

    from unmasked.compaction import compact_context, render
    ctx = compact_context(session.turns, session.task, compactor="extractive")
    messages = render(ctx)          # what the reasoning model receives next

The ladder (COMPACTORS, in order): truncation, keep_last, observation_masking, extractive,
anchored (with regenerate as its baseline), llm. Off the ladder, MODEL_COMPACTORS: diffusion
and autoregressive, the course's own toy model and its twin writing records window by window
(diffusion.py; get_compactor and compact_context take their names). Modules, each importing
only those before it: messages (validation, tool-call units, transcripts, the summary
message), compactors (the interface and the simple rungs), extractive (structured notes and
the anchored merge), llm_compactor (the model-written summary), diffusion (the course's models
as compactors), registry (the ladder by name), core (compact_context, render, budgets),
repeated (many compactions over one long session), figures (plotly figures and the widget
playground of notebook 07; import it explicitly).
"""

from .compactors import (
    PLACEHOLDER,
    Compactor,
    KeepLastCompactor,
    ObservationMaskingCompactor,
    TruncationCompactor,
    mask_observations,
    newest_that_fit,
)
from .core import (
    CompactedContext,
    compact_context,
    fit_to_budget,
    render,
    split_history,
    summary_budget,
    validate_settings,
)
from .diffusion import (
    MODEL_COMPACTORS,
    AutoregressiveCompactor,
    DiffusionCompactor,
    make_diffusion_compactor,
)
from .extractive import (
    AnchoredCompactor,
    ExtractiveCompactor,
    Notes,
    RegenerateCompactor,
    extract_notes,
    render_notes,
)
from .llm_compactor import LLMCompactor, build_summary_request, extractive_answer, load_prompt
from .messages import (
    ROLES,
    SUMMARY_PREFIX,
    is_paired,
    parse_transcript,
    safe_cut,
    summary_message,
    to_messages,
    transcript,
    units,
)
from .registry import COMPACTORS, get_compactor
from .repeated import LoopTrace, Round, fact_retention, repeated_compaction, summary_drift

__all__ = [
    "COMPACTORS",
    "MODEL_COMPACTORS",
    "PLACEHOLDER",
    "ROLES",
    "SUMMARY_PREFIX",
    "AnchoredCompactor",
    "AutoregressiveCompactor",
    "CompactedContext",
    "Compactor",
    "DiffusionCompactor",
    "ExtractiveCompactor",
    "KeepLastCompactor",
    "LLMCompactor",
    "LoopTrace",
    "Notes",
    "ObservationMaskingCompactor",
    "RegenerateCompactor",
    "Round",
    "TruncationCompactor",
    "build_summary_request",
    "compact_context",
    "extract_notes",
    "extractive_answer",
    "fact_retention",
    "fit_to_budget",
    "get_compactor",
    "is_paired",
    "load_prompt",
    "make_diffusion_compactor",
    "mask_observations",
    "newest_that_fit",
    "parse_transcript",
    "render",
    "render_notes",
    "repeated_compaction",
    "safe_cut",
    "split_history",
    "summary_budget",
    "summary_drift",
    "summary_message",
    "to_messages",
    "transcript",
    "units",
    "validate_settings",
]
