"""Cases and recorders for lab 05 (the KV-cache decode step), shared by its local and hidden
checks.

The obvious wrong answers to "decode with a KV cache" write the right tokens on some models:
- recomputing the whole prefix at every step (no cache at all) writes exactly the right tokens;
- feeding only the newest token without the cache writes them whenever the model barely looks
  back, as an untrained transformer with large embeddings nearly does.
So the checks record what every forward call read (`CacheRecorder`: the tokens already in the
cache, and the new ones), which only a real cache gets right, and draw their cases where the
forgetful decoder provably writes other tokens (`decode_cases`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from unmasked.model import ModelConfig, TransformerLM


def tiny_causal_lm(seed: int, vocab_size: int, n_layer: int = 2, n_embd: int = 32) -> TransformerLM:
    """A small untrained causal TransformerLM, deterministic for its seed, whose greedy choices
    depend on the whole prefix.

    Its output layer is a random matrix of its own: with the usual tied embeddings an untrained
    model mostly predicts the token it was just given, whatever came before, and a decoder that
    forgets the past would write the right tokens."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = TransformerLM(
        ModelConfig(
            vocab_size=vocab_size,
            max_len=128,
            n_layer=n_layer,
            n_head=2,
            n_embd=n_embd,
            causal=True,
        )
    ).eval()
    head = torch.randn(vocab_size, n_embd, generator=torch.Generator().manual_seed(seed))
    torch.random.set_rng_state(gen_state)
    model.lm_head.weight = torch.nn.Parameter(head)
    return model


class CacheRecorder(torch.nn.Module):
    """Wraps a causal model and records, for every forward call, how many tokens its cache held
    before the call and how many new tokens the call computed: [[held, new], ...].

    A decoder with a working cache reads [[0, P], [P, 1], [P + 1, 1], ...]; one that recomputes
    the prefix reads [[0, P], [0, P + 1], ...]; one that forgets the past reads [[0, P], [0, 1],
    ...].
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.reads = model, []

    @property
    def config(self):
        return self.model.config

    def new_cache(self):
        return self.model.new_cache()

    def forward(self, idx: torch.Tensor, at=None, cache=None) -> torch.Tensor:
        held = 0 if cache is None else cache.length
        self.reads.append([held, int(idx.shape[1])])
        return self.model(idx, at=at, cache=cache)

    def tolist(self) -> list[list[int]]:
        """The reads as plain lists: what the grader's report shows of this argument after a
        call."""
        return [list(r) for r in self.reads]


def expected_reads(prompt_length: int, length: int) -> list[list[int]]:
    """What a cached decoder reads to write `length` tokens after a prompt: the prompt once, then
    one token per step (the last token written is never read back)."""
    return [[0, prompt_length]] + [[prompt_length + i, 1] for i in range(length - 1)]


@torch.no_grad()
def reference_greedy(model, prompt: list[int], length: int) -> list[int]:
    """Greedy decoding without a cache: the whole sequence through the model at every step."""
    x = torch.tensor([list(prompt)])
    out = []
    for _ in range(length):
        token = int(model(x)[0, -1].argmax())
        out.append(token)
        x = torch.cat([x, torch.tensor([[token]])], dim=1)
    return out


@torch.no_grad()
def forgetful_greedy(model, prompt: list[int], length: int) -> list[int]:
    """The wrong answer the checks must catch: the prompt once, then each new token alone, with no
    cache (the model sees only its own last token)."""
    token = int(model(torch.tensor([list(prompt)]))[0, -1].argmax())
    out = [token]
    for _ in range(length - 1):
        token = int(model(torch.tensor([[token]]))[0, -1].argmax())
        out.append(token)
    return out


def decode_cases(seed: int, n: int = 3) -> list[dict]:
    """n cases (seed, vocab_size, prompt, length) drawn from `seed`, kept only where decoding
    without the past writes other tokens than decoding with it."""
    rng = random.Random(seed)
    cases = []
    for _ in range(50 * n):
        if len(cases) == n:
            break
        case = {
            "seed": rng.randrange(2**31),
            "vocab_size": rng.randint(12, 40),
            "length": rng.randint(4, 12),
        }
        case["prompt"] = [rng.randrange(case["vocab_size"]) for _ in range(rng.randint(2, 10))]
        model = tiny_causal_lm(case["seed"], case["vocab_size"])
        want = reference_greedy(model, case["prompt"], case["length"])
        if forgetful_greedy(model, case["prompt"], case["length"]) != want:
            cases.append({**case, "expected": want})
    if len(cases) < n:
        raise RuntimeError(f"found only {len(cases)} of {n} cases where the past matters")
    return cases


def decode_outcome(decode: Callable, case: dict) -> dict:
    """Run a learner's `greedy_cached(model, prompt, length)` on a case: the tokens it wrote and
    what it read, beside the expected ones, and "ok" when both agree."""
    model = CacheRecorder(tiny_causal_lm(case["seed"], case["vocab_size"]))
    tokens = decode(model, list(case["prompt"]), case["length"])
    tokens = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    want_reads = expected_reads(len(case["prompt"]), case["length"])
    return {
        "tokens": tokens,
        "expected_tokens": case["expected"],
        "reads": model.tolist(),
        "expected_reads": want_reads,
        "ok": tokens == case["expected"] and model.tolist() == want_reads,
    }


def describe_decode(case: dict, outcome: dict) -> str:
    """A check message that shows the learner's value beside the expected one."""
    call = f"greedy_cached(model, prompt={case['prompt']}, length={case['length']})"
    if outcome["reads"] != outcome["expected_reads"]:
        return (
            f"{call} made forward calls that read [tokens already cached, new tokens] = "
            f"{outcome['reads']}; expected {outcome['expected_reads']}: the prompt once, then one "
            "new token per step, with the cache holding everything before it"
        )
    if outcome["tokens"] != outcome["expected_tokens"]:
        return f"{call} returned {outcome['tokens']}; expected {outcome['expected_tokens']}"
    return f"{call}: OK"


def reference_attend(q, k_new, v_new, past_k=None, past_v=None):
    """(output, keys, values) of one cached attention step: the new key and value appended to the
    past ones, and the new query attending over all of them. Shapes [H, 1, D] and [H, S, D]."""
    keys = k_new if past_k is None else torch.cat([past_k, k_new], dim=1)
    values = v_new if past_v is None else torch.cat([past_v, v_new], dim=1)
    return F.scaled_dot_product_attention(q, keys, values), keys, values


class SleepyRun:
    """A callable that sleeps the given seconds in turn, cycling: a run with known durations, for
    checking a timer."""

    def __init__(self, seconds: list[float]):
        if not seconds or min(seconds) < 0:
            raise ValueError(f"seconds must be non-negative and non-empty, got {seconds!r}")
        self.seconds, self.calls = list(seconds), 0

    def __call__(self):
        time.sleep(self.seconds[self.calls % len(self.seconds)])
        self.calls += 1
