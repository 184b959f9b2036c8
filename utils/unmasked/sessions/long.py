"""Long coding-agent sessions: noise dominates the tokens; a few facts are planted.

A session is built the way the tokens are spent: a plan of planted facts, each at a drawn
fraction of the target length, with seeded noise episodes (tool calls and their long results)
filling the gaps. Tokens are counted per message as it is made (cl100k, with the chat framing
of unmasked.tokens.count_tokens), never by re-encoding the growing transcript, so a 150k-token
session costs one pass of the tokenizer.

What is planted, per probe category:
- factual_recall: the database chosen (and one rejected) with the reason; the dev-server port,
  later moved to another port (the first port is stale); the exact error messages.
- decision_tracking: an approach tried and abandoned for another, with the reason; and an early
  decision reversed late (its first form is stale).
- artifact_management: files modified with what changed, a config value set, files only read
  (noise), and a file edited then reverted.
- logical_continuation: an early "next step" later done (stale), and at the end the current
  state and the next step.
"""

from __future__ import annotations

import random

from unmasked.tokens import TOKENS_REPLY_PRIMING, count_tokens

from . import noise as N
from .schema import KeyFact, PlantedFact, Probe, Session, ToolCall, Turn
from .vocab import DATABASES, ERROR_TEMPLATES, LANGUAGES, PROJECTS, RESOURCES, TASK_TEMPLATES, fill

MIN_TARGET_TOKENS = 3_000  # the planted facts and their turns alone take about 1.5k tokens
MAX_TARGET_TOKENS = 250_000

# (topic, first choice, final choice, why the first lost, short key for first, short key for final)
APPROACHES = (
    (
        "session storage",
        "keep sessions in process memory",
        "store sessions in redis",
        "the second pod could not see logins made on the first",
        "process memory",
        "redis",
    ),
    (
        "the background jobs",
        "run the jobs from a cron script",
        "run the jobs in a celery worker",
        "cron gave us no retries when a job failed",
        "cron",
        "celery",
    ),
    (
        "id generation",
        "use auto-increment ids",
        "use ULIDs for ids",
        "auto-increment ids leaked how many orders we take",
        "auto-increment",
        "ULID",
    ),
    (
        "pagination",
        "use offset pagination",
        "use cursor pagination",
        "offset queries got slow past page 500",
        "offset",
        "cursor",
    ),
    (
        "rate limiting",
        "use a fixed window counter",
        "use a token bucket",
        "fixed windows let bursts through at the window edges",
        "fixed window",
        "token bucket",
    ),
    (
        "the HTTP client",
        "use plain requests calls",
        "use httpx with a shared connection pool",
        "each call opened a new TLS connection",
        "requests",
        "httpx",
    ),
    (
        "validation",
        "write the validation checks by hand",
        "validate with pydantic models",
        "the hand-written checks missed nested fields",
        "by hand",
        "pydantic",
    ),
    (
        "timestamps",
        "store local server time",
        "store every timestamp in UTC",
        "daylight saving shifted the nightly report",
        "local server time",
        "UTC",
    ),
    (
        "the export",
        "build the export file in memory",
        "stream the export in chunks",
        "a 2 GB export ran the worker out of memory",
        "in memory",
        "stream",
    ),
    (
        "email delivery",
        "send emails inline in the request",
        "queue emails through SQS",
        "inline sends added 800 ms to every request",
        "inline",
        "SQS",
    ),
    (
        "locking",
        "lock the table during checkout",
        "use optimistic locking with a version column",
        "table locks blocked concurrent checkouts",
        "lock the table",
        "optimistic locking",
    ),
    (
        "search",
        "use LIKE queries",
        "use tsvector full-text search",
        "LIKE queries could not use the index",
        "LIKE",
        "tsvector",
    ),
)
PORTS = (3000, 4000, 5000, 5173, 8000, 8080, 8081, 8443, 8888, 9000, 9090, 7070)
PORT_CLASHES = (
    "the metrics exporter",
    "the docs preview server",
    "the local grafana container",
    "another team's mock server",
    "the old admin app",
)
CONFIG_KEYS = (
    ("MAX_POOL_SIZE", (8, 12, 16, 24, 32)),
    ("REQUEST_TIMEOUT_MS", (1500, 2500, 4000, 7500)),
    ("RATE_LIMIT_PER_MIN", (60, 120, 300, 600)),
    ("CACHE_TTL_SECONDS", (30, 90, 300, 900)),
    ("WORKER_CONCURRENCY", (2, 4, 6, 12)),
    ("BATCH_SIZE", (100, 250, 500, 2000)),
)
CHANGES = (
    "added a guard for an empty {n} list",
    "moved the {n} parsing into a helper",
    "added a test for the missing {n} case",
    "wrapped the {n} update in a transaction",
    "added the {n} field to the response",
    "replaced the loop with one bulk query",
    "logged the {n} id on failure",
    "added an index on the {n} column",
    "split the {n} handler into two functions",
    "made the {n} lookup case-insensitive",
)
REVERTED_CHANGES = (
    "added a retry decorator around the {n} call",
    "inlined the {n} cache",
    "switched the {n} loop to threads",
    "added a global lock around the {n} writes",
    "cached the {n} query results at module level",
)
REVERT_REASONS = (
    "it made the tests flaky",
    "it doubled the memory use",
    "it hid the real error",
    "the reviewer asked for a smaller change",
    "it deadlocked under load",
)
STATES = (
    ("the unit tests pass but the integration suite still fails", "integration suite still fails"),
    ("the change works locally but is not deployed yet", "not deployed"),
    ("everything is green except one flaky test in the {r} suite", "one flaky test"),
    ("the code is done and the pull request is waiting for review", "waiting for review"),
    ("the migration is written but has not been applied to staging", "not been applied"),
)
NEXT_STEPS = (
    ("deploy the branch to staging", "staging"),
    ("run the full integration suite", "integration suite"),
    ("backfill the existing {r} rows", "backfill"),
    ("write the migration rollback script", "rollback"),
    ("load-test the {r} endpoint", "load-test"),
    ("add the dashboard panel for the new metrics", "dashboard"),
    ("ask the team lead to review the pull request", "review"),
)
OLD_NEXT_STEPS = (
    "reproduce the bug with a failing test",
    "read the existing {r} handler",
    "set up the local database",
    "check how the {r} module is wired",
)
DB_VARIANTS = {
    "postgres": ["postgresql"],
    "mongodb": ["mongo"],
    "cockroachdb": ["cockroach"],
    "dynamodb": ["dynamo"],
    "mariadb": ["maria"],
}


def _msg_tokens(turn: Turn) -> int:
    """Tokens one message adds to count_tokens(messages): its framing and text, no priming."""
    return count_tokens([turn.to_message()]) - TOKENS_REPLY_PRIMING


class _Builder:
    """Appends turns and keeps the running token count."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.turns: list[Turn] = []
        self.costs: list[int] = []
        self.tokens = TOKENS_REPLY_PRIMING
        self.planted: list[
            tuple[str, str, int, bool, str | None]
        ] = []  # category, text, turn, stale, replaces

    def add(self, turn: Turn, cost: int | None = None) -> int:
        cost = _msg_tokens(turn) if cost is None else cost
        self.turns.append(turn)
        self.costs.append(cost)
        self.tokens += cost
        return len(self.turns) - 1

    def call_id(self) -> str:
        return f"call_{self.rng.getrandbits(40):010x}"

    def tool(
        self, say: str, name: str, arguments: dict, result, budget: int | None = None
    ) -> tuple[int, int]:
        """An assistant turn that calls a tool, then the tool's result; returns both indices.

        `result` is text, or a list of lines that is cut short when it overshoots `budget` tokens
        by more than a tenth (the per-line estimates of the noise makers are rough).
        """
        cid = self.call_id()
        a = self.add(Turn("assistant", say, [ToolCall(cid, name, arguments)]))
        if isinstance(result, str):
            return a, self.add(Turn("tool", result, tool_call_id=cid))
        turn = Turn("tool", "\n".join(result), tool_call_id=cid)
        cost = _msg_tokens(turn)
        if budget is not None and cost > 1.1 * budget and len(result) > 1:
            keep = max(1, int(len(result) * budget / cost))
            turn = Turn("tool", "\n".join(result[:keep]), tool_call_id=cid)
            cost = None
        return a, self.add(turn, cost)

    def plant(
        self, category: str, text: str, index: int, stale: bool = False, replaces: str | None = None
    ) -> None:
        if text not in self.turns[index].content:
            raise AssertionError(f"planted text {text!r} is not in turn {index}")
        self.planted.append((category, text, index, stale, replaces))


def _noise_episode(b: _Builder, ctx: N.Ctx, budget: int) -> None:
    """One episode of noise of roughly `budget` tokens (at least a small one)."""
    rng = b.rng
    tokens = max(40, budget)
    kind = rng.choices(
        (
            "read",
            "test",
            "grep",
            "logs",
            "trace",
            "git",
            "ls",
            "install",
            "search",
            "dead_end",
            "chat",
        ),
        weights=(30, 20, 12, 12, 6, 5, 4, 3, 4, 5, 4),
    )[0]
    if kind == "read":
        path, first, lines = N.file_dump(ctx, rng, tokens)
        args = (
            {"path": path} if first == 1 else {"path": path, "offset": first, "limit": len(lines)}
        )
        b.tool(
            rng.choice(
                ("Let me read {p}.", "Opening {p} to see how it works.", "Reading {p}.")
            ).format(p=path),
            "read_file",
            args,
            lines,
            budget,
        )
    elif kind == "test":
        b.tool(
            "Running the tests.",
            "run_command",
            {"cmd": ctx.test_cmd},
            N.test_run(ctx, rng, tokens, failures=0),
            budget,
        )
    elif kind == "grep":
        term, lines = N.grep_results(ctx, rng, tokens)
        b.tool(
            f"Searching for `{term}` usages.", "grep", {"pattern": term, "path": "."}, lines, budget
        )
    elif kind == "logs":
        b.tool(
            "Checking the service logs.",
            "run_command",
            {"cmd": f"tail -n 400 logs/{ctx.pkg}.log"},
            N.log_lines(ctx, rng, tokens),
            budget,
        )
    elif kind == "trace":
        b.tool(
            "Looking at the worker's last crash report (unrelated to this task, but worth a "
            "glance).",
            "read_file",
            {"path": "logs/worker-crash.txt"},
            N.stack_trace(ctx, rng, tokens),
            budget,
        )
    elif kind == "git":
        b.tool(
            "Checking recent history.",
            "run_command",
            {"cmd": "git log -n 30"},
            N.git_log(ctx, rng, tokens),
            budget,
        )
    elif kind == "ls":
        b.tool(
            "Listing the source tree.",
            "run_command",
            {"cmd": "ls -lR src"},
            N.dir_listing(ctx, rng, tokens),
            budget,
        )
    elif kind == "install":
        b.tool(
            "Making sure the dependencies are installed.",
            "run_command",
            {"cmd": "pip install -e ."},
            N.install_log(ctx, rng, tokens),
            budget,
        )
    elif kind == "search":
        query, lines = N.search_results(ctx, rng, tokens)
        b.tool("Searching the web for prior art.", "web_search", {"query": query}, lines, budget)
    elif kind == "dead_end":
        n = rng.choice(N.NOUNS)
        term, lines = N.grep_results(ctx, rng, tokens)
        b.tool(
            rng.choice(N.DEAD_ENDS).format(n=n),
            "grep",
            {"pattern": term, "path": "."},
            lines,
            budget,
        )
        b.add(Turn("assistant", rng.choice(N.DEAD_END_OUTCOMES).format(n=n)))
    else:
        q, a = rng.choice(N.CHITCHAT)
        b.add(Turn("user", q))
        b.add(Turn("assistant", a))


def _exact_filler(b: _Builder, ctx: N.Ctx, budget: int) -> None:
    """A last log read sized to land the session on its target: trim lines until it fits."""
    rng = b.rng
    cid = b.call_id()
    call = Turn(
        "assistant",
        "One more look at the logs before I stop.",
        [ToolCall(cid, "run_command", {"cmd": f"tail -n 200 logs/{ctx.pkg}.log"})],
    )
    room = budget - _msg_tokens(call)
    if room < 40:
        return
    lines = N.log_lines(ctx, rng, room + 200)
    lo, hi = 1, len(lines)  # largest prefix whose message fits in `room`

    def fits(k: int) -> bool:
        return _msg_tokens(Turn("tool", "\n".join(lines[:k]), tool_call_id=cid)) <= room

    if not fits(1):
        return
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    b.add(call)
    b.add(Turn("tool", "\n".join(lines[:lo]), tool_call_id=cid))


def _key(text: str, *variants: str) -> KeyFact:
    return KeyFact(text, [v for v in dict.fromkeys(variants) if v and v.lower() != text.lower()])


STYLES = ("plain", "paraphrased")


def generate_session(seed: int, target_tokens: int, style: str = "plain") -> Session:
    """One seeded session of about `target_tokens` cl100k tokens (within 5%, usually within 1%).

    style="paraphrased" plants the same facts, word for word, in other carrier sentences: facts
    sit in tool outputs and diffs rather than in the agent's prose, files are changed only through
    shell commands, and no planted sentence uses the plain style's phrasing. It is the style a
    compactor or reader developed on "plain" is tested on. Its random choices come from a
    separate generator, so "plain" sessions are the same bytes as before.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if (
        not isinstance(target_tokens, int)
        or not MIN_TARGET_TOKENS <= target_tokens <= MAX_TARGET_TOKENS
    ):
        raise ValueError(
            f"target_tokens must be an int from {MIN_TARGET_TOKENS} to {MAX_TARGET_TOKENS}, got "
            f"{target_tokens!r}"
        )
    rng = random.Random(seed)
    para = style == "paraphrased"
    prng = random.Random(seed * 7_919 + 17)  # the paraphrases' own choices
    project = rng.choice(PROJECTS)
    pkg = project.replace("-", "_")
    lang_name = rng.choice(tuple(LANGUAGES))
    lang = LANGUAGES[lang_name]
    resource = rng.choice(RESOURCES)
    task = rng.choice(TASK_TEMPLATES).format(r=resource)
    own = [t.format(p=pkg, r=resource) for t in lang["files"]]
    other = [t.format(p=pkg) for t in lang["other"]]
    config_file = other[0]
    rng.shuffle(own)
    n_mod = rng.choice((2, 3, 3))
    modified, reverted_path = own[:n_mod], own[n_mod]
    ctx = N.Ctx(project, pkg, lang_name, resource, own + other, lang["test_cmd"], repo_seed=seed)

    db, db_whys, _ = rng.choice(DATABASES)
    db_why = rng.choice(db_whys)
    rej = rng.choice([d for d in DATABASES if d[0] != db])
    rej_why = rng.choice(rej[2])
    p1, p2 = rng.sample(PORTS, 2)
    clash = rng.choice(PORT_CLASHES)
    tried, reversed_ = rng.sample(APPROACHES, 2)
    key, values = rng.choice(CONFIG_KEYS)
    config_value = f"{key}={rng.choice(values)}"
    nouns = rng.sample(N.NOUNS, 6)
    changes = [c.format(n=n) for c, n in zip(rng.sample(CHANGES, n_mod), nouns)]
    reverted_change = rng.choice(REVERTED_CHANGES).format(n=nouns[-1])
    revert_reason = rng.choice(REVERT_REASONS)
    err1, err2 = (fill(t, rng, resource, project) for t in rng.sample(ERROR_TEMPLATES, 2))
    state, state_key = (s.format(r=resource) for s in rng.choice(STATES))
    next_step, next_key = (s.format(r=resource) for s in rng.choice(NEXT_STEPS))
    old_next = rng.choice(OLD_NEXT_STEPS).format(r=resource)

    b = _Builder(rng)
    b.add(
        Turn(
            "system",
            (
                f"You are a coding agent working in the {project} repository ({lang_name}). You "
                "can call the tools "
                "read_file, edit_file, grep, run_command and web_search. Keep changes small, run "
                "the tests after each "
                "edit, and explain decisions briefly so that the user can follow along."
            ),
        )
    )
    b.add(
        Turn(
            "user",
            f"In {project}, please {task}. The repo is checked out already; ping me if anything is "
            "unclear.",
        )
    )

    # Each step plants facts; `at` is the fraction of the target where it starts.
    def s_database():
        if para:
            i = b.add(
                Turn(
                    "assistant",
                    prng.choice(
                        (
                            f"{rej[0]} is off the table ({rej_why}); {db} wins for storage since "
                            f"{db_why}.",
                            f"Storage settled: {db}. Reasoning: {db_why}. ({rej[0]} lost out: "
                            f"{rej_why}.)",
                        )
                    ),
                )
            )
            b.plant("factual_recall", db, i)
            b.plant("factual_recall", db_why, i)
            return
        i = b.add(
            Turn(
                "assistant",
                (
                    f"Before writing code, the storage question. I looked at {rej[0]}, but "
                    f"{rej_why}. "
                    f"Decision: use {db} as the database, because {db_why}."
                ),
            )
        )
        b.plant("factual_recall", f"use {db} as the database", i)
        b.plant("factual_recall", db_why, i)

    def s_port1():
        if para:
            a, t = b.tool(
                "Bringing the app up locally.",
                "run_command",
                {"cmd": "make dev"},
                f"Starting {project} dev server...\nListening on http://127.0.0.1:{p1}\nReady.",
            )
            b.plant("factual_recall", f":{p1}", t, stale=True)
            return
        a, t = b.tool(
            "Starting the dev server.",
            "run_command",
            {"cmd": "make dev"},
            f"Starting {project} dev server...\nListening on http://127.0.0.1:{p1}\nReady.",
        )
        i = b.add(Turn("assistant", f"The dev server runs on port {p1}."))
        b.plant("factual_recall", f"port {p1}", i, stale=True)

    def s_reversed_first():
        if para:
            i = b.add(
                Turn(
                    "assistant",
                    prng.choice(
                        (
                            f"{reversed_[0].capitalize()}: going to {reversed_[1]} for now, "
                            "nothing fancier needed.",
                            f"Quickest route for {reversed_[0]}: {reversed_[1]}.",
                        )
                    ),
                )
            )
            b.plant("decision_tracking", reversed_[1], i, stale=True)
            return
        i = b.add(
            Turn(
                "assistant",
                f"For {reversed_[0]}, the plan is to {reversed_[1]}: it is the simplest option.",
            )
        )
        b.plant("decision_tracking", reversed_[1], i, stale=True)

    def s_old_next():
        if para:
            i = b.add(Turn("assistant", f"First up: {old_next}."))
            b.plant("logical_continuation", old_next, i, stale=True)
            return
        i = b.add(Turn("assistant", f"Next: {old_next}."))
        b.plant("logical_continuation", old_next, i, stale=True)

    def s_old_next_done():
        if para:
            b.add(Turn("assistant", f"Checked off: {old_next}."))
            return
        b.add(Turn("assistant", f"Done: {old_next}. That part is finished."))

    def shell_edit(path, say):
        """An edit made with sed, shown through git's diffstat: the path is in the command and
        its output."""
        n = prng.randint(2, 40)
        return b.tool(
            say,
            "run_command",
            {"cmd": f"sed -i -f /tmp/patch-{prng.randint(100, 999)}.sed {path} && git diff --stat"},
            f" {path} | {n} {'+' * min(n, 12)}{'-' * min(n // 3, 6)}\n 1 file changed",
        )

    def edit(path, change):
        def step():
            if para:
                a, t = shell_edit(path, f"Patch for {path.rsplit('/', 1)[-1]} ({change}).")
                b.plant("artifact_management", path, t)
                b.plant("artifact_management", change, a)
                return
            a, t = b.tool(
                f"I'll edit {path}: {change}.",
                "edit_file",
                {"path": path, "instructions": change},
                f"Edited {path}: {rng.randint(2, 40)} lines changed.",
            )
            b.plant("artifact_management", path, t)
            b.plant("artifact_management", change, a)

        return step

    def s_error(err, fixed):
        def step():
            run = N.test_run(ctx, rng, min(350, target_tokens // 50), failures=1)
            trace = N.stack_trace(ctx, rng, min(150, target_tokens // 100), final=err)
            a, t = b.tool(
                "Running the tests.", "run_command", {"cmd": ctx.test_cmd}, "\n".join(run + trace)
            )
            b.plant("factual_recall", err, t)
            if para:  # the error stays in the tool output; the agent only comments on it
                b.add(
                    Turn(
                        "assistant",
                        prng.choice(("Seen that trace before; the fix is small.",))
                        if fixed
                        else "That one needs more digging.",
                    )
                )
                return
            b.add(
                Turn(
                    "assistant",
                    (
                        f"The failure is `{err}`. "
                        + (
                            "I see the cause; fixing it in the next edit."
                            if fixed
                            else "This one is still open; I need to dig further."
                        )
                    ),
                )
            )

        return step

    def s_tried():
        if para:
            a, t = b.tool(
                f"Attempt for {tried[0]}: {tried[1]}.",
                "run_command",
                {"cmd": ctx.test_cmd},
                "\n".join(N.test_run(ctx, rng, min(250, target_tokens // 60), failures=2)),
            )
            b.plant("decision_tracking", tried[1], a, stale=True)
            i = b.add(
                Turn(
                    "assistant", f"{tried[4]} is a dead end ({tried[3]}). From here on: {tried[2]}."
                )
            )
            b.plant("decision_tracking", tried[2], i, replaces=tried[1])
            b.plant("decision_tracking", tried[3], i)
            return
        a, t = b.tool(
            f"For {tried[0]}, let me first try to {tried[1]}.",
            "run_command",
            {"cmd": ctx.test_cmd},
            "\n".join(N.test_run(ctx, rng, min(250, target_tokens // 60), failures=2)),
        )
        b.plant("decision_tracking", tried[1], a, stale=True)
        i = b.add(
            Turn(
                "assistant",
                (
                    f"Abandoning that approach: {tried[4]} does not work here, because {tried[3]}. "
                    f"Decision: {tried[2]} instead."
                ),
            )
        )
        b.plant("decision_tracking", tried[2], i, replaces=tried[1])
        b.plant("decision_tracking", tried[3], i)

    def s_reverted_edit():
        if para:
            a, t = shell_edit(
                reverted_path, f"Patch for {reverted_path.rsplit('/', 1)[-1]} ({reverted_change})."
            )
            b.plant("artifact_management", reverted_change, a, stale=True)
            return
        a, t = b.tool(
            f"I'll edit {reverted_path}: {reverted_change}.",
            "edit_file",
            {"path": reverted_path, "instructions": reverted_change},
            f"Edited {reverted_path}: {rng.randint(2, 30)} lines changed.",
        )
        b.plant("artifact_management", reverted_change, a, stale=True)

    def s_revert():
        if para:
            a, t = b.tool(
                f"Backing that out: {revert_reason}.",
                "run_command",
                {"cmd": f"git checkout -- {reverted_path} && git status --short"},
                "",
            )
            i = b.add(Turn("assistant", f"{reverted_path} matches main again."))
            b.plant("artifact_management", reverted_path, i, replaces=reverted_change)
            return
        a, t = b.tool(
            f"Reverting my edit to {reverted_path}, because {revert_reason}.",
            "run_command",
            {"cmd": f"git checkout -- {reverted_path}"},
            "Updated 1 path from the index",
        )
        i = b.add(
            Turn("assistant", f"Reverted {reverted_path}; it is back to its original content.")
        )
        b.plant("artifact_management", f"Reverted {reverted_path}", i, replaces=reverted_change)

    def s_config():
        if para:
            a, t = b.tool(
                "Tuning the config.",
                "run_command",
                {"cmd": f"sed -i -f /tmp/config.sed {config_file} && git diff {config_file}"},
                f"diff --git a/{config_file} b/{config_file}\n--- a/{config_file}\n+++ "
                f"b/{config_file}\n"
                f"@@ -3,1 +3,1 @@\n-{config_value.split('=')[0]}=\n+{config_value}",
            )
            b.plant("factual_recall", config_value, t)
            return
        a, t = b.tool(
            f"I'll set {config_value} in {config_file}.",
            "edit_file",
            {"path": config_file, "instructions": f"set {config_value}"},
            f"Edited {config_file}: 1 line changed.",
        )
        b.plant("factual_recall", config_value, a)

    def s_port2():
        if para:
            b.add(
                Turn(
                    "assistant",
                    f"{clash[:1].upper()}{clash[1:]} already holds {p1}; restarting the app "
                    "elsewhere.",
                )
            )
            a, t = b.tool(
                "",
                "run_command",
                {"cmd": f"PORT={p2} make dev"},
                f"Starting {project} dev server...\nListening on http://127.0.0.1:{p2}\nReady.",
            )
            b.plant("factual_recall", f":{p2}", t, replaces=f":{p1}")
            return
        i = b.add(
            Turn(
                "assistant",
                (
                    f"The dev server moves: port {p1} is also used by {clash}, so I will run the "
                    "dev server on "
                    f"port {p2} from now on."
                ),
            )
        )
        b.plant("factual_recall", f"port {p2}", i, replaces=f"port {p1}")

    def s_reversal():
        if para:
            i = b.add(
                Turn(
                    "assistant",
                    (
                        f"Scrap {reversed_[1]} for {reversed_[0]}: {reversed_[3]}. Replacing it "
                        f"with this: {reversed_[2]}."
                    ),
                )
            )
            b.plant("decision_tracking", reversed_[2], i, replaces=reversed_[1])
            b.plant("decision_tracking", reversed_[3], i)
            return
        i = b.add(
            Turn(
                "assistant",
                (
                    f"Change of plan for {reversed_[0]}: we will no longer {reversed_[1]}. "
                    f"Decision: {reversed_[2]}, because {reversed_[3]}."
                ),
            )
        )
        b.plant("decision_tracking", reversed_[2], i, replaces=reversed_[1])
        b.plant("decision_tracking", reversed_[3], i)

    def s_state():
        if para:
            i = b.add(
                Turn("assistant", f"Tally for today: {state}. What remains is to {next_step}.")
            )
            b.plant("logical_continuation", state, i)
            b.plant("logical_continuation", next_step, i, replaces=old_next)
            return
        i = b.add(Turn("assistant", f"Where things stand: {state}. Next step: {next_step}."))
        b.plant("logical_continuation", state, i)
        b.plant("logical_continuation", next_step, i, replaces=old_next)

    u = rng.uniform
    # Bands overlap the thirds so that a category's facts land early in one session and late in
    # another; a stale fact's band always ends before its replacement's begins.
    plan = [
        (u(0.02, 0.5), s_database),
        (u(0.02, 0.3), s_port1),
        (u(0.03, 0.4), s_reversed_first),
        (u(0.03, 0.25), s_old_next),
        (u(0.08, 0.35), edit(modified[0], changes[0])),
        (u(0.1, 0.45), s_error(err1, True)),
        (u(0.3, 0.5), s_old_next_done),
        (u(0.2, 0.55), s_reverted_edit),
        (u(0.15, 0.7), s_tried),
        (u(0.35, 0.7), edit(modified[1], changes[1])),
        (u(0.2, 0.9), s_config),
        (u(0.4, 0.88), s_port2),
        (u(0.6, 0.88), s_error(err2, False)),
        (u(0.62, 0.9), s_revert),
        (u(0.5, 0.9), s_reversal),
        (u(0.91, 0.95), s_state),
    ]
    if n_mod == 3:
        plan.append((u(0.6, 0.9), edit(modified[2], changes[2])))
    plan.sort(key=lambda p: p[0])

    typical = min(6_000, max(300, target_tokens // 30))
    for at, step in plan:
        while (gap := at * target_tokens - b.tokens) > 150:
            _noise_episode(b, ctx, int(min(gap, rng.lognormvariate(0, 0.6) * typical)))
        step()
    while (gap := target_tokens - b.tokens) > 900:
        _noise_episode(b, ctx, int(min(gap - 400, rng.lognormvariate(0, 0.6) * typical)))
    _exact_filler(b, ctx, target_tokens - b.tokens)

    # Positions come from where each fact actually landed, as a share of the session's tokens.
    starts, acc = [], TOKENS_REPLY_PRIMING
    for c in b.costs:
        starts.append(acc)
        acc += c
    facts = []
    for category, text, index, stale, replaces in b.planted:
        share = starts[index] / b.tokens
        position = "early" if share < 1 / 3 else "middle" if share < 2 / 3 else "late"
        facts.append(PlantedFact(category, text, index, position, stale, replaces))

    names = [p.rsplit("/", 1)[-1] for p in ctx.files]

    def base(path: str) -> str:
        """The file name as a variant, only where no other file in the repo shares it."""
        name = path.rsplit("/", 1)[-1]
        return name if names.count(name) == 1 else ""

    probes = [
        Probe(
            "factual_recall",
            f"Which database did we choose for {project}, why, and on which port does the dev "
            "server listen now?",
            f"We chose {db} because {db_why}. The dev server listens on port {p2}.",
            [
                _key(db, *DB_VARIANTS.get(db, [])),
                _key(db_why),
                _key(f"port {p2}", f":{p2}", str(p2)),
            ],
            [_key(f"port {p1}", f":{p1}")],
        ),
        Probe(
            "decision_tracking",
            f"What did we finally decide about {reversed_[0]}, and why?",
            f"We settled on this: {reversed_[2]}, because {reversed_[3]}.",
            [_key(reversed_[2], reversed_[5]), _key(reversed_[3])],
            [_key(reversed_[1], reversed_[4])],
        ),
        Probe(
            "artifact_management",
            "Which files have we modified so far, what changed in each, and was any edit undone?",
            "Modified: "
            + "; ".join(f"{p} ({c})" for p, c in zip(modified, changes))
            + f"; {config_file} (set {config_value}). The edit to {reverted_path} was reverted, "
            "so that file is back to its original content.",
            [_key(p, base(p)) for p in [*modified, config_file, reverted_path]],
            [_key(reverted_change)],
        ),
        Probe(
            "logical_continuation",
            "Where do things stand right now, and what is the next step?",
            f"{state[:1].upper()}{state[1:]}. Next step: {next_step}.",
            [_key(next_step, next_key), _key(state, state_key)],
            [_key(old_next)],
        ),
    ]
    files_modified = [{"path": p, "change": c} for p, c in zip(modified, changes)]
    files_modified.append({"path": config_file, "change": f"set {config_value}"})
    record = {
        "task": task,
        "decisions": [
            {"decision": f"use {db} as the database", "reason": db_why},
            {"decision": tried[2], "reason": tried[3]},
            {"decision": reversed_[2], "reason": reversed_[3]},
            {
                "decision": f"run the dev server on port {p2}",
                "reason": f"port {p1} is also used by {clash}",
            },
        ],
        "files_modified": files_modified,
        "errors": [err1, err2],
        "current_state": state,
        "next_step": next_step,
    }
    return Session(
        id=f"session-{seed:06d}" + ("" if style == "plain" else f"-{style}"),
        seed=seed,
        project=project,
        task=task,
        turns=b.turns,
        probes=probes,
        record=record,
        facts=facts,
        n_tokens=b.tokens,
    )


def session_lengths(n: int, seed: int, min_tokens: int, max_tokens: int) -> list[int]:
    """Target lengths spread evenly (in log space) over [min_tokens, max_tokens], in seeded
    order."""
    if n <= 0:
        return []
    if n == 1:
        return [min_tokens]
    import math

    lo, hi = math.log(min_tokens), math.log(max_tokens)
    lengths = [round(math.exp(lo + (hi - lo) * i / (n - 1))) for i in range(n)]
    random.Random(seed).shuffle(lengths)
    return lengths


def generate_sessions(
    n=250, seed=0, min_tokens=20_000, max_tokens=150_000, progress=True, style: str = "plain"
) -> list[Session]:
    """The default dataset: `n` sessions with targets spread over [min_tokens, max_tokens]."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not MIN_TARGET_TOKENS <= min_tokens <= max_tokens <= MAX_TARGET_TOKENS:
        raise ValueError(
            f"need {MIN_TARGET_TOKENS} <= min_tokens <= max_tokens <= {MAX_TARGET_TOKENS}, "
            f"got min_tokens={min_tokens}, max_tokens={max_tokens}"
        )
    return generate_session_range(n, seed, min_tokens, max_tokens, 0, n, progress, style)


def generate_session_range(
    n, seed, min_tokens, max_tokens, start, stop, progress=False, style: str = "plain"
) -> list[Session]:
    """Sessions start..stop-1 of generate_sessions(n, seed, ...): one shard, without making the
    rest."""
    from tqdm.auto import tqdm

    lengths = session_lengths(n, seed, min_tokens, max_tokens)
    return [
        generate_session(seed * 100_003 + i, lengths[i], style)
        for i in tqdm(range(start, min(stop, n)), desc="sessions", disable=not progress)
    ]
