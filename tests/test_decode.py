"""The record decoder's two savings (issue #26): logits only where it can commit, finished rows
dropped.

Both must leave every written token as it was: tests/decode_before.py is the decoder before them.
"""

import pytest
import torch
from decode_before import fill_answers_before

from unmasked.model import ModelConfig, TransformerLM
from unmasked.sessions import generate_short_sessions
from unmasked.train import (
    DEFAULT_CHECKPOINT,
    FILL_METHODS,
    RecordLayout,
    build_vocab,
    encode_example,
    encode_prompt,
    fill_answers,
    load_checkpoint,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus():
    sessions = generate_short_sessions(24, seed=7)
    vocab = build_vocab(sessions)
    return sessions, vocab, RecordLayout.fit([s.record for s in sessions], vocab)


class CountingOracle(torch.nn.Module):
    """Puts all probability on the gold answer token; counts its calls and the rows it was given."""

    def __init__(self, vocab, layout, sessions):
        super().__init__()
        self.vocab, self.dummy = vocab, torch.nn.Parameter(torch.zeros(1))
        self.gold = {tuple(p): t for p, t in (encode_example(s, vocab, layout) for s in sessions)}
        self.calls = self.row_passes = 0

    def forward(self, idx):
        self.calls += 1
        self.row_passes += idx.shape[0]
        logits = torch.zeros(*idx.shape, self.vocab.size)
        for b, row in enumerate(idx.tolist()):
            sep = row.index(self.vocab.sep_id)
            start = next(
                i for i, t in enumerate(row) if t != self.vocab.pad_id
            )  # rows are left-padded
            target = self.gold[tuple(row[start : sep + 1])]
            logits[b, sep + 1 :, :][torch.arange(len(target)), torch.tensor(target)] = 10.0
        return logits


class SpyLM(TransformerLM):
    """The real model, keeping what it was asked: the inputs and the positions it computed logits
    at."""

    def __init__(self, config):
        super().__init__(config)
        self.asked = []

    def forward(self, idx, at=None):
        self.asked.append((idx.clone(), None if at is None else at.clone()))
        return super().forward(idx, at=at)


def _random_lm(vocab, cls=TransformerLM, seed=0):
    torch.manual_seed(seed)
    model = cls(
        ModelConfig(
            vocab_size=vocab.size,
            max_len=640,
            n_layer=1,
            n_head=2,
            n_embd=32,
            pad_id=vocab.pad_id,
            anchor_id=vocab.sep_id,
            anchor_pos=400,
        )
    ).eval()
    with torch.no_grad():
        model.wte.weight.mul_(
            30
        )  # spread-out confidences, so that the threshold rule has choices to make
    return model


def test_model_logits_at_chosen_positions_are_the_full_logits_there():
    model = _random_lm(type("V", (), {"size": 60, "pad_id": 0, "sep_id": 4})())
    ids = torch.randint(5, 60, (3, 20), generator=torch.Generator().manual_seed(1))
    ids[0, :4] = 0  # padding
    at = torch.rand(3, 20, generator=torch.Generator().manual_seed(2)) < 0.3
    with torch.no_grad():
        full, some = model(ids), model(ids, at=at)
    assert some.shape == (int(at.sum()), 60)
    assert torch.allclose(some, full[at], atol=1e-5)
    with pytest.raises(ValueError, match="bool mask"):
        model(ids, at=at[:, 1:])


@pytest.mark.parametrize("method", ["slots", "confidence", "one_shot"])
def test_logits_are_computed_only_where_the_decoder_may_commit(corpus, method):
    sessions, vocab, layout = corpus
    model = _random_lm(vocab, SpyLM)
    prompts = [encode_prompt(s, vocab) for s in sessions[:5]]
    fill_answers(model, vocab, prompts, layout, method, batch_size=5, max_steps=8)
    A = layout.length(vocab)
    template = torch.tensor(layout.slot_index(vocab)) < 0
    assert model.asked
    for step, (idx, at) in enumerate(model.asked):
        assert at is not None and not at[:, :-A].any()  # never in the prompt
        if method == "one_shot":
            assert at[:, -A:].all()
            continue
        assert not at[idx != vocab.mask_id].any()  # only masked positions
        if method == "slots":  # the template once, then at most one position per field and row
            per_row = at[:, -A:][:, ~template].sum(dim=1)
            assert per_row.max() <= 6 and (step == 0 or not at[:, -A:][:, template].any())


def test_finished_rows_leave_the_batch(corpus):
    """Row-passes equal the sum of each record's own steps; before, every row ran the slowest
    one's steps."""
    sessions, vocab, layout = corpus
    batch = sessions[:12]
    prompts = [encode_prompt(s, vocab) for s in batch]
    own = []
    for p in prompts:  # steps each record needs alone
        alone = CountingOracle(vocab, layout, batch)
        fill_answers(alone, vocab, [p], layout, "slots")
        own.append(alone.calls)
    assert len(set(own)) > 1  # records that finish at different steps, or the test proves nothing
    oracle, before = CountingOracle(vocab, layout, batch), CountingOracle(vocab, layout, batch)
    assert fill_answers(
        oracle, vocab, prompts, layout, "slots", batch_size=12
    ) == fill_answers_before(before, vocab, prompts, layout, "slots", batch_size=12)
    assert oracle.calls == before.calls == max(own)
    assert oracle.row_passes == sum(own) < before.row_passes == len(batch) * max(own)


def test_random_model_writes_the_same_tokens_as_before(corpus):
    """Left padding trimmed, rows dropped, logits at a few positions: no token changes, at any
    batch size."""
    sessions, vocab, layout = corpus
    model = _random_lm(vocab)
    prompts = [encode_prompt(s, vocab) for s in sessions[:10]]
    for method in FILL_METHODS:
        for batch_size in (1, 4):
            kw = {"batch_size": batch_size, "max_steps": 8}
            assert fill_answers(model, vocab, prompts, layout, method, **kw) == fill_answers_before(
                model, vocab, prompts, layout, method, **kw
            ), (method, batch_size)


@pytest.mark.skipif(
    not DEFAULT_CHECKPOINT.exists(), reason="no shipped checkpoint (make checkpoint)"
)
@pytest.mark.parametrize("method", FILL_METHODS)
def test_shipped_checkpoint_writes_the_same_tokens_as_before(method):
    """On held-out sessions, in uneven batches (of 5 and 3), with the decoder's defaults
    otherwise."""
    from unmasked.sessions import load_short_sessions

    model, vocab, layout, _ = load_checkpoint()
    prompts = [encode_prompt(s, vocab) for s in load_short_sessions("test", limit=8)]
    after = fill_answers(model, vocab, prompts, layout, method, batch_size=5)
    assert after == fill_answers_before(model, vocab, prompts, layout, method, batch_size=5)
    assert all(len(a) == layout.length(vocab) and vocab.mask_id not in a for a in after)


# ---------------------------------------------------------------------------- the checkpoint report


def test_report_says_which_stages_trained_on_rows_whose_loss_is_not_the_elbo(tmp_path):
    from unmasked.train import _loss_lines

    first = {
        "command": "python -m unmasked.train --steps 5"
    }  # an old stage: only its command is kept
    second = {
        "command": "python -m unmasked.train --sampler-frac 0.5 --steps 5",
        "init_from": first,
    }
    third = {
        "command": "python -m unmasked.train --steps 5",
        "train": {"sampler_frac": 0.25},
        "init_from": second,
    }
    (line,) = _loss_lines(third)
    assert "stage 1, every row forward process; stage 2, 50% of each batch sampler-ordered" in line
    assert "stage 3, 25% of each batch sampler-ordered (`--sampler-frac 0.25`)" in line
    assert "plain mean cross-entropy" in line and "(stage 3 is this run)" in line
    (line,) = _loss_lines(first)
    assert "sampler" not in line and "estimates the negative ELBO" in line
