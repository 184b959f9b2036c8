"""Hidden checks for lab05_kv_cache: attend_step, greedy_cached, median_seconds.

The same cases as the lab's local checks, drawn from the grader's secret seed. greedy_cached runs
on models whose predictions depend on the whole prefix (unmasked.kvlab.decode_cases), so that a
decoder which forgets the past writes other tokens; and a second check records what each forward
call read (kvlab.CacheRecorder, reported back as the argument after the call), so that
recomputing the prefix at every step, which writes the right tokens, still fails.
"""

from __future__ import annotations

import math
import random

from ..spec import Call, Check, make, ref, short

PARAMETERS = {"SEED": 0}
CALL_TIMEOUT_S = 10.0  # median_seconds sleeps about 1 s; a decode is milliseconds


def _tensor(data) -> dict:
    return make("torch:tensor", data, dtype=ref("torch:float32"))


def _flat(value) -> list:
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]


def _close(got, want, tol: float = 1e-4) -> bool:
    """Same nested shape and values within tol."""
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(_close(g, w, tol) for g, w in zip(got, want))
        )
    return isinstance(got, (int, float)) and abs(got - want) <= tol


def _attention_case(rng: random.Random) -> tuple:
    H, D, S = rng.randint(1, 3), rng.choice((2, 4, 6, 8)), rng.choice((0, 1, rng.randint(2, 9)))

    def draw(n):
        return [
            [[round(rng.gauss(0, 1.5), 5) for _ in range(D)] for _ in range(n)] for _ in range(H)
        ]

    q, k, v = draw(1), draw(1), draw(1)
    past_k, past_v = (draw(S), draw(S)) if S else (None, None)
    return q, k, v, past_k, past_v


def build(rng: random.Random) -> list[Check]:
    import torch

    from unmasked import kvlab

    attention = [_attention_case(rng) for _ in range(6)]
    attention_calls = [
        tuple(_tensor(a) if a is not None else None for a in case) for case in attention
    ]
    attention_wanted = []

    def t(a):
        return None if a is None else torch.tensor(a, dtype=torch.float32)

    for q, k, v, pk, pv in attention:
        out, keys, values = kvlab.reference_attend(t(q), t(k), t(v), t(pk), t(pv))
        attention_wanted.append([out.tolist(), keys.tolist(), values.tolist()])

    cases = kvlab.decode_cases(rng.randrange(2**31), n=3)

    def model_of(case, recorded: bool = False) -> dict:
        model = make("unmasked.kvlab:tiny_causal_lm", case["seed"], case["vocab_size"])
        return make("unmasked.kvlab:CacheRecorder", model) if recorded else model

    decode_calls = tuple(
        Call("greedy_cached", (model_of(c), c["prompt"], c["length"])) for c in cases
    )
    read_calls = tuple(
        Call("greedy_cached", (model_of(c, True), c["prompt"], c["length"]), watch_args=True)
        for c in cases
    )

    timed = sorted(rng.sample((0.04, 0.08, 0.12, 0.16, 0.2, 0.24), 3))
    warm_up = round(rng.uniform(0.3, 0.4), 3)
    order = rng.sample(timed, 3)
    sleeps = [warm_up] + order
    median = timed[1]

    def attention_verify(calls, outcomes):
        for (q, _k, _v, pk, _pv), outcome, want in zip(attention, outcomes, attention_wanted):
            H, D, S = len(q), len(q[0][0]), 0 if pk is None else len(pk[0])
            shown = (
                f"attend_step(q, k_new, v_new of shape [{H}, 1, {D}], past_k, past_v of shape "
                f"[{H}, {S}, {D}]" + (" (None)" if S == 0 else "") + ")"
            )
            if not outcome.ok:
                return f"{shown} {outcome.show()}"
            got = outcome.value
            if not isinstance(got, list) or len(got) != 3:
                return f"{shown} returned {short(got)}; expected a tuple (out, keys, values)"
            for name, g, w in zip(("keys", "values"), got[1:], want[1:]):
                if not _close(g, w):
                    return (
                        f"{shown}: the {name} returned are {short(g, 70)}; expected the past "
                        f"{name} with the new one appended, {short(w, 70)}"
                    )
            if not _close(got[0], want[0]):
                return (
                    f"{shown}: out is {short(got[0], 70)}; softmax(q @ keysᵀ / √{D}) @ values is "
                    f"{short(want[0], 70)}"
                )
        return None

    def decode_verify(calls, outcomes):
        for case, outcome in zip(cases, outcomes):
            shown = f"greedy_cached(model, prompt={case['prompt']}, length={case['length']})"
            if not outcome.ok:
                return f"{shown} {outcome.show()}"
            if outcome.value != case["expected"]:
                return (
                    f"{shown} returned {short(outcome.value)}; decoding without a cache writes "
                    f"{case['expected']}"
                )
        return None

    def reads_verify(calls, outcomes):
        for case, outcome in zip(cases, outcomes):
            shown = f"greedy_cached(model, prompt={case['prompt']}, length={case['length']})"
            if not outcome.ok:
                return f"{shown} {outcome.show()}"
            want = kvlab.expected_reads(len(case["prompt"]), case["length"])
            reads = (outcome.args_after or [None])[0]
            if reads != want:
                return (
                    f"{shown} made forward calls that read [tokens already cached, new tokens] = "
                    f"{short(reads, 90)}; expected {short(want, 90)}: the prompt once, then one "
                    "new token per step"
                )
        return None

    def timer_verify(calls, outcomes):
        (outcome,) = outcomes
        shown = f"median_seconds(a run that sleeps {sleeps} s in turn, repeats=3, warmup=1)"
        if not outcome.ok:
            return f"{shown} {outcome.show()}"
        got = outcome.value
        if not isinstance(got, (int, float)) or not math.isfinite(got):
            return f"{shown} returned {short(got)}; expected seconds as a float"
        if not median <= got < median + 0.03:
            return (
                f"{shown} returned {got:.3f}; expected about {median:.3f} s, the median of the "
                f"three runs timed after the warm-up ({order})"
            )
        return None

    return [
        Check(
            "attend_step appends to the cache and attends over all of it",
            3,
            tuple(Call("attend_step", case) for case in attention_calls),
            attention_verify,
            hint="keys = torch.cat([past_k, k_new], dim=1) (or k_new when past_k is None), the "
            "same for values; out = softmax(q @ keys.transpose(-2, -1) / sqrt(D), dim=-1) "
            "@ values.",
        ),
        Check(
            "greedy_cached writes the tokens of decoding without a cache",
            3,
            decode_calls,
            decode_verify,
            hint="Prefill: logits = model(torch.tensor([prompt]), cache=cache); then take "
            "logits[0, -1].argmax() and feed only that token back with the same cache.",
        ),
        Check(
            "greedy_cached reads the prompt once, then one token per step",
            2,
            read_calls,
            reads_verify,
            hint="One call with the whole prompt, then one call per new token with "
            "torch.tensor([[token]]) and the cache; don't run the last token written.",
        ),
        Check(
            "median_seconds times after the warm-up and takes the median",
            2,
            (
                Call(
                    "median_seconds",
                    (make("unmasked.kvlab:SleepyRun", sleeps),),
                    {"repeats": 3, "warmup": 1},
                ),
            ),
            timer_verify,
            hint="Call run() `warmup` times untimed, then time `repeats` calls with "
            "time.perf_counter() and return statistics.median of those times.",
        ),
    ]
