"""Rung 6: a language model writes the summary, through any OpenAI-compatible endpoint.

The prompt ships in the package (`unmasked/prompts/compaction_summary.txt`) so that a learner
can read it, change it, and see in notebook 07 exactly what the model was asked. It names the
current task, because what to keep depends on what the agent is doing now.
"""

from __future__ import annotations

import re
from importlib import resources

from unmasked.llm import ChatClient, client_from_env
from unmasked.tokens import keep_newest_tokens

from .compactors import Compactor
from .extractive import ExtractiveCompactor
from .messages import parse_transcript, transcript

PROMPT_FILE = "compaction_summary.txt"
_TASK = re.compile(r"<current_task>\n?(.*?)\n?</current_task>", re.S)
_TRANSCRIPT = re.compile(r"<transcript>\n?(.*?)\n?</transcript>", re.S)


def load_prompt(name: str = PROMPT_FILE) -> str:
    """The summarizer's prompt template as shipped in the package."""
    return resources.files("unmasked").joinpath("prompts", name).read_text(encoding="utf-8")


def build_summary_request(
    messages: list[dict],
    current_task: str,
    budget_tokens: int,
    *,
    template: str | None = None,
    max_input_tokens: int | None = None,
) -> list[dict]:
    """The chat messages sent to the model: the instructions, then the transcript to summarize.

    max_input_tokens keeps only the newest part of the transcript, for endpoints whose context
    window is smaller than the span being compacted.
    """
    template = load_prompt() if template is None else template
    system = template.replace("{current_task}", current_task).replace(
        "{budget_tokens}", str(budget_tokens)
    )
    text = keep_newest_tokens(
        transcript(messages), max_input_tokens, "[... earlier turns cut to fit the model ...]"
    )
    user = f"Summarize this conversation.\n<transcript>\n{text}\n</transcript>"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_summary_request(body: dict) -> tuple[list[dict], str, int | None]:
    """The server side of build_summary_request: (messages, current task, max_tokens)."""
    joined = "\n".join(
        m.get("content") or "" for m in body.get("messages", []) if isinstance(m, dict)
    )
    task = _TASK.search(joined)
    span = _TRANSCRIPT.search(joined)
    if span is None:
        raise ValueError("the request has no <transcript>...</transcript> block to summarize")
    return parse_transcript(span.group(1)), task.group(1) if task else "", body.get("max_tokens")


def extractive_answer(body: dict) -> str:
    """A chat-completions handler that 'summarizes' with the extractive compactor.

    Served by `unmasked.llm.ChatServer`, it stands in for a real model in tests and notebooks:
    same protocol, deterministic answer, no download.
    """
    messages, task, max_tokens = parse_summary_request(body)
    budget = int(max_tokens) if max_tokens else 8_000
    return ExtractiveCompactor().summarize(messages, task, budget)


class LLMCompactor(Compactor):
    """Summaries written by a model behind an OpenAI-compatible /v1/chat/completions endpoint.

    base_url, model and api_key come from the arguments, else from UNMASKED_LLM_BASE_URL,
    UNMASKED_LLM_MODEL and UNMASKED_LLM_API_KEY (see unmasked.llm). The client is made on first
    use, so `get_compactor("llm")` works without settings until it is actually called.
    """

    name = "llm"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        template: str | None = None,
        max_input_tokens: int | None = None,
        client: ChatClient | None = None,
    ):
        self._settings = (base_url, model, api_key, timeout)
        self.client = client
        self.template = template
        self.max_input_tokens = max_input_tokens
        self.last_request: list[dict] | None = None

    def summarize(self, messages, current_task, budget_tokens):
        if self.client is None:
            self.client = client_from_env(*self._settings)
        request = build_summary_request(
            messages,
            current_task,
            budget_tokens,
            template=self.template,
            max_input_tokens=self.max_input_tokens,
        )
        self.last_request = request
        reply = self.client.chat(request, max_tokens=budget_tokens)
        return reply.strip()

    def __repr__(self) -> str:
        return f"LLMCompactor({self.client or 'settings from arguments or environment'})"


__all__ = [
    "LLMCompactor",
    "build_summary_request",
    "extractive_answer",
    "load_prompt",
    "parse_summary_request",
]
