"""Pictures and the playground of notebook 07: plotly figures from plain results, and widgets.

Every function takes results computed elsewhere (compact_context, repeated_compaction) and
returns a plotly figure, so a test can call it without a browser. The playground only wires
ipywidgets controls to compact_context.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as W
import plotly.graph_objects as go
from IPython.display import HTML, display

from unmasked.tokens import count_tokens

from .core import CompactedContext, compact_context, summary_budget
from .registry import COMPACTORS
from .repeated import LoopTrace


def tokens_figure(
    results: Mapping[str, CompactedContext],
    *,
    title: str = "Context tokens before and after one compaction",
) -> go.Figure:
    """Grouped bars per compactor: the history before, and what the model receives after."""
    if not results:
        raise ValueError("results is empty; pass {compactor name: CompactedContext}")
    names = list(results)
    before = [results[n].raw_tokens for n in names]
    after = [results[n].compacted_tokens for n in names]
    summary = [results[n].summary_tokens for n in names]
    fig = go.Figure(
        [
            go.Bar(
                name="before",
                x=names,
                y=before,
                marker_color="#bbbbbb",
                hovertemplate="%{x}: %{y:,} tokens before<extra></extra>",
            ),
            go.Bar(
                name="after",
                x=names,
                y=after,
                marker_color="#1f77b4",
                customdata=summary,
                text=[f"{a:,}" for a in after],
                textposition="outside",
                hovertemplate="%{x}: %{y:,} tokens after (summary %{customdata:,})<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        title=title,
        barmode="group",
        yaxis_title="tokens (cl100k)",
        xaxis_title="compactor",
        height=420,
        legend=dict(orientation="h", y=1.08),
    )
    return fig


def sawtooth_figure(
    traces: Mapping[str, LoopTrace],
    *,
    threshold_tokens: int | None = None,
    title: str = "Context size through an agent loop that compacts",
) -> go.Figure:
    """Context tokens after each turn; each compaction is a drop back under the threshold."""
    if not traces:
        raise ValueError("traces is empty; pass {compactor name: LoopTrace}")
    fig = go.Figure()
    for name, trace in traces.items():
        drops = {r.at_turn: r.compacted_tokens for r in trace.rounds}
        xs, ys = [], []
        for i, tokens in enumerate(trace.tokens_after_turn):
            xs.append(i)
            ys.append(tokens)
            if i in drops:
                xs.append(i)
                ys.append(drops[i])
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                hovertemplate=f"{name}: turn %{{x}}, %{{y:,}} tokens<extra></extra>",
            )
        )
    if threshold_tokens:
        fig.add_hline(
            y=threshold_tokens,
            line_dash="dash",
            line_color="gray",
            annotation_text=f"threshold {threshold_tokens:,}",
        )
    fig.update_layout(
        title=title, xaxis_title="session turn", yaxis_title="context tokens", height=420
    )
    return fig


def retention_figure(
    rows: Mapping[str, Sequence[dict]],
    *,
    title: str = "Planted facts still in context after each compaction",
) -> go.Figure:
    """Share of the planted (current) facts seen so far that the context still holds, per round."""
    if not rows:
        raise ValueError("rows is empty; pass {compactor name: fact_retention(...) rows}")
    fig = go.Figure()
    for name, series in rows.items():
        fig.add_trace(
            go.Scatter(
                x=[r["round"] for r in series],
                y=[r["retention"] for r in series],
                mode="lines+markers",
                name=name,
                customdata=[[r["kept"], r["seen"]] for r in series],
                hovertemplate=f"{name}: round %{{x}}, %{{customdata[0]}}/%{{customdata[1]}} "
                "facts<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="compaction number",
        yaxis_title="facts kept",
        yaxis_tickformat=".0%",
        yaxis_range=[-0.02, 1.05],
        height=420,
    )
    return fig


def summary_html(summary: str, *, max_height: int = 360) -> str:
    """A summary as a scrollable monospace block for display(HTML(...))."""
    return (
        f'<pre style="white-space: pre-wrap; max-height: {max_height}px; overflow-y: auto; '
        "font-size: 12px; border: 1px solid #ddd; padding: "
        f'8px">{html.escape(summary or "(empty)")}</pre>'
    )


def describe(ctx: CompactedContext) -> str:
    """One line of token counts for a CompactedContext."""
    if not ctx.was_compacted:
        return (
            f"not compacted: {ctx.raw_tokens:,} tokens are below the threshold, the history "
            "goes as is"
        )
    return (
        f"{ctx.compactor}: {ctx.raw_tokens:,} -> {ctx.compacted_tokens:,} tokens "
        f"({ctx.compression_ratio:.1%} kept); summary {ctx.summary_tokens:,} of a "
        f"{ctx.summary_budget:,}-token "
        f"budget; {ctx.n_compacted_turns} turns summarized, {len(ctx.recent_turns)} kept verbatim; "
        f"{ctx.seconds * 1000:.0f} ms"
    )


def threshold_line(raw_tokens: int, threshold_tokens: int) -> str:
    """Where the history stands against the trigger, so that moving the threshold always shows."""
    gap = raw_tokens - threshold_tokens
    if gap >= 0:
        return (
            f"threshold {threshold_tokens:,}: the history's {raw_tokens:,} tokens reached it "
            f"({gap:,} over), which triggers compaction"
        )
    return (
        f"threshold {threshold_tokens:,}: the history's {raw_tokens:,} tokens are {-gap:,} short "
        "of it, so nothing is compacted yet"
    )


def keep_last_line(keep_last: int, ctx: CompactedContext) -> str:
    """What keep_last asked for against what stayed verbatim: a step that the pairing rule absorbs
    (a tool call kept with its result) still shows, and says why the count is not keep_last."""
    if not ctx.was_compacted:
        return f"keep_last {keep_last}: nothing is compacted, so every turn goes as is"
    kept = len(ctx.recent_turns)
    if kept > keep_last:
        return (
            f"keep_last {keep_last}: {kept} turns kept verbatim, reaching {kept - keep_last} "
            "further back so that a tool call is not separated from its result"
        )
    return f"keep_last {keep_last}: the last {kept} turns kept verbatim"


def compaction_playground(turns, current_task: str, compactors: Sequence[str] | None = None):
    """ipywidgets controls (threshold, keep_last, ratio, compactor) that re-run compact_context
    live.

    The callback needs a live kernel; headless runs (nbval, papermill) only build the panel.
    """
    names = list(compactors) if compactors is not None else [c for c in COMPACTORS if c != "llm"]
    raw = count_tokens(turns)
    style = {"description_width": "130px"}
    layout = W.Layout(width="480px")
    threshold = W.IntSlider(
        value=min(25_000, raw),
        min=1_000,
        max=max(raw, 2_000),
        step=1_000,
        description="threshold_tokens",
        style=style,
        layout=layout,
    )
    keep_last = W.IntSlider(
        value=min(3, len(turns)),
        min=0,
        max=min(40, len(turns)),
        description="keep_last",
        style=style,
        layout=layout,
    )
    ratio = W.FloatLogSlider(
        value=0.10,
        base=10,
        min=-3,
        max=0,
        step=0.1,
        description="target_ratio",
        style=style,
        layout=layout,
    )
    max_summary = W.IntSlider(
        value=8_000,
        min=100,
        max=20_000,
        step=100,
        description="max_summary_tokens",
        style=style,
        layout=layout,
    )
    compactor = W.Dropdown(
        options=names,
        value="extractive" if "extractive" in names else names[0],
        description="compactor",
        style=style,
    )

    def redraw(threshold, keep_last, ratio, max_summary, compactor):
        ctx = compact_context(
            turns,
            current_task,
            threshold_tokens=threshold,
            keep_last=keep_last,
            target_ratio=ratio,
            max_summary_tokens=max_summary,
            compactor=compactor,
        )
        print(threshold_line(ctx.raw_tokens, threshold))
        print(keep_last_line(keep_last, ctx))
        # the budget rule in full, so that a knob that doesn't bind still shows it was read
        print(
            f"summary budget: min({ctx.raw_tokens:,} x {ratio:.3g}, {max_summary:,}) = "
            f"{summary_budget(ctx.raw_tokens, ratio, max_summary):,} tokens"
        )
        print(describe(ctx))
        display(HTML(summary_html(ctx.summary)))

    out = W.interactive_output(
        redraw,
        dict(
            threshold=threshold,
            keep_last=keep_last,
            ratio=ratio,
            max_summary=max_summary,
            compactor=compactor,
        ),
    )
    return W.VBox([W.HBox([W.VBox([threshold, keep_last, ratio, max_summary]), compactor]), out])
