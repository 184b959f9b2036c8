"""Measured training and filling speed of the toy diffusion LM (the shipped checkpoint's config).

    python benchmarks/bench_train.py [--steps 20] [--threads N] [--device cpu|cuda|mps]

Prints parameters, training tokens/s (prompt + answer tokens through forward and backward) and the
speed of one-shot filling. Figures depend on the machine and on what else runs on it; the
script says what it measured on, and times only steps after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from unmasked.env import pick_device, seed_everything
from unmasked.sessions import load_short_sessions
from unmasked.train import TrainConfig, build_vocab, encode_example, fill_answers, new_model, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--fill-n", type=int, default=32)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device).device
    seed_everything(0)
    sessions = load_short_sessions("train", limit=2000)
    vocab = build_vocab(sessions)
    examples = [encode_example(s, vocab) for s in sessions]
    warmup = 3
    cfg = TrainConfig(steps=args.steps + warmup, device=device)
    model = new_model(vocab, cfg)
    history = train_model(model, vocab, examples, cfg, progress=False)
    timed = history[warmup:]
    seconds = timed[-1]["seconds"] - history[warmup - 1]["seconds"]
    tokens = timed[-1]["tokens"] - history[warmup - 1]["tokens"]
    print(f"device: {device} ({platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"model: {cfg.n_layer} layers x {cfg.n_embd} wide, {cfg.n_head} heads, {model.num_params():,} parameters")
    print(f"training: {tokens / seconds:,.0f} tokens/s, {seconds / len(timed):.2f} s/step (batch {cfg.batch_size}, "
          f"{len(timed)} timed steps)")
    prompts = [encode_example(s, vocab)[0] for s in load_short_sessions("test", limit=args.fill_n)]
    start = time.perf_counter()
    fill_answers(model, vocab, prompts, 200, method="one_shot")
    seconds = time.perf_counter() - start
    n_tokens = sum(len(p) + 200 for p in prompts)
    print(f"one-shot filling: {len(prompts) / seconds:.1f} records/s ({n_tokens / seconds:,.0f} tokens/s forward only)")


if __name__ == "__main__":
    main()
