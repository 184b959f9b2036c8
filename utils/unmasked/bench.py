"""Benchmarks that race the models on this machine: `python -m unmasked.bench decode`.

decode: tokens per second of the diffusion model against its autoregressive twin (same code, same
size), on held-out prompts, for
- autoregressive greedy decoding with a KV cache and without one (unmasked.autoregressive);
- diffusion at a fixed budget of K = L, L/2, L/4, L/8, L/16 passes, and adaptive at tau = 0.9
  (unmasked.sampling.fill_batch: greedy low-confidence unmasking, the whole batch at once);
for answer lengths L and batch sizes B. Each figure is the median of --repeats timed runs after
--warmup untimed ones, with torch.cuda.synchronize() around each run on a GPU. Tokens/s counts
the answer tokens written: B * L / seconds.

Accuracy stands beside every speed, so that fewer passes cannot buy speed with wrong answers: at L
= the record's length, each method writes the records of --accuracy-n held-out sessions and the
mean field exact match is reported (greedy decoding gives a row the same tokens at any batch size,
so one figure serves every batch). A model without a trained checkpoint is marked "untrained", and
other lengths, which are not a record, "not a record".

    python -m unmasked.bench decode                           # the full grid, JSON to data/bench/
    python -m unmasked.bench decode --lengths 64,218 --batches 1 --repeats 2 --threads 1
    python -m unmasked.bench decode --tiny                    # tiny random models: a smoke test

rescore: after the autoregressive twin is retrained, its accuracy column of a recorded race
measured again (its speeds do not depend on its weights); the JSON says so under "rescored":

    python -m unmasked.bench rescore data/bench/decode_cpu.json --threads 1

tau: forward passes per record against record accuracy as the adaptive threshold tau moves from
0.3 to 0.99, and the reliability curve (committed-token confidence against correctness) at each
tau, for the shipped diffusion checkpoint on held-out sessions (sampling.tau_sweep):

    python -m unmasked.bench tau --n 64                       # JSON to data/bench/tau_<device>.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from unmasked.autoregressive import banned_ids, greedy_decode
from unmasked.checkpoints import (
    DEFAULT_AR_CHECKPOINT,
    DEFAULT_CHECKPOINT,
    REPO_ROOT,
    load_checkpoint,
    same_corpus,
)
from unmasked.env import describe_machine
from unmasked.records import (
    FIELDS,
    RecordLayout,
    answer_text,
    build_vocab,
    encode_example,
    encode_prompt,
    field_accuracy,
)
from unmasked.sampling import TAUS, calibration_error, fill_batch, reliability_curve, tau_sweep

DIVISORS = (1, 2, 4, 8, 16)  # diffusion runs K = L // d passes
TAU = 0.9
COLUMNS = ("L", "batch", "method", "passes/record", "tokens/s", "x AR cache", "accuracy")


def decode_methods(
    length: int, divisors: Sequence[int] = DIVISORS, tau: float | None = TAU
) -> list[dict]:
    """The methods raced at answer length L, in table order: K = L // d for each divisor d
    (duplicates dropped), then adaptive at tau (None: none)."""
    out = [
        {"method": "AR, KV cache", "arch": "autoregressive", "cache": True},
        {"method": "AR, no cache", "arch": "autoregressive", "cache": False},
    ]
    seen = set()
    for d in divisors:
        k = max(1, length // d)
        if k not in seen:
            seen.add(k)
            out.append(
                {
                    "method": f"diffusion K=L/{d}" if d > 1 else "diffusion K=L",
                    "arch": "diffusion",
                    "K": k,
                }
            )
    if tau is not None:
        out.append({"method": f"diffusion tau={tau}", "arch": "diffusion", "tau": tau})
    return out


def run_method(
    method: dict, models: dict, prompts: list[list[int]], length: int, vocab
) -> tuple[list[list[int]], float]:
    """(written answer ids per prompt, mean forward passes per record) for one method of
    decode_methods. Why one entry point: the timed race, the accuracy scores and the warm-ups all
    write records the same way, so a change to a sampler's knobs reaches all of them."""
    model = models[method["arch"]]["model"]
    if method["arch"] == "autoregressive":
        return greedy_decode(model, prompts, length, vocab, cache=method["cache"]), float(length)
    out = fill_batch(
        model,
        prompts,
        length,
        mask_id=vocab.mask_id,
        pad_id=vocab.pad_id,
        steps=method.get("K"),
        threshold=method.get("tau"),
        banned=banned_ids(vocab)[1:],
    )
    return out.x[:, -length:].tolist(), float(out.passes.float().mean())


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_method(
    method,
    models,
    prompts,
    length,
    vocab,
    device,
    warmup: int,
    repeats: int,
    budget_s: float | None = None,
    warmup_batch: int | None = None,
) -> dict:
    """Median seconds of `repeats` runs after `warmup` untimed ones, and what it buys; with
    budget_s, the runs stop once they add up to it (at least one run). warmup_batch runs the
    warm-up on that many prompts only: it loads the code paths and the allocator, and at batch
    64 on a CPU a full-batch warm-up would cost as much as a timed run."""
    for _ in range(warmup):
        run_method(method, models, prompts[:warmup_batch], length, vocab)
    seconds, passes = [], 0.0
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        _, passes = run_method(method, models, prompts, length, vocab)
        _sync(device)
        seconds.append(time.perf_counter() - start)
        if budget_s is not None and sum(seconds) >= budget_s:
            break
    median = statistics.median(seconds)
    return {
        "seconds": seconds,
        "median_s": median,
        "passes_per_record": passes,
        "tokens_per_s": len(prompts) * length / median,
    }


def record_accuracy(method, models, sessions, vocab, batch_size: int = 64) -> float:
    """Mean field exact match (%) of the records this method writes for `sessions`."""
    prompts = [encode_prompt(s, vocab) for s in sessions]
    length = models["layout"].length(vocab)
    texts = []
    for i in range(0, len(prompts), batch_size):
        answers, _ = run_method(method, models, prompts[i : i + batch_size], length, vocab)
        texts += [answer_text(a, vocab) for a in answers]
    acc = field_accuracy(texts, [s.record for s in sessions])
    return 100 * sum(acc[k] for k in FIELDS) / len(FIELDS)


def tiny_models(seed: int = 0) -> dict:
    """Untrained tiny twins on a few generated sessions: the smoke test's models."""
    from unmasked.sessions import generate_short_sessions
    from unmasked.train import TrainConfig, new_model, sized_for

    sessions = generate_short_sessions(12, seed=seed)
    vocab = build_vocab(sessions)
    layout = RecordLayout.fit([s.record for s in sessions], vocab)
    cfg = sized_for(
        TrainConfig(n_layer=1, n_head=2, n_embd=32),
        [encode_example(s, vocab, layout) for s in sessions],
    )
    torch.manual_seed(seed)
    diffusion = new_model(vocab, cfg)
    ar = new_model(vocab, replace(cfg, arch="autoregressive"))
    return {
        "vocab": vocab,
        "layout": layout,
        "sessions": sessions,
        "diffusion": {"model": diffusion.eval(), "trained": False, "path": None},
        "autoregressive": {"model": ar.eval(), "trained": False, "path": None},
    }


def _shown(path) -> str:
    """A path as the JSON records it: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def shipped_models(diffusion_path: Path, ar_path: Path, device, seed: int = 0) -> dict:
    """The shipped checkpoints; a missing autoregressive one is replaced by an untrained causal
    twin."""
    from unmasked.model import TransformerLM
    from unmasked.sessions import load_short_sessions

    model, vocab, layout, _ = load_checkpoint(diffusion_path, device)
    out = {
        "vocab": vocab,
        "layout": layout,
        "sessions": load_short_sessions("test"),
        "diffusion": {"model": model, "trained": True, "path": _shown(diffusion_path)},
    }
    if Path(ar_path).is_file():
        ar, ar_vocab, ar_layout, _ = load_checkpoint(ar_path, device)
        if not same_corpus(ar_vocab, ar_layout, vocab, layout) or not ar.config.causal:
            raise ValueError(
                f"{ar_path} is not the causal twin of {diffusion_path} (vocab, layout or mask "
                "differ)"
            )
        out["autoregressive"] = {"model": ar, "trained": True, "path": _shown(ar_path)}
    else:
        torch.manual_seed(seed)
        twin = TransformerLM(replace(model.config, causal=True)).to(device).eval()
        out["autoregressive"] = {"model": twin, "trained": False, "path": None}
    return out


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints, got {text!r}")
    return values


def _threads_and_device(args) -> str:
    """Apply --threads, and return --device or, without it, cuda where there is one, else cpu."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def decode_bench(args) -> dict:
    """Every row of the race, and its setting: the JSON that decode writes."""
    from tqdm.auto import tqdm

    device = _threads_and_device(args)
    models = tiny_models() if args.tiny else shipped_models(args.diffusion, args.ar, device)
    vocab, layout, sessions = models["vocab"], models["layout"], models["sessions"]
    A = layout.length(vocab)
    max_len = models["diffusion"]["model"].config.max_len
    prompts_all = [encode_prompt(s, vocab) for s in sessions]
    rows, accuracy = [], {}
    grid = [(L, B, m) for L in args.lengths for B in args.batches for m in decode_methods(L)]
    for L, B, method in tqdm(grid, desc="decode race", disable=args.quiet):
        prompts = [p for p in prompts_all if len(p) + L <= max_len]
        if not prompts:
            raise ValueError(f"no prompt leaves room for {L} answer tokens in max_len={max_len}")
        prompts = [prompts[i % len(prompts)] for i in range(B)]
        timing = time_method(
            method,
            models,
            prompts,
            L,
            vocab,
            device,
            args.warmup,
            args.repeats,
            budget_s=args.budget_s,
            warmup_batch=args.warmup_batch,
        )
        key = method["method"]
        if L != A:
            acc, note = None, "not a record"
        elif not models[method["arch"]]["trained"]:
            acc, note = None, "untrained"
        else:
            if key not in accuracy:
                accuracy[key] = record_accuracy(method, models, sessions[: args.accuracy_n], vocab)
            acc, note = (
                accuracy[key],
                f"mean field exact match on {min(args.accuracy_n, len(sessions))} held-out",
            )
        rows.append(
            {
                "L": L,
                "batch": B,
                **{k: v for k, v in method.items() if k != "cache"},
                "cache": method.get("cache"),
                **timing,
                "accuracy": acc,
                "accuracy_note": note,
            }
        )
    for r in rows:
        ar = next(
            x
            for x in rows
            if (x["L"], x["batch"], x["method"]) == (r["L"], r["batch"], "AR, KV cache")
        )
        r["speed_vs_ar_cache"] = r["tokens_per_s"] / ar["tokens_per_s"]
    return {
        "name": "decode",
        "what": "issue #19: tokens/s of the diffusion model and its autoregressive twin, "
        "accuracy beside every speed",
        "device": str(device),
        **(
            {"accelerator": torch.cuda.get_device_name(device)}
            if str(device).startswith("cuda")
            else {}
        ),
        "machine": describe_machine(),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "command": "python -m unmasked.bench " + " ".join(args.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "grid": {
            "lengths": args.lengths,
            "batches": args.batches,
            "warmup": args.warmup,
            "warmup_batch": args.warmup_batch,
            "repeats": args.repeats,
            "budget_s": args.budget_s,
            "accuracy_n": args.accuracy_n,
            "tiny": args.tiny,
            "record_length": A,
        },
        "models": {
            arch: {
                "path": models[arch]["path"],
                "trained": models[arch]["trained"],
                "parameters": models[arch]["model"].num_params(),
            }
            for arch in ("diffusion", "autoregressive")
        },
        "timing": "median seconds over the timed runs after warm-up (repeats, or fewer once "
        "they add up to budget_s); tokens/s = batch * L / median",
        "rows": rows,
        "crossover": crossover(rows),
    }


def crossover(rows: list[dict]) -> list[dict]:
    """Per (L, batch): the largest fixed K at which diffusion writes at least AR-with-cache's
    tokens/s (None: none)."""
    out = []
    for L, B in dict.fromkeys((r["L"], r["batch"]) for r in rows):
        ar = next(r for r in rows if (r["L"], r["batch"], r["method"]) == (L, B, "AR, KV cache"))
        faster = [
            r["K"]
            for r in rows
            if (r["L"], r["batch"]) == (L, B)
            and r.get("K")
            and r["tokens_per_s"] >= ar["tokens_per_s"]
        ]
        out.append(
            {
                "L": L,
                "batch": B,
                "ar_cache_tokens_per_s": ar["tokens_per_s"],
                "largest_K_at_least_as_fast": max(faster) if faster else None,
            }
        )
    return out


def rescore(result: dict, models: dict, arch: str, command: str, accuracy_n: int) -> dict:
    """A recorded race with one retrained model's accuracy measured again, its speeds kept.

    Only the autoregressive twin qualifies: greedy decoding writes L tokens in L passes whatever
    the weights, so its timings stand, while diffusion's adaptive passes depend on its weights
    (re-run the race for it). The JSON keeps the old figures and says when and why they
    changed under "rescored"."""
    if arch != "autoregressive":
        raise ValueError(
            f"only the autoregressive rows can be rescored: {arch}'s passes depend on its "
            "weights, so re-run the race"
        )
    if not models[arch]["trained"]:
        raise ValueError(f"no trained {arch} checkpoint to rescore with")
    A = result["grid"]["record_length"]
    if models["layout"].length(models["vocab"]) != A:
        raise ValueError(f"the race wrote {A}-token records; this model's layout differs")
    sessions = models["sessions"][:accuracy_n]
    out = json.loads(json.dumps(result))
    accuracy, before = {}, {}
    for r in out["rows"]:
        if r["arch"] != arch or r["L"] != A:
            continue
        key = r["method"]
        if key not in accuracy:
            method = {"method": key, "arch": arch, "cache": r["cache"]}
            accuracy[key] = record_accuracy(method, models, sessions, models["vocab"])
            before[key] = r["accuracy"]
        r["accuracy"] = accuracy[key]
        r["accuracy_note"] = f"mean field exact match on {len(sessions)} held-out (rescored)"
    out["models"][arch] = {
        **out["models"][arch],
        "path": models[arch]["path"],
        "parameters": models[arch]["model"].num_params(),
    }
    out.setdefault("rescored", []).append(
        {
            "arch": arch,
            "path": models[arch]["path"],
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "accuracy_n": len(sessions),
            "accuracy_before": before,
            "accuracy_after": accuracy,
            "why": "the checkpoint was retrained: its accuracy changed, its speed rows did not "
            "(greedy decoding runs L passes whatever the weights)",
        }
    )
    return out


def _accuracy_cell(r: dict) -> str:
    return f"{r['accuracy']:.1f}%" if r["accuracy"] is not None else r["accuracy_note"]


def decode_table(result: dict) -> str:
    """A markdown table of the race: one row per (L, batch, method)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in result["rows"]:
        cells = [
            str(r["L"]),
            str(r["batch"]),
            r["method"],
            f"{r['passes_per_record']:.1f}",
            f"{r['tokens_per_s']:,.1f}",
            f"{r['speed_vs_ar_cache']:.2f}",
            _accuracy_cell(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tau_bench(args) -> dict:
    """tau_sweep of the diffusion checkpoint, with a reliability curve and calibration error per
    tau."""
    from unmasked.sessions import load_short_sessions

    device = _threads_and_device(args)
    model, vocab, layout, _ = load_checkpoint(args.diffusion, device)
    sessions = load_short_sessions("test", limit=args.n)
    start = time.perf_counter()
    rows = tau_sweep(
        model,
        vocab,
        layout,
        sessions,
        args.taus,
        batch_size=args.batch_size,
        keep_tokens=True,
        progress=not args.quiet,
    )
    for r in rows:
        conf, correct, in_slot = r.pop("confidence"), r.pop("correct"), r.pop("in_slot")
        curve = reliability_curve(conf, correct, bins=args.bins)
        r["reliability"], r["calibration_error"] = curve, calibration_error(curve)
        # the JSON around the values is near-certain and right: the values are where confidence is
        # earned
        values = reliability_curve(
            [c for c, v in zip(conf, in_slot) if v],
            [k for k, v in zip(correct, in_slot) if v],
            bins=args.bins,
        )
        r["reliability_values"], r["calibration_error_values"] = values, calibration_error(values)
    return {
        "name": "tau",
        "what": "issue #19: passes per record against record accuracy over tau, and "
        "committed-token "
        "confidence against correctness (gold = the record in its slots): reliability over every "
        "answer position, "
        "reliability_values over the value slots only",
        "device": str(device),
        "machine": describe_machine(),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "command": "python -m unmasked.bench " + " ".join(args.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": _shown(args.diffusion),
        "n": len(sessions),
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }


def tau_table(result: dict) -> str:
    lines = [
        "| tau | passes/record (mean, median, max) | field exact match | all fields | calibration "
        "error"
        " (all positions, value slots) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['tau']} | {r['passes_mean']:.2f}, {r['passes_median']:g}, {r['passes_max']} | "
        f"{r['accuracy']:.1f}% "
        f"| {r['all_fields']:.1f}% | {r['calibration_error']:.4f}, "
        f"{r['calibration_error_values']:.4f} |"
        for r in result["rows"]
    ]
    return "\n".join(lines)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m unmasked.bench", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="bench", required=True)
    dec = sub.add_parser(
        "decode", help="diffusion against its autoregressive twin: tokens/s and accuracy"
    )
    dec.add_argument(
        "--lengths",
        type=_ints,
        default=[64, 128, 218],
        help="answer lengths L (default 64,128,218)",
    )
    dec.add_argument(
        "--batches", type=_ints, default=[1, 8, 64], help="batch sizes (default 1,8,64)"
    )
    dec.add_argument("--warmup", type=int, default=1)
    dec.add_argument("--repeats", type=int, default=3)
    dec.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="per cell: stop repeating once the timed runs add up to this many seconds "
        "(at least one run; the JSON keeps every run's seconds)",
    )
    dec.add_argument(
        "--warmup-batch",
        type=int,
        default=None,
        help="warm up on this many prompts instead of the whole batch (default: the whole "
        "batch); the first full-size run, often the only one under --budget-s, then pays the "
        "first allocation of full-size buffers",
    )
    dec.add_argument(
        "--accuracy-n",
        type=int,
        default=64,
        help="held-out sessions scored per method at L = record",
    )
    dec.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    dec.add_argument("--device", default=None)
    dec.add_argument("--diffusion", type=Path, default=DEFAULT_CHECKPOINT)
    dec.add_argument("--ar", type=Path, default=DEFAULT_AR_CHECKPOINT)
    dec.add_argument(
        "--tiny", action="store_true", help="tiny untrained models, L 8,16, batch 1,2: a smoke test"
    )
    dec.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default data/bench/decode_<device>.json; --tiny writes only with --out)",
    )
    dec.add_argument("--quiet", action="store_true", help="no progress bar")
    res = sub.add_parser(
        "rescore",
        help="measure one retrained model's accuracy column of a recorded race again (its "
        "speeds stand)",
    )
    res.add_argument("json", type=Path, help="the race's JSON, rewritten in place")
    res.add_argument("--arch", default="autoregressive", choices=("autoregressive", "diffusion"))
    res.add_argument("--threads", type=int, default=None)
    res.add_argument("--device", default=None)
    res.add_argument("--diffusion", type=Path, default=DEFAULT_CHECKPOINT)
    res.add_argument("--ar", type=Path, default=DEFAULT_AR_CHECKPOINT)
    tau = sub.add_parser("tau", help="passes against accuracy over tau, and the reliability curve")
    tau.add_argument("--n", type=int, default=64, help="held-out sessions")
    tau.add_argument("--taus", type=_floats, default=list(TAUS))
    tau.add_argument("--bins", type=int, default=10)
    tau.add_argument("--batch-size", type=int, default=32)
    tau.add_argument("--threads", type=int, default=None)
    tau.add_argument("--device", default=None)
    tau.add_argument("--diffusion", type=Path, default=DEFAULT_CHECKPOINT)
    tau.add_argument(
        "--out", type=Path, default=None, help="JSON path (default data/bench/tau_<device>.json)"
    )
    tau.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.argv = argv
    if args.bench == "tau":
        result = tau_bench(args)
        print(tau_table(result))
        out = (
            args.out
            or REPO_ROOT / "data" / "bench" / f"tau_{str(result['device']).split(':')[0]}.json"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}")
        return 0
    if args.bench == "rescore":
        recorded = json.loads(args.json.read_text(encoding="utf-8"))
        if recorded.get("name") != "decode" or recorded["grid"].get("tiny"):
            parser.error(f"{args.json} is not a recorded race of the shipped models")
        device = _threads_and_device(args)
        models = shipped_models(args.diffusion, args.ar, device)
        try:
            result = rescore(
                recorded,
                models,
                args.arch,
                "python -m unmasked.bench " + " ".join(argv),
                recorded["grid"]["accuracy_n"],
            )
        except ValueError as err:
            parser.error(str(err))
        print(decode_table(result))
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
        return 0
    if args.warmup < 0 or args.repeats < 1:
        parser.error("--warmup must be >= 0 and --repeats >= 1")
    if args.budget_s is not None and args.budget_s <= 0:
        parser.error("--budget-s must be > 0")
    if args.warmup_batch is not None and args.warmup_batch < 1:
        parser.error("--warmup-batch must be >= 1")
    if args.tiny:
        given = set(a.split("=")[0] for a in argv)
        args.lengths = args.lengths if "--lengths" in given else [8, 16]
        args.batches = args.batches if "--batches" in given else [1, 2]
        args.repeats = args.repeats if "--repeats" in given else 1
    result = decode_bench(args)
    print(decode_table(result))
    for c in result["crossover"]:
        k = c["largest_K_at_least_as_fast"]
        print(
            f"L={c['L']} batch={c['batch']}: AR with cache {c['ar_cache_tokens_per_s']:,.1f} "
            "tokens/s; "
            + (
                f"diffusion at least as fast up to K={k}"
                if k
                else "diffusion slower at every K raced"
            )
        )
    out = args.out
    if out is None and not args.tiny:
        out = REPO_ROOT / "data" / "bench" / f"decode_{str(result['device']).split(':')[0]}.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
