"""unmasked.costs and unmasked.latency: the seed's arithmetic, the simulation's bookkeeping, bad
input."""

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unmasked import costs, latency

SONNET = "claude-sonnet-4"


@pytest.fixture(scope="module")
def prices():
    return costs.load_prices()


@pytest.fixture(scope="module")
def raw():
    return json.loads(costs.PRICES_PATH.read_text())


# ----------------------------------------------------------------- the seed's arithmetic


def test_150k_tokens_at_3_dollars_per_million_is_45_cents(prices):
    assert prices[SONNET].input_cost_per_token * costs.PER_MILLION == pytest.approx(3.0)
    assert costs.token_cost(150_000, prices[SONNET].input_cost_per_token) == pytest.approx(0.45)
    one_turn = costs.simulate_session(
        1, 150_000, SONNET, output_tokens=0, caching=False, prices=prices
    )
    assert one_turn.total_cost == pytest.approx(0.45)


def test_twenty_turns_at_150k_is_9_dollars(prices):
    flat = costs.session_cost(
        20, 0, SONNET, initial_history=150_000, output_tokens=0, caching=False, prices=prices
    )
    assert flat == pytest.approx(9.0)


def test_cache_hit_is_a_tenth_of_input_for_anthropic(prices):
    for name in (
        "claude-sonnet-4",
        "claude-sonnet-4-6",
        "claude-opus-4-6",
        "claude-opus-4-5",
        "claude-haiku-4-5",
    ):
        p = prices[name]
        assert p.cache_read_input_token_cost == pytest.approx(0.1 * p.input_cost_per_token)
        assert p.cache_creation_input_token_cost == pytest.approx(1.25 * p.input_cost_per_token)


def test_seed_decode_arithmetic():
    assert latency.ar_decode_seconds(8_000, 100) == pytest.approx(80.0)
    assert latency.diffusion_decode_seconds(16, 0.060) == pytest.approx(0.96)


# ----------------------------------------------------------------- prices.json


def test_every_entry_has_source_date_and_litellm_fields(raw):
    entries = {k: v for k, v in raw.items() if not k.startswith("_")}
    assert len(entries) >= 5
    kinds = {v.get("kind") for v in entries.values()}
    assert "diffusion" in kinds and "autoregressive" in kinds
    assert {v.get("tier") for v in entries.values()} >= {"frontier", "mid", "fast"}
    for name, entry in entries.items():
        for field in costs.REQUIRED_FIELDS:
            assert field in entry, (name, field)
        assert entry["source"].startswith("https://"), name
        assert entry["note"].startswith(f"From litellm {raw['_about']['litellm_version']}"), name
        assert entry["date"] == raw["_about"]["refreshed"], name
    # the seed's named frontier models are there, and litellm's name for Mercury
    assert {"claude-opus-4-6", "gpt-5.5", "inception/mercury-2"} <= set(entries)
    assert entries["claude-sonnet-4"]["retired"] and "Retired" in entries["claude-sonnet-4"]["note"]
    # a hand-entered figure says so
    assert "by hand" in entries["inception/mercury-2"]["note"]


@pytest.mark.parametrize("field", costs.REQUIRED_FIELDS)
def test_missing_field_names_entry_and_field(raw, field):
    bad = copy.deepcopy(raw)
    del bad[SONNET][field]
    with pytest.raises(costs.PriceFileError, match=rf"{SONNET}.*{field}"):
        costs.validate_prices(bad)


@pytest.mark.parametrize("field", costs.PRICE_FIELDS)
def test_negative_price_names_entry_and_field(raw, field):
    bad = copy.deepcopy(raw)
    bad["inception/mercury-2"][field] = -1e-6
    with pytest.raises(costs.PriceFileError, match=rf"mercury-2.*{field}.*non-negative"):
        costs.validate_prices(bad)


def test_bad_kind_and_bad_file(raw, tmp_path):
    bad = copy.deepcopy(raw)
    bad[SONNET]["kind"] = "recurrent"
    with pytest.raises(costs.PriceFileError, match="accepted: autoregressive, diffusion"):
        costs.validate_prices(bad)
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with pytest.raises(costs.PriceFileError, match="not valid JSON"):
        costs.load_prices(path)
    with pytest.raises(costs.PriceFileError, match="no price file"):
        costs.load_prices(tmp_path / "missing.json")


# ----------------------------------------------------------------- bad input


def test_unknown_model_lists_accepted(prices):
    with pytest.raises(
        ValueError, match=r"unknown model 'gpt-99'; accepted: .*claude-sonnet-4.*mercury-2"
    ):
        costs.simulate_session(3, 1000, "gpt-99", prices=prices)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(tokens_per_turn=-1),
        dict(output_tokens=-5),
        dict(system_tokens=-1),
        dict(turns=-2),
        dict(turns=2.5),
    ],
)
def test_negative_tokens_rejected(prices, kwargs):
    args = dict(turns=3, tokens_per_turn=1000) | kwargs
    with pytest.raises(ValueError, match="must be"):
        costs.simulate_session(
            args.pop("turns"), args.pop("tokens_per_turn"), SONNET, prices=prices, **args
        )


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan")])
def test_ratio_outside_unit_interval_rejected(ratio):
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]"):
        costs.CompactionPolicy(ratio=ratio)


def test_ratio_one_is_allowed():
    assert costs.CompactionPolicy(ratio=1.0).ratio == 1.0


# ----------------------------------------------------------------- simulation bookkeeping


def test_uncached_session_is_a_triangular_sum(prices):
    p = prices[SONNET]
    turns, new, out = 10, 1_000, 100
    res = costs.simulate_session(
        turns, new, SONNET, output_tokens=out, caching=False, prices=prices
    )
    # turn t sends the t-1 earlier turns (new + out each) plus its own new tokens
    expected_input = sum((t - 1) * (new + out) + new for t in range(1, turns + 1))
    assert sum(t.uncached_input for t in res.turns) == expected_input
    assert res.total_cost == pytest.approx(
        expected_input * p.input_cost_per_token + turns * out * p.output_cost_per_token
    )
    assert res.cumulative_cost[-1] == pytest.approx(res.total_cost)


def test_caching_splits_reads_and_writes(prices):
    res = costs.simulate_session(
        5, 2_000, SONNET, output_tokens=200, system_tokens=1_000, caching=True, prices=prices
    )
    first, second = res.turns[0], res.turns[1]
    assert (
        first.cached_input == 1_000 and first.cache_write == 2_000
    )  # the system prompt starts warm
    assert second.cached_input == first.prompt_tokens  # the whole previous prompt is a cache hit
    assert second.cache_write == 200 + 2_000  # last turn's output and this turn's new tokens
    for t in res.turns:
        assert t.uncached_input == 0
        assert t.cached_input + t.cache_write == t.prompt_tokens


def test_caching_makes_long_sessions_cheaper_but_first_turn_dearer(prices):
    kw = dict(output_tokens=250, prices=prices)
    cached = costs.simulate_session(40, 3_500, SONNET, caching=True, **kw)
    plain = costs.simulate_session(40, 3_500, SONNET, caching=False, **kw)
    assert cached.total_cost < 0.25 * plain.total_cost
    assert cached.turns[0].cost > plain.turns[0].cost  # a cache write costs 1.25x input


def test_compaction_bounds_the_prompt_and_records_summaries(prices):
    policy = costs.CompactionPolicy(threshold=20_000, keep_last=2, ratio=0.1)
    res = costs.simulate_session(
        40, 3_500, SONNET, output_tokens=250, caching=False, policy=policy, prices=prices
    )
    assert res.compactions >= 2
    assert max(t.prompt_tokens for t in res.turns) <= 20_000
    for t in res.turns:
        if t.compacted:
            assert t.summary_tokens == max(1, round(0.1 * t.compacted_tokens))
            assert t.compaction_cost > 0 and t.compaction_s > 0


def test_compaction_invalidates_cache_except_system(prices):
    policy = costs.CompactionPolicy(threshold=15_000, keep_last=1, ratio=0.2)
    res = costs.simulate_session(
        12,
        3_000,
        SONNET,
        output_tokens=0,
        system_tokens=500,
        caching=True,
        policy=policy,
        prices=prices,
    )
    compacted = [t for t in res.turns if t.compacted]
    assert compacted
    for t in compacted:
        assert t.cached_input == 500


def test_no_compaction_when_threshold_never_reached(prices):
    policy = costs.CompactionPolicy(threshold=10**9)
    a = costs.simulate_session(10, 1_000, SONNET, policy=policy, prices=prices)
    b = costs.simulate_session(10, 1_000, SONNET, prices=prices)
    assert a.compactions == 0 and a.total_cost == pytest.approx(b.total_cost)


def test_cheaper_compactor_is_cheaper(prices):
    kw = dict(output_tokens=250, caching=False, prices=prices)
    same = costs.CompactionPolicy(threshold=25_000, compactor=None)
    haiku = costs.CompactionPolicy(threshold=25_000, compactor="claude-haiku-4-5")
    assert costs.session_cost(40, 3_500, SONNET, policy=haiku, **kw) < costs.session_cost(
        40, 3_500, SONNET, policy=same, **kw
    )


def test_uncached_compaction_saves_most_and_cached_saves_less(prices):
    policy = costs.CompactionPolicy(threshold=25_000, keep_last=2, ratio=0.1)
    kw = dict(output_tokens=250, prices=prices)
    save_u = costs.compaction_savings(40, 3_500, SONNET, policy, caching=False, **kw)
    save_c = costs.compaction_savings(40, 3_500, SONNET, policy, caching=True, **kw)
    assert 0.5 < save_u < 0.9
    assert save_c < save_u


@settings(max_examples=30, deadline=None)
@given(
    turns=st.integers(1, 30),
    new=st.integers(0, 5_000),
    out=st.integers(0, 1_000),
    caching=st.booleans(),
)
def test_costs_are_nonnegative_and_cumulative_is_monotone(turns, new, out, caching):
    res = costs.simulate_session(
        turns,
        new,
        SONNET,
        output_tokens=out,
        caching=caching,
        policy=costs.CompactionPolicy(threshold=8_000, keep_last=1, ratio=0.3),
    )
    cum = res.cumulative_cost
    assert all(b >= a for a, b in zip(cum, cum[1:]))
    assert all(t.latency_s >= 0 for t in res.turns)


def test_diffusion_decode_uses_steps_when_given(prices):
    res = costs.simulate_session(
        2,
        1_000,
        "mercury-2",
        output_tokens=8_000,
        diffusion_steps=16,
        diffusion_step_seconds=0.06,
        prices=prices,
    )
    assert res.turns[0].decode_s == pytest.approx(0.96)
    res = costs.simulate_session(2, 1_000, "mercury-2", output_tokens=1_009, prices=prices)
    assert res.turns[0].decode_s == pytest.approx(1.0)  # published 1,009 tok/s


def test_autoregressive_decode_slows_as_the_session_grows(prices):
    res = costs.simulate_session(30, 4_000, "claude-opus-4-6", output_tokens=500, prices=prices)
    decode = [t.decode_s for t in res.turns]
    assert all(b > a for a, b in zip(decode, decode[1:]))
    dep = latency.DEPLOYMENTS["frontier"]
    last = res.turns[-1]
    assert last.decode_s == pytest.approx(dep.decode_seconds(500, last.prompt_tokens))


# ----------------------------------------------------------------- windows and long-context rates


def test_a_prompt_over_the_window_is_an_error(prices):
    # 60 turns of 3,750 tokens pass claude-sonnet-4's 200K window at turn 54
    with pytest.raises(
        costs.ContextWindowError, match=r"turn 54: .*202,250 tokens.*window of 200,000"
    ):
        costs.simulate_session(60, 3_500, SONNET, output_tokens=250, prices=prices)
    fits = costs.simulate_session(53, 3_500, SONNET, output_tokens=250, prices=prices)
    assert fits.turns[-1].prompt_tokens <= 200_000 and "every prompt fits" in fits.window_note


def test_a_prompt_over_the_window_forces_a_compaction_when_asked(prices):
    res = costs.simulate_session(
        60, 3_500, SONNET, output_tokens=250, prices=prices, on_overflow="compact"
    )
    assert max(t.prompt_tokens for t in res.turns) <= 200_000
    forced = [t.turn for t in res.turns if t.forced]
    assert forced and forced[0] == 54 and res.forced_compactions == len(forced)
    assert "forced a compaction before turn(s) 54" in res.window_note
    # a policy that compacts first never hits the window
    policy = costs.CompactionPolicy(threshold=100_000)
    res = costs.simulate_session(
        60, 3_500, SONNET, output_tokens=250, prices=prices, policy=policy, on_overflow="compact"
    )
    assert res.compactions and not res.forced_compactions
    with pytest.raises(ValueError, match="on_overflow"):
        costs.simulate_session(2, 10, SONNET, prices=prices, on_overflow="truncate")


def test_a_compactor_cannot_read_more_than_its_window(prices):
    policy = costs.CompactionPolicy(threshold=140_000, keep_last=0, compactor="inception/mercury-2")
    with pytest.raises(
        costs.ContextWindowError, match="compactor inception/mercury-2 would read .* 128,000"
    ):
        costs.simulate_session(
            40, 3_500, "claude-opus-4-6", output_tokens=250, policy=policy, prices=prices
        )


def test_long_context_rates_bill_the_whole_request(prices):
    g = prices["gpt-5.5"]
    assert g.long_context_above_tokens == 272_000
    lc = g.long_context_prices
    one = costs.simulate_session(1, 300_000, g, output_tokens=100, caching=False, prices=prices)
    assert one.total_cost == pytest.approx(
        300_000 * lc["input_cost_per_token"] + 100 * lc["output_cost_per_token"]
    )
    assert one.turns[0].long_context_rates and "long-context rates" in one.window_note
    under = costs.simulate_session(1, 272_000, g, output_tokens=100, caching=False, prices=prices)
    assert under.total_cost == pytest.approx(272_000 * 5e-6 + 100 * 30e-6)
    assert not under.turns[0].long_context_rates


# ----------------------------------------------------------------- thresholds


def test_break_even_exists_uncached_and_moves_up_with_caching(prices):
    kw = dict(output_tokens=250, prices=prices)
    uncached = costs.break_even_threshold(SONNET, 3_500, 10, caching=False, **kw)
    cached = costs.break_even_threshold(SONNET, 3_500, 10, caching=True, **kw)
    assert uncached is not None and cached is not None
    assert cached > uncached


def test_break_even_shrinks_with_a_longer_horizon(prices):
    short = costs.break_even_threshold(
        SONNET, 3_500, 5, caching=True, output_tokens=250, prices=prices
    )
    long = costs.break_even_threshold(
        SONNET, 3_500, 30, caching=True, output_tokens=250, prices=prices
    )
    assert long is not None and (short is None or long <= short)


def _independent_cost(turns, new, out, p, threshold=None, keep_last=2, ratio=0.1, caching=False):
    """A session's dollars, written again from the billing rules (as lab 09 states them)."""
    blocks, cached_prefix, total = [], 0, 0.0
    for _ in range(turns):
        if threshold is not None and sum(blocks) + new > threshold and len(blocks) > keep_last:
            split = len(blocks) - keep_last
            old = sum(blocks[:split])
            summary = max(1, round(ratio * old))
            read = p.cache_read_input_token_cost if caching else p.input_cost_per_token
            total += old * read + summary * p.output_cost_per_token
            blocks, cached_prefix = [summary] + blocks[split:], 0
        prompt = sum(blocks) + new
        if caching:
            hit = min(cached_prefix, prompt)
            total += (
                hit * p.cache_read_input_token_cost
                + (prompt - hit) * p.cache_creation_input_token_cost
            )
            cached_prefix = prompt
        else:
            total += prompt * p.input_cost_per_token
        total += out * p.output_cost_per_token
        blocks.append(new + out)
    return total


def test_independent_cost_agrees_with_a_hand_worked_session(prices):
    p = prices[SONNET]
    # 3 turns of 1,000 in + 100 out, threshold 3,000, keep 1: before turn 3 turn 1's 1,100 tokens
    # become 110
    hand = (
        (1_000 + 2_100 + (110 + 1_100 + 1_000)) * 3e-6
        + 3 * 100 * 15e-6
        + 1_100 * 3e-6
        + 110 * 15e-6
    )
    assert _independent_cost(3, 1_000, 100, p, threshold=3_000, keep_last=1) == pytest.approx(hand)


@pytest.mark.parametrize("caching", [False, True])
def test_best_threshold_is_the_brute_force_cheapest(prices, caching):
    p = prices[SONNET]
    grid = range(10_000, 100_001, 10_000)
    brute = {None: _independent_cost(30, 3_000, 500, p, caching=caching)}
    brute |= {
        th: _independent_cost(30, 3_000, 500, p, threshold=th, caching=caching) for th in grid
    }
    cheapest = min(brute.values())
    best, cost = costs.best_threshold(30, 3_000, SONNET, grid, caching=caching, prices=prices)
    assert cost == pytest.approx(cheapest) and brute[best] == pytest.approx(cheapest)
    assert all(brute[th] >= cheapest - 1e-12 for th in brute)


# ----------------------------------------------------------------- latency


def test_prefill_is_linear_plus_quadratic():
    pf = latency.PrefillModel(a=1e-4, b=1e-9)
    assert pf.seconds(10_000) == pytest.approx(1e-4 * 1e4 + 1e-9 * 1e8)
    assert pf.crossover_tokens == pytest.approx(1e5)
    # cached prefix: new tokens still attend to it
    assert pf.seconds(1_000, 9_000) == pytest.approx(pf.seconds(10_000) - pf.seconds(9_000))


def test_reference_coefficients_follow_from_shape():
    ref = latency.REFERENCE_PREFILL
    flops = 8 * 989e12 * 0.4
    assert ref.a == pytest.approx(2 * 70e9 / flops)
    assert ref.b == pytest.approx(2 * 80 * 8192 / flops)
    assert ref.crossover_tokens == pytest.approx(70e9 / (80 * 8192))


def test_latency_bad_input():
    with pytest.raises(ValueError, match="tokens_per_second"):
        latency.ar_decode_seconds(10, 0)
    with pytest.raises(ValueError, match="steps"):
        latency.diffusion_decode_seconds(0, 0.06)
    with pytest.raises(ValueError, match="utilisation"):
        latency.prefill_coefficients(utilisation=1.5)
    with pytest.raises(ValueError, match="new_tokens"):
        latency.REFERENCE_PREFILL.seconds(-1)


# ----------------------------------------------------------------- ledger and figures


SEED_NUMBERS = (
    "$0.45",
    "$9",
    "90%",
    "82%",
    "10:1",
    "5%",
    "20-30K",
    "1,000+",
    "80 s",
    "one second instead of ten",
    "16 steps x 60 ms",
    "8 steps",
    "10-20x",
    "2-3 minute",
    "Mercury",
)


def test_ledger_has_a_row_for_each_seed_number(prices):
    rows = costs.claims_ledger(prices)
    claims = " | ".join(r["claim"] for r in rows)
    for needle in SEED_NUMBERS:
        assert needle in claims, needle
    assert len(rows) == len(SEED_NUMBERS)
    for r in rows:
        assert r["verdict"] in costs.VERDICTS
        assert r["computed"] and r["reason"] and r["assumptions"] and r["claimed"]


class _Rows(dict):
    """Ledger rows found by a piece of their claim."""

    def __getitem__(self, needle):
        (row,) = [r for claim, r in self.items() if needle in claim]
        return row


def _ledger(prices, **assumptions):
    return _Rows((r["claim"], r) for r in costs.claims_ledger(prices, assumptions))


def test_judge_is_one_rule_with_stated_tolerances():
    claim = [costs.Claim.about("x", 100.0)]
    assert costs.judge(claim, [104.9], {"b=1": [96.0]})[0] == "holds"
    assert costs.judge(claim, [104.9], {"b=1": [90.0]}) == (
        "holds with a caveat",
        "it does not hold with b=1",
    )
    assert costs.judge(claim, [106.0], {"b=1": [100.0]}) == (
        "does not hold",
        "it would hold with b=1",
    )
    assert costs.judge(claim, [None], {})[0] == "not measured here"
    assert costs.judge([costs.Claim("tok/s", 1000)], [1009], {})[0] == "holds"
    assert (
        costs.judge([costs.Claim.percent("p", 0.82)], [0.79], {})[0] == "does not hold"
    )  # 2 points


def test_price_tier_and_caching_flip_the_per_turn_claim(prices):
    rows = _ledger(prices, price_tier="frontier", caching=False)
    assert rows["$0.45"]["verdict"] == "does not hold"
    assert "$0.75" in rows["$0.45"]["computed"]  # 150K at the seed's frontier $5/M
    rows = _ledger(prices, price_tier="mid", caching=False)
    assert (
        rows["$0.45"]["verdict"] == "holds with a caveat"
        and "caching=True" in rows["$0.45"]["reason"]
    )
    rows = _ledger(prices, price_tier="mid", caching=True)
    assert rows["$0.45"]["verdict"] == "does not hold"


def test_session_claim_holds_only_for_a_flat_uncached_mid_tier_session(prices):
    assert (
        _ledger(prices, price_tier="mid", caching=False, growth="flat")["$9"]["verdict"]
        == "holds with a caveat"
    )
    grow = _ledger(prices, price_tier="mid", caching=False, growth="growing")["$9"]
    assert grow["verdict"] == "does not hold" and "growth=flat" in grow["reason"]


def test_latency_row_counts_the_compaction_call(prices):
    counted = _ledger(prices, count_compaction_call=True)["82%"]["figures"][0]
    not_counted = _ledger(prices, count_compaction_call=False)["82%"]["figures"][0]
    assert counted < not_counted


def test_contradictions_in_the_seed_are_computed(prices):
    rows = _ledger(prices)
    assert rows["10:1"]["figures"][0] == pytest.approx(150_000 / 8_000)  # the cap, not 10:1
    assert rows["10:1"]["verdict"] == "does not hold"
    assert rows["5%"]["figures"][1] < 0.05  # "a 5% floor": a 1M window lets the cap fall under it
    assert rows["Mercury"]["verdict"] == "does not hold"  # 128K < 150K
    assert rows["8 steps"]["verdict"] == "not measured here"
    # with a bigger window for Mercury the window row holds
    wide = dict(prices)
    wide["inception/mercury-2"] = costs.ModelPrice(
        **{**prices["inception/mercury-2"].__dict__, "max_input_tokens": 260_000}
    )
    assert _ledger(wide)["Mercury"]["verdict"] == "holds"


def test_ledger_rejects_an_unknown_assumption(prices):
    with pytest.raises(ValueError, match="unknown assumption.*price_teir"):
        costs.claims_ledger(prices, {"price_teir": "mid"})


def test_figures_have_one_trace_per_session_and_copy_traces(prices):
    import plotly.graph_objects as go

    a = costs.simulate_session(10, 2_000, SONNET, prices=prices)
    b = costs.simulate_session(
        10, 2_000, SONNET, policy=costs.CompactionPolicy(threshold=8_000), prices=prices
    )
    fig = costs.cumulative_cost_figure({"no compaction": a, "compaction": b})
    assert len(fig.data) == 2 and list(fig.data[0].y) == pytest.approx(a.cumulative_cost)
    lat = costs.turn_latency_figure({"no compaction": a, "compaction": b})
    assert list(lat.data[1].y) == pytest.approx(b.latencies)
    widget = go.Figure(fig)  # FigureWidget needs a kernel for display, not for updates
    longer = costs.cumulative_cost_figure(
        {"no compaction": costs.simulate_session(20, 2_000, SONNET, prices=prices), "compaction": b}
    )
    costs.copy_traces(widget, longer)
    assert len(widget.data[0].x) == 20 and widget.layout.title.text == longer.layout.title.text
    assert latency.prefill_figure(100_000).data


def test_calculator_results_compare_like_with_like(prices):
    res = costs.calculator_results(
        30, 3_000, SONNET, True, 20_000, 0.1, "inception/mercury-2", prices=prices
    )
    assert list(res) == ["no compaction", "with compaction"]
    plain, compacted = res.values()
    assert plain.compactions == 0 and compacted.compactions > 0
    assert (
        compacted.policy.compactor == "inception/mercury-2" and plain.caching and compacted.caching
    )
    cost_fig, latency_fig = costs.calculator_figures(
        30, 3_000, SONNET, True, 20_000, 0.1, "inception/mercury-2", prices=prices
    )
    assert f"&#36;{plain.total_cost:,.2f}" in cost_fig.layout.title.text
    assert "$" not in cost_fig.layout.title.text, (
        "two '$' make plotly.js typeset LaTeX and drop the title"
    )


def test_copy_traces_refuses_a_different_figure(prices):
    import plotly.graph_objects as go

    a = costs.simulate_session(5, 1_000, SONNET, prices=prices)
    two = costs.cumulative_cost_figure({"x": a, "y": a})
    with pytest.raises(ValueError, match="traces"):
        costs.copy_traces(go.Figure(two), costs.cumulative_cost_figure({"x": a}))


def test_lost_in_the_middle_data_matches_the_papers_claim():
    lim = costs.LOST_IN_THE_MIDDLE
    # Liu et al.: the worst position falls below closed-book; start and end beat the middle
    assert min(lim["accuracy"]) < lim["closed_book"] < lim["oracle"]
    assert lim["accuracy"][0] > lim["accuracy"][1] < lim["accuracy"][-1]
    for curve in (lim, lim["longer"]):  # a U, not a V: enough positions to see its floor
        acc, pos = curve["accuracy"], curve["positions"]
        assert len(acc) == len(pos) >= 5 and pos[0] == 1 and pos[-1] == curve["documents"]
        low = acc.index(min(acc))
        assert 0 < low < len(acc) - 1 and max(acc[1:-1]) < min(acc[0], acc[-1])
    fig = costs.position_accuracy_figure(lim)
    assert len(fig.data) == 4 and list(fig.data[0].y) == list(lim["accuracy"])
    assert list(fig.data[1].x) == list(lim["longer"]["positions"]) and list(fig.data[2].x) == [
        1,
        30,
    ]
    assert (
        len(costs.position_accuracy_figure({k: v for k, v in lim.items() if k != "longer"}).data)
        == 3
    )


def test_threshold_sweep_figure_draws_a_never_line_per_label(prices):
    rows = costs.threshold_sweep(10, 2_000, SONNET, [5_000, 10_000], caching=False, prices=prices)
    fig = costs.threshold_sweep_figure({"a": rows, "b": rows})
    assert len(fig.data) == 4
    assert list(fig.data[1].y) == [rows[0][1]] * 2


def test_ledger_html_escapes_dollars_for_mathjax(prices):
    rows = costs.claims_ledger(prices)
    html = costs.ledger_html(rows)
    assert "$" not in html, (
        "two '$' in Markdown/HTML output make MathJax typeset the text between them"
    )
    assert "&#36;0.45" in html and html.count("<tr style=") == len(rows)
    # JupyterLab's MathJax decodes &#36; and typesets it all the same: the table must opt out
    assert html.startswith("<table class='claims-ledger mathjax_ignore'>")
    assert (
        costs.ledger_html(
            [dict(claim="<b>", claimed="", computed="", verdict="holds", assumptions="", reason="")]
        ).count("&lt;b&gt;")
        == 1
    )


def test_a_diffusion_model_without_a_published_speed_decodes_in_the_seeds_steps(prices):
    assert prices["inception/mercury-2.5"].output_tokens_per_second is None
    res = costs.simulate_session(
        1, 1_000, "inception/mercury-2.5", output_tokens=4_000, prices=prices
    )
    assert res.turns[0].decode_s == pytest.approx(16 * 0.060)


def test_ledger_rejects_a_bad_open_assumption_and_shows_claims_in_units(prices):
    with pytest.raises(ValueError, match="price_tier must be one of"):
        costs.claims_ledger(prices, {"price_tier": "cheap"})
    rows = _ledger(prices)
    assert rows["$0.45"]["claimed"] == "per turn: $0.43 to $0.47"
    assert rows["82%"]["claimed"] == "saving: 80% to 84%"
    assert rows["1,000+"]["claimed"] == "tok/s: 1,000 tok/s or more"
