"""Shared test set-up: paths, notebooks that are fixtures rather than course material, and the
shipped checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Planted submissions for the grader are notebooks on purpose broken; nbval must not run them.
collect_ignore_glob = ["fixtures/*", "fixtures/**/*", "artifacts/*"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def checkpoint_required() -> bool:
    """In CI (CI=true, or UNMASKED_REQUIRE_CHECKPOINT=1) a missing checkpoint fails, not skips."""
    return _truthy("UNMASKED_REQUIRE_CHECKPOINT") or _truthy("CI")


def shipped_checkpoint_path(path: Path | None = None) -> Path:
    """The committed data/checkpoints/diffusion.pt (or `path`); without it skip, or fail in CI."""
    from unmasked.train import DEFAULT_CHECKPOINT, REBUILD_HINT

    path = DEFAULT_CHECKPOINT if path is None else path
    if not path.exists():
        reason = f"no shipped checkpoint at {path}: {REBUILD_HINT}"
        if checkpoint_required():
            pytest.fail(f"CI needs the shipped checkpoint, and there is {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture
def shipped_checkpoint() -> Path:
    return shipped_checkpoint_path()


def make_random_lm(vocab, cls=None, seed: int = 0, max_len: int = 640, causal: bool = False):
    """A one-layer TransformerLM with random weights for `vocab` (anything with size, pad_id and
    sep_id), [SEP] anchored at 400, its embeddings scaled by 30 so that its confidences spread
    out: no near ties, and a threshold has choices to make. cls: a TransformerLM subclass (a spy);
    causal: the autoregressive kind.
    """
    import torch

    from unmasked.model import ModelConfig, TransformerLM

    torch.manual_seed(seed)
    model = (cls or TransformerLM)(
        ModelConfig(
            vocab_size=vocab.size,
            max_len=max_len,
            n_layer=1,
            n_head=2,
            n_embd=32,
            pad_id=vocab.pad_id,
            anchor_id=vocab.sep_id,
            anchor_pos=400,
            causal=causal,
        )
    ).eval()
    with torch.no_grad():
        model.wte.weight.mul_(30)
    return model


@pytest.fixture(scope="session")
def random_lm():
    """make_random_lm, for tests of decoders that need a real model but not a trained one."""
    return make_random_lm
