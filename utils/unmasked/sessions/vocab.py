"""Word lists the generators draw from: projects, tasks, databases, decisions, files, errors.

Every value is a plain phrase with no double quotes, so it survives JSON round trips verbatim
and reads naturally inside the sentences that carry it ("we'll use postgres because ...").
"""

from __future__ import annotations

PROJECTS = (
    "shop-api",
    "billing-service",
    "ledger",
    "tidepool",
    "atlas-web",
    "courier",
    "helpdesk",
    "metrics-hub",
    "orchard",
    "payroll-core",
    "quill",
    "relay",
    "signup-flow",
    "stockroom",
    "trailhead",
    "vault-sync",
    "wharf",
    "zephyr-cli",
    "inkwell",
    "beacon",
    "cartographer",
    "dispatch",
    "ember",
    "foundry",
)

RESOURCES = (
    "users",
    "orders",
    "invoices",
    "payments",
    "products",
    "comments",
    "webhooks",
    "reports",
    "carts",
    "accounts",
    "tickets",
    "shipments",
    "coupons",
    "reviews",
    "teams",
    "events",
    "subscriptions",
    "refunds",
)

TASK_TEMPLATES = (
    "add rate limiting to the {r} endpoint",
    "fix the flaky {r} export test",
    "add pagination to the {r} list",
    "migrate the {r} table to the new schema",
    "add a CSV export for {r}",
    "speed up the {r} search query",
    "add audit logging for {r} changes",
    "fix the timezone bug in the {r} report",
    "add soft delete to {r}",
    "send a webhook when {r} are created",
    "cache the {r} lookup",
    "add input validation to the {r} form",
    "fix the duplicate {r} bug",
    "add a bulk import for {r}",
    "split the {r} module into a service",
    "add full-text search over {r}",
)

# (name, reasons to choose it, reasons to reject it)
DATABASES = (
    (
        "postgres",
        (
            "it handles concurrent writes well",
            "we already run it in production",
            "we need transactions and JSONB",
        ),
        ("it is overkill for a prototype", "nobody on the team operates it"),
    ),
    (
        "mysql",
        ("the hosting plan includes it", "the ops team knows it best"),
        ("its JSON support is weaker", "we would need a second replica"),
    ),
    (
        "sqlite",
        ("it needs no server", "the data fits in one file", "tests run faster against it"),
        ("it locks on concurrent writes", "it cannot be shared between pods"),
    ),
    (
        "mongodb",
        ("the records are document-shaped", "the schema changes every week"),
        ("we need joins across tables", "multi-document transactions are awkward"),
    ),
    (
        "redis",
        ("lookups must take under a millisecond", "the data is small and expires"),
        ("the data must survive a restart", "it is memory-bound"),
    ),
    (
        "dynamodb",
        ("the rest of the stack is on AWS", "it scales without tuning"),
        ("queries by secondary fields get expensive", "local testing is awkward"),
    ),
    (
        "cockroachdb",
        ("we need multi-region writes", "it speaks the postgres protocol"),
        ("it costs more to run", "the team has never used it"),
    ),
    (
        "mariadb",
        ("it is a drop-in for the old mysql setup", "the licence suits the client"),
        ("the driver lacks async support", "it lags on window functions"),
    ),
    (
        "clickhouse",
        ("the reports scan billions of rows", "columnar storage compresses the logs well"),
        ("single-row updates are slow", "it is not built for transactions"),
    ),
    (
        "cassandra",
        ("writes arrive from many regions", "it never has a single point of failure"),
        ("it has no joins", "tuning it needs a specialist"),
    ),
)

# (chosen, rejected, reason the rejected one lost)
DECISIONS = (
    ("use cursor pagination", "offset pagination", "offsets got slow past page 500"),
    ("cache results in redis", "an in-process cache", "we run four workers that must share it"),
    ("use JWT access tokens", "server-side sessions", "the mobile app cannot keep cookies"),
    (
        "validate input with pydantic",
        "hand-written checks",
        "the checks kept missing nested fields",
    ),
    ("run the job in a celery worker", "a cron script", "the cron host has no retries"),
    (
        "use a token bucket limiter",
        "a fixed window counter",
        "fixed windows let bursts through at the edges",
    ),
    ("batch the inserts in groups of 500", "row-by-row inserts", "row-by-row took 40 minutes"),
    (
        "add a composite index on user_id and created_at",
        "a full table scan",
        "the scan took 9 seconds",
    ),
    ("store every timestamp in UTC", "local server time", "daylight saving shifted the reports"),
    ("keep a deleted_at column", "a separate archive table", "the archive broke foreign keys"),
    (
        "stream the export as chunks",
        "building the file in memory",
        "large exports ran out of memory",
    ),
    (
        "retry with exponential backoff",
        "immediate retries",
        "immediate retries hammered the upstream",
    ),
    ("sign webhooks with HMAC-SHA256", "a shared secret in the URL", "URLs end up in logs"),
    (
        "use optimistic locking with a version column",
        "table locks",
        "table locks blocked the checkout",
    ),
    ("queue the emails through SQS", "sending them inline", "inline sends slowed every request"),
    ("use tsvector full-text search", "LIKE queries", "LIKE could not use the index"),
    ("feature-flag the new code path", "a long-lived branch", "the branch kept conflicting"),
    (
        "use httpx with connection pooling",
        "plain requests calls",
        "each call opened a new TLS connection",
    ),
    ("generate ids with ULIDs", "auto-increment ids", "auto-increment ids leak order counts"),
    ("compress payloads with gzip", "raw JSON payloads", "raw payloads hit the 1 MB limit"),
    (
        "move parsing into a pure function",
        "parsing inside the view",
        "the view was impossible to test",
    ),
    ("pin the dependency to 2.4.1", "tracking the latest release", "2.5 broke the serializer"),
    ("use a read replica for reports", "querying the primary", "reports slowed down checkout"),
    (
        "dedupe on an idempotency key",
        "checking for duplicates after insert",
        "the check raced under load",
    ),
)

LANGUAGES = {
    "python": {
        "files": (
            "src/{p}/api/{r}.py",
            "src/{p}/models/{r}.py",
            "src/{p}/services/{r}_service.py",
            "tests/test_{r}.py",
            "src/{p}/schemas/{r}.py",
            "src/{p}/tasks/{r}_jobs.py",
        ),
        "other": (
            "src/{p}/config.py",
            "src/{p}/db.py",
            "pyproject.toml",
            "README.md",
            "src/{p}/main.py",
            "tests/conftest.py",
            "docs/architecture.md",
            "src/{p}/utils.py",
        ),
        "test_cmd": "pytest -q",
    },
    "typescript": {
        "files": (
            "src/routes/{r}.ts",
            "src/models/{r}.ts",
            "src/services/{r}Service.ts",
            "test/{r}.test.ts",
            "src/validators/{r}.ts",
            "src/jobs/{r}Job.ts",
        ),
        "other": (
            "src/config.ts",
            "src/db.ts",
            "package.json",
            "README.md",
            "src/index.ts",
            "tsconfig.json",
            "docs/architecture.md",
            "src/utils.ts",
        ),
        "test_cmd": "npm test",
    },
    "go": {
        "files": (
            "internal/{r}/handler.go",
            "internal/{r}/store.go",
            "internal/{r}/service.go",
            "internal/{r}/handler_test.go",
            "internal/{r}/validate.go",
            "internal/jobs/{r}.go",
        ),
        "other": (
            "internal/config/config.go",
            "internal/db/db.go",
            "go.mod",
            "README.md",
            "cmd/server/main.go",
            "Makefile",
            "docs/architecture.md",
            "internal/util/util.go",
        ),
        "test_cmd": "go test ./...",
    },
}

ERROR_TEMPLATES = (
    "KeyError: '{field}'",
    "TypeError: 'NoneType' object is not subscriptable",
    "ConnectionRefusedError: [Errno 111] Connection refused",
    "ModuleNotFoundError: No module named '{module}'",
    "AssertionError: expected status 200, got {code}",
    "TimeoutError: request to /api/{r} timed out after {secs}s",
    "ValueError: invalid literal for int() with base 10: '{word}'",
    "AttributeError: 'Response' object has no attribute '{field}'",
    "OperationalError: no such table: {r}",
    "IntegrityError: duplicate key value violates unique constraint {r}_pkey",
    "ZeroDivisionError: division by zero",
    "FileNotFoundError: [Errno 2] No such file or directory: 'config/{word}.yaml'",
    "RecursionError: maximum recursion depth exceeded",
    "TypeError: Cannot read properties of undefined (reading '{field}')",
    "panic: runtime error: index out of range [{code}] with length {secs}",
    "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position {code}",
)
ERROR_FIELDS = (
    "user_id",
    "email",
    "created_at",
    "status",
    "amount",
    "owner",
    "token",
    "items",
    "total",
    "slug",
)
ERROR_MODULES = ("redis", "httpx", "pydantic", "celery", "boto3", "orjson", "structlog", "stripe")
ERROR_WORDS = ("abc", "none", "prod", "staging", "n/a", "twelve", "local", "default")

WARNINGS = (
    "DeprecationWarning: datetime.utcnow() is deprecated",
    "warning: 3 tests skipped",
    "warning: unused variable 'tmp'",
    "npm WARN deprecated uuid@3.4.0",
    "FutureWarning: the default of observed will change",
    "warning: lockfile is out of date",
)

NEXT_STEPS = (
    "run the integration tests",
    "deploy to staging",
    "write a migration for {r}",
    "add a test for the empty {r} case",
    "ask for a review of the pull request",
    "update the README",
    "benchmark the {r} query",
    "remove the debug logging",
    "backfill the existing {r}",
    "wire the endpoint into the router",
    "add the metrics dashboard",
    "rerun the failing {r} test",
    "document the new config flag",
    "load-test the {r} endpoint",
    "check the staging logs",
    "squash the commits and open a PR",
)

DONE_STEPS = (
    "reproduced the bug locally",
    "read the existing handler",
    "added the failing test",
    "set up the local database",
    "ran the linter",
    "checked the logs",
)

CHITCHAT_USER = (
    "thanks!",
    "sounds good",
    "ok, go ahead",
    "nice",
    "great, keep going",
    "makes sense",
    "take your time",
    "cool",
    "👍",
    "perfect",
)
CHITCHAT_ASSISTANT = (
    "Looking into it.",
    "On it.",
    "Let me check the code first.",
    "Give me a moment.",
    "Happy to help.",
    "Let me look around the repo.",
)


def fill(template: str, rng, resource: str, project: str = "app") -> str:
    """Fill a template's placeholders from small seeded lists."""
    return template.format(
        r=resource,
        p=project.replace("-", "_"),
        field=rng.choice(ERROR_FIELDS),
        module=rng.choice(ERROR_MODULES),
        word=rng.choice(ERROR_WORDS),
        code=rng.choice((400, 401, 403, 404, 409, 422, 500, 502, 503)),
        secs=rng.choice((3, 5, 10, 30, 60)),
    )
