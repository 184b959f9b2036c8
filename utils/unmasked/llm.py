"""A small client for any OpenAI-compatible /v1/chat/completions endpoint, over plain HTTP.

Plain urllib rather than the `openai` package: one POST is all the course needs, and the
failure modes a learner meets (server not running, wrong URL, bad key, slow model) deserve
messages that say what to do. Settings come from arguments, else from the environment:

    UNMASKED_LLM_BASE_URL  (or OPENAI_BASE_URL)   e.g. http://127.0.0.1:8000/v1
    UNMASKED_LLM_MODEL                            e.g. qwen2.5-coder-7b-instruct
    UNMASKED_LLM_API_KEY   (or OPENAI_API_KEY)    sent as a Bearer token, when set

`ChatServer` is the other side: a real HTTP server on 127.0.0.1 (stdlib http.server, in a
thread) that answers the same protocol with a Python function. The tests and notebook 07 use
it to serve the deterministic extractive compactor, so nothing ever needs the internet.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_TIMEOUT = 120.0


class LLMError(RuntimeError):
    """The endpoint could not be reached, refused the request, or answered something unusable."""


def chat_url(base_url: str) -> str:
    """The chat-completions URL for a base URL given with or without /v1 (or as the full URL)."""
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(
            f"base_url must start with http:// or https://, got {base_url!r} "
            "(for example http://127.0.0.1:8000/v1)"
        )
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


@dataclass
class ChatClient:
    """Settings for one endpoint; `chat(messages)` returns the reply text."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self):
        self.url = chat_url(self.base_url)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("model must be a non-empty string naming a model the endpoint serves")
        if not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")

    def __repr__(self) -> str:  # never print the key
        return (
            f"ChatClient(url={self.url!r}, model={self.model!r}, "
            f"key={'set' if self.api_key else 'none'})"
        )

    def complete(
        self,
        messages: Sequence[Mapping],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        **extra,
    ) -> dict:
        """POST a chat-completions request; return the decoded JSON response."""
        if not messages:
            raise ValueError("messages is empty; accepted: a list of {'role', 'content'} dicts")
        body = {
            "model": self.model,
            "messages": list(messages),
            "temperature": temperature,
            **extra,
        }
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            hint = {
                401: " (check the API key)",
                403: " (check the API key)",
                404: " (check the base URL: it should end in /v1)",
                429: " (rate limited: wait and retry)",
            }
            raise LLMError(
                f"{self.url} answered HTTP {exc.code}{hint.get(exc.code, '')}: {detail}"
            ) from None
        except TimeoutError:
            raise LLMError(
                f"{self.url} did not answer within {self.timeout:g} s; "
                "raise timeout= or use a smaller model"
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise LLMError(f"{self.url} did not answer within {self.timeout:g} s") from None
            raise LLMError(
                f"could not reach {self.url}: {reason}. Is the server running?"
            ) from None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            raise LLMError(
                f"{self.url} answered with something that is not JSON: {raw[:200]!r}"
            ) from None
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            raise LLMError(f"{self.url} answered with an error: {data['error']}")
        return data

    def chat(
        self,
        messages: Sequence[Mapping],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        **extra,
    ) -> str:
        """The text of the first choice of a chat completion."""
        data = self.complete(messages, max_tokens=max_tokens, temperature=temperature, **extra)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(
                f"{self.url} answered without choices[0].message.content: {str(data)[:300]}"
            ) from None
        if not isinstance(content, str):
            raise LLMError(f"{self.url} answered with non-text content: {content!r}")
        return content


def client_from_env(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ChatClient:
    """A ChatClient from arguments, falling back to the environment (see the module docstring)."""
    base_url = base_url or _env("UNMASKED_LLM_BASE_URL", "OPENAI_BASE_URL")
    model = model or _env("UNMASKED_LLM_MODEL")
    api_key = api_key if api_key is not None else _env("UNMASKED_LLM_API_KEY", "OPENAI_API_KEY")
    if not base_url:
        raise ValueError(
            "no endpoint: pass base_url= or set UNMASKED_LLM_BASE_URL (e.g. "
            "http://127.0.0.1:8000/v1)"
        )
    if not model:
        raise ValueError(
            "no model: pass model= or set UNMASKED_LLM_MODEL to a model the endpoint serves"
        )
    return ChatClient(base_url, model, api_key, timeout)


# ---- the server side: a real endpoint on 127.0.0.1
# ------------------------------------------------

Handler = Callable[[dict], str]  # the decoded request body -> the assistant's reply text


def _make_handler(answer: Handler, api_key: str | None):
    class ChatHandler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test and notebook output clean
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self._send(
                    200, {"object": "list", "data": [{"id": "extractive", "object": "model"}]}
                )
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(
                    404, {"error": {"message": f"no route {self.path}; use /v1/chat/completions"}}
                )
                return
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._send(401, {"error": {"message": "invalid API key"}})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if not isinstance(body.get("messages"), list):
                    raise ValueError("'messages' must be a list")
            except (ValueError, json.JSONDecodeError) as exc:
                self._send(400, {"error": {"message": f"bad request: {exc}"}})
                return
            try:
                text = answer(body)
            except Exception as exc:  # the server reports, the client raises LLMError
                self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
                return
            self._send(
                200,
                {
                    "id": f"chatcmpl-{int(time.time() * 1000)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {},
                },
            )

    return ChatHandler


class ChatServer:
    """An OpenAI-compatible endpoint on 127.0.0.1 answering with `answer(request_body) -> str`.

    with ChatServer(my_function) as server:
        ChatClient(server.base_url, "any").chat([...])
    """

    def __init__(self, answer: Handler, *, port: int = 0, api_key: str | None = None):
        if not callable(answer):
            raise ValueError(
                "answer must be a function taking the request body (dict) and returning text"
            )
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(answer, api_key))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
