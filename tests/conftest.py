"""Shared test set-up: paths, and notebooks that are fixtures rather than course material."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Planted submissions for the grader are notebooks on purpose broken; nbval must not run them.
collect_ignore_glob = ["fixtures/*", "fixtures/**/*", "artifacts/*"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
