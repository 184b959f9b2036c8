import plotly.graph_objects as go
import pytest

from unmasked import welcome


def test_sample_log_is_seeded_and_sized():
    assert welcome.sample_test_log(10, seed=1) == welcome.sample_test_log(10, seed=1)
    assert welcome.sample_test_log(10, seed=1) != welcome.sample_test_log(10, seed=2)
    assert len(welcome.sample_test_log(25).splitlines()) == 25
    with pytest.raises(ValueError):
        welcome.sample_test_log(-1)


def test_figure_updates_in_place():
    fig = welcome.encoding_comparison_figure(welcome.sample_test_log(5))
    before = list(fig.data[0].y)
    same = welcome.encoding_comparison_figure(welcome.sample_test_log(200), fig=fig)
    assert same is fig and len(fig.data) == 1
    assert all(b < a for a, b in zip(fig.data[0].y, before))
    assert isinstance(fig, go.Figure)


def test_logs_beat_the_four_characters_rule():
    counts = welcome.encoding_comparison(welcome.sample_test_log(100))
    assert counts["cl100k_base"] > counts["chars / 4"]
