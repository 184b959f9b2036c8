"""The animation and the live panel are built from a real sampler trace, without a browser."""

import plotly.graph_objects as go
import pytest
import torch
from test_sampling import MASK, TinyBidirectional

from unmasked.sampling import generate
from unmasked.viz import (
    FADED_COLOR,
    FILLER_SHOWN,
    MASK_TEXT,
    PLACEHOLDER,
    accuracy_vs_steps,
    commit_histogram,
    display_piece,
    sample_figure,
    sampling_panel,
    text_view,
    trace_animation,
)

PIECES = [f"w{i} " for i in range(40)]


@pytest.fixture(scope="module")
def trace():
    _, tr = generate(TinyBidirectional().eval(), torch.arange(1, 6)[None], 20, 5, mask_id=MASK)
    return tr


def cells(frame):
    """What each cell shows: the [MASK] layer's text where masked, else the token layer's."""
    below = [c for row in frame.data[0].text for c in row]
    above = [c for row in frame.data[1].text for c in row]
    return [a or b for a, b in zip(above, below)]


def values(frame):
    return [v for row in frame.data[1].z for v in row]


def test_animation_has_one_frame_per_step_plus_the_start(trace):
    fig = trace_animation(trace, PIECES, cols=8)
    assert isinstance(fig, go.Figure) and not isinstance(fig, go.FigureWidget)
    assert len(fig.frames) == trace.steps_used + 1
    assert cells(fig.frames[0])[:20] == [MASK_TEXT] * 20
    assert MASK_TEXT not in cells(fig.frames[-1])[:20]
    for i, frame in enumerate(fig.frames):  # the mask count falls by exactly the step's commits
        n_masked = cells(frame)[:20].count(MASK_TEXT)
        assert n_masked == 20 - sum(trace.commits_per_step[:i])
        assert f"step {i} of {trace.steps_used}" in frame.layout.title.text


def test_animation_colours_by_commit_step_or_confidence(trace):
    fig = trace_animation(trace, PIECES, cols=5)
    commit = trace.commit_step()
    assert values(fig.frames[-1])[:20] == [c + 1 for c in commit]
    assert all(v is None for v in values(fig.frames[0]))
    conf = trace_animation(trace, PIECES, color_by="confidence", cols=5)
    assert values(conf.frames[-1])[:20] == pytest.approx(trace.commit_confidence())
    with pytest.raises(ValueError, match="step, confidence"):
        trace_animation(trace, PIECES, color_by="entropy")


def test_animation_has_play_button_and_labelled_slider(trace):
    fig = trace_animation(trace, lambda t: PIECES[t])
    buttons = fig.layout.updatemenus[0].buttons
    assert buttons[0].method == "animate" and "Play" in buttons[0].label
    slider = fig.layout.sliders[0]
    assert slider.currentvalue.visible
    assert [s.args[0][0] for s in slider.steps] == [f.name for f in fig.frames]


def test_step_0_draws_a_mask_in_every_cell_and_the_figure_opens_on_the_last_frame(trace):
    fig = trace_animation(trace, PIECES, cols=8)
    start = fig.frames[0]
    below = start.data[0]  # the [MASK] layer has a value in every cell, so plotly draws its text
    assert all(v is not None for v in [v for row in below.z for v in row][:20])
    assert [c for row in below.text for c in row][:20] == [MASK_TEXT] * 20
    assert "[MASK]" in below.texttemplate.replace("%{text}", MASK_TEXT)
    last = str(trace.steps_used)
    assert fig.layout.sliders[0].active == trace.steps_used
    assert fig.layout.title.text == fig.frames[-1].layout.title.text
    assert [c for row in fig.data[1].text for c in row] == [
        c for row in fig.frames[-1].data[1].text for c in row
    ]
    assert fig.frames[-1].name == last and MASK_TEXT not in cells(fig)[:20]
    play = fig.layout.updatemenus[0].buttons[0]
    assert play.args[1]["fromcurrent"] is False  # replays from step 0, not from the last frame


def test_text_view_shows_masks_as_placeholders_and_fades_filler():
    vocab = ["{", '"', "task", ":", " ", "fix", "[EOS]", "[MASK]", ",", "}"]
    mask, eos = 7, 6
    partial = [0, 1, 2, 1, 3, 4, 1, mask, mask, 1, eos, eos, 8, 4, 9]
    view = text_view(partial, vocab, mask)
    assert view.count(PLACEHOLDER) == 2
    assert view.count(FILLER_SHOWN) == 2 and FADED_COLOR in view
    assert '{"task": "' in view and "[EOS]" not in view and "[MASK]" not in view
    assert view.split("<br>")[0].endswith(", ")  # a new line after each field separator
    done = text_view([0, 1, 2, 1, 3, 4, 1, 5, 1, 9], vocab, mask)
    assert done == '{"task": "fix"}'
    assert (
        text_view([5] * 40, vocab, mask, width=12).count("<br>") == 9
    )  # 3 tokens of 3 chars a line
    assert text_view([0], lambda t: "a\nb&", mask) == "a<br>b&amp;"
    with pytest.raises(ValueError, match="width"):
        text_view([0], vocab, mask, width=2)


def test_animation_shows_the_text_so_far_beside_the_grid(trace):
    fig = trace_animation(trace, PIECES, cols=8)
    start, end = fig.frames[0].layout.annotations[0].text, fig.frames[-1].layout.annotations[0].text
    assert start.count(PLACEHOLDER) == 20 and PLACEHOLDER not in end
    assert fig.layout.annotations[0].text == end
    assert fig.layout.xaxis.domain[1] < fig.layout.annotations[0].x
    plain = trace_animation(trace, PIECES, cols=8, show_text=False)
    assert not plain.layout.annotations and tuple(plain.layout.xaxis.domain) == (0.0, 1.0)


def test_display_piece_makes_whitespace_visible_and_escapes_html():
    assert display_piece(" a\n") == "·a⏎"
    assert display_piece("<b>") == "&lt;b&gt;" and display_piece('"') == '"'
    assert display_piece("x" * 30).endswith("…")


def test_sample_figure_and_panel_build():
    model = TinyBidirectional().eval()
    fig = sample_figure(model, torch.arange(1, 6)[None], 12, PIECES, mask_id=MASK, threshold=0.5)
    assert len(fig.frames) >= 2
    panel = sampling_panel(model, torch.arange(1, 6)[None], 12, PIECES, mask_id=MASK)
    controls = {w.description: w for box in panel.children[0].children for w in box.children}
    assert {"steps", "schedule", "tau", "temperature", "block length"} <= set(controls)
    out = panel.children[-1]

    def shown_title():
        (output,) = out.outputs
        return output["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]

    assert "8 steps" in shown_title()

    def shown_step():
        return out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["layout"]["sliders"][0][
            "active"
        ]

    assert shown_step() > 0  # the panel opens on the finished record, not on step 0
    controls["steps"].value = 3  # a control change re-samples and replaces the figure
    assert "3 steps" in shown_title() and len(out.outputs) == 1
    assert (
        shown_step() == 3 and "step 3 of 3" in shown_title()
    )  # a redraw shows the end, not step 0
    assert controls["tau"].disabled  # tau moves nothing while adaptive is off
    assert not controls["steps"].disabled and not controls["schedule"].disabled
    controls["adaptive (tau)"].value = True
    assert "tau=0.9" in shown_title() and not controls["tau"].disabled
    assert controls["steps"].disabled and controls["schedule"].disabled  # and these, while it is on
    controls["tau"].value = 0.5
    assert "tau=0.5" in shown_title()
    controls["adaptive (tau)"].value, controls["block length"].value = (
        False,
        4,
    )  # 3 blocks, 3 steps: fine
    assert "blocks of 4" in shown_title() and not controls["steps"].disabled
    controls["steps"].value = 2  # fewer steps than blocks: the panel says why instead of drawing
    assert "fewer than the 3 blocks" in out.outputs[0]["text"]


def test_summary_charts():
    hist = commit_histogram([{"kind": "key", "when": 0.1}, {"kind": "value", "when": 0.9}])
    assert [t.name.split(" ")[0] for t in hist.data] == ["key", "value"]
    acc = accuracy_vs_steps(
        [
            {"schedule": "linear", "K": 2, "accuracy": 50.0},
            {"schedule": "linear", "K": 1, "accuracy": 10.0},
        ]
    )
    assert list(acc.data[0].x) == [1, 2]


def test_masking_figures_read():
    """Notebook 02's pictures: every noise panel square; grid labels short enough for their
    cells."""
    from unmasked.masking import mask_grid_figure, noise_comparison_figure

    fig = noise_comparison_figure(ts=(0.1, 0.5, 0.9))
    anchors = {
        name: fig.layout[name].scaleanchor for name in fig.layout if name.startswith("yaxis")
    }
    assert len(anchors) == 6
    assert all(a == "x" + name[len("yaxis") :] for name, a in anchors.items())
    grid = mask_grid_figure(["{", '"', "database", "[EOS]"] * 5, (0.2, 0.8))
    shown = {c for row in grid.data[0].text for c in row}
    assert max(len(c) for c in shown) <= 4 and "[MASK]" not in shown and "[EOS]" not in shown
    assert "M" in shown and "E" in shown and "M = [MASK]" in grid.layout.title.text
