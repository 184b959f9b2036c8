"""The record decoder as it was before issue #26, frozen: the reference that its speed-ups must
match.

`fill_answers` of commit 97f5138 (utils/unmasked/train.py), unchanged but for names: it runs the
output layer and softmax at every position, and keeps every row of a batch in the forward pass
until the slowest record is done. tests/test_decode.py checks that today's decoder writes the
same tokens; benchmarks/bench_fill.py times the two against each other. Do not "fix" this file.
"""

from __future__ import annotations

import math

import torch

from unmasked.train import RecordLayout, _answer_batch
from unmasked.vocab import Vocab

FILL_METHODS = ("one_shot", "slots", "confidence")  # its methods then


def predict_before(model, ids, vocab: Vocab):
    """(confidence, argmax token) at every position; the model may not write [MASK], [PAD] or
    [SEP]."""
    logits = model(ids).float()
    logits[..., [vocab.mask_id, vocab.pad_id, vocab.sep_id]] = -float("inf")
    return logits.softmax(dim=-1).max(dim=-1)


@torch.no_grad()
def fill_answers_before(
    model,
    vocab: Vocab,
    prompts: list[list[int]],
    layout: RecordLayout,
    method: str = "slots",
    threshold: float = 0.9,
    batch_size: int = 32,
    progress: bool = False,
    max_steps: int = 32,
) -> list[list[int]]:
    """Fill an all-[MASK] record after each prompt; return the answer ids (the whole region)."""
    from tqdm.auto import tqdm

    if method not in FILL_METHODS:
        raise ValueError(f"method must be one of {FILL_METHODS}, got {method!r}")
    model.eval()
    device = next(model.parameters()).device
    slot = torch.tensor(layout.slot_index(vocab), device=device)
    A = len(slot)
    spans = [
        (lo, hi) for _, lo, hi in layout.spans(vocab)
    ]  # [start, end) of each slot in the answer
    fields = [
        (lo, hi) for _, lo, hi in layout.field_spans(vocab)
    ]  # of each field: a list's slots together
    out: list[list[int]] = []
    for start in tqdm(
        range(0, len(prompts), batch_size), desc=f"filling ({method})", disable=not progress
    ):
        ids = _answer_batch(prompts[start : start + batch_size], A, vocab).to(device)
        ans = ids[:, -A:]  # a view: writing to it writes to ids
        if method == "one_shot":
            ans.copy_(predict_before(model, ids, vocab)[1][:, -A:])
        else:
            step = 0
            while bool((ans == vocab.mask_id).any()):
                masked = ans == vocab.mask_id
                conf, pred = (z[:, -A:] for z in predict_before(model, ids, vocab))
                if method == "slots":
                    commit = masked & (slot < 0)  # the JSON around the values, all at once
                    for lo, hi in fields:  # plus the leftmost masked token of every field
                        first = masked[:, lo:hi].long().argmax(dim=1)
                        commit[:, lo:hi].scatter_(
                            1, first[:, None], masked[:, lo:hi].any(dim=1, keepdim=True)
                        )
                else:
                    conf = torch.where(masked, conf, torch.full_like(conf, -1.0))
                    commit = conf >= threshold
                    k_min = math.ceil(int(masked.sum(dim=1).max()) / max(1, max_steps - step))
                    commit.scatter_(1, conf.topk(k_min, dim=1).indices, True)
                    commit &= masked
                ans.copy_(torch.where(commit, pred, ans))
                for lo, hi in spans:  # an [EOS] ends its value: the rest of the slot is filler
                    seg = ans[:, lo:hi]
                    after_eos = (seg == vocab.eos_id).long().cummax(dim=1).values.bool()
                    seg.copy_(torch.where(after_eos & (seg == vocab.mask_id), vocab.eos_id, seg))
                step += 1
        out += ans.tolist()
    return out
