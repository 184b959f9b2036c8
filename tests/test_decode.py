"""One decoding path (issue #19): every record method is a policy over sampling.decode, and every
commit goes through sampling.commit_step.

The old record decoder (train.fill_answers before #19, frozen in tests/decode_before.py) had its own
loop and rules. Where the rules agree (slots, one_shot; adaptive against the old confidence filling
at batch 1) the new path must write the same tokens; the #26 savings (logits only where a step can
commit, finished rows dropped) must hold on the new path too.
"""

import pytest
import torch
from decode_before import fill_answers_before

from unmasked.sampling import (
    RECORD_METHODS,
    commit_step,
    decode,
    fill_records,
    record_bans,
    record_policy,
    unmask_step,
)
from unmasked.sessions import generate_short_sessions
from unmasked.train import (
    DEFAULT_CHECKPOINT,
    RecordLayout,
    TransformerLM,
    build_vocab,
    encode_example,
    encode_prompt,
    fill_answers,
    load_checkpoint,
    make_batch,
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


def test_model_logits_at_chosen_positions_are_the_full_logits_there(random_lm):
    model = random_lm(type("V", (), {"size": 60, "pad_id": 0, "sep_id": 4})())
    ids = torch.randint(5, 60, (3, 20), generator=torch.Generator().manual_seed(1))
    ids[0, :4] = 0  # padding
    at = torch.rand(3, 20, generator=torch.Generator().manual_seed(2)) < 0.3
    with torch.no_grad():
        full, some = model(ids), model(ids, at=at)
    assert some.shape == (int(at.sum()), 60)
    assert torch.allclose(some, full[at], atol=1e-5)
    with pytest.raises(ValueError, match="bool mask"):
        model(ids, at=at[:, 1:])


@pytest.mark.parametrize("method", RECORD_METHODS)
def test_logits_are_computed_only_where_the_decoder_may_commit(corpus, method, random_lm):
    sessions, vocab, layout = corpus
    model = random_lm(vocab, SpyLM)
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


@pytest.mark.parametrize("method", ["slots", "one_shot"])
def test_random_model_writes_the_same_tokens_as_the_old_decoder(corpus, method, random_lm):
    """Slots and one shot commit no choice by confidence: float32 against float64 and > against >=
    cannot matter, and both ban [MASK], [PAD] and [SEP]. Any batch size, uneven last batch."""
    sessions, vocab, layout = corpus
    model = random_lm(vocab)
    prompts = [encode_prompt(s, vocab) for s in sessions[:6]]
    for batch_size in (1, 4):
        kw = {"batch_size": batch_size}
        new = fill_answers(model, vocab, prompts, layout, method, **kw)
        assert new == fill_answers_before(model, vocab, prompts, layout, method, **kw), batch_size


def test_adaptive_is_the_old_confidence_filling_where_their_rules_agree(corpus, random_lm):
    """At batch 1 the old per-batch floor ceil(masked / steps left) is the new per-row one; no
    confidence sits exactly on tau, so >= and > agree. The tokens must be the same."""
    sessions, vocab, layout = corpus
    model = random_lm(vocab)
    prompts = [encode_prompt(s, vocab) for s in sessions[:8]]
    for tau, max_steps in ((0.9, 8), (0.5, 4)):
        old = fill_answers_before(
            model, vocab, prompts, layout, "confidence", tau, batch_size=1, max_steps=max_steps
        )
        new = fill_records(
            model, vocab, layout, prompts, "adaptive", threshold=tau, max_steps=max_steps
        )
        assert new.answers == old, (tau, max_steps)
        assert max(new.passes) <= max_steps


def test_a_record_does_not_depend_on_its_batch(corpus, random_lm):
    """The old confidence filling took its floor from the batch's fullest row; the new one per row,
    so every method writes each record as it would alone."""
    sessions, vocab, layout = corpus
    model = random_lm(vocab)
    prompts = [encode_prompt(s, vocab) for s in sessions[:9]]
    for method in RECORD_METHODS:
        alone = fill_records(model, vocab, layout, prompts, method, max_steps=6, batch_size=1)
        together = fill_records(model, vocab, layout, prompts, method, max_steps=6, batch_size=4)
        assert together.answers == alone.answers and together.passes == alone.passes, method


class PlanSpy:
    """Wraps a policy and keeps every plan it made, with the rows' masks it was given."""

    def __init__(self, policy):
        self.policy, self.plans = policy, []

    def __call__(self, masked, passes):
        plan = self.policy(masked, passes)
        self.plans.append((masked.clone(), passes.clone(), plan))
        return plan


@pytest.mark.parametrize("method", RECORD_METHODS)
def test_a_policy_commits_what_it_says(corpus, method, random_lm):
    """Each pass commits only the plan's candidates (besides the [EOS] filler that closes a slot):
    exactly k of them, or with a threshold every one above it and at least k; and the tokens are
    the model's argmax, never a banned id."""
    sessions, vocab, layout = corpus
    model = random_lm(vocab)
    A = layout.length(vocab)
    prompts = [encode_prompt(s, vocab) for s in sessions[:3]]
    x = make_batch([(p, [vocab.mask_id] * A) for p in prompts], vocab)[0]
    spy = PlanSpy(record_policy(method, layout, vocab, threshold=0.7, max_steps=5))
    slots = [(lo, hi) for _, lo, hi in layout.spans(vocab)]
    out = decode(
        model,
        x,
        [x.shape[1] - A] * 3,
        A,
        spy,
        mask_id=vocab.mask_id,
        banned=record_bans(vocab),
        slots=slots,
        eos_id=vocab.eos_id,
    )
    assert len(spy.plans) == int(out.passes.max())
    in_slot = torch.zeros(A, dtype=torch.bool)
    for lo, hi in slots:
        in_slot[lo:hi] = True
    answers = out.x[:, -A:]
    for i, (masked, passes, plan) in enumerate(spy.plans):
        live = torch.nonzero(out.passes > i).squeeze(-1)  # the rows still in the batch
        assert masked.shape[0] == live.numel() and (passes == i).all()
        for j, r in enumerate(live.tolist()):
            now = out.step[r] == i
            model_wrote = now & ~torch.isnan(out.confidence[r])
            closed = now & torch.isnan(out.confidence[r])
            cand = plan.candidates[j] & masked[j]
            assert not (model_wrote & ~cand).any()  # only candidates
            assert not (closed & ~in_slot).any() and (answers[r][closed] == vocab.eos_id).all()
            if plan.threshold is None:
                assert int(model_wrote.sum()) == int(plan.k[j])  # exactly k
            else:
                conf = out.confidence[r]
                above = model_wrote & (conf > plan.threshold)
                floor = 1 if plan.k is None else int(plan.k[j])
                assert int(model_wrote.sum()) == max(int(above.sum()), min(floor, int(cand.sum())))
                # what the floor added was the most confident of the rest
    assert not set(answers.flatten().tolist()) & {vocab.mask_id, *record_bans(vocab)}


def test_commit_step_is_unmask_step_row_by_row():
    """The one rule: unmask_step (chapter 04, lab 04) is commit_step at batch 1, for k and for a
    threshold with a floor, and a slot closes after its [EOS]."""
    V, MASK, EOS = 12, 11, 3
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[1, MASK, MASK, MASK, MASK, 2], [MASK, MASK, 5, MASK, MASK, MASK]])
    logits = torch.randn(2, 6, V, generator=g) * 3
    logits[0, 1, EOS] = 50.0  # certain of an [EOS] at the slot's start: the slot closes
    logits[0, 2:4] = 0.0  # unsure after it, so that closing, not the model, writes them
    logits[0, 4, 7] = 50.0
    cand = x == MASK
    for k, tau in (([2, 3], None), ([1, 2], 0.6), (None, 0.3)):
        kk = None if k is None else torch.tensor(k)
        both = commit_step(
            logits[cand], x, cand, kk, tau, mask_id=MASK, banned=(0,), slots=[(1, 4)], eos_id=EOS
        )
        for r in range(2):
            one = unmask_step(
                logits[r],
                x[r],
                MASK,
                None if k is None else k[r],
                threshold=tau,
                banned=(0,),
                slots=[(1, 4)],
                eos_id=EOS,
            )
            assert one.x.tolist() == both.x[r].tolist()
            assert (
                one.positions.tolist()
                == (both.chosen[r] | both.closed[r]).nonzero().squeeze(-1).tolist()
            )
        assert both.closed[0, 2:4].all() and (both.x[0, 1:4] == EOS).all()
        assert torch.isnan(both.confidence[both.closed]).all()
    with pytest.raises(ValueError, match="k must be"):
        commit_step(logits[cand], x, cand, torch.tensor([5, 1]), mask_id=MASK)


@pytest.mark.skipif(
    not DEFAULT_CHECKPOINT.exists(), reason="no shipped checkpoint (make checkpoint)"
)
def test_shipped_checkpoint_writes_what_the_old_decoder_wrote_where_the_rules_agree():
    """Held-out sessions: slots and one shot in uneven batches (of 4 and 2); adaptive against the
    old confidence filling at batch 1 with its default cap of 32 passes."""
    from unmasked.sessions import load_short_sessions

    model, vocab, layout, _ = load_checkpoint()
    prompts = [encode_prompt(s, vocab) for s in load_short_sessions("test", limit=6)]
    for method in ("slots", "one_shot"):
        new = fill_answers(model, vocab, prompts, layout, method, batch_size=4)
        assert new == fill_answers_before(model, vocab, prompts, layout, method, batch_size=4)
        assert all(len(a) == layout.length(vocab) and vocab.mask_id not in a for a in new)
    old = fill_answers_before(model, vocab, prompts, layout, "confidence", 0.9, batch_size=1)
    new = fill_answers(model, vocab, prompts, layout, "adaptive", 0.9, max_steps=32)
    assert new == old


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
