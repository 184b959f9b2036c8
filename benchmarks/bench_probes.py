"""How long the probe evaluation takes: 250 sessions x 4 probes x 6 contexts, deterministic, on the
CPU.

The six are the full-context baseline and the five offline rungs of the compaction ladder
(truncation, keep_last, observation_masking, extractive, anchored); the LLM compactor needs an
endpoint and is not run. Each session is compacted once per compactor (at the default 10:1
target), each context is answered by the deterministic Reader (4 probes) and scored by the
rubric. The target is at most 60 s. Prints measured figures; it is not a test.

    python benchmarks/bench_probes.py [--sessions 250] [--target 10] [--json data/bench/probes.json]
    python benchmarks/bench_probes.py --style paraphrased --sessions 60   # the same seeds, other
    phrasing

With --json it also writes the figures, the device, the command and the date to that file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from unmasked.env import pin_to_one_core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=250)
    parser.add_argument(
        "--target", type=float, default=10.0, help="target compression ratio (10 means 10:1)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures to this JSON file"
    )
    parser.add_argument(
        "--every",
        action="store_true",
        help="also run regenerate (the same as extractive for one compaction): every offline rung",
    )
    parser.add_argument(
        "--style",
        default="plain",
        help="plain: the committed sessions; paraphrased: their twins, generated now",
    )
    args = parser.parse_args()
    where = pin_to_one_core()

    import pandas as pd

    from unmasked.evaluation import DETERMINISTIC, evaluate, meets_bar, verdict_table
    from unmasked.sessions import load_sessions
    from unmasked.sessions.long import generate_session_range
    from unmasked.tokens import count_tokens

    count_tokens("warm up the tokenizer")  # load the encoding before the clock starts
    start = time.perf_counter()
    if args.style == "plain":
        sessions = load_sessions(limit=args.sessions)
    else:  # the committed sessions' twins: same seeds and lengths, the facts in other sentences
        sessions = generate_session_range(
            250, 0, 20_000, 150_000, 0, args.sessions, style=args.style
        )
    load_s = time.perf_counter() - start
    tokens = sum(s.n_tokens for s in sessions)

    start, cpu_start = time.perf_counter(), time.process_time()
    contexts = tuple(DETERMINISTIC) + (("regenerate",) if args.every else ())
    df = evaluate(sessions, contexts, target_ratio=1 / args.target, progress=True)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start

    per = df.drop_duplicates(["session", "compactor"]).groupby("compactor", sort=False)
    compaction = per["seconds"].sum()
    answering = df.groupby("compactor", sort=False)["answer_seconds"].sum()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"{where}"
    )
    print(
        f"{'loaded' if args.style == 'plain' else 'generated'} {len(sessions)} {args.style} "
        f"sessions ({tokens / 1e6:.1f}M tokens) in {load_s:.1f} s"
    )
    print(
        f"contexts run: {df['compactor'].nunique()} ({', '.join(contexts)}); "
        f"probes scored: {len(df)} = {len(sessions)} sessions x 4 probes x "
        f"{df['compactor'].nunique()}"
    )
    print(
        f"{'context':<22}{'compact s':>10}{'answer s':>10}{'mean score':>12}{'median ratio':>14}   "
        "(wall seconds)"
    )
    for name in contexts:
        rows = df[df["compactor"] == name]
        print(
            f"{name:<22}{compaction[name]:>10.1f}{answering[name]:>10.1f}{rows['score'].mean():>12.2f}"
            f"{rows['compression_ratio'].median():>14.1f}"
        )
    print(
        f"total: {total:.1f} s wall, {cpu:.1f} s CPU for {len(df)} probe scores (target <= 60 s): "
        f"{'MET' if total <= 60 else 'NOT MET'} (wall)"
    )
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print("\nmean score by compactor and category:")
    print(
        df.pivot_table(index="compactor", columns="category", values="score", sort=False)
        .round(2)
        .to_string()
    )
    print("\nwithin 0.3 of full context:")
    print(verdict_table(df).round(1).to_string())
    print("\nthe bar (every category within 0.3 at >= 10:1):")
    print(meets_bar(df, ["extractive", "anchored"]).round(2).to_string())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "benchmark": "probe evaluation",
            "command": "python " + " ".join(sys.argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
            f"visible, {where}",
            "python": platform.python_version(),
            "style": args.style,
            "sessions": len(sessions),
            "tokens": tokens,
            "contexts": list(contexts),
            "probe_scores": len(df),
            "load_seconds": round(load_s, 2),
            "wall_seconds": round(total, 2),
            "cpu_seconds": round(cpu, 2),
            "target_seconds": 60,
            "met": total <= 60,
            "mean_score": {
                name: {
                    cat: round(float(v), 3)
                    for cat, v in df[df["compactor"] == name]
                    .groupby("category")["score"]
                    .mean()
                    .items()
                }
                for name in contexts
            },
            "per_context": {
                name: {
                    "compact_seconds": round(float(compaction[name]), 2),
                    "answer_seconds": round(float(answering[name]), 2),
                    "mean_score": round(float(df[df["compactor"] == name]["score"].mean()), 3),
                    "median_ratio": round(
                        float(df[df["compactor"] == name]["compression_ratio"].median()), 2
                    ),
                }
                for name in contexts
            },
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")
    if cpu < 0.8 * total:
        print(
            f"note: the process had the CPU for only {100 * cpu / total:.0f}% of the wall time; "
            "other work on this machine slowed it down"
        )


if __name__ == "__main__":
    main()
