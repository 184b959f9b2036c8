"""The second task, span filling: its examples, its draws, and how it is filled and scored."""

import random

import pytest
import torch
from torch import nn

from unmasked.spans import (
    draw_span,
    evaluate_spans,
    fill_spans,
    is_span_row,
    longest_span,
    middle_span,
    sessions_long_enough,
    span_example,
    span_examples,
    span_token_accuracy,
    text_ids,
)


@pytest.fixture(scope="module")
def corpus():
    from unmasked.records import RecordLayout, build_vocab
    from unmasked.sessions import generate_short_sessions

    sessions = generate_short_sessions(4, seed=1)
    vocab = build_vocab(sessions)
    return sessions, vocab, RecordLayout.fit([s.record for s in sessions], vocab)


def test_a_span_example_cuts_the_hole_and_moves_its_tokens_after_sep(corpus):
    sessions, vocab, layout = corpus
    text = text_ids(sessions[0], vocab)
    A = layout.length(vocab)
    prompt, answer = span_example(text, 5, 12, A, vocab)
    assert prompt == text[:5] + [vocab.unk_id] + text[17:] + [vocab.sep_id]
    assert answer == text[5:17] + [vocab.eos_id] * (A - 12) and len(answer) == A
    # filling the hole with the answer's tokens gives the session back
    hole = prompt.index(vocab.unk_id)
    assert prompt[:hole] + answer[:12] + prompt[hole + 1 : -1] == text
    with pytest.raises(ValueError, match="no text on one side"):
        span_example(text, 0, 3, A, vocab)
    with pytest.raises(ValueError, match="no text on one side"):
        span_example(text, len(text) - 3, 3, A, vocab)
    with pytest.raises(ValueError, match="length must be"):
        span_example(text, 5, A + 1, A, vocab)


def test_span_draws_stay_inside_the_text_and_half_are_the_longest():
    rng = random.Random(0)
    for n, A in ((3, 50), (40, 50), (300, 218)):
        draws = [draw_span(n, A, rng) for _ in range(2000)]
        top = longest_span(n, A)
        assert all(1 <= k <= top and s >= 1 and s + k <= n - 1 for s, k in draws)
        share = sum(k == top for _, k in draws) / len(draws)
        assert 0.45 < share <= 0.55 + 1 / top  # half by rule, plus the uniform draws that hit it
    with pytest.raises(ValueError, match="no span"):
        draw_span(2, 10, rng)


def test_span_examples_one_per_session_and_marked_as_span_rows(corpus):
    from unmasked.records import encode_example, make_batch

    sessions, vocab, layout = corpus
    A = layout.length(vocab)
    spans = span_examples(sessions, vocab, A, seed=3)
    assert len(spans) == len(sessions) and spans == span_examples(sessions, vocab, A, seed=3)
    assert all(len(a) == A and p.count(vocab.unk_id) == 1 for p, a in spans)
    records = [encode_example(s, vocab, layout) for s in sessions]
    ids, answer, _ = make_batch(records[:2] + spans[:2], vocab)
    assert is_span_row(ids, vocab).tolist() == [False, False, True, True]


def test_middle_span_and_the_sessions_long_enough(corpus):
    sessions, vocab, _ = corpus
    text = text_ids(sessions[0], vocab)
    prompt, hidden = middle_span(sessions[0], vocab, 20)
    start = (len(text) - 20) // 2
    assert hidden == text[start : start + 20]
    assert prompt == text[:start] + [vocab.unk_id] + text[start + 20 :] + [vocab.sep_id]
    with pytest.raises(ValueError, match="too few"):
        middle_span(sessions[0], vocab, len(text) - 1)
    lengths = [len(text_ids(s, vocab)) for s in sessions]
    n = max(lengths)
    kept = sessions_long_enough(sessions, vocab, n - 2)  # only the longest can hide n - 2 tokens
    assert kept == [s for s, k in zip(sessions, lengths) if k == n]
    assert sessions_long_enough(sessions, vocab, n - 1) == []


class SpanOracle(nn.Module):
    """Knows the hidden span of each prompt: a model known to be right, to check the scoring."""

    def __init__(self, cases, vocab):
        super().__init__()
        self.cases, self.vocab = cases, vocab
        self.config = type("C", (), {"causal": False})()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.vocab.size)
        for r in range(B):
            row = [t for t in idx[r].tolist() if t != self.vocab.pad_id]
            for prompt, hidden in self.cases:
                if row[: len(prompt)] == prompt:
                    logits[r, T - len(hidden) + torch.arange(len(hidden)), torch.tensor(hidden)] = (
                        30
                    )
        return logits


def test_evaluate_spans_scores_a_right_model_right_in_one_pass(corpus):
    sessions, vocab, _ = corpus
    cases = [middle_span(s, vocab, 24) for s in sessions]
    r = evaluate_spans(SpanOracle(cases, vocab), vocab, sessions, 24)
    assert r["n"] == 4 and r["length"] == 24 and r["method"] == "adaptive"
    assert r["accuracy"] == {"tokens": 1.0, "whole": 1.0}
    assert r["passes"] == {"mean": 1.0, "median": 1, "max": 1}
    # a model that knows only two of the four spans gets those right and misses the others
    half = evaluate_spans(SpanOracle(cases[:2], vocab), vocab, sessions, 24)
    assert half["accuracy"]["whole"] == 0.5 and half["passes"]["max"] > 1


def test_a_causal_model_writes_spans_greedily_one_pass_per_token(corpus):
    from conftest import make_random_lm

    from unmasked.autoregressive import greedy_decode

    sessions, vocab, _ = corpus
    model = make_random_lm(vocab, causal=True)
    prompts = [middle_span(s, vocab, 8)[0] for s in sessions]
    written, passes = fill_spans(model, vocab, prompts, 8, batch_size=3)
    assert passes == [8] * 4 and written == greedy_decode(model, prompts, 8, vocab)
    r = evaluate_spans(model, vocab, sessions, 8)
    assert r["method"] == "autoregressive" and r["threshold"] is None
    assert 0.0 <= r["accuracy"]["tokens"] <= 1.0


def test_span_token_accuracy_counts_positions_and_whole_spans():
    assert span_token_accuracy([[1, 2, 3], [1, 0, 0]], [[1, 2, 3], [1, 2, 3]]) == {
        "tokens": 4 / 6,
        "whole": 0.5,
    }
    with pytest.raises(ValueError, match="as many"):
        span_token_accuracy([[1]], [])


def test_a_span_row_is_batched_with_the_records_of_sessions_as_long(corpus):
    from unmasked.records import encode_example
    from unmasked.train import bucket_length

    sessions, vocab, layout = corpus
    A = layout.length(vocab)
    for s, span in zip(sessions, span_examples(sessions, vocab, A)):
        record = encode_example(s, vocab, layout)
        assert bucket_length(*span, vocab) == bucket_length(*record, vocab) == len(record[0]) + A
