"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1 (no mocks, no internet)."""

from __future__ import annotations

import socket
import time

import pytest

from unmasked.compaction import (
    ExtractiveCompactor,
    LLMCompactor,
    build_summary_request,
    compact_context,
    extractive_answer,
    get_compactor,
    load_prompt,
    render,
    to_messages,
)
from unmasked.compaction.core import split_history
from unmasked.llm import ChatClient, ChatServer, LLMError, chat_url, client_from_env
from unmasked.sessions import generate_session
from unmasked.tokens import count_tokens


def echo(body):
    return (
        "echo: "
        + body["messages"][-1]["content"]
        + f" | model={body['model']} max_tokens={body.get('max_tokens')}"
    )


@pytest.fixture
def echo_server():
    with ChatServer(echo) as server:
        yield server


@pytest.fixture(scope="module")
def session():
    return generate_session(11, 30_000)


def test_chat_round_trip(echo_server):
    client = ChatClient(echo_server.base_url, "toy")
    reply = client.chat([{"role": "user", "content": "hello"}], max_tokens=7)
    assert reply == "echo: hello | model=toy max_tokens=7"
    data = client.complete([{"role": "user", "content": "hi"}])
    assert data["object"] == "chat.completion" and data["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "base,expected",
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
        ("https://host/api/v1/chat/completions", "https://host/api/v1/chat/completions"),
    ],
)
def test_chat_url(base, expected):
    assert chat_url(base) == expected


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="http://"):
        ChatClient("127.0.0.1:8000", "m")
    with pytest.raises(ValueError, match="model"):
        ChatClient("http://127.0.0.1:1/v1", "")
    with pytest.raises(ValueError, match="timeout"):
        ChatClient("http://127.0.0.1:1/v1", "m", timeout=0)


def test_settings_from_environment(monkeypatch, echo_server):
    for name in (
        "UNMASKED_LLM_BASE_URL",
        "OPENAI_BASE_URL",
        "UNMASKED_LLM_MODEL",
        "UNMASKED_LLM_API_KEY",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="UNMASKED_LLM_BASE_URL"):
        client_from_env()
    monkeypatch.setenv("UNMASKED_LLM_BASE_URL", echo_server.base_url)
    with pytest.raises(ValueError, match="UNMASKED_LLM_MODEL"):
        client_from_env()
    monkeypatch.setenv("UNMASKED_LLM_MODEL", "from-env")
    monkeypatch.setenv("UNMASKED_LLM_API_KEY", "sekret")
    client = client_from_env()
    assert (
        client.model == "from-env" and client.api_key == "sekret" and "sekret" not in repr(client)
    )
    assert client.chat([{"role": "user", "content": "x"}]).endswith(
        "model=from-env max_tokens=None"
    )
    assert client_from_env(model="override").model == "override"


def test_api_key_is_sent_and_checked():
    with ChatServer(echo, api_key="right") as server:
        assert ChatClient(server.base_url, "m", api_key="right").chat(
            [{"role": "user", "content": "ok"}]
        )
        with pytest.raises(LLMError, match="HTTP 401.*API key"):
            ChatClient(server.base_url, "m", api_key="wrong").chat(
                [{"role": "user", "content": "no"}]
            )


def test_connection_refused_is_a_clear_error():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LLMError, match="could not reach .*Is the server running"):
        ChatClient(f"http://127.0.0.1:{port}/v1", "m", timeout=5).chat(
            [{"role": "user", "content": "x"}]
        )


def test_wrong_path_is_a_404_with_a_hint(echo_server):
    url = echo_server.base_url.removesuffix("/v1") + "/v2/chat"
    with pytest.raises(LLMError, match="HTTP 404"):
        ChatClient(url + "/completions", "m").chat([{"role": "user", "content": "x"}])


def test_timeout_is_a_clear_error():
    def slow(body):
        time.sleep(1.5)
        return "late"

    with ChatServer(slow) as server:
        with pytest.raises(LLMError, match="did not answer within 0.3 s"):
            ChatClient(server.base_url, "m", timeout=0.3).chat([{"role": "user", "content": "x"}])


def test_server_errors_reach_the_client():
    def broken(body):
        raise RuntimeError("model exploded")

    with ChatServer(broken) as server:
        with pytest.raises(LLMError, match="HTTP 500.*model exploded"):
            ChatClient(server.base_url, "m").chat([{"role": "user", "content": "x"}])


def test_empty_messages_rejected(echo_server):
    with pytest.raises(ValueError, match="messages is empty"):
        ChatClient(echo_server.base_url, "m").chat([])


# ---- the LLM compactor through the protocol -----------------------------------------------------


def test_prompt_ships_with_the_package_and_names_the_task(session):
    template = load_prompt()
    assert "{current_task}" in template and "{budget_tokens}" in template
    request = build_summary_request(to_messages(session.turns[:20]), "fix the flaky export", 1234)
    assert request[0]["role"] == "system" and "fix the flaky export" in request[0]["content"]
    assert "1234" in request[0]["content"] and "<transcript>" in request[1]["content"]


def test_llm_compactor_round_trips_through_a_local_server(session):
    with ChatServer(extractive_answer) as server:
        llm = LLMCompactor(base_url=server.base_url, model="extractive")
        ctx = compact_context(session.turns, session.task, threshold_tokens=10_000, compactor=llm)
    assert ctx.was_compacted and ctx.compactor == "llm"
    assert 0 < count_tokens(ctx.summary) <= ctx.summary_budget
    # the server ran the extractive compactor on what came over the wire: the same summary
    messages = to_messages(session.turns)
    pinned, cut = split_history(messages, 3)
    direct = ExtractiveCompactor().summarize(messages[pinned:cut], session.task, ctx.summary_budget)
    assert ctx.summary == direct
    assert llm.last_request[0]["content"].count(session.task) >= 1
    assert render(ctx)[-1] == session.turns[-1].to_message()


def test_llm_compactor_by_name_reads_the_environment(monkeypatch, session):
    monkeypatch.delenv("UNMASKED_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="UNMASKED_LLM_BASE_URL"):
        compact_context(session.turns, session.task, threshold_tokens=10_000, compactor="llm")
    with ChatServer(extractive_answer) as server:
        monkeypatch.setenv("UNMASKED_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("UNMASKED_LLM_MODEL", "extractive")
        ctx = compact_context(
            session.turns, session.task, threshold_tokens=10_000, compactor=get_compactor("llm")
        )
    assert ctx.was_compacted and "## Task" in ctx.summary


def test_max_input_tokens_trims_the_transcript(session):
    request = build_summary_request(
        to_messages(session.turns), session.task, 500, max_input_tokens=2_000
    )
    assert count_tokens(request[1]["content"]) < 2_100
