"""The autoregressive twin: the same transformer with a causal mask, writing the record left to
right.

It reads the same prompt ([PAD...][session][SEP]) and writes the same answer region, in the same
fixed-width slots (unmasked.records.RecordLayout), one token per forward pass. Training is
next-token cross-entropy on the answer tokens, given the prompt and the answer so far; the prompt
itself is not scored, as the diffusion model never scores it either.

Greedy decoding comes in two forms that must write the same tokens:
- without a cache, each step runs the whole sequence so far through the model, as a diffusion
  step does;
- with a KV cache (unmasked.model.KVCache), the prompt is read once and each step computes the new
  token's keys and values only. This is why autoregressive decoding at batch 1 is cheap per token:
  its cost is reading the weights, not recomputing the past.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unmasked.records import RecordLayout, make_batch
from unmasked.vocab import Vocab


def banned_ids(vocab: Vocab) -> list[int]:
    """Tokens no decoder may write: [MASK], [PAD] and [SEP] (as the diffusion record decoder)."""
    return [vocab.mask_id, vocab.pad_id, vocab.sep_id]


def next_token_loss(
    model, ids: torch.Tensor, answer: torch.Tensor, row_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy over the answer tokens of a batch (make_batch's ids and answer
    mask).

    The logit at position i predicts token i + 1, so the input is ids without its last column and
    the scored positions are those whose next token is an answer token: the [SEP] and the answer
    but its last token. Only those go through the output layer (forward's `at`). row_weight (B,)
    weighs each row's tokens (the span task's rows, see TrainConfig.span_weight); the divisor stays
    the number of tokens.
    """
    if ids.shape != answer.shape or ids.dim() != 2:
        raise ValueError(
            f"ids and answer must both be (B, T), got {tuple(ids.shape)} and {tuple(answer.shape)}"
        )
    if not bool(answer.any()):
        raise ValueError("the batch has no answer tokens to score")
    scored = answer[:, 1:]
    logits = model(ids[:, :-1], at=scored)
    if row_weight is None:
        return F.cross_entropy(logits.float(), ids[:, 1:][scored])
    ce = F.cross_entropy(logits.float(), ids[:, 1:][scored], reduction="none")
    weight = row_weight.to(ce.device)[:, None].expand_as(scored)[scored]
    return (ce * weight).sum() / scored.sum()


@torch.no_grad()
def greedy_decode(
    model,
    prompts: list[list[int]],
    length: int,
    vocab: Vocab,
    *,
    cache: bool = True,
    with_confidence: bool = False,
):
    """Write `length` tokens after each prompt, the most likely one at each step; one batch.

    Prompts are left-padded to a common length, so that every row writes the same columns.
    cache=True reads the prompt once and then one token per step (KVCache); cache=False runs the
    whole sequence at every step. Both take `length` forward passes and write the same tokens.
    Returns the written ids per prompt, and with with_confidence also the model's probability of
    each written token.
    """
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if not prompts:
        return ([], []) if with_confidence else []
    if not getattr(model.config, "causal", False):
        raise ValueError("greedy_decode needs a causal model (ModelConfig(causal=True))")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = make_batch([(list(p), []) for p in prompts], vocab)[0].to(device)
    B, P = x.shape
    if P + length > model.config.max_len:
        raise ValueError(
            f"{P} prompt and {length} answer tokens exceed max_len={model.config.max_len}"
        )
    banned = banned_ids(vocab)
    last = torch.zeros_like(x, dtype=torch.bool)
    last[:, -1] = True
    kv = model.new_cache() if cache else None
    out, conf = [], []
    step_in = x
    for _ in range(length):
        if kv is not None:
            logits = model(step_in, at=last[:, -step_in.shape[1] :], cache=kv)
        else:
            logits = model(x, at=last)
        logits = logits.float()
        logits[:, banned] = -float("inf")
        p, token = logits.softmax(dim=-1).max(dim=-1)
        out.append(token)
        conf.append(p)
        step_in = token[:, None]
        if kv is None:
            x = torch.cat([x, step_in], dim=1)
            last = torch.zeros_like(x, dtype=torch.bool)
            last[:, -1] = True
    model.train(was_training)
    ids = torch.stack(out, dim=1).tolist()
    if with_confidence:
        return ids, torch.stack(conf, dim=1).tolist()
    return ids


def decode_records(
    model,
    vocab: Vocab,
    prompts: list[list[int]],
    layout: RecordLayout,
    batch_size: int = 32,
    cache: bool = True,
    progress: bool = False,
) -> list[list[int]]:
    """The answer region (layout's length) written greedily after each prompt, in batches."""
    return write_after(
        model, vocab, prompts, layout.length(vocab), batch_size, cache, progress, "(autoregressive)"
    )


def write_after(
    model,
    vocab: Vocab,
    prompts: list[list[int]],
    length: int,
    batch_size: int = 32,
    cache: bool = True,
    progress: bool = False,
    what: str = "",
) -> list[list[int]]:
    """`length` tokens written greedily after each prompt, in batches: a record (decode_records) or
    any other text, such as a hidden span (unmasked.spans)."""
    from tqdm.auto import tqdm

    out: list[list[int]] = []
    for start in tqdm(
        range(0, len(prompts), batch_size), desc=f"writing {what}".strip(), disable=not progress
    ):
        out += greedy_decode(model, prompts[start : start + batch_size], length, vocab, cache=cache)
    return out
