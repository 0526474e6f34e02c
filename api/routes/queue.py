"""The unanswered queue for support staff, and the staff answers that teach the bot."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from kb.api.deps import AuditDep, DBDep, GuidelinesDep, KBDep, StaffDep
from kb.api.schemas import (
    QueueGroupOut,
    QueueLinkRequest,
    QueuePatch,
    RowId,
    StaffAnswerOut,
    StaffAnswerRequest,
)
from kb.services import memory, staff_answers
from kb.services import queue as service

router = APIRouter(prefix="/api/queue", tags=["queue"])


@router.get("", response_model=list[QueueGroupOut])
def list_queue(
    staff: StaffDep,
    db: DBDep,
    state: Literal["open", "answered", "dismissed", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueueGroupOut]:
    """Groups of unanswered questions (one per need), largest first, with their variants."""
    groups = service.list_groups(
        db, staff.access, state=None if state == "all" else state, limit=limit
    )
    return [QueueGroupOut.model_validate(g) for g in groups]


@router.get("/{group_id}", response_model=QueueGroupOut)
def get_group(group_id: RowId, staff: StaffDep, db: DBDep) -> QueueGroupOut:
    """One group with its variants."""
    return QueueGroupOut.model_validate(service.get_group(db, group_id, staff.access))


@router.patch("/{group_id}", response_model=QueueGroupOut)
def patch_group(
    group_id: RowId, body: QueuePatch, staff: StaffDep, db: DBDep, guidelines: GuidelinesDep
) -> QueueGroupOut:
    """Set a group's state (open, answered, dismissed), assignee or representative question."""
    fields = body.model_fields_set
    group = service.update_group(
        db,
        group_id,
        staff.access,
        state=body.state,
        assignee=body.assignee,
        clear_assignee="assignee" in fields and body.assignee is None,
        representative=guidelines.mask(body.representative) if body.representative else None,
    )
    return QueueGroupOut.model_validate(group)


@router.get("/{group_id}/answer", response_model=StaffAnswerOut)
def get_answer(group_id: RowId, staff: StaffDep, db: DBDep) -> StaffAnswerOut:
    """The answer published for a group."""
    return StaffAnswerOut.model_validate(staff_answers.get(db, group_id, staff.access))


@router.post("/{group_id}/answer", response_model=StaffAnswerOut, status_code=201)
def publish_answer(
    group_id: RowId,
    body: StaffAnswerRequest,
    staff: StaffDep,
    kb: KBDep,
    db: DBDep,
    guidelines: GuidelinesDep,
    audit: AuditDep,
) -> StaffAnswerOut:
    """Publish a staff answer as a Q&A entry, indexed at once; the group becomes answered."""
    result = staff_answers.publish(
        kb,
        db,
        group_id,
        staff.access,
        answer=body.answer,
        user_id=staff.user_id,
        groups=None if body.groups is None else tuple(sorted(set(body.groups))),
        lang=body.lang,
        question=guidelines.mask(body.question) if body.question else None,
    )
    out = StaffAnswerOut.model_validate(result)
    audit(staff, "answer.publish", out.document_id, group_id=group_id, groups=out.groups)
    return out


@router.put("/{group_id}/answer", response_model=StaffAnswerOut)
def edit_answer(
    group_id: RowId,
    body: StaffAnswerRequest,
    staff: StaffDep,
    kb: KBDep,
    db: DBDep,
    guidelines: GuidelinesDep,
    audit: AuditDep,
) -> StaffAnswerOut:
    """Edit a published answer: indexed again as a new version of the same document."""
    result = staff_answers.edit(
        kb,
        db,
        group_id,
        staff.access,
        answer=body.answer,
        user_id=staff.user_id,
        groups=None if body.groups is None else tuple(sorted(set(body.groups))),
        lang=body.lang,
        question=guidelines.mask(body.question) if body.question else None,
    )
    out = StaffAnswerOut.model_validate(result)
    audit(staff, "answer.edit", out.document_id, group_id=group_id, groups=out.groups)
    return out


@router.delete("/{group_id}/answer", status_code=204)
def delete_answer(
    group_id: RowId, staff: StaffDep, kb: KBDep, db: DBDep, audit: AuditDep
) -> Response:
    """Withdraw a published answer from the knowledge base; the group is open again."""
    staff_answers.withdraw(kb, db, group_id, staff.access)
    audit(staff, "answer.withdraw", f"queue_group:{group_id}", group_id=group_id)
    return Response(status_code=204)


@router.post("/{group_id}/link", response_model=QueueGroupOut)
def link_passage(
    group_id: int, body: QueueLinkRequest, staff: StaffDep, kb: KBDep, db: DBDep, audit: AuditDep
) -> QueueGroupOut:
    """Answered by an existing passage: the group's questions become confirmed pairs with it
    (the bot answers the same need from it next time) and the group is answered."""
    group = memory.link_group(
        db,
        kb,
        group_id,
        staff.access,
        document_id=body.document_id,
        chunk_id=body.chunk_id,
        user_id=staff.user_id,
    )
    audit(staff, "queue.link", body.document_id, group_id=group_id, chunk_id=body.chunk_id)
    return QueueGroupOut.model_validate(group)


@router.post("/{group_id}/not-covered", response_model=QueueGroupOut)
def not_covered(
    group_id: int, staff: StaffDep, kb: KBDep, db: DBDep, audit: AuditDep
) -> QueueGroupOut:
    """Not covered by the knowledge base: the group's questions become confirmed gaps (the
    same need asked again is escalated rather than answered from a near miss)."""
    group = memory.mark_not_covered(db, kb, group_id, staff.access, user_id=staff.user_id)
    audit(staff, "queue.not_covered", f"queue_group:{group_id}", group_id=group_id)
    return QueueGroupOut.model_validate(group)
