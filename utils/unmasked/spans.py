"""The second task: fill a hidden span of the session's own text (the prose the models learn).

Both models learn it from the same examples as the record, in the same shape, so that nothing
about the model, the samplers or the batches changes:

    prompt: the session text with the span cut out and one [UNK] where it was, then [SEP]
    answer: the hidden tokens, then [EOS] filler up to the record's answer length

This is the fill-in-the-middle layout (Bavarian et al. 2022, arXiv:2207.14255): the hole's
content moves after the prompt, so that the autoregressive twin, which can only write left to
right, reads the text on both sides before it writes the span, exactly as the diffusion model
does. Why [UNK] as the hole marker: the five special tokens are fixed in every checkpoint's
vocabulary, and [UNK] never occurs in encoded text (unseen words are spelled out in bytes, and
generated training sessions that would need it are skipped), so it can mean "text you cannot
see" without a new id. A prompt with [UNK] asks for the span; a prompt without asks for the
record.

Why it matters: chapter 04 asks how many adaptive steps prose needs next to a JSON record of the
same length. That comparison is fair only if the model was trained to write both.
"""

from __future__ import annotations

import random

import torch

from unmasked.vocab import Vocab


def text_ids(session, vocab: Vocab) -> list[int]:
    """The session's text as the prompt encodes it, without the [SEP]."""
    return vocab.encode(session.text)


def span_example(
    text: list[int], start: int, length: int, answer_len: int, vocab: Vocab
) -> tuple[list[int], list[int]]:
    """(prompt, answer) hiding text[start:start + length]; at least one token stays on each side.

    The answer is padded with [EOS] to answer_len, the width every answer in a batch shares.
    """
    if not 1 <= length <= answer_len:
        raise ValueError(f"length must be in [1, answer_len={answer_len}], got {length}")
    if start < 1 or start + length > len(text) - 1:
        raise ValueError(
            f"a span of {length} at {start} leaves no text on one side of a {len(text)}-token text"
        )
    prompt = text[:start] + [vocab.unk_id] + text[start + length :] + [vocab.sep_id]
    answer = text[start : start + length] + [vocab.eos_id] * (answer_len - length)
    return prompt, answer


def longest_span(n_text: int, answer_len: int) -> int:
    """The longest span a text of n_text tokens can hide, one token kept on each side."""
    return min(answer_len, n_text - 2)


def draw_span(n_text: int, answer_len: int, rng: random.Random) -> tuple[int, int]:
    """(start, length) of a training span: half the time the longest one the text allows, else a
    length drawn uniformly from 1 up to it; the start is uniform where the span fits.

    Why half at the longest: chapter 04 measures spans as long as the record, and most sessions
    are only a little longer than that, so uniform lengths alone would rarely show the model one.
    """
    top = longest_span(n_text, answer_len)
    if top < 1:
        raise ValueError(f"a text of {n_text} tokens has no span to hide")
    length = top if rng.random() < 0.5 else rng.randint(1, top)
    start = rng.randint(1, n_text - 1 - length)
    return start, length


def span_examples(
    sessions, vocab: Vocab, answer_len: int, seed: int = 0
) -> list[tuple[list[int], list[int]]]:
    """One span example per session (a seeded draw each), for every session of 3 tokens or more."""
    rng = random.Random(seed)
    out = []
    for s in sessions:
        text = text_ids(s, vocab)
        if len(text) >= 3:
            start, length = draw_span(len(text), answer_len, rng)
            out.append(span_example(text, start, length, answer_len, vocab))
    return out


def middle_span(session, vocab: Vocab, length: int) -> tuple[list[int], list[int]]:
    """(prompt, hidden tokens) with the middle `length` tokens of the session hidden: the fixed
    case that chapter 04 and the benchmark measure (no [EOS] filler: the region is the span)."""
    text = text_ids(session, vocab)
    if longest_span(len(text), length) < length:
        raise ValueError(
            f"session {session.id} has {len(text)} text tokens, too few to hide {length}"
        )
    return span_example(text, (len(text) - length) // 2, length, length, vocab)


def sessions_long_enough(sessions, vocab: Vocab, length: int) -> list:
    """The sessions whose text can hide `length` tokens with text left on both sides."""
    return [s for s in sessions if longest_span(len(text_ids(s, vocab)), length) == length]


def is_span_row(ids: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """(B,) bool: which rows of a batch are span examples (their prompt holds the hole marker)."""
    return (ids == vocab.unk_id).any(dim=1)


def span_token_accuracy(written: list[list[int]], hidden: list[list[int]]) -> dict:
    """Token exact match over the hidden positions, and the share of spans written whole."""
    if len(written) != len(hidden) or not hidden:
        raise ValueError("need as many written spans as hidden ones, at least 1")
    right = total = whole = 0
    for w, h in zip(written, hidden):
        hits = sum(a == b for a, b in zip(w, h))
        right, total, whole = right + hits, total + len(h), whole + (hits == len(h))
    return {"tokens": right / total, "whole": whole / len(hidden)}


def fill_spans(
    model,
    vocab: Vocab,
    prompts: list[list[int]],
    length: int,
    threshold: float = 0.9,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[list[list[int]], list[int]]:
    """(written ids, forward passes) per span prompt: a region of `length` after each prompt.

    A diffusion model decodes it adaptively at `threshold` with chapter 04's loop
    (sampling.fill_after and threshold_policy, no slots: prose has none); a causal model writes it
    greedily with its KV cache, one pass per token (autoregressive.write_after). [PAD] and [SEP]
    are never proposed, as for the record.
    """
    from unmasked.autoregressive import write_after
    from unmasked.sampling import fill_after, threshold_policy

    if getattr(model.config, "causal", False):
        written = write_after(model, vocab, prompts, length, batch_size, progress=progress)
        return written, [length] * len(prompts)
    policy = threshold_policy(threshold, length)
    filled = fill_after(
        model,
        vocab,
        prompts,
        length,
        policy,
        batch_size=batch_size,
        progress=progress,
        desc="filling spans",
    )
    return filled.answers, filled.passes


def evaluate_spans(
    model, vocab: Vocab, sessions, length: int, threshold: float = 0.9, progress: bool = False
) -> dict:
    """Hide the middle `length` tokens of each session long enough, fill them, score the tokens.

    Passes per span stand beside the accuracy, as for records.
    """
    import statistics
    import time

    kept = sessions_long_enough(sessions, vocab, length)
    if not kept:
        raise ValueError(f"no session is long enough to hide {length} tokens")
    cases = [middle_span(s, vocab, length) for s in kept]
    begin = time.perf_counter()
    written, passes = fill_spans(
        model, vocab, [p for p, _ in cases], length, threshold, progress=progress
    )
    causal = bool(getattr(model.config, "causal", False))
    return {
        "task": "span",
        "method": "autoregressive" if causal else "adaptive",
        "threshold": None if causal else threshold,
        "length": length,
        "n": len(kept),
        "seconds": round(time.perf_counter() - begin, 1),
        "passes": {
            "mean": sum(passes) / len(passes),
            "median": statistics.median(passes),
            "max": max(passes),
        },
        "accuracy": span_token_accuracy(written, [h for _, h in cases]),
        "examples": [vocab.decode(w) for w in written[:2]],
    }
