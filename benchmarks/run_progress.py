"""Where a training run spread over sittings stands (`python -m unmasked.train --stop-after`, then
`--resume`), read from the latest checkpoint in its --out folder.

    python benchmarks/run_progress.py /work/runs/ar_budget --arch autoregressive \
        --out data/bench/twin_budget_run.json

Prints steps and rows so far, the share of the diffusion model's budget (for the twin), and each
sitting's speed and each quick evaluation; writes them as JSON with the command and date, so that a
report can quote a run before it ends.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from unmasked.checkpoints import load_checkpoint
from unmasked.train import ARCHS, run_progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the run's --out folder")
    parser.add_argument("--arch", choices=ARCHS, default="autoregressive")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    meta = load_checkpoint(args.run_dir / f"{args.arch}.pt")[3]
    p = run_progress(meta)
    print(
        f"{p['arch']} run: step {p['steps_done']:,} of {p['steps_total']:,}, "
        f"{p['rows_all_stages']:,} rows over every stage"
        + (
            f" ({p['share_of_diffusion_budget']:.1%} of the diffusion model's "
            f"{p['diffusion_rows']:,})"
            if "diffusion_rows" in p
            else ""
        )
        + f"; {p['train_seconds'] / 3600:.2f} h of training at {p['tokens_per_s']:,.0f} tokens/s"
    )
    for i, s in enumerate(p["sittings"], 1):
        print(
            f"  sitting {i} ({s['date']}): {s['steps']:,} steps in {s['seconds'] / 60:.1f} min, "
            f"{s.get('tokens_per_s', 0):,} tokens/s on {s['threads']} threads"
        )
    for e in p["quick_evals"]:
        acc = ", ".join(f"{k} {100 * v:.0f}%" for k, v in e["accuracy"].items())
        print(f"  step {e['step']:,}: {e['method']}, {acc}")
    if args.out:
        record = {
            "what": "progress of a training run spread over sittings (benchmarks/run_progress.py)",
            "command": "python "
            + " ".join(["benchmarks/run_progress.py", *(argv or sys.argv[1:])]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **p,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
