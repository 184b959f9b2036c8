"""`python -m unmasked.sessions --n 250 --seed 0 --out data/sessions`: regenerate data/sessions.

Writes the long sessions, the short corpus (train and held-out test) and a manifest with
each file's sha256. Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .long import STYLES, generate_sessions
from .short import generate_short_splits
from .store import (
    LONG_PATTERN,
    LONG_SHARD,
    SHORT_FILES,
    long_shard_name,
    write_jsonl_gz,
    write_manifest,
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m unmasked.sessions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--n", type=int, default=250, help="long sessions (default 250)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default data/sessions (plain) or data/sessions_<style>",
    )
    parser.add_argument(
        "--style",
        choices=STYLES,
        default="plain",
        help="carrier phrasing of the planted facts (default plain, the committed data)",
    )
    parser.add_argument("--min-tokens", type=int, default=20_000)
    parser.add_argument("--max-tokens", type=int, default=150_000)
    parser.add_argument(
        "--short-train", type=int, default=20_000, help="short training sessions (0: skip)"
    )
    parser.add_argument("--short-test", type=int, default=1_000, help="held-out short sessions")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for name in ("n", "seed", "short_train", "short_test"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")

    out: Path = args.out or Path(
        "data/sessions" if args.style == "plain" else f"data/sessions_{args.style}"
    )
    out.mkdir(parents=True, exist_ok=True)
    entries = {"seed": args.seed, "files": {}}
    if args.style != "plain":
        entries["style"] = args.style
    t0 = time.perf_counter()
    if args.n:
        sessions = generate_sessions(
            args.n,
            args.seed,
            args.min_tokens,
            args.max_tokens,
            progress=not args.no_progress,
            style=args.style,
        )
        for old in out.glob(LONG_PATTERN):  # a smaller --n must not leave stale shards behind
            old.unlink()
        for k in range(0, len(sessions), LONG_SHARD):
            shard = sessions[k : k + LONG_SHARD]
            name = long_shard_name(k // LONG_SHARD)
            sha = write_jsonl_gz(out / name, "long", (s.to_dict() for s in shard))
            entries["files"][name] = {"count": len(shard), "sha256": sha}
        entries["long"] = {
            "count": len(sessions),
            "min_tokens": args.min_tokens,
            "max_tokens": args.max_tokens,
            "tokens": sum(s.n_tokens for s in sessions),
        }
        print(
            f"{out}/{LONG_PATTERN}: {len(sessions)} sessions, "
            f"{sum(s.n_tokens for s in sessions):,} tokens"
        )
    if args.short_train:
        train, test = generate_short_splits(args.short_train, args.short_test, args.seed)
        for split, rows in (("train", train), ("test", test)):
            sha = write_jsonl_gz(
                out / SHORT_FILES[split],
                "short",
                ({"id": s.id, "text": s.text, "record": s.record} for s in rows),
            )
            entries["files"][SHORT_FILES[split]] = {"count": len(rows), "sha256": sha}
            print(f"{out / SHORT_FILES[split]}: {len(rows)} short sessions")
    write_manifest(out, entries)
    print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
