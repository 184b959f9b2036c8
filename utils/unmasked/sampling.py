"""Iterative unmasking: how a masked diffusion LM writes a sequence in a few parallel steps.

The answer region starts as all [MASK]. At every step the model predicts a token for every
masked position at once, and we *commit* some of those predictions, keeping the rest masked
for the next step. What varies between samplers is how many to commit and which:

- how many: a fixed schedule over `steps` (linear, the same count per step, as LLaDA's
  `get_num_transfer_tokens`; or cosine, MaskGIT's), or adaptive: every position whose
  confidence exceeds a threshold tau, at least one per step (Fast-dLLM's parallel decoding);
- which: the most confident predictions ("low_confidence" remasking: the least confident stay
  masked) or a random choice ("random" remasking);
- where: the whole answer at once, or left-to-right blocks (LLaDA's semi-autoregressive mode),
  committing only inside the current block.

A committed token is never changed again. `generate` records every commit in a `Trace`, which
`unmasked.viz` replays as an animation.

One decoding path: each of these samplers, and each way of filling a record (one shot, adaptive
tau, slot filling), is a *policy* that says before every forward pass which masked positions may be
committed and how many (`Plan`); `decode` runs the loop, and `commit_step` is the one commit rule
(`unmask_step` is that rule on one row). `generate` is `generate_many` at batch 1, and the record
decoder (`fill_records`, which every accuracy figure of the course comes from) is `decode` with
`record_policy`.

References: Nie et al. 2025, "Large Language Diffusion Models" (LLaDA, arXiv:2502.09992) and
ML-GSAI/LLaDA generate.py; Chang et al. 2022, "MaskGIT" (arXiv:2202.04200); Wu et al. 2025,
"Fast-dLLM" (arXiv:2505.22618).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

SCHEDULES = ("linear", "cosine")
REMASKING = ("low_confidence", "random")


# ---------------------------------------------------------------------------- schedules


def num_transfer_tokens(n_masked: int, steps: int, schedule: str = "linear") -> list[int]:
    """How many tokens to commit at each of `steps` steps so that all `n_masked` get committed.

    linear: LLaDA's rule. Its noise schedule is linear in t, so each step should unmask the
    same expected number; the remainder of n_masked / steps goes to the first steps.
    cosine: MaskGIT's rule. After step t of T, a fraction cos(pi/2 * t/T) is still masked, so
    the first steps commit few tokens (little context yet) and the last steps many.

    Every step commits at least one token, so `steps` may not exceed `n_masked` (a ValueError;
    LLaDA instead pads with steps that commit nothing). `generate` never asks for more:
    `split_steps` gives no block more steps than it has tokens.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; accepted: {', '.join(SCHEDULES)}")
    if not isinstance(n_masked, int) or n_masked < 0:
        raise ValueError(f"n_masked must be a non-negative int, got {n_masked!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if n_masked == 0:
        return [0] * steps
    if steps > n_masked:
        raise ValueError(
            f"steps={steps} exceeds the {n_masked} masked tokens; each step commits at least one,"
            " so use steps <= n_masked"
        )
    if schedule == "linear":
        base, rem = divmod(n_masked, steps)
        return [base + (1 if i < rem else 0) for i in range(steps)]
    # cosine: tokens still masked after step t is round(n * cos(pi/2 * t / T)), made strictly
    # decreasing (at least one commit per step) and ending at zero.
    still_masked = [round(n_masked * math.cos(math.pi / 2 * t / steps)) for t in range(steps + 1)]
    still_masked[0], still_masked[-1] = n_masked, 0
    for t in range(1, steps + 1):  # at least one commit per step ...
        still_masked[t] = min(still_masked[t], still_masked[t - 1] - 1)
    for t in range(steps - 1, -1, -1):  # ... and enough left for the steps that follow
        still_masked[t] = max(still_masked[t], still_masked[t + 1] + 1)
    return [still_masked[t] - still_masked[t + 1] for t in range(steps)]


# ---------------------------------------------------------------------------- one step


def add_gumbel_noise(logits: torch.Tensor, temperature: float, generator=None) -> torch.Tensor:
    """Scores whose argmax is a sample from softmax(logits / temperature) (the Gumbel-max trick).

    Computed in float64: Zheng et al. 2024 (arXiv:2409.02908) found that low-precision Gumbel
    noise lowers the quality of masked diffusion samples, and LLaDA uses float64 for this reason.
    exp(l) / (-log u)^T has the same argmax as l / T + Gumbel noise. Temperature 0 is argmax.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    logits = logits.to(torch.float64)
    if temperature == 0:
        return logits
    u = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    u = u.clamp_min(torch.finfo(torch.float64).tiny)  # log(0) would give an infinite score
    return logits - temperature * torch.log(-torch.log(u))  # log of LLaDA's exp(l) / (-log u)^T


class Step(NamedTuple):
    """What one unmasking step did: the new sequence and what it committed, by position."""

    x: torch.Tensor  # LongTensor[T], the sequence after the step
    positions: torch.Tensor  # LongTensor[k], committed positions, in reading order
    tokens: torch.Tensor  # LongTensor[k], the tokens committed there
    confidences: torch.Tensor  # float64[k], the model's probability of each committed token


class Commit(NamedTuple):
    """What commit_step did to a batch of rows: (B, T) each."""

    x: torch.Tensor  # LongTensor, the rows after the step
    chosen: torch.Tensor  # bool, positions given the model's proposal
    closed: torch.Tensor  # bool, masked positions after an [EOS] in their slot, given [EOS]
    confidence: torch.Tensor  # float64, the proposal's probability where chosen, NaN elsewhere


def commit_step(
    logits: torch.Tensor,
    x: torch.Tensor,
    candidates: torch.Tensor,
    k: torch.Tensor | None,
    threshold: float | None = None,
    *,
    mask_id: int,
    banned: Sequence[int] = (),
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    generators: Sequence[torch.Generator | None] | None = None,
    slots: Sequence[tuple[int, int]] | None = None,
    eos_id: int | None = None,
) -> Commit:
    """The commit rule, for a batch of rows: every sampler here commits through it, and only it.

    logits: (N, V), the model's logits at the True positions of `candidates` (B, T), in row-major
      order (what TransformerLM's forward returns for `at=candidates`). x: (B, T), [MASK] where
      not yet written. k: LongTensor[B].
    Each candidate is proposed the argmax of its logits (of the logits plus Gumbel noise at
    temperature > 0), never [MASK] nor an id in `banned`; its confidence is that token's
    probability under the float64 softmax.
    - no threshold: commit the k candidates that score highest (confidence, or a random score
      with remasking="random"); k <= the row's candidates.
    - threshold tau: commit every candidate whose confidence is strictly above tau, and, while
      fewer than k (default one) are, the highest-scoring others up to k (Fast-dLLM's rule with
      a floor), so every step makes progress.
    slots: [start, end) column ranges of a record's value slots, with eos_id: an [EOS] in a slot
      ends its value (RecordLayout pads each value with [EOS]), so the masked positions after it
      are committed as [EOS] in the same step ("closed"), as nothing else may stand there.
    Pure: x is not modified. Why these rules, and not others:
    - float64 softmax: confidences near 1 differ in their last float32 bits (the record's values
      are committed at 0.999...), so ranking and thresholds there need the precision; LLaDA
      computes its Gumbel noise in float64 for the same reason (add_gumbel_noise).
    - strictly above tau: tau = 1.0 then means one token per step, the end of a sweep, where >=
      would commit every saturated (exactly 1.0) prediction at once.
    - k per row: a record's answer must not depend on the others in its batch.
    """
    if remasking not in REMASKING:
        raise ValueError(f"unknown remasking {remasking!r}; accepted: {', '.join(REMASKING)}")
    if x.dim() != 2 or candidates.shape != x.shape:
        raise ValueError(
            f"x and candidates must both be (B, T); got {tuple(x.shape)}, {tuple(candidates.shape)}"
        )
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1] (a probability), got {threshold!r}")
    candidates = candidates & (x == mask_id)
    n_candidates = candidates.sum(dim=1)
    if logits.dim() != 2 or logits.shape[0] != int(n_candidates.sum()):
        raise ValueError(
            f"logits must be (N, V) for the N={int(n_candidates.sum())} candidates, got "
            f"{tuple(logits.shape)}"
        )
    if threshold is None and k is None:
        raise ValueError("give k (how many to commit per row) or a threshold")
    B, T = x.shape
    device = x.device
    if k is not None:
        k = torch.as_tensor(k, dtype=torch.long, device=device).expand(B)
        if bool((k < 0).any()) or (threshold is None and bool((k > n_candidates).any())):
            raise ValueError(
                f"k must be in [0, the row's masked candidates {n_candidates.tolist()}], got "
                f"{k.tolist()}"
            )

    logits = logits.to(torch.float64).clone()
    never = sorted({int(i) for i in (mask_id, *banned) if 0 <= int(i) < logits.shape[-1]})
    logits[:, never] = -math.inf
    row_of = candidates.nonzero()[:, 0]  # the row of each candidate, for per-row random draws
    gens = list(generators) if generators is not None else [None] * B
    if temperature == 0:
        proposal = logits.argmax(dim=-1)
    else:
        noisy = torch.empty_like(logits)
        for r in range(B):
            sel = row_of == r
            noisy[sel] = add_gumbel_noise(logits[sel], temperature, gens[r])
        proposal = noisy.argmax(dim=-1)
    prob = F.softmax(logits, dim=-1).gather(-1, proposal[:, None]).squeeze(-1)

    confidence = torch.full((B, T), math.nan, dtype=torch.float64, device=device)
    confidence[candidates] = prob
    score = torch.full((B, T), -math.inf, dtype=torch.float64, device=device)
    if remasking == "low_confidence":
        score[candidates] = prob
    else:
        draws = torch.empty_like(prob)
        for r in range(B):
            sel = row_of == r
            draws[sel] = torch.rand(
                int(sel.sum()), dtype=torch.float64, device=device, generator=gens[r]
            )
        score[candidates] = draws

    chosen = torch.zeros_like(candidates)
    need = k
    if threshold is not None:
        chosen = candidates & (confidence > threshold)
        floor = torch.ones(B, dtype=torch.long, device=device) if k is None else k
        need = (torch.minimum(floor, n_candidates) - chosen.sum(dim=1)).clamp(min=0)
        score = score.masked_fill(chosen, -math.inf)
    most = int(need.max()) if B else 0
    if most:
        # add each row's top `need`; never write False: a row that needs none still gets `most`
        # indices from topk, and they may be tokens the threshold has already chosen
        top = score.topk(most, dim=1).indices
        extra = torch.zeros_like(chosen)
        extra.scatter_(1, top, torch.arange(most, device=device)[None, :] < need[:, None])
        chosen |= extra
    chosen &= candidates

    proposed = x.clone()
    proposed[candidates] = proposal
    new_x = torch.where(chosen, proposed, x)
    closed = torch.zeros_like(chosen)
    if slots is not None:
        if eos_id is None:
            raise ValueError("slots need the eos_id that ends a value")
        for lo, hi in slots:
            seg = new_x[:, lo:hi]
            after_eos = (seg == eos_id).long().cummax(dim=1).values.bool()
            closed[:, lo:hi] = after_eos & (seg == mask_id)
        new_x = torch.where(closed, torch.full_like(new_x, eos_id), new_x)
    return Commit(new_x, chosen, closed, confidence.masked_fill(~chosen, math.nan))


def unmask_step(
    logits: torch.Tensor,
    x: torch.Tensor,
    mask_id: int,
    k: int | None,
    *,
    candidates: torch.Tensor | None = None,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    threshold: float | None = None,
    generator: torch.Generator | None = None,
    banned: Sequence[int] = (),
    slots: Sequence[tuple[int, int]] | None = None,
    eos_id: int | None = None,
) -> Step:
    """Commit k masked positions of `x` (or, with a threshold, every one above it); keep the rest
    masked.

    logits: FloatTensor[T, V], the model's prediction for every position of x: LongTensor[T].
    candidates: BoolTensor[T], positions allowed to be committed (default: every [MASK]);
      a semi-autoregressive sampler passes the masked positions of the current block.
    remasking="low_confidence" commits the k predictions with the highest probability;
      "random" commits k random masked positions.
    threshold: commit every candidate whose probability is strictly above it, and the best-scoring
      one even when none is (Fast-dLLM), so each step makes progress; k, if given, raises that
      floor to k. Strictly above, so tau=1.0 commits exactly one token per step.
    banned: ids never proposed besides [MASK] itself (a record decoder bans [PAD] and [SEP]).
    slots, eos_id: a record's value slots; an [EOS] committed in one closes it (commit_step).
    This is commit_step on a batch of one row: the same rule as every sampler of the package.
    Pure: x is not modified.
    """
    if x.dim() != 1 or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(
            f"expected x of shape [T] and logits of shape [T, V]; got x {tuple(x.shape)},"
            f" logits {tuple(logits.shape)}"
        )
    masked = x == mask_id
    candidates = masked if candidates is None else candidates & masked
    n_candidates = int(candidates.sum())
    if threshold is None and (k is None or not 0 <= k <= n_candidates):
        raise ValueError(
            f"k must be an int in [0, {n_candidates}] (the masked candidates), got {k!r}"
        )
    out = commit_step(
        logits[candidates],
        x[None],
        candidates[None],
        None if k is None else torch.tensor([k]),
        threshold,
        mask_id=mask_id,
        banned=banned,
        temperature=temperature,
        remasking=remasking,
        generators=[generator],
        slots=slots,
        eos_id=eos_id,
    )
    new_x = out.x[0]
    positions = (out.chosen[0] | out.closed[0]).nonzero().squeeze(-1)
    return Step(new_x, positions, new_x[positions], out.confidence[0][positions])


# ---------------------------------------------------------------------------- the trace


@dataclass
class TraceStep:
    """One forward pass of the sampler: what it committed (absolute positions in the sequence)."""

    positions: list[int]
    tokens: list[int]
    confidences: list[float]
    block: int


@dataclass
class Trace:
    """Everything the sampler did, step by step, enough to replay it (see unmasked.viz)."""

    prompt: list[int]  # the tokens before the masked region
    length: int  # the masked region: positions len(prompt) .. len(prompt) + length - 1
    mask_id: int
    steps: list[TraceStep] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    suffix: list[int] = field(default_factory=list)  # tokens after the region (infilling), if any

    @property
    def prompt_length(self) -> int:
        return len(self.prompt)

    @property
    def steps_used(self) -> int:
        """Forward passes of the model: the cost of sampling."""
        return len(self.steps)

    @property
    def commits_per_step(self) -> list[int]:
        return [len(s.positions) for s in self.steps]

    def commit_step(self) -> list[int]:
        """For each generated position (0 .. length-1), the step (0-based) that committed it; -1
        if none."""
        out = [-1] * self.length
        for i, s in enumerate(self.steps):
            for p in s.positions:
                out[p - self.prompt_length] = i
        return out

    def commit_confidence(self) -> list[float]:
        """For each generated position, the model's probability of the token when it was
        committed."""
        out = [float("nan")] * self.length
        for s in self.steps:
            for p, c in zip(s.positions, s.confidences):
                out[p - self.prompt_length] = c
        return out

    def states(self) -> list[list[int]]:
        """The generated region before any step and after each step (mask_id where still masked)."""
        current = [self.mask_id] * self.length
        out = [list(current)]
        for s in self.steps:
            for p, t in zip(s.positions, s.tokens):
                current[p - self.prompt_length] = t
            out.append(list(current))
        return out

    def tokens(self) -> list[int]:
        """The generated tokens at the end."""
        return self.states()[-1]


# ---------------------------------------------------------------------------- the sampler


def _logits(model, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    out = getattr(out, "logits", out)
    if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[:2] != x.shape:
        raise ValueError(
            f"model(idx) must return logits of shape [B, T, V] for idx {tuple(x.shape)};"
            f" got {getattr(out, 'shape', type(out))}"
        )
    return out


def _device_of(model, default: torch.device) -> torch.device:
    """Where the model's weights live (sampling runs there), or `default` for a plain callable."""
    try:
        return next(iter(model.parameters())).device
    except (AttributeError, StopIteration):
        return default


def _blocks(length: int, block_length: int | None) -> list[tuple[int, int]]:
    """[start, end) of each semi-autoregressive block, relative to the answer; the last may be
    shorter."""
    if block_length is None:
        block_length = length
    if not isinstance(block_length, int) or block_length < 1:
        raise ValueError(f"block_length must be a positive int or None, got {block_length!r}")
    return [(s, min(s + block_length, length)) for s in range(0, length, block_length)]


def split_steps(steps: int, sizes: list[int]) -> list[int]:
    """Share a budget of `steps` forward passes among blocks of `sizes` tokens, decoded one after
    another.

    As evenly as possible, the remainder to the first blocks; a block never gets more steps than
    it has tokens (a step commits at least one), and what a short block cannot use goes to the
    others, so the passes add up to min(steps, sum(sizes)): K = L is one token per step, whatever
    the block length. Each block takes at least one pass, so fewer steps than blocks raises a
    ValueError rather than silently running more passes than the budget.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes must be positive ints, at least one, got {sizes!r}")
    if steps < len(sizes):
        raise ValueError(
            f"steps={steps} is fewer than the {len(sizes)} blocks; each block takes at least one "
            "forward"
            f" pass, so use steps >= {len(sizes)} or longer blocks (block_length)"
        )
    out = list(sizes)
    left, open_blocks = min(steps, sum(sizes)), list(range(len(sizes)))
    while True:  # water-filling: a block no bigger than an even share takes all it can use
        full = {i for i in open_blocks if sizes[i] * len(open_blocks) <= left}
        if not full:
            break
        left -= sum(sizes[i] for i in full)
        open_blocks = [i for i in open_blocks if i not in full]
    base, rem = divmod(left, max(1, len(open_blocks)))
    for j, i in enumerate(open_blocks):  # each of the others is bigger than its share
        out[i] = base + (1 if j < rem else 0)
    return out


def _check_settings(length, steps, schedule: str, remasking: str, threshold) -> None:
    """The ValueErrors that generate and generate_many share, each naming what is accepted."""
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if threshold is None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; accepted: {', '.join(SCHEDULES)}")
    if remasking not in REMASKING:
        raise ValueError(f"unknown remasking {remasking!r}; accepted: {', '.join(REMASKING)}")


@contextlib.contextmanager
def _eval_mode(model):
    """Sample in eval mode (dropout would make sampling random even at temperature 0), then
    restore."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield
    finally:
        if hasattr(model, "train"):
            model.train(was_training)


@torch.no_grad()
def generate(
    model,
    prompt: torch.Tensor,
    length: int,
    steps: int,
    *,
    mask_id: int,
    schedule: str = "linear",
    remasking: str = "low_confidence",
    block_length: int | None = None,
    temperature: float = 0.0,
    threshold: float | None = None,
    seed: int = 0,
    suffix: torch.Tensor | None = None,
    banned: Sequence[int] = (),
) -> tuple[torch.Tensor, Trace]:
    """Fill `length` masked positions after `prompt` by iterative unmasking; return (tokens, trace).

    model(idx: LongTensor[1, T]) -> logits [1, T, V], bidirectional (it sees the masks ahead).
    prompt: LongTensor[1, P]. Returns LongTensor[1, P + length] and the Trace of every step.
    steps: the total budget of forward passes, shared evenly among blocks (`split_steps`); each
      block uses at most as many steps as it has tokens (more could only commit nothing), and what a
      short block cannot use goes to the others. Blocks run one after another, so each takes at
      least one pass: fewer steps than blocks raises a ValueError instead of exceeding the budget.
      More steps than tokens run one token per step (LLaDA would pad with steps that commit
      nothing).
    threshold: adaptive decoding (Fast-dLLM): each step commits every position of the current
      block whose probability is above tau, at least one; `steps` and `schedule` are then unused
      and the trace says how many steps it took.
    seed: seeds the Gumbel noise (temperature > 0) and random remasking; greedy low-confidence
      decoding does not depend on it.
    suffix: LongTensor[1, S] of context after the masked region (infilling); the result is
      then [1, P + length + S].
    banned: ids never proposed besides [MASK] (record_bans for a record or session text).
    """
    if prompt.dim() != 2 or prompt.shape[0] != 1:
        raise ValueError(
            f"prompt must be a LongTensor of shape [1, P], got shape {tuple(prompt.shape)}"
        )
    _check_settings(length, steps, schedule, remasking, threshold)
    if suffix is None:
        suffix = prompt.new_zeros((1, 0))
    if suffix.dim() != 2 or suffix.shape[0] != 1:
        raise ValueError(
            f"suffix must be a LongTensor of shape [1, S], got shape {tuple(suffix.shape)}"
        )
    if (prompt == mask_id).any() or (suffix == mask_id).any():
        raise ValueError(
            "the prompt or suffix contains mask_id; only the generated region may be masked"
        )

    device = _device_of(model, prompt.device)
    ((ids, trace),) = generate_many(
        model,
        [prompt[0].tolist()],
        length,
        steps,
        mask_id=mask_id,
        schedule=schedule,
        remasking=remasking,
        block_length=block_length,
        temperature=temperature,
        threshold=threshold,
        seed=seed,
        suffixes=[suffix[0].tolist()],
        banned=banned,
    )
    return torch.tensor([ids], dtype=torch.long, device=device), trace


# ---------------------------------------------------------------------------- policies
# A policy says, before each forward pass, which masked positions of each row's answer may be
# committed and how many of them: Plan(candidates, k, threshold). The model's predictions then go
# through commit_step. Every way of decoding in this package (fixed steps with a schedule, blocks,
# adaptive tau, one shot, slot filling) is one of these policies over the same loop, `decode`.


class Plan(NamedTuple):
    """What a policy allows at one pass, per row."""

    candidates: torch.Tensor  # BoolTensor[B, L], answer positions that may be committed
    k: torch.Tensor | None  # LongTensor[B]: commit the k best (with a threshold: at least k)
    threshold: float | None = None  # commit every candidate above it (adaptive)


Policy = Callable[[torch.Tensor, torch.Tensor], Plan]
"""policy(masked: BoolTensor[B, L], passes: LongTensor[B]) -> Plan; passes = each row's passes so
far."""


def _current_block(masked: torch.Tensor, blocks: list[tuple[int, int]]):
    """(index of each row's first block with a masked position, BoolTensor[B, L] of its masked
    positions)."""
    has = torch.stack([masked[:, s:e].any(dim=1) for s, e in blocks], dim=1)
    current = has.long().argmax(dim=1)
    column_block = torch.zeros(masked.shape[1], dtype=torch.long, device=masked.device)
    for b, (s, e) in enumerate(blocks):
        column_block[s:e] = b
    return current, masked & (column_block[None, :] == current[:, None])


def scheduled_policy(
    length: int, steps: int, schedule: str = "linear", block_length: int | None = None
) -> Policy:
    """`steps` passes in all, shared among left-to-right blocks (split_steps); inside a block, the
    schedule's count of the most confident masked positions (LLaDA; MaskGIT's cosine)."""
    blocks = _blocks(length, block_length)
    block_steps = split_steps(steps, [e - s for s, e in blocks])
    counts = [num_transfer_tokens(e - s, n, schedule) for (s, e), n in zip(blocks, block_steps)]
    table = torch.zeros(len(blocks), max(block_steps), dtype=torch.long)
    for b, c in enumerate(counts):
        table[b, : len(c)] = torch.tensor(c)
    first_pass = torch.tensor([0, *block_steps[:-1]]).cumsum(dim=0)

    def policy(masked, passes):
        current, candidates = _current_block(masked, blocks)
        t, start = table.to(masked.device), first_pass.to(masked.device)
        return Plan(candidates, t[current, passes - start[current]])

    return policy


def threshold_policy(
    threshold: float,
    length: int,
    block_length: int | None = None,
    max_steps: int | None = None,
) -> Policy:
    """Adaptive (Fast-dLLM): every masked position of the current block above tau, at least one;
    with max_steps, at least ceil(masked / passes left) of the row, so a record takes at most
    max_steps passes (per row, so that a record's answer does not depend on its batch)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1] (a probability), got {threshold!r}")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
    blocks = _blocks(length, block_length)

    def policy(masked, passes):
        _, candidates = _current_block(masked, blocks)
        k = None
        if max_steps is not None:
            left = (max_steps - passes).clamp(min=1)
            k = (masked.sum(dim=1) + left - 1) // left
        return Plan(candidates, k, threshold)

    return policy


def one_shot_policy() -> Policy:
    """Everything at the first pass: the argmax at every position, from the all-[MASK] region."""
    return lambda masked, passes: Plan(masked, masked.sum(dim=1))


def streams_policy(fixed: torch.Tensor, streams: Sequence[tuple[int, int]]) -> Policy:
    """A fixed order, not chosen by confidence: the `fixed` positions (BoolTensor[L]) as soon as
    they are masked, and the leftmost masked position of each [start, end) stream, all
    committed. Slot filling is this with the JSON around the values as `fixed` and one stream per
    field (record_policy)."""
    streams = list(streams)

    def policy(masked, passes):
        candidates = masked & fixed.to(masked.device)[None, :]
        for lo, hi in streams:
            part = masked[:, lo:hi]
            first = part.long().argmax(dim=1)
            candidates[:, lo:hi].scatter_(1, first[:, None], part.any(dim=1, keepdim=True))
        return Plan(candidates, candidates.sum(dim=1))

    return policy


# ---------------------------------------------------------------------------- the loop


class Decoded(NamedTuple):
    """What `decode` wrote: the rows, and for each answer position when and how sure."""

    x: torch.Tensor  # LongTensor[B, T], the rows with their answers written
    step: torch.Tensor  # LongTensor[B, L], the 0-based pass that committed each answer position
    confidence: torch.Tensor  # float64[B, L], probability of the token when committed (NaN: closed)
    passes: torch.Tensor  # LongTensor[B], forward passes each row took


def _takes_at(model) -> bool:
    forward = getattr(model, "forward", None)
    return forward is not None and "at" in inspect.signature(forward).parameters


@torch.no_grad()
def decode(
    model,
    x: torch.Tensor,
    starts: Sequence[int],
    length: int,
    policy: Policy,
    *,
    mask_id: int,
    banned: Sequence[int] = (),
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    generators: Sequence[torch.Generator | None] | None = None,
    slots: Sequence[tuple[int, int]] | None = None,
    eos_id: int | None = None,
    left_pad: int | None = None,
) -> Decoded:
    """The one decoding loop: until every answer is written, a forward pass, the policy's Plan,
    commit_step.

    x: LongTensor[B, T], each row's answer at columns starts[r] .. starts[r] + length - 1, all
    [MASK] (and no [MASK] elsewhere). A row whose answer is written leaves the batch, so a batch
    costs what its rows need, not B times its slowest row's passes. A model whose forward takes
    `at` (unmasked.model.TransformerLM) runs its output layer only at the candidates. left_pad:
    the [PAD] id of left-padded rows, whose padding that no remaining row needs is cut (only for a
    model whose positions do not depend on where a row starts, as TransformerLM's).
    """
    B, T = x.shape
    device = x.device
    x = x.clone()
    columns = torch.tensor(list(starts), dtype=torch.long, device=device)[:, None] + torch.arange(
        length, device=device
    )
    if bool((x.gather(1, columns) != mask_id).any()) or int((x == mask_id).sum()) != B * length:
        raise ValueError("every answer position, and nothing else, must be [MASK] to begin with")
    step_of = torch.full((B, length), -1, dtype=torch.long, device=device)
    conf_of = torch.full((B, length), math.nan, dtype=torch.float64, device=device)
    passes = torch.zeros(B, dtype=torch.long, device=device)
    takes_at = _takes_at(model)
    live = torch.arange(B, device=device)
    with _eval_mode(model):
        while live.numel():
            rows, cols = x[live], columns[live]
            cut = 0
            if left_pad is not None:
                cut = int((rows != left_pad).long().argmax(dim=1).min())
                rows, cols = rows[:, cut:], cols - cut
            answer = rows.gather(1, cols)
            masked = answer == mask_id
            plan = policy(masked, passes[live])
            candidates = plan.candidates & masked
            at = torch.zeros_like(rows, dtype=torch.bool).scatter_(1, cols, candidates)
            logits = model(rows, at=at) if takes_at else _logits(model, rows)[at]
            out = commit_step(
                logits,
                answer,
                candidates,
                plan.k,
                plan.threshold,
                mask_id=mask_id,
                banned=banned,
                temperature=temperature,
                remasking=remasking,
                generators=None if generators is None else [generators[i] for i in live.tolist()],
                slots=slots,
                eos_id=eos_id,
            )
            x[live, cut:] = rows.scatter(1, cols, out.x)
            done = out.chosen | out.closed
            step_of[live] = torch.where(done, passes[live][:, None], step_of[live])
            conf_of[live] = torch.where(out.chosen, out.confidence, conf_of[live])
            passes[live] += 1
            if not bool(done.any(dim=1).all()):
                raise RuntimeError("a policy planned a pass that commits nothing in some row")
            live = live[(out.x == mask_id).any(dim=1)]
    return Decoded(x, step_of, conf_of, passes)


@torch.no_grad()
def generate_many(
    model,
    prompts: Sequence[Sequence[int]],
    length: int,
    steps: int,
    *,
    mask_id: int,
    pad_id: int | None = None,
    schedule: str = "linear",
    remasking: str = "low_confidence",
    block_length: int | None = None,
    temperature: float = 0.0,
    threshold: float | None = None,
    seed: int = 0,
    suffixes: Sequence[Sequence[int]] | None = None,
    banned: Sequence[int] = (),
) -> list[tuple[list[int], Trace]]:
    """`generate` for many prompts at once: one forward pass per step for the whole batch.

    Rows are laid out [prompt][MASK * length][suffix][PAD ...]. A model that ignores [PAD] keys and
    whose positions do not depend on where a row starts (unmasked.model with config.pad_id, and RoPE
    or positions counted from [SEP]) gives each row the same answer as `generate` would; `generate`
    is this at batch 1, where no row needs padding (pad_id may then be None). Each row draws its
    random numbers from its own generator seeded with `seed`, so it samples the same at any batch.
    It is `decode` with scheduled_policy, or threshold_policy when a threshold is given.
    Returns, per prompt, (prompt + generated ids + its suffix, Trace).
    """
    if not prompts:
        return []
    _check_settings(length, steps, schedule, remasking, threshold)
    suffixes = [[] for _ in prompts] if suffixes is None else [list(map(int, z)) for z in suffixes]
    if len(suffixes) != len(prompts):
        raise ValueError(f"need one suffix per prompt, got {len(suffixes)} for {len(prompts)}")
    device = _device_of(model, torch.device("cpu"))
    widths = [len(p) + length + len(z) for p, z in zip(prompts, suffixes)]
    B, T = len(prompts), max(widths)
    if pad_id is None and min(widths) != T:
        raise ValueError("rows of different lengths need a pad_id")
    x = torch.full((B, T), mask_id if pad_id is None else pad_id, dtype=torch.long, device=device)
    starts = []
    for i, (p, z) in enumerate(zip(prompts, suffixes)):
        if mask_id in p or mask_id in z:
            raise ValueError(
                f"prompt or suffix {i} contains mask_id; only the answer region may be masked"
            )
        row = list(map(int, p)) + [mask_id] * length + z
        x[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        starts.append(len(p))
    settings = dict(
        steps=steps,
        schedule=schedule,
        remasking=remasking,
        block_length=block_length,
        temperature=temperature,
        threshold=threshold,
        seed=seed,
    )
    policy = (
        scheduled_policy(length, steps, schedule, block_length)
        if threshold is None
        else threshold_policy(threshold, length, block_length)
    )
    out = decode(
        model,
        x,
        starts,
        length,
        policy,
        mask_id=mask_id,
        banned=banned,
        temperature=temperature,
        remasking=remasking,
        generators=[torch.Generator(device=device).manual_seed(seed) for _ in prompts],
    )
    block_size = length if block_length is None else block_length
    results = []
    for r, (p, z) in enumerate(zip(prompts, suffixes)):
        trace = Trace(
            prompt=list(map(int, p)),
            length=length,
            mask_id=mask_id,
            settings=dict(settings),
            suffix=z,
        )
        row, step, conf = out.x[r], out.step[r], out.confidence[r]
        for i in range(int(out.passes[r])):
            where = (step == i).nonzero().squeeze(-1)
            trace.steps.append(
                TraceStep(
                    (where + starts[r]).tolist(),
                    row[where + starts[r]].tolist(),
                    conf[where].tolist(),
                    int(where[0]) // block_size if where.numel() else 0,
                )
            )
        results.append((row[: widths[r]].tolist(), trace))
    return results


class BatchFill(NamedTuple):
    """What fill_batch wrote: the sequences, and for each answer position when and how sure."""

    x: torch.Tensor  # LongTensor[B, T], the rows with their answers written
    step: torch.Tensor  # LongTensor[B, L], the 0-based pass that committed each answer position
    confidence: torch.Tensor  # float64[B, L], the model's probability of the token when committed
    passes: torch.Tensor  # LongTensor[B], forward passes each row took


@torch.no_grad()
def fill_batch(
    model,
    prompts: Sequence[Sequence[int]],
    length: int,
    *,
    mask_id: int,
    pad_id: int,
    steps: int | None = None,
    threshold: float | None = None,
    banned: Sequence[int] = (),
) -> BatchFill:
    """Greedy low-confidence unmasking of `length` positions after each prompt, the whole batch at
    once.

    `decode` with rows left-padded ([PAD...][prompt][MASK * length]), so all answers share their
    columns; the tokens of `generate_many` with temperature 0, low_confidence remasking, a linear
    schedule and one block (tested). Fixed steps: every row commits num_transfer_tokens(length,
    steps) tokens per pass. threshold: every prediction above it, at least the best one
    (Fast-dLLM). banned: ids never proposed besides [MASK] (the record decoder bans [PAD] and [SEP]
    too).
    """
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if (steps is None) == (threshold is None):
        raise ValueError(
            "give exactly one of steps (a fixed budget of passes) and threshold (adaptive)"
        )
    if not prompts:
        raise ValueError("need at least one prompt")
    device = _device_of(model, torch.device("cpu"))
    B, P = len(prompts), max(len(p) for p in prompts)
    x = torch.full((B, P + length), pad_id, dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        if mask_id in p:
            raise ValueError(f"prompt {i} contains mask_id; only the answer region may be masked")
        x[i, P - len(p) : P] = torch.tensor(list(p), dtype=torch.long)
    x[:, P:] = mask_id
    policy = (
        scheduled_policy(length, min(steps, length))
        if steps is not None
        else threshold_policy(threshold, length)
    )
    out = decode(model, x, [P] * B, length, policy, mask_id=mask_id, banned=banned)
    return BatchFill(*out)


# ---------------------------------------------------------------------------- records

RECORD_METHODS = ("one_shot", "adaptive", "slots")


def record_policy(method: str, layout, vocab, threshold: float = 0.9, max_steps=None) -> Policy:
    """The policy of a record-filling method (RECORD_METHODS), over the layout's answer region.

    one_shot: one pass, the argmax everywhere.
    adaptive: every prediction above `threshold` at each pass, at least one (at least
      ceil(masked / passes left) with max_steps), Fast-dLLM's rule (Wu et al. 2025,
      arXiv:2505.22618).
    slots: the JSON around the values at the first pass, then at every pass the leftmost masked
      token of each of the six fields: six left-to-right streams, one per field, run together (a
      list's items one after another in their field's stream). Each value token is predicted with
      the token before it in place. The order is fixed, not chosen by confidence, so this is not
      LLaDA's semi-autoregressive mode, which picks the most confident tokens inside a block.
    """
    if method not in RECORD_METHODS:
        raise ValueError(f"method must be one of {RECORD_METHODS}, got {method!r}")
    if method == "one_shot":
        return one_shot_policy()
    if method == "adaptive":
        return threshold_policy(threshold, layout.length(vocab), max_steps=max_steps)
    fixed = torch.tensor(layout.slot_index(vocab)) < 0
    return streams_policy(fixed, [(lo, hi) for _, lo, hi in layout.field_spans(vocab)])


def record_bans(vocab) -> tuple[int, int]:
    """Ids a record decoder never proposes besides [MASK]: [PAD] and [SEP].

    Why: neither is ever a target in an answer ([PAD] is never scored, [SEP] only ends the prompt),
    so writing one could only be wrong. Every record decoder bans them, whichever sampler it uses,
    and so does the autoregressive twin (unmasked.autoregressive.banned_ids), so that they race on
    the same vocabulary.
    """
    return (vocab.pad_id, vocab.sep_id)


class RecordFill(NamedTuple):
    """What fill_records wrote, per prompt."""

    answers: list[list[int]]  # the answer region's ids
    passes: list[int]  # forward passes each record took
    step: list[list[int]]  # the pass that committed each answer position
    confidence: list[list[float]]  # the token's probability when committed (NaN: a closed slot)


@torch.no_grad()
def fill_records(
    model,
    vocab,
    layout,
    prompts: Sequence[Sequence[int]],
    method: str = "slots",
    *,
    threshold: float = 0.9,
    max_steps: int | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> RecordFill:
    """Fill an all-[MASK] record after each prompt with `decode` and the method's record_policy.

    Batches of `batch_size` rows, left-padded so that answers share their columns. [PAD] and [SEP]
    are never proposed (record_bans), and an [EOS] in a value slot closes the slot (commit_step).
    """
    policy = record_policy(method, layout, vocab, threshold, max_steps)
    slots = [(lo, hi) for _, lo, hi in layout.spans(vocab)]
    return fill_after(
        model,
        vocab,
        prompts,
        layout.length(vocab),
        policy,
        slots=slots,
        batch_size=batch_size,
        progress=progress,
        desc=f"filling ({method})",
    )


@torch.no_grad()
def fill_after(
    model,
    vocab,
    prompts: Sequence[Sequence[int]],
    length: int,
    policy: Policy,
    *,
    slots: Sequence[tuple[int, int]] | None = None,
    batch_size: int = 32,
    progress: bool = False,
    desc: str = "filling",
) -> RecordFill:
    """Fill a region of `length` [MASK] after each prompt with `decode` and `policy`: a record
    (fill_records, with its slots) or any other text, such as a hidden span (unmasked.spans).

    Batches of `batch_size` rows, left-padded so that answers share their columns; [PAD] and [SEP]
    are never proposed (record_bans).
    """
    from tqdm.auto import tqdm

    from unmasked.records import make_batch

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = _device_of(model, torch.device("cpu"))
    out = RecordFill([], [], [], [])
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, disable=not progress):
        chunk = [list(p) for p in prompts[start : start + batch_size]]
        x = make_batch([(p, [vocab.mask_id] * length) for p in chunk], vocab)[0].to(device)
        T = x.shape[1]
        got = decode(
            model,
            x,
            [T - length] * len(chunk),
            length,
            policy,
            mask_id=vocab.mask_id,
            banned=record_bans(vocab),
            slots=slots,
            eos_id=vocab.eos_id,
            left_pad=vocab.pad_id,
        )
        out.answers.extend(got.x[:, -length:].tolist())
        out.passes.extend(got.passes.tolist())
        out.step.extend(got.step.tolist())
        out.confidence.extend(got.confidence.tolist())
    return out


# ---------------------------------------------------------------------------- analysis


def json_char_roles(text: str) -> list[str]:
    """Role of each character of a JSON text: "key", "value" or "punctuation" (quotes, braces,
    commas, spaces).

    A string is a key when the next non-space character after it is ':'. Used to ask which
    parts of a record the sampler commits early.
    """
    roles = ["punctuation"] * len(text)
    i = 0
    while i < len(text):
        if text[i] == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            k = j + 1
            while k < len(text) and text[k].isspace():
                k += 1
            role = "key" if k < len(text) and text[k] == ":" else "value"
            for c in range(i + 1, min(j, len(text))):
                roles[c] = role
            i = j + 1
        else:
            if text[i] not in "{}[],: \t\n\r":
                roles[i] = "value"  # a bare number, true, false or null
            i += 1
    return roles


def json_token_roles(
    ids: Sequence[int], decode: Callable[[list[int]], str], special_ids: Sequence[int] = ()
) -> list[str]:
    """Role of each token of a JSON record ("key", "value", "punctuation"; "special" for eos etc.).

    decode(ids) -> text (e.g. Vocab.decode). A token takes the role of most of its characters.
    """
    special = set(int(s) for s in special_ids)
    plain = [int(t) for t in ids if int(t) not in special]
    text = decode(plain)
    char_roles = json_char_roles(text)
    out, start, n_plain = [], 0, 0
    for t in ids:
        if int(t) in special:
            out.append("special")
            continue
        n_plain += 1
        end = min(len(decode(plain[:n_plain])), len(text))
        span = char_roles[start:end] or ["punctuation"]
        out.append(max(("key", "value", "punctuation"), key=span.count))
        start = end
    return out


def commit_times(trace: Trace, kinds: Sequence[str]) -> list[dict]:
    """One row per generated position: its kind and when it was committed, from 0 (first step) to
    1 (last)."""
    if len(kinds) != trace.length:
        raise ValueError(f"need one kind per generated position ({trace.length}), got {len(kinds)}")
    last = max(trace.steps_used - 1, 1)
    return [
        {"position": p, "kind": k, "step": s, "when": s / last}
        for p, (k, s) in enumerate(zip(kinds, trace.commit_step()))
    ]


# ---------------------------------------------------------------------------- notebook 04
# experiments These take the toy model and its Vocab (unmasked.checkpoints.load_checkpoint) and
# short sessions.


def record_case(session, vocab, layout) -> tuple[torch.Tensor, list[int]]:
    """(prompt [1, P], target ids): the session then [SEP]; the target is its record in
    `layout`'s slots."""
    from unmasked.records import encode_example

    prompt, target = encode_example(session, vocab, layout)
    return torch.tensor([prompt]), target


def prose_case(session, vocab, length: int) -> tuple[torch.Tensor, list[int]]:
    """Free text of a given length, asked for as the span task asks (unmasked.spans): (prompt
    [1, P], the hidden span).

    The middle `length` tokens of the session are cut out, one [UNK] marks the hole, and the model
    writes them after [SEP], where it writes a record otherwise. Only a model trained on span
    filling (`python -m unmasked.train --span-task`) knows to; a record-only model writes a record.
    """
    from unmasked.spans import middle_span

    prompt, hidden = middle_span(session, vocab, length)
    return torch.tensor([prompt]), hidden


def adaptive_steps(
    model, vocab, layout, sessions, threshold: float = 0.9, progress: bool = True
) -> list[dict]:
    """Steps needed at threshold tau for each session's JSON record and for free text of the same
    length.

    Both regions have the layout's length (the record's slots), so the only difference is the kind
    of text; every session must be long enough to hide that much (unmasked.spans.
    sessions_long_enough picks those), and the model must have been trained on both tasks for the
    comparison to mean anything (prose_case).
    For the record, scaffold_done_at / values_done_at give the step after which every key and
    punctuation token / every value token was committed (0 if there was none).
    """
    from tqdm.auto import tqdm

    specials = (vocab.pad_id, vocab.mask_id, vocab.eos_id, vocab.unk_id, vocab.sep_id)
    bans = record_bans(vocab)  # neither is in session text either
    rows = []
    for s in tqdm(sessions, desc=f"adaptive tau={threshold}", disable=not progress):
        prompt, target = record_case(s, vocab, layout)
        L = len(target)
        out, trace = generate(
            model, prompt, L, L, mask_id=vocab.mask_id, threshold=threshold, banned=bans
        )
        written = out[0, prompt.shape[1] :].tolist()
        kinds = json_token_roles(trace.tokens(), vocab.decode, specials)
        done = {
            kind: 1 + max((c for c, k in zip(trace.commit_step(), kinds) if k in group), default=-1)
            for kind, group in (("scaffold", ("key", "punctuation")), ("values", ("value",)))
        }
        rows.append(
            {
                "session": s.id,
                "text": "JSON record",
                "length": L,
                "steps": trace.steps_used,
                "exact": written == target,
                "tokens_right": sum(a == b for a, b in zip(written, target)) / L,
                "scaffold_done_at": done["scaffold"],
                "values_done_at": done["values"],
            }
        )
        prompt, hidden = prose_case(s, vocab, L)
        out, trace = generate(
            model, prompt, L, L, mask_id=vocab.mask_id, threshold=threshold, banned=bans
        )
        written = out[0, prompt.shape[1] :].tolist()
        rows.append(
            {
                "session": s.id,
                "text": "free text",
                "length": L,
                "steps": trace.steps_used,
                "exact": written == hidden,
                "tokens_right": sum(a == b for a, b in zip(written, hidden)) / L,
            }
        )
    return rows


def commit_order(
    model, vocab, layout, sessions, steps: int | None = None, progress: bool = True
) -> list[dict]:
    """When each token of each generated record was committed, with its kind (key, value,
    punctuation, special).

    The record region is the layout's slots; steps=None means one token per step,
    the finest ordering. Kinds come from the generated text itself (json_token_roles).
    """
    from tqdm.auto import tqdm

    specials = (vocab.pad_id, vocab.mask_id, vocab.eos_id, vocab.unk_id, vocab.sep_id)
    rows = []
    for s in tqdm(sessions, desc="commit order", disable=not progress):
        prompt, target = record_case(s, vocab, layout)
        L = len(target)
        _, trace = generate(
            model, prompt, L, steps or L, mask_id=vocab.mask_id, banned=record_bans(vocab)
        )
        kinds = json_token_roles(trace.tokens(), vocab.decode, specials)
        pieces = [vocab.token_str(t) for t in trace.tokens()]
        for row, piece in zip(commit_times(trace, kinds), pieces):
            rows.append({"session": s.id, **row, "token": piece})
    return rows


@torch.no_grad()
def first_pass_confidence(model, vocab, layout, sessions, progress: bool = True) -> list[dict]:
    """The model's probability of its own prediction at every record position, before anything is
    committed.

    One forward pass per session over the fully masked record: the scores that low-confidence
    remasking ranks at its first step. "doubt" is 1 - probability (float64), where the
    differences between near-certain kinds show. Kinds come from the gold record (json_token_roles).
    """
    from tqdm.auto import tqdm

    specials = (vocab.pad_id, vocab.mask_id, vocab.eos_id, vocab.unk_id, vocab.sep_id)
    device = _device_of(model, torch.device("cpu"))
    rows = []
    with _eval_mode(model):
        for s in tqdm(sessions, desc="first-pass confidence", disable=not progress):
            prompt, target = record_case(s, vocab, layout)
            x = torch.cat([prompt[0], torch.full((len(target),), vocab.mask_id)]).to(device)
            logits = _logits(model, x[None])[0, -len(target) :].to(torch.float64)
            logits[:, [vocab.mask_id, *record_bans(vocab)]] = -math.inf  # never proposed
            prob = F.softmax(logits, dim=-1).max(dim=-1).values.tolist()
            kinds = json_token_roles(target, vocab.decode, specials)
            rows += [
                {"session": s.id, "position": i, "kind": k, "confidence": p, "doubt": 1.0 - p}
                for i, (k, p) in enumerate(zip(kinds, prob))
            ]
    return rows


def quality_vs_steps(
    model,
    vocab,
    layout,
    sessions,
    ks: Sequence[int],
    schedules: Sequence[str] = SCHEDULES,
    batch_size: int = 16,
    progress: bool = True,
) -> list[dict]:
    """Field exact match (%) of records filled with K steps, for each K and schedule.

    accuracy: the mean over the six fields of the share of sessions with that field exactly right;
    all_fields: the share of sessions with every field right. Greedy (temperature 0), so no seed
    noise.
    """
    from tqdm.auto import tqdm

    from unmasked.records import FIELDS, answer_text, field_accuracy

    answer_len = layout.length(vocab)
    cases = [record_case(s, vocab, layout)[0][0].tolist() for s in sessions]
    records = [s.record for s in sessions]
    rows = []
    runs = [(schedule, k) for schedule in schedules for k in ks]
    for schedule, k in tqdm(runs, desc="K x schedule", disable=not progress):
        texts = []
        for i in range(0, len(cases), batch_size):
            chunk = cases[i : i + batch_size]
            outs = generate_many(
                model,
                chunk,
                answer_len,
                k,
                mask_id=vocab.mask_id,
                pad_id=vocab.pad_id,
                schedule=schedule,
                banned=record_bans(vocab),
            )
            texts += [answer_text(ids[len(p) :], vocab) for p, (ids, _) in zip(chunk, outs)]
        acc = field_accuracy(texts, records)
        rows.append(
            {
                "schedule": schedule,
                "K": min(k, answer_len),
                "accuracy": 100 * sum(acc[f] for f in FIELDS) / len(FIELDS),
                "all_fields": 100 * acc["all"],
            }
        )
    return rows


def smallest_k_within(
    rows: Sequence[dict], schedule: str, full_k: int, points: float = 2.0
) -> int | None:
    """The smallest K whose accuracy is within `points` of K = full_k (one token per step), or
    None."""
    by_k = {r["K"]: r["accuracy"] for r in rows if r["schedule"] == schedule}
    if full_k not in by_k:
        return None
    return min(k for k, a in by_k.items() if a >= by_k[full_k] - points)


# ---------------------------------------------------------------------------- confidence and tau

TAUS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def reliability_curve(
    confidence: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[dict]:
    """Committed-token confidence against correctness, in `bins` equal-width bins of confidence.

    One dict per non-empty bin: its [lo, hi) range (the last bin includes 1.0), n, the mean
    confidence and the share correct. A calibrated model's points lie on the diagonal; points
    below it are tokens committed with more confidence than they deserve.
    """
    if len(confidence) != len(correct):
        raise ValueError(
            f"need one correctness per confidence, got {len(confidence)} and {len(correct)}"
        )
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    if any(not 0.0 <= c <= 1.0 for c in confidence):
        raise ValueError("confidences must be probabilities in [0, 1]")
    groups: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for c, ok in zip(confidence, correct):
        groups[min(int(c * bins), bins - 1)].append((float(c), bool(ok)))
    return [
        {
            "lo": i / bins,
            "hi": (i + 1) / bins,
            "n": len(g),
            "confidence": sum(c for c, _ in g) / len(g),
            "accuracy": sum(ok for _, ok in g) / len(g),
        }
        for i, g in enumerate(groups)
        if g
    ]


def calibration_error(curve: Sequence[dict]) -> float:
    """Expected calibration error of a reliability curve: |accuracy - confidence| weighted by
    tokens."""
    n = sum(b["n"] for b in curve)
    if not n:
        raise ValueError("an empty reliability curve has no calibration error")
    return sum(b["n"] * abs(b["accuracy"] - b["confidence"]) for b in curve) / n


def tau_sweep(
    model,
    vocab,
    layout,
    sessions,
    taus: Sequence[float] = TAUS,
    batch_size: int = 32,
    keep_tokens: bool = False,
    progress: bool = False,
) -> list[dict]:
    """Forward passes per record against record accuracy, as the adaptive threshold tau moves.

    Each record is written by the adaptive record method (fill_records, the record decoder of
    every other figure). Per tau: passes (mean, median, max per record), mean field exact match (%)
    and the share of records with every field right (%). keep_tokens adds, for the reliability
    curve, the confidence of every token the model committed (not the [EOS] filler that closes a
    slot), whether it equals the gold record's token there, and whether the position is in a value
    slot (in_slot) rather than the JSON around the values.
    """
    from tqdm.auto import tqdm

    from unmasked.records import FIELDS, answer_text, encode_example, field_accuracy

    if not sessions:
        raise ValueError("need at least one session")
    if any(not 0.0 <= t <= 1.0 for t in taus):
        raise ValueError(f"every tau must be in [0, 1], got {list(taus)}")
    cases = [encode_example(s, vocab, layout) for s in sessions]
    slot_of = [i >= 0 for i in layout.slot_index(vocab)]
    rows = []
    for tau in tqdm(list(taus), desc="tau sweep", disable=not progress):
        out = fill_records(
            model,
            vocab,
            layout,
            [p for p, _ in cases],
            "adaptive",
            threshold=tau,
            batch_size=batch_size,
        )
        texts = [answer_text(w, vocab) for w in out.answers]
        passes = out.passes
        conf, correct, in_slot = [], [], []
        if keep_tokens:
            for w, (_, gold), cs in zip(out.answers, cases, out.confidence):
                for a, b, c, s in zip(w, gold, cs, slot_of):
                    if not math.isnan(c):
                        conf.append(c)
                        correct.append(a == b)
                        in_slot.append(s)
        acc = field_accuracy(texts, [s.record for s in sessions])
        rows.append(
            {
                "tau": tau,
                "passes_mean": sum(passes) / len(passes),
                "passes_median": statistics.median(passes),
                "passes_max": max(passes),
                "accuracy": 100 * sum(acc[k] for k in FIELDS) / len(FIELDS),
                "all_fields": 100 * acc["all"],
                **(
                    {"confidence": conf, "correct": correct, "in_slot": in_slot}
                    if keep_tokens
                    else {}
                ),
            }
        )
    return rows
