"""Feedback and escalation: the asker's verdict on an answer, or "I need a person"."""

from __future__ import annotations

from fastapi import APIRouter

from kb.api.deps import DBDep, EmployeeDep, GuidelinesDep, KBDep, SettingsDep
from kb.api.schemas import EscalateRequest, EscalateResponse, FeedbackRequest, FeedbackResponse
from kb.db.engine import Database
from kb.retrieval.guidelines import Guidelines
from kb.services import feedback as service
from kb.services import notifications
from kb.services.identity import Identity
from kb.services.policy import screen_or_refuse
from kb.services.synonyms import synonym_table

router = APIRouter(prefix="/api", tags=["feedback"])


def _masked(
    db: Database, guidelines: Guidelines, identity: Identity, text: str | None, endpoint: str
) -> str | None:
    if not text or not text.strip():
        return None
    return screen_or_refuse(
        db,
        guidelines,
        text.strip(),
        user_id=identity.user_id,
        department=identity.department,
        endpoint=endpoint,
    ).text


@router.post("/feedback", response_model=FeedbackResponse)
def feedback(
    body: FeedbackRequest,
    identity: EmployeeDep,
    kb: KBDep,
    db: DBDep,
    settings: SettingsDep,
    guidelines: GuidelinesDep,
) -> FeedbackResponse:
    """Rate one of your answers; a thumbs-down sends the question to support."""
    comment = _masked(db, guidelines, identity, body.comment, "feedback")
    result = service.give_feedback(
        db,
        kb.embedders[0],
        query_id=body.query_id,
        user_id=identity.user_id,
        helpful=body.helpful,
        comment=comment,
        citation=body.citation,
        threshold=settings.support.group_similarity,
        grouping={"synonyms": synonym_table(db, kb.sparse), "encoder": kb.sparse},
        kb=kb,
    )
    return FeedbackResponse.model_validate(result)


@router.post("/escalate", response_model=EscalateResponse)
def escalate(
    body: EscalateRequest,
    identity: EmployeeDep,
    kb: KBDep,
    db: DBDep,
    settings: SettingsDep,
    guidelines: GuidelinesDep,
) -> EscalateResponse:
    """This did not help, I need a person: put one of your questions in the support queue."""
    note = _masked(db, guidelines, identity, body.note, "escalate")
    result = service.escalate(
        db,
        kb.embedders[0],
        query_id=body.query_id,
        user_id=identity.user_id,
        note=note,
        threshold=settings.support.group_similarity,
        grouping={"synonyms": synonym_table(db, kb.sparse), "encoder": kb.sparse},
    )
    notifications.on_escalation(db, settings, body.query_id, result["group_id"], "user_escalation")
    return EscalateResponse.model_validate(result)
