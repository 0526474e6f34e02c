"""Language models behind one small protocol: an OpenAI-compatible endpoint, and a scripted fake.

Many companies already run a model behind the OpenAI chat-completions API (vLLM, Ollama,
llama.cpp server, a hosted API). :class:`OpenAIChatLLM` speaks that API over httpx, nothing more:
no SDK, no tools (the model gets none, issue 7), no function calling. :class:`ScriptedLLM` plays
queued answers for unit tests of the code around a model.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

from kb.retrieval.errors import LLMError, LLMTimeoutError
from kb.retrieval.settings import LLMSettings

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@runtime_checkable
class LLM(Protocol):
    """A chat model that writes text from messages. It is given no tools and calls none.

    Implementations retry transient failures themselves; whatever still fails is raised as
    :class:`~retrieval.errors.LLMError`, and the answer path then falls back to extractive.
    """

    name: str
    """The model's name, recorded with the answers it writes."""

    def complete(self, messages: Sequence[Message], *, timeout: float | None = None) -> str:
        """The model's whole reply to ``messages``.

        :param messages: system, user (and assistant) messages, in order.
        :param timeout: seconds to wait per attempt; ``None`` uses the configured one.
        :returns: the reply text (may be empty).
        :raises LLMTimeoutError: no reply in time, after the configured retries.
        :raises LLMError: the endpoint is unreachable, answered an error, or sent no reply.
        """
        ...

    def stream(self, messages: Sequence[Message], *, timeout: float | None = None) -> Iterator[str]:
        """The reply as it is written, in pieces (any size, joined they make the reply).

        Failures before the first piece are retried like :meth:`complete`; a failure after
        it is raised from the iterator (pieces already yielded cannot be taken back).

        :raises LLMTimeoutError: a piece did not arrive within ``timeout`` seconds.
        :raises LLMError: as for :meth:`complete`.
        """
        ...


class OpenAIChatLLM:
    """``POST {base_url}/chat/completions`` of an OpenAI-compatible server.

    Retries connection errors, timeouts, 429 and 5xx up to ``max_retries`` times, waiting
    0.5 s, 1 s, 2 s... in between. Other HTTP errors (400, 401, 404) are not retried.
    """

    def __init__(self, settings: LLMSettings, *, transport: httpx.BaseTransport | None = None):
        if not settings.base_url:
            raise ValueError("llm.base_url is not set")
        self.settings = settings
        self.name = settings.model
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self._transport = transport
        self.backoff_s = 0.5

    def complete(self, messages: Sequence[Message], *, timeout: float | None = None) -> str:
        """See :meth:`LLM.complete`."""
        body = self._body(messages, stream=False)
        for attempt in self._attempts():
            try:
                with self._client(timeout) as http:
                    resp = http.post(self.url, json=body)
                    if self._retryable(resp) and attempt.more:
                        attempt.fail(f"HTTP {resp.status_code}")
                        continue
                    self._raise_for_status(resp)
                    return _content(resp)
            except httpx.TimeoutException as exc:
                if not attempt.more:
                    raise LLMTimeoutError(self._why("timed out", exc)) from exc
                attempt.fail("timeout")
            except httpx.TransportError as exc:
                if not attempt.more:
                    raise LLMError(self._why("unreachable", exc)) from exc
                attempt.fail(type(exc).__name__)
        raise AssertionError("unreachable")  # pragma: no cover - _attempts always ends above

    def stream(self, messages: Sequence[Message], *, timeout: float | None = None) -> Iterator[str]:
        """See :meth:`LLM.stream`. Reads the server-sent events (``data: {...}`` lines, ended
        by ``data: [DONE]``) and yields each ``choices[0].delta.content``."""
        body = self._body(messages, stream=True)
        for attempt in self._attempts():
            started = False
            try:
                with self._client(timeout) as http, http.stream("POST", self.url, json=body) as r:
                    if self._retryable(r) and attempt.more:
                        attempt.fail(f"HTTP {r.status_code}")
                        continue
                    if r.status_code >= 400:
                        r.read()
                        self._raise_for_status(r)
                    for piece in _sse_pieces(r.iter_lines()):
                        started = True
                        yield piece
                    return
            except httpx.TimeoutException as exc:
                if started or not attempt.more:
                    raise LLMTimeoutError(self._why("timed out", exc)) from exc
                attempt.fail("timeout")
            except httpx.TransportError as exc:
                if started or not attempt.more:
                    raise LLMError(self._why("failed", exc)) from exc
                attempt.fail(type(exc).__name__)

    # -- internals -------------------------------------------------------------------------

    def _body(self, messages: Sequence[Message], *, stream: bool) -> dict[str, Any]:
        # No "tools", "functions" or "tool_choice": the model gets no tools (issue 7).
        return {
            "model": self.settings.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "stream": stream,
        }

    def _client(self, timeout: float | None) -> httpx.Client:
        headers = {"Accept": "application/json"}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        seconds = timeout if timeout is not None else self.settings.timeout_s
        return httpx.Client(
            timeout=httpx.Timeout(seconds), headers=headers, transport=self._transport
        )

    def _attempts(self) -> Iterator[_Attempt]:
        total = self.settings.max_retries + 1
        for i in range(total):
            attempt = _Attempt(more=i + 1 < total)
            yield attempt
            if attempt.failed is None:
                return
            log.warning("LLM %s (attempt %d of %d), retrying", attempt.failed, i + 1, total)
            time.sleep(self.backoff_s * 2**i)

    @staticmethod
    def _retryable(resp: httpx.Response) -> bool:
        return resp.status_code == 429 or resp.status_code >= 500

    def _raise_for_status(self, resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        try:
            detail = str(resp.json().get("error", {}).get("message") or resp.text)
        except (ValueError, AttributeError):
            detail = resp.text
        raise LLMError(f"LLM endpoint {self.url} answered HTTP {resp.status_code}: {detail[:200]}")

    def _why(self, what: str, exc: Exception) -> str:
        return f"LLM endpoint {self.url} {what} ({type(exc).__name__})"


@dataclass(slots=True)
class _Attempt:
    more: bool
    failed: str | None = None

    def fail(self, why: str) -> None:
        self.failed = why


def _content(resp: httpx.Response) -> str:
    try:
        data = resp.json()
        content = data["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise LLMError(f"LLM endpoint sent an unreadable reply: {resp.text[:200]}") from exc
    return str(content or "")


def _sse_pieces(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, "event:" lines
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            data = json.loads(payload)
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"LLM endpoint sent an unreadable event: {payload[:200]}") from exc
        piece = (choice.get("delta") or {}).get("content")
        if piece:
            yield str(piece)


class ScriptedLLM:
    """A deterministic fake for unit tests: plays queued replies in order.

    ``enqueue("text")`` queues a reply; ``enqueue(error=LLMTimeoutError("..."))`` queues a
    failure. :attr:`calls` records the messages of every call. :meth:`stream` yields the reply
    word by word.
    """

    def __init__(self, *replies: str, name: str = "scripted") -> None:
        self.name = name
        self._queue: deque[str | LLMError] = deque(replies)
        self.calls: list[list[Message]] = []

    def enqueue(self, reply: str | None = None, *, error: LLMError | None = None) -> None:
        """Queue one reply, or one failure."""
        if (reply is None) == (error is None):
            raise ValueError("give a reply or an error")
        self._queue.append(error if error is not None else str(reply))

    def _next(self, messages: Sequence[Message]) -> str:
        self.calls.append(list(messages))
        if not self._queue:
            raise LLMError("ScriptedLLM: no reply queued")
        item = self._queue.popleft()
        if isinstance(item, LLMError):
            raise item
        return item

    def complete(self, messages: Sequence[Message], *, timeout: float | None = None) -> str:  # noqa: ARG002
        """The next queued reply (or raise the next queued failure)."""
        return self._next(messages)

    def stream(self, messages: Sequence[Message], *, timeout: float | None = None) -> Iterator[str]:  # noqa: ARG002
        """The next queued reply in word-sized pieces."""
        reply = self._next(messages)
        pos = 0
        while pos < len(reply):
            nxt = reply.find(" ", pos + 1)
            end = len(reply) if nxt < 0 else nxt
            yield reply[pos:end]
            pos = end


def build_llm(settings: LLMSettings) -> LLM | None:
    """The configured model, or ``None`` when no endpoint is set (answers stay extractive)."""
    return OpenAIChatLLM(settings) if settings.base_url else None
