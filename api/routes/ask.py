"""Asking: the employee's question in, a cited answer or an escalation out."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from kb.api.deps import DBDep, EmployeeDep, GuidelinesDep, KBDep, SettingsDep
from kb.api.messages import current_lang, error_body
from kb.api.schemas import AskRequest, AskResponse, Citation
from kb.retrieval.answer import AnswerResult
from kb.retrieval.errors import KBError
from kb.retrieval.generate import Delta, Final, NewCitations
from kb.services.ask import answer_question, plan_question, record_answer, screen_question
from kb.services.memory_read import memory_for

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["ask"])


@router.post("/ask", response_model=AskResponse)
def ask(
    body: AskRequest,
    identity: EmployeeDep,
    kb: KBDep,
    db: DBDep,
    settings: SettingsDep,
    guidelines: GuidelinesDep,
) -> AskResponse:
    """Answer a question from the documents the caller may read, or escalate it to support."""
    _check_length(body, settings.max_question_chars)
    return answer_question(
        kb,
        db,
        identity,
        body.question,
        # The question's language comes from its text: the widget sends its interface language,
        # which says nothing about the words typed (issue 21).
        None,
        guidelines=guidelines,
        group_similarity=settings.support.group_similarity,
        conversation_id=body.conversation_id,
        settings=settings,
    )


def _check_length(body: AskRequest, limit: int) -> None:
    if len(body.question) > limit:
        raise KBError(
            f"question is too long: {len(body.question)} characters > {limit}",
            code="VALIDATION_ERROR",
        )


@router.post(
    "/ask/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
def ask_stream(
    body: AskRequest,
    identity: EmployeeDep,
    kb: KBDep,
    db: DBDep,
    settings: SettingsDep,
    guidelines: GuidelinesDep,
) -> StreamingResponse:
    """``/api/ask`` as server-sent events: ``meta``, ``citations``, ``delta``, then ``done``
    (the checked answer as ``/api/ask`` returns it, with the check's verdict) or ``error``."""
    _check_length(body, settings.max_question_chars)
    # Refusals (blocked terms, bad input) are plain HTTP errors, before the stream starts.
    screened = screen_question(kb, db, identity, body.question, guidelines)
    # The question's language comes from its text, not the widget's interface (issue 21).
    plan = plan_question(kb, db, identity, screened, None, body.conversation_id, guidelines)
    lang = plan.lang
    query_id = str(uuid.uuid4())
    reply_lang = current_lang()  # the stream runs after this request's context is gone

    def events() -> Iterator[str]:
        meta = {"query_id": query_id, "lang": lang, "conversation_id": plan.conversation_id}
        yield _sse("meta", meta)
        try:
            result: AnswerResult | None = None
            asked = kb.ask_stream(
                plan.query,
                acl=identity.acl,
                lang=lang,
                synonyms=plan.synonyms,
                memory=memory_for(db, kb),
            )
            for event in asked:
                if isinstance(event, NewCitations):
                    cites = [
                        Citation.model_validate(c, from_attributes=True) for c in event.citations
                    ]
                    yield _sse("citations", {"citations": [c.model_dump() for c in cites]})
                elif isinstance(event, Delta):
                    yield _sse("delta", {"text": event.text})
                elif isinstance(event, Final):
                    result = event.result
            assert result is not None
            response = record_answer(
                kb,
                db,
                identity,
                screened,
                result,
                query_id,
                group_similarity=settings.support.group_similarity,
                plan=plan,
                settings=settings,
            )
            yield _sse("done", {**response.model_dump(), "verdict": _verdict(result)})
        except KBError as exc:
            log.warning("%s during /api/ask/stream: %s", exc.code, exc.detail)
            yield _sse("error", error_body(exc.code, exc.detail, lang=reply_lang))
        except Exception:  # the stream has started: the error travels as an event
            log.exception("unhandled error during /api/ask/stream")
            yield _sse("error", error_body("INTERNAL_ERROR", "internal error", lang=reply_lang))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _verdict(result: AnswerResult) -> dict[str, Any]:
    """The faithfulness check's verdict on a generated answer (None fields when no model)."""
    gen = result.generation
    return {
        "checked": gen is not None and gen.score is not None,
        "model_faithfulness": None if gen is None or gen.score is None else round(gen.score, 4),
        "removed": [r.to_dict() for r in gen.removed] if gen else [],
        "refused": bool(gen and gen.refused),
        "neutralized": gen.neutralized if gen else 0,
    }


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
