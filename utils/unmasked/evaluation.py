"""Probe-based evaluation of compactors: scores, confidence intervals, verdicts and a ratio sweep.

    df = evaluate(sessions, ["full", "truncation", "extractive"])  # a row per session x probe
    ci = bootstrap_ci(df)  # mean and 95% CI per category x compactor
    verdicts(df)  # within 0.3 of full context, per category

"full" is the baseline: the whole session, uncompacted. Every other name is a compactor of
`unmasked.compaction` (or a Compactor instance), run once per session with the same settings.
Compaction is forced (threshold 1 token): the question is what survives compaction, not
whether a session is long enough to trigger it. The summary cap is lifted, so that the
target ratio, not a fixed token cap, sets the budget.

compression_ratio in these tables is raw_tokens / context_tokens ("10.0" means 10:1), the way
the issue and Factory's study speak of it. CompactedContext.compression_ratio is the other way
up (the fraction kept); the column `kept` carries that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from unmasked.probes import (
    MAX_SCORE,
    LineIndex,
    Reader,
    Score,
    context_units,
    probes_for,
    query_terms,
    rubric_score,
    states,
)
from unmasked.sessions import PROBE_CATEGORIES, Session

FULL = "full"
MARGIN = 0.3  # "good compaction stays within 0.3 points of full context in every category"
# The deterministic ladder plus the baseline: what the benchmark and the notebook run offline.
DETERMINISTIC = (FULL, "truncation", "keep_last", "observation_masking", "extractive", "anchored")
SWEEP_RATIOS = (2, 5, 10, 20, 50)

Scorer = Callable[[str, object], Score]


def _name(compactor) -> str:
    if isinstance(compactor, str):
        return compactor
    return getattr(compactor, "name", type(compactor).__name__)


def _fresh(compactor):
    """A compactor with no state from the previous session (the anchored merge keeps notes)."""
    if isinstance(compactor, str):
        return compactor
    if hasattr(compactor, "reset"):
        compactor.reset()
    return compactor


def build_context(
    session: Session,
    compactor,
    *,
    target_ratio: float = 0.1,
    keep_last: int = 3,
    max_summary_tokens: int | None = None,
) -> tuple[list[dict], dict]:
    """The messages an answerer gets for `session` after `compactor`, and what it cost.

    target_ratio is the share of the history the whole context may keep (0.1: 10:1). The turns
    kept verbatim (system prompt, last keep_last) count against it, so the summary gets what is
    left: every compactor is compared at the same context size. When the kept turns alone exceed
    it, the summary gets a token and `ratio_binding` reports the target as out of reach.
    Returns (messages, info) with info keys raw_tokens, context_tokens, compression_ratio
    (raw / context), kept (context / raw), summary_budget and seconds (time spent compacting).
    """
    if not isinstance(session, Session):
        raise ValueError(f"expected a unmasked.sessions.Session, got {type(session).__name__}")
    if _name(compactor) == FULL:
        messages = session.messages()
        raw = session.n_tokens
        return messages, {
            "raw_tokens": raw,
            "context_tokens": raw,
            "compression_ratio": 1.0,
            "kept": 1.0,
            "summary_budget": 0,
            "seconds": 0.0,
        }
    from unmasked.compaction import (
        SUMMARY_PREFIX,
        compact_context,
        render,
        split_history,
        to_messages,
    )
    from unmasked.tokens import count_tokens

    keep_last = min(keep_last, len(session.turns) - 1)
    raw = max(1, session.n_tokens)
    messages = to_messages(session.turns)
    pinned, cut = split_history(messages, keep_last)
    verbatim = count_tokens(messages[:pinned] + messages[cut:]) + count_tokens(SUMMARY_PREFIX) + 8
    summary_tokens = max(1, int(raw * target_ratio) - verbatim)
    context = compact_context(
        session.turns,
        session.task,
        threshold_tokens=1,
        keep_last=keep_last,
        target_ratio=min(1.0, summary_tokens / raw),
        max_summary_tokens=max_summary_tokens or raw,
        compactor=_fresh(compactor),
        max_recent_tokens=raw,  # the threshold only forces compaction here
    )
    kept = context.compacted_tokens / context.raw_tokens if context.raw_tokens else 1.0
    info = {
        "raw_tokens": context.raw_tokens,
        "context_tokens": context.compacted_tokens,
        "compression_ratio": 1.0 / kept if kept else float("inf"),
        "kept": kept,
        "summary_budget": context.summary_budget,
        "seconds": context.seconds,
    }
    return render(context), info


def ceiling(context_text: str, probe) -> float:
    """5 x the share of the probe's key facts that the context still contains anywhere: the best
    any answerer could score from it. A score far below the ceiling points at the answerer, not
    the compactor."""
    low = context_text.lower()
    found = sum(
        any(form.strip().lower() in low for form in f.forms() if form.strip())
        and states(f, context_text)
        for f in probe.key_facts
    )  # a plain substring test first: most facts are simply absent
    return round(MAX_SCORE * found / len(probe.key_facts), 4)


def _answers(answerer, messages: list[dict], questions: list[str]) -> tuple[list[str], str, float]:
    """(answers, the context's text, seconds per answer); the Reader's line index is built once
    and shared."""
    lines, meta = context_units(messages)
    start = time.perf_counter()
    if isinstance(answerer, Reader):
        index = LineIndex(lines, meta)
        index.term_counts([t for q in questions for t in query_terms(q)])
        answers = [answerer.answer_index(index, q) for q in questions]
        text = "\n".join(lines)
    else:
        answers = (
            answerer.answer_many(messages, questions)
            if hasattr(answerer, "answer_many")
            else [answerer(messages, q) for q in questions]
        )
        text = "\n".join(lines)
    return answers, text, (time.perf_counter() - start) / len(questions)


def _check_compactors(compactors) -> list:
    if isinstance(compactors, str) or not isinstance(compactors, Sequence) or not compactors:
        raise ValueError(
            "compactors must be a non-empty list of names or Compactor objects, got "
            f"{compactors!r}; "
            f"for example {list(DETERMINISTIC)}"
        )
    from unmasked.compaction import COMPACTORS, MODEL_COMPACTORS, get_compactor

    known = (*COMPACTORS, *MODEL_COMPACTORS)  # the ladder, and the course's own models by name
    out = []
    for c in compactors:
        if _name(c) == FULL:
            out.append(FULL)
        elif isinstance(c, str) and c not in known:
            raise ValueError(
                f"unknown compactor {c!r}; accepted: {FULL!r} or one of {', '.join(known)}"
            )
        else:
            out.append(get_compactor(c) if isinstance(c, str) else c)
    names = [_name(c) for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"compactor names must be distinct, got {names}")
    return out


def evaluate(
    sessions: Sequence[Session],
    compactors: Sequence = DETERMINISTIC,
    *,
    answerer=None,
    scorer: Scorer | None = None,
    target_ratio: float = 0.1,
    keep_last: int = 3,
    max_summary_tokens: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Score every probe of every session under every compactor: a tidy table, one row each.

    answerer: `answer(messages, question) -> str` (default: the deterministic `Reader`); it gets
    the context and the question, never the probe. scorer: `score(answer, probe) -> Score`
    (default: `rubric_score`). Columns: session, category, compactor, score, compression_ratio,
    seconds (compaction time, per session), plus ceiling (see `ceiling`), target_ratio, raw_tokens,
    context_tokens, kept, answer_seconds, question, answer, reference, covered, missing, stale.
    """
    from tqdm.auto import tqdm

    if isinstance(sessions, Session) or not isinstance(sessions, Sequence) or not sessions:
        raise ValueError(
            "sessions must be a non-empty list of Session objects (see "
            "unmasked.sessions.load_sessions)"
        )
    compactors = _check_compactors(compactors)
    answerer = Reader() if answerer is None else answerer
    scorer = rubric_score if scorer is None else scorer
    rows = []
    bar = tqdm(total=len(sessions) * len(compactors), desc="evaluate", disable=not progress)
    for session in sessions:
        probes = probes_for(session)
        questions = [p.question for p in probes]
        for compactor in compactors:
            messages, info = build_context(
                session,
                compactor,
                target_ratio=target_ratio,
                keep_last=keep_last,
                max_summary_tokens=max_summary_tokens,
            )
            answers, text, answer_seconds = _answers(answerer, messages, questions)
            for probe, answer in zip(probes, answers):
                result = scorer(answer, probe)
                rows.append(
                    {
                        "session": session.id,
                        "category": probe.category,
                        "compactor": _name(compactor),
                        "score": float(result.score),
                        "ceiling": ceiling(text, probe),
                        "compression_ratio": info["compression_ratio"],
                        "seconds": info["seconds"],
                        "target_ratio": 1.0 if _name(compactor) == FULL else target_ratio,
                        "raw_tokens": info["raw_tokens"],
                        "context_tokens": info["context_tokens"],
                        "kept": info["kept"],
                        "answer_seconds": answer_seconds,
                        "question": probe.question,
                        "answer": answer,
                        "reference": probe.reference_answer,
                        "covered": result.covered,
                        "missing": result.missing,
                        "stale": result.stale,
                    }
                )
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows)


def reader_means(
    sessions: Sequence[Session],
    context_of: Callable | None = None,
    *,
    answerer=None,
    scorer: Scorer | None = None,
) -> pd.Series:
    """Mean score per category when `answerer` reads `context_of(session, probes)` of each session.

    The harness's own checks: on the full context (the default) the reader must score high; on a
    context with the facts removed (`probes.redact_facts`) it must score low.
    """
    answerer = Reader() if answerer is None else answerer
    scorer = rubric_score if scorer is None else scorer
    context_of = context_of or (lambda session, probes: session.messages())
    rows = []
    for session in sessions:
        probes = probes_for(session)
        answers, _, _ = _answers(
            answerer, context_of(session, probes), [p.question for p in probes]
        )
        rows.extend(
            {"category": p.category, "score": float(scorer(a, p).score)}
            for p, a in zip(probes, answers)
        )
    if not rows:
        raise ValueError("sessions is empty: there is nothing to average")
    return pd.DataFrame(rows).groupby("category", sort=False)["score"].mean()


# ---- statistics --------------------------------------------------------------------------------


def bootstrap_ci(
    df: pd.DataFrame, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Mean score and a percentile bootstrap CI per category x compactor (resampling probes;
    seeded).

    Columns: category, compactor, mean, lo, hi, n, note. Same df and seed, same numbers. When
    every score of a group is the same (all at the ceiling of 5, say), resampling cannot vary
    and a [5.00, 5.00] interval would claim a certainty the sample does not have: lo and hi are
    NaN and `note` says so, with the rule-of-three bound on how often such a probe fails.
    """
    _need(df, ("category", "compactor", "score"))
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (0.95 for a 95% interval), got {level!r}")
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    rows = []
    groups = df.groupby(["compactor", "category"])["score"]
    for compactor in _compactor_order(df):
        for category in _category_order(df):
            if (compactor, category) not in groups.groups:
                continue
            scores = groups.get_group((compactor, category)).to_numpy(dtype=float)
            means = scores[rng.integers(0, len(scores), size=(n_boot, len(scores)))].mean(axis=1)
            lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
            note = constant_note(scores)
            if note:
                lo = hi = float("nan")
            rows.append(
                {
                    "category": category,
                    "compactor": compactor,
                    "mean": float(scores.mean()),
                    "lo": float(lo),
                    "hi": float(hi),
                    "n": len(scores),
                    "note": note,
                }
            )
    return pd.DataFrame(rows)


def session_scores_frame(
    session_scores: dict, sessions: Sequence[str], median_ratio: dict | None = None
) -> pd.DataFrame:
    """A recorded run's per-session means back as evaluate()-shaped rows (session, compactor,
    category, score), so that bootstrap_ci, verdicts and scores_figure read a benchmark's file
    as they read a live run. The intervals then resample sessions, not probes: probes of one
    session share its text, so sessions are the independent draws.

    session_scores: compactor -> category -> one mean per session, in `sessions` order (the
    shape benchmarks/bench_diffusion_compactor.py writes); median_ratio: compactor -> median
    compression ratio, carried into compression_ratio.
    """
    rows = []
    for compactor, by_category in session_scores.items():
        for category, scores in by_category.items():
            if len(scores) != len(sessions):
                raise ValueError(
                    f"{compactor}/{category}: {len(scores)} scores for {len(sessions)} sessions"
                )
            for session, score in zip(sessions, scores):
                if score is not None and not np.isnan(score):
                    rows.append(
                        {
                            "session": session,
                            "compactor": compactor,
                            "category": category,
                            "score": float(score),
                        }
                    )
    if not rows:
        raise ValueError("no scores recorded")
    df = pd.DataFrame(rows)
    if median_ratio is not None:
        df["compression_ratio"] = df["compactor"].map(median_ratio).astype(float)
    return df


def constant_note(scores) -> str:
    """What to say instead of an interval when every score is the same; "" when they vary."""
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0 or scores.min() != scores.max():
        return ""
    n, value = len(scores), float(scores[0])
    where = " (the ceiling)" if value == MAX_SCORE else " (the floor)" if value == 0 else ""
    bound = (
        f"; by the rule of three, under {min(1.0, 3 / n):.0%} of such probes would score "
        "otherwise (95%)"
    )
    return f"all {n} scores are {value:g}{where}: no interval{bound}"


def within_margin(score: float, full_score: float, margin: float = MARGIN) -> bool:
    """True when a compacted context's mean score is at most `margin` below the full context's."""
    return bool(full_score - score <= margin + 1e-9)


def verdicts(df: pd.DataFrame, *, baseline: str = FULL, margin: float = MARGIN) -> pd.DataFrame:
    """Per compactor and category: mean, full-context mean, the gap, and whether it is within
    `margin`.

    The gap is the full-context mean minus the compactor's mean over the same sessions.
    """
    _need(df, ("category", "compactor", "score", "session"))
    if baseline not in set(df["compactor"]):
        raise ValueError(
            f"the table has no {baseline!r} rows to compare against; include it in compactors"
        )
    means = df.groupby(["compactor", "category"])["score"].mean()
    ratio = (
        df.groupby("compactor")["compression_ratio"].median() if "compression_ratio" in df else None
    )
    rows = []
    for compactor in _compactor_order(df):
        for category in _category_order(df):
            if (compactor, category) not in means.index:
                continue
            mean, full = float(means[(compactor, category)]), float(means[(baseline, category)])
            rows.append(
                {
                    "compactor": compactor,
                    "category": category,
                    "mean": mean,
                    "full": full,
                    "gap": full - mean,
                    "within": within_margin(mean, full, margin),
                    "median_ratio": float(ratio[compactor]) if ratio is not None else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def verdict_table(
    df: pd.DataFrame, *, baseline: str = FULL, margin: float = MARGIN
) -> pd.DataFrame:
    """verdicts() as a compactor x category grid of True/False, with an 'every category' column."""
    v = verdicts(df, baseline=baseline, margin=margin)
    grid = v.pivot(index="compactor", columns="category", values="within")
    grid = grid.reindex(
        index=[c for c in _compactor_order(df) if c in grid.index],
        columns=[c for c in _category_order(df) if c in grid.columns],
    )
    grid["every category"] = grid.all(axis=1)
    grid["median ratio"] = v.groupby("compactor")["median_ratio"].first().reindex(grid.index)
    return grid


def meets_bar(
    df: pd.DataFrame,
    compactors: Sequence[str] = ("extractive", "anchored"),
    *,
    min_ratio: float = 10.0,
    baseline: str = FULL,
    margin: float = MARGIN,
) -> pd.DataFrame:
    """The course's bar, per compactor: within `margin` of full context in EVERY category at >=
    min_ratio:1.

    Uses the measured median compression ratio of the rows in `df` (one evaluate() run at one
    target). Columns: compactor, median_ratio, every_category, worst_category, worst_gap, passes.
    """
    v = verdicts(df, baseline=baseline, margin=margin)
    rows = []
    for compactor in compactors:
        part = v[v["compactor"] == compactor]
        if part.empty:
            raise ValueError(
                f"the table has no rows for {compactor!r}; it has {sorted(set(v['compactor']))}"
            )
        worst = part.loc[part["gap"].idxmax()]
        ratio = float(df[df["compactor"] == compactor]["compression_ratio"].median())
        every = bool(part["within"].all())
        rows.append(
            {
                "compactor": compactor,
                "median_ratio": ratio,
                "every_category": every,
                "worst_category": worst["category"],
                "worst_gap": float(worst["gap"]),
                "passes": every and ratio >= min_ratio,
            }
        )
    return pd.DataFrame(rows)


# ---- the ratio sweep
# ------------------------------------------------------------------------------


def ratio_sweep(
    sessions: Sequence[Session],
    compactors: Sequence = ("extractive", "anchored"),
    *,
    ratios: Sequence[float] = SWEEP_RATIOS,
    answerer=None,
    scorer: Scorer | None = None,
    keep_last: int = 3,
    progress: bool = True,
) -> pd.DataFrame:
    """evaluate() at each target ratio (2 means 2:1, a summary budget of half the history).

    Returns the concatenated tidy table with a `target` column (the ratio asked for); the full
    context rows, computed once, carry target 1.
    """
    if not ratios or any(not isinstance(r, (int, float)) or r < 1 for r in ratios):
        raise ValueError(f"ratios must be numbers >= 1 (2 means 2:1), got {ratios!r}")
    compactors = [c for c in compactors if _name(c) != FULL]
    parts = [
        evaluate(sessions, [FULL], answerer=answerer, scorer=scorer, progress=False).assign(
            target=1.0
        )
    ]
    for ratio in ratios:
        part = evaluate(
            sessions,
            compactors,
            answerer=answerer,
            scorer=scorer,
            target_ratio=1.0 / ratio,
            keep_last=keep_last,
            progress=progress,
        )
        parts.append(part.assign(target=float(ratio)))
    return pd.concat(parts, ignore_index=True)


def sweep_summary(
    sweep: pd.DataFrame, *, baseline: str = FULL, margin: float = MARGIN
) -> pd.DataFrame:
    """Per compactor, target and category: mean score, the measured median ratio, and the
    verdict."""
    _need(sweep, ("target", "category", "compactor", "score", "compression_ratio"))
    full = sweep[sweep["compactor"] == baseline].groupby("category")["score"].mean()
    rows = []
    for (compactor, target), group in sweep[sweep["compactor"] != baseline].groupby(
        ["compactor", "target"]
    ):
        measured = float(group["compression_ratio"].median())
        for category, scores in group.groupby("category")["score"]:
            mean = float(scores.mean())
            rows.append(
                {
                    "compactor": compactor,
                    "target": float(target),
                    "measured_ratio": measured,
                    "category": category,
                    "mean": mean,
                    "full": float(full[category]),
                    "gap": float(full[category]) - mean,
                    "within": within_margin(mean, float(full[category]), margin),
                }
            )
    return pd.DataFrame(rows).sort_values(["compactor", "target", "category"], ignore_index=True)


def largest_ratio_within(
    sweep: pd.DataFrame, *, baseline: str = FULL, margin: float = MARGIN
) -> pd.DataFrame:
    """Per compactor: the largest target ratio at which every category is within `margin` of full.

    `largest_target` is NaN when no ratio passes; `measured_ratio` is the median raw/context
    ratio actually reached at that target (a summary may be shorter than its budget).
    """
    summary = sweep_summary(sweep, baseline=baseline, margin=margin)
    rows = []
    for compactor, group in summary.groupby("compactor"):
        ok = group.groupby("target")["within"].all()
        passing = [t for t, good in ok.items() if good]
        best = max(passing) if passing else float("nan")
        measured = (
            float(group[group["target"] == best]["measured_ratio"].iloc[0])
            if passing
            else float("nan")
        )
        rows.append(
            {
                "compactor": compactor,
                "largest_target": best,
                "measured_ratio": measured,
                "targets_within": passing,
            }
        )
    return pd.DataFrame(rows)


BIND_TOLERANCE = 0.2  # a target "binds" when the measured ratio is within 20% of it


def ratio_binding(
    sweep: pd.DataFrame, *, baseline: str = FULL, tolerance: float = BIND_TOLERANCE
) -> pd.DataFrame:
    """Per compactor and target: the measured median ratio, and whether the target binds.

    A target binds when the measured ratio is within `tolerance` of it. When it does not, `why`
    says which way: a summary shorter than its budget compresses more than asked (the target is
    not what sets the size), and a context whose kept turns alone are larger than the budget
    cannot reach it.
    """
    _need(sweep, ("target", "compactor", "compression_ratio"))
    rows = []
    for (compactor, target), group in sweep[sweep["compactor"] != baseline].groupby(
        ["compactor", "target"]
    ):
        measured = float(group["compression_ratio"].median())
        binds = abs(measured / target - 1) <= tolerance
        why = (
            ""
            if binds
            else (
                "compresses more than asked: its summary is shorter than its budget"
                if measured > target
                else "cannot reach it: the pinned and recent turns alone are larger than the "
                "budget allows"
            )
        )
        rows.append(
            {
                "compactor": compactor,
                "target": float(target),
                "measured_ratio": measured,
                "binds": binds,
                "why": why,
            }
        )
    return pd.DataFrame(rows)


# ---- what got lost
# ----------------------------------------------------------------------------------


def worst_failures(
    df: pd.DataFrame, *, n: int = 5, baseline: str = FULL, compactors: Sequence[str] | None = None
) -> pd.DataFrame:
    """The n probes where a compactor lost most against the full context on the same session.

    Columns: session, category, compactor, score, full_score, lost, question, answer, reference,
    missing, stale. Ties go to the smaller context (the bigger compression).
    """
    _need(df, ("session", "category", "compactor", "score", "answer", "reference"))
    full = df[df["compactor"] == baseline].set_index(["session", "category"])["score"]
    rest = df[df["compactor"] != baseline]
    if compactors is not None:
        rest = rest[rest["compactor"].isin(list(compactors))]
    rest = rest.assign(
        full_score=[full.get((s, c), np.nan) for s, c in zip(rest["session"], rest["category"])]
    )
    rest = rest.assign(lost=rest["full_score"] - rest["score"])
    rest = rest.sort_values(
        ["lost", "compression_ratio", "session", "category"], ascending=[False, False, True, True]
    )
    cols = [
        "session",
        "category",
        "compactor",
        "score",
        "full_score",
        "lost",
        "question",
        "answer",
        "reference",
        "missing",
        "stale",
    ]
    return rest[[c for c in cols if c in rest]].head(n).reset_index(drop=True)


# ---- helpers
# -----------------------------------------------------------------------------------------


def _need(df, columns) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected the DataFrame that evaluate() returns, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"the table lacks columns {missing}; pass the DataFrame that evaluate() returns"
        )


def _category_order(df) -> list[str]:
    present = set(df["category"])
    return [c for c in PROBE_CATEGORIES if c in present] + sorted(present - set(PROBE_CATEGORIES))


def _compactor_order(df) -> list[str]:
    return list(dict.fromkeys(df["compactor"]))


# ---- figures
# -----------------------------------------------------------------------------------------------


def scores_figure(
    ci: pd.DataFrame, *, baseline: str = FULL, margin: float = MARGIN, title: str | None = None
):
    """Grouped bars: mean score per category (x) and compactor (colour), with bootstrap CI error
    bars.

    A dashed marker per category shows the pass line, full-context mean minus `margin`.
    """
    import plotly.graph_objects as go

    _need(ci, ("category", "compactor", "mean", "lo", "hi"))
    categories = _category_order(ci)
    fig = go.Figure()
    for compactor in _compactor_order(ci):
        part = ci[ci["compactor"] == compactor].set_index("category").reindex(categories)
        notes = part["note"] if "note" in part else pd.Series("", index=part.index)
        fig.add_trace(
            go.Bar(
                name=compactor,
                x=categories,
                y=part["mean"],
                text=[
                    "all " + f"{m:g}" if isinstance(n, str) and n else ""
                    for m, n in zip(part["mean"], notes)
                ],
                textposition="outside",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=part["hi"] - part["mean"],
                    arrayminus=part["mean"] - part["lo"],
                ),
                hovertemplate=f"{compactor}<br>%{{x}}: %{{y:.2f}}<extra></extra>",
            )
        )
    if baseline in set(ci["compactor"]):
        full = ci[ci["compactor"] == baseline].set_index("category").reindex(categories)["mean"]
        fig.add_trace(
            go.Scatter(
                name=f"{baseline} - {margin:g}",
                x=categories,
                y=full - margin,
                mode="markers",
                marker=dict(symbol="line-ew-open", size=40, color="black", line=dict(width=2)),
                hovertemplate="pass line %{y:.2f}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis=dict(title="probe score (0-5)", range=[0, 5.3]),
        title=title
        or "Probe scores by category and compactor (95% bootstrap CI; "
        "'all 5' marks a group with no spread, hence no interval)",
        legend=dict(orientation="h", y=-0.2),
        height=460,
    )
    return fig


def sweep_figure(summary: pd.DataFrame, *, margin: float = MARGIN, title: str | None = None):
    """The ratio sweep: worst category's gap to full context (y) against the measured ratio (x,
    log).

    One line per compactor, one point per target ratio; points below the dashed line at
    `margin` are within it in every category. Hover shows each category's mean.
    """
    import plotly.graph_objects as go

    _need(summary, ("compactor", "target", "measured_ratio", "category", "gap"))
    fig = go.Figure()
    for compactor, group in summary.groupby("compactor", sort=False):
        worst = (
            group.groupby("target")
            .agg(measured=("measured_ratio", "first"), gap=("gap", "max"))
            .reset_index()
        )
        detail = group.groupby("target").apply(
            lambda g: "<br>".join(f"{c}: {m:.2f}" for c, m in zip(g["category"], g["mean"])),
            include_groups=False,
        )
        fig.add_trace(
            go.Scatter(
                name=compactor,
                x=worst["measured"],
                y=worst["gap"],
                mode="lines+markers",
                text=[f"target {t:g}:1<br>{detail[t]}" for t in worst["target"]],
                hovertemplate="%{text}<br>measured %{x:.1f}:1, worst gap %{y:.2f}<extra></extra>",
            )
        )
    fig.add_hline(y=margin, line_dash="dash", annotation_text=f"{margin:g} below full context")
    fig.update_layout(
        xaxis=dict(title="measured compression ratio (raw : context), log scale", type="log"),
        yaxis=dict(title="worst category: full mean - compacted mean"),
        title=title or "How far can we compress? (lower is better; under the line passes)",
        height=440,
    )
    return fig


def failures_figure(failures: pd.DataFrame, *, width: int = 1100):
    """The worst failures as a table: what the answerer said from the compacted context, next to
    the truth."""
    import plotly.graph_objects as go

    _need(failures, ("session", "category", "compactor", "score", "answer", "reference"))

    def wrap(text: str, limit: int = 700) -> str:
        text = str(text)
        text = text if len(text) <= limit else text[: limit - 3] + "..."
        return text.replace("\n", "<br>")

    header = [
        "probe",
        "answer from the compacted context",
        "truth (reference answer)",
        "missing / stale",
    ]
    cells = [
        [
            f"{s}<br>{c}<br><b>{k}</b><br>score {v:.1f} (full {f:.1f})"
            for s, c, k, v, f in zip(
                failures["session"],
                failures["category"],
                failures["compactor"],
                failures["score"],
                failures.get("full_score", failures["score"]),
            )
        ],
        [wrap(a) or "<i>(empty)</i>" for a in failures["answer"]],
        [wrap(r) for r in failures["reference"]],
        [
            wrap(f"missing: {m}<br>stale: {s}")
            for m, s in zip(
                failures.get("missing", [""] * len(failures)),
                failures.get("stale", [""] * len(failures)),
            )
        ],
    ]
    fig = go.Figure(
        go.Table(
            columnwidth=[120, 380, 300, 200],
            header=dict(values=header, align="left"),
            cells=dict(values=cells, align="left", height=30),
        )
    )
    fig.update_layout(
        width=width,
        height=260 + 160 * len(failures),
        margin=dict(l=10, r=10, t=30, b=10),
        title="What got lost: worst probes against the truth",
    )
    return fig
