"""The ladder of compactors by name: COMPACTORS and get_compactor.

A module of its own so that every rung can import the Compactor interface (compactors.py)
and compact_context can import the registry, with no import going back up the chain.
"""

from __future__ import annotations

from .compactors import (
    Compactor,
    KeepLastCompactor,
    ObservationMaskingCompactor,
    TruncationCompactor,
)
from .diffusion import MODEL_COMPACTORS, AutoregressiveCompactor, DiffusionCompactor
from .extractive import AnchoredCompactor, ExtractiveCompactor, RegenerateCompactor
from .llm_compactor import LLMCompactor

REGISTRY: dict[str, type[Compactor]] = {
    "truncation": TruncationCompactor,
    "keep_last": KeepLastCompactor,
    "observation_masking": ObservationMaskingCompactor,
    "extractive": ExtractiveCompactor,
    "anchored": AnchoredCompactor,
    "regenerate": RegenerateCompactor,
    "llm": LLMCompactor,
    "diffusion": DiffusionCompactor,
    "autoregressive": AutoregressiveCompactor,
}

# The ladder, in order. "regenerate" is the extractive compactor re-run over its own previous
# summary, the baseline that the anchored merge is compared against over repeated compactions.
# The course's own models (diffusion.py) are registered by name but kept off the ladder, so that
# the loops over COMPACTORS (notebooks 06 and 07, the figures, the tests) stay model-free and fast.
COMPACTORS = tuple(name for name in REGISTRY if name not in MODEL_COMPACTORS)


def get_compactor(compactor) -> Compactor:
    """A Compactor from an instance (returned as is) or a name in COMPACTORS (a fresh instance)."""
    if isinstance(compactor, Compactor):
        return compactor
    if isinstance(compactor, str) and compactor in REGISTRY:
        return REGISTRY[compactor]()
    if hasattr(compactor, "summarize") and callable(compactor.summarize):
        return compactor  # duck-typed: a learner's own class
    raise ValueError(
        f"unknown compactor {compactor!r}; accepted: a Compactor instance or one of "
        f"{', '.join(COMPACTORS)}, or one of the course's models: {', '.join(MODEL_COMPACTORS)}"
    )
