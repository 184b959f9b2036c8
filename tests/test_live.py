"""The live training run's pieces: token accuracy by kind, the in-place figure, the time bar."""

import pytest
import torch
from test_train import Oracle

from unmasked.live import (
    KIND_GROUPS,
    LiveTraining,
    accuracy_frame,
    live_figure,
    token_accuracy_by_kind,
)
from unmasked.sessions import generate_short_sessions
from unmasked.train import FIELDS, RecordLayout, build_vocab


@pytest.fixture(scope="module")
def task():
    sessions = generate_short_sessions(6, seed=5)
    vocab = build_vocab(sessions)
    return vocab, RecordLayout.fit([s.record for s in sessions], vocab), sessions


class FillerOnly(torch.nn.Module):
    """Predicts [EOS] everywhere: right on the filler, wrong on everything else."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab, self.dummy = vocab, torch.nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab.size)
        logits[..., self.vocab.eos_id] = 10.0
        return logits


def test_token_accuracy_by_kind_scores_a_right_and_a_filler_only_model(task):
    vocab, layout, sessions = task
    oracle = Oracle(vocab, layout, sessions).train()
    assert token_accuracy_by_kind(oracle, vocab, layout, sessions) == {k: 1.0 for k in KIND_GROUPS}
    assert oracle.training  # the mode is restored
    filler = token_accuracy_by_kind(FillerOnly(vocab).eval(), vocab, layout, sessions)
    assert filler["[EOS] filler"] == 1.0 and filler["scaffold"] == 0.0 and filler["values"] == 0.0
    with pytest.raises(ValueError, match="at least one"):
        token_accuracy_by_kind(oracle, vocab, layout, [])


def test_live_training_checks_on_the_training_clock_and_redraws_one_display(task, monkeypatch):
    import IPython
    import IPython.display

    vocab, layout, sessions = task
    shown = []

    class Handle:
        def update(self, obj, raw=False):
            shown.append(("update", raw, obj))

    def fake_display(obj, raw=False, display_id=False):
        shown.append(("display", raw, obj))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    history = []
    live = LiveTraining(
        Oracle(vocab, layout, sessions),
        vocab,
        layout,
        sessions,
        history,
        budget_s=30,
        check_every_s=10,
        redraw_every_s=1e9,
        progress=False,
    )
    live.check(0)
    for step, elapsed in enumerate([1.0, 5.0, 10.5, 12.0, 21.0, 29.0], start=1):
        history.append({"step": step, "loss": 1.0 / step, "seconds": elapsed})
        live(step, 1.0 / step, elapsed)
    assert [c["step"] for c in live.checks] == [0, 3, 5]  # at 10.5 s and 21 s of training
    live.finish()
    assert [c["step"] for c in live.checks] == [0, 3, 5, 6]
    assert live.bar.n == 29
    assert [kind for kind, _, _ in shown] == ["display"] + ["update"] * (
        len(shown) - 1
    )  # one figure, updated
    assert all(raw and "application/vnd.plotly.v1+json" in obj for _, raw, obj in shown)
    title = shown[-1][2]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
    assert "step 6" in title and "29 s of training (budget 30 s)" in title


def test_live_figure_and_accuracy_frame():
    history = [{"step": i, "loss": 2.0 / i, "seconds": i} for i in range(1, 5)]
    fig = live_figure(
        history, [{"step": 0, "scaffold": 0.1, "values": 0.0}, {"step": 4, "scaffold": 0.9}]
    )
    acc = {t.name: list(t.y) for t in fig.data if t.name in KIND_GROUPS}
    assert acc["scaffold"] == [pytest.approx(10.0), pytest.approx(90.0)] and acc["values"] == [0.0]
    result = {
        "method": "slots",
        "n": 4,
        "label": "live",
        "accuracy": {k: 0.5 for k in (*FIELDS, "all")},
    }
    frame = accuracy_frame([result])
    assert (
        list(frame.index) == ["live"]
        and frame.loc["live", "task"] == 50.0
        and "<table" in frame.to_html()
    )


def test_token_accuracy_by_kind_leaves_out_records_that_do_not_fit(task):
    vocab, layout, sessions = task
    narrow = RecordLayout({**layout.widths, "task": 2}, layout.items)
    with pytest.raises(ValueError, match="fits"):
        token_accuracy_by_kind(FillerOnly(vocab), vocab, narrow, sessions)
