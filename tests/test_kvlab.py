"""Lab 05's helpers (unmasked.kvlab) and hidden checks: the right answers pass, the obvious wrong
ones fail, for every drawn seed."""

import math
import random
import statistics
import time

import pytest
import torch

from unmasked import kvlab
from unmasked.grading.checks import lab05_kv_cache as lab05
from unmasked.grading.checks.lab04_unmasking import build_here
from unmasked.grading.spec import Outcome

torch.set_num_threads(1)


def attend_step(q, k_new, v_new, past_k=None, past_v=None):
    keys = k_new if past_k is None else torch.cat([past_k, k_new], dim=1)
    values = v_new if past_v is None else torch.cat([past_v, v_new], dim=1)
    scores = q @ keys.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ values, keys, values


def attend_forgets_the_cache(q, k_new, v_new, past_k=None, past_v=None):
    out, _, _ = attend_step(q, k_new, v_new)
    return out, k_new, v_new


@torch.no_grad()
def greedy_cached(model, prompt, length):
    cache = model.new_cache()
    logits = model(torch.tensor([list(prompt)]), cache=cache)
    out = []
    for step in range(length):
        token = int(logits[0, -1].argmax())
        out.append(token)
        if step < length - 1:
            logits = model(torch.tensor([[token]]), cache=cache)
    return out


def median_seconds(run, repeats=3, warmup=1):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mean_without_warmup(run, repeats=3, warmup=1):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.mean(times)


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _outcomes(check, functions, sleepy: bool = True):
    """Run a check's calls in-process, as the kernel would, and report Outcomes."""
    out = []
    for call in check.calls:
        if call.func == "median_seconds" and not sleepy:
            out.append(Outcome(error="Skipped"))
            continue
        args = build_here(list(call.args))
        kwargs = build_here(dict(call.kwargs))
        value = functions[call.func](*args, **kwargs)
        after = [_plain(a.tolist() if hasattr(a, "reads") else a) for a in args]
        out.append(
            Outcome(
                value=_plain(value),
                type=type(value).__name__,
                args_after=after if call.watch_args else None,
            )
        )
    return out


def _verdicts(seed, functions, skip=()):
    checks = lab05.build(random.Random(seed))
    return {
        c.name: c.verify(c.calls, _outcomes(c, functions))
        for c in checks
        if not any(s in c.name for s in skip)
    }


RIGHT = {
    "attend_step": attend_step,
    "greedy_cached": greedy_cached,
    "median_seconds": median_seconds,
}


def test_recorder_reads_and_reference_decoders():
    [case] = kvlab.decode_cases(3, n=1)
    model = kvlab.CacheRecorder(kvlab.tiny_causal_lm(case["seed"], case["vocab_size"]))
    assert greedy_cached(model, case["prompt"], case["length"]) == case["expected"]
    assert model.tolist() == kvlab.expected_reads(len(case["prompt"]), case["length"])
    assert kvlab.expected_reads(3, 3) == [[0, 3], [3, 1], [4, 1]]
    # the course's cached decoder agrees with the lab's reference (no banned ids in this vocab)
    bare = kvlab.tiny_causal_lm(case["seed"], case["vocab_size"])
    assert kvlab.reference_greedy(bare, case["prompt"], case["length"]) == case["expected"]
    assert kvlab.forgetful_greedy(bare, case["prompt"], case["length"]) != case["expected"]


def test_tiny_model_is_deterministic_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = kvlab.tiny_causal_lm(5, 20)
    after = torch.rand(1)
    b = kvlab.tiny_causal_lm(5, 20)
    assert torch.equal(before, after)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_reference_attend_equals_full_causal_attention_row_by_row():
    gen = torch.Generator().manual_seed(0)
    Q, K, V = (torch.randn(2, 5, 4, generator=gen) for _ in range(3))
    full = torch.nn.functional.scaled_dot_product_attention(Q, K, V, is_causal=True)
    pk = pv = None
    for t in range(5):
        out, pk, pv = kvlab.reference_attend(
            Q[:, t : t + 1], K[:, t : t + 1], V[:, t : t + 1], pk, pv
        )
        assert torch.allclose(out, full[:, t : t + 1], atol=1e-6)


def test_sleepy_run_cycles_and_refuses_nonsense():
    run = kvlab.SleepyRun([0.0, 0.01])
    run(), run(), run()
    assert run.calls == 3
    with pytest.raises(ValueError):
        kvlab.SleepyRun([])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_solution_passes_every_hidden_check(seed):
    verdicts = _verdicts(seed, RIGHT)
    assert verdicts and all(v is None for v in verdicts.values()), verdicts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_recomputing_the_prefix_writes_the_tokens_but_fails_the_reads(seed):
    def recompute(model, prompt, length):
        x, out = list(prompt), []
        for _ in range(length):
            token = int(model(torch.tensor([x]))[0, -1].argmax())
            out.append(token)
            x.append(token)
        return out

    verdicts = _verdicts(seed, {**RIGHT, "greedy_cached": recompute}, skip=("median",))
    assert verdicts["greedy_cached writes the tokens of decoding without a cache"] is None
    failed = verdicts["greedy_cached reads the prompt once, then one token per step"]
    assert failed and "[0, " in failed and "expected" in failed


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_forgetting_the_past_fails_both_decode_checks(seed):
    verdicts = _verdicts(seed, {**RIGHT, "greedy_cached": kvlab.forgetful_greedy}, skip=("median",))
    assert verdicts["greedy_cached writes the tokens of decoding without a cache"]
    assert verdicts["greedy_cached reads the prompt once, then one token per step"]


@pytest.mark.parametrize("seed", [0, 1])
def test_attention_that_ignores_the_cache_fails(seed):
    verdicts = _verdicts(
        seed, {**RIGHT, "attend_step": attend_forgets_the_cache}, skip=("median", "greedy")
    )
    assert verdicts["attend_step appends to the cache and attends over all of it"]


def test_a_mean_without_warm_up_fails_the_timer_check():
    checks = lab05.build(random.Random(7))
    [timer] = [c for c in checks if c.name.startswith("median_seconds")]
    wrong = _outcomes(timer, {"median_seconds": mean_without_warmup})
    message = timer.verify(timer.calls, wrong)
    assert message and "expected about" in message
