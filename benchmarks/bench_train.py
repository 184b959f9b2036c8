"""Measured training and filling speed of the toy diffusion LM (the shipped checkpoint's config).

    python benchmarks/bench_train.py [--steps 20] [--threads N] [--device cpu|cuda|mps]

Prints parameters, training tokens/s (every position of the padded batch through forward and
backward) and the speed of filling records one-shot and slot by slot. Figures depend on the machine
and on what else runs on it; the script says what it measured on, and times only steps after a
warm-up.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from unmasked.env import describe_machine, pick_device, seed_everything
from unmasked.sessions import load_short_sessions
from unmasked.train import (
    RecordLayout,
    TrainConfig,
    build_vocab,
    encode_example,
    encode_prompt,
    fill_answers,
    new_model,
    train_model,
)


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
    layout = RecordLayout.fit([s.record for s in sessions], vocab)
    examples = [encode_example(s, vocab, layout) for s in sessions]
    warmup = 3
    cfg = TrainConfig(steps=args.steps + warmup, device=device)
    cfg.max_len = cfg.prompt_room + layout.length(vocab)
    model = new_model(vocab, cfg)
    history = train_model(model, vocab, examples, cfg, progress=False)
    timed = history[warmup:]
    seconds = timed[-1]["seconds"] - history[warmup - 1]["seconds"]
    tokens = timed[-1]["tokens"] - history[warmup - 1]["tokens"]
    print(
        f"device: {device} ({describe_machine()}, torch threads "
        f"{torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"model: {cfg.n_layer} layers x {cfg.n_embd} wide, {cfg.n_head} heads, "
        f"{model.num_params():,} parameters"
    )
    print(
        f"training: {tokens / seconds:,.0f} tokens/s, {seconds / len(timed):.2f} s/step (batch "
        f"{cfg.batch_size}, "
        f"{len(timed)} timed steps)"
    )
    prompts = [encode_prompt(s, vocab) for s in load_short_sessions("test", limit=args.fill_n)]
    for method in ("one_shot", "slots"):
        start = time.perf_counter()
        fill_answers(model, vocab, prompts, layout, method=method)
        seconds = time.perf_counter() - start
        print(
            f"{method} filling: {len(prompts) / seconds:.1f} records/s "
            f"({seconds / len(prompts) * 1000:.0f} ms per record, "
            f"batches of 32; untrained, so its slots may end at other steps than a trained model's)"
        )


if __name__ == "__main__":
    main()
