"""What the record decoder's two savings of issue #26 buy, measured before against after in one run.

    python benchmarks/bench_fill.py [--n 32] [--repeats 3] [--forward-repeats 15] [--threads 1]

1. Logits only where the decoder can commit: one forward pass of the shipped checkpoint over real
   held-out prompts with a fully masked answer, the output layer and softmax at every position
   (before) against only at the positions a decoding step can commit (after).
2. Finished rows dropped: seconds per record for slot filling of --n held-out records at batch 32
   and at batch 1, with the decoder as it was (tests/decode_before.py) and as it is.

Variants take turns within each repeat (so that a change in the machine's load hits them alike),
and each figure is the median over repeats. Each is timed twice: wall-clock seconds, and the CPU
seconds of this process (time.process_time), which other programs on a shared machine disturb far
less; with one torch thread (the default) the two agree on an idle machine, and the ratios use CPU
seconds. It prints a table and writes the figures, with the device, torch version, command and
date, to data/bench/fill_cost.json (--out). Figures depend on the machine and on what else runs on
it; the JSON records the load average too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from unmasked.env import describe_machine
from unmasked.sessions import load_short_sessions
from unmasked.train import (
    DEFAULT_CHECKPOINT,
    _answer_batch,
    encode_prompt,
    fill_answers,
    load_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
# the decoder before issue #26, kept there as the tests' reference
sys.path.insert(0, str(ROOT / "tests"))

from decode_before import fill_answers_before, predict_before  # noqa: E402 (after the path above)


def _predict(model, ids, vocab, at):
    """(confidence, token) at the True positions of `at`: the prediction a record decoding step
    makes since issue #19 (output layer at `at` only, float64 softmax, as sampling.commit_step)."""
    logits = model(ids, at=at).double()
    logits[..., [vocab.mask_id, vocab.pad_id, vocab.sep_id]] = -float("inf")
    return logits.softmax(dim=-1).max(dim=-1)


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) that fn() took."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in pairs), statistics.median(c for _, c in pairs)


def candidate_masks(ids: torch.Tensor, layout, vocab) -> dict[str, torch.Tensor]:
    """Where a decoding step can commit, for a fully masked answer: (B, T) bool per kind of step."""
    A = layout.length(vocab)
    template = torch.tensor(layout.slot_index(vocab)) < 0
    leftmost = torch.zeros(A, dtype=torch.bool)
    for _, lo, _hi in layout.field_spans(vocab):
        leftmost[lo] = True
    out = {}
    for name, where in (
        ("confidence step (every masked answer position)", torch.ones(A, dtype=torch.bool)),
        ("first slots step (template + 6 leftmost)", template | leftmost),
        ("later slots step (6 leftmost)", leftmost),
    ):
        at = torch.zeros_like(ids, dtype=torch.bool)
        at[:, -A:] = where
        out[name] = at
    return out


def bench_forward(model, vocab, layout, prompts, repeats: int) -> list[dict]:
    """Median seconds of one prediction call, every position against the candidates only."""
    rows = []
    for batch in (32, 1):
        ids = _answer_batch(prompts[:batch], layout.length(vocab), vocab)
        variants = {"before: every position": lambda ids=ids: predict_before(model, ids, vocab)}
        at_count = {"before: every position": ids.numel()}
        for name, at in candidate_masks(ids, layout, vocab).items():
            variants["after: " + name] = lambda ids=ids, at=at: _predict(model, ids, vocab, at)
            at_count["after: " + name] = at.sum()
        times = {name: [] for name in variants}
        with torch.no_grad():
            for fn in variants.values():  # warm-up
                fn()
            for _ in range(repeats):
                for name, fn in variants.items():
                    times[name].append(_timed(fn))
        base = _medians(times["before: every position"])[1]
        for name, ts in times.items():
            wall, cpu = _medians(ts)
            rows.append(
                {
                    "batch": batch,
                    "positions": ids.shape[1],
                    "logit_rows": int(at_count[name]),
                    "variant": name,
                    "median_wall_s": wall,
                    "median_cpu_s": cpu,
                    "ratio_to_before": cpu / base,
                    "repeats": repeats,
                }
            )
    return rows


class RowCounter:
    """A forward pre-hook that counts model calls and the rows they carry (row-passes)."""

    def __init__(self):
        self.calls = self.rows = 0

    def __call__(self, module, args, kwargs=None):
        self.calls += 1
        self.rows += args[0].shape[0]


def bench_fill(model, vocab, layout, prompts, repeats: int) -> list[dict]:
    """Median seconds per record of slot filling at batch 32 and batch 1, before and after."""
    variants = {
        (code, batch): (
            lambda f=f, b=batch: f(model, vocab, prompts, layout, "slots", batch_size=b)
        )
        for code, f in (("before", fill_answers_before), ("after", fill_answers))
        for batch in (32, 1)
    }
    counter = RowCounter()
    hook = model.register_forward_pre_hook(counter)
    passes, answers = {}, {}
    for (
        key,
        fn,
    ) in variants.items():  # a first run of each: row-passes, and the same tokens from both
        counter.calls = counter.rows = 0
        answers[key] = fn()
        passes[key] = (counter.calls, counter.rows)
    hook.remove()
    same = len({json.dumps(a) for a in answers.values()}) == 1
    times = {key: [] for key in variants}
    for _ in range(repeats):
        for key, fn in variants.items():
            wall, cpu = _timed(fn)
            times[key].append((wall / len(prompts), cpu / len(prompts)))
    return [
        {
            "code": code,
            "batch": batch,
            "records": len(prompts),
            "repeats": repeats,
            "median_wall_s_per_record": _medians(times[(code, batch)])[0],
            "median_cpu_s_per_record": _medians(times[(code, batch)])[1],
            "model_calls": passes[(code, batch)][0],
            "row_passes_per_record": passes[(code, batch)][1] / len(prompts),
            "same_tokens_in_all_four": same,
        }
        for code, batch in variants
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="held-out records filled per variant")
    parser.add_argument("--repeats", type=int, default=3, help="timed fills per variant")
    parser.add_argument(
        "--forward-repeats", type=int, default=15, help="timed forward passes per variant"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench" / "fill_cost.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, vocab, layout, _ = load_checkpoint(args.checkpoint, "cpu")
    prompts = [encode_prompt(s, vocab) for s in load_short_sessions("test", limit=max(32, args.n))]
    load_before = os.getloadavg()[0]
    forward = bench_forward(model, vocab, layout, prompts, args.forward_repeats)
    fill = bench_fill(model, vocab, layout, prompts[: args.n], args.repeats)
    result = {
        "name": "fill_cost",
        "what": "issue #26: the record decoder's forward time (logits only at candidate positions) "
        "and slot "
        "filling's seconds per record (finished rows dropped), before against after, in one run",
        "device": "cpu",
        "machine": describe_machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": "python benchmarks/bench_fill.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(
            args.checkpoint.resolve().relative_to(ROOT)
            if args.checkpoint.resolve().is_relative_to(ROOT)
            else args.checkpoint
        ),
        "load_average": {"start": load_before, "end": os.getloadavg()[0]},
        "timing": "median over interleaved repeats; ratios and per-record figures in CPU seconds "
        "of this process "
        "(time.process_time), wall-clock seconds beside them",
        "forward": forward,
        "fill": fill,
    }
    by = {(r["code"], r["batch"]): r for r in fill}
    result["summary"] = {
        "forward_ratio_batch32_later_slots_step": next(
            r["ratio_to_before"]
            for r in forward
            if r["batch"] == 32 and r["variant"].startswith("after: later")
        ),
        "forward_ratio_batch32_confidence_step": next(
            r["ratio_to_before"]
            for r in forward
            if r["batch"] == 32 and r["variant"].startswith("after: confidence")
        ),
        "per_record_batch32_over_batch1_before": by["before", 32]["median_cpu_s_per_record"]
        / by["before", 1]["median_cpu_s_per_record"],
        "per_record_batch32_over_batch1_after": by["after", 32]["median_cpu_s_per_record"]
        / by["after", 1]["median_cpu_s_per_record"],
        "per_record_after_over_before_batch32": by["after", 32]["median_cpu_s_per_record"]
        / by["before", 32]["median_cpu_s_per_record"],
    }
    print(
        f"cpu ({result['machine']}), torch {result['torch']}, {result['threads']} thread(s), "
        f"load average {load_before:.1f} -> {result['load_average']['end']:.1f}"
    )
    print(
        "\nOne prediction call (forward + output layer + softmax), median over repeats; ratio of "
        "CPU time:"
    )
    for r in forward:
        print(
            f"  batch {r['batch']:>2} x {r['positions']} positions, logits at {r['logit_rows']:>5} "
            f" {r['variant']:<56}"
            f" {1000 * r['median_cpu_s']:7.1f} ms CPU ({1000 * r['median_wall_s']:7.1f} wall)  "
            f"x{r['ratio_to_before']:.2f}"
        )
    print(f"\nSlot filling of {args.n} held-out records, median over {args.repeats} repeats:")
    for r in fill:
        print(
            f"  {r['code']:<6} batch {r['batch']:>2}: {r['median_cpu_s_per_record']:.3f} CPU "
            "s/record "
            f"({r['median_wall_s_per_record']:.3f} wall), "
            f"{r['row_passes_per_record']:.1f} row-passes/record, {r['model_calls']} model calls"
        )
    print(f"  same tokens from all four: {fill[0]['same_tokens_in_all_four']}")
    for k, v in result["summary"].items():
        print(f"  {k}: {v:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
