"""An OpenAI-compatible chat API (issue 23): the tools people already use can ask the knowledge
base (``model: "kb"``, authenticated as for ``/api/ask``).

The last user message is the question; earlier user and assistant messages are the
conversation a follow-up is resolved with. The reply's content is the answer with its ``[n]``
markers and the sources listed under it; the citations also come as data in the ``kb``
extension field. An escalation is an ordinary reply saying that support has the question.
With ``stream: true`` the reply comes as ``chat.completion.chunk`` events ending with
``data: [DONE]``; the answer is checked before streaming starts, so no piece is taken back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from kb.api.deps import DBDep, EmployeeDep, GuidelinesDep, KBDep, SettingsDep
from kb.api.responses import ChatCompletion, ModelList
from kb.api.schemas import AskResponse, ChatCompletionRequest, ChatMessageIn
from kb.retrieval.conversation import Turn
from kb.retrieval.errors import KBError
from kb.services.ask import answer_question
from kb.services.policy import screen_or_refuse

router = APIRouter(prefix="/v1", tags=["chat"])

MODEL = "kb"
MAX_MESSAGES = 50
MAX_HISTORY_CHARS = 20_000
STREAM_PIECE = 24
"""Characters per streamed chunk."""
_SOURCE_LINE = re.compile(r"^\[(\d+)\]\s+(.+?)(?:\s+—\s+.*)?$")
_SOURCES = {"en": "Sources:", "ja": "出典:"}


@router.get("/models", response_model=ModelList, response_model_exclude_unset=True)
def models(identity: EmployeeDep) -> dict[str, Any]:  # noqa: ARG001
    """The models this endpoint serves: the knowledge base, ``kb``."""
    return {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "kb-assistant"}],
    }


@router.post(
    "/chat/completions",
    response_model=None,
    responses={
        200: {
            "model": ChatCompletion,
            "content": {"text/event-stream": {"description": "With stream: true."}},
        }
    },
)
def chat_completions(
    body: ChatCompletionRequest,
    identity: EmployeeDep,
    kb: KBDep,
    db: DBDep,
    settings: SettingsDep,
    guidelines: GuidelinesDep,
) -> JSONResponse | StreamingResponse:
    """Ask the knowledge base in the OpenAI chat-completions format (``model: "kb"``)."""
    if body.model != MODEL:
        raise KBError(f"model: unknown model {body.model!r}; this endpoint serves 'kb'",
                      code="VALIDATION_ERROR")  # fmt: skip
    question, history = _split(body.messages, settings.max_question_chars)
    turns: list[Turn] = []
    if body.conversation_id is None:
        for asked, answer in history:
            masked = screen_or_refuse(
                db, guidelines, asked, user_id=identity.user_id,
                department=identity.department, endpoint="chat",
            ).text  # fmt: skip
            turns.append(Turn(masked, masked, _titles(answer)))
    response = answer_question(
        kb,
        db,
        identity,
        question,
        None,
        guidelines=guidelines,
        group_similarity=settings.support.group_similarity,
        conversation_id=body.conversation_id,
        turns=turns,
        settings=settings,
    )
    content = render(response)
    created = int(time.time())
    ident = f"chatcmpl-{response.query_id}"
    extension = {
        "query_id": response.query_id,
        "conversation_id": response.conversation_id,
        "status": response.status,
        "confidence": response.confidence,
        "mode": response.mode,
        "citations": [c.model_dump() for c in response.citations],
    }
    if not body.stream:
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "kb": extension,
            }
        )

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    def events() -> Iterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        for i in range(0, len(content), STREAM_PIECE):
            yield chunk({"content": content[i : i + STREAM_PIECE]})
        yield chunk({}, "stop", kb=extension)
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _split(messages: list[ChatMessageIn], max_question: int) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last user message) and the earlier (question, answer) pairs.

    :raises KBError: ``VALIDATION_ERROR`` when the last message is not a user's text, or the
        history is over :data:`MAX_MESSAGES` messages or :data:`MAX_HISTORY_CHARS` characters.
    """
    if len(messages) > MAX_MESSAGES:
        raise KBError(f"messages: the history holds {len(messages)} messages, at most "
                      f"{MAX_MESSAGES} are accepted", code="VALIDATION_ERROR")  # fmt: skip
    total = sum(len(m.text()) for m in messages)
    if total > MAX_HISTORY_CHARS:
        raise KBError(f"messages: the history holds {total} characters, at most "
                      f"{MAX_HISTORY_CHARS} are accepted", code="VALIDATION_ERROR")  # fmt: skip
    last = messages[-1]
    question = last.text().strip()
    if last.role != "user" or not question:
        raise KBError("messages: the last message must be the user's question",
                      code="VALIDATION_ERROR")  # fmt: skip
    if len(question) > max_question:
        raise KBError(f"question is too long: {len(question)} characters > {max_question}",
                      code="VALIDATION_ERROR")  # fmt: skip
    pairs: list[tuple[str, str]] = []
    for m in messages[:-1]:
        if m.role == "user" and m.text().strip():
            pairs.append((m.text().strip(), ""))
        elif m.role == "assistant" and pairs and not pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], m.text())
    return question, pairs


def render(response: AskResponse) -> str:
    """The answer with its ``[n]`` markers, then one line per citation."""
    if not response.citations:
        return response.answer
    lines = [f"[{c.n}] {c.title} — {c.location} ({c.url})" for c in response.citations]
    return f"{response.answer}\n\n{_SOURCES[response.lang]}\n" + "\n".join(lines)


def _titles(answer: str) -> tuple[str, ...]:
    """The cited titles of one of our earlier replies (its source lines), first first."""
    titles: list[str] = []
    listing = False
    for line in answer.splitlines():
        if line.strip() in _SOURCES.values():
            listing = True
            continue
        match = _SOURCE_LINE.match(line.strip()) if listing else None
        if match:
            titles.append(match.group(2))
    return tuple(titles)
