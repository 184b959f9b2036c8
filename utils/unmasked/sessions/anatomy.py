"""The anatomy of a session: where the tokens go, and where the facts sit.

Pure functions return tables (lists of dicts) that tests can check; the plot functions turn
them into plotly figures for the notebooks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from unmasked.tokens import TOKENS_REPLY_PRIMING, count_tokens

from .schema import PROBE_CATEGORIES, Session, Turn

COMMAND_KINDS = {"pytest": "tests", "npm": "tests", "go": "tests", "tail": "logs", "pip": "install"}
CATEGORY_COLORS = dict(zip(PROBE_CATEGORIES, ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")))


def turn_kind(turn: Turn, calls: dict[str, str] | None = None) -> str:
    """A label for what a turn is: 'assistant: tool call', 'tool: read_file', 'tool: run_command
    (pytest)'..."""
    if turn.role == "assistant":
        return "assistant: tool call" if turn.tool_calls else "assistant: text"
    if turn.role != "tool":
        return turn.role
    name = (calls or {}).get(turn.tool_call_id, "unknown")
    return f"tool: {name}"


def _call_names(session: Session) -> dict[str, str]:
    names = {}
    for t in session.turns:
        for c in t.tool_calls:
            label = c.name
            cmd = c.arguments.get("cmd")
            if c.name == "run_command" and isinstance(cmd, str) and cmd.split():
                word = cmd.split()[0]
                label = f"run_command ({COMMAND_KINDS.get(word, word)})"
            names[c.id] = label
    return names


def token_starts(session: Session) -> list[int]:
    """Token offset at which each turn starts, as count_tokens counts the session."""
    starts, acc = [], TOKENS_REPLY_PRIMING
    for t in session.turns:
        starts.append(acc)
        acc += count_tokens([t]) - TOKENS_REPLY_PRIMING
    return starts


def token_breakdown(sessions: Session | Iterable[Session]) -> list[dict]:
    """Tokens per turn kind, summed over the sessions: [{"kind", "tokens", "turns", "share"}],
    largest first."""
    if isinstance(sessions, Session):
        sessions = [sessions]
    tokens, turns = Counter(), Counter()
    for s in sessions:
        calls = _call_names(s)
        for t in s.turns:
            kind = turn_kind(t, calls)
            tokens[kind] += count_tokens([t]) - TOKENS_REPLY_PRIMING
            turns[kind] += 1
    total = sum(tokens.values())
    if total == 0:
        raise ValueError("token_breakdown needs at least one session with turns")
    return [
        {"kind": k, "tokens": v, "turns": turns[k], "share": v / total}
        for k, v in tokens.most_common()
    ]


def fact_table(session: Session) -> list[dict]:
    """One row per planted fact: category, text, turn, token offset, share of the session,
    position, stale."""
    starts = token_starts(session)
    return [
        {
            "category": f.category,
            "text": f.text,
            "turn": f.turn_index,
            "token": starts[f.turn_index],
            "share": starts[f.turn_index] / session.n_tokens,
            "position": f.position,
            "stale": f.stale,
            "replaces": f.replaces,
        }
        for f in session.facts
    ]


def plot_token_breakdown(sessions, title: str | None = None):
    """A horizontal plotly bar: the share of tokens per turn kind."""
    import plotly.graph_objects as go

    sessions = [sessions] if isinstance(sessions, Session) else list(sessions)
    rows = token_breakdown(sessions)[::-1]
    n = len(sessions)
    fig = go.Figure(
        go.Bar(
            x=[100 * r["share"] for r in rows],
            y=[r["kind"] for r in rows],
            orientation="h",
            text=[
                f"{100 * r['share']:.1f}%  ({r['tokens']:,} tokens, {r['turns']} turns)"
                for r in rows
            ],
            textposition="auto",
            marker_color=["#d62728" if r["kind"].startswith("tool") else "#7f7f7f" for r in rows],
        )
    )
    fig.update_layout(
        title=title or f"Where the tokens go ({n} session{'s' * (n != 1)})",
        xaxis_title="share of tokens (%)",
        height=120 + 28 * len(rows),
        margin=dict(l=10, r=10, t=50, b=40),
    )
    return fig


def plot_fact_map(session: Session):
    """Planted facts along the session's token axis, one row per probe category; stale facts hollow,
    with a line to the fact that replaced them."""
    import plotly.graph_objects as go

    rows = fact_table(session)
    fig = go.Figure()
    for third, label in ((0, "early"), (1, "middle"), (2, "late")):
        fig.add_vrect(
            x0=third * session.n_tokens / 3,
            x1=(third + 1) * session.n_tokens / 3,
            fillcolor=("#f2f2f2", "#ffffff", "#f2f2f2")[third],
            line_width=0,
            layer="below",
            annotation_text=label,
            annotation_position="top",
        )
    by_text = {r["text"]: r for r in rows}
    for r in rows:
        old = by_text.get(r["replaces"]) if r["replaces"] else None
        if old:
            fig.add_trace(
                go.Scatter(
                    x=[old["token"], r["token"]],
                    y=[old["category"], r["category"]],
                    mode="lines",
                    line=dict(color="#bbbbbb", dash="dot"),
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    for cat in PROBE_CATEGORIES:
        for stale in (False, True):
            pts = [r for r in rows if r["category"] == cat and r["stale"] == stale]
            if not pts:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p["token"] for p in pts],
                    y=[cat] * len(pts),
                    mode="markers",
                    name=f"{cat} ({'stale' if stale else 'current'})",
                    marker=dict(
                        size=13,
                        color="white" if stale else CATEGORY_COLORS[cat],
                        line=dict(color=CATEGORY_COLORS[cat], width=2),
                        symbol="circle",
                    ),
                    text=[
                        f"turn {p['turn']}: {p['text']}" + (" (stale)" if stale else "")
                        for p in pts
                    ],
                    hovertemplate="%{text}<br>token %{x:,}<extra></extra>",
                )
            )
    fig.update_layout(
        title=f"Where the facts sit in {session.id} ({session.n_tokens:,} tokens)",
        xaxis=dict(title="token offset", range=[0, session.n_tokens]),
        yaxis=dict(categoryorder="array", categoryarray=list(PROBE_CATEGORIES)[::-1]),
        height=380,
        margin=dict(l=10, r=10, t=60, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def format_turns(
    session: Session, start: int = 0, stop: int | None = None, width: int = 160
) -> str:
    """A readable preview of turns start..stop-1: role, tool calls, and the content cut to `width`
    characters with the number of lines and tokens left out."""
    if width < 20:
        raise ValueError(f"width must be at least 20 characters, got {width}")
    lines = []
    for i, t in enumerate(session.turns[start:stop], start):
        head = f"[{i}] {t.role}"
        if t.tool_call_id:
            head += f" (answers {t.tool_call_id})"
        for c in t.tool_calls:
            head += f" -> {c.name}({', '.join(f'{k}={v!r}' for k, v in c.arguments.items())})"
        body = t.content.replace("\n", " ⏎ ")
        if len(body) > width:
            rest = t.content.count("\n") + 1
            body = f"{body[:width]} … [{rest} lines, {count_tokens(t.content):,} tokens in all]"
        lines.append(f"{head}\n    {body}" if body else head)
    return "\n".join(lines)
