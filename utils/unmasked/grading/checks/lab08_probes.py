"""Hidden checks for lab08_probes: score_answer, within_margin, category_verdicts.

Probes (with their KeyFacts) and the results table (a DataFrame) are built in the learner's
kernel from JSON descriptions (see `spec.make`). Facts, answers and scores are drawn from the
grader's secret seed; the expected answers come from unmasked.probes.rubric_score and a plain
mean per category here.
"""

from __future__ import annotations

import random
from collections import defaultdict

from ..spec import Call, Check, also_works, is_number, make, raises, returns, short

PARAMETERS = {"FAST": True, "SEED": 0}
CALL_TIMEOUT_S = 5.0

_NAMES = (
    "postgres",
    "redis",
    "sqlite",
    "port 8080",
    "port 3000",
    "jwt",
    "oauth",
    "pytest",
    "tox",
    "ruff",
    "black",
    "celery",
    "kafka",
    "nginx",
    "gunicorn",
    "uvicorn",
    "docker",
    "poetry",
    "pip",
    "src/app.py",
    "src/auth.py",
    "retry_limit=5",
    "timeout=30s",
    "utf-8",
    "python 3.11",
    "node 20",
    "bcrypt",
    "argon2",
)
_FILLER = (
    "We use",
    "The service runs on",
    "Tests pass with",
    "Config:",
    "Right now it is",
    "Current choice:",
    "It depends on",
    "Deployed with",
)


def key_fact(text: str, variants: list[str]) -> dict:
    return make("unmasked.sessions:KeyFact", text, variants)


def probe_arg(
    category: str, question: str, reference: str, keys: list[tuple], stale: list[tuple]
) -> dict:
    return make(
        "unmasked.sessions:Probe",
        category,
        question,
        reference,
        [key_fact(t, v) for t, v in keys],
        [key_fact(t, v) for t, v in stale],
    )


def _probe_case(rng: random.Random) -> tuple:
    names = rng.sample(_NAMES, rng.randint(3, 7))
    n_keys = rng.randint(1, len(names) - 1)
    keys = [(n, [n.upper()] if rng.random() < 0.3 else []) for n in names[:n_keys]]
    stale = [(n, []) for n in names[n_keys:]]
    sentences = []
    for text, variants in keys:
        if rng.random() < 0.6:
            form = rng.choice([text, *variants])
            sentences.append(
                f"{rng.choice(_FILLER)} {rng.choice((form, form.title(), form.upper()))}."
            )
    for text, _ in stale:
        roll = rng.random()
        if roll < 0.35:
            sentences.append(f"{rng.choice(_FILLER)} {text}.")  # stated as current: penalised
        elif roll < 0.6:
            sentences.append(
                f"We moved from {text} to {rng.choice(keys)[0]}."
            )  # marked as replaced: fine
    rng.shuffle(sentences)
    answer = " ".join(sentences)
    penalty = rng.choice((2.0, 2.0, 0.0, 1.0, round(rng.uniform(0.1, 5.0), 2)))
    category = rng.choice(("factual_recall", "decision", "file_state", "error_history"))
    reference = " ".join(f"{rng.choice(_FILLER)} {t}." for t, _ in keys)
    return answer, (category, "What is current?", reference, keys, stale), penalty


def build(rng: random.Random) -> list[Check]:
    from unmasked.probes import rubric_score
    from unmasked.sessions import KeyFact, Probe

    def expected_score(answer, probe, penalty):
        category, question, reference, keys, stale = probe
        made = Probe(
            category,
            question,
            reference,
            [KeyFact(t, v) for t, v in keys],
            [KeyFact(t, v) for t, v in stale],
        )
        return rubric_score(answer, made, stale_penalty=penalty).score

    probes = [_probe_case(rng) for _ in range(10)]
    probes.append(("", probes[0][1], 2.0))  # an empty answer
    probes.append((probes[1][1][2], probes[1][1], 2.0))  # the reference answer itself
    score_calls = tuple(Call("score_answer", (a, probe_arg(*p), pen)) for a, p, pen in probes)
    score_wanted = [expected_score(a, p, pen) for a, p, pen in probes]

    def score_verify(calls, outcomes):
        for (answer, probe, penalty), outcome, want in zip(probes, outcomes, score_wanted):
            keys = [t for t, _ in probe[3]]
            stale = [t for t, _ in probe[4]]
            shown = (
                f"score_answer({short(answer, 90)}, probe with key facts {keys} and stale "
                f"facts {stale}, {penalty})"
            )
            if not outcome.ok:
                return f"{shown} {outcome.show()}"
            if not is_number(outcome.value) or abs(outcome.value - want) > 1e-3:
                return f"{shown} returned {short(outcome.value)}; expected {want}"
        return None

    empty = [
        ("anything", probe_arg("factual_recall", "?", "", [], [(rng.choice(_NAMES), [])]), 2.0)
    ]

    margins = []
    for _ in range(8):
        full = round(rng.uniform(0.5, 5.0), 1)
        margin = rng.choice((0.3, 0.3, 0.5, 1.0, 0.0, round(rng.uniform(0.1, 1.5), 1)))
        score = rng.choice(
            (
                full - margin,
                full - margin - 0.01,
                full + 0.2,
                full - margin + 0.01,
                rng.uniform(0.0, 5.0),
            )
        )
        margins.append((round(score, 2), full, margin))
    margins.append((4.7, 5.0, 0.3))  # 5.0 - 4.7 is 0.30000000000000027 in floats
    negative = [(4.0, 5.0, -round(rng.uniform(0.01, 1.0), 2)) for _ in range(2)]

    tables = []
    for _ in range(3):
        categories = rng.sample(
            ("factual_recall", "decision", "file_state", "error_history", "constraint"),
            rng.randint(2, 5),
        )
        compactors = ["full"] + rng.sample(
            ("truncation", "keep_last", "observation_masking", "extractive", "anchored"),
            rng.randint(1, 3),
        )
        sessions = [f"session-{rng.randrange(10**6):06d}" for _ in range(rng.randint(1, 4))]
        rows = {"compactor": [], "category": [], "score": [], "session": []}
        for compactor in compactors:
            for category in categories:
                for session in sessions:
                    rows["compactor"].append(compactor)
                    rows["category"].append(category)
                    rows["score"].append(round(rng.choice((rng.uniform(0, 5), 5.0, 4.7, 4.0)), 1))
                    rows["session"].append(session)
        order = list(range(len(rows["score"])))
        rng.shuffle(order)
        rows = {k: [v[i] for i in order] for k, v in rows.items()}
        tables.append(
            (
                rows,
                rng.choice(compactors[1:]),
                rng.choice((0.3, 0.3, 0.5, round(rng.uniform(0, 1.5), 1))),
            )
        )

    def verdicts_here(rows, compactor, margin):
        sums = defaultdict(lambda: [0.0, 0])
        for c, cat, s in zip(rows["compactor"], rows["category"], rows["score"]):
            sums[(c, cat)][0] += s
            sums[(c, cat)][1] += 1
        mean = {key: total / n for key, (total, n) in sums.items()}
        return {
            cat: mean[("full", cat)] - mean[(c, cat)] <= margin + 1e-9
            for (c, cat) in mean
            if c == compactor
        }

    verdict_calls = tuple(
        Call("category_verdicts", (make("pandas:DataFrame", rows), c, m)) for rows, c, m in tables
    )
    verdict_wanted = [verdicts_here(*t) for t in tables]

    def verdict_verify(calls, outcomes):
        for (rows, compactor, margin), outcome, want in zip(tables, outcomes, verdict_wanted):
            shown = (
                f"category_verdicts(a table of {len(rows['score'])} rows, {compactor!r}, {margin})"
            )
            if not outcome.ok:
                return f"{shown} {outcome.show()}"
            if outcome.value != want or outcome.type != "dict":
                return f"{shown} returned {short(outcome.value, 120)}; expected {short(want, 120)}"
            if not all(isinstance(v, bool) for v in outcome.value.values()):
                return (
                    f"{shown} returned {short(outcome.value, 120)}; the verdicts should be "
                    "True "
                    "or False"
                )
        return None

    unknown = [(make("pandas:DataFrame", tables[0][0]), "no_such_compactor", 0.3)]

    checks = [
        Check(
            "score_answer follows the 0-5 rubric",
            3,
            score_calls,
            score_verify,
            hint="5 * (key facts stated) / (key facts), minus stale_penalty per stale fact stated "
            "as current "
            "(pr.stale_as_current with the probe's key facts), clipped to 0..5.",
        ),
        raises(
            "score_answer rejects a probe without key facts with ValueError",
            1,
            "score_answer",
            empty,
            "ValueError",
            hint="A probe with no key facts cannot be scored: raise ValueError before dividing.",
        ),
        returns(
            "within_margin allows at most margin below full context",
            2,
            "within_margin",
            margins,
            [full - score <= margin + 1e-9 for score, full, margin in margins],
            accept_types=("bool",),
            hint="Return full_score - score <= margin, with 1e-9 of slack for float rounding, as a "
            "bool.",
        ),
        raises(
            "within_margin rejects a negative margin with ValueError",
            1,
            "within_margin",
            negative,
            "ValueError",
            hint="Check margin first and raise ValueError when it is below 0.",
        ),
        Check(
            "category_verdicts compares each category's mean with full context",
            2,
            verdict_calls,
            verdict_verify,
            hint="Group by compactor and category, take the mean score, and use "
            "within_margin(mean, the 'full' "
            "mean of that category, margin) for each category of the compactor.",
        ),
        raises(
            "category_verdicts rejects an unknown compactor with ValueError",
            1,
            "category_verdicts",
            unknown,
            "ValueError",
            hint="Raise ValueError when the table has no rows for the compactor.",
        ),
    ]
    # each raising check also needs the values of the check before it: a stub that always raises,
    # or a report rewritten in the kernel, gets no point
    score, score_raises, margin, margin_raises, verdicts, verdicts_raise = checks
    return [
        score,
        also_works(score_raises, score),
        margin,
        also_works(margin_raises, margin),
        verdicts,
        also_works(verdicts_raise, verdicts),
    ]
