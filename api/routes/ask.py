"""Asking: the employee's question in, a cited answer or an escalation out."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import DBDep, GuidelinesDep, Identity, IdentityDep, KBDep, SettingsDep
from api.schemas import AskRequest, AskResponse, Citation
from api.services.policy import guidelines_for, screen_or_refuse
from api.services.queue import enqueue
from db.engine import Database
from db.models import QueryLog
from retrieval.errors import KBError
from retrieval.guidelines import Guidelines
from retrieval.models import Lang
from retrieval.service import KnowledgeBase

router = APIRouter(prefix="/api", tags=["ask"])


@router.post("/ask", response_model=AskResponse)
def ask(
    body: AskRequest,
    identity: IdentityDep,
    kb: KBDep,
    db: DBDep,
    settings: SettingsDep,
    guidelines: GuidelinesDep,
) -> AskResponse:
    """Answer a question from the documents the caller may read, or escalate it to support."""
    if len(body.question) > settings.max_question_chars:
        raise KBError(
            f"question is too long: {len(body.question)} characters"
            f" > {settings.max_question_chars}",
            code="VALIDATION_ERROR",
        )
    return answer_question(
        kb,
        db,
        identity,
        body.question,
        body.lang,
        guidelines=guidelines,
        group_similarity=settings.support.group_similarity,
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
) -> AskResponse:
    """Screen, ask, log the question and its outcome, queue an escalation, and build the API
    response (also used by the CLI).

    The guidelines run first: only the masked question is embedded, searched and stored.
    ``guidelines`` and ``group_similarity`` default to the knowledge base's settings.

    :raises PolicyBlockedError: the question mentions a blocked term (recorded as a hit).
    """
    guidelines = guidelines or guidelines_for(kb.settings.guidelines)
    screened = screen_or_refuse(
        db,
        guidelines,
        question,
        user_id=identity.user_id,
        department=identity.department,
        endpoint="ask",
    )
    result = kb.ask(screened.text, acl=identity.acl, lang=lang)
    query_id = str(uuid.uuid4())
    with db.session() as s:
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
                    }
                    for c in result.citations
                ],
                latency_ms=result.timings_ms.get("total_ms", 0.0),
            )
        )
    if result.status == "escalated" and kb.embedders:
        enqueue(
            db,
            kb.embedders[0],
            query_id,
            "escalated",
            threshold=group_similarity or kb.settings.support.group_similarity,
        )
    return AskResponse(
        query_id=query_id,
        status=result.status,
        answer=result.answer,
        citations=[Citation.model_validate(c, from_attributes=True) for c in result.citations],
        confidence=round(result.confidence, 4),
        lang=result.lang,
        mode=result.mode,
    )
