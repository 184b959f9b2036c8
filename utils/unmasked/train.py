"""Train the toy masked diffusion LM to write a session's JSON record, and score it.

The job: given a short agent session (the prompt, never masked) and a [SEP], fill an answer
region of [MASK] tokens with the record `{"task": ..., "database": ..., ...}` followed by
[EOS] padding. Training masks a random fraction t of the answer and scores only the masked
positions, weighted by 1/t (unmasked.masking); this is LLaDA's supervised fine-tuning recipe
applied from scratch.

    python -m unmasked.train --out data/checkpoints          # what `make checkpoint` runs
    python -m unmasked.train --eval-only --eval-n 500        # score the shipped checkpoint

A checkpoint is a plain dict (config, vocab as lists of ints, state_dict, meta), so that
`torch.load(..., weights_only=True)` reads it without unpickling any code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from unmasked.env import pick_device, seed_everything
from unmasked.masking import DEFAULT_T_FLOOR, WEIGHTINGS, mask_tokens, masked_diffusion_loss, sample_t
from unmasked.model import ModelConfig, TransformerLM
from unmasked.vocab import Vocab

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = REPO_ROOT / "data" / "checkpoints" / "diffusion.pt"
CHECKPOINT_FORMAT = "unmasked-diffusion-v1"
REBUILD_HINT = "rebuild it with `make checkpoint` (python -m unmasked.train --out data/checkpoints)"
FIELDS = ("task", "database", "decision", "files", "error", "next_step")  # = sessions.SHORT_RECORD_FIELDS
TARGET_ACCURACY = 0.9  # issue #4: the shipped checkpoint should reach this on every field


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt or made for different code; says how to rebuild it."""


# ---------------------------------------------------------------------------- data


def encode_example(short_session, vocab: Vocab) -> tuple[list[int], list[int]]:
    """(prompt ids ending with [SEP], answer ids: the record's canonical JSON then [EOS])."""
    from unmasked.sessions import record_to_json

    prompt = vocab.encode(short_session.text) + [vocab.sep_id]
    target = vocab.encode(record_to_json(short_session.record)) + [vocab.eos_id]
    return prompt, target


def build_vocab(sessions) -> Vocab:
    """The compact vocabulary of a corpus: every token of its texts and records, plus bytes."""
    from unmasked.sessions import record_to_json

    return Vocab.build([s.text for s in sessions] + [record_to_json(s.record) for s in sessions])


def make_batch(examples: list[tuple[list[int], list[int]]], vocab: Vocab, answer_len: int | None = None,
               extra_eos: int = 0):
    """Pack (prompt, target) pairs as [prompt][target, EOS, EOS...][PAD...].

    Every answer region has the same length (the longest target, or `answer_len`, plus
    `extra_eos`), so the model learns to end a record with [EOS] padding as LLaDA does.
    Returns ids (B, T), answer (B, T) bool: the maskable, scored region, and its lengths (B,).
    """
    region = max(len(t) for _, t in examples) if answer_len is None else answer_len
    region += extra_eos
    rows, answer_rows = [], []
    for prompt, target in examples:
        if len(target) > region:
            raise ValueError(f"target of {len(target)} tokens does not fit an answer region of {region}")
        rows.append(prompt + target + [vocab.eos_id] * (region - len(target)))
        answer_rows.append([False] * len(prompt) + [True] * region)
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), vocab.pad_id, dtype=torch.long)
    answer = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, (row, ans) in enumerate(zip(rows, answer_rows)):
        ids[i, : len(row)] = torch.tensor(row)
        answer[i, : len(ans)] = torch.tensor(ans)
    return ids, answer, answer.sum(dim=1)


def batches(n: int, batch_size: int, lengths: list[int], rng: random.Random):
    """Endless index batches: shuffled, then grouped by similar length to waste little padding."""
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


@dataclass
class TrainConfig:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    max_len: int = 640
    batch_size: int = 16
    steps: int = 4000
    time_budget_s: float | None = None  # stop early (and decay the lr by elapsed time) if set
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    t_floor: float = 0.1
    weighting: str = "inverse_t"
    extra_eos_max: int = 16  # random extra [EOS] padding so that long answer regions are seen
    seed: int = 0
    device: str | None = None
    threads: int | None = None

    def __post_init__(self):
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")


# Model size and length of training for `make checkpoint`. The cpu preset is what fits a laptop in about an hour;
# the gpu preset is bigger and longer (a few minutes on a datacenter GPU). TrainConfig's defaults equal the cpu preset.
PRESETS = {
    "cpu": dict(n_layer=4, n_head=4, n_embd=128, batch_size=16, steps=4000),
    "gpu": dict(n_layer=6, n_head=8, n_embd=256, batch_size=64, steps=20000),
}


def lr_at(progress: float, cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay from lr to min_lr as progress goes 0 -> 1."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def new_model(vocab: Vocab, cfg: TrainConfig) -> TransformerLM:
    mc = ModelConfig(vocab_size=vocab.size, max_len=cfg.max_len, n_layer=cfg.n_layer, n_head=cfg.n_head,
                     n_embd=cfg.n_embd, pad_id=vocab.pad_id)
    return TransformerLM(mc)


def diffusion_step_loss(model, ids, answer, lengths, vocab, cfg: TrainConfig, gen: torch.Generator):
    """One training loss: mask the answer at a random t per sequence, score the masked tokens."""
    t = sample_t(ids.shape[0], cfg.t_floor, generator=gen)
    noisy, is_masked = mask_tokens(ids, t, vocab.mask_id, maskable=answer, generator=gen)
    logits = model(noisy.to(ids.device))
    return masked_diffusion_loss(logits, ids, is_masked, t, lengths=lengths, weighting=cfg.weighting)


def train_model(model: TransformerLM, vocab: Vocab, examples, cfg: TrainConfig, *, on_step=None,
                progress: bool = True, history: list | None = None) -> list[dict]:
    """Train in place; `on_step(step, loss, elapsed)` is called every step (plots, evals, saves).

    Returns the history (appended to `history` if given): one dict per step with loss, lr,
    tokens and seconds so far.
    """
    from tqdm.auto import tqdm

    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device or pick_device().device)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    rng = random.Random(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    lengths = [len(p) + len(t) for p, t in examples]
    stream = batches(len(examples), cfg.batch_size, lengths, rng)
    history = [] if history is None else history
    tokens, start = 0, time.perf_counter()
    bar = tqdm(total=cfg.steps, desc="training", disable=not progress)
    for step in range(cfg.steps):
        elapsed = time.perf_counter() - start
        if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s:
            break
        prog = step / cfg.steps
        if cfg.time_budget_s:
            prog = max(prog, elapsed / cfg.time_budget_s)
        lr = lr_at(prog, cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        ids, answer, lens = make_batch([examples[i] for i in next(stream)], vocab,
                                       extra_eos=rng.randint(0, cfg.extra_eos_max))
        ids, answer, lens = ids.to(device), answer.to(device), lens.to(device)
        loss = diffusion_step_loss(model, ids, answer, lens, vocab, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        tokens += ids.numel()
        elapsed = time.perf_counter() - start
        # tokens: every position of the padded batch, prompt included, as processed by forward and backward
        history.append({"step": step + 1, "loss": loss.item(), "lr": lr, "tokens": tokens, "seconds": elapsed})
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens / max(elapsed, 1e-9):.0f}")
        if on_step is not None:
            on_step(step + 1, loss.item(), elapsed)
    bar.close()
    model.eval()
    return history


# ---------------------------------------------------------------------------- filling and scoring


def _answer_batch(prompts: list[list[int]], answer_len: int, vocab: Vocab):
    rows = [p + [vocab.mask_id] * answer_len for p in prompts]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), vocab.pad_id, dtype=torch.long)
    region = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, (p, row) in enumerate(zip(prompts, rows)):
        ids[i, : len(row)] = torch.tensor(row)
        region[i, len(p) : len(row)] = True
    return ids, region


def _predict(model, ids, vocab: Vocab):
    logits = model(ids).float()
    logits[..., [vocab.mask_id, vocab.pad_id, vocab.sep_id]] = -float("inf")  # never write these
    probs = logits.softmax(dim=-1)
    return probs.max(dim=-1)


@torch.no_grad()
def fill_answers(model, vocab: Vocab, prompts: list[list[int]], answer_len: int, method: str = "one_shot",
                 threshold: float = 0.9, batch_size: int = 32, progress: bool = False,
                 max_steps: int = 32) -> list[list[int]]:
    """Fill an all-[MASK] answer region after each prompt; return the answer ids up to [EOS].

    one_shot: a single forward pass, argmax at every position.
    confidence: repeat { predict all masked positions; commit those with probability >= threshold,
    and at least the most confident ceil(masked / steps left) ones, so that it ends within
    `max_steps` }; a row is done once everything before its first committed [EOS] is committed.
    (Fast-dLLM's threshold rule, Wu et al. 2025, arXiv:2505.22618, over LLaDA's linear count.)
    """
    from tqdm.auto import tqdm

    if method not in ("one_shot", "confidence"):
        raise ValueError(f"method must be 'one_shot' or 'confidence', got {method!r}")
    model.eval()
    device = next(model.parameters()).device
    out: list[list[int]] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=f"filling ({method})", disable=not progress):
        chunk = prompts[start : start + batch_size]
        ids, region = _answer_batch(chunk, answer_len, vocab)
        ids, region = ids.to(device), region.to(device)
        if method == "one_shot":
            _, pred = _predict(model, ids, vocab)
            ids = torch.where(region, pred, ids)
        else:
            for step in range(max_steps):
                masked = (ids == vocab.mask_id) & region
                if not bool(masked.any()):
                    break
                conf, pred = _predict(model, ids, vocab)
                conf = torch.where(masked, conf, torch.full_like(conf, -1.0))
                commit = conf >= threshold
                k_min = math.ceil(int(masked.sum(dim=1).max()) / (max_steps - step))
                top = conf.topk(k_min, dim=1).indices
                commit.scatter_(1, top, True)
                ids = torch.where(commit & masked, pred, ids)
                ids = _finish_after_eos(ids, region, vocab)
        for i, p in enumerate(chunk):
            answer = ids[i, len(p) : len(p) + answer_len].tolist()
            out.append(answer[: answer.index(vocab.eos_id)] if vocab.eos_id in answer else answer)
    return out


def _finish_after_eos(ids, region, vocab: Vocab):
    """Rows whose answer is committed up to its first [EOS] are done: fill the rest with [EOS]."""
    for i in range(ids.shape[0]):
        pos = region[i].nonzero().flatten()
        row = ids[i, pos]
        eos = (row == vocab.eos_id).nonzero().flatten()
        if len(eos) and not bool((row[: eos[0]] == vocab.mask_id).any()):
            ids[i, pos[eos[0] :]] = vocab.eos_id
    return ids


_STRING_FIELD = r'"{key}": "((?:[^"\\]|\\.)*)"'
_LIST_FIELD = r'"{key}": \[((?:[^\]"\\]|"(?:[^"\\]|\\.)*")*)\]'


def parse_record_fields(text: str) -> dict[str, str | None]:
    """Per-field canonical strings (as sessions.record_fields) from generated text.

    Valid JSON is read as JSON. Otherwise each field is looked up on its own, so that one broken
    field does not zero the others; a field that cannot be found is None (scored wrong).
    """
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return {k: (", ".join(map(str, data[k])) if isinstance(data.get(k), list) else
                        (str(data[k]) if k in data else None)) for k in FIELDS}
    except ValueError:
        pass
    out: dict[str, str | None] = {}
    for key in FIELDS:
        if key == "files":
            m = re.search(_LIST_FIELD.format(key=key), text)
            out[key] = None if m is None else ", ".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))
        else:
            m = re.search(_STRING_FIELD.format(key=key), text)
            out[key] = None if m is None else m.group(1)
    return out


def field_accuracy(predicted: list[str], records: list[dict]) -> dict[str, float]:
    """Exact match per field, and "all" (every field right), over generated texts and gold records."""
    from unmasked.sessions import record_fields

    if len(predicted) != len(records) or not records:
        raise ValueError(f"need as many predictions as records (got {len(predicted)} and {len(records)}), at least 1")
    hits = {k: 0 for k in FIELDS}
    all_right = 0
    for text, record in zip(predicted, records):
        gold, got = record_fields(record), parse_record_fields(text)
        right = [got[k] == gold[k] for k in FIELDS]
        for k, ok in zip(FIELDS, right):
            hits[k] += ok
        all_right += all(right)
    n = len(records)
    return {**{k: hits[k] / n for k in FIELDS}, "all": all_right / n}


def evaluate(model, vocab: Vocab, sessions, answer_len: int, method: str = "one_shot", threshold: float = 0.9,
             batch_size: int = 32, progress: bool = False, max_steps: int = 32) -> dict:
    """Fill each session's record from a fully masked region and score it field by field."""
    prompts = [encode_example(s, vocab)[0] for s in sessions]
    start = time.perf_counter()
    answers = fill_answers(model, vocab, prompts, answer_len, method, threshold, batch_size, progress, max_steps)
    texts = [vocab.decode(a, skip_special=True) for a in answers]
    return {"method": method, "n": len(sessions), "threshold": threshold if method == "confidence" else None,
            "max_steps": max_steps if method == "confidence" else None,
            "seconds": round(time.perf_counter() - start, 1), "accuracy": field_accuracy(texts, [s.record for s in sessions]),
            "examples": texts[:3]}


def accuracy_table(results: list[dict]) -> str:
    """Markdown table: one row per evaluation, one column per field."""
    head = "| method | n | " + " | ".join(FIELDS) + " | all |\n|---|---|" + "---|" * (len(FIELDS) + 1)
    rows = [f"| {r['method']} | {r['n']} | " + " | ".join(f"{100 * r['accuracy'][k]:.1f}%" for k in (*FIELDS, "all"))
            + " |" for r in results]
    return "\n".join([head, *rows])


# ---------------------------------------------------------------------------- pictures


def loss_curve_figure(history: list[dict], title: str = "Training loss (1/t-weighted masked cross-entropy)",
                      smooth: int = 20):
    """The loss per step and its running mean over `smooth` steps, against steps."""
    import plotly.graph_objects as go

    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    running = [sum(losses[max(0, i - smooth + 1) : i + 1]) / len(losses[max(0, i - smooth + 1) : i + 1])
               for i in range(len(losses))]
    fig = go.Figure([
        go.Scatter(x=steps, y=losses, mode="lines", name="per step", line=dict(width=1, color="#9ecae1")),
        go.Scatter(x=steps, y=running, mode="lines", name=f"mean of last {smooth}", line=dict(width=2, color="#08519c")),
    ])
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", yaxis_type="log", height=360,
                      margin=dict(l=60, r=10, t=50, b=40))
    return fig


class LiveLossPlot:
    """A loss curve that redraws in place while training runs (an IPython display handle).

    Use as `on_step` of train_model. Redraws every `every` steps; outside a notebook it does nothing.
    """

    def __init__(self, history: list[dict], every: int = 10):
        self.history, self.every, self.handle = history, every, None

    def __call__(self, step, loss, elapsed):
        if step % self.every == 0:
            self.show()

    def show(self):
        try:
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython ships with jupyterlab
            return
        fig = loss_curve_figure(self.history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)


def accuracy_figure(results: list[dict], title: str = "Exact match per field on held-out sessions"):
    """Grouped bars: one group per field, one bar per evaluation (label = its "method")."""
    import plotly.graph_objects as go

    keys = (*FIELDS, "all")
    fig = go.Figure([go.Bar(name=r.get("label", r["method"]), x=list(keys),
                            y=[100 * r["accuracy"][k] for k in keys],
                            text=[f"{100 * r['accuracy'][k]:.0f}%" for k in keys], textposition="outside")
                     for r in results])
    fig.update_layout(title=title, yaxis_title="% exact match", yaxis_range=[0, 110], barmode="group", height=380,
                      margin=dict(l=60, r=10, t=50, b=40))
    return fig


# ---------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, model: TransformerLM, vocab: Vocab, meta: dict | None = None, half: bool = True) -> Path:
    """Write config, vocab (plain lists) and weights (float16 unless half=False) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to wte
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    blob = {"format": CHECKPOINT_FORMAT, "model_config": model.config.to_dict(), "vocab": vocab.to_dict(),
            "state_dict": state, "meta": meta or {}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)  # a reader never sees half a file
    return path


def load_checkpoint(path=DEFAULT_CHECKPOINT, device="cpu") -> tuple[TransformerLM, Vocab, dict]:
    """(model in eval mode, vocab, meta) from a checkpoint, read with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: {REBUILD_HINT}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holds objects weights_only refuses
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}); {REBUILD_HINT}") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path} has format {found!r}, expected {CHECKPOINT_FORMAT!r}; {REBUILD_HINT}")
    try:
        vocab = Vocab.from_dict(blob["vocab"])
        config = ModelConfig(**blob["model_config"])
        if config.vocab_size != vocab.size:
            raise ValueError(f"model vocab_size {config.vocab_size} != stored vocab size {vocab.size}")
        model = TransformerLM(config)
        state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not match this code ({type(exc).__name__}: {exc}); {REBUILD_HINT}") from None
    model.lm_head.weight = model.wte.weight
    return model.to(device).eval(), vocab, dict(blob.get("meta", {}))


# ---------------------------------------------------------------------------- command line


def _write_report(out: Path, meta: dict) -> None:
    (out / "diffusion.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# The shipped toy diffusion checkpoint", "",
        f"Made by `{meta['command']}` on {meta['device']} ({meta['machine']}), torch {meta['torch']}.", "",
        f"- parameters: {meta['parameters']:,}", f"- steps: {meta['steps']} x batch {meta['train']['batch_size']}",
        f"- training time: {meta['train_seconds'] / 60:.1f} min, {meta['tokens_per_s']:.0f} tokens/s "
        f"(torch threads: {meta['train']['threads'] or 'default'})",
        f"- final training loss (mean of last 100 steps): {meta['final_loss']:.4f}",
        f"- answer region: {meta['answer_len']} tokens", "",
        "Per-field exact match on held-out short sessions, record filled from a fully masked region:", "",
        accuracy_table(meta["evaluations"]) if meta.get("evaluations") else "(not evaluated)", "",
    ]
    for r in meta.get("evaluations", []):
        short = [k for k in FIELDS if r["accuracy"][k] < TARGET_ACCURACY]
        verdict = "reached" if not short else "NOT reached: below on " + ", ".join(short)
        lines.append(f"- target >= {TARGET_ACCURACY:.0%} exact match on every field, {r['method']} on {r['n']}: {verdict}")
    lines.append("")
    (out / "diffusion.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train (or score) the toy masked diffusion LM on the short corpus.")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT.parent)
    defaults = TrainConfig()
    parser.add_argument("--preset", choices=("auto", *PRESETS), default="auto",
                        help="model size and steps: 'cpu' or 'gpu'; auto picks by device. Flags below override it.")
    for name in ("n_layer", "n_head", "n_embd", "batch_size", "steps"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=None)
    for name in ("warmup", "seed", "extra_eos_max"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "min_lr", "t_floor"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    parser.add_argument("--time-budget", type=float, default=None, help="seconds; stop training early")
    parser.add_argument("--weighting", choices=WEIGHTINGS, default=defaults.weighting)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--limit", type=int, default=None, help="use only this many training sessions")
    parser.add_argument("--eval-n", type=int, default=500, help="held-out sessions for the final evaluation")
    parser.add_argument("--eval-every", type=int, default=1000, help="steps between quick evaluations (0: none)")
    parser.add_argument("--save-every", type=float, default=600, help="seconds between checkpoint saves")
    parser.add_argument("--methods", default="one_shot,confidence", help="final evaluation methods")
    parser.add_argument("--conf-steps", type=int, default=32, help="most model calls per record, confidence filling")
    parser.add_argument("--threshold", type=float, default=0.9, help="commit every prediction at least this sure")
    parser.add_argument("--eval-only", action="store_true", help="score the checkpoint in --out, do not train")
    parser.add_argument("--update-report", action="store_true", help="with --eval-only: store the scores beside the checkpoint")
    args = parser.parse_args(argv)

    from unmasked.sessions import load_short_sessions

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or pick_device(verbose=True).device
    ckpt = args.out / "diffusion.pt"
    test = load_short_sessions("test", limit=args.eval_n)
    methods = [m for m in args.methods.split(",") if m]

    if args.eval_only:
        model, vocab, meta = load_checkpoint(ckpt, device)
        results = [evaluate(model, vocab, test, meta["answer_len"], m, args.threshold, progress=True,
                            max_steps=args.conf_steps) for m in methods]
        print(accuracy_table(results))
        if args.update_report:  # replace earlier evaluations by the same method, keep the rest
            done = {r["method"] for r in results}
            meta["evaluations"] = [r for r in meta.get("evaluations", []) if r["method"] not in done] + results
            save_checkpoint(ckpt, model, vocab, meta)
            _write_report(args.out, meta)
        return 0

    preset = PRESETS[args.preset if args.preset != "auto" else ("gpu" if str(device).startswith("cuda") else "cpu")]
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    cfg = TrainConfig(**{k: getattr(args, k) for k in (
        "n_layer", "n_head", "n_embd", "batch_size", "steps", "warmup", "seed", "extra_eos_max", "lr", "min_lr",
        "t_floor", "weighting", "threads")}, time_budget_s=args.time_budget, device=device)
    seed_everything(cfg.seed)
    train = load_short_sessions("train", limit=args.limit)
    vocab = build_vocab(train)
    examples = [encode_example(s, vocab) for s in train]
    longest = max(len(t) for _, t in examples)
    answer_len = 8 * math.ceil((longest + 8) / 8)  # room for a slightly longer held-out record
    cfg.max_len = 8 * math.ceil((max(len(p) for p, _ in examples) + answer_len + 64) / 8)
    model = new_model(vocab, cfg)
    print(f"{len(train)} sessions, vocab {vocab.size}, answer region {answer_len}, "
          f"{model.num_params():,} parameters, device {device}, threads {torch.get_num_threads()}")
    quick = test[:100]
    evals: list[dict] = []
    last_save = [time.perf_counter()]
    run_start = time.perf_counter()

    def meta_now(history, evaluations):
        secs = history[-1]["seconds"] if history else 0.0
        return {
            "command": "python -m unmasked.train " + " ".join(argv if argv is not None else sys.argv[1:]),
            "device": str(device), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "torch": str(torch.__version__), "parameters": model.num_params(), "train": asdict(cfg),
            "n_train_sessions": len(train), "answer_len": answer_len, "steps": len(history),
            "train_seconds": round(secs, 1),
            "tokens_per_s": history[-1]["tokens"] / max(secs, 1e-9) if history else 0.0,
            "final_loss": sum(h["loss"] for h in history[-100:]) / max(1, len(history[-100:])),
            "loss_curve": [[h["step"], round(h["loss"], 4)] for h in history[:: max(1, len(history) // 400)]],
            "quick_evals": evals, "evaluations": evaluations,
        }

    history: list[dict] = []

    def on_step(step, loss, elapsed):
        if args.eval_every and step % args.eval_every == 0:
            r = evaluate(model, vocab, quick, answer_len, "one_shot")
            evals.append({"step": step, "seconds": round(elapsed, 1), "accuracy": r["accuracy"]})
            print(f"step {step} ({elapsed / 60:.1f} min) one-shot on {len(quick)}: "
                  + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["accuracy"].items()), flush=True)
            model.train()
        if time.perf_counter() - last_save[0] > args.save_every:
            save_checkpoint(ckpt, model, vocab, meta_now(history, []))
            last_save[0] = time.perf_counter()

    train_model(model, vocab, examples, cfg, on_step=on_step, progress=True, history=history)
    save_checkpoint(ckpt, model, vocab, meta_now(history, []))
    results = [evaluate(model, vocab, test, answer_len, m, args.threshold, progress=True, max_steps=args.conf_steps)
               for m in methods]
    meta = meta_now(history, results)
    meta["total_seconds"] = round(time.perf_counter() - run_start, 1)
    save_checkpoint(ckpt, model, vocab, meta)
    _write_report(args.out, meta)
    print(accuracy_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
