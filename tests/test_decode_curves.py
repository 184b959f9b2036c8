"""Confidence against correctness, and passes against accuracy as tau moves
(sampling.reliability_curve, tau_sweep)."""

import pytest
import torch

from unmasked.sampling import TAUS, calibration_error, reliability_curve, tau_sweep
from unmasked.sessions import generate_short_sessions
from unmasked.train import RecordLayout, build_vocab, encode_example

torch.set_num_threads(1)


def test_reliability_curve_bins_tokens_by_confidence():
    curve = reliability_curve(
        [0.95, 0.91, 0.15, 0.55, 1.0], [True, False, False, True, True], bins=10
    )
    assert [(b["lo"], b["n"]) for b in curve] == [
        (0.1, 1),
        (0.5, 1),
        (0.9, 3),
    ]  # 1.0 falls in the last bin
    top = curve[-1]
    assert top["confidence"] == pytest.approx((0.95 + 0.91 + 1.0) / 3) and top[
        "accuracy"
    ] == pytest.approx(2 / 3)
    assert curve[0]["accuracy"] == 0 and curve[1]["accuracy"] == 1
    assert calibration_error(curve) == pytest.approx(
        (1 * 0.15 + 1 * 0.45 + 3 * abs(2 / 3 - top["confidence"])) / 5
    )
    assert (
        calibration_error(
            reliability_curve([0.25, 0.25, 0.25, 0.25], [True, False, False, False], 4)
        )
        == 0
    )
    with pytest.raises(ValueError, match="one correctness"):
        reliability_curve([0.5], [True, False])
    with pytest.raises(ValueError, match="probabilities"):
        reliability_curve([1.5], [True])
    with pytest.raises(ValueError, match="empty"):
        calibration_error([])


class GradedOracle(torch.nn.Module):
    """Always right, but sure to a degree that rises along the record and does not depend on
    context."""

    def __init__(self, vocab, layout, sessions):
        super().__init__()
        self.vocab, self.dummy = vocab, torch.nn.Parameter(torch.zeros(1))
        self.gold = {tuple(p): t for p, t in (encode_example(s, vocab, layout) for s in sessions)}

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab.size)
        for b, row in enumerate(idx.tolist()):
            sep = row.index(self.vocab.sep_id)
            start = next(i for i, t in enumerate(row) if t != self.vocab.pad_id)
            target = self.gold[tuple(row[start : sep + 1])]
            sure = torch.linspace(2.0, 14.0, len(target))  # the gold token is always the argmax
            logits[b, sep + 1 :, :][torch.arange(len(target)), torch.tensor(target)] = sure
        return logits


def test_tau_sweep_trades_passes_for_nothing_with_an_always_right_model():
    sessions = generate_short_sessions(5, seed=4)
    vocab = build_vocab(sessions)
    layout = RecordLayout.fit([s.record for s in sessions], vocab)
    rows = tau_sweep(
        GradedOracle(vocab, layout, sessions),
        vocab,
        layout,
        sessions,
        taus=(0.3, 0.6, 0.9, 0.99),
        batch_size=2,
        keep_tokens=True,
    )
    assert [r["tau"] for r in rows] == [0.3, 0.6, 0.9, 0.99]
    assert all(r["accuracy"] == 100 and r["all_fields"] == 100 for r in rows)
    means = [r["passes_mean"] for r in rows]
    assert means == sorted(means) and means[0] < means[-1]  # a higher tau takes more passes
    assert all(r["passes_median"] <= r["passes_max"] for r in rows)
    A = layout.length(vocab)
    assert len(rows[0]["confidence"]) == len(rows[0]["correct"]) == len(rows[0]["in_slot"]) == 5 * A
    assert (
        all(rows[0]["correct"])
        and rows[0]["in_slot"] == [i >= 0 for i in layout.slot_index(vocab)] * 5
    )
    curve = reliability_curve(rows[0]["confidence"], rows[0]["correct"])
    assert all(b["accuracy"] == 1 for b in curve)


def test_tau_sweep_checks_its_input():
    assert TAUS[0] == 0.3 and TAUS[-1] == 0.99
    with pytest.raises(ValueError, match="at least one"):
        tau_sweep(None, None, None, [])
    sessions = generate_short_sessions(1, seed=4)
    with pytest.raises(ValueError, match="tau"):
        tau_sweep(None, None, None, sessions, taus=(1.5,))
