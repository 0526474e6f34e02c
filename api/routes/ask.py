"""Asking: the employee's question in, a cited answer or an escalation out."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import DBDep, EmployeeDep, GuidelinesDep, Identity, KBDep, SettingsDep
from api.schemas import AskRequest, AskResponse, Citation
from api.services import notifications
from api.services.conversations import earlier_turns, ensure_conversation, new_conversation_id
from api.services.policy import guidelines_for, screen_or_refuse
from api.services.queue import enqueue
from api.services.synonyms import synonym_table
from db.engine import Database
from db.models import QueryLog
from retrieval.answer import AnswerResult
from retrieval.conversation import Resolution, Resolver, Turn
from retrieval.errors import KBError
from retrieval.generate import Delta, Final, NewCitations
from retrieval.guidelines import Guidelines, Screened
from retrieval.lang import detect_lang
from retrieval.models import Lang
from retrieval.service import KnowledgeBase
from retrieval.settings import Settings
from retrieval.synonyms import SynonymTable
from retrieval.telemetry import record_ask

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


def answer_question(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    question: str,
    lang: Lang | None,
    *,
    guidelines: Guidelines | None = None,
    group_similarity: float | None = None,
    conversation_id: str | None = None,
    turns: list[Turn] | None = None,
    settings: Settings | None = None,
) -> AskResponse:
    """Screen, resolve a follow-up, ask, log the question and its outcome, queue an
    escalation, and build the API response (also used by the CLI and the chat API).

    The guidelines run first: only the masked question is embedded, searched and stored.
    ``guidelines`` and ``group_similarity`` default to the knowledge base's settings.

    :param conversation_id: the caller's conversation this question continues (``None``: a new
        one); its earlier turns resolve a follow-up (:mod:`retrieval.conversation`).
    :param turns: earlier turns given by the caller instead (the chat API's messages).
    :raises PolicyBlockedError: the question mentions a blocked term (recorded as a hit).
    :raises NotFoundError: ``conversation_id`` is unknown or another user's.
    """
    guidelines = guidelines or guidelines_for(kb.settings.guidelines)
    screened = screen_question(kb, db, identity, question, guidelines)
    plan = plan_question(kb, db, identity, screened, lang, conversation_id, guidelines, turns)
    result = plan.alone or kb.ask(
        plan.query, acl=identity.acl, lang=plan.lang, synonyms=plan.synonyms
    )
    return record_answer(
        kb,
        db,
        identity,
        screened,
        result,
        str(uuid.uuid4()),
        group_similarity=group_similarity,
        plan=plan,
        settings=settings,
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """How one question is searched: its conversation, the resolved query, the vocabulary."""

    conversation_id: str
    resolution: Resolution
    query: str
    """The masked query that is searched."""
    lang: Lang
    synonyms: SynonymTable
    alone: AnswerResult | None = None
    """The answer to ``query`` when resolving the question took one (not asked again)."""


def plan_question(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    screened: Screened,
    lang: Lang | None,
    conversation_id: str | None,
    guidelines: Guidelines,
    turns: list[Turn] | None = None,
) -> Plan:
    """Resolve ``screened`` with its conversation's earlier turns (see :func:`answer_question`).

    :raises NotFoundError: ``conversation_id`` is unknown or another user's.
    """
    stored = earlier_turns(db, identity.access, conversation_id)
    lang = lang or detect_lang(screened.text)
    table = synonym_table(db, kb.sparse)
    resolution, alone = Resolver(kb).resolve(
        screened.text, [*(turns or ()), *stored], acl=identity.acl, lang=lang, synonyms=table
    )
    # A model's rewrite is masked like the question before it is searched or stored.
    query = guidelines.screen(resolution.query).text if resolution.rewritten else screened.text
    if resolution.rewritten:
        log.info("follow-up resolved (%s, %s)", resolution.mode, resolution.reason)
    return Plan(
        conversation_id=conversation_id or new_conversation_id(),
        resolution=resolution,
        query=query,
        lang=lang,
        synonyms=table,
        alone=alone,
    )


def screen_question(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    question: str,
    guidelines: Guidelines | None = None,
) -> Screened:
    """The question with personal data masked; :raises PolicyBlockedError: on a blocked term."""
    return screen_or_refuse(
        db,
        guidelines or guidelines_for(kb.settings.guidelines),
        question,
        user_id=identity.user_id,
        department=identity.department,
        endpoint="ask",
    )


def record_answer(
    kb: KnowledgeBase,
    db: Database,
    identity: Identity,
    screened: Screened,
    result: AnswerResult,
    query_id: str,
    *,
    group_similarity: float | None = None,
    plan: Plan,
    settings: Settings | None = None,
) -> AskResponse:
    """Log the question (a turn of its conversation) and its outcome, queue an escalation and
    notify support of it, build the response."""
    groups = {p.chunk.point_id: p.chunk.groups for p in result.passages}
    with db.session() as s:
        ensure_conversation(s, plan.conversation_id, identity.user_id)
        s.flush()
        s.add(
            QueryLog(
                id=query_id,
                question=screened.text,
                redactions=list(screened.redactions),
                user_id=identity.user_id,
                department=identity.department,
                groups=list(identity.groups),
                lang=result.lang,
                status=result.status,
                mode=result.mode,
                confidence=result.confidence,
                citations=[
                    {
                        "n": c.n,
                        "document_id": c.document_id,
                        "version": c.version,
                        "chunk_id": c.chunk_id,
                        # The passage's own groups (a Q&A sheet restricts single rows): who
                        # may later read this question in the queue, analytics or export.
                        "groups": list(groups[c.chunk_id]) if c.chunk_id in groups else None,
                    }
                    for c in result.citations
                ],
                latency_ms=result.timings_ms.get("total_ms", 0.0),
                faithfulness=result.faithfulness,
                fallback_reason=result.fallback_reason,
                conversation_id=plan.conversation_id,
                rewritten=plan.query if plan.resolution.rewritten else None,
                rewrite_mode=plan.resolution.mode if plan.resolution.mode != "standalone" else None,
            )
        )
    record_ask(result.status, result.lang)
    if result.status == "escalated" and kb.embedders:
        placement = enqueue(
            db,
            kb.embedders[0],
            query_id,
            "escalated",
            threshold=group_similarity or kb.settings.support.group_similarity,
            synonyms=plan.synonyms,
            encoder=kb.sparse,
        )
        notifications.on_escalation(
            db, settings or kb.settings, query_id, placement.group_id, "escalated"
        )
    return AskResponse(
        query_id=query_id,
        conversation_id=plan.conversation_id,
        status=result.status,
        answer=result.answer,
        citations=[Citation.model_validate(c, from_attributes=True) for c in result.citations],
        confidence=round(result.confidence, 4),
        lang=result.lang,
        mode=result.mode,
        fallback_reason=result.fallback_reason,
        faithfulness=None if result.faithfulness is None else round(result.faithfulness, 4),
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

    def events() -> Iterator[str]:
        meta = {"query_id": query_id, "lang": lang, "conversation_id": plan.conversation_id}
        yield _sse("meta", meta)
        try:
            result: AnswerResult | None = None
            asked = kb.ask_stream(plan.query, acl=identity.acl, lang=lang, synonyms=plan.synonyms)
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
            yield _sse("error", {"error_code": exc.code, "detail": exc.detail})
        except Exception:  # the stream has started: the error travels as an event
            log.exception("unhandled error during /api/ask/stream")
            yield _sse("error", {"error_code": "INTERNAL_ERROR", "detail": "internal error"})

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
