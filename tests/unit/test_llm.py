"""The OpenAI-compatible adapter against the fake server on loopback (issue 7)."""

from __future__ import annotations

import socket
import time

import pytest

from kb.retrieval.errors import LLMError, LLMTimeoutError
from kb.retrieval.llm import LLM, Message, OpenAIChatLLM, ScriptedLLM, build_llm
from kb.retrieval.settings import LLMSettings, Settings
from tests.fake_llm import fake_llm  # noqa: F401 - the fixture

MESSAGES = [Message("system", "You answer."), Message("user", "Question?")]


def _llm(server, **extra):
    settings = LLMSettings(base_url=server.base_url, model="m1", **extra)
    llm = OpenAIChatLLM(settings)
    llm.backoff_s = 0.01
    return llm


def test_complete_posts_a_plain_chat_request_without_tools(fake_llm):  # noqa: F811
    fake_llm.reply("Hello [1].")
    llm = _llm(fake_llm, api_key="sk-test", temperature=0.0, max_tokens=64)
    assert isinstance(llm, LLM)
    assert llm.complete(MESSAGES) == "Hello [1]."
    (body,) = fake_llm.requests
    assert body["_path"] == "/v1/chat/completions" and body["_auth"] == "Bearer sk-test"
    assert body["model"] == "m1" and body["stream"] is False
    assert body["temperature"] == 0.0 and body["max_tokens"] == 64
    assert body["messages"] == [
        {"role": "system", "content": "You answer."},
        {"role": "user", "content": "Question?"},
    ]
    assert not {"tools", "functions", "tool_choice"} & set(body)


def test_stream_reads_server_sent_events_to_done(fake_llm):  # noqa: F811
    fake_llm.reply("A streamed answer, in many small pieces [1].", chunk=3)
    pieces = list(_llm(fake_llm).stream(MESSAGES))
    assert len(pieces) > 5
    assert "".join(pieces) == "A streamed answer, in many small pieces [1]."
    assert fake_llm.requests[0]["stream"] is True


def test_server_errors_are_retried_then_succeed(fake_llm):  # noqa: F811
    fake_llm.reply(status=503)
    fake_llm.reply("ok")
    assert _llm(fake_llm, max_retries=1).complete(MESSAGES) == "ok"
    assert len(fake_llm.requests) == 2


def test_client_errors_are_not_retried(fake_llm):  # noqa: F811
    fake_llm.reply(status=400)
    with pytest.raises(LLMError, match="HTTP 400"):
        _llm(fake_llm, max_retries=2).complete(MESSAGES)
    assert len(fake_llm.requests) == 1


def test_a_slow_endpoint_times_out_after_its_retries(fake_llm):  # noqa: F811
    fake_llm.reply("late", delay=1.0)
    fake_llm.reply("late", delay=1.0)
    t0 = time.perf_counter()
    with pytest.raises(LLMTimeoutError) as info:
        _llm(fake_llm, timeout_s=0.2, max_retries=1).complete(MESSAGES)
    assert info.value.code == "LLM_TIMEOUT"
    assert time.perf_counter() - t0 < 1.5
    assert len(fake_llm.requests) == 2
    fake_llm.reply("late", delay=1.0)
    with pytest.raises(LLMTimeoutError):
        list(_llm(fake_llm, timeout_s=0.2, max_retries=0).stream(MESSAGES))


def test_an_endpoint_that_is_down_is_an_llm_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    llm = OpenAIChatLLM(LLMSettings(base_url=f"http://127.0.0.1:{port}/v1", max_retries=1))
    llm.backoff_s = 0.01
    with pytest.raises(LLMError) as info:
        llm.complete(MESSAGES)
    assert info.value.code == "LLM_PROVIDER_ERROR" and not isinstance(info.value, LLMTimeoutError)


def test_an_unreadable_reply_is_an_llm_error(fake_llm):  # noqa: F811
    fake_llm.reply(status=200)  # empty content is fine ...
    assert _llm(fake_llm).complete(MESSAGES) == ""
    fake_llm.reply(status=404)
    with pytest.raises(LLMError):
        _llm(fake_llm).complete(MESSAGES)


def test_no_endpoint_means_no_model_and_env_configures_one(monkeypatch, tmp_path):
    assert build_llm(LLMSettings()) is None
    monkeypatch.setenv("KB_LLM__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("KB_LLM__MODEL", "qwen2.5-7b-instruct")
    monkeypatch.setenv("KB_LLM__API_KEY", "secret")
    monkeypatch.setenv("KB_LLM__TIMEOUT_S", "12.5")
    settings = Settings(data_dir=tmp_path)
    assert settings.llm.model == "qwen2.5-7b-instruct" and settings.llm.timeout_s == 12.5
    assert "secret" not in repr(settings.llm)
    llm = build_llm(settings.llm)
    assert isinstance(llm, OpenAIChatLLM) and llm.url == "http://127.0.0.1:9/v1/chat/completions"


def test_scripted_llm_plays_its_queue():
    llm = ScriptedLLM("first")
    llm.enqueue("second reply")
    llm.enqueue(error=LLMTimeoutError("slow"))
    assert llm.complete(MESSAGES) == "first"
    assert "".join(llm.stream(MESSAGES)) == "second reply"
    with pytest.raises(LLMTimeoutError):
        llm.complete(MESSAGES)
    assert len(llm.calls) == 3
