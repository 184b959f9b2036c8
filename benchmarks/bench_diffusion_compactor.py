"""The diffusion compactor on the probe harness, and its speed against the autoregressive twin.

Contexts compared on the same sessions, at the same 10:1 target and keep_last=3 as the probe
benchmark (bench_probes.py): full context (the baseline), observation_masking, extractive,
anchored, diffusion (the toy model's merged records, the rest of the budget spent on the newest
exchanges verbatim, as anchored does), and diffusion_record (the merged records alone: what the
model itself carries). Sessions of both surface styles: the committed plain sessions and their
paraphrased twins (same seeds and lengths, the facts in other sentences). Then the transcript
fixtures (tests/fixtures/transcripts, structural probes) at notebook 08's settings for them
(target 0.6, keep_last 1). Each table gives the mean probe score (0-5) per category and whether
the context is within 0.3 of full context.

Speed: the same windows of the same sessions written by the diffusion model (adaptive, tau=0.9,
batched) and by the autoregressive twin (greedy, KV cache, batched), timed one after the other in
this run; the ratio is AR seconds / diffusion seconds. Without data/checkpoints/autoregressive.pt
the twin is untrained (random weights of the same size): its time is a fair figure (it always
writes all 218 record tokens), its records are noise and are not scored.

    python benchmarks/bench_diffusion_compactor.py --sessions 8 --json build/dc_8.json

All 250 sessions of each style took 48 and 50 minutes a style on one core of the 2-core machine
(data/bench/diffusion_compactor_250.json, its parts' wall_seconds), so the styles run as two
processes on two cores, then are merged into one file:

    python benchmarks/bench_diffusion_compactor.py --sessions 250 --styles plain --core 0 \
        --json build/dc_plain.json &
    python benchmarks/bench_diffusion_compactor.py --sessions 250 --styles paraphrased --core 1 \
        --no-extras --json build/dc_para.json
    wait
    python benchmarks/bench_diffusion_compactor.py --merge build/dc_plain.json build/dc_para.json \
        --json data/bench/diffusion_compactor_250.json

When only the twin is retrained, its rows are scored again and the rest of the file stands
(--twin-only scores full context, as a check, and the twin; the file says so under "rescored"):

    python benchmarks/bench_diffusion_compactor.py --twin-only --sessions 250 --styles plain \
        --core 0 --json build/twin_plain.json &
    python benchmarks/bench_diffusion_compactor.py --twin-only --sessions 250 \
        --styles paraphrased --core 1 --no-extras --json build/twin_para.json
    wait
    python benchmarks/bench_diffusion_compactor.py --replace-twin \
        data/bench/diffusion_compactor_250.json build/twin_plain.json build/twin_para.json \
        --json data/bench/diffusion_compactor_250.json

Prints measured figures; it is not a test. Runs on one core (unmasked.env.pin_to_one_core).
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

CATEGORY_CONTEXTS = ("full", "observation_masking", "extractive", "anchored")


def _means(df) -> dict:
    return {
        name: {
            cat: round(float(v), 3)
            for cat, v in df[df["compactor"] == name].groupby("category")["score"].mean().items()
        }
        for name in dict.fromkeys(df["compactor"])
    }


def _verdicts(df) -> dict:
    from unmasked.evaluation import verdicts

    v = verdicts(df)
    return {
        name: {
            r.category: {"gap": round(float(r.gap), 3), "within_0.3": bool(r.within)}
            for r in v[v["compactor"] == name].itertuples()
        }
        for name in dict.fromkeys(v["compactor"])
        if name != "full"
    }


def _session_scores(df, ids: list[str]) -> dict:
    """Each session's mean score per context and category, in `ids` order: the spread behind
    the means, for intervals and histograms."""
    table = df.groupby(["compactor", "category", "session"])["score"].mean()
    return {
        name: {
            cat: [round(float(table[name, cat].get(i, float("nan"))), 3) for i in ids]
            for cat in sorted(set(df.loc[df["compactor"] == name, "category"]))
        }
        for name in dict.fromkeys(df["compactor"])
    }


def _show(title: str, df) -> None:
    import pandas as pd

    from unmasked.evaluation import verdict_table

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    order = list(dict.fromkeys(df["compactor"]))
    print(f"\n== {title}: mean score (0-5) by context and category")
    table = df.pivot_table(index="compactor", columns="category", values="score", sort=False)
    table["compact s/session"] = (
        df.drop_duplicates(["session", "compactor"]).groupby("compactor")["seconds"].mean()
    )
    print(table.reindex(order).round(2).to_string())
    print(f"\n== {title}: within 0.3 of full context")
    print(verdict_table(df).round(1).to_string())


def _kept(records) -> dict:
    """How many windows kept each field after grounding: what the model contributed."""
    from unmasked.compaction.diffusion import FIELDS

    return {
        "windows": len(records),
        **{k: sum(bool(r.kept[k]) for r in records) for k in FIELDS},
        "passes_per_window": round(sum(r.passes for r in records) / max(1, len(records)), 2),
    }


def _header(args, where: str, torch, diffusion, ar_trained: bool) -> dict:
    """What every result file says about how it was made."""
    return {
        "benchmark": "diffusion compactor on the probe harness, and its speed vs the AR twin",
        "command": "python " + " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} "
        f"cores visible, {where}",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "settings": {
            "target_ratio": 1 / args.target,
            "keep_last": 3,
            "tau": diffusion.tau,
            "turn_tokens": diffusion.turn_tokens,
            "batch_size": args.batch_size,
            "prompt_room": diffusion.prompt_room(),
            **({} if args.no_extras else {"fixtures": {"target_ratio": 0.6, "keep_last": 1}}),
        },
        "notes": {
            "diffusion": "merged records, then the newest exchanges verbatim to the budget "
            "(as anchored); its task line is the given current task, not model output",
            "diffusion_record": "the merged records alone; it reads the records the "
            "diffusion context wrote for the same windows, so its seconds exclude the model",
            "fields_kept": "windows whose record kept the field after grounding (a value "
            "not found in its window is dropped)",
        },
        "ar_trained": ar_trained,
        "ar_note": (
            "trained twin: scored" + ("" if args.no_extras or args.twin_only else " and timed")
        )
        if ar_trained
        else "no data/checkpoints/autoregressive.pt: an untrained twin, timed only",
    }


def _write_json(path: Path, record: dict) -> None:
    """Write a result file (a part, a merge or a whole run) and say where, with its styles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}: styles {', '.join(record.get('styles', {})) or 'none'}")


def _run_key(part: dict) -> str:
    """What parts of one result must share: settings (fixtures aside), twin and torch."""
    settings = {k: v for k, v in part.get("settings", {}).items() if k != "fixtures"}
    return json.dumps([settings, part.get("ar_trained"), part.get("torch")], sort_keys=True)


def merge_parts(parts: list[dict]) -> dict:
    """One result from runs over different styles, run side by side: every part's styles, the
    fixtures and speed of the one part that ran them, the rest of the header from the first
    part, and each part's command, date and device (its "parts")."""
    if not parts:
        raise ValueError("nothing to merge")
    extras = [p for p in parts if "speed" in p or "fixtures" in p]
    if len(extras) > 1:
        raise ValueError("more than one part ran the fixtures and the speed race")
    sizes = {len(s["sessions"]) for p in parts for s in p.get("styles", {}).values()}
    if len({_run_key(p) for p in parts}) > 1 or len(sizes) > 1:
        raise ValueError(
            "parts were run at different settings, twins, torch versions or session counts: "
            + "; ".join(p.get("command", "?") for p in parts)
        )
    first = extras[0] if extras else parts[0]
    merged = {k: v for k, v in first.items() if k not in ("styles", "wall_seconds")}
    merged["styles"] = {}
    for part in parts:
        overlap = set(merged["styles"]) & set(part.get("styles", {}))
        if overlap:
            raise ValueError(f"two parts score the same style: {sorted(overlap)}")
        merged["styles"].update(part.get("styles", {}))
    if "speed" in merged and len(parts) > 1:
        merged["speed"]["parallel_note"] = (
            "timed in its own part while the other parts ran on other cores (each process pinned "
            "to one core; they share memory bandwidth and the last-level cache)"
        )
    merged["command"] = " & ".join(p["command"] for p in parts)
    merged["parts"] = [
        {k: p.get(k) for k in ("command", "date", "device", "wall_seconds")} for p in parts
    ]
    merged["wall_seconds"] = max(p.get("wall_seconds", 0.0) for p in parts)
    return merged


TWIN = "autoregressive"
TWIN_KEYS = ("mean_score", "verdicts", "compact_seconds_per_session", "median_ratio")


def replace_twin(recorded: dict, part: dict) -> dict:
    """The recorded run with the twin's scores taken from a --twin-only run of a retrained twin.

    Every other context's figures stand, and so does the speed race: greedy decoding writes 218
    tokens a window whatever the weights. A part whose full-context scores differ from the
    recorded ones is refused: the sessions or the harness changed, and the whole run must be
    redone."""
    if not part.get("ar_trained"):
        raise ValueError("the part scored no trained twin")
    if _run_key(part) != _run_key(recorded):
        raise ValueError("the part was run at other settings or torch than the recorded run")
    out = json.loads(json.dumps(recorded))
    places = [(out["styles"].get(k), v, k) for k, v in part.get("styles", {}).items()]
    if "fixtures" in part:
        places.append((out.get("fixtures"), part["fixtures"], "fixtures"))
    if not places:
        raise ValueError("the part scored nothing")
    before = {}
    for old, new, name in places:
        if old is None:
            raise ValueError(f"the recorded run has no {name}")
        if new.get("sessions", new.get("files")) != old.get("sessions", old.get("files")):
            raise ValueError(f"{name}: the part scored other sessions")
        if new["mean_score"]["full"] != old["mean_score"]["full"]:
            raise ValueError(
                f"{name}: full context scores differ from the recorded run's, so the harness "
                "or the sessions changed: redo the whole run"
            )
        before[name] = old["mean_score"].get(TWIN)
        for key in (*TWIN_KEYS, "session_scores"):
            if key in old:
                old[key][TWIN] = new[key][TWIN]
    out.setdefault("rescored", []).append(
        {
            **{k: part.get(k) for k in ("command", "date", "device", "wall_seconds")},
            "context": TWIN,
            "scored": [name for _, _, name in places],
            "mean_score_before": before,
            "why": "the twin was retrained: its scores were measured again; every other "
            "context's scores and the speed race stand (greedy decoding's time does not depend "
            "on the weights)",
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="sessions per style")
    parser.add_argument("--time-sessions", type=int, default=4, help="sessions timed vs the twin")
    parser.add_argument(
        "--short-sessions", type=int, default=64, help="held-out short sessions, the contrast"
    )
    parser.add_argument("--target", type=float, default=10.0, help="10 means 10:1")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--styles", default="plain,paraphrased", help="surface styles to score, comma-separated"
    )
    parser.add_argument("--core", type=int, default=None, help="the CPU core to run on")
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="score the sessions only: no transcript fixtures, no speed race",
    )
    parser.add_argument(
        "--twin-only",
        action="store_true",
        help="score full context and the trained twin only (sessions, and the fixtures unless "
        "--no-extras; no speed race): a part for --replace-twin",
    )
    parser.add_argument(
        "--replace-twin",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="RECORDED PART [PART ...]: the recorded run with the twin's scores from "
        "--twin-only parts, written to --json, and exit",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="merge these JSON files (runs over different styles) into --json, and exit",
    )
    args = parser.parse_args()
    if args.merge:
        if args.json is None:
            parser.error("--merge needs --json, the file to write")
        merged = merge_parts([json.loads(p.read_text()) for p in args.merge])
        _write_json(args.json, merged)
        return
    if args.replace_twin:
        if args.json is None or len(args.replace_twin) < 2:
            parser.error("--replace-twin needs the recorded run, at least one part, and --json")
        out = json.loads(args.replace_twin[0].read_text())
        for p in args.replace_twin[1:]:
            out = replace_twin(out, json.loads(p.read_text()))
        _write_json(args.json, out)
        return
    styles = [s for s in args.styles.split(",") if s]
    if not styles or set(styles) - {"plain", "paraphrased"}:
        parser.error(f"--styles takes plain and/or paraphrased, got {args.styles!r}")
    where = pin_to_one_core(args.core)

    import pandas as pd
    import torch

    from unmasked.checkpoints import DEFAULT_AR_CHECKPOINT, REPO_ROOT
    from unmasked.compaction import split_history, to_messages
    from unmasked.compaction.diffusion import (
        AutoregressiveCompactor,
        DiffusionCompactor,
        short_session_window,
        untrained_autoregressive,
    )
    from unmasked.evaluation import evaluate
    from unmasked.records import field_accuracy
    from unmasked.sessions import load_sessions, load_short_sessions, load_transcript
    from unmasked.sessions.long import generate_session_range
    from unmasked.tokens import count_tokens

    count_tokens("warm up the tokenizer")
    started = time.perf_counter()
    plain = load_sessions(limit=args.sessions)
    paraphrased = (
        generate_session_range(250, 0, 20_000, 150_000, 0, args.sessions, style="paraphrased")
        if "paraphrased" in styles
        else []
    )
    fixtures = sorted((REPO_ROOT / "tests/fixtures/transcripts").glob("*"))
    transcripts = [load_transcript(p) for p in fixtures if p.name != "README.md"]

    class Recording(DiffusionCompactor):
        """The diffusion compactor, keeping every window's record for the fields-kept count."""

        seen: list = []

        def write_records(self, windows):
            out = super().write_records(windows)
            self.seen.extend(out)
            return out

    cache: dict = {}  # the record-only context reads the same windows: written once
    diffusion = Recording(batch_size=args.batch_size, cache=cache)
    record_only = DiffusionCompactor(batch_size=args.batch_size, cache=cache, fill=False)
    record_only.name = "diffusion_record"
    ar_trained = DEFAULT_AR_CHECKPOINT.is_file()
    contexts = [*CATEGORY_CONTEXTS, diffusion, record_only]
    if ar_trained:
        contexts.append(AutoregressiveCompactor(batch_size=args.batch_size))
    if args.twin_only:
        if not ar_trained:
            parser.error(f"--twin-only needs a trained twin at {DEFAULT_AR_CHECKPOINT}")
        contexts = ["full", contexts[-1]]

    result: dict = {"styles": {}}
    kept: dict = {}
    for style, sessions in (("plain", plain), ("paraphrased", paraphrased)):
        if style not in styles:
            continue
        diffusion.seen = []
        df = evaluate(sessions, contexts, target_ratio=1 / args.target, keep_last=3)
        _show(f"{style} sessions (n={len(sessions)})", df)
        kept[style] = _kept(diffusion.seen)
        result["styles"][style] = {
            "sessions": [s.id for s in sessions],
            "tokens": int(sum(s.n_tokens for s in sessions)),
            "mean_score": _means(df),
            "verdicts": _verdicts(df),
            "compact_seconds_per_session": {
                name: round(float(v), 3)
                for name, v in df.drop_duplicates(["session", "compactor"])
                .groupby("compactor", sort=False)["seconds"]
                .mean()
                .items()
            },
            "median_ratio": {
                name: round(float(v), 2)
                for name, v in df.groupby("compactor", sort=False)["compression_ratio"]
                .median()
                .items()
            },
            "fields_kept": kept[style],
            "session_scores": _session_scores(df, [s.id for s in sessions]),
        }

    if not args.no_extras:
        diffusion.seen = []
        fixture_df = evaluate(transcripts, contexts, target_ratio=0.6, keep_last=1, progress=False)
        kept["fixtures"] = _kept(diffusion.seen)
        _show(f"transcript fixtures (n={len(transcripts)}, structural probes)", fixture_df)
        result["fixtures"] = {
            "files": [p.name for p in fixtures if p.name != "README.md"],
            "fields_kept": kept["fixtures"],
            "mean_score": _means(fixture_df),
            "verdicts": _verdicts(fixture_df),
        }

    if args.no_extras or args.twin_only:
        wall = time.perf_counter() - started
        print(f"\nwall time {wall:.0f} s on {where}")
        if args.json is not None:
            record = {
                **_header(args, where, torch, diffusion, ar_trained),
                **result,
                "wall_seconds": round(wall, 1),
            }
            _write_json(args.json, record)
        return

    # ---- speed: the same windows through both models, one after the other
    twin = (
        AutoregressiveCompactor(batch_size=args.batch_size)
        if ar_trained
        else untrained_autoregressive(seed=0, batch_size=args.batch_size)
    )
    timer = DiffusionCompactor(batch_size=args.batch_size)  # no cache: every window written
    rows = []
    for s in plain[: args.time_sessions]:
        messages = to_messages(s.turns)
        pinned, cut = split_history(messages, 3)
        windows = timer.windows(messages[pinned:cut], s.task)
        t0 = time.perf_counter()
        timer.last_records = timer.write_records(windows)
        t_diff = time.perf_counter() - t0
        t0 = time.perf_counter()
        twin.write_records(windows)
        t_ar = time.perf_counter() - t0
        rows.append(
            {
                "session": s.id,
                "windows": len(windows),
                "diffusion_seconds": round(t_diff, 3),
                "diffusion_passes": timer.last_passes,
                "diffusion_passes_per_window": round(
                    sum(r.passes for r in timer.last_records) / max(1, len(windows)), 2
                ),
                "ar_seconds": round(t_ar, 3),
                "ar_passes": twin.last_passes,
                "ratio_ar_over_diffusion": round(t_ar / t_diff, 3),
            }
        )
    # the contrast: held-out training-style sessions, one window each, through the same path
    short = load_short_sessions("test")[: args.short_sessions]
    _, vocab, _ = timer.parts()
    short_windows = [short_session_window(s, vocab, timer.prompt_room()) for s in short]
    t0 = time.perf_counter()
    short_records = timer.write_records(short_windows)
    t_diff = time.perf_counter() - t0
    t0 = time.perf_counter()
    twin.write_records(short_windows)
    t_ar = time.perf_counter() - t0
    accuracy = field_accuracy([r.text for r in short_records], [s.record for s in short])
    rows.append(
        {
            "session": f"{len(short)} held-out short sessions",
            "windows": len(short_windows),
            "diffusion_seconds": round(t_diff, 3),
            "diffusion_passes": timer.last_passes,
            "diffusion_passes_per_window": round(
                sum(r.passes for r in short_records) / len(short_records), 2
            ),
            "ar_seconds": round(t_ar, 3),
            "ar_passes": twin.last_passes,
            "ratio_ar_over_diffusion": round(t_ar / t_diff, 3),
        }
    )
    speed = pd.DataFrame(rows[:-1])
    total_ratio = speed["ar_seconds"].sum() / speed["diffusion_seconds"].sum()
    state = "trained" if ar_trained else "UNTRAINED, time only"
    print(f"\n== speed: the same windows, diffusion (tau=0.9) vs the AR twin ({state})")
    print(pd.DataFrame(rows).to_string(index=False))
    print(
        f"total: diffusion {speed['diffusion_seconds'].sum():.1f} s, "
        f"AR {speed['ar_seconds'].sum():.1f} s; AR / diffusion = {total_ratio:.2f} "
        "(long-session windows; the last row, training-style windows, is apart)"
    )
    print(
        "diffusion exact match per field on those short sessions: "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in accuracy.items())
    )
    print(
        "\nnote: diffusion_record reads the records the diffusion context wrote (same windows), "
        "so its compaction seconds exclude the model"
    )
    print("\nfields kept after grounding (windows whose record kept the field):")
    print(pd.DataFrame(kept).T.to_string())
    wall = time.perf_counter() - started
    print(f"\nwall time {wall:.0f} s on {where}")

    if args.json is not None:
        record = {
            **_header(args, where, torch, diffusion, ar_trained),
            **result,
            "speed": {
                "rows": rows,
                "diffusion_seconds": round(float(speed["diffusion_seconds"].sum()), 3),
                "ar_seconds": round(float(speed["ar_seconds"].sum()), 3),
                "ratio_ar_over_diffusion": round(float(total_ratio), 3),
                "ratio_note": "over the long-session rows only; the last row is the contrast "
                "on held-out training-style short sessions, one window each",
                "short_sessions_accuracy": {k: round(v, 3) for k, v in accuracy.items()},
            },
            "wall_seconds": round(wall, 1),
        }
        _write_json(args.json, record)


if __name__ == "__main__":
    main()
