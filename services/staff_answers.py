"""Staff answers teach the bot: a queue group's answer becomes a Q&A document, indexed at once.

Each answer is a managed document of source ``staff-answers`` (catalog record, versions, access
groups) holding one Q&A entry: the group's question (see :func:`entry_question`) and the staff
answer. It is written through the one write path into the store,
:meth:`ingest.indexing.Indexer.index_record`, under the knowledge base's write lock, so an
answer published during an ingestion run neither undoes it nor is undone by it (issue 26); the
next question of that need retrieves and cites it. Editing writes a new version; deleting removes it
from the index. There is no file on disk: ``suffix`` is ``.qa`` and ``stored_path`` empty, and
the source route renders the entry from its chunks.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import DocumentRecord, DocumentVersion, QueryLog, QueueGroup, QueueItem, utcnow
from kb.ingest.indexing import Indexer, RecordDoc
from kb.ingest.runs import IngestReport
from kb.retrieval.errors import IngestError, KBError, NotFoundError
from kb.retrieval.service import KnowledgeBase
from kb.services import memory
from kb.services.access import Access, Source
from kb.services.queue import check_group_write, get_group

log = logging.getLogger(__name__)

STAFF_SOURCE = "staff-answers"
STAFF_SUFFIX = ".qa"


def _index(
    kb: KnowledgeBase,
    db: Database,
    document_id: str,
    question: str,
    answer: str,
    groups: tuple[str, ...],
    user_id: str,
) -> DocumentRecord:
    record = RecordDoc(
        document_id=document_id, title=question, text=answer, kind="qa", groups=groups
    )
    indexer = Indexer(kb, db)
    report = IngestReport(run_id=str(uuid.uuid4()), source=STAFF_SOURCE)
    # One write unit: the entry, and the catalog fields that say it is a staff answer.
    with indexer.lock:
        result = indexer.index_record(
            record, source=STAFF_SOURCE, created_by=user_id, report=report
        )
        if result.outcome == "failed":
            raise IngestError(f"the answer could not be indexed: {result.error}")
        kb.forget_language_direction()
        return _mark_staff_answer(db, document_id, user_id)


def _mark_staff_answer(db: Database, document_id: str, user_id: str) -> DocumentRecord:
    with db.session() as s:
        rec = s.get(DocumentRecord, document_id)
        assert rec is not None
        rec.suffix = STAFF_SUFFIX
        rec.stored_path = ""
        version = s.execute(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == document_id)
            .order_by(DocumentVersion.version.desc())
            .limit(1)
        ).scalar()
        if version is not None:
            version.created_by = user_id
        return rec


def _teach(kb: KnowledgeBase, db: Database, group_id: int, document_id: str, user_id: str) -> None:
    """The group's questions become staff-confirmed pairs with the answer (issue 22)."""
    chunks = [p.chunk for p in kb.store.document_chunks(document_id)]
    try:
        memory.confirm_staff_answer(
            db, kb, group_id, sorted(chunks, key=lambda c: c.index), user_id
        )
    except KBError:
        # The answer is published and cited from now on; only its memory entries are missing.
        log.exception("queue group %s: the staff answer's questions were not remembered", group_id)


def entry_question(db: Database, group: QueueGroup) -> str:
    """The Q&A entry's question: the representative question, then the group's first question
    in each other language, joined by `` / ``.

    An answer in one language is otherwise out of reach of askers in the other: measured on
    the sample corpus, a Japanese variant of an English-only entry scored 0.32 (escalated),
    with the Japanese variant in the entry 0.95 (answered).
    """
    with db.session() as s:
        rows = s.execute(
            select(QueryLog.question, QueryLog.lang)
            .join(QueueItem, QueueItem.query_id == QueryLog.id)
            .where(QueueItem.group_id == group.id)
            .order_by(QueueItem.created_at, QueueItem.id)
        ).all()
    parts, langs = [group.representative], {group.lang}
    for question, lang in rows:
        if lang not in langs:
            langs.add(lang)
            parts.append(question)
    return " / ".join(parts)


def _view(group: QueueGroup, rec: DocumentRecord) -> dict[str, Any]:
    return {
        "group_id": group.id,
        "document_id": rec.id,
        "question": rec.title,
        "answer": group.answer,
        "lang": group.lang,
        "groups": list(rec.groups),
        "version": rec.version,
        "answered_by": group.answered_by,
        "answered_at": group.answered_at.isoformat() if group.answered_at else None,
        "source_url": f"/api/documents/{rec.id}/source",
    }


def _group(db: Database, group_id: int) -> QueueGroup:
    with db.session() as s:
        group = s.get(QueueGroup, group_id)
    if group is None:
        raise NotFoundError(f"no queue group {group_id}")
    return group


def _inherited(db: Database, group_id: int, access: Access) -> list[Source]:
    """The sources of the questions an answer is written for, once the caller may change the
    group (:func:`services.queue.check_group_write`)."""
    return [src for sources in check_group_write(db, group_id, access) for src in sources]


def _union(sources: list[Source]) -> tuple[str, ...]:
    return tuple(sorted({g for src in sources for g in src}))


def _check_answer_write(access: Access, rec: DocumentRecord | None, group_id: int) -> None:
    """The published answer is a document: changing it needs membership of all its groups."""
    if rec is None:
        return
    if not access.reads(rec.groups):
        raise NotFoundError(f"queue group {group_id} has no answer")
    if not access.member_of_all(rec.groups):
        raise KBError(
            f"the answer of queue group {group_id} is restricted to {', '.join(rec.groups)}: "
            "changing it needs membership of every one of them",
            code="FORBIDDEN",
        )


def publish(
    kb: KnowledgeBase,
    db: Database,
    group_id: int,
    access: Access,
    *,
    answer: str,
    user_id: str,
    groups: tuple[str, ...] | None = None,
    lang: str | None = None,
    question: str | None = None,
) -> dict[str, Any]:
    """Publish a group's first answer and mark the group answered.

    :param groups: who may read the entry; ``None``: the union of the groups of the passages
        its questions were answered from (issue 19), public when they were all public.
    :param question: the entry's question (masked); defaults to :func:`entry_question`.
    :raises NotFoundError: no such group, or the caller may read none of its questions.
    :raises KBError: ``CONFLICT`` when the group already has an answer (edit it with PUT);
        ``FORBIDDEN`` when some of its questions are hidden from the caller, or ``groups``
        publish it more widely than its sources and the caller is not in their groups.
    """
    inherited = _inherited(db, group_id, access)
    groups = _union(inherited) if groups is None else groups
    access.check_answer_groups(inherited, groups)
    group = _group(db, group_id)
    if group.answer_document_id:
        raise KBError(
            f"queue group {group_id} already has an answer ({group.answer_document_id}):"
            " edit it with PUT",
            code="CONFLICT",
        )
    document_id = f"qa_{uuid.uuid4().hex[:20]}"
    title = question or entry_question(db, group)
    rec = _index(kb, db, document_id, title, answer, groups, user_id)
    _teach(kb, db, group_id, document_id, user_id)
    with db.session() as s:
        g = s.get(QueueGroup, group_id)
        assert g is not None
        g.answer_document_id = document_id
        g.answer = answer
        g.lang = lang or g.lang
        g.answered_by = user_id
        g.answered_at = g.updated_at = utcnow()
        g.state = "answered"
        return _view(g, rec)


def edit(
    kb: KnowledgeBase,
    db: Database,
    group_id: int,
    access: Access,
    *,
    answer: str,
    user_id: str,
    groups: tuple[str, ...] | None = None,
    lang: str | None = None,
    question: str | None = None,
) -> dict[str, Any]:
    """Re-index a group's answer as a new version (groups kept unless given).

    :raises NotFoundError: no such group, or it has no answer (that the caller may read).
    :raises KBError: ``FORBIDDEN`` as for :func:`publish`, or when the caller is not in every
        group of the published answer.
    """
    inherited = _inherited(db, group_id, access)
    group = _group(db, group_id)
    document_id = group.answer_document_id
    if not document_id:
        raise NotFoundError(f"queue group {group_id} has no answer")
    with db.session() as s:
        current = s.get(DocumentRecord, document_id)
        old_groups = tuple(current.groups) if current else ()
        old_title = current.title if current else group.representative
    _check_answer_write(access, current, group_id)
    access.check_answer_groups([*inherited, old_groups], old_groups if groups is None else groups)
    title = question or old_title
    rec = _index(
        kb, db, document_id, title, answer, old_groups if groups is None else groups, user_id
    )
    _teach(kb, db, group_id, document_id, user_id)
    with db.session() as s:
        g = s.get(QueueGroup, group_id)
        assert g is not None
        g.answer = answer
        g.lang = lang or g.lang
        g.answered_by = user_id
        g.answered_at = g.updated_at = utcnow()
        g.state = "answered"
        return _view(g, rec)


def get(db: Database, group_id: int, access: Access) -> dict[str, Any]:
    """The published answer of a group, when the caller may read it and every question it
    was written for.

    :raises NotFoundError: no such group, or it has no answer (that the caller may read).
    """
    view = get_group(db, group_id, access)
    group = _group(db, group_id)
    if not group.answer_document_id:
        raise NotFoundError(f"queue group {group_id} has no answer")
    with db.session() as s:
        rec = s.get(DocumentRecord, group.answer_document_id)
    if rec is None or view["hidden"] or not access.reads(rec.groups):
        raise NotFoundError(f"queue group {group_id} has no answer")
    return _view(group, rec)


def withdraw(kb: KnowledgeBase, db: Database, group_id: int, access: Access) -> None:
    """Delete a group's answer from the index and the catalog; the group is open again.

    :raises NotFoundError: no such group, or it has no answer (that the caller may read).
    :raises KBError: ``FORBIDDEN`` as for :func:`edit`.
    """
    check_group_write(db, group_id, access)
    group = _group(db, group_id)
    if not group.answer_document_id:
        raise NotFoundError(f"queue group {group_id} has no answer")
    with db.session() as s:
        current = s.get(DocumentRecord, group.answer_document_id)
    _check_answer_write(access, current, group_id)
    Indexer(kb, db).delete_document(group.answer_document_id)
    memory.withdraw_document(db, group.answer_document_id, "the staff answer was withdrawn")
    with db.session() as s:
        g = s.get(QueueGroup, group_id)
        assert g is not None
        g.answer_document_id = None
        g.answer = None
        g.answered_at = None
        g.answered_by = None
        g.state = "open"
        g.updated_at = utcnow()
