"""Asking: the employee's question in, a cited answer or an escalation out."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import DBDep, Identity, IdentityDep, KBDep, SettingsDep
from api.schemas import AskRequest, AskResponse, Citation
from db.engine import Database
from db.models import QueryLog
from retrieval.errors import KBError
from retrieval.models import Lang
from retrieval.service import KnowledgeBase

router = APIRouter(prefix="/api", tags=["ask"])


@router.post("/ask", response_model=AskResponse)
def ask(
    body: AskRequest, identity: IdentityDep, kb: KBDep, db: DBDep, settings: SettingsDep
) -> AskResponse:
    """Answer a question from the documents the caller may read, or escalate it to support."""
    if len(body.question) > settings.max_question_chars:
        raise KBError(
            f"question is too long: {len(body.question)} characters"
            f" > {settings.max_question_chars}",
            code="VALIDATION_ERROR",
        )
    return answer_question(kb, db, identity, body.question, body.lang)


def answer_question(
    kb: KnowledgeBase, db: Database, identity: Identity, question: str, lang: Lang | None
) -> AskResponse:
    """Ask, log the question and its outcome, and build the API response (also used by the CLI)."""
    result = kb.ask(question, acl=identity.acl, lang=lang)
    query_id = str(uuid.uuid4())
    with db.session() as s:
        s.add(
            QueryLog(
                id=query_id,
                question=question,
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
    return AskResponse(
        query_id=query_id,
        status=result.status,
        answer=result.answer,
        citations=[Citation.model_validate(c, from_attributes=True) for c in result.citations],
        confidence=round(result.confidence, 4),
        lang=result.lang,
        mode=result.mode,
    )
