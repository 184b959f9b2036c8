"""Cases for the labs' checks that the obvious wrong answer cannot pass.

Lab 04 asks for a sampler that runs the model once per step. A sampler that runs it once and
reuses those logits for every step gives the same tokens whenever the model's predictions do not
depend on what was committed, which is nearly so for an untrained transformer. So the checks use
`ContextModel`, whose every prediction shifts with each committed token, pick cases where the
one-pass sampler provably differs, and count the forward passes with `CountingModel`.

Both the lab's local check and the grader's hidden check call `sampler_cases` and `sampler_outcome`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch


class ContextModel(torch.nn.Module):
    """A toy bidirectional "model": logits[b, t] = position score + scale * bag of the row's tokens
    @ W.

    Every token that is not [MASK], prompt included, moves the logits of every position, so a
    prediction made before a commit is stale after it. Deterministic for a given seed.
    """

    def __init__(
        self, vocab_size: int, mask_id: int, seed: int = 0, max_len: int = 64, scale: float = 3.0
    ):
        super().__init__()
        if not 0 <= mask_id < vocab_size:
            raise ValueError(f"mask_id {mask_id} is not in a vocabulary of {vocab_size}")
        gen = torch.Generator().manual_seed(seed)
        self.vocab_size, self.mask_id, self.scale = vocab_size, mask_id, scale
        self.register_buffer("position", 2.0 * torch.randn(max_len, vocab_size, generator=gen))
        self.register_buffer("mix", torch.randn(vocab_size, vocab_size, generator=gen))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape [B, T], got {tuple(idx.shape)}")
        if idx.shape[1] > self.position.shape[0]:
            raise ValueError(
                f"sequence of {idx.shape[1]} tokens; this model takes {self.position.shape[0]}"
            )
        bag = torch.nn.functional.one_hot(idx, self.vocab_size).float()
        bag[..., self.mask_id] = 0.0
        context = bag.sum(dim=1) / idx.shape[1]  # [B, V]: which tokens the row holds
        return self.position[: idx.shape[1]][None] + self.scale * (context @ self.mix)[:, None, :]


class CountingModel(torch.nn.Module):
    """Wraps a model and counts its forward passes (one per call, whatever the batch)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.passes = model, 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        return self.model(idx)


@torch.no_grad()
def one_pass_sampler(model, prompt: list[int], length: int, steps: int, mask_id: int) -> list[int]:
    """The wrong answer the checks must catch: one forward pass, its logits reused at every step."""
    from unmasked.sampling import num_transfer_tokens, unmask_step

    x = torch.tensor(list(prompt) + [mask_id] * length)
    logits = model(x[None])[0]
    for k in num_transfer_tokens(length, steps, "linear"):
        x = unmask_step(logits, x, mask_id, k).x
    return x.tolist()


@torch.no_grad()
def expected_tokens(case: dict) -> list[int]:
    """What unmasked.sampling.generate writes for a case (linear schedule, low-confidence
    remasking)."""
    from unmasked.sampling import generate

    model = ContextModel(case["vocab_size"], case["mask_id"], seed=case["seed"])
    out, _ = generate(
        model,
        torch.tensor([case["prompt"]]),
        case["length"],
        case["steps"],
        mask_id=case["mask_id"],
    )
    return out[0].tolist()


def sampler_cases(seed: int, n: int = 4) -> list[dict]:
    """n sampler cases (seed, vocab_size, mask_id, prompt, length, steps) drawn from `seed`.

    Each has steps >= 2 and is kept only if the one-pass sampler writes other tokens than
    `generate`, so that reusing the first logits fails on every case, not by luck.
    """
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        vocab_size = rng.randint(8, 30)
        mask_id = rng.randrange(vocab_size)
        others = [v for v in range(vocab_size) if v != mask_id]
        length = rng.randint(4, 16)
        case = {
            "seed": rng.randrange(2**31),
            "vocab_size": vocab_size,
            "mask_id": mask_id,
            "prompt": [rng.choice(others) for _ in range(rng.randint(1, 8))],
            "length": length,
            "steps": rng.randint(2, length),
        }
        model = ContextModel(vocab_size, mask_id, seed=case["seed"])
        lazy = one_pass_sampler(model, case["prompt"], length, case["steps"], mask_id)
        if lazy != expected_tokens(case):
            cases.append(case)
    return cases


def sampler_outcome(sample: Callable, case: dict) -> dict:
    """Run a learner's `sample(model, prompt, length, steps, mask_id)` on a case.

    Returns the tokens it wrote and the forward passes it ran, beside what `generate` writes and
    the passes it needs (one per step), and "ok" when both agree.
    """
    model = CountingModel(
        ContextModel(case["vocab_size"], case["mask_id"], seed=case["seed"])
    ).eval()
    tokens = sample(model, list(case["prompt"]), case["length"], case["steps"], case["mask_id"])
    tokens = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    want = expected_tokens(case)
    return {
        "tokens": tokens,
        "expected_tokens": want,
        "passes": model.passes,
        "expected_passes": case["steps"],
        "ok": tokens == want and model.passes == case["steps"],
    }


def describe_outcome(case: dict, outcome: dict) -> str:
    """A check message that shows the learner's value beside the expected one."""
    call = (
        f"sample(model, prompt={case['prompt']}, length={case['length']}, steps={case['steps']}, "
        f"mask_id={case['mask_id']})"
    )
    if outcome["passes"] != outcome["expected_passes"]:
        return (
            f"{call} ran the model {outcome['passes']} time(s); expected "
            f"{outcome['expected_passes']}, one "
            "forward pass per step (the logits change after every commit)"
        )
    if outcome["tokens"] != outcome["expected_tokens"]:
        return f"{call} returned {outcome['tokens']}; generate gives {outcome['expected_tokens']}"
    return f"{call}: OK"
