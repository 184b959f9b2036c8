"""Hidden checks for lab09_costs: session_cost, session_cost_with_compaction, compaction_savings.

Every call gets a price dict shaped like the lab's (`dataclasses.asdict` of a ModelPrice, with
litellm's field names) but with four per-token prices drawn from the grader's secret seed, all
different, so reading the wrong field shows. The expected answers come from
unmasked.costs.simulate_session, which bills a session by the same rules the lab states.
"""

from __future__ import annotations

import dataclasses
import random

from unmasked import costs

from ..spec import Call, Check, isclose, raises, short

PARAMETERS = {"FAST": True, "SEED": 0, "MODEL": "claude-sonnet-4"}
CALL_TIMEOUT_S = 5.0  # at most a few hundred turns of arithmetic per call

_CLOSE = isclose(rel_tol=1e-9, abs_tol=1e-12)


def random_price(rng: random.Random) -> dict:
    """A model's price dict with fresh per-token prices: cache read < input < cache write <
    output."""
    model = rng.choice(list(costs.load_prices().values()))
    per_million = rng.uniform(0.1, 20.0)
    prices = {
        "input_cost_per_token": per_million,
        "cache_read_input_token_cost": per_million * rng.uniform(0.05, 0.5),
        "cache_creation_input_token_cost": per_million * rng.uniform(1.1, 2.0),
        "output_cost_per_token": per_million * rng.uniform(2.5, 8.0),
    }
    prices = {k: round(v, 4) / 1e6 for k, v in prices.items()}
    # the lab's billing rules have no context window and no long-context rates
    return dataclasses.asdict(
        dataclasses.replace(
            model,
            name=f"model-{rng.randrange(16**6):06x}",
            **prices,
            max_input_tokens=10**9,
            long_context_prices=None,
        )
    )


def _model(price: dict) -> costs.ModelPrice:
    return costs.ModelPrice(**price)


def expected_cost(
    turns, tokens_per_turn, output_tokens, price, caching=False, policy=None
) -> float:
    return costs.session_cost(
        turns,
        tokens_per_turn,
        _model(price),
        output_tokens=output_tokens,
        caching=caching,
        policy=policy,
    )


def show(call: Call) -> str:
    """`session_cost(3, 1000, 100, price, True)`, then the four prices in dollars per million
    tokens."""
    args = ", ".join("price" if isinstance(a, dict) else repr(a) for a in call.args)
    price = next((a for a in call.args if isinstance(a, dict)), {})
    per_million = ", ".join(
        f"{label} ${price.get(field, 0) * 1e6:g}/M"
        for label, field in (
            ("input", "input_cost_per_token"),
            ("output", "output_cost_per_token"),
            ("cache read", "cache_read_input_token_cost"),
            ("cache write", "cache_creation_input_token_cost"),
        )
    )
    return f"{call.func}({args}) [price: {per_million}]"


def dollars(
    name: str, points: float, func: str, cases, expected, hint: str, *, empty_is_zero: bool = False
) -> Check:
    """`func(*case)` must return `expected[i]` dollars (or a fraction), to 1e-9 relative."""
    calls = tuple(Call(func, tuple(case)) for case in cases)
    wanted = list(expected)

    def verify(calls, outcomes):
        for call, outcome, want in zip(calls, outcomes, wanted):
            if not outcome.ok:
                return f"{show(call)} {outcome.show()}"
            if not _CLOSE(outcome.value, want):
                why = " (an empty session saves 0.0)" if empty_is_zero and call.args[0] == 0 else ""
                return f"{show(call)} returned {short(outcome.value)}; expected {want!r}{why}"
        return None

    return Check(name, points, calls, verify, hint)


def _session(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(1, 60), rng.randint(1, 20_000), rng.randint(0, 2_000)


def _compaction_case(rng: random.Random, caching: bool, *, exact: bool = False) -> tuple:
    """A session that compacts at least once under its policy; with `exact`, one turn's prompt
    equals the threshold (which must not compact: only a prompt over it does)."""
    while True:
        turns, tpt, out = rng.randint(4, 80), rng.randint(200, 12_000), rng.randint(0, 1_500)
        keep_last = rng.choice((0, 1, 2, 2, 3, rng.randint(4, 8)))
        threshold = rng.choice(
            (rng.randint(tpt, (tpt + out) * turns), rng.randint(0, 3 * (tpt + out)))
        )
        if exact:
            keep_last = rng.randint(0, min(3, turns - 3))
            threshold = rng.randint(keep_last + 1, turns - 2) * (tpt + out) + tpt
        ratio = rng.choice((1.0, rng.uniform(0.02, 1.0), rng.uniform(0.02, 0.3)))
        policy = costs.CompactionPolicy(threshold=threshold, keep_last=keep_last, ratio=ratio)
        price = random_price(rng)
        run = costs.simulate_session(
            turns, tpt, _model(price), output_tokens=out, caching=caching, policy=policy
        )
        if run.compactions:
            return (turns, tpt, out, price, threshold, keep_last, ratio, caching), policy


def build(rng: random.Random) -> list[Check]:
    plain = [
        (0, rng.randint(1, 5_000), rng.randint(0, 500), random_price(rng)),
        (rng.randint(1, 30), 0, 0, random_price(rng)),
    ]
    plain += [(*_session(rng), random_price(rng)) for _ in range(6)]
    cached = [(0, rng.randint(1, 5_000), rng.randint(0, 500), random_price(rng), True)]
    cached += [(*_session(rng), random_price(rng), True) for _ in range(6)]
    price = random_price(rng)
    negative = [
        (-rng.randint(1, 9), 1_000, 100, price),
        (rng.randint(1, 9), -rng.randint(1, 9_999), 100, price),
        (rng.randint(1, 9), 1_000, -rng.randint(1, 999), price),
    ]

    compacting = [_compaction_case(rng, False) for _ in range(4)] + [
        _compaction_case(rng, False, exact=True)
    ]
    compacting_cached = [_compaction_case(rng, True) for _ in range(4)] + [
        _compaction_case(rng, True, exact=True)
    ]
    turns, tpt, out = _session(rng)
    never = [
        (
            turns,
            tpt,
            out,
            random_price(rng),
            (tpt + out) * turns + rng.randint(1, 10**6),
            rng.randint(0, 5),
            rng.uniform(0.01, 1.0),
            caching,
        )
        for caching in (False, True)
    ]
    bad_ratio = [
        (turns, tpt, out, price, 5_000, 2, r)
        for r in (0, 0.0, -rng.uniform(0.01, 1.0), rng.uniform(1.0001, 3.0))
    ]
    bad_ratio.append((turns, -tpt, out, price, 5_000, 2, 0.1))

    savings_cases = [c for c, _ in compacting[:3] + compacting_cached[:3]]
    savings_cases.append(
        (0, tpt, out, random_price(rng), 1_000, 1, 0.1, rng.random() < 0.5)
    )  # an empty session
    savings_cases.append(
        (rng.randint(10, 40), tpt, out, random_price(rng), 1_000, 1, 1.0, False)
    )  # costs more

    def savings(case) -> float:
        turns, tpt, out, price, threshold, keep_last, ratio, caching = case
        policy = costs.CompactionPolicy(threshold=threshold, keep_last=keep_last, ratio=ratio)
        return costs.compaction_savings(
            turns, tpt, _model(price), policy, output_tokens=out, caching=caching
        )

    def compaction_cost(case) -> float:
        turns, tpt, out, price, threshold, keep_last, ratio, caching = case
        policy = costs.CompactionPolicy(threshold=threshold, keep_last=keep_last, ratio=ratio)
        return expected_cost(turns, tpt, out, price, caching, policy)

    return [
        dollars(
            "session_cost bills the re-sent history without caching",
            2,
            "session_cost",
            plain,
            [expected_cost(*case) for case in plain],
            hint="Turn t sends every earlier turn's input and reply plus its own tokens_per_turn, "
            "all at "
            "input_cost_per_token; each turn's output_tokens cost output_cost_per_token.",
        ),
        dollars(
            "session_cost bills cache reads and cache writes",
            2,
            "session_cost",
            cached,
            [expected_cost(*case) for case in cached],
            hint="With caching, the previous request's whole prompt is read at "
            "cache_read_input_token_cost and "
            "the rest of this prompt written at cache_creation_input_token_cost; turn 1 has "
            "nothing cached.",
        ),
        raises(
            "session_cost rejects negative turns or tokens with ValueError",
            1,
            "session_cost",
            negative,
            "ValueError",
            works=(
                [cached[0]],
                [expected_cost(*cached[0])],
            ),  # a stub that always raises does not pass
            compare=_CLOSE,
            hint="Check turns, tokens_per_turn and output_tokens first and raise ValueError if one "
            "is below 0.",
        ),
        dollars(
            "session_cost_with_compaction changes nothing below its threshold",
            1,
            "session_cost_with_compaction",
            never,
            [compaction_cost(case) for case in never],
            hint="A threshold the prompt never passes never compacts: the cost is session_cost's.",
        ),
        dollars(
            "session_cost_with_compaction bills summaries and the shorter history",
            2,
            "session_cost_with_compaction",
            [c for c, _ in compacting],
            [compaction_cost(c) for c, _ in compacting],
            hint="Compact before a turn when sum(blocks) + tokens_per_turn > threshold (a prompt "
            "equal to the "
            "threshold is not compacted) and there are more than "
            "keep_last blocks: the old blocks become one block of max(1, round(ratio * old)) "
            "tokens; the "
            "summary call reads the old tokens at the input price and writes the summary at the "
            "output price.",
        ),
        dollars(
            "session_cost_with_compaction with caching: the summary reads the cache, the next turn "
            "rewrites it",
            2,
            "session_cost_with_compaction",
            [c for c, _ in compacting_cached],
            [compaction_cost(c) for c, _ in compacting_cached],
            hint="With caching the summary call reads the old tokens at "
            "cache_read_input_token_cost; after a "
            "compaction nothing is cached, so that turn writes its whole prompt to the cache.",
        ),
        raises(
            "session_cost_with_compaction rejects a ratio outside (0, 1] or negative tokens with "
            "ValueError",
            1,
            "session_cost_with_compaction",
            bad_ratio,
            "ValueError",
            works=([compacting[0][0]], [compaction_cost(compacting[0][0])]),
            compare=_CLOSE,
            hint="ratio is summary tokens / compacted tokens: accept 0 < ratio <= 1, and no "
            "negative token counts.",
        ),
        dollars(
            "compaction_savings is 1 - compacted / uncompacted cost",
            2,
            "compaction_savings",
            savings_cases,
            [savings(case) for case in savings_cases],
            hint="Compute both costs with your two functions and return 1 - compacted / "
            "uncompacted; return 0.0 "
            "when the uncompacted session costs nothing.",
            empty_is_zero=True,
        ),
    ]
