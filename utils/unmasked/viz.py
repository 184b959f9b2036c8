"""Pictures of the sampler: an animation that replays a Trace, and a panel that re-samples live.

The animation is a plain plotly `go.Figure` with frames, a play button and a slider. It runs
entirely in the browser (no kernel callback), so it survives papermill, nbval and HTML export.
The live panel is ipywidgets controls wired to `unmasked.sampling.generate`; it draws a fresh
figure on each change, so it needs no FigureWidget either.

Renderer: set once, here, on import (see `setup_plotly`).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from unmasked.sampling import Trace, generate

MASK_TEXT = "[MASK]"
MASK_COLOR = "#d9d9d9"
COLOR_BY = ("step", "confidence")


def setup_plotly() -> str:
    """Choose the plotly renderer once for the whole course; return its name.

    PLOTLY_RENDERER wins when set. In a Jupyter kernel we use "plotly_mimetype": JupyterLab
    draws it with the jupyterlab-plotly extension that the plotly wheel ships, offline, and
    plotly.js is not embedded in every output. Elsewhere (scripts, tests) plotly's own choice
    stands.
    """
    if os.environ.get("PLOTLY_RENDERER"):
        return pio.renderers.default
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython comes with jupyterlab
        shell = None
    if shell is not None and type(shell).__module__.startswith("ipykernel."):
        pio.renderers.default = "plotly_mimetype"
    return pio.renderers.default


setup_plotly()  # on import: notebooks `import unmasked.viz` once for the whole course


def display_piece(piece: str, width: int = 10) -> str:
    """A token piece made visible in a cell: spaces as '·', newlines as '⏎', HTML escaped,
    trimmed."""
    shown = piece.replace("\n", "⏎").replace(" ", "·").replace("\t", "→")
    if len(shown) > width:
        shown = shown[: width - 1] + "…"
    return html.escape(shown, quote=False) if shown else "∅"  # plotly shows &quot; literally


def _pieces(
    tokens: Sequence[int],
    token_str: Callable[[int], str] | Sequence[str],
    mask_id: int,
    width: int = 10,
) -> list[str]:
    out = []
    for t in tokens:
        if t == mask_id:
            out.append(MASK_TEXT)
        elif callable(token_str):
            out.append(display_piece(token_str(t), width))
        else:
            out.append(display_piece(token_str[t], width))
    return out


def _grid(values: Sequence, cols: int, fill=None) -> list[list]:
    rows = math.ceil(len(values) / cols)
    padded = list(values) + [fill] * (rows * cols - len(values))
    return [padded[r * cols : (r + 1) * cols] for r in range(rows)]


FILLER_TEXT = "[EOS]"  # the slot filler after a value: faded in the text view
PLACEHOLDER = "▒"  # a masked token in the text view
FILLER_SHOWN = "·"  # a committed [EOS] in the text view
FADED_COLOR = "#c8c8c8"
PLACEHOLDER_COLOR = "#e6550d"


def text_view(
    tokens: Sequence[int],
    token_str: Callable[[int], str] | Sequence[str],
    mask_id: int,
    *,
    width: int = 46,
) -> str:
    """The generated text as it stands, as plotly annotation HTML: what the grid's tokens spell.

    A masked token shows as PLACEHOLDER (one per token, so the learner sees how much is missing);
    a committed [EOS] filler token as a faded dot; everything else as the text it decodes to.
    Lines break after ", " (the record's field and list separators) and at `width` characters.
    """
    if not isinstance(width, int) or width < 8:
        raise ValueError(f"width must be an int >= 8, got {width!r}")
    lines: list[str] = []
    line: list[str] = []
    used = 0

    def put(visible: str, markup: str) -> None:
        nonlocal used, line
        if used + len(visible) > width and used:
            lines.append("".join(line))
            line, used = [], 0
        line.append(markup)
        used += len(visible)

    prev = ""
    for t in tokens:
        if t == mask_id:
            put(PLACEHOLDER, f'<span style="color:{PLACEHOLDER_COLOR}">{PLACEHOLDER}</span>')
            prev = PLACEHOLDER
            continue
        piece = token_str(t) if callable(token_str) else token_str[t]
        if piece == FILLER_TEXT:
            put(FILLER_SHOWN, f'<span style="color:{FADED_COLOR}">{FILLER_SHOWN}</span>')
        else:
            for n, part in enumerate(piece.split("\n")):
                if n:  # a newline inside the text starts a new line here too
                    lines.append("".join(line))
                    line, used = [], 0
                put(part, html.escape(part.replace("\t", " "), quote=False))
            if piece == " " and prev == ",":
                lines.append("".join(line))
                line, used = [], 0
        prev = piece
    lines.append("".join(line))
    return "<br>".join(lines)


def trace_animation(
    trace: Trace,
    token_str: Callable[[int], str] | Sequence[str],
    *,
    color_by: str = "step",
    cols: int = 12,
    title: str = "Unmasking",
    frame_ms: int = 700,
    show_text: bool = True,
) -> go.Figure:
    """Replay a sampler Trace: the answer as a grid of token cells in reading order, one frame per
    step.

    A masked cell shows [MASK] on grey; a committed cell shows its token, coloured by the step
    that committed it (color_by="step") or by the model's probability of it then
    (color_by="confidence"). Frame 0 is the all-masked start; frame i is the state after step i.
    The figure opens on the last frame (the finished text): ▶ plays it again from step 0.
    show_text: beside the grid, the text those tokens spell so far (`text_view`).
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"unknown color_by {color_by!r}; accepted: {', '.join(COLOR_BY)}")
    if not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be a positive int, got {cols!r}")
    states = trace.states()
    commit = trace.commit_step()
    conf = trace.commit_confidence()
    n_steps = trace.steps_used
    if color_by == "step":
        value = [c + 1 for c in commit]  # 1-based step number
        zmin, zmax, colorscale, label = 1, max(n_steps, 1), "Viridis", "step"
    else:
        value = conf
        zmin, zmax, colorscale, label = 0.0, 1.0, "Plasma", "confidence"
    grid_domain = [0.0, 0.55] if show_text else [0.0, 1.0]
    cell = {
        "xgap": 2,
        "ygap": 2,
        "hoverongaps": False,
        "texttemplate": "%{text}",
        "hovertemplate": "%{customdata}<extra></extra>",
    }

    def frame_data(i: int) -> list[go.Heatmap]:
        # Two layers: grey [MASK] cells below, committed tokens above (None = a gap that shows the
        # layer below). One layer with None for masked cells draws nothing at step 0: plotly writes
        # no text on a gap.
        masked = [not (0 <= commit[p] < i) for p in range(trace.length)]
        pieces = _pieces(states[i], token_str, trace.mask_id, width=7)
        hover = [
            f"position {p}<br>"
            + ("masked" if masked[p] else f"step {commit[p] + 1}, p={conf[p]:.2f}")
            for p in range(trace.length)
        ]
        below = go.Heatmap(
            z=_grid([0] * trace.length, cols),
            text=_grid([MASK_TEXT if m else "" for m in masked], cols, ""),
            customdata=_grid(hover, cols, ""),
            textfont={"size": 9, "color": "#555"},
            colorscale=[[0, MASK_COLOR], [1, MASK_COLOR]],
            showscale=False,
            zmin=0,
            zmax=1,
            **cell,
        )
        above = go.Heatmap(
            z=_grid([None if m else value[p] for p, m in enumerate(masked)], cols),
            text=_grid(["" if m else piece for m, piece in zip(masked, pieces)], cols, ""),
            customdata=_grid(hover, cols, ""),
            textfont={"size": 10},
            zmin=zmin,
            zmax=zmax,
            colorscale=colorscale,
            colorbar={"title": {"text": label}, "x": grid_domain[1] + 0.005, "len": 0.8},
            **cell,
        )
        return [below, above]

    def caption(i: int) -> str:
        done = sum(1 for c in commit if 0 <= c < i)
        return f"{title}: step {i} of {n_steps}, {done}/{trace.length} tokens committed"

    def annotations(i: int) -> list[dict]:
        if not show_text:
            return []
        return [
            {
                "text": text_view(states[i], token_str, trace.mask_id),
                "xref": "paper",
                "yref": "paper",
                "x": grid_domain[1] + 0.09,
                "y": 1.0,
                "xanchor": "left",
                "yanchor": "top",
                "align": "left",
                "showarrow": False,
                "font": {"family": "DejaVu Sans Mono, Menlo, Consolas, monospace", "size": 12},
            }
        ]

    frames = [
        go.Frame(
            data=frame_data(i),
            name=str(i),
            layout={"title": {"text": caption(i)}, "annotations": annotations(i)},
        )
        for i in range(n_steps + 1)
    ]
    last = n_steps
    fig = go.Figure(data=frames[last].data, frames=frames)
    rows = math.ceil(trace.length / cols)
    # ▶ replays from step 0 (the figure opens on the last frame, so "from current" would do
    # nothing).
    play = {
        "frame": {"duration": frame_ms, "redraw": True},
        "fromcurrent": False,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    pause = {
        "frame": {"duration": 0, "redraw": False},
        "mode": "immediate",
        "transition": {"duration": 0},
    }
    fig.update_layout(
        title={"text": caption(last)},
        annotations=annotations(last),
        plot_bgcolor="white",
        height=max(210 + 26 * rows, 420),
        margin={"l": 20, "r": 20, "t": 60, "b": 90},
        xaxis={
            "visible": False,
            "range": [-0.5, cols - 0.5],
            "fixedrange": True,
            "domain": grid_domain,
        },
        yaxis={"visible": False, "range": [rows - 0.5, -0.5], "fixedrange": True},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": -0.02,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"r": 10, "t": 10},
                "showactive": False,
                "buttons": [
                    {"label": "▶ Play from step 0", "method": "animate", "args": [None, play]},
                    {"label": "❚❚ Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
        sliders=[
            {
                "active": last,
                "x": 0.25,
                "y": -0.02,
                "len": 0.75,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 10},
                "currentvalue": {"visible": True, "prefix": "step ", "xanchor": "left"},
                "steps": [
                    {
                        "label": str(i),
                        "method": "animate",
                        "args": [[str(i)], {**pause, "frame": {"duration": 0, "redraw": True}}],
                    }
                    for i in range(n_steps + 1)
                ],
            }
        ],
    )
    return fig


def sample_figure(
    model,
    prompt,
    length: int,
    token_str,
    *,
    mask_id: int,
    steps: int = 8,
    schedule: str = "linear",
    threshold: float | None = None,
    temperature: float = 0.0,
    block_length: int | None = None,
    remasking: str = "low_confidence",
    seed: int = 0,
    color_by: str = "step",
    cols: int = 12,
) -> go.Figure:
    """Sample once with these settings and return the animation of that run (what the panel
    shows)."""
    _, trace = generate(
        model,
        prompt,
        length,
        steps,
        mask_id=mask_id,
        schedule=schedule,
        remasking=remasking,
        block_length=block_length,
        temperature=temperature,
        threshold=threshold,
        seed=seed,
    )
    how = f"tau={threshold}" if threshold is not None else f"{schedule}, {steps} steps"
    blocks = f", blocks of {block_length}" if block_length else ""
    return trace_animation(
        trace,
        token_str,
        color_by=color_by,
        cols=cols,
        title=f"{how}{blocks}, T={temperature}: {trace.steps_used} passes",
    )


def figure_bundle(fig: go.Figure) -> dict:
    """The plotly mime bundle of a figure (what JupyterLab's plotly renderer draws), as plain
    JSON."""
    return {
        "application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False)),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }


def sampling_panel(model, prompt, length: int, token_str, *, mask_id: int, cols: int = 12):
    """ipywidgets controls (steps, schedule, tau, temperature, block length) that re-sample live.

    Each change calls `sample_figure` and shows the new animation below the controls. Widget
    callbacks need a live kernel: headless runs (nbval, papermill) only build the panel.
    """
    import ipywidgets as W

    style = {"description_width": "110px"}
    slider_kw = dict(
        style=style, continuous_update=False
    )  # re-sample on release, not while dragging
    steps = W.IntSlider(value=min(8, length), min=1, max=length, description="steps", **slider_kw)
    schedule = W.Dropdown(
        options=["linear", "cosine"], value="linear", description="schedule", style=style
    )
    adaptive = W.Checkbox(value=False, description="adaptive (tau)")
    tau = W.FloatSlider(value=0.9, min=0.05, max=1.0, step=0.05, description="tau", **slider_kw)
    temperature = W.FloatSlider(
        value=0.0, min=0.0, max=2.0, step=0.1, description="temperature", **slider_kw
    )
    block = W.IntSlider(value=length, min=1, max=length, description="block length", **slider_kw)
    color_by = W.ToggleButtons(options=list(COLOR_BY), value="step", description="colour by")

    out = W.Output()

    def redraw(change=None):
        try:
            fig = sample_figure(
                model,
                prompt,
                length,
                token_str,
                mask_id=mask_id,
                steps=steps.value,
                schedule=schedule.value,
                threshold=tau.value if adaptive.value else None,
                temperature=temperature.value,
                block_length=None if block.value >= length else block.value,
                color_by=color_by.value,
                cols=cols,
            )
        except (
            ValueError
        ) as exc:  # e.g. fewer steps than blocks: say why instead of failing in a callback
            out.outputs = ({"output_type": "stream", "name": "stderr", "text": f"{exc}\n"},)
            return
        # Set the Output widget's contents as widget state instead of capturing display(): headless
        # clients (nbclient, papermill) were seen to hang on output captured while a cell runs.
        out.outputs = ({"output_type": "display_data", "data": figure_bundle(fig), "metadata": {}},)

    def grey_out_unused(change=None):
        # adaptive decoding reads tau and ignores steps and schedule: grey out what moves nothing
        tau.disabled = not adaptive.value
        steps.disabled = schedule.disabled = adaptive.value

    adaptive.observe(grey_out_unused, names="value")
    grey_out_unused()
    controls = (steps, schedule, adaptive, tau, temperature, block, color_by)
    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    left = W.VBox([steps, schedule, block])
    right = W.VBox([adaptive, tau, temperature])
    return W.VBox([W.HBox([left, right]), color_by, out])


# ------------------------------------------------------------------ charts for notebook 04


def commit_histogram(
    rows: Sequence[dict], *, title: str = "When does each kind of token get committed?"
) -> go.Figure:
    """Overlaid histograms of the relative commit time (0 = first step, 1 = last) per token kind.

    rows: dicts with "kind" and "when" (as from `unmasked.sampling.commit_times`).
    """
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    fig = go.Figure()
    for kind in kinds:
        xs = [r["when"] for r in rows if r["kind"] == kind]
        fig.add_trace(
            go.Histogram(
                x=xs,
                name=f"{kind} (n={len(xs)})",
                histnorm="probability",
                xbins={"start": 0, "end": 1.0001, "size": 0.1},
                opacity=0.6,
            )
        )
    fig.update_layout(
        barmode="overlay",
        title=title,
        height=380,
        template="plotly_white",
        xaxis_title="relative commit time (0 = first step, 1 = last step)",
        yaxis_title="share of tokens of that kind",
    )
    return fig


def accuracy_vs_steps(
    results: Sequence[dict], *, title: str = "Field accuracy against sampling steps"
) -> go.Figure:
    """Lines of accuracy (%) against steps K, one per schedule; results: dicts with schedule, K,
    accuracy."""
    fig = go.Figure()
    for schedule in dict.fromkeys(r["schedule"] for r in results):
        pts = sorted((r["K"], r["accuracy"]) for r in results if r["schedule"] == schedule)
        fig.add_trace(
            go.Scatter(
                x=[k for k, _ in pts], y=[a for _, a in pts], mode="lines+markers", name=schedule
            )
        )
    fig.update_layout(
        title=title,
        height=380,
        template="plotly_white",
        xaxis={"title": "steps K (forward passes)", "type": "log"},
        yaxis={"title": "field exact match (%)", "range": [0, 101]},
    )
    return fig
