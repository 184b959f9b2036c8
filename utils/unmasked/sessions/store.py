"""Storage: gzip JSONL files with a header line that carries the schema version.

The files are written byte-for-byte reproducibly (gzip mtime 0, no file name, fixed level,
sorted manifest), so `python -m unmasked.sessions --n 250 --seed 0 --out data/sessions`
regenerates exactly what is committed, and a test can compare checksums.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from .schema import SCHEMA_VERSION, SHORT_RECORD_FIELDS, Session, ShortSession

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DIR = REPO_ROOT / "data" / "sessions"
SCHEMA_NAME = "unmasked.sessions"
LONG_PATTERN = "sessions-*.jsonl.gz"  # shards of LONG_SHARD sessions keep each file to a few MB
LONG_SHARD = 50
SHORT_FILES = {"train": "short_train.jsonl.gz", "test": "short_test.jsonl.gz"}
MANIFEST = "manifest.json"


def resolve_dir(path=None) -> Path:
    """A data folder: as given when it exists from here, else relative to the repository root.

    Notebooks run from notebooks/, so the default "data/sessions" must not depend on the cwd.
    """
    if path is None:
        return DEFAULT_DIR
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return REPO_ROOT / p


def dumps_line(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_jsonl_gz(path: Path, kind: str, rows: Iterable[dict]) -> str:
    """Write a header line then one JSON object per line; return the file's sha256."""
    rows = list(rows)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        header = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "kind": kind,
            "count": len(rows),
        }
        gz.write(dumps_line(header).encode("utf-8"))
        for row in rows:
            gz.write(dumps_line(row).encode("utf-8"))
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_jsonl_gz(path: Path, kind: str, limit: int | None = None) -> Iterator[dict]:
    """Rows of a file written by write_jsonl_gz, after checking its header."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; generate it with `python -m unmasked.sessions --n 250 --seed "
            "0 "
            f"--out data/sessions` (or `make data`)"
        )
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = json.loads(f.readline())
        if header.get("schema") != SCHEMA_NAME or header.get("kind") != kind:
            raise ValueError(f"{path} is not a {kind!r} file of {SCHEMA_NAME} (header {header})")
        if header.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(
                f"{path} has schema_version {header.get('schema_version')}, this code reads "
                f"{SCHEMA_VERSION}; "
                "regenerate it with `make data`"
            )
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                return
            yield json.loads(line)


def _check_limit(limit):
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or a non-negative int, got {limit!r}")


def load_short_sessions(
    split: str = "train", limit: int | None = None, path=None
) -> list[ShortSession]:
    """The committed short corpus: split "train" (>= 20,000) or "test" (held out, >= 500)."""
    if split not in SHORT_FILES:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(SHORT_FILES)}")
    _check_limit(limit)
    rows = read_jsonl_gz(resolve_dir(path) / SHORT_FILES[split], "short", limit)
    out = []
    for r in rows:
        record = {k: r["record"][k] for k in SHORT_RECORD_FIELDS}
        out.append(ShortSession(id=r["id"], text=r["text"], record=record))
    return out


def long_shard_name(k: int) -> str:
    return f"sessions-{k:03d}.jsonl.gz"


def load_sessions(path="data/sessions", limit: int | None = None) -> list[Session]:
    """The committed long sessions (gzip JSONL shards, or one shard file), in generation order."""
    _check_limit(limit)
    p = resolve_dir(path)
    if p.is_dir():
        shards = sorted(p.glob(LONG_PATTERN))
        if not shards:
            raise FileNotFoundError(
                f"no {LONG_PATTERN} files in {p}; generate them with "
                "`python -m unmasked.sessions --n 250 --seed 0 --out data/sessions` (or `make "
                "data`)"
            )
    else:
        shards = [p]
    out: list[Session] = []
    for shard in shards:
        left = None if limit is None else limit - len(out)
        if left == 0:
            break
        out += [Session.from_dict(row) for row in read_jsonl_gz(shard, "long", left)]
    return out


def write_manifest(out: Path, entries: dict) -> None:
    manifest = {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, **entries}
    (out / MANIFEST).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
