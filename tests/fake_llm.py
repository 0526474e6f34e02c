"""A fake OpenAI-compatible chat-completions server on a loopback port, scripted per test.

Only the external LLM endpoint is faked: the product talks to it over real HTTP through
``retrieval.llm.OpenAIChatLLM``. Each request takes the next scripted reply:

- ``server.reply("text [1].")``: a completion (non-streaming JSON, or server-sent events in
  small pieces when the request says ``"stream": true``);
- ``server.reply(lambda messages: ...)``: the text computed from the request's messages (to cite
  the number the prompt gave a passage);
- ``server.reply("...", delay=2.0)``: wait before answering (timeouts);
- ``server.reply(status=503)``: an HTTP error.

With nothing queued it answers 500. ``server.requests`` holds every request body.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Script = str | Callable[[list[dict[str, str]]], str]


@dataclass
class Reply:
    text: Script = ""
    delay: float = 0.0
    status: int = 200
    chunk: int = 7
    """Characters per streamed event."""


class FakeLLMServer:
    """The server; ``base_url`` ends in ``/v1`` like real OpenAI-compatible servers."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def reply(
        self, text: Script = "", *, delay: float = 0.0, status: int = 200, chunk: int = 7
    ) -> None:
        """Queue the reply to the next request."""
        with self._lock:
            self.replies.append(Reply(text, delay, status, chunk))

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self.requests.clear()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            return self.replies.popleft() if self.replies else Reply(status=500)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                body["_path"] = self.path
                body["_auth"] = self.headers.get("Authorization")
                reply = server._next(body)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    if self.path != "/v1/chat/completions":
                        self._json(404, {"error": {"message": f"no route {self.path}"}})
                    elif reply.status != 200:
                        self._json(reply.status, {"error": {"message": "scripted failure"}})
                    else:
                        text = reply.text(body["messages"]) if callable(reply.text) else reply.text
                        if body.get("stream"):
                            self._sse(text, reply.chunk)
                        else:
                            self._json(200, completion(text))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def _json(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _sse(self, text: str, size: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(0, len(text), size):
                    delta = {"choices": [{"index": 0, "delta": {"content": text[i : i + size]}}]}
                    self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler


def completion(text: str) -> dict[str, Any]:
    """A chat-completion body as OpenAI-compatible servers send it."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }


_PASSAGE = re.compile(r'<passage n="(\d+)"[^>]*>\n(.*?)\n</passage>', re.DOTALL)


def passages_of(messages: list[dict[str, str]]) -> dict[int, str]:
    """Passage number -> text, read from the prompt the product sent."""
    user = next(m["content"] for m in messages if m["role"] == "user")
    return {int(n): text for n, text in _PASSAGE.findall(user)}


def number_of(messages: list[dict[str, str]], needle: str) -> int:
    """The number the prompt gave the passage containing ``needle``."""
    for n, text in passages_of(messages).items():
        if needle in text:
            return n
    raise AssertionError(f"no passage with {needle!r} in the prompt")


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A fresh fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()
