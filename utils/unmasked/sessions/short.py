"""Short sessions (<= 256 cl100k tokens) paired with a flat record: the toy model's corpus.

Each value of the record sits in the text in a recognisable context ("we'll use postgres
because ...", "Edited src/api/users.py", "Error: ...", "Next: ..."), so a small model can
learn to copy spans. Distractors keep it from being trivial: a database considered and
rejected, an approach tried and dropped, files only read, a warning that is not the error,
steps already done. Phrasing and the order of the middle lines vary.
"""

from __future__ import annotations

import random

from .schema import SHORT_RECORD_FIELDS, ShortSession
from .vocab import (
    CHITCHAT_ASSISTANT,
    CHITCHAT_USER,
    DATABASES,
    DECISIONS,
    DONE_STEPS,
    ERROR_TEMPLATES,
    LANGUAGES,
    NEXT_STEPS,
    PROJECTS,
    RESOURCES,
    TASK_TEMPLATES,
    WARNINGS,
    fill,
)

MAX_SHORT_TOKENS = 256
TEST_SEED_OFFSET = 1_000_003  # the test split draws from a different seed stream

TASK_LINES = (
    "user: Please {task} in {project}.",
    "user: can you {task}? It's for {project}.",
    "user: Task for {project}: {task}.",
    "user: We need to {task} before the release ({project}).",
    "user: I'd like you to {task}. Repo: {project}.",
    "user: {project}: {task}, please.",
)
DB_CHOSEN = (
    "assistant: We'll use {db} because {why}.",
    "assistant: Going with {db} since {why}.",
    "assistant: {db} it is, because {why}.",
    "assistant: Database: {db} ({why}).",
    "assistant: Picked {db} as the database: {why}.",
)
DB_REJECTED = (
    "assistant: {db} was considered but rejected: {why}.",
    "assistant: Not {db}, because {why}.",
    "assistant: Looked at {db}; ruled it out since {why}.",
)
DECISION_LINES = (
    "assistant: Decided to {chosen} instead of {alt}: {why}.",
    "assistant: Tried {alt} first; dropped it because {why}. Decision: {chosen}.",
    "assistant: Decision: {chosen}. ({alt} was rejected: {why}.)",
    "assistant: {alt} will not work, {why}. We will {chosen}.",
)
EDIT_LINES = (
    "tool: Edited {f}",
    "tool: Wrote {f}",
    "tool: Modified {f} (+{a} -{b})",
    "tool: Patched {f}",
    "assistant: Updated {f}.",
)
READ_LINES = (
    "tool: Read {f} ({n} lines)",
    "tool: Opened {f}",
    "tool: grep found 3 matches in {f}",
    "assistant: Looked through {f}, no change needed.",
)
ERROR_LINES = (
    "tool: Error: {err}",
    "tool: {cmd} failed: {err}",
    "tool: Traceback (most recent call last): ... {err}",
    "assistant: The run crashed with {err}",
)
WARNING_LINES = ("tool: {warn}", "tool: note: {warn}")
NEXT_LINES = (
    "assistant: Next: {next}.",
    "assistant: Next step: {next}.",
    "assistant: Then I'll {next}.",
    "assistant: TODO: {next}.",
    "assistant: Remaining: {next}.",
)
DONE_LINES = ("assistant: Done so far: {done}.", "assistant: Already {done}.")


def _short_session(rng: random.Random, sid: str) -> ShortSession:
    project = rng.choice(PROJECTS)
    resource = rng.choice(RESOURCES)
    task = rng.choice(TASK_TEMPLATES).format(r=resource)
    db, db_why, _ = rng.choice(DATABASES)
    chosen, alt, dec_why = rng.choice(DECISIONS)
    lang = LANGUAGES[rng.choice(tuple(LANGUAGES))]
    paths = [t.format(p=project.replace("-", "_"), r=resource) for t in lang["files"]]
    rng.shuffle(paths)
    n_files = rng.choice((1, 1, 2, 2, 3))
    files = paths[:n_files]
    reads = [rng.choice(lang["other"]).format(p=project.replace("-", "_"))] + paths[
        n_files : n_files + 1
    ]
    error = fill(rng.choice(ERROR_TEMPLATES), rng, resource, project)
    next_step = rng.choice(NEXT_STEPS).format(r=resource)

    middle: list[list[str]] = []  # groups that keep their inner order; groups are shuffled
    db_line = rng.choice(DB_CHOSEN).format(db=db, why=rng.choice(db_why))
    if rng.random() < 0.7:
        other = rng.choice([d for d in DATABASES if d[0] != db])
        rej = rng.choice(DB_REJECTED).format(db=other[0], why=rng.choice(other[2]))
        middle.append([rej, db_line] if rng.random() < 0.5 else [db_line, rej])
    else:
        middle.append([db_line])
    middle.append([rng.choice(DECISION_LINES).format(chosen=chosen, alt=alt, why=dec_why)])
    edits = [
        rng.choice(EDIT_LINES).format(f=f, a=rng.randint(1, 80), b=rng.randint(0, 40))
        for f in files
    ]
    middle.append(edits)  # modified files keep record order
    for f in reads[: rng.choice((0, 1, 2))]:
        middle.append([rng.choice(READ_LINES).format(f=f, n=rng.randint(20, 400))])
    err_line = rng.choice(ERROR_LINES).format(err=error, cmd=lang["test_cmd"])
    if rng.random() < 0.35:
        warn = rng.choice(WARNING_LINES).format(warn=rng.choice(WARNINGS))
        middle.append([warn, err_line] if rng.random() < 0.5 else [err_line, warn])
    else:
        middle.append([err_line])
    if rng.random() < 0.3:
        middle.append([rng.choice(DONE_LINES).format(done=rng.choice(DONE_STEPS))])
    if rng.random() < 0.3:
        middle.append(
            [rng.choice(("user: ", "assistant: ")) + rng.choice(CHITCHAT_USER + CHITCHAT_ASSISTANT)]
        )
    rng.shuffle(middle)
    lines = [rng.choice(TASK_LINES).format(task=task, project=project)]
    lines += [line for group in middle for line in group]
    lines.append(rng.choice(NEXT_LINES).format(next=next_step))
    if rng.random() < 0.15:
        lines.append("user: " + rng.choice(CHITCHAT_USER))
    text = "\n".join(lines)
    record = dict(
        task=task, database=db, decision=chosen, files=files, error=error, next_step=next_step
    )
    assert tuple(record) == SHORT_RECORD_FIELDS
    return ShortSession(id=sid, text=text, record=record)


def generate_short_sessions(n: int, seed: int, start: int = 0) -> list[ShortSession]:
    """`n` short sessions, each drawn from its own seeded stream (seed, index): same args, same
    list.

    start: the first index, so that a corpus can be extended without regenerating it.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be a non-negative int, got {start!r}")
    from unmasked.tokens import get_encoding

    enc = get_encoding("cl100k_base")
    out = []
    for i in range(start, start + n):
        rng = random.Random(seed * 10_000_019 + i)
        s = _short_session(rng, f"short-{seed}-{i:06d}")
        if (
            len(enc.encode(s.text, disallowed_special=())) > MAX_SHORT_TOKENS
        ):  # never happens with these lists
            raise AssertionError(f"short session {s.id} exceeds {MAX_SHORT_TOKENS} tokens")
        out.append(s)
    return out


def generate_short_splits(n_train: int = 20_000, n_test: int = 1_000, seed: int = 0):
    """Train and held-out test splits; a test session whose text also occurs in train is skipped."""
    train = generate_short_sessions(n_train, seed)
    seen = {s.text for s in train}
    test, i = [], 0
    test_seed = seed + TEST_SEED_OFFSET
    while len(test) < n_test:
        batch = generate_short_sessions(n_test, test_seed + i)
        test.extend(s for s in batch if s.text not in seen)
        i += 1
    return train, test[:n_test]
