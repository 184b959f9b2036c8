"""Noise that dominates a session's tokens, as in real agent work: test runs, file dumps, search
results, logs, stack traces, git output, installs, dead ends and chit-chat.

Each maker takes a context, a seeded rng and a rough budget of tokens and returns plain text
lines; the divisors are measured cl100k tokens per line (or per block) of each kind. None of
them mentions a planted value (ports, databases, decisions, errors), so that every planted fact
has one clear origin in the transcript.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

WORDS = (
    "load",
    "parse",
    "build",
    "fetch",
    "render",
    "store",
    "apply",
    "check",
    "merge",
    "split",
    "emit",
    "resolve",
    "encode",
    "decode",
    "flush",
    "sync",
    "scan",
    "index",
    "notify",
    "compute",
    "format",
    "normalize",
    "collect",
)
NOUNS = (
    "payload",
    "record",
    "batch",
    "cursor",
    "config",
    "request",
    "response",
    "context",
    "entry",
    "token",
    "item",
    "result",
    "header",
    "filter",
    "schema",
    "row",
    "event",
    "job",
    "rule",
    "summary",
    "window",
    "buffer",
)
LIB_FRAMES = (
    ("site-packages/sqlalchemy/engine/base.py", "_execute_context"),
    ("site-packages/sqlalchemy/orm/session.py", "execute"),
    ("site-packages/starlette/routing.py", "handle"),
    ("site-packages/fastapi/routing.py", "run_endpoint_function"),
    ("site-packages/anyio/_backends/_asyncio.py", "run_sync_in_worker_thread"),
    ("site-packages/httpx/_client.py", "send"),
    ("site-packages/pydantic/main.py", "model_validate"),
    ("site-packages/_pytest/python.py", "pytest_pyfunc_call"),
    ("site-packages/pluggy/_callers.py", "_multicall"),
)
LOG_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN")
HTTP = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
PACKAGES = (
    "anyio",
    "certifi",
    "charset-normalizer",
    "click",
    "h11",
    "idna",
    "iniconfig",
    "packaging",
    "pluggy",
    "pytest",
    "sniffio",
    "typing-extensions",
    "urllib3",
    "markupsafe",
    "jinja2",
    "attrs",
    "rich",
    "pygments",
)


@dataclass
class Ctx:
    """What noise may talk about: the project, its language, files and tests. Nothing planted.

    The repository is consistent within a session: a file has one content (drawn from its own
    seed on first read), so reading it twice shows the same lines, and every test run draws from
    one fixed suite, as in a real session, where repeated reads are a large share of the waste.
    """

    project: str
    pkg: str
    lang: str
    resource: str
    files: list[str]
    test_cmd: str
    repo_seed: int = 0
    _contents: dict = field(default_factory=dict, repr=False)
    _suite: list = field(default_factory=list, repr=False)

    def content(self, path: str) -> list[str]:
        if path not in self._contents:
            rng = random.Random(f"{self.repo_seed}:{path}")
            n = rng.randint(40, 700)
            if path.endswith(".md"):
                self._contents[path] = doc_lines(self, rng, n // 3)
            elif path.endswith((".json", ".toml", ".mod")) or path.endswith("Makefile"):
                self._contents[path] = config_lines(self, rng, n // 6)
            else:
                self._contents[path] = code_lines(self, rng, n)
        return self._contents[path]

    def suite(self) -> list[tuple[str, str]]:
        if not self._suite:
            rng = random.Random(f"{self.repo_seed}:tests")
            tests = [t for t in self.files if "test" in t] or self.files
            self._suite = [
                (rng.choice(tests), f"test_{_ident(rng)}_{i}") for i in range(rng.randint(60, 400))
            ]
        return self._suite


def _ident(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}_{rng.choice(NOUNS)}"


def _camel(name: str) -> str:
    a, b = name.split("_", 1)
    return a + b[:1].upper() + b[1:]


def code_lines(ctx: Ctx, rng: random.Random, n: int) -> list[str]:
    """About n lines of plausible source code in the session's language."""
    out: list[str] = []
    r = ctx.resource
    while len(out) < n:
        name = _ident(rng)
        arg = rng.choice(NOUNS)
        if ctx.lang == "python":
            out += [
                f"def {name}({arg}, *, limit={rng.randint(1, 500)}):",
                f'    """{name.replace("_", " ").capitalize()} for the {r} module."""',
                f"    if {arg} is None:",
                f"        raise ValueError('{arg} is required')",
                f"    items = [x for x in {arg}.{rng.choice(NOUNS)}s if x.{rng.choice(NOUNS)}]",
                f"    logger.debug('{name}: %d items', len(items))",
                f"    return {rng.choice(WORDS)}_{r}(items[:limit])",
                "",
            ]
        elif ctx.lang == "typescript":
            fn = _camel(name)
            out += [
                f"export async function {fn}({arg}: {arg.capitalize()}, limit = "
                f"{rng.randint(1, 500)}) {{",
                f"  if (!{arg}) throw new Error('{arg} is required');",
                f"  const items = {arg}.{rng.choice(NOUNS)}s.filter((x) => x.{rng.choice(NOUNS)});",
                f"  logger.debug(`{fn}: ${{items.length}} items`);",
                f"  return {_camel(rng.choice(WORDS) + '_' + r)}(items.slice(0, limit));",
                "}",
                "",
            ]
        else:
            fn = _camel(name)
            fn = fn[:1].upper() + fn[1:]
            out += [
                f"func {fn}({arg} *{arg.capitalize()}, limit int) ([]Item, error) {{",
                f"\tif {arg} == nil {{",
                f'\t\treturn nil, errors.New("{arg} is required")',
                "\t}",
                f"\titems := filter({arg}.{rng.choice(NOUNS).capitalize()}s, limit)",
                f'\tlog.Printf("{fn}: %d items", len(items))',
                "\treturn items, nil",
                "}",
                "",
            ]
    return out[:n]


def doc_lines(ctx: Ctx, rng: random.Random, n: int) -> list[str]:
    """Markdown prose about the project, without any planted value."""
    out = [f"# {ctx.project}", ""]
    while len(out) < n:
        out += [
            f"## {rng.choice(WORDS).capitalize()} the {rng.choice(NOUNS)}s",
            "",
            f"The {ctx.resource} module will {rng.choice(WORDS)} each {rng.choice(NOUNS)} before "
            "it reaches the "
            f"{rng.choice(NOUNS)} layer. Call `{_ident(rng)}` to {rng.choice(WORDS)} a "
            f"{rng.choice(NOUNS)} by hand; "
            f"it is safe to retry.",
            "",
            f"- `{_ident(rng)}`: {rng.choice(WORDS)}s the {rng.choice(NOUNS)} and returns a "
            f"{rng.choice(NOUNS)}",
            f"- `{_ident(rng)}`: {rng.choice(WORDS)}s every {rng.choice(NOUNS)} in a "
            f"{rng.choice(NOUNS)}",
            "",
        ]
    return out[:n]


def config_lines(ctx: Ctx, rng: random.Random, n: int) -> list[str]:
    """A dependency manifest: names and versions, without any planted value."""
    out = [f"# {ctx.project} dependencies"]
    for _ in range(n):
        p = rng.choice(PACKAGES)
        out.append(f'{p} = "^{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"')
    return out


def file_dump(ctx: Ctx, rng: random.Random, tokens: int) -> tuple[str, int, list[str]]:
    """(path, first line, numbered lines): the whole file, or a window of it when it is long."""
    path = rng.choice(ctx.files)
    lines = ctx.content(path)
    n = max(8, tokens // 12)
    start = rng.randrange(0, len(lines) - n + 1) if len(lines) > n else 0
    window = lines[start : start + n]
    return path, start + 1, [f"{start + i + 1:>5}\t{line}" for i, line in enumerate(window)]


def test_run(ctx: Ctx, rng: random.Random, tokens: int, failures: int = 0) -> list[str]:
    """A test run with mostly passing tests; `failures` failing ones with a short traceback."""
    suite = ctx.suite()
    n = min(len(suite), max(6, tokens // {"python": 18, "typescript": 11}.get(ctx.lang, 14)))
    start = rng.randrange(0, len(suite) - n + 1)
    out = [f"$ {ctx.test_cmd}", f"collected {n} items", ""]
    fail_at = set(rng.sample(range(n), min(failures, n)))
    for i in range(n):
        file, test = suite[start + i]
        status = "FAILED" if i in fail_at else rng.choice(("PASSED",) * 12 + ("SKIPPED",))
        if ctx.lang == "go":
            out.append(
                f"--- {'FAIL' if status == 'FAILED' else 'PASS'}: Test{_camel(test)[4:]} "
                f"({rng.random():.2f}s)"
            )
        elif ctx.lang == "typescript":
            out.append(
                f"  {'✕' if status == 'FAILED' else '✓'} {test.replace('_', ' ')} "
                f"({rng.randint(1, 90)} ms)"
            )
        else:
            out.append(f"{file}::{test} {status} [{100 * (i + 1) // n:>3}%]")
    out.append("")
    out.append(
        f"==== {n - len(fail_at)} passed, {len(fail_at)} failed in {rng.uniform(0.5, 40):.2f}s ===="
    )
    return out


def grep_results(ctx: Ctx, rng: random.Random, tokens: int) -> tuple[str, list[str]]:
    term = rng.choice(NOUNS)
    n = max(4, tokens // 15)
    out = []
    for _ in range(n):
        f = rng.choice(ctx.files)
        out.append(
            f"{f}:{rng.randint(1, 900)}:    {rng.choice(WORDS)}_{term}({rng.choice(NOUNS)}, "
            f"{ctx.resource})"
        )
    return term, out


def log_lines(ctx: Ctx, rng: random.Random, tokens: int) -> list[str]:
    n = max(5, tokens // 41)
    h, m, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    day = rng.randint(10, 28)
    out = []
    for _ in range(n):
        s += rng.randint(0, 3)
        m, s = m + s // 60, s % 60
        h, m = (h + m // 60) % 24, m % 60
        level = rng.choice(LOG_LEVELS)
        out.append(
            f"2026-03-{day}T{h:02d}:{m:02d}:{s:02d}.{rng.randint(0, 999):03d}Z {level:<5} "
            f"[{ctx.pkg}.{rng.choice(NOUNS)}] {rng.choice(HTTP)} "
            f"/api/{ctx.resource}/{rng.randint(1, 99999)} "
            f"{rng.choice((200, 200, 200, 201, 204, 304, 404))} {rng.randint(1, 400)}ms "
            f"req_id={rng.getrandbits(24):06x}"
        )
    return out


def stack_trace(ctx: Ctx, rng: random.Random, tokens: int, final: str | None = None) -> list[str]:
    n = max(3, tokens // 32)
    out = ["Traceback (most recent call last):"]
    for _ in range(n):
        if rng.random() < 0.5:
            lib, fn = rng.choice(LIB_FRAMES)
            out.append(
                f'  File "/opt/venv/lib/python3.11/{lib}", line {rng.randint(40, 2400)}, in {fn}'
            )
            out.append(f"    return self.{_ident(rng)}(*args, **kwargs)")
        else:
            f = rng.choice(ctx.files)
            out.append(f'  File "/app/{f}", line {rng.randint(5, 400)}, in {_ident(rng)}')
            out.append(f"    {rng.choice(NOUNS)} = {_ident(rng)}({rng.choice(NOUNS)})")
    out.append(
        final
        or f"RuntimeError: {rng.choice(WORDS)} {rng.choice(NOUNS)} failed (retry "
        f"{rng.randint(1, 5)})"
    )
    return out


def git_log(ctx: Ctx, rng: random.Random, tokens: int) -> list[str]:
    n = max(3, tokens // 42)
    out = []
    for _ in range(n):
        out += [
            f"commit {rng.getrandbits(160):040x}",
            f"Author: {rng.choice(('Ana', 'Bo', 'Chen', 'Dee', 'Eli'))} <dev@{ctx.project}.dev>",
            f"    {rng.choice(WORDS).capitalize()} {rng.choice(NOUNS)} handling in {ctx.resource}",
            "",
        ]
    return out


def dir_listing(ctx: Ctx, rng: random.Random, tokens: int) -> list[str]:
    n = max(4, tokens // 23)
    out = []
    for _ in range(n):
        f = rng.choice(ctx.files)
        out.append(
            f"-rw-r--r--  1 dev dev {rng.randint(200, 40000):>6} Mar {rng.randint(1, 28):>2} {f}"
        )
    return out


def install_log(ctx: Ctx, rng: random.Random, tokens: int) -> list[str]:
    n = max(4, tokens // 32)
    out = []
    for _ in range(n):
        p = rng.choice(PACKAGES)
        v = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        out.append(
            f"Requirement already satisfied: {p}>={v} in /opt/venv/lib/python3.11/site-packages "
            f"({v})"
        )
    out.append("")
    return out


def search_results(ctx: Ctx, rng: random.Random, tokens: int) -> tuple[str, list[str]]:
    query = f"{rng.choice(WORDS)} {rng.choice(NOUNS)} {ctx.resource} best practice"
    n = max(2, tokens // 43)
    out = []
    for i in range(n):
        out += [
            f"{i + 1}. How to {rng.choice(WORDS)} a {rng.choice(NOUNS)} without "
            f"{rng.choice(WORDS)}ing the {rng.choice(NOUNS)}",
            f"   https://example.dev/blog/"
            f"{rng.choice(WORDS)}-{rng.choice(NOUNS)}-{rng.randint(100, 999)}",
            f"   ... you can {rng.choice(WORDS)} each {rng.choice(NOUNS)} before you "
            f"{rng.choice(WORDS)} the "
            f"{rng.choice(NOUNS)}, which keeps the {rng.choice(NOUNS)} small ...",
        ]
    return query, out


CHITCHAT = (
    (
        "how long do you think this will take?",
        "Hard to say until the tests run; probably not long.",
    ),
    (
        "is this going to break anything for the mobile team?",
        "It shouldn't: the public responses keep their shape.",
    ),
    (
        "sorry, I was in a meeting. where are we?",
        "Still working through it; I'll summarise when it's green.",
    ),
    ("can you keep the commits small?", "Yes, one change per commit."),
    ("btw the CI is slow today", "Noted, I'll run the tests locally first."),
    ("do we need to tell ops?", "Not yet; nothing changes in the deployment."),
)
DEAD_ENDS = (
    "Maybe the {n} is cached somewhere. Let me look.",
    "Could this be an ordering problem with the {n}? Checking.",
    "Let me see whether an old {n} is still around.",
    "Perhaps the {n} handling differs between environments. Let me compare.",
)
DEAD_END_OUTCOMES = (
    "No, that's not it: nothing relevant there. Back to the original plan.",
    "That was a dead end; the {n} is fine.",
    "Nothing there either. Moving on.",
)
