"""The OpenAI-compatible chat API (issue 23), with the real ``openai`` SDK as the client against
the app under uvicorn on 127.0.0.1 (sample knowledge base, real model, store and database)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import pytest
import uvicorn

from kb.api.app import create_app
from tests.integration._auth import make_user
from tests.integration.dialogues import GUIDE, GUIDE_JA, PRICES
from tests.serving import serving

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _paths(sample_paths: dict[str, str]) -> None:
    PATHS.update(sample_paths)


PATHS: dict[str, str] = {}
"""Document id -> path in docs_corpus, filled from the sample knowledge base."""


@pytest.fixture(scope="module")
def base_url(sample_kb):
    kb, db, _ = sample_kb
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(kb.settings, lifespan=serving(kb, db))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def token(sample_kb):
    kb, _db, _ = sample_kb
    # A real API token, as a tool would hold one ("auth as for /api/ask").
    return make_user(kb.settings.db_url(), kb.settings.data_dir, "sdk-user", "employee")


@pytest.fixture
def sdk(base_url, token):
    return openai.OpenAI(base_url=base_url, api_key=token)


def test_models_lists_kb(sdk) -> None:
    assert [m.id for m in sdk.models.list().data] == ["kb"]


def test_a_question_and_its_follow_up(sdk) -> None:
    first = sdk.chat.completions.create(
        model="kb",
        messages=[
            {"role": "user", "content": "What does a cyan toner cartridge for the Aster cost?"}
        ],
    )
    content = first.choices[0].message.content
    kb = first.model_extra["kb"]
    assert kb["status"] == "answered" and PATHS[kb["citations"][0]["document_id"]] == PRICES
    assert "19800" in content  # the price list's row is quoted whole, its price with it
    assert "[1]" in content and "Sources:" in content and kb["citations"][0]["title"] in content
    follow = sdk.chat.completions.create(
        model="kb",
        messages=[
            {"role": "user", "content": "How do I connect the Aster MF-3400 to the office Wi-Fi?"},
            {"role": "assistant", "content": "Open Settings [1].\n\nSources:\n"
             "[1] Aster MF-3400 User Guide — p. 12 (/x)"},
            {"role": "user", "content": "Where do I find the initial admin password for its Web "
             "Console?"},
        ],
    )  # fmt: skip
    assert PATHS[follow.model_extra["kb"]["citations"][0]["document_id"]] in (GUIDE, GUIDE_JA)


def test_streaming_ends_with_done_and_matches(sdk, base_url) -> None:
    q = [{"role": "user", "content": "What does a cyan toner cartridge for the Aster cost?"}]
    stream = sdk.chat.completions.create(model="kb", messages=q, stream=True)
    pieces, finish, extension = [], None, None
    for chunk in stream:
        pieces.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
        extension = (chunk.model_extra or {}).get("kb") or extension
    assert finish == "stop" and len(pieces) > 3
    assert PATHS[extension["citations"][0]["document_id"]] == PRICES
    assert "19800" in "".join(pieces) and "Sources:" in "".join(pieces)
    raw = httpx.post(f"{base_url}/chat/completions", json={"model": "kb", "messages": q,
                     "stream": True}, headers={"X-User-Id": "sdk"}, timeout=60)  # fmt: skip
    assert raw.text.rstrip().endswith("data: [DONE]")


def test_an_escalation_is_a_normal_reply(sdk) -> None:
    reply = sdk.chat.completions.create(
        model="kb",
        messages=[{"role": "user", "content": "今週の社員食堂のメニューを教えてください。"}],
    )
    assert reply.model_extra["kb"]["status"] == "escalated"
    assert reply.choices[0].message.content and reply.choices[0].finish_reason == "stop"


def test_bad_requests_get_the_one_error_shape(sdk, base_url) -> None:
    with pytest.raises(openai.UnprocessableEntityError):
        sdk.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    too_many = [{"role": "user", "content": "q"}] * 60
    resp = httpx.post(f"{base_url}/chat/completions", json={"model": "kb", "messages": too_many},
                      headers={"X-User-Id": "sdk"})  # fmt: skip
    assert resp.status_code == 422 and resp.json()["error_code"] == "VALIDATION_ERROR"
    last_assistant = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    resp = httpx.post(f"{base_url}/chat/completions", json={"model": "kb",
                      "messages": last_assistant}, headers={"X-User-Id": "sdk"})  # fmt: skip
    assert resp.status_code == 422 and resp.json()["error_code"] == "VALIDATION_ERROR"
    unknown = httpx.post(f"{base_url}/chat/completions", json={"model": "kb", "messages":
                         [{"role": "user", "content": "q"}], "conversation_id": "nope"},
                         headers={"X-User-Id": "sdk"})  # fmt: skip
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "NOT_FOUND"
    forged = httpx.get(f"{base_url}/models", headers={"Authorization": "Bearer kbt_forged"})
    assert forged.status_code == 401 and forged.json()["error_code"] == "UNAUTHENTICATED"
