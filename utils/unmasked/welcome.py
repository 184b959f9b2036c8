"""The welcome notebook's first live figure: real token counts against the 4-characters rule.

A rule of thumb says a token is about four characters of English. Tool output (paths, hashes,
numbers, indentation) breaks that rule, and the slider in 00_welcome lets a learner see by how
much as a log grows.
"""

from __future__ import annotations

import random

import plotly.graph_objects as go

from unmasked.tokens import ENCODING_FILES, count_tokens

_TESTS = (
    "test_login",
    "test_refresh_token",
    "test_rate_limit",
    "test_migrations",
    "test_export_csv",
)


def sample_test_log(lines: int, seed: int = 0) -> str:
    """A pytest-like log of `lines` lines: the kind of tool output that fills an agent's context."""
    if lines < 0:
        raise ValueError(f"lines must be >= 0, got {lines}")
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        name = rng.choice(_TESTS)
        status = "PASSED" if rng.random() > 0.15 else "FAILED"
        out.append(
            f"tests/api/test_auth.py::{name}[case{i}] {status} "
            f"[{100 * (i + 1) // max(lines, 1):3d}%]"
        )
    return "\n".join(out)


def encoding_comparison(text: str) -> dict[str, int]:
    """Token counts of `text` in each offline encoding, beside the chars/4 estimate."""
    counts = {name: count_tokens(text, name) for name in ENCODING_FILES}
    counts["chars / 4"] = round(len(text) / 4)
    return counts


def encoding_comparison_figure(text: str, fig: go.Figure | None = None) -> go.Figure:
    """A bar per count; pass an existing (Widget) figure to update it in place."""
    counts = encoding_comparison(text)
    fig = fig if fig is not None else go.Figure()
    bars = go.Bar(
        x=list(counts),
        y=list(counts.values()),
        text=list(counts.values()),
        textposition="outside",
        marker_color=["#4C78A8", "#F58518", "#9D9D9D"],
    )
    with fig.batch_update():
        if fig.data:
            fig.data[0].x, fig.data[0].y, fig.data[0].text = bars.x, bars.y, bars.text
        else:
            fig.add_trace(bars)
        fig.update_layout(
            title=f"Tokens in a {len(text):,}-character test log",
            yaxis_title="tokens",
            height=360,
            margin=dict(t=60, b=40),
            showlegend=False,
        )
    return fig
