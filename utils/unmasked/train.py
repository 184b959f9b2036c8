"""Train the toy masked diffusion LM to write a session's JSON record, and score it.

The job: given a short agent session (the prompt, never masked) and a [SEP], fill an answer
region of [MASK] tokens with the record `{"task": ..., "database": ..., ...}`, each value in a
fixed-width slot padded with [EOS] (RecordLayout). Training masks a random fraction t of the
answer and scores only the masked positions, weighted by 1/t (unmasked.masking); this is
LLaDA's supervised fine-tuning recipe applied from scratch.

    python -m unmasked.train --out data/checkpoints     # what `make checkpoint` runs
    python -m unmasked.train --eval-only --eval-n 500   # score the shipped checkpoint
    python -m unmasked.train --eval-only --eval-n 500 --update-report \
        --methods one_shot,adaptive:0.5,adaptive:0.9,adaptive:0.99,slots   # its report's table
    python -m unmasked.train --arch autoregressive      # the causal twin (`make checkpoint-ar`)
    python -m unmasked.train ... --stop-after 7000      # a long run, one sitting at a time:
    python -m unmasked.train --resume --arch autoregressive --out DIR   # ... and go on with it
    python -m unmasked.train --progress FILE.json --arch autoregressive --out DIR  # where it stands

Records are filled by chapter 04's sampler (unmasked.sampling.fill_records: each method a policy
over one decoding loop and one commit rule), and every score comes with its forward passes per
record.

The autoregressive twin is the same model with a causal mask, trained on the same examples and
batches with next-token cross-entropy on the answer (unmasked.autoregressive); it writes
autoregressive.pt and its report beside diffusion.pt.

A checkpoint is a plain dict (config, vocab as lists of ints, state_dict, meta), so that
`torch.load(..., weights_only=True)` reads it without unpickling any code.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import random
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from unmasked.autoregressive import decode_records, next_token_loss

# Re-exported: notebooks, labs and tests import these from here.
from unmasked.checkpoints import (  # noqa: F401
    CHECKPOINT_FORMAT,
    DEFAULT_AR_CHECKPOINT,
    DEFAULT_CHECKPOINT,
    REBUILD_HINT,
    REPO_ROOT,
    SPAN_CHECKPOINTS,
    CheckpointError,
    load_checkpoint,
    same_corpus,
    save_checkpoint,
)
from unmasked.env import describe_machine, pick_device, seed_everything
from unmasked.masking import (
    WEIGHTINGS,
    mask_tokens,
    masked_diffusion_loss,
    sample_t,
)
from unmasked.model import ModelConfig, TransformerLM
from unmasked.records import (  # noqa: F401  (re-exported, as above)
    _LIST_FIELD,
    _STRING_FIELD,
    FIELDS,
    RecordLayout,
    _value_json,
    _value_pieces,
    answer_text,
    build_vocab,
    encode_example,
    encode_prompt,
    field_accuracy,
    make_batch,
    parse_record_fields,
)
from unmasked.sampling import RECORD_METHODS, fill_records
from unmasked.spans import evaluate_spans, is_span_row, sessions_long_enough, span_examples
from unmasked.vocab import Vocab

TARGET_ACCURACY = 0.9  # issue #4: the shipped checkpoint should reach this on every field


# ---------------------------------------------------------------------------- training data


def sampler_order_mask(
    answers: torch.Tensor,
    layout: RecordLayout,
    vocab: Vocab,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Masks under which each field looks as the slots sampler leaves it half-way: (B, A) bool, True
    = masked.

    The JSON around the values is visible. Each field is cut after a number of its own sampler
    steps drawn uniformly (one step per value token, one for the [EOS] that closes a slot and
    brings its filler), independently of the other fields; the sampler cuts them all at the same
    step. A list's items count as one field, written in turn.
    Why: masks drawn token by token at rate t almost never show a whole first file path next to
    a fully masked second one (for 7-token paths, about 1 draw in 50,000), yet that is what the
    sampler asks the model to continue. Clean earlier tokens beside a masked current block is
    the idea of Block Diffusion (Arriola et al. 2025, arXiv:2503.09573).
    """
    B, A = answers.shape
    if A != layout.length(vocab):
        raise ValueError(f"answers have {A} positions, the layout {layout.length(vocab)}")
    answers = answers.cpu()
    eos = answers == vocab.eos_id
    is_step = ~eos  # value tokens, and the first [EOS] of each slot
    for _, lo, hi in layout.spans(vocab):
        is_step[:, lo] = True
        is_step[:, lo + 1 : hi] |= eos[:, lo + 1 : hi] & ~eos[:, lo : hi - 1]
    masked = torch.zeros((B, A), dtype=torch.bool)
    for _, lo, hi in layout.field_spans(vocab):
        step = (
            is_step[:, lo:hi].long().cumsum(dim=1) - 1
        )  # the sampler step that writes each position
        n = step[:, -1] + 1
        cut = (torch.rand(B, generator=generator) * (n + 1)).long().clamp(max=n)
        masked[:, lo:hi] = step >= cut[:, None]
    return masked


def extra_training_sessions(
    n: int,
    vocab: Vocab,
    layout: RecordLayout,
    prompt_room: int | None = None,
    held_out=None,
    path=None,
) -> tuple[list, list]:
    """(sessions, encoded examples): n more, drawn from the committed corpus's seed after its
    training ones.

    Why: 20,000 sessions, each seen dozens of times, teach the model their file orders by heart (see
    data/bench/memorisation_efbafc2.json: files right far more often on training sessions than on
    held-out ones); sessions it has never seen make it read the order off the text instead.

    A session that repeats a held-out text (of the whole test split, or of `held_out` if given), or
    that the corpus's vocabulary or slots cannot hold (or whose prompt is longer than prompt_room,
    if given), is skipped and the next index taken, so the lists have n items (or a ValueError says
    that too few sessions fit). The examples come back too, because checking the fit encodes them.
    """
    from unmasked.sessions import generate_short_sessions, load_short_sessions
    from unmasked.sessions.store import MANIFEST, SHORT_FILES, resolve_dir

    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if n == 0:  # the default: no manifest or held-out split to read
        return [], []
    folder = resolve_dir(path)
    manifest = json.loads((folder / MANIFEST).read_text())
    seed, start = manifest["seed"], manifest["files"][SHORT_FILES["train"]]["count"]
    test = held_out if held_out is not None else load_short_sessions("test", path=path)
    banned = {s.text for s in test}
    out: list = []
    examples: list = []
    tried = 0
    while len(out) < n:
        if tried > 10 * n + 1000:
            raise ValueError(
                f"only {len(out)} of {tried} generated sessions fit this vocabulary and these slots"
            )
        batch = generate_short_sessions(n - len(out), seed, start=start)
        start, tried = start + len(batch), tried + len(batch)
        for s in batch:
            if s.text in banned:
                continue
            try:
                prompt, answer = encode_example(s, vocab, layout)
            except ValueError:  # a value longer than its slots
                continue
            fits = prompt_room is None or len(prompt) <= prompt_room
            if fits and vocab.unk_id not in prompt and vocab.unk_id not in answer:
                out.append(s)
                examples.append((prompt, answer))
    return out, examples


def batches(n: int, batch_size: int, lengths: list[int], rng: random.Random):
    """Endless index batches: shuffled, then grouped by similar length to waste little padding.

    Only full batches are yielded, so n must be at least batch_size: with fewer examples no
    batch would ever be full and the stream would never yield. That is checked here, at the
    call, not at the first next().
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n < batch_size:
        raise ValueError(
            f"{n} training examples cannot fill a batch of {batch_size}: use a "
            "smaller batch size (--batch-size, BATCH_SIZE) or more examples "
            "(--limit, N_TRAIN)"
        )
    if len(lengths) != n:
        raise ValueError(f"need one length per example: {len(lengths)} lengths for {n} examples")
    return _batch_stream(n, batch_size, lengths, rng)


def bucket_length(prompt: list[int], answer: list[int], vocab: Vocab) -> int:
    """The length batches() groups an example by: its own, but a span row's with the hole filled.

    Why: a span row's prompt is shorter than its session by the hidden tokens, so by its own
    length it would fall among other span rows only, and the two tasks would never share a
    batch; alternating whole batches of each swings the model between them. With the hole
    filled, it counts as long as its session's record row.
    """
    if vocab.unk_id in prompt:  # the hole marker (unmasked.spans)
        return len(prompt) - 1 + len(answer) - answer.count(vocab.eos_id) + len(answer)
    return len(prompt) + len(answer)


def _batch_stream(n: int, batch_size: int, lengths: list[int], rng: random.Random):
    while True:
        order = list(range(n))
        rng.shuffle(order)
        chunk = batch_size * 32
        out = []
        for start in range(0, n, chunk):
            group = sorted(order[start : start + chunk], key=lambda i: lengths[i])
            out += [group[j : j + batch_size] for j in range(0, len(group), batch_size)]
        rng.shuffle(out)
        yield from (b for b in out if len(b) == batch_size)


# ---------------------------------------------------------------------------- training


ARCHS = ("diffusion", "autoregressive")


@dataclass
class TrainConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    max_len: int = 640
    batch_size: int = 16
    steps: int = 7500
    time_budget_s: float | None = None  # stop early (and decay the lr by elapsed time) if set
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    t_floor: float = 0.1
    weighting: str = "inverse_t"
    sampler_frac: float = (
        0.0  # share of each batch masked by sampler_order_mask instead of at rate t
    )
    prompt_room: int = 384  # the longest prompt ([SEP] included) the model's position table takes
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    arch: str = "diffusion"  # or "autoregressive": the causal twin, next-token loss (ARCHS)
    span_task: bool = False  # also train on span filling (unmasked.spans), one row per session
    span_weight: float = 1.0  # each span row's loss times this (the record rows' times 1)
    autocast: str | None = None  # "bfloat16": matmuls in bf16, weights and loss in float32

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.arch == "autoregressive" and self.sampler_frac:
            raise ValueError(
                "sampler_frac masks the answer for the diffusion model; the autoregressive twin "
                "has no masks"
            )
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if not 0 < self.prompt_room < self.max_len:
            raise ValueError(
                f"prompt_room must be in (0, max_len={self.max_len}), got {self.prompt_room}"
            )
        if not self.span_weight > 0:
            raise ValueError(f"span_weight must be > 0, got {self.span_weight}")
        if not 0.0 <= self.sampler_frac <= 1.0:
            raise ValueError(f"sampler_frac must be in [0, 1], got {self.sampler_frac}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.autocast not in (None, "bfloat16"):
            raise ValueError(f"autocast must be None or 'bfloat16', got {self.autocast!r}")


# Model size and length of training for `make checkpoint`. The gpu preset keeps the model size, so
# the checkpoint costs a laptop the same to run whichever machine trained it, and takes 8x bigger
# batches. How long each took for the shipped checkpoint's stages: data/checkpoints/diffusion.md.
# TrainConfig's defaults equal the cpu preset.
PRESETS = {
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, batch_size=16, steps=7500),
    "gpu": dict(n_layer=4, n_head=4, n_embd=128, batch_size=128, steps=3500),
}


def sized_for(cfg: TrainConfig, examples) -> TrainConfig:
    """cfg with prompt_room and max_len fitted to (prompt, answer) examples that share one layout.

    prompt_room is the longest prompt plus 32 tokens (a held-out session may be a little longer),
    rounded up to a multiple of 8; the answer follows it.
    """
    if not examples:
        raise ValueError("sized_for needs at least one (prompt, answer) example")
    if len({len(a) for _, a in examples}) != 1:
        raise ValueError("every answer must have the same length (one RecordLayout)")
    prompt_room = 8 * math.ceil((max(len(p) for p, _ in examples) + 32) / 8)
    return replace(cfg, prompt_room=prompt_room, max_len=prompt_room + len(examples[0][1]))


def lr_at(progress: float, cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay from lr to min_lr as progress goes 0 -> 1."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def new_model(vocab: Vocab, cfg: TrainConfig) -> TransformerLM:
    """A fresh model whose learned positions put [SEP] at prompt_room - 1 and the answer after it.

    cfg.arch="autoregressive" makes it causal: the same code and size, the twin of the diffusion
    model.
    """
    mc = ModelConfig(
        vocab_size=vocab.size,
        max_len=cfg.max_len,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        pad_id=vocab.pad_id,
        anchor_id=vocab.sep_id,
        anchor_pos=cfg.prompt_room - 1,
        causal=cfg.arch == "autoregressive",
    )
    return TransformerLM(mc)


def diffusion_step_loss(
    model,
    ids,
    answer,
    lengths,
    vocab,
    cfg: TrainConfig,
    gen: torch.Generator,
    layout: RecordLayout | None = None,
):
    """One training loss: mask the answer at a random t per sequence, score the masked tokens.

    With cfg.sampler_frac > 0 (and the layout given), that share of the rows is masked by
    sampler_order_mask instead; its t is the fraction it masked, so that 1/t weighs every row's
    loss as its mean over the masked tokens, as it does on average for the others.

    t and the masks are drawn on the CPU from `gen` (a CPU generator), then moved to the model's
    device: a CUDA tensor cannot be drawn from a CPU generator, and this way the same seed draws
    the same masks on every device.
    """
    device = next(model.parameters()).device
    ids, answer = ids.cpu(), answer.cpu()
    t = sample_t(ids.shape[0], cfg.t_floor, generator=gen)
    noisy, is_masked = mask_tokens(ids, t, vocab.mask_id, maskable=answer, generator=gen)
    if cfg.sampler_frac > 0:
        if layout is None:
            raise ValueError("sampler_frac > 0 needs the record layout")
        rows = torch.rand(ids.shape[0], generator=gen) < cfg.sampler_frac
        rows &= ~is_span_row(ids, vocab)  # sampler order is the record's slots; a span has none
        if bool(rows.any()):
            A = layout.length(vocab)
            ordered = sampler_order_mask(ids[rows, -A:], layout, vocab, generator=gen)
            is_masked[rows, -A:] = ordered
            noisy = torch.where(is_masked, torch.full_like(ids, vocab.mask_id), ids)
            t[rows] = (ordered.sum(dim=1) / A).clamp(min=1 / A)
    logits = model(noisy.to(device))
    # a row's term is divided by its length, so dividing that by a weight weighs the row
    lengths = lengths.float() / row_weights(ids, vocab, cfg)
    return masked_diffusion_loss(
        logits,
        ids.to(device),
        is_masked.to(device),
        t.to(device),
        lengths=lengths.to(device),
        weighting=cfg.weighting,
    )


def row_weights(ids: torch.Tensor, vocab: Vocab, cfg: TrainConfig) -> torch.Tensor:
    """(B,) loss weight per row: cfg.span_weight for span rows, 1 for records.

    Why: a record the model already writes costs almost nothing (loss near 0.001), while prose
    costs nats per token, so an unweighted span row pulls the shared weights far harder than a
    record row holds them, and the record is forgotten before spans are learned.
    """
    w = torch.ones(ids.shape[0])
    if cfg.span_weight != 1.0:
        w[is_span_row(ids.cpu(), vocab)] = cfg.span_weight
    return w


@dataclass
class TrainRun:
    """A training run spread over sittings: what the next one needs to go on exactly.

    train_model appends to history and sets opt and gen (the live optimizer and mask generator),
    so a caller can save them mid-run (state()); opt_state and gen_state come from a saved run
    and are loaded when training starts.
    """

    history: list[dict] = field(default_factory=list)
    opt_state: dict | None = None
    gen_state: torch.Tensor | None = None
    opt: torch.optim.Optimizer | None = None
    gen: torch.Generator | None = None
    stopped_by: str | None = None  # "stop_after" when the sitting ended before the run did

    def state(self) -> dict:
        """What to save: plain dicts, lists and tensors, for weights_only loading."""
        return {
            "history": self.history,
            "opt": self.opt.state_dict() if self.opt is not None else self.opt_state,
            "gen": self.gen.get_state() if self.gen is not None else self.gen_state,
        }

    @classmethod
    def from_state(cls, state: dict) -> TrainRun:
        return cls(history=list(state["history"]), opt_state=state["opt"], gen_state=state["gen"])


def train_model(
    model: TransformerLM,
    vocab: Vocab,
    examples,
    cfg: TrainConfig,
    *,
    on_step=None,
    progress: bool = True,
    history: list | None = None,
    layout: RecordLayout | None = None,
    run: TrainRun | None = None,
    stop_after_s: float | None = None,
) -> list[dict]:
    """Train in place; `on_step(step, loss, elapsed)` is called every step (plots, evals, saves).

    Time spent inside on_step is not training time: it counts neither towards `seconds` (so
    tokens/s is the training speed) nor towards the time budget.

    Returns the history (appended to `history` if given): one dict per step with loss, lr,
    tokens and seconds so far. `layout` is needed when cfg.sampler_frac > 0.

    A run longer than one sitting passes a TrainRun: training goes on from its history, optimizer
    and mask generator exactly where they stopped, replaying the batch order up to there, and
    stop_after_s (seconds of training in this sitting) ends the sitting without shortening the
    run, whose learning rate goes by steps.
    """
    from tqdm.auto import tqdm

    if cfg.sampler_frac > 0 and layout is None:
        raise ValueError(
            "cfg.sampler_frac > 0 needs the record layout: train_model(..., layout=layout)"
        )
    if bool(getattr(model.config, "causal", False)) != (cfg.arch == "autoregressive"):
        raise ValueError(
            f"cfg.arch={cfg.arch!r} does not fit a model with causal={model.config.causal}"
        )
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device or pick_device().device)
    if (
        device.type == "cuda"
    ):  # TF32 matrix units: several times the float32 rate, ample precision here
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model.to(device).train()
    opt = torch.optim.AdamW(model.optimizer_groups(cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95))
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    lengths = [bucket_length(p, t, vocab) for p, t in examples]
    stream = batches(len(examples), cfg.batch_size, lengths, rng)
    if run is not None:
        if history is not None and history is not run.history:
            raise ValueError("pass the history inside the TrainRun, not beside it")
        history = run.history
        if run.opt_state is not None:
            opt.load_state_dict(run.opt_state)
        if run.gen_state is not None:
            gen.set_state(run.gen_state)
        run.opt, run.gen = opt, gen
        for _ in history:  # the batches already trained on, in the order they came
            next(stream)
    history = [] if history is None else history
    first = len(history)
    tokens = history[-1]["tokens"] if history else 0
    earlier = history[-1]["seconds"] if history else 0.0  # training seconds of earlier sittings
    start, paused = time.perf_counter(), 0.0
    amp = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if cfg.autocast == "bfloat16"
        else contextlib.nullcontext()
    )
    bar = tqdm(total=cfg.steps, initial=first, desc="training", disable=not progress)
    for step in range(first, cfg.steps):
        sitting = time.perf_counter() - start - paused
        elapsed = earlier + sitting
        if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s:
            break
        if stop_after_s is not None and sitting >= stop_after_s:
            if run is not None:
                run.stopped_by = "stop_after"
            break
        prog = step / cfg.steps
        if cfg.time_budget_s:
            prog = max(prog, elapsed / cfg.time_budget_s)
        lr = lr_at(prog, cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        ids, answer, lens = make_batch([examples[i] for i in next(stream)], vocab)
        with amp:
            if cfg.arch == "autoregressive":  # the same batches, scored left to right
                weight = row_weights(ids, vocab, cfg) if cfg.span_weight != 1.0 else None
                loss = next_token_loss(model, ids.to(device), answer.to(device), weight)
            else:
                loss = diffusion_step_loss(model, ids, answer, lens, vocab, cfg, gen, layout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        tokens += ids.numel()
        elapsed = earlier + time.perf_counter() - start - paused
        # tokens: every position of the padded batch, prompt included, as processed by forward and
        # backward
        history.append(
            {"step": step + 1, "loss": loss.item(), "lr": lr, "tokens": tokens, "seconds": elapsed}
        )
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens / max(elapsed, 1e-9):.0f}")
        if on_step is not None:
            before = time.perf_counter()
            on_step(step + 1, loss.item(), elapsed)
            paused += time.perf_counter() - before
    bar.close()
    model.eval()
    return history


# ---------------------------------------------------------------------------- filling and scoring


def _answer_batch(prompts: list[list[int]], answer_len: int, vocab: Vocab) -> torch.Tensor:
    """[PAD...][prompt][MASK x answer_len] rows: the answer is always the last answer_len
    columns."""
    return make_batch([(p, [vocab.mask_id] * answer_len) for p in prompts], vocab)[0]


FILL_METHODS = RECORD_METHODS  # one_shot, adaptive, slots: unmasked.sampling.record_policy


def fill_answers(
    model,
    vocab: Vocab,
    prompts: list[list[int]],
    layout: RecordLayout,
    method: str = "slots",
    threshold: float = 0.9,
    batch_size: int = 32,
    progress: bool = False,
    max_steps: int | None = None,
) -> list[list[int]]:
    """Fill an all-[MASK] record after each prompt; return the answer ids (the whole region).

    The record decoder of chapter 04's sampler: unmasked.sampling.fill_records, which runs the
    method's policy (record_policy: one_shot, adaptive at `threshold`, slots) through the same
    loop and commit rule as `generate`. Kept here because notebooks and labs call it by this name.
    """
    return fill_records(
        model,
        vocab,
        layout,
        prompts,
        method,
        threshold=threshold,
        max_steps=max_steps,
        batch_size=batch_size,
        progress=progress,
    ).answers


FILES_MISS_KINDS = (
    "right",
    "right paths, wrong order",
    "a path written twice",
    "a path the session did not change",
    "a changed path left out",
    "unreadable",
)


def files_miss_kind(text: str, gold: list[str]) -> str:
    """The kind (of FILES_MISS_KINDS) of a written `files` list: the first that applies, in that
    order."""
    got = parse_record_fields(text)["files"]
    if got is None:
        return "unreadable"
    paths = got.split(", ") if got else []
    if paths == gold:
        return "right"
    if sorted(paths) == sorted(gold):
        return "right paths, wrong order"
    if len(set(paths)) < len(paths):
        return "a path written twice"
    if set(paths) - set(gold):
        return "a path the session did not change"
    return "a changed path left out"


def files_miss_kinds(texts: list[str], records: list[dict]) -> dict[str, int]:
    """How many written `files` lists are of each kind: what kind of wrong the misses are."""
    if len(texts) != len(records):
        raise ValueError(f"need as many texts as records, got {len(texts)} and {len(records)}")
    counts = dict.fromkeys(FILES_MISS_KINDS, 0)
    for text, record in zip(texts, records):
        counts[files_miss_kind(text, record["files"])] += 1
    return counts


def files_misses_by_length(texts: list[str], records: list[dict]) -> dict[int, dict[str, int]]:
    """files_miss_kinds per number of changed files: {n files: {kind: count}}, n ascending.

    Why split: a one-file record cannot come out in the wrong order, a three-file one can.
    """
    if len(texts) != len(records):
        raise ValueError(f"need as many texts as records, got {len(texts)} and {len(records)}")
    out = {}
    for n in sorted({len(r["files"]) for r in records}):
        picked = [(t, r) for t, r in zip(texts, records) if len(r["files"]) == n]
        out[n] = files_miss_kinds([t for t, _ in picked], [r for _, r in picked])
    return out


def method_label(r: dict) -> str:
    """A result's method as a table shows it: adaptive with its tau."""
    if r["method"] == "adaptive" and r.get("threshold") is not None:
        return f"adaptive tau={r['threshold']:g}" + (
            f" (at most {r['max_steps']} passes)" if r.get("max_steps") else ""
        )
    return r["method"]


def evaluate(
    model,
    vocab: Vocab,
    sessions,
    layout: RecordLayout,
    method: str = "slots",
    threshold: float = 0.9,
    batch_size: int = 32,
    progress: bool = False,
    max_steps: int | None = None,
    keep_texts: bool = False,
) -> dict:
    """Fill each session's record from a fully masked region and score it field by field.

    Forward passes per record (mean, median, max) stand beside the accuracy: what the figure cost.
    keep_texts: also return every written record ("texts"), for a closer look at the misses.
    method="autoregressive" writes it left to right with a causal model (the twin), one token a
    pass.
    """
    prompts = [encode_prompt(s, vocab) for s in sessions]
    start = time.perf_counter()
    if method == "autoregressive":
        answers = decode_records(model, vocab, prompts, layout, batch_size, progress=progress)
        passes = [layout.length(vocab)] * len(answers)  # one forward pass per token written
    else:
        filled = fill_records(
            model,
            vocab,
            layout,
            prompts,
            method,
            threshold=threshold,
            max_steps=max_steps,
            batch_size=batch_size,
            progress=progress,
        )
        answers, passes = filled.answers, filled.passes
    texts = [answer_text(a, vocab) for a in answers]
    adaptive = method == "adaptive"
    return {
        "method": method,
        "n": len(sessions),
        "threshold": threshold if adaptive else None,
        "max_steps": max_steps if adaptive else None,
        "seconds": round(time.perf_counter() - start, 1),
        "passes": {
            "mean": sum(passes) / max(1, len(passes)),
            "median": statistics.median(passes) if passes else 0,
            "max": max(passes, default=0),
        },
        "accuracy": field_accuracy(texts, [s.record for s in sessions]),
        **partial_credit(answers, [s.record for s in sessions], layout, vocab),
        "examples": texts[:3],
        **({"texts": texts} if keep_texts else {}),
    }


def partial_credit(
    answers: list[list[int]], records: list[dict], layout: RecordLayout, vocab: Vocab
) -> dict:
    """What a model gets right before it gets whole fields right.

    valid_json: share of answers that read back as a JSON object with the six keys.
    token_accuracy: share of value-slot positions (value tokens and [EOS] filler) equal to the gold
    answer's, over the records whose values fit the layout.
    """
    slots = torch.tensor(layout.slot_index(vocab)) >= 0
    valid, right, total = 0, 0, 0
    for answer, record in zip(answers, records):
        try:
            data = json.loads(answer_text(answer, vocab))
            valid += isinstance(data, dict) and list(data) == list(FIELDS)
        except ValueError:
            pass
        try:
            gold = torch.tensor(layout.encode(record, vocab))
        except ValueError:  # a value longer than its slot: no token-level gold
            continue
        right += int((torch.tensor(answer)[slots] == gold[slots]).sum())
        total += int(slots.sum())
    return {"valid_json": valid / max(1, len(answers)), "token_accuracy": right / max(1, total)}


def accuracy_table(results: list[dict]) -> str:
    """Markdown table: one row per evaluation, its forward passes per record, one column per
    field."""
    head = (
        "| method | n | passes/record (mean, median, max) | "
        + " | ".join(FIELDS)
        + " | all |\n|---|---|---|"
        + "---|" * (len(FIELDS) + 1)
    )
    rows = [
        f"| {method_label(r)} | {r['n']} | {_passes_cell(r)} | "
        + " | ".join(f"{100 * r['accuracy'][k]:.1f}%" for k in (*FIELDS, "all"))
        + " |"
        for r in results
    ]
    return "\n".join([head, *rows])


def _passes_cell(r: dict) -> str:
    p = r.get("passes")
    if not p:
        return "not recorded"
    return f"{p['mean']:.2f}, {p['median']:g}, {p['max']}"


# ---------------------------------------------------------------------------- pictures


def loss_curve_figure(
    history: list[dict],
    title: str = "Training loss (1/t-weighted masked cross-entropy)",
    smooth: int = 20,
):
    """The loss per step and its running mean over `smooth` steps, against steps."""
    import plotly.graph_objects as go

    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    running = [
        sum(losses[max(0, i - smooth + 1) : i + 1]) / len(losses[max(0, i - smooth + 1) : i + 1])
        for i in range(len(losses))
    ]
    fig = go.Figure(
        [
            go.Scatter(
                x=steps,
                y=losses,
                mode="lines",
                name="per step",
                line=dict(width=1, color="#9ecae1"),
            ),
            go.Scatter(
                x=steps,
                y=running,
                mode="lines",
                name=f"mean of last {smooth}",
                line=dict(width=2, color="#08519c"),
            ),
        ]
    )
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis_title="loss",
        yaxis_type="log",
        height=360,
        margin=dict(l=60, r=10, t=50, b=40),
    )
    return fig


def files_miss_figure(
    by_length: dict[int, dict[str, int]], title: str = "The files field, by kind of miss"
):
    """Stacked bars of files_misses_by_length: a bar per number of changed files, a colour per kind.

    Kinds that never occur are left out of the legend.
    """
    import plotly.graph_objects as go

    lengths = list(by_length)
    kinds = [k for k in FILES_MISS_KINDS if any(by_length[n][k] for n in lengths)]
    fig = go.Figure(
        [
            go.Bar(
                name=kind,
                x=[f"{n} changed file(s)" for n in lengths],
                y=[by_length[n][kind] for n in lengths],
            )
            for kind in kinds
        ]
    )
    fig.update_layout(
        barmode="stack",
        title=title,
        yaxis_title="sessions",
        height=360,
        margin=dict(l=60, r=10, t=50, b=40),
    )
    return fig


def accuracy_figure(results: list[dict], title: str = "Exact match per field on held-out sessions"):
    """Grouped bars: one group per field, one bar per evaluation (label = its "method")."""
    import plotly.graph_objects as go

    keys = (*FIELDS, "all")
    fig = go.Figure(
        [
            go.Bar(
                name=r.get("label", r["method"]),
                x=list(keys),
                y=[100 * r["accuracy"][k] for k in keys],
                text=[f"{100 * r['accuracy'][k]:.0f}%" for k in keys],
                textposition="outside",
            )
            for r in results
        ]
    )
    fig.update_layout(
        title=title,
        yaxis_title="% exact match",
        yaxis_range=[0, 110],
        barmode="group",
        height=380,
        margin=dict(l=60, r=10, t=50, b=40),
    )
    return fig


# ---------------------------------------------------------------------------- command line


def training_stages(meta: dict) -> list[dict]:
    """The meta of every run that made a checkpoint, oldest first.

    A continued run (--init-from) records the run it started from under "init_from", and so on
    down to the run that trained from scratch.
    """
    stages = [meta]
    while stages[0].get("init_from"):
        stages.insert(0, stages[0]["init_from"])
    return stages


def rows_trained(meta: dict) -> list[dict]:
    """Per training stage, oldest first: steps, batch size and the rows (examples) they fed the
    model.

    The autoregressive twin gets the same budget as the diffusion model it races: as many rows,
    so as many answer tokens. A stage that kept no config gives its batch size in its command
    (default: its preset's, which this cannot know, so a ValueError says so). A stage trained
    with --span-task drew its rows from records and spans mixed, so it says so (span_task).
    """
    out = []
    for stage in training_stages(meta):
        spans = bool(stage.get("train", {}).get("span_task"))
        batch = stage.get("train", {}).get("batch_size")
        if batch is None:
            found = re.search(r"--batch-size[ =](\d+)", stage.get("command", ""))
            if found is None:
                raise ValueError(
                    f"a stage of {stage.get('steps', '?')} steps records no batch size"
                )
            batch = int(found.group(1))
        out.append(
            {
                "steps": int(stage.get("steps", 0)),
                "batch_size": int(batch),
                "rows": int(stage.get("steps", 0)) * int(batch),
                **({"span_task": True} if spans else {}),
            }
        )
    return out


def record_rows(stages: list[dict]) -> int:
    """The rows of rows_trained's stages that count toward the race with the diffusion model,
    which trained on records only: a --span-task stage drew records and spans mixed."""
    return sum(s["rows"] for s in stages if not s.get("span_task"))


def _where(stage: dict) -> str:
    return stage.get("device", "?") + (
        f" ({stage['accelerator']})" if stage.get("accelerator") else ""
    )


def stage_summary(stage: dict) -> str:
    """One line per stage: steps, minutes, device, speed, fresh sessions, files by slot filling."""
    slots = next((r for r in stage.get("evaluations", []) if r["method"] == "slots"), None)
    score = (
        f"; files {100 * slots['accuracy']['files']:.1f}% with slots on {slots['n']}"
        if slots
        else ""
    )
    fresh = (
        f", {stage['extra_sessions']:,} of its sessions generated afresh"
        if stage.get("extra_sessions")
        else ""
    )
    return (
        f"{stage.get('steps', '?')} steps in {stage.get('train_seconds', 0) / 60:.0f} min on "
        f"{_where(stage)} "
        f"({stage.get('tokens_per_s', 0):,.0f} tokens/s{fresh}){score}"
    )


def _origin_lines(start: dict | None) -> list[str]:
    """Where a continued run started, oldest stage first: each run's command, device, steps and
    scores."""
    lines: list[str] = []
    for i, stage in enumerate(training_stages(start) if start else []):
        # the commit, when the file at that path was overwritten since
        at = f" as of commit {stage['commit']}" if stage.get("commit") else ""
        lines += [
            f"{'Then it' if i else 'It'} continued `{stage['path']}`{at}, made by "
            f"`{stage.get('command', '?')}`"
            f" on {_where(stage)}: {stage.get('steps', '?')} steps in "
            f"{stage.get('train_seconds', 0) / 60:.1f}"
            " min. That run scored:",
            "",
        ]
        if stage.get("evaluations"):
            lines += [accuracy_table(stage["evaluations"]), ""]
    return lines


def _sampler_frac(stage: dict) -> float:
    """A training stage's --sampler-frac: from its config when kept, else from its command
    (default 0)."""
    if "sampler_frac" in stage.get("train", {}):
        return float(stage["train"]["sampler_frac"])
    found = re.search(r"--sampler-frac[ =](\S+)", stage.get("command", ""))
    return float(found.group(1)) if found else 0.0


def _loss_lines(meta: dict) -> list[str]:
    """Which stages trained on rows whose loss is not the ELBO (see
    masking.masked_diffusion_loss)."""
    stages = []
    while meta:
        stages.insert(0, meta)
        meta = meta.get("init_from")
    fracs = [_sampler_frac(s) for s in stages]
    if not any(fracs):
        return [
            "- loss: every row masked by the forward process (each answer token independently at "
            "rate t);"
            " its 1/t-weighted cross-entropy estimates the negative ELBO"
        ]
    by_stage = "; ".join(
        f"stage {i}, "
        + (
            f"{f:.0%} of each batch sampler-ordered (`--sampler-frac {f:g}`), the"
            " rest forward process"
            if f
            else "every row forward process"
        )
        for i, f in enumerate(fracs, 1)
    )
    return [
        f"- loss, oldest stage first (stage {len(stages)} is this run): {by_stage}. A row masked "
        "by the forward"
        " process (each answer token independently at rate t) has a 1/t-weighted cross-entropy "
        "that estimates"
        " the negative ELBO. A sampler-ordered row (`--sampler-frac`, `sampler_order_mask`: each "
        "field cut"
        " after a random number of its slot-filling steps, the JSON around the values never "
        "masked, t set to"
        " the masked share) has a plain mean cross-entropy over its masked tokens instead, not the "
        "ELBO"
    ]


def _budget_lines(meta: dict) -> list[str]:
    """The twin's training rows against those of the diffusion model it races (issue #19 asks for
    the same budget), and what writing a record costs it."""
    stages = rows_trained(meta)
    rows = sum(s["rows"] for s in stages)
    how = " + ".join(f"{s['steps']} steps x batch {s['batch_size']}" for s in stages)
    lines = [
        f"- rows trained: {rows:,} ({how}"
        + (f", over {len(stages)} stages" if len(stages) > 1 else "")
        + ")",
        f"- forward passes per record: {meta['answer_len']}, one per answer token (greedy, left to "
        "right; with the KV cache the first pass also reads the prompt)",
    ]
    race = meta.get("diffusion_budget")
    if race:
        records = record_rows(stages)
        lines.append(
            f"- the diffusion checkpoint it races (`{race['path']}`) trained on "
            f"{race['rows']:,} rows over {len(race['stages'])} stages: this twin had "
            f"{records / race['rows']:.1%} of that budget"
            + (
                f" in its record-only stages, then {rows - records:,} rows of "
                "records and spans mixed (`--span-task`)"
                if records < rows
                else ""
            )
            + (
                ""
                if records >= race["rows"]
                else ", so it is an interim twin, not yet the same-budget race the issue asks for"
            )
        )
    return lines


def _speed_between(history: list[dict], lo: int, hi: int) -> int:
    """Tokens/s over steps lo+1..hi of a run's history (lo 0 for the run's start). Why: a
    sitting's speed is its own tokens over its own seconds; the run's mean would hide a sitting
    on fewer threads or in another precision."""
    if hi <= lo:
        return 0
    a = history[lo - 1] if lo else {"tokens": 0, "seconds": 0.0}
    b = history[hi - 1]
    return round((b["tokens"] - a["tokens"]) / max(b["seconds"] - a["seconds"], 1e-9))


def _sitting_lines(meta: dict) -> list[str]:
    """How the run was done: in bfloat16 matmuls, and in how many sittings (--stop-after and
    --resume), each with its own threads and date."""
    lines = []
    if meta["train"].get("autocast"):
        lines.append(
            f"- matmuls in {meta['train']['autocast']} (`--bf16`, torch.autocast); weights, "
            "optimizer and loss in float32"
        )
    sittings = meta.get("sittings", [])
    if len(sittings) > 1:
        same = not any(_float32_sitting(meta["train"], s) for s in sittings)
        lines.append(
            f"- trained in {len(sittings)} sittings (`--stop-after`, then `--resume`; the learning "
            "rate goes by steps, so the run is the same as in one"
            + ("" if same else ", but for the sittings with matmuls in float32")
            + "): "
            + "; ".join(
                f"{s['steps']} steps in {s['seconds'] / 60:.1f} min on {s['threads']} threads, "
                f"{s['date'][:10]}"
                + (", matmuls in float32" if _float32_sitting(meta["train"], s) else "")
                for s in sittings
            )
        )
    return lines


def _float32_sitting(train: dict, sitting: dict) -> bool:
    """Did this sitting of a bfloat16 run train in float32 (--float32-sitting)?"""
    return bool(train.get("autocast")) and sitting.get("autocast", train["autocast"]) is None


def run_progress(meta: dict) -> dict:
    """Where a run spread over sittings stands, from the meta of its latest checkpoint: steps and
    rows so far, the twin's share of the diffusion model's budget, speed and quick scores per
    sitting. Why: a run that takes several days' idle hours needs a record of each sitting that a
    report can quote before the run ends."""
    stages = rows_trained(meta)
    rows, records = sum(s["rows"] for s in stages), record_rows(stages)
    race = meta.get("diffusion_budget")
    steps_total = meta["train"]["steps"]
    # sittings saved before --float32-sitting existed trained at the run's autocast
    autocast = meta["train"].get("autocast")
    sittings = [{"autocast": autocast, **s} for s in meta.get("sittings", [])]
    return {
        "run_command": meta["command"],
        "started": meta.get("date"),
        "device": meta["device"],  # the latest sitting's; each sitting names its own
        "machine": meta.get("machine"),
        "torch": meta.get("torch"),
        "arch": _arch(meta),
        "autocast": autocast,
        "steps_done": meta["steps"],
        "steps_total": steps_total,
        "finished": meta["steps"] >= steps_total,
        "rows_this_run": meta["steps"] * meta["train"]["batch_size"],
        "rows_this_run_total": steps_total * meta["train"]["batch_size"],
        "rows_all_stages": rows,
        "rows_all_stages_when_finished": rows
        + (steps_total - meta["steps"]) * meta["train"]["batch_size"],
        **(
            {
                "diffusion_rows": race["rows"],
                "rows_record_stages": records,
                "share_of_diffusion_budget": records / race["rows"],
            }
            if race
            else {}
        ),
        "train_seconds": meta["train_seconds"],
        "tokens_per_s": meta["tokens_per_s"],
        "final_loss": meta["final_loss"],
        "sittings": sittings,
        "quick_evals": meta.get("quick_evals", []),
    }


def _report_progress(p: dict, out: Path | None, command: str) -> int:
    """Print run_progress's summary, and write it with the command and date if out is given."""
    print(
        f"{p['arch']} run: step {p['steps_done']:,} of {p['steps_total']:,}, "
        f"{p['rows_all_stages']:,} rows over every stage"
        + (
            f" ({p['share_of_diffusion_budget']:.1%} of the diffusion model's "
            f"{p['diffusion_rows']:,}"
            + (
                " in record-only stages"
                if p.get("rows_record_stages", p["rows_all_stages"]) < p["rows_all_stages"]
                else ""
            )
            + ")"
            if "diffusion_rows" in p
            else ""
        )
        + f"; {p['train_seconds'] / 3600:.2f} h of training at {p['tokens_per_s']:,.0f} tokens/s"
    )
    for i, s in enumerate(p["sittings"], 1):
        speed = f"{s['tokens_per_s']:,} tokens/s" if "tokens_per_s" in s else "speed not recorded"
        print(
            f"  sitting {i} ({s['date']}): {s['steps']:,} steps in {s['seconds'] / 60:.1f} min, "
            f"{speed} on {s['threads']} threads"
            + (", matmuls in float32" if _float32_sitting(p, s) else "")
        )
    for e in p["quick_evals"]:
        acc = ", ".join(f"{k} {100 * v:.0f}%" for k, v in e["accuracy"].items())
        print(f"  step {e['step']:,}: {e['method']}, {acc}")
    if out is not None:
        record = {
            "what": "progress of a training run spread over sittings",
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **p,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _arch(meta: dict) -> str:
    """Which model a checkpoint's meta describes (older checkpoints are all diffusion)."""
    return meta.get("train", {}).get("arch", "diffusion")


def _write_report(out: Path, meta: dict, decoding: dict | None = None) -> None:
    """<arch>.json (the meta) and <arch>.md (for people) beside the checkpoint.

    decoding: a later evaluation of the same weights (`--eval-only --update-report`), kept in the
    report only, under "decoding", so that re-scoring never rewrites the checkpoint.
    """
    arch = _arch(meta)
    ar = arch == "autoregressive"
    report = {**meta, "decoding": decoding} if decoding else meta
    (out / f"{arch}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    spans = bool(meta.get("train", {}).get("span_task"))
    lines = [
        f"# The toy {arch} checkpoint trained on records and spans"
        if spans
        else f"# The shipped toy {arch} checkpoint",
        "",
        *(_decoding_lines(decoding) if decoding else []),
        f"Made by `{meta['command']}` on {meta['device']}"
        + (
            f" ({meta['accelerator']}; host {meta['machine']})"
            if meta.get("accelerator")
            else f" ({meta['machine']})"
        )
        + f", torch {meta['torch']}"
        + (f", started {meta['date']}." if meta.get("date") else "."),
        "",
        *_origin_lines(meta.get("init_from")),
        f"- parameters: {meta['parameters']:,}",
        f"- steps: {meta['steps']} x batch {meta['train']['batch_size']}",
        *(
            [
                f"- training sessions: the {meta['n_train_sessions'] - meta['extra_sessions']:,} "
                "committed ones and "
                f"{meta['extra_sessions']:,} generated after them"
            ]
            if meta.get("extra_sessions")
            else []
        ),
        *(
            [
                "- tasks: the record, and the second task, span filling (`--span-task`, "
                "unmasked.spans): one row per training session for each"
            ]
            if spans
            else []
        ),
        f"- training time: {meta['train_seconds'] / 60:.1f} min, {meta['tokens_per_s']:.0f} "
        "tokens/s "
        f"(torch threads: {meta['train']['threads'] or 'default'})",
        *_sitting_lines(meta),
        f"- final training loss (mean of last 100 steps): {meta['final_loss']:.4f}"
        + (", over both kinds of rows below" if _sampler_frac(meta) else ""),
        *(
            [
                "- loss: next-token cross-entropy on the answer tokens, given the prompt and the "
                "answer before them"
                " (the causal twin of the diffusion model: same code, size, examples and batch"
                " construction; the budget is below)"
            ]
            if ar
            else _loss_lines(meta)
        ),
        *(_budget_lines(meta) if ar else []),
        f"- answer region: {meta['answer_len']} tokens"
        + (f", value slots {meta['layout']['widths']}" if "layout" in meta else "")
        + (
            f", one slot per item for {meta['layout']['items']}"
            if meta.get("layout", {}).get("items")
            else ""
        ),
        "",
        "Per-field exact match on held-out short sessions, record "
        + ("written left to right, greedily" if ar else "filled from a fully masked region")
        + (
            ", at the end of training, by the record decoder of that time (`train.fill_answers`,"
            " which issue #19 replaced by chapter 04's sampler; its passes were not recorded):"
            if not ar and any("passes" not in r for r in meta.get("evaluations", []))
            else ", at the end of training:"
        ),
        "",
        accuracy_table(meta["evaluations"]) if meta.get("evaluations") else "(not evaluated)",
        "",
    ]
    for r in meta.get("evaluations", []):
        short = [k for k in FIELDS if r["accuracy"][k] < TARGET_ACCURACY]
        verdict = "reached" if not short else "NOT reached: below on " + ", ".join(short)
        lines.append(
            f"- target >= {TARGET_ACCURACY:.0%} exact match on every field, {method_label(r)} on "
            f"{r['n']}: {verdict}"
            f" (filling took {r['seconds']} s)"
        )
    lines += _span_lines(meta.get("span_evaluations", []))
    if meta.get("quick_evals"):
        # runs before quick evals recorded their method used slots (diffusion) or left to right
        before = "left to right" if ar else "slots filling"
        methods = sorted({q.get("method", before) for q in meta["quick_evals"]})
        lines += [
            "",
            f"During training ({', '.join(methods)}, first held-out sessions; minutes of "
            "training time; forward passes per record where recorded):",
            "",
            "| step | min | passes | " + " | ".join(FIELDS) + " | all |",
            "|---|---|---|" + "---|" * (len(FIELDS) + 1),
        ]
        lines += [
            f"| {q['step']} | {q['seconds'] / 60:.0f} | "
            + (f"{q['passes']:.2f}" if "passes" in q else "-")
            + " | "
            + " | ".join(f"{100 * q['accuracy'][k]:.0f}%" for k in (*FIELDS, "all"))
            + " |"
            for q in meta["quick_evals"]
        ]
    lines.append("")
    (out / f"{arch}.md").write_text("\n".join(lines), encoding="utf-8")


def _span_lines(evaluations: list[dict]) -> list[str]:
    """The report's table for the second task: hidden spans filled, with passes beside accuracy."""
    if not evaluations:
        return []
    lines = [
        "",
        "Span filling on held-out sessions: the middle tokens of each session long enough, as many "
        "as the record's answer region, hidden and written back (`unmasked.spans.evaluate_spans`):",
        "",
        "| method | n | span length | passes/span (mean, median, max) | tokens right "
        "| spans whole |",
        "|---|---|---|---|---|---|",
    ]
    for r in evaluations:
        p = r["passes"]
        label = r["method"] + (f" tau={r['threshold']}" if r.get("threshold") is not None else "")
        lines.append(
            f"| {label} | {r['n']} | {r['length']} | {p['mean']:.2f}, {p['median']:g}, {p['max']} "
            f"| {100 * r['accuracy']['tokens']:.1f}% | {100 * r['accuracy']['whole']:.1f}% |"
        )
    return lines


def target_verdict(r: dict) -> str:
    """Whether an evaluation reaches TARGET_ACCURACY on every field, and if not, where not."""
    short = [k for k in FIELDS if r["accuracy"][k] < TARGET_ACCURACY]
    return "reached" if not short else "NOT reached: below on " + ", ".join(short)


def _decoding_lines(decoding: dict) -> list[str]:
    """The report's section for a re-scoring of the shipped weights by today's decoder."""
    results = decoding["evaluations"]
    lines = [
        "## Decoding with chapter 04's sampler",
        "",
        f"Scored by `{decoding['command']}` on {decoding['device']} ({decoding['machine']}, torch"
        f" {decoding['torch']}, torch threads: {decoding['threads']}) on {decoding['date']}: every"
        " method"
        " is a policy over `unmasked.sampling.decode` and its one commit rule"
        " (`commit_step`, which `unmask_step` is at batch 1), from a fully masked record, greedy."
        " Forward passes are per record. Filling times are wall-clock seconds on a machine that"
        " other jobs may share: compare passes, not seconds.",
        "",
        accuracy_table(results),
        "",
    ]
    lines += [
        f"- {method_label(r)} on {r['n']}: target >= {TARGET_ACCURACY:.0%} on every field"
        f" {target_verdict(r)} (filling took {r['seconds']} s)"
        for r in results
    ]
    reached = [r for r in results if target_verdict(r) == "reached"]
    if reached:
        best = min(reached, key=lambda r: (r["passes"]["mean"], -r["accuracy"]["all"]))
        lines.append(
            f"- fewest passes among the methods that reach the target: {method_label(best)},"
            f" {best['passes']['mean']:.2f} passes per record, every field right on"
            f" {100 * best['accuracy']['all']:.1f}%"
        )
    return [*lines, "", "## How it was trained", ""]


def continue_from(path, vocab: Vocab, layout: RecordLayout, cfg: TrainConfig, device):
    """(model, cfg with the checkpoint's size, summary of where it came from) to train further.

    The checkpoint must have been made from the same corpus and slots, or its token ids and
    answer positions would mean something else now.
    """
    model, old_vocab, old_layout, meta = load_checkpoint(path, device)
    if not same_corpus(old_vocab, old_layout, vocab, layout):
        raise CheckpointError(
            f"{path} was made from another corpus or record layout; train from scratch instead"
        )
    mc = model.config
    if mc.causal != (cfg.arch == "autoregressive"):
        raise CheckpointError(
            f"{path} holds a {'causal' if mc.causal else 'bidirectional'} model, not one for"
            f" --arch {cfg.arch}"
        )
    if (mc.max_len, mc.anchor_pos) != (cfg.max_len, cfg.prompt_room - 1):
        raise CheckpointError(
            f"{path} places the answer at {mc.anchor_pos + 1} of {mc.max_len}, this corpus at "
            f"{cfg.prompt_room} of {cfg.max_len}; train from scratch instead"
        )
    cfg = replace(cfg, n_layer=mc.n_layer, n_head=mc.n_head, n_embd=mc.n_embd)
    keep = (
        "command",
        "device",
        "accelerator",
        "torch",
        "train",
        "steps",
        "train_seconds",
        "tokens_per_s",
        "evaluations",
        "init_from",
    )
    start = {"path": str(path), **{k: meta[k] for k in keep if k in meta}}
    for r in start.get("evaluations", []):
        r.pop("examples", None)
    return model.train(), cfg, start


def _without_option(argv: list[str], option: str) -> list[str]:
    """argv without `option VALUE` or `option=VALUE`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            out.append(a)
    return out


def _shown(path: Path) -> str:
    """A path as a report records it: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def parse_methods(text: str, threshold: float) -> list[tuple[str, float]]:
    """'one_shot,adaptive:0.5,slots' -> [(method, tau)]; without ':TAU', tau is `threshold`."""
    out = []
    for item in (m.strip() for m in text.split(",")):
        if not item:
            continue
        name, _, tau = item.partition(":")
        if tau and name != "adaptive":
            raise ValueError(f"only adaptive takes a threshold (adaptive:TAU), got {item!r}")
        try:
            value = float(tau) if tau else threshold
        except ValueError:
            raise ValueError(f"{item!r}: the threshold after ':' must be a number") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{item!r}: the threshold must be in [0, 1]")
        out.append((name, value))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,  # the run's command is saved without --stop-after, spelled in full
        description="Train (or score) the toy masked diffusion LM, or its autoregressive"
        " twin, on the short corpus.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT.parent)
    parser.add_argument(
        "--arch",
        choices=ARCHS,
        default="diffusion",
        help="diffusion (diffusion.pt) or its causal twin, trained on the same examples and "
        "batches "
        "with next-token loss (autoregressive.pt)",
    )
    defaults = TrainConfig()
    parser.add_argument(
        "--preset",
        choices=("auto", *PRESETS),
        default="auto",
        help="model size and steps: 'cpu' or 'gpu'; auto picks by device. Flags below override it.",
    )
    for name in ("n_layer", "n_head", "n_embd", "batch_size", "steps"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    for name in ("warmup", "seed"):
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=getattr(defaults, name)
        )
    for name in ("lr", "min_lr", "t_floor"):
        parser.add_argument(
            "--" + name.replace("_", "-"), type=float, default=getattr(defaults, name)
        )
    parser.add_argument(
        "--sampler-frac",
        type=float,
        default=defaults.sampler_frac,
        help="share of each batch masked as the slots sampler leaves it (sampler_order_mask)",
    )
    parser.add_argument(
        "--span-task",
        action="store_true",
        help="also train on the second task, filling a hidden span of each session's text "
        "(unmasked.spans): one span row per training session beside its record row",
    )
    parser.add_argument(
        "--span-weight",
        type=float,
        default=defaults.span_weight,
        help="with --span-task: each span row's loss times this (records' times 1)",
    )
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds; stop training early"
    )
    parser.add_argument(
        "--stop-after",
        type=float,
        default=None,
        help="seconds of training in this sitting; then save the run (<arch>.run.pt in --out) and "
        "stop, and --resume goes on from there. Unlike --time-budget, it does not shorten the run",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on with the run saved in --out (<arch>.run.pt) under its own command; only "
        "--stop-after, --threads, --save-every and --float32-sitting are this sitting's",
    )
    parser.add_argument(
        "--float32-sitting",
        action="store_true",
        help="with --resume: this sitting's matmuls in float32 although the run asks for "
        "bfloat16. For a CPU without native bfloat16 (no avx512_bf16 or AMX), where autocast is "
        "emulated and about 10x slower than float32; the sitting's record says which it used",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="matmuls in bfloat16 (torch.autocast); weights, optimizer and loss stay float32",
    )
    parser.add_argument("--weighting", choices=WEIGHTINGS, default=defaults.weighting)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--limit", type=int, default=None, help="use only this many training sessions"
    )
    parser.add_argument(
        "--extra-sessions",
        type=int,
        default=0,
        help="also train on this many sessions generated after the committed ones (same seed; "
        "held-out texts excluded); vocab and slots stay the committed corpus's",
    )
    parser.add_argument(
        "--eval-n", type=int, default=500, help="held-out sessions for the final evaluation"
    )
    parser.add_argument(
        "--eval-every", type=int, default=500, help="steps between quick evaluations (0: none)"
    )
    parser.add_argument(
        "--quick-n", type=int, default=64, help="held-out sessions in each quick evaluation"
    )
    parser.add_argument(
        "--save-every", type=float, default=600, help="seconds between checkpoint saves"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help="final evaluation methods, from "
        + ", ".join(FILL_METHODS)
        + "; adaptive:TAU sets its threshold (default one_shot,adaptive,slots),"
        " or autoregressive (the default with --arch autoregressive)",
    )
    parser.add_argument(
        "--max-steps",
        "--conf-steps",
        dest="max_steps",
        type=int,
        default=None,
        help="adaptive: at most this many passes per record (default: no cap)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        help="adaptive: commit every prediction more sure than this (tau)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="continue training this checkpoint (its model size; same corpus and slots)",
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="score the checkpoint in --out, do not train"
    )
    parser.add_argument(
        "--progress",
        type=Path,
        nargs="?",
        const=Path("-"),
        default=None,
        metavar="JSON",
        help="print where the run in --out stands (steps, rows, each sitting's speed, the quick "
        "scores), and write it as JSON to this file if one is named; do not train",
    )
    parser.add_argument(
        "--update-report",
        action="store_true",
        help="with --eval-only: write the scores into the report beside the checkpoint "
        "(<arch>.json and .md, as its decoding section); the checkpoint itself is not changed",
    )
    args = parser.parse_args(argv)
    sitting_argv = list(sys.argv[1:] if argv is None else argv)
    run_file = args.out / f"{args.arch}.run.pt"
    if args.progress is not None:
        # a sitting commits only the run file (<arch>.pt is not kept in git), so read its copy
        checkpoint = args.out / f"{args.arch}.pt"
        run = load_checkpoint(run_file)[3].get("run", {}) if run_file.exists() else {}
        if "meta" not in run and not checkpoint.exists():
            parser.error(
                f"--progress: no {checkpoint}, and "
                + (
                    f"{run_file} was saved before run files kept a copy of the run's meta"
                    if run_file.exists()
                    else f"no run at {run_file}"
                )
            )
        meta = run.get("meta") or load_checkpoint(checkpoint)[3]
        return _report_progress(
            run_progress(meta),
            None if args.progress == Path("-") else args.progress,
            "python -m unmasked.train " + " ".join(sitting_argv),
        )
    argv, saved = _without_option(sitting_argv, "--stop-after"), None  # the run's own command
    if args.resume:  # the run's own command, with this sitting's stop, threads and saving
        own = ("resume", "arch", "out", "stop_after", "threads", "save_every", "float32_sitting")
        changed = [
            "--" + k.replace("_", "-")
            for k, v in vars(args).items()
            if k not in own and v != parser.get_default(k)
        ]
        if changed:
            parser.error(
                f"--resume goes on under the run's own command; {', '.join(changed)} would change"
                " the run (a sitting takes only --stop-after, --threads, --save-every and "
                "--float32-sitting)"
            )
        try:
            resumed = load_checkpoint(run_file, "cpu")
        except CheckpointError as e:
            parser.error(f"--resume: {e}")
        saved = resumed[3].get("run")
        if not saved:
            parser.error(f"--resume: {run_file} holds no saved run")
        sitting = {
            k: getattr(args, k) for k in ("out", "stop_after", "save_every", "float32_sitting")
        }
        threads = args.threads
        argv = saved["argv"]
        args = parser.parse_args(argv)
        for k, v in sitting.items():
            setattr(args, k, v)
        args.threads = threads or args.threads
    elif args.float32_sitting:
        parser.error("--float32-sitting goes with --resume; a new run chooses with --bf16")
    elif not args.eval_only and run_file.exists():
        parser.error(
            f"{run_file} holds a run not yet finished: go on with it (--resume), or delete it to "
            "start another"
        )

    from unmasked.sessions import load_short_sessions

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or pick_device(verbose=True).device
    ar = args.arch == "autoregressive"
    ckpt = args.out / f"{args.arch}.pt"
    test = load_short_sessions("test", limit=args.eval_n)
    if args.methods is None:
        args.methods = "autoregressive" if ar else "one_shot,adaptive,slots"
    try:
        methods = parse_methods(args.methods, args.threshold)
    except ValueError as e:
        parser.error(str(e))
    allowed = ("autoregressive",) if ar else FILL_METHODS
    if any(m not in allowed for m, _ in methods):
        parser.error(
            f"--methods for --arch {args.arch} must be from {', '.join(allowed)}, got "
            f"{args.methods}"
        )

    def final_evals(model, vocab, layout):
        return [
            evaluate(
                model,
                vocab,
                test,
                layout,
                m,
                tau,
                progress=True,
                max_steps=args.max_steps,
            )
            for m, tau in methods
        ]

    if args.eval_only:
        model, vocab, layout, meta = load_checkpoint(ckpt, device)
        results = final_evals(model, vocab, layout)
        print(accuracy_table(results))
        if args.update_report:  # the report gains a decoding section; the checkpoint stays as is
            for r in results:
                r.pop("examples", None)
            decoding = {
                "command": "python -m unmasked.train "
                + " ".join(argv if argv is not None else sys.argv[1:]),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "device": str(device),
                "machine": describe_machine(),
                "torch": str(torch.__version__),
                "threads": torch.get_num_threads(),
                "checkpoint": _shown(ckpt),
                "evaluations": results,
            }
            _write_report(args.out, meta, decoding)
        return 0

    preset = PRESETS[
        args.preset
        if args.preset != "auto"
        else ("gpu" if str(device).startswith("cuda") else "cpu")
    ]
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    train = load_short_sessions("train", limit=args.limit)
    vocab = build_vocab(train)
    layout = RecordLayout.fit([s.record for s in train], vocab)
    examples = [encode_example(s, vocab, layout) for s in train]
    answer_len = layout.length(vocab)
    cfg = sized_for(
        TrainConfig(
            **{
                k: getattr(args, k)
                for k in (
                    "n_layer",
                    "n_head",
                    "n_embd",
                    "batch_size",
                    "steps",
                    "warmup",
                    "seed",
                    "lr",
                    "min_lr",
                    "t_floor",
                    "weighting",
                    "threads",
                    "sampler_frac",
                    "arch",
                    "span_task",
                    "span_weight",
                )
            },
            time_budget_s=args.time_budget,
            device=device,
            autocast="bfloat16" if args.bf16 else None,
        ),
        examples,
    )
    extra, extra_examples = extra_training_sessions(
        args.extra_sessions, vocab, layout, cfg.prompt_room
    )
    examples += extra_examples
    if cfg.span_task:  # the second task: one span row per session, seeded like the rest
        examples += span_examples(train + extra, vocab, answer_len, seed=cfg.seed)
    if len(examples) < cfg.batch_size:  # batches() would refuse too, after the model is built
        parser.error(
            f"{len(examples)} training examples cannot fill a batch of {cfg.batch_size}: "
            "lower --batch-size or raise --limit"
        )
    seed_everything(cfg.seed)
    if saved is not None:  # the saved weights, size and origin; the data rebuilt as it was
        if not same_corpus(vocab, layout, resumed[1], resumed[2]):
            parser.error(f"--resume: {run_file} was made from another corpus or record layout")
        cfg = replace(TrainConfig(**saved["cfg"]), threads=args.threads, device=device)
        model, start = resumed[0].to(device).train(), saved.get("start")
    elif args.init_from is not None:
        model, cfg, start = continue_from(args.init_from, vocab, layout, cfg, device)
    else:
        model, start = new_model(vocab, cfg), None
    print(
        f"{len(train)} sessions + {len(extra)} generated, vocab {vocab.size}, answer region "
        f"{answer_len} ({layout}), "
        f"{model.num_params():,} parameters, device {device}, threads {torch.get_num_threads()}"
    )
    race = None  # the twin's budget is measured against the shipped diffusion checkpoint's
    if ar and DEFAULT_CHECKPOINT.exists():
        stages = rows_trained(load_checkpoint(DEFAULT_CHECKPOINT, "cpu")[3])
        race = {
            "path": str(DEFAULT_CHECKPOINT.relative_to(REPO_ROOT)),
            "rows": sum(s["rows"] for s in stages),
            "stages": stages,
        }
    quick = test[: args.quick_n]
    # the run's cfg is what it saves and reports; this sitting may only change its matmuls
    sitting_cfg = replace(cfg, autocast=None) if args.float32_sitting else cfg
    if sitting_cfg.autocast != cfg.autocast:
        print(f"this sitting: matmuls in float32 (the run asks for {cfg.autocast})")
    evals: list[dict] = saved["evals"] if saved else []
    last_save = [time.perf_counter()]
    run_start = time.perf_counter()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    run_date = saved["date"] if saved else now
    run = TrainRun.from_state(saved["state"]) if saved else TrainRun()
    sittings = saved["sittings"] if saved else []
    resumable = saved is not None or args.stop_after is not None
    upto_seconds = run.history[-1]["seconds"] if run.history else 0.0  # earlier sittings'
    for i, s in enumerate(sittings):  # saved before sittings kept their own speed
        if "tokens_per_s" not in s:
            lo = sittings[i - 1]["upto_step"] if i else 0
            s["tokens_per_s"] = _speed_between(run.history, lo, s["upto_step"])

    def meta_now(history, evaluations):
        secs = history[-1]["seconds"] if history else 0.0
        this = {
            "date": now,
            "command": "python -m unmasked.train " + " ".join(sitting_argv),
            "steps": len(history) - (sittings[-1]["upto_step"] if sittings else 0),
            "upto_step": len(history),
            "seconds": round(secs - upto_seconds, 1),
            "upto_seconds": round(secs, 1),
            "threads": torch.get_num_threads(),
            "device": str(device),
            "machine": describe_machine(),
            "tokens_per_s": _speed_between(
                history, sittings[-1]["upto_step"] if sittings else 0, len(history)
            ),
            "autocast": sitting_cfg.autocast,
        }
        return {
            "command": "python -m unmasked.train " + " ".join(argv),
            "date": run_date,
            "device": str(device),
            "machine": describe_machine(),
            "torch": str(torch.__version__),
            "parameters": model.num_params(),
            "train": asdict(cfg),
            "n_train_sessions": len(train) + len(extra),
            "extra_sessions": len(extra),
            "answer_len": answer_len,
            "layout": layout.to_dict(),
            "steps": len(history),
            "train_seconds": round(secs, 1),
            "tokens_per_s": history[-1]["tokens"] / max(secs, 1e-9) if history else 0.0,
            "final_loss": sum(h["loss"] for h in history[-100:]) / max(1, len(history[-100:])),
            "loss_curve": [
                [h["step"], round(h["loss"], 4)] for h in history[:: max(1, len(history) // 400)]
            ],
            "quick_evals": evals,
            "evaluations": evaluations,
            **(
                {"accelerator": torch.cuda.get_device_name(device)}
                if str(device).startswith("cuda")
                else {}
            ),
            **({"init_from": start} if start else {}),
            **({"diffusion_budget": race} if race else {}),
            **({"sittings": [*sittings, this]} if resumable else {}),
        }

    history = run.history

    def save(evaluations):
        meta = meta_now(history, evaluations)
        save_checkpoint(ckpt, model, vocab, layout, meta)
        if resumable:  # full-precision weights, optimizer and place in the batch order
            run_meta = {"argv": argv, "cfg": asdict(cfg), "start": start, "date": run_date}
            run_meta |= {"evals": evals, "sittings": meta["sittings"], "state": run.state()}
            run_meta["meta"] = meta  # what --progress reports, on a clone that has only this file
            save_checkpoint(run_file, model, vocab, layout, {"run": run_meta}, half=False)
        return meta

    def on_step(step, loss, elapsed):
        if args.eval_every and step % args.eval_every == 0:
            # the report's headline method (chapter 04's adaptive rule), not slots: the quick
            # scores then show the figure the finished checkpoint is judged by, at its cost
            quick_method = "autoregressive" if ar else "adaptive"
            r = evaluate(model, vocab, quick, layout, quick_method, threshold=args.threshold)
            evals.append(
                {
                    "step": step,
                    "seconds": round(elapsed, 1),
                    "method": method_label(r),
                    "passes": round(r["passes"]["mean"], 2),
                    "accuracy": r["accuracy"],
                }
            )
            print(
                f"step {step} ({elapsed / 60:.1f} min) {method_label(r)} on {len(quick)}, "
                f"{r['passes']['mean']:.2f} passes/record: "
                + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["accuracy"].items()),
                flush=True,
            )
            model.train()
        if time.perf_counter() - last_save[0] > args.save_every:
            save([])
            last_save[0] = time.perf_counter()

    train_model(
        model,
        vocab,
        examples,
        sitting_cfg,
        on_step=on_step,
        progress=True,
        layout=layout,
        run=run,
        stop_after_s=args.stop_after,
    )
    save([])
    if run.stopped_by == "stop_after":
        print(
            f"sitting {len(sittings) + 1} stopped at step {len(history)} of {cfg.steps} "
            f"({len(history) * cfg.batch_size:,} rows); {ckpt} holds the weights so far. Go on "
            f"with: python -m unmasked.train --resume --arch {cfg.arch} --out {args.out}"
        )
        return 0
    results = final_evals(model, vocab, layout)
    meta = meta_now(history, results)
    if cfg.span_task:  # the span as long as the record, in the middle of each long-enough session
        if sessions_long_enough(test, vocab, answer_len):
            meta["span_evaluations"] = [
                evaluate_spans(model, vocab, test, answer_len, args.threshold, progress=True)
            ]
        else:
            print(f"no held-out session can hide {answer_len} tokens: spans not scored")
    # the clock started with this process: over several sittings it times only the last one
    clock = "last_sitting_seconds" if sittings else "total_seconds"
    meta[clock] = round(time.perf_counter() - run_start, 1)
    save_checkpoint(ckpt, model, vocab, layout, meta)
    _write_report(args.out, meta)
    run_file.unlink(missing_ok=True)  # the run is over: nothing is left to go on with
    print(accuracy_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
