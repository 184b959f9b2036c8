"""Unmasked: the shared package behind the course notebooks.

Everything a notebook computes lives here as a plain, tested function; notebooks narrate and
import. Modules are named for what they hold: env, tokens, labs, sessions, masking, model,
sampling, train, compaction, llm, probes, costs, grading, viz.
"""

__version__ = "0.1.0"
