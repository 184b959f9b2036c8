"""Hidden checks for lab02_masking: mask_tokens and masked_loss.

Tensors and seeded generators are built in the learner's kernel from JSON descriptions (see
`spec.make`), the same way here, where unmasked.masking computes the expected answers. The lab
fixes how the randomness is drawn (torch.rand(ids.shape, generator=generator)), so a seeded
generator must give exactly the reference's masks.
"""

from __future__ import annotations

import math
import random

from ..spec import Call, Check, make, ref, short

PARAMETERS = {"SEED": 0, "FAST": True, "THREADS": 1}
CALL_TIMEOUT_S = 5.0


def tensor(data, dtype: str) -> dict:
    return make("torch:tensor", data, dtype=ref(f"torch:{dtype}"))


def generator(seed: int) -> dict:
    """A fresh torch.Generator seeded with `seed` (the global RNG is not touched)."""
    return make("torch:Generator.manual_seed", make("torch:Generator"), seed)


def _bools(value) -> bool:
    return all(_bools(v) for v in value) if isinstance(value, list) else isinstance(value, bool)


def _mask_case(rng: random.Random, kind: str) -> dict:
    B, L, V = rng.randint(1, 6), rng.randint(2, 40), rng.randint(4, 60)
    mask_id = rng.randrange(V)
    ids = [[rng.randrange(V) for _ in range(L)] for _ in range(B)]
    case = {"ids": ids, "mask_id": mask_id, "seed": rng.randrange(2**31), "maskable": None}
    case["t"] = (
        [round(rng.uniform(0.01, 1.0), 4) for _ in range(B)]
        if kind == "per_sequence"
        else rng.choice((1.0, round(rng.uniform(0.01, 1.0), 4)))
    )
    if kind in ("prompt", "all"):
        prompt = [rng.randint(0, L - 1) for _ in range(B)]
        case["maskable"] = [[j >= prompt[b] for j in range(L)] for b in range(B)]
        if kind == "all":
            case["t"] = 1.0
    return case


def _loss_case(rng: random.Random, *, nothing_masked: bool = False) -> dict:
    B, L, V = rng.randint(1, 5), rng.randint(2, 12), rng.randint(3, 12)
    case = {
        "logits": [
            [[round(rng.gauss(0, 2), 5) for _ in range(V)] for _ in range(L)] for _ in range(B)
        ],
        "targets": [[rng.randrange(V) for _ in range(L)] for _ in range(B)],
        "is_masked": [
            [(not nothing_masked) and rng.random() < 0.5 for _ in range(L)] for _ in range(B)
        ],
    }
    case["t"] = (
        [round(rng.uniform(0.05, 1.0), 4) for _ in range(B)]
        if rng.random() < 0.6
        else round(rng.uniform(0.05, 1.0), 4)
    )
    case["lengths"] = [rng.randint(1, L) for _ in range(B)] if rng.random() < 0.6 else None
    return case


def build(rng: random.Random) -> list[Check]:
    import torch

    from unmasked.masking import mask_tokens, masked_diffusion_loss

    def t_arg(t):
        return tensor(t, "float32") if isinstance(t, list) else t

    def mask_call(case):
        maskable = tensor(case["maskable"], "bool") if case["maskable"] is not None else None
        return Call(
            "mask_tokens",
            (
                tensor(case["ids"], "long"),
                t_arg(case["t"]),
                case["mask_id"],
                maskable,
                generator(case["seed"]),
            ),
        )

    def mask_expected(case):
        t = torch.tensor(case["t"]) if isinstance(case["t"], list) else case["t"]
        maskable = torch.tensor(case["maskable"]) if case["maskable"] is not None else None
        noisy, is_masked = mask_tokens(
            torch.tensor(case["ids"]),
            t,
            case["mask_id"],
            maskable,
            generator=torch.Generator().manual_seed(case["seed"]),
        )
        return [noisy.tolist(), is_masked.tolist()]

    def mask_show(case):
        shape = f"{len(case['ids'])}x{len(case['ids'][0])}"
        maskable = "" if case["maskable"] is None else ", maskable=(prompt positions False)"
        return (
            f"mask_tokens(ids of shape {shape}, t={case['t']}, "
            f"mask_id={case['mask_id']}{maskable}, "
            f"generator seeded with {case['seed']})"
        )

    def mask_check(name, points, cases, hint):
        wanted = [mask_expected(c) for c in cases]

        def verify(calls, outcomes):
            for case, outcome, want in zip(cases, outcomes, wanted):
                if not outcome.ok:
                    return f"{mask_show(case)} {outcome.show()}"
                got = outcome.value
                if not (isinstance(got, list) and len(got) == 2):
                    return (
                        f"{mask_show(case)} returned {short(got)}; expected a pair (noisy, "
                        "is_masked)"
                    )
                if got[1] != want[1]:
                    return (
                        f"{mask_show(case)}: is_masked is {short(got[1], 90)}; expected "
                        f"{short(want[1], 90)}"
                    )
                if not _bools(got[1]):
                    return f"{mask_show(case)}: is_masked should be a bool tensor"
                if got[0] != want[0]:
                    return (
                        f"{mask_show(case)}: noisy is {short(got[0], 90)}; expected "
                        f"{short(want[0], 90)}"
                    )
            return None

        return Check(name, points, tuple(mask_call(c) for c in cases), verify, hint)

    def loss_call(case):
        lengths = tensor(case["lengths"], "long") if case["lengths"] is not None else None
        return Call(
            "masked_loss",
            (
                tensor(case["logits"], "float32"),
                tensor(case["targets"], "long"),
                tensor(case["is_masked"], "bool"),
                t_arg(case["t"]),
                lengths,
            ),
        )

    def loss_expected(case):
        t = torch.tensor(case["t"]) if isinstance(case["t"], list) else case["t"]
        lengths = torch.tensor(case["lengths"]) if case["lengths"] is not None else None
        return masked_diffusion_loss(
            torch.tensor(case["logits"]),
            torch.tensor(case["targets"]),
            torch.tensor(case["is_masked"]),
            t,
            lengths=lengths,
        ).item()

    def loss_show(case):
        B, L, V = len(case["logits"]), len(case["logits"][0]), len(case["logits"][0][0])
        return (
            f"masked_loss(logits of shape {B}x{L}x{V}, targets, is_masked with "
            f"{sum(map(sum, case['is_masked']))} masked, t={case['t']}, lengths={case['lengths']})"
        )

    def loss_check(name, points, cases, hint):
        wanted = [loss_expected(c) for c in cases]

        def verify(calls, outcomes):
            for case, outcome, want in zip(cases, outcomes, wanted):
                if not outcome.ok:
                    return f"{loss_show(case)} {outcome.show()}"
                got = outcome.value
                if isinstance(got, list):
                    return (
                        f"{loss_show(case)} returned a tensor of shape [{len(got)}]; expected "
                        "a "
                        "scalar (the mean)"
                    )
                if not isinstance(got, (int, float)) or not math.isclose(
                    got, want, rel_tol=1e-5, abs_tol=1e-6
                ):
                    return f"{loss_show(case)} returned {short(got)}; expected {want!r}"
            return None

        return Check(name, points, tuple(loss_call(c) for c in cases), verify, hint)

    scalar = [_mask_case(rng, "scalar") for _ in range(3)]
    per_sequence = [_mask_case(rng, "per_sequence") for _ in range(3)]
    prompts = [_mask_case(rng, "prompt") for _ in range(2)] + [_mask_case(rng, "all")]
    losses = [_loss_case(rng) for _ in range(5)]
    empty = [_loss_case(rng, nothing_masked=True)]

    return [
        mask_check(
            "mask_tokens masks with the generator's draws",
            2,
            scalar,
            "is_masked = torch.rand(ids.shape, generator=generator) < t; put mask_id where it is "
            "True.",
        ),
        mask_check(
            "mask_tokens uses each sequence's own t",
            1,
            per_sequence,
            "With a tensor t, compare row b of the draws with t[b]: rates[:, None].",
        ),
        mask_check(
            "mask_tokens never masks what maskable excludes",
            1,
            prompts,
            "AND the draws with maskable, so prompt positions stay as they are, even at t = 1.",
        ),
        loss_check(
            "masked_loss is the 1/t-weighted masked cross-entropy",
            3,
            losses,
            "Cross-entropy per position (reduction='none'), zero where not masked, summed per "
            "sequence, "
            "divided by its t and its length (lengths[b], or L), then the batch mean.",
        ),
        loss_check(
            "masked_loss is zero when nothing is masked",
            1,
            empty,
            "Zero the unmasked positions with torch.where; nothing masked means a loss of 0.",
        ),
    ]
