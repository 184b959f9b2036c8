"""Hidden checks for lab04_unmasking: linear_schedule, unmask_step, sample.

Tensors and the tiny model are built in the learner's kernel from JSON descriptions (see
`spec.make`); the same descriptions build them here, where unmasked.sampling computes the
expected answers. Logits are drawn from the grader's secret seed with wide, distinct values,
so that no two confidences tie.
"""

from __future__ import annotations

import random

from ..spec import Call, Check, last, make, ref, returns, short

PARAMETERS = {"SEED": 0}
CALL_TIMEOUT_S = 10.0  # sample() runs a 2-layer model up to 24 times; ~50 ms on a loaded CPU


def tensor(data, dtype: str) -> dict:
    return make("torch:tensor", data, dtype=ref(f"torch:{dtype}"))


def build_here(value):
    """What the kernel builds from a `make` description, built in the grader."""
    import importlib

    if isinstance(value, list):
        return [build_here(v) for v in value]
    if isinstance(value, dict):
        if "__ref__" in value or "__call__" in value:
            module, _, name = (value.get("__ref__") or value["__call__"]).partition(":")
            obj = importlib.import_module(module)
            for part in name.split("."):
                obj = getattr(obj, part)
            if "__ref__" in value:
                return obj
            return obj(*build_here(value.get("args", [])), **build_here(value.get("kwargs", {})))
        if "__last__" in value:
            return build_here(value["__last__"])[-1]
        return {k: build_here(v) for k, v in value.items()}
    return value


def _step_case(rng: random.Random, *, spiky_mask: bool = False) -> tuple:
    T, V = rng.randint(3, 24), rng.randint(4, 30)
    mask_id = rng.randrange(V)
    x = [rng.choice([v for v in range(V) if v != mask_id]) for _ in range(T)]
    for i in rng.sample(range(T), rng.randint(1, T)):
        x[i] = mask_id
    logits = [[round(rng.gauss(0, 3), 6) for _ in range(V)] for _ in range(T)]
    if spiky_mask:  # the model is most confident in [MASK] itself: it must never be proposed
        for row in logits:
            row[mask_id] = 50.0 + rng.random()
    for i in range(
        T
    ):  # committed positions look very sure of something else: they still must not change
        if x[i] != mask_id and rng.random() < 0.5:
            logits[i][rng.randrange(V)] = 40.0 + rng.random()
    n_masked = sum(v == mask_id for v in x)
    k = rng.choice((0, 1, n_masked, rng.randint(0, n_masked)))
    return logits, x, mask_id, k


def _probability_case(rng: random.Random) -> tuple:
    """Two masked positions, k=1: the one with the larger top logit is the less sure (a close
    runner-up), so ranking by logits instead of softmax probabilities picks the wrong one."""
    T, V = rng.randint(4, 12), rng.randint(6, 20)
    mask_id = rng.randrange(V)
    others = [v for v in range(V) if v != mask_id]
    x = [rng.choice(others) for _ in range(T)]
    a, b = rng.sample(range(T), 2)
    x[a] = x[b] = mask_id
    logits = [[round(rng.uniform(-3, 0), 6) for _ in range(V)] for _ in range(T)]
    top = rng.uniform(6, 9)
    first, second = rng.sample(others, 2)
    logits[a][first], logits[a][second] = round(top, 6), round(top - 0.05, 6)  # about 50% sure
    logits[b][rng.choice(others)] = round(
        top - rng.uniform(0.5, 1.5), 6
    )  # lower logit, about 99% sure
    return logits, x, mask_id, 1


def _model(seed: int, vocab: int) -> dict:
    config = make(
        "unmasked.model:ModelConfig", vocab_size=vocab, max_len=64, n_layer=2, n_head=2, n_embd=32
    )
    return last(make("torch:manual_seed", seed), make("unmasked.model:TransformerLM", config))


def build(rng: random.Random) -> list[Check]:
    import torch

    from unmasked import labtools
    from unmasked.sampling import generate, num_transfer_tokens
    from unmasked.sampling import unmask_step as reference_step

    schedules = [
        (n, rng.randint(1, n))
        for n in (rng.randint(1, 9), rng.randint(10, 99), rng.randint(100, 999))
    ]
    schedules += [(n, n) for n in (rng.randint(1, 50),)] + [(rng.randint(1, 500), 1)]
    schedules += [(n, rng.randint(1, n)) for n in rng.sample(range(2, 300), 4)]

    steps = [_step_case(rng) for _ in range(6)] + [
        _step_case(rng, spiky_mask=True),
        _probability_case(rng),
    ]
    step_calls = [(tensor(lg, "float32"), tensor(x, "long"), m, k) for lg, x, m, k in steps]
    step_wanted = [
        reference_step(torch.tensor(lg, dtype=torch.float32), torch.tensor(x), m, k).x.tolist()
        for lg, x, m, k in steps
    ]
    watch = tuple(Call("unmask_step", case, watch_args=True) for case in step_calls[:3])
    originals = [x for _, x, _, _ in steps[:3]]

    samples = []
    for _ in range(3):
        vocab = rng.randint(8, 30)
        mask_id = rng.randrange(vocab)
        prompt = [
            rng.choice([v for v in range(vocab) if v != mask_id]) for _ in range(rng.randint(1, 8))
        ]
        length = rng.randint(2, 16)
        samples.append(
            (rng.randrange(2**31), vocab, prompt, length, rng.randint(1, length), mask_id)
        )
    sample_calls = [
        (_model(seed, vocab), prompt, length, n_steps, mask_id)
        for seed, vocab, prompt, length, n_steps, mask_id in samples
    ]
    sample_wanted = []
    for call in sample_calls:
        with torch.random.fork_rng():
            model = build_here(call[0])
        with torch.no_grad():
            out, _ = generate(model, torch.tensor([call[1]]), call[2], call[3], mask_id=call[4])
        sample_wanted.append(out[0].tolist())
    # A model whose every prediction moves with each commit, on cases where a sampler that runs the
    # model once and reuses its logits writes other tokens (labtools.sampler_cases): an untrained
    # transformer barely reacts to commits, so that wrong answer could pass the cases above.
    for case in labtools.sampler_cases(rng.randrange(2**31), n=3):
        model = make(
            "unmasked.labtools:ContextModel", case["vocab_size"], case["mask_id"], seed=case["seed"]
        )
        samples.append(
            (
                None,
                case["vocab_size"],
                case["prompt"],
                case["length"],
                case["steps"],
                case["mask_id"],
            )
        )
        sample_calls.append((model, case["prompt"], case["length"], case["steps"], case["mask_id"]))
        sample_wanted.append(labtools.expected_tokens(case))

    def unchanged(calls, outcomes):
        for _call, outcome, x in zip(calls, outcomes, originals):
            if not outcome.ok:
                return f"unmask_step(logits, x={short(x)}, ...) {outcome.show()}"
            if outcome.args_after is not None and outcome.args_after[1] != x:
                return (
                    f"unmask_step changed its argument x from {short(x)} to "
                    f"{short(outcome.args_after[1])}"
                )
        return None

    def step_verify(calls, outcomes):
        for (lg, x, m, k), outcome, want in zip(steps, outcomes, step_wanted):
            shown = (
                f"unmask_step(logits of shape [{len(lg)}, {len(lg[0])}], x={short(x, 80)}, "
                f"mask_id={m}, k={k})"
            )
            if not outcome.ok:
                return f"{shown} {outcome.show()}"
            if outcome.value != want:
                return f"{shown} returned {short(outcome.value, 80)}; expected {short(want, 80)}"
        return None

    def sample_verify(calls, outcomes):
        for (seed, vocab, prompt, length, n_steps, mask_id), outcome, want in zip(
            samples, outcomes, sample_wanted
        ):
            model = (
                "an untrained model" if seed is not None else "a model that reacts to every commit"
            )
            shown = (
                f"sample({model} (vocabulary {vocab}), prompt={prompt}, length={length}, "
                f"steps={n_steps}, mask_id={mask_id})"
            )
            if not outcome.ok:
                return f"{shown} {outcome.show()}"
            if outcome.value != want:
                return (
                    f"{shown} returned {short(outcome.value, 90)}; unmasked.sampling.generate "
                    f"gives {short(want, 90)}"
                )
        return None

    return [
        returns(
            "linear_schedule splits the tokens evenly, the remainder first",
            2,
            "linear_schedule",
            schedules,
            [num_transfer_tokens(n, s, "linear") for n, s in schedules],
            accept_types=("list",),
            hint="divmod(n_masked, steps) gives the base count and the remainder; the first "
            "`remainder` steps "
            "take one more.",
        ),
        Check(
            "unmask_step commits the k most confident masked positions",
            3,
            tuple(Call("unmask_step", case) for case in step_calls),
            step_verify,
            hint="Set the mask_id logit to -inf, take softmax and its max per position, give "
            "unmasked positions a "
            "confidence of -inf, and write the proposals at torch.topk(confidence, k).indices.",
        ),
        Check(
            "unmask_step returns a new tensor and leaves x unchanged",
            1,
            watch,
            unchanged,
            hint="Start from x.clone() and write into the copy.",
        ),
        Check(
            "sample matches unmasked.sampling.generate",
            3,
            tuple(Call("sample", case) for case in sample_calls),
            sample_verify,
            hint="Start from prompt + length masks; for each k of linear_schedule(length, steps) "
            "run "
            "model(x[None])[0] and x = unmask_step(logits, x, mask_id, k); return x.tolist().",
        ),
    ]
