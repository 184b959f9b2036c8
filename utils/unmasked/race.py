"""The decode race of lecture 05: diffusion against its autoregressive twin, timed live.

The timing and scoring are unmasked.bench's (time_method, record_accuracy, shipped_models), so the
notebook and `python -m unmasked.bench decode` measure the same thing; this module adds what a
lecture needs around them:
- a race with a time budget per method, so that K = L (hundreds of full passes) is timed once
  while the quick methods are timed several times;
- the arithmetic that explains the result: seconds per diffusion pass and per autoregressive
  token, the crossover K they predict, and the roofline's arithmetic intensity;
- recorded results of other devices (data/bench/decode_*.json);
- plotly figures of tokens/s against K with the crossover marked, accuracy beside it, tokens/s
  against batch size, the tau sweep and the reliability curve.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from unmasked import bench
from unmasked.checkpoints import REPO_ROOT

AR_CACHE, AR_NO_CACHE = "AR, KV cache", "AR, no cache"
BENCH_DIR = REPO_ROOT / "data" / "bench"
AR_COLOR, AR_SLOW_COLOR, DIFFUSION_COLOR, TAU_COLOR = "#d62728", "#ff9896", "#1f77b4", "#2ca02c"


def race_methods(length: int, divisors: Sequence[int] = bench.DIVISORS, tau: float | None = 0.9):
    """bench's methods at answer length L: AR with and without cache, diffusion at K = L // d for
    each divisor d (duplicates dropped), and adaptive at tau (None: none)."""
    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if not divisors or any(not isinstance(d, int) or d < 1 for d in divisors):
        raise ValueError(f"divisors must be positive ints, got {list(divisors)!r}")
    return bench.decode_methods(length, sorted(divisors), tau)


def time_within(
    method, models, prompts, length, vocab, device, repeats: int = 3, budget_s: float = 2.0
) -> dict:
    """Median seconds of up to `repeats` timed runs, stopping early once they add up to budget_s
    (at least one run): a slow method is timed once, a quick one several times."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    return bench.time_method(
        method, models, prompts, length, vocab, device, 0, repeats, budget_s=budget_s
    )


def race(
    models: dict,
    prompts: list[list[int]],
    length: int,
    methods: list[dict],
    device,
    repeats: int = 3,
    budget_s: float = 2.0,
    progress: bool = True,
) -> list[dict]:
    """One row per method: bench's timing of writing `length` tokens after each prompt (one batch).

    Each model first writes 4 tokens untimed (a warm-up: allocations, kernel choice)."""
    from tqdm.auto import tqdm

    vocab = models["vocab"]
    for arch in ("autoregressive", "diffusion"):
        warm = next(m for m in methods if m["arch"] == arch)
        bench.run_method(warm, models, prompts[:1], 4, vocab)
    rows = []
    for method in tqdm(methods, desc="decode race", disable=not progress):
        timing = time_within(method, models, prompts, length, vocab, device, repeats, budget_s)
        rows.append({"L": length, "batch": len(prompts), **method, **timing})
    ar = next(r for r in rows if r["method"] == AR_CACHE)
    for r in rows:
        r["speed_vs_ar_cache"] = r["tokens_per_s"] / ar["tokens_per_s"]
    return rows


def unit_costs(rows: list[dict]) -> dict:
    """Seconds per AR token (with cache, and without) and per diffusion pass (median over the
    fixed-K rows), from one race's rows at a single (L, batch)."""
    keys = {(r["L"], r["batch"]) for r in rows}
    if len(keys) != 1:
        raise ValueError(f"unit_costs needs the rows of one (L, batch), got {sorted(keys)}")
    by = {r["method"]: r for r in rows}
    if AR_CACHE not in by:
        raise ValueError(f"the rows have no {AR_CACHE!r} row")
    fixed = [r for r in rows if r.get("K")]
    if not fixed:
        raise ValueError("the rows have no fixed-K diffusion row")
    L = rows[0]["L"]
    return {
        "L": L,
        "ar_s_per_token": by[AR_CACHE]["median_s"] / L,
        "ar_no_cache_s_per_token": by[AR_NO_CACHE]["median_s"] / L if AR_NO_CACHE in by else None,
        "diffusion_s_per_pass": statistics.median(r["median_s"] / r["K"] for r in fixed),
    }


def predicted_crossover(length: int, ar_s_per_token: float, diffusion_s_per_pass: float) -> float:
    """The K at which diffusion's K passes take as long as AR's L cached steps:
    K* = L * (seconds per AR token) / (seconds per diffusion pass). Fewer passes than K*: diffusion
    is faster."""
    if length < 1 or ar_s_per_token <= 0 or diffusion_s_per_pass <= 0:
        raise ValueError("length and both costs must be positive")
    return length * ar_s_per_token / diffusion_s_per_pass


def measured_crossover(rows: list[dict]) -> int | None:
    """The largest K raced at which diffusion wrote at least AR-with-cache's tokens/s (None:
    none), as bench.crossover reports it."""
    (c,) = bench.crossover(rows)
    return c["largest_K_at_least_as_fast"]


def arithmetic_intensity(tokens_per_pass: int, bytes_per_param: float) -> float:
    """FLOPs per byte of weights read by one forward pass over `tokens_per_pass` tokens.

    A transformer spends about 2 FLOPs per parameter per token (one multiply-add), and a pass reads
    every weight once, whatever the number of tokens: 2 * T / bytes_per_param. Attention and
    activations are left out; at these sizes they do not change the picture.
    """
    if tokens_per_pass < 1 or bytes_per_param <= 0:
        raise ValueError("tokens_per_pass and bytes_per_param must be positive")
    return 2 * tokens_per_pass / bytes_per_param


def seed_revisit(
    ar_s_per_token: float,
    diffusion_s_per_pass: float,
    tokens_per_pass: int,
    answer_tokens: int = 8000,
    passes: int = 16,
) -> dict:
    """The seed's arithmetic (answer_tokens x one AR step against passes x one diffusion pass),
    with our measured unit costs.

    Our passes read tokens_per_pass tokens; a pass over the seed's answer reads at least
    answer_tokens of them. A compute-bound pass costs at least in proportion to its tokens, so the
    diffusion figure is scaled by answer_tokens / tokens_per_pass (a lower bound: attention grows
    faster). The AR figure keeps our per-token cost (a lower bound too: its cache grows).
    """
    if min(ar_s_per_token, diffusion_s_per_pass) <= 0 or min(tokens_per_pass, answer_tokens) < 1:
        raise ValueError("costs and token counts must be positive")
    scale = max(1.0, answer_tokens / tokens_per_pass)
    ar = answer_tokens * ar_s_per_token
    diffusion = passes * diffusion_s_per_pass * scale
    return {
        "answer_tokens": answer_tokens,
        "passes": passes,
        "ar_s": ar,
        "diffusion_s": diffusion,
        "diffusion_unscaled_s": passes * diffusion_s_per_pass,
        "pass_scale": scale,
        "speedup": ar / diffusion,
        "pass_over_token": diffusion_s_per_pass / ar_s_per_token,
    }


def load_recorded(folder: Path = BENCH_DIR, pattern: str = "decode_*.json") -> list[dict]:
    """Every recorded decode race in `folder` (bench's JSON), oldest first; unreadable files are
    skipped with their reason under "error"."""
    out = []
    for path in sorted(Path(folder).glob(pattern)):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
            if result.get("name") != "decode" or not result.get("rows"):
                raise ValueError("not a decode race")
        except (OSError, ValueError) as exc:
            out.append({"file": path.name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        out.append({"file": path.name, **result})
    return sorted(out, key=lambda r: r.get("date", ""))


def recorded_label(result: dict) -> str:
    """Where and how a recorded race ran, in one line."""
    where = result.get("accelerator") or result.get("machine") or result.get("device", "?")
    return (
        f"{result['file']}: {result.get('device', '?')} ({where}), torch {result.get('torch', '?')}"
        f", {result.get('threads', '?')} threads, {str(result.get('date', '?'))[:10]}"
    )


# ----------------------------------------------------------------------------------- figures


def _accuracy_points(rows, accuracy):
    xs, ys, names = [], [], []
    for r in rows:
        acc = accuracy.get(r["method"]) if accuracy else r.get("accuracy")
        if r["arch"] == "diffusion" and acc is not None:
            xs.append(r["passes_per_record"])
            ys.append(acc)
            names.append(r["method"])
    return xs, ys, names


def speed_vs_k_figure(
    rows: list[dict],
    accuracy: dict | None = None,
    title: str = "",
    crossover_k: float | None = None,
) -> go.Figure:
    """Tokens/s against passes per record (K) for one (L, batch), accuracy beside it.

    Diffusion's fixed-K points form a line, adaptive tau is one more point at its mean passes, and
    the two AR decoders are horizontal lines (they take L passes whatever K is). crossover_k, when
    given, is marked as a vertical line: to its left diffusion is faster than AR with its cache.
    accuracy: method -> field exact match (%); without it, the rows' own "accuracy" is used.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.6, 0.4],
        horizontal_spacing=0.12,
        subplot_titles=("tokens/s against passes K", "field exact match against passes K"),
    )
    fixed = sorted((r for r in rows if r.get("K")), key=lambda r: r["K"])
    adaptive = [r for r in rows if r["arch"] == "diffusion" and not r.get("K")]
    fig.add_trace(
        go.Scatter(
            x=[r["K"] for r in fixed],
            y=[r["tokens_per_s"] for r in fixed],
            mode="lines+markers",
            name="diffusion, fixed K",
            line=dict(color=DIFFUSION_COLOR),
            text=[r["method"] for r in fixed],
            hovertemplate="%{text}<br>K=%{x}<br>%{y:,.0f} tokens/s<extra></extra>",
        ),
        row=1,
        col=1,
    )
    if adaptive:
        fig.add_trace(
            go.Scatter(
                x=[r["passes_per_record"] for r in adaptive],
                y=[r["tokens_per_s"] for r in adaptive],
                mode="markers",
                marker=dict(symbol="star", size=13, color=TAU_COLOR),
                name="diffusion, adaptive tau",
                text=[r["method"] for r in adaptive],
                hovertemplate="%{text}<br>%{x:.2f} passes<br>%{y:,.0f} tokens/s<extra></extra>",
            ),
            row=1,
            col=1,
        )
    ks = [r["passes_per_record"] for r in rows if r["arch"] == "diffusion"]
    lo, hi = min(ks + [1]), max(ks + [rows[0]["L"]])
    for name, color, dash in ((AR_CACHE, AR_COLOR, "solid"), (AR_NO_CACHE, AR_SLOW_COLOR, "dash")):
        r = next((r for r in rows if r["method"] == name), None)
        if r is not None:
            fig.add_trace(
                go.Scatter(
                    x=[lo, hi],
                    y=[r["tokens_per_s"]] * 2,
                    mode="lines",
                    name=name,
                    line=dict(color=color, dash=dash),
                    hovertemplate=f"{name}<br>%{{y:,.0f}} tokens/s<extra></extra>",
                ),
                row=1,
                col=1,
            )
    if crossover_k is not None:
        fig.add_vline(
            x=crossover_k,
            line=dict(color="black", dash="dot"),
            annotation_text=f"crossover K≈{crossover_k:.0f}",
            annotation_position="top left",
            row=1,
            col=1,
        )
    xs, ys, names = _accuracy_points(rows, accuracy)
    if xs:
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers+lines",
                name="diffusion accuracy",
                line=dict(color=DIFFUSION_COLOR, dash="dot"),
                text=names,
                hovertemplate="%{text}<br>%{x:.1f} passes<br>%{y:.1f}%<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    ar_acc = (accuracy or {}).get(AR_CACHE)
    if ar_acc is None:
        ar_acc = next((r.get("accuracy") for r in rows if r["method"] == AR_CACHE), None)
    if ar_acc is not None:
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[ar_acc] * 2,
                mode="lines",
                name="AR accuracy",
                line=dict(color=AR_COLOR),
                hovertemplate="AR twin<br>%{y:.1f}%<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(type="log", title_text="forward passes per record (K)", row=1, col=1)
    fig.update_xaxes(type="log", title_text="forward passes per record (K)", row=1, col=2)
    fig.update_yaxes(type="log", title_text="tokens/s", row=1, col=1)
    fig.update_yaxes(title_text="field exact match (%)", row=1, col=2)
    fig.update_layout(
        title=title or f"L = {rows[0]['L']}, batch {rows[0]['batch']}",
        height=430,
        legend=dict(orientation="h", y=-0.22),
        margin=dict(t=80),
    )
    return fig


def batch_figure(rows: list[dict], length: int, title: str = "") -> go.Figure:
    """Tokens/s against batch size at one answer length, a line per method (log-log).

    Where batch 1 leaves a chip idle, a cached AR step over B rows costs little more than over
    one, so AR's line climbs with B; a diffusion pass is already a big matrix product at B = 1,
    so its lines climb less. Where the lines cross, serving at that batch favours the other side.
    """
    part = [r for r in rows if r["L"] == length]
    batches = sorted({r["batch"] for r in part})
    if len(batches) < 2:
        raise ValueError(f"L = {length}: rows at one batch size ({batches}) draw no line")
    fig = go.Figure()
    for method in dict.fromkeys(r["method"] for r in part):
        line = sorted((r for r in part if r["method"] == method), key=lambda r: r["batch"])
        color = {AR_CACHE: AR_COLOR, AR_NO_CACHE: AR_SLOW_COLOR}.get(
            method, TAU_COLOR if "tau" in method else DIFFUSION_COLOR
        )
        bold = method == AR_CACHE or "tau" in method  # the two each side would deploy
        fig.add_trace(
            go.Scatter(
                x=[r["batch"] for r in line],
                y=[r["tokens_per_s"] for r in line],
                mode="lines+markers",
                name=method,
                line=dict(color=color, dash="solid" if bold else "dot", width=3 if bold else 1.5),
                hovertemplate=f"{method}<br>batch %{{x}}<br>%{{y:,.0f}} tokens/s<extra></extra>",
            )
        )
    fig.update_xaxes(type="log", title_text="batch (records written at once)", tickvals=batches)
    fig.update_yaxes(type="log", title_text="tokens/s")
    fig.update_layout(
        title=title or f"L = {length}: tokens/s against batch size",
        height=430,
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def tau_figure(tau_rows: list[dict]) -> go.Figure:
    """Forward passes per record against accuracy as tau moves (sampling.tau_sweep's rows)."""
    if not tau_rows:
        raise ValueError("no tau rows to draw")
    rows = sorted(tau_rows, key=lambda r: r["tau"])
    fig = go.Figure()
    for key, name, dash in (
        ("accuracy", "field exact match", "solid"),
        ("all_fields", "whole record right", "dash"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[r["passes_mean"] for r in rows],
                y=[r[key] for r in rows],
                mode="lines+markers+text",
                text=[f"τ={r['tau']:g}" for r in rows] if key == "accuracy" else None,
                textposition="top left",
                name=name,
                line=dict(dash=dash, color=TAU_COLOR),
                hovertemplate="%{x:.2f} passes<br>%{y:.1f}%<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        title="Adaptive decoding: passes per record against accuracy as τ rises",
        xaxis_title="mean forward passes per record",
        yaxis_title="% of held-out sessions",
        height=400,
    )
    return fig


def reliability_figure(curves: dict[str, list[dict]]) -> go.Figure:
    """Committed-token confidence against the share correct, one line per curve
    (sampling.reliability_curve's bins), with the diagonal of a calibrated model."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="calibrated",
            line=dict(color="gray", dash="dot"),
            hoverinfo="skip",
        )
    )
    for name, curve in curves.items():
        fig.add_trace(
            go.Scatter(
                x=[b["confidence"] for b in curve],
                y=[b["accuracy"] for b in curve],
                mode="lines+markers",
                name=name,
                marker=dict(size=[6 + 3 * min(4, len(str(b["n"]))) for b in curve]),
                customdata=[b["n"] for b in curve],
                hovertemplate="confidence %{x:.3f}<br>correct %{y:.3f}<br>%{customdata} "
                "tokens<extra></extra>",
            )
        )
    fig.update_layout(
        title="Reliability: how often a committed token is right, by the confidence it had",
        xaxis_title="confidence when committed",
        yaxis_title="share correct",
        height=420,
    )
    return fig
