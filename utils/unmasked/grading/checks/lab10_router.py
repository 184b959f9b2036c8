"""Hidden checks for lab10_router: plan_totals and route, on surfaces and budgets drawn here.

Every surface is drawn from the grader's secret seed: random roles, options with dollars, seconds
and quality, and subtasks that repeat roles. A route is judged by what it is worth, not by its
names: it must name an option of each subtask's role, fit both budgets, and reach the best total
quality (computed here by exhaustive search, unmasked.stack.route). Ties may be broken any way.
The budgets are drawn so that the easy wrong answers fail: always the cheapest option (a better
plan fits), always the best option (it does not fit), and a greedy upgrade by quality per dollar.
"""

from __future__ import annotations

import math
import random

from unmasked import stack

from ..spec import Call, Check, raises, short

PARAMETERS = {"FAST": True, "SEED": 0}
CALL_TIMEOUT_S = 10.0  # an exhaustive search over a few thousand plans per call

ROLES = ("compactor", "tool_search", "validation", "code_completion", "planner")


def _option(rng: random.Random, role: str, i: int) -> dict:
    return dict(
        name=f"{role}-{rng.randrange(16**4):04x}-{i}",
        dollars=round(rng.choice((0.0, rng.uniform(0.0001, 0.05))), 6),
        seconds=round(rng.uniform(0.001, 3.0), 4),
        quality=round(rng.uniform(0.05, 1.0), 4),
    )


def random_surface(rng: random.Random, n_roles: int | None = None) -> dict:
    roles = rng.sample(ROLES, n_roles or rng.randint(2, 4))
    return {r: [_option(rng, r, i) for i in range(rng.randint(2, 4))] for r in roles}


def _subtasks(rng: random.Random, options: dict, n: int | None = None) -> list[str]:
    roles = list(options)
    subtasks = roles + [rng.choice(roles) for _ in range((n or rng.randint(3, 6)) - len(roles))]
    rng.shuffle(subtasks)
    return subtasks


def totals(subtasks, options, plan) -> dict:
    return stack.plan_totals(subtasks, options, plan)


def _fits(t: dict, budget: dict) -> bool:
    return t["dollars"] <= budget["dollars"] + 1e-9 and t["seconds"] <= budget["seconds"] + 1e-9


def _always(subtasks, options, key) -> list[str]:
    return [min(options[r], key=key)["name"] for r in subtasks]


def greedy(subtasks, options, budget) -> list[str] | None:
    """Start from the cheapest option everywhere; upgrade by best quality per dollar while it
    fits. The plausible answer that the drawn budgets defeat."""
    plan = _always(subtasks, options, lambda o: (o["dollars"], o["seconds"]))
    if not _fits(totals(subtasks, options, plan), budget):
        return None
    while True:
        base = totals(subtasks, options, plan)
        moves = []
        for i, role in enumerate(subtasks):
            now = next(o for o in options[role] if o["name"] == plan[i])
            for o in options[role]:
                gain = o["quality"] - now["quality"]
                extra = o["dollars"] - now["dollars"]
                trial = plan[:i] + [o["name"]] + plan[i + 1 :]
                if gain > 0 and _fits(totals(subtasks, options, trial), budget):
                    moves.append((gain / max(extra, 1e-9), i, o["name"]))
        if not moves:
            return plan
        _, i, name = max(moves)
        plan[i] = name
        assert totals(subtasks, options, plan)["quality"] > base["quality"]


def best_quality(subtasks, options, budget) -> float:
    return totals(subtasks, options, stack.route(subtasks, options, budget))["quality"]


def _quality_of(subtasks, options, plan) -> float:
    return totals(subtasks, options, plan)["quality"] if plan is not None else -math.inf


def tight_case(rng: random.Random) -> tuple:
    """A surface and budget where always-cheapest, always-best and greedy all fall short."""
    while True:
        options = random_surface(rng)
        subtasks = _subtasks(rng, options)
        cheap = _always(subtasks, options, lambda o: (o["dollars"], o["seconds"]))
        good = _always(subtasks, options, lambda o: -o["quality"])
        low, high = totals(subtasks, options, cheap), totals(subtasks, options, good)
        budget = dict(
            dollars=round(rng.uniform(low["dollars"], high["dollars"]), 6),
            seconds=round(rng.uniform(low["seconds"], max(low["seconds"], high["seconds"])), 4),
        )
        try:
            best = best_quality(subtasks, options, budget)
        except ValueError:
            continue
        if _fits(high, budget) or best <= low["quality"] + 1e-6:
            continue
        if _quality_of(subtasks, options, greedy(subtasks, options, budget)) >= best - 1e-9:
            continue
        return subtasks, options, budget


def roomy_case(rng: random.Random) -> tuple:
    options = random_surface(rng)
    subtasks = _subtasks(rng, options)
    good = _always(subtasks, options, lambda o: -o["quality"])
    high = totals(subtasks, options, good)
    return subtasks, options, dict(dollars=high["dollars"] + 1, seconds=high["seconds"] + 1)


def impossible_case(rng: random.Random) -> tuple:
    options = random_surface(rng)
    subtasks = _subtasks(rng, options)
    fastest = totals(subtasks, options, _always(subtasks, options, lambda o: o["seconds"]))
    return subtasks, options, dict(dollars=10.0, seconds=round(fastest["seconds"] * 0.9, 4))


def routes_best(name: str, points: float, cases, hint: str) -> Check:
    """route(*case) must return a plan that fits and reaches the best quality."""
    calls = tuple(Call("route", tuple(case)) for case in cases)
    wanted = [best_quality(*case) for case in cases]

    def verify(calls, outcomes):
        for call, outcome, want in zip(calls, outcomes, wanted):
            subtasks, options, budget = call.args
            where = f"route(subtasks={short(subtasks)}, budget={budget})"
            if not outcome.ok:
                return f"{where} {outcome.show()}"
            plan = outcome.value
            if not isinstance(plan, list) or len(plan) != len(subtasks):
                return f"{where} returned {short(plan)}; expected a list of {len(subtasks)} names"
            try:
                got = totals(subtasks, options, plan)
            except (ValueError, TypeError) as exc:
                return f"{where} returned {short(plan)}, which is not a plan: {exc}"
            if not _fits(got, budget):
                return (
                    f"{where} returned a plan costing ${got['dollars']:.6f} and "
                    f"{got['seconds']:.4f} s: over the budget"
                )
            if not math.isclose(got["quality"], want, rel_tol=1e-9, abs_tol=1e-9):
                return (
                    f"{where} returned a plan of quality {got['quality']:.4f}; a plan of quality "
                    f"{want:.4f} fits"
                )
        return None

    return Check(name, points, calls, verify, hint)


def totals_check(name: str, points: float, cases, hint: str) -> Check:
    calls = tuple(Call("plan_totals", tuple(case)) for case in cases)
    wanted = [totals(*case) for case in cases]

    def verify(calls, outcomes):
        for call, outcome, want in zip(calls, outcomes, wanted):
            where = f"plan_totals(choice={short(call.args[2])})"
            if not outcome.ok:
                return f"{where} {outcome.show()}"
            got = outcome.value
            if not isinstance(got, dict) or set(got) != set(want):
                return f"{where} returned {short(got)}; expected a dict with {sorted(want)}"
            for key in want:
                value = got[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return f"{where}[{key!r}] is {short(value)}; expected a number"
                if not math.isclose(value, want[key], rel_tol=1e-9, abs_tol=1e-12):
                    return f"{where}[{key!r}] is {value!r}; expected {want[key]!r}"
        return None

    return Check(name, points, calls, verify, hint)


def _same_quality(case, got, want) -> bool:
    """`got` is a plan for `case` that fits and is worth what `want` is worth."""
    subtasks, options, budget = case
    try:
        t = totals(subtasks, options, list(got))
    except (ValueError, TypeError, KeyError):
        return False
    return _fits(t, budget) and math.isclose(t["quality"], _quality_of(subtasks, options, want))


def _random_plan(rng: random.Random, subtasks, options) -> list[str]:
    return [rng.choice(options[r])["name"] for r in subtasks]


def build(rng: random.Random) -> list[Check]:
    plans = []
    for _ in range(5):
        options = random_surface(rng)
        subtasks = _subtasks(rng, options)
        plans.append((subtasks, options, _random_plan(rng, subtasks, options)))
    options = random_surface(rng, 2)
    subtasks = _subtasks(rng, options, 3)
    good = _random_plan(rng, subtasks, options)
    other = next(r for r in ROLES if r not in options)
    bad = [
        (subtasks, options, good[:-1]),  # one name short
        (subtasks, options, good[:-1] + ["no-such-option"]),
        (subtasks + [other], options, good + ["x"]),  # a role without options
    ]
    roomy = [roomy_case(rng) for _ in range(3)]
    tight = [tight_case(rng) for _ in range(5)]
    impossible = [impossible_case(rng) for _ in range(3)]
    return [
        totals_check(
            "plan_totals sums dollars, seconds and quality over the subtasks",
            2,
            plans,
            hint="For each subtask, find the option of its role with the chosen name and add its "
            "dollars, seconds and quality; a role may appear more than once.",
        ),
        raises(
            "plan_totals rejects a plan that does not match the subtasks with ValueError",
            1,
            "plan_totals",
            bad,
            "ValueError",
            works=([plans[0]], [totals(*plans[0])]),
            compare=lambda got, want: (
                isinstance(got, dict)
                and all(math.isclose(got.get(k, math.nan), v) for k, v in want.items())
            ),
            hint="Raise ValueError for a length mismatch, a role without options, or a name that "
            "is not an option of its role.",
        ),
        routes_best(
            "route takes the best option everywhere when the budget allows it",
            1,
            roomy,
            hint="With room for everything, the best plan is the best-quality option per subtask.",
        ),
        routes_best(
            "route finds the best plan under tight budgets (not the cheapest, not greedy)",
            4,
            tight,
            hint="Search every plan (itertools.product over each subtask's options), keep those "
            "within both budgets, and return the one with the highest total quality.",
        ),
        raises(
            "route raises ValueError when no plan fits",
            1,
            "route",
            impossible,
            "ValueError",
            works=([roomy[0]], [stack.route(*roomy[0])]),
            compare=lambda got, want: _same_quality(roomy[0], got, want),
            hint="When even the fastest (or cheapest) plan is over the budget, raise ValueError "
            "instead of returning a plan that does not fit.",
        ),
    ]
