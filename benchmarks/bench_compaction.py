"""How long compaction takes on a 150k-token session, on one CPU core.

The seed promises "about one second" for a compaction; the target here is that the extractive
compactor (the whole compact_context call: counting, splitting, extracting, rendering, budget
check) takes at most 1 s. Prints measured figures; it is not a test.

    python benchmarks/bench_compaction.py [--tokens 150000] [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from unmasked.env import pin_to_one_core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=150_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    where = pin_to_one_core()

    from unmasked.compaction import COMPACTORS, compact_context
    from unmasked.sessions import generate_session
    from unmasked.tokens import clear_count_cache, count_tokens

    session = generate_session(args.seed, args.tokens)
    count_tokens("warm up the tokenizer")
    print(
        f"machine: {platform.processor() or platform.machine()}, python "
        f"{platform.python_version()}, {where}"
    )
    print(f"session {session.id}: {session.n_tokens:,} tokens, {len(session.turns)} turns")

    # generating the session counted its turns; measure what a fresh history costs
    clear_count_cache()
    start = time.perf_counter()
    count_tokens(session.turns)
    print(f"counting the history alone: {time.perf_counter() - start:.3f} s")

    results = {}
    for name in COMPACTORS:
        if name == "llm":
            continue  # needs an endpoint; its time is the model's, not ours
        times = []
        for _ in range(args.repeats):
            # every run counts the history from cold, as for a history never seen
            clear_count_cache()
            ctx = compact_context(session.turns, session.task, compactor=name)
            times.append(ctx.seconds)
        results[name] = (statistics.median(times), max(times), ctx)
    print(f"\n{'compactor':<20} {'median s':>9} {'max s':>7} {'tokens after':>13} {'summary':>8}")
    for name, (median, worst, ctx) in results.items():
        print(
            f"{name:<20} {median:>9.3f} {worst:>7.3f} {ctx.compacted_tokens:>13,} "
            f"{ctx.summary_tokens:>8,}"
        )
    median = results["extractive"][0]
    verdict = "meets" if median <= 1.0 else "MISSES"
    print(
        f"\nextractive compactor on {session.n_tokens:,} tokens, one core: median {median:.3f} s "
        "over "
        f"{args.repeats} runs ({verdict} the 1 s target)"
    )


if __name__ == "__main__":
    main()
