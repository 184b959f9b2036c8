"""Checkpoints: a plain dict (config, vocab and layout as lists and dicts, weights) for weights_only
loading.

A checkpoint holds no pickled code, so `torch.load(..., weights_only=True)` reads it. The same
format holds the diffusion model and its autoregressive twin: `model_config["causal"]` tells them
apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from unmasked.model import ModelConfig, TransformerLM
from unmasked.records import RecordLayout
from unmasked.vocab import Vocab

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = REPO_ROOT / "data" / "checkpoints" / "diffusion.pt"
CHECKPOINT_FORMAT = (
    "unmasked-diffusion-v2"  # v2: fixed-width record slots, positions counted from [SEP]
)
REBUILD_HINT = "rebuild it with `make checkpoint` (python -m unmasked.train --out data/checkpoints)"
DEFAULT_AR_CHECKPOINT = REPO_ROOT / "data" / "checkpoints" / "autoregressive.pt"
# Both models continued on records and the second task, span filling (`--span-task`): chapter 04's
# free text comes from here, the shipped pair above stays as it was (every recorded race uses it).
SPAN_CHECKPOINTS = REPO_ROOT / "data" / "checkpoints" / "spans"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or made for different code; says how to rebuild it."""


def same_corpus(
    vocab: Vocab, layout: RecordLayout, other: Vocab, other_layout: RecordLayout
) -> bool:
    """Whether two checkpoints share token ids and answer slots: only then do one's prompts and
    answers mean the same to the other (continuing one, racing two, or swapping one for another)."""
    return vocab.itos == other.itos and layout.to_dict() == other_layout.to_dict()


def save_checkpoint(
    path,
    model: TransformerLM,
    vocab: Vocab,
    layout: RecordLayout,
    meta: dict | None = None,
    half: bool = True,
) -> Path:
    """Write config, vocab and record layout (plain lists and dicts) and weights (float16 unless
    half=False)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"
    }  # tied to wte
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    blob = {
        "format": CHECKPOINT_FORMAT,
        "model_config": model.config.to_dict(),
        "vocab": vocab.to_dict(),
        "layout": layout.to_dict(),
        "state_dict": state,
        "meta": meta or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def load_checkpoint(
    path=DEFAULT_CHECKPOINT, device="cpu"
) -> tuple[TransformerLM, Vocab, RecordLayout, dict]:
    """(model in eval mode, vocab, record layout, meta) from a checkpoint, read with
    weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: {REBUILD_HINT}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holds objects weights_only refuses
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); {REBUILD_HINT}"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"{path} has format {found!r}, expected {CHECKPOINT_FORMAT!r}; {REBUILD_HINT}"
        )
    try:
        vocab = Vocab.from_dict(blob["vocab"])
        layout = RecordLayout.from_dict(blob["layout"])
        config = ModelConfig(**blob["model_config"])
        if config.vocab_size != vocab.size:
            raise ValueError(
                f"model vocab_size {config.vocab_size} != stored vocab size {vocab.size}"
            )
        model = TransformerLM(config)
        state = {
            k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()
        }
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise ValueError(
                f"weights do not fit the model: missing {missing}, unexpected {unexpected}"
            )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} does not match this code ({type(exc).__name__}: {exc}); {REBUILD_HINT}"
        ) from None
    model.lm_head.weight = model.wte.weight
    return model.to(device).eval(), vocab, layout, dict(blob.get("meta", {}))
