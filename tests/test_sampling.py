"""The sampler: schedules, one unmasking step, and the properties of a whole run."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from unmasked.sampling import (
    Trace,
    add_gumbel_noise,
    commit_step,
    generate,
    num_transfer_tokens,
    record_bans,
    split_steps,
    unmask_step,
)

V, MASK = 40, 39
torch.set_num_threads(1)


class TinyBidirectional(nn.Module):
    """A randomly initialised bidirectional transformer: its predictions depend on the whole
    input."""

    def __init__(self, vocab=V, d=32, max_len=64, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.1, batch_first=True)
        self.body = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)
        with torch.no_grad():
            self.head.weight.mul_(20)  # spread the probabilities so confidences differ

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.body(self.tok(idx) + self.pos(pos)))


class Oracle(nn.Module):
    """Always predicts `target`, with a per-position sharpness: known confidences, known order."""

    def __init__(self, target, sharpness):
        super().__init__()
        self.target = torch.as_tensor(target)
        self.sharpness = torch.as_tensor(sharpness, dtype=torch.float32)

    def forward(self, idx):
        T = idx.shape[1]
        logits = torch.zeros(1, T, V)
        n = len(self.target)
        logits[0, T - n :].scatter_(1, self.target[:, None], self.sharpness[:, None])
        return logits


@pytest.fixture(scope="module")
def model():
    return TinyBidirectional().eval()


def prompt(n=5):
    return torch.arange(1, n + 1)[None]


# ---------------------------------------------------------------- schedules


def test_linear_schedule_is_llada_rule():
    assert num_transfer_tokens(10, 4, "linear") == [3, 3, 2, 2]
    assert num_transfer_tokens(8, 8, "linear") == [1] * 8
    assert num_transfer_tokens(7, 1, "linear") == [7]


def test_cosine_schedule_commits_few_first_and_many_last():
    counts = num_transfer_tokens(64, 8, "cosine")
    assert sum(counts) == 64
    assert counts[0] < counts[-1]
    assert counts == sorted(counts)  # cos falls slowly near 0, fast near pi/2
    assert counts[0] == 64 - round(64 * math.cos(math.pi / 16))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), data=st.data(), schedule=st.sampled_from(["linear", "cosine"]))
def test_schedules_sum_to_n_and_commit_every_step(n, data, schedule):
    steps = data.draw(st.integers(1, n))
    counts = num_transfer_tokens(n, steps, schedule)
    assert len(counts) == steps and sum(counts) == n and min(counts) >= 1


def test_schedule_errors_say_what_is_accepted():
    with pytest.raises(ValueError, match="linear, cosine"):
        num_transfer_tokens(10, 2, "quadratic")
    with pytest.raises(ValueError, match="steps <= n_masked"):
        num_transfer_tokens(3, 4)


def test_split_steps_shares_budget_within_block_sizes():
    assert split_steps(8, [4, 4, 4, 4]) == [2, 2, 2, 2]
    assert split_steps(9, [4, 4, 4]) == [3, 3, 3]
    assert split_steps(32, [4, 4]) == [4, 4]  # a block cannot use more steps than tokens
    assert split_steps(10, [4, 4, 2]) == [
        4,
        4,
        2,
    ]  # K = L: what the short block cannot use goes to the others
    assert split_steps(9, [8, 8, 1]) == [4, 4, 1]
    assert split_steps(7, [1, 4, 1, 1, 2]) == [1, 2, 1, 1, 2]
    assert split_steps(3, [4, 4, 2]) == [1, 1, 1]


def test_fewer_steps_than_blocks_is_an_error_not_a_bigger_budget():
    """steps=3 with blocks of 32 over 218 tokens would take 7 forward passes: it raises instead."""
    with pytest.raises(ValueError, match=r"steps=3 is fewer than the 7 blocks.*block_length"):
        split_steps(3, [32] * 6 + [26])
    with pytest.raises(ValueError, match="positive"):
        split_steps(0, [4])


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=9), data=st.data())
def test_split_steps_spends_the_budget_evenly_and_never_exceeds_it(sizes, data):
    steps = data.draw(st.integers(len(sizes), 2 * sum(sizes)))
    out = split_steps(steps, sizes)
    assert sum(out) == min(steps, sum(sizes))  # never more passes than asked, none wasted
    assert all(1 <= k <= n for k, n in zip(out, sizes))
    for k, n in zip(
        out, sizes
    ):  # a block that could take more has at most one step fewer than any other
        if k < n:
            assert max(out) <= k + 1


# ---------------------------------------------------------------- one step


def test_unmask_step_commits_top_k_confident_and_keeps_the_rest_masked():
    x = torch.tensor([7, MASK, MASK, MASK, MASK])
    logits = torch.zeros(5, V)
    logits[1, 3], logits[2, 4], logits[3, 5], logits[4, 6] = 1.0, 9.0, 3.0, 6.0
    step = unmask_step(logits, x, MASK, 2)
    assert step.positions.tolist() == [2, 4]
    assert step.tokens.tolist() == [4, 6]
    assert step.x.tolist() == [7, MASK, 4, MASK, 6]
    assert x.tolist() == [7, MASK, MASK, MASK, MASK]  # pure: the input is untouched
    expected = torch.softmax(logits[2, :MASK].double(), -1)[4]  # [MASK] is never a proposal
    assert step.confidences[0].item() == pytest.approx(expected.item())


def test_unmask_step_never_touches_unmasked_or_non_candidate_positions():
    x = torch.tensor([1, 2, MASK, MASK])
    logits = torch.zeros(4, V)
    logits[:, 9] = 50.0  # the unmasked positions are the most confident of all
    step = unmask_step(logits, x, MASK, 1, candidates=torch.tensor([True, True, False, True]))
    assert step.positions.tolist() == [3]
    assert step.x.tolist()[:3] == [1, 2, MASK]


def test_unmask_step_never_proposes_the_mask_token():
    x = torch.tensor([MASK, MASK])
    logits = torch.zeros(2, V)
    logits[:, MASK] = 100.0
    step = unmask_step(logits, x, MASK, 2)
    assert MASK not in step.tokens.tolist()


def test_unmask_step_threshold_commits_all_above_and_at_least_one():
    x = torch.tensor([MASK, MASK, MASK])
    logits = torch.zeros(3, V)
    logits[0, 1], logits[1, 2], logits[2, 3] = 20.0, 2.0, 10.0
    assert unmask_step(logits, x, MASK, None, threshold=0.9).positions.tolist() == [0, 2]
    assert unmask_step(logits, x, MASK, None, threshold=1.0).positions.tolist() == [0]


def test_unmask_step_rejects_bad_k():
    x = torch.tensor([MASK, 1])
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 1\]"):
        unmask_step(torch.zeros(2, V), x, MASK, 2)


def test_gumbel_noise_samples_from_the_tempered_softmax():
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = probs.log().expand(40_000, 3)
    g = torch.Generator().manual_seed(0)
    samples = add_gumbel_noise(logits, 1.0, g).argmax(-1)
    freq = torch.bincount(samples, minlength=3) / len(samples)
    assert torch.allclose(freq, probs, atol=0.01)
    assert add_gumbel_noise(logits, 1.0, g).dtype == torch.float64
    assert torch.equal(
        add_gumbel_noise(logits, 0.0).argmax(-1), torch.zeros(40_000, dtype=torch.long)
    )


# ---------------------------------------------------------------- whole runs


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1, 3, 8, 24])
def test_commits_per_step_follow_the_schedule_and_sum_to_length(model, schedule, steps):
    out, trace = generate(model, prompt(), 24, steps, mask_id=MASK, schedule=schedule)
    assert trace.commits_per_step == num_transfer_tokens(24, steps, schedule)
    assert sum(trace.commits_per_step) == 24 and trace.steps_used == steps
    assert out.shape == (1, 29) and (out != MASK).all()
    assert out[0, :5].tolist() == prompt()[0].tolist()
    assert out[0, 5:].tolist() == trace.tokens()


def test_every_position_is_committed_once_and_never_changes(model):
    out, trace = generate(model, prompt(), 24, 6, mask_id=MASK, temperature=1.0, seed=3)
    seen = [p for s in trace.steps for p in s.positions]
    assert sorted(seen) == list(range(5, 29))
    states = trace.states()
    for before, after in zip(states, states[1:]):
        for b, a in zip(before, after):
            assert b == MASK or a == b


def test_low_confidence_commits_most_confident_first():
    target = list(range(1, 9))
    sharp = [1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0]
    _, trace = generate(Oracle(target, sharp), prompt(2), 8, 8, mask_id=MASK)
    order = [s.positions[0] - 2 for s in trace.steps]
    assert order == sorted(range(8), key=lambda i: -sharp[i])
    assert trace.tokens() == target
    conf = trace.commit_confidence()
    assert conf[1] > conf[0]


def test_threshold_one_commits_one_per_step(model):
    _, trace = generate(model, prompt(), 16, 4, mask_id=MASK, threshold=1.0)
    assert trace.commits_per_step == [1] * 16


def test_threshold_near_zero_commits_everything_in_one_step(model):
    _, trace = generate(model, prompt(), 16, 4, mask_id=MASK, threshold=1e-6)
    assert trace.commits_per_step == [16]


def test_adaptive_threshold_uses_fewer_steps_on_confident_positions():
    sharp = [30.0] * 6 + [0.5] * 4  # 6 near-certain positions, 4 uncertain ones
    _, trace = generate(
        Oracle(list(range(1, 11)), sharp), prompt(2), 10, 10, mask_id=MASK, threshold=0.9
    )
    assert trace.commits_per_step[0] == 6
    assert trace.steps_used == 5


def test_same_seed_same_result_and_seed_matters(model):
    kw = dict(mask_id=MASK, temperature=1.0, remasking="random")
    a, ta = generate(model, prompt(), 24, 6, seed=11, **kw)
    b, tb = generate(model, prompt(), 24, 6, seed=11, **kw)
    c, tc = generate(model, prompt(), 24, 6, seed=12, **kw)
    assert torch.equal(a, b) and ta == tb
    assert not torch.equal(a, c) or ta.steps != tc.steps


def test_model_training_mode_is_restored(model):
    model.train()
    a, _ = generate(model, prompt(), 12, 4, mask_id=MASK)
    b, _ = generate(model, prompt(), 12, 4, mask_id=MASK)
    assert model.training
    model.eval()
    assert torch.equal(a, b)  # dropout was off while sampling


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_blocks_never_commit_beyond_the_current_block(model, threshold):
    P, L, B = 5, 24, 8
    _, trace = generate(model, prompt(P), L, 6, mask_id=MASK, block_length=B, threshold=threshold)
    commit = trace.commit_step()
    for step_index, s in enumerate(trace.steps):
        lo, hi = P + s.block * B, P + (s.block + 1) * B
        assert all(lo <= p < hi for p in s.positions)
        if s.block > 0:  # the previous block was finished before this one began
            assert all(c < step_index for c in commit[: s.block * B])
    assert [s.block for s in trace.steps] == sorted(s.block for s in trace.steps)
    if threshold is None:
        assert trace.commits_per_step == [4, 4, 4, 4, 4, 4]


def test_uneven_last_block(model):
    _, trace = generate(model, prompt(), 10, 6, mask_id=MASK, block_length=4)
    assert sorted({s.block for s in trace.steps}) == [0, 1, 2]
    assert sum(trace.commits_per_step) == 10


def test_more_steps_than_tokens_is_clamped(model):
    _, trace = generate(model, prompt(), 6, 32, mask_id=MASK)
    assert trace.commits_per_step == [1] * 6


@pytest.mark.parametrize("length,block_length", [(10, 4), (24, 7), (13, 13), (9, 2)])
def test_k_equals_l_is_one_token_per_step_whatever_the_blocks(model, length, block_length):
    """A last block shorter than its share of the budget neither raises nor costs the others a
    step."""
    _, trace = generate(model, prompt(), length, length, mask_id=MASK, block_length=block_length)
    assert trace.commits_per_step == [1] * length
    from unmasked.sampling import generate_many

    for _, trace in generate_many(
        _tiny_lm(),
        [[1, 2, 3], [4]],
        length,
        length,
        mask_id=MASK,
        pad_id=0,
        block_length=block_length,
    ):
        assert trace.commits_per_step == [1] * length


def test_fewer_steps_than_blocks_raises_in_both_samplers(model):
    from unmasked.sampling import generate_many

    with pytest.raises(ValueError, match="fewer than the 3 blocks"):
        generate(model, prompt(), 24, 2, mask_id=MASK, block_length=8)
    lm = _tiny_lm()
    with pytest.raises(ValueError, match="fewer than the 3 blocks"):
        generate_many(lm, [[1, 2], [3]], 24, 2, mask_id=MASK, pad_id=0, block_length=8)
    _, trace = generate(
        model, prompt(), 24, 2, mask_id=MASK, block_length=8, threshold=0.5
    )  # steps unused
    assert sorted({s.block for s in trace.steps}) == [0, 1, 2]
    _, trace = generate(model, prompt(), 24, 3, mask_id=MASK, block_length=8)
    assert trace.steps_used == 3 and trace.commits_per_step == [8, 8, 8]


def test_generate_rejects_bad_input(model):
    with pytest.raises(ValueError, match="shape \\[1, P\\]"):
        generate(model, torch.arange(4), 8, 2, mask_id=MASK)
    with pytest.raises(ValueError, match="contains mask_id"):
        generate(model, torch.tensor([[1, MASK]]), 8, 2, mask_id=MASK)
    with pytest.raises(ValueError, match="low_confidence, random"):
        generate(model, prompt(), 8, 2, mask_id=MASK, remasking="entropy")
    with pytest.raises(ValueError, match="logits of shape"):
        generate(lambda idx: torch.zeros(idx.shape[1], V), prompt(), 8, 2, mask_id=MASK)


def test_trace_is_plain_data():
    t = Trace(prompt=[1, 2], length=3, mask_id=MASK)
    assert t.steps_used == 0 and t.states() == [[MASK] * 3] and t.commit_step() == [-1] * 3


# ---------------------------------------------------------------- analysis


def test_json_char_roles_separate_keys_values_and_structure():
    from unmasked.sampling import json_char_roles

    text = '{"task": "fix a", "files": ["a.py"], "n": 3}'
    roles = dict(zip(range(len(text)), json_char_roles(text)))
    assert roles[text.index("task")] == "key" and roles[text.index("fix")] == "value"
    assert roles[text.index("a.py")] == "value" and roles[text.index("3")] == "value"
    assert roles[0] == "punctuation" and roles[text.index(":")] == "punctuation"
    assert roles[text.index('"')] == "punctuation"


def test_json_token_roles_and_commit_times():
    from unmasked.sampling import commit_times, json_token_roles

    pieces = ['{"', "task", '":', ' "', "fix", '"}', "<eos>"]
    decode = lambda ids: "".join(pieces[i] for i in ids)  # noqa: E731
    roles = json_token_roles(range(7), decode, special_ids=[6])
    assert roles == [
        "punctuation",
        "key",
        "punctuation",
        "punctuation",
        "value",
        "punctuation",
        "special",
    ]
    trace = Trace(prompt=[1], length=2, mask_id=MASK)
    from unmasked.sampling import TraceStep

    trace.steps = [TraceStep([2], [5], [0.9], 0), TraceStep([1], [4], [0.5], 0)]
    rows = commit_times(trace, ["key", "value"])
    assert [(r["kind"], r["when"]) for r in rows] == [("key", 1.0), ("value", 0.0)]


def test_infill_between_prompt_and_suffix(model):
    suffix = torch.tensor([[7, 8, 9]])
    out, trace = generate(model, prompt(), 10, 5, mask_id=MASK, suffix=suffix)
    assert out.shape == (1, 18) and out[0, -3:].tolist() == [7, 8, 9]
    assert all(5 <= p < 15 for s in trace.steps for p in s.positions)
    assert trace.suffix == [7, 8, 9] and out[0, 5:15].tolist() == trace.tokens()


def _tiny_lm():
    from unmasked.model import ModelConfig, TransformerLM

    torch.manual_seed(0)
    lm = TransformerLM(
        ModelConfig(vocab_size=V, max_len=64, n_layer=2, n_head=2, n_embd=32, pad_id=0)
    ).eval()
    with torch.no_grad():
        lm.wte.weight.mul_(30)  # a random model with spread-out confidences
    return lm


def test_generate_many_matches_generate_row_by_row():
    from unmasked.sampling import generate_many

    lm = _tiny_lm()
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    for kw in (
        dict(steps=4),
        dict(steps=6, schedule="cosine", block_length=4),
        dict(steps=1, threshold=0.3),
    ):
        many = generate_many(lm, prompts, 8, mask_id=MASK, pad_id=0, **kw)
        for p, (ids, trace) in zip(prompts, many):
            out, single = generate(lm, torch.tensor([p]), 8, mask_id=MASK, **kw)
            assert ids == out[0].tolist()
            assert trace.commits_per_step == single.commits_per_step


# ---------------------------------------------------------------- notebook 04 experiments, end to
# end


class RecordOracle(nn.Module):
    """Knows each session's gold record: a model known to be right, to check the evaluation
    itself."""

    def __init__(self, cases, vocab, sharpness=30.0):
        super().__init__()
        self.cases = [(list(p), list(t)) for p, t in cases]
        self.vocab = vocab
        self.sharpness = sharpness
        self.dummy = nn.Parameter(torch.zeros(1))  # so that the sampler finds a device

    def forward(self, idx):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.vocab.size)
        for r in range(B):
            row = idx[r].tolist()
            pad = next(i for i, t in enumerate(row) if t != self.vocab.pad_id)  # left padding
            for prompt, target in self.cases:
                if row[pad : pad + len(prompt)] == prompt:
                    start = pad + len(prompt)
                    answer = (target + [self.vocab.eos_id] * T)[: T - start]
                    logits[r, torch.arange(start, T), torch.tensor(answer)] = self.sharpness
        return logits


@pytest.fixture(scope="module")
def corpus():
    from unmasked.sessions import generate_short_sessions
    from unmasked.train import RecordLayout, build_vocab

    sessions = generate_short_sessions(3, seed=0)
    vocab = build_vocab(sessions)
    return sessions, vocab, RecordLayout.fit([s.record for s in sessions], vocab)


def test_experiments_score_a_model_known_to_be_right(corpus):
    from unmasked.sampling import (
        adaptive_steps,
        commit_order,
        prose_case,
        quality_vs_steps,
        record_case,
        smallest_k_within,
    )

    sessions, vocab, layout = corpus
    cases = [record_case(s, vocab, layout) for s in sessions]
    L = layout.length(vocab)
    spans = [prose_case(s, vocab, L) for s in sessions]  # and the hidden middle of each session
    oracle = RecordOracle([(p[0].tolist(), t) for p, t in cases + spans], vocab)
    rows = quality_vs_steps(
        oracle,
        vocab,
        layout,
        sessions,
        [1, 4, L],
        schedules=("linear",),
        progress=False,
        batch_size=2,
    )  # K = L: one token per step, the notebook's reference
    assert [r["K"] for r in rows] == [1, 4, L]
    assert all(r["accuracy"] == 100.0 and r["all_fields"] == 100.0 for r in rows)
    assert (
        smallest_k_within(rows, "linear", L) == 1 and smallest_k_within(rows, "linear", 99) is None
    )
    rows = quality_vs_steps(oracle, vocab, layout, sessions, [1, 4], progress=False, batch_size=2)
    assert {(r["schedule"], r["K"]) for r in rows} == {
        (s, k) for s in ("linear", "cosine") for k in (1, 4)
    }

    adaptive = adaptive_steps(oracle, vocab, layout, sessions, threshold=0.9, progress=False)
    json_rows = [r for r in adaptive if r["text"] == "JSON record"]
    assert len(adaptive) == 6 and all(r["steps"] == 1 and r["exact"] for r in adaptive)
    assert all(r["tokens_right"] == 1.0 for r in adaptive)
    assert [r["text"] for r in adaptive[:2]] == ["JSON record", "free text"]
    assert all(r["scaffold_done_at"] == 1 and r["values_done_at"] == 1 for r in json_rows)

    order = commit_order(oracle, vocab, layout, sessions[:1], steps=4, progress=False)
    assert {r["kind"] for r in order} >= {"key", "value", "punctuation", "special"}
    assert len(order) == layout.length(vocab)


def test_first_pass_confidence_is_what_the_first_step_ranks(corpus):
    from unmasked.sampling import first_pass_confidence, record_case

    sessions, vocab, layout = corpus
    cases = [record_case(s, vocab, layout) for s in sessions]
    oracle = RecordOracle([(p[0].tolist(), t) for p, t in cases], vocab, sharpness=8.0)
    rows = first_pass_confidence(oracle, vocab, layout, sessions[:2], progress=False)
    L = layout.length(vocab)
    assert len(rows) == 2 * L and [r["position"] for r in rows[:L]] == list(range(L))
    expected = math.exp(8.0) / (
        math.exp(8.0) + vocab.size - 4
    )  # gold at 8, the rest at 0; [MASK], [PAD], [SEP] banned
    assert all(
        r["confidence"] == pytest.approx(expected) and r["doubt"] == pytest.approx(1 - expected)
        for r in rows
    )
    assert {r["kind"] for r in rows} >= {"key", "value", "punctuation", "special"}
    _, trace = generate(  # one step, banning what every record decoder bans: the same scores
        oracle, cases[0][0], L, 1, mask_id=vocab.mask_id, banned=record_bans(vocab)
    )
    assert trace.steps[0].confidences == pytest.approx([r["confidence"] for r in rows[:L]])


def test_prose_case_asks_for_the_middle_of_the_session_as_the_span_task_does(corpus):
    from unmasked.sampling import prose_case
    from unmasked.spans import middle_span

    sessions, vocab, _ = corpus
    prompt, hidden = prose_case(sessions[0], vocab, 20)
    assert (prompt[0].tolist(), hidden) == middle_span(sessions[0], vocab, 20)
    assert prompt[0].tolist().count(vocab.unk_id) == 1 and prompt[0, -1] == vocab.sep_id
    with pytest.raises(ValueError, match="too few"):
        prose_case(sessions[0], vocab, len(vocab.encode(sessions[0].text)))


def test_generate_is_generate_many_at_batch_one_and_the_batch_takes_suffixes():
    """generate delegates to generate_many; rows of a batch with suffixes of other lengths write
    what each writes alone."""
    from unmasked.model import ModelConfig, TransformerLM
    from unmasked.sampling import generate_many

    torch.manual_seed(0)
    model = TransformerLM(
        ModelConfig(vocab_size=V, max_len=32, n_layer=1, n_head=2, n_embd=16, pad_id=0)
    ).eval()
    with torch.no_grad():
        model.wte.weight.mul_(30)  # spread-out confidences: no near ties

    prompts, suffixes = [[1, 2, 3], [4, 5], [6, 7, 8, 9]], [[7, 8, 9], [], [10]]
    together = generate_many(model, prompts, 6, 3, mask_id=MASK, pad_id=0, suffixes=suffixes)
    for p, z, (ids, trace) in zip(prompts, suffixes, together):
        out, alone = generate(
            model,
            torch.tensor([p]),
            6,
            3,
            mask_id=MASK,
            suffix=torch.tensor([z], dtype=torch.long).view(1, -1),
        )
        assert ids == out[0].tolist() and len(ids) == len(p) + 6 + len(z)
        assert trace.commit_step() == alone.commit_step() and trace.suffix == alone.suffix == z
    with pytest.raises(ValueError, match="one suffix per prompt"):
        generate_many(model, prompts, 6, 3, mask_id=MASK, pad_id=0, suffixes=suffixes[:2])
    with pytest.raises(ValueError, match="pad_id"):
        generate_many(model, prompts, 6, 3, mask_id=MASK)


def test_a_row_sure_of_everything_commits_everything_whatever_its_batch_needs():
    """Regression: with a threshold, the rows that still needed their floor had topk pick indices
    in every row, and writing False there un-chose tokens the threshold had chosen in the others.
    A row sure of all its positions could lose one and need another pass, or, if that was its
    last masked position, commit nothing, and the loop stopped with an error."""
    V, mask = 10, 1
    logits = torch.zeros(8, V)
    logits[:4, 5] = 30.0  # row 0 is sure of its four positions, row 1 of none
    x = torch.full((2, 4), mask)
    both = commit_step(logits, x, torch.ones(2, 4, dtype=torch.bool), None, 0.9, mask_id=mask)
    alone = commit_step(
        logits[:4], x[:1], torch.ones(1, 4, dtype=torch.bool), None, 0.9, mask_id=mask
    )
    assert both.chosen[0].all() and torch.equal(both.x[0], alone.x[0])
    assert int(both.chosen[1].sum()) == 1  # the unsure row: its floor of one


def test_adaptive_records_take_the_same_passes_in_a_batch_as_alone(corpus):
    """A model sure of two of three records (and of none of the third): batched filling writes
    each as it would alone, in as many passes, one for the two it knows."""
    from unmasked.sampling import fill_records, record_case

    sessions, vocab, layout = corpus
    cases = [record_case(s, vocab, layout) for s in sessions]
    oracle = RecordOracle([(p[0].tolist(), t) for p, t in cases[::2]], vocab)
    prompts = [p[0].tolist() for p, _ in cases]
    alone = fill_records(oracle, vocab, layout, prompts, "adaptive", batch_size=1)
    together = fill_records(oracle, vocab, layout, prompts, "adaptive", batch_size=3)
    assert together.answers == alone.answers and together.passes == alone.passes
    assert together.passes[0] == together.passes[2] == 1 and together.passes[1] > 1
    assert together.answers[0] == cases[0][1] and together.answers[2] == cases[2][1]
