"""Staff answers teach the bot: a queue group's answer becomes a Q&A document, indexed at once.

Each answer is a managed document of source ``staff-answers`` (catalog record, versions, access
groups) holding one Q&A entry: the group's question (see :func:`entry_question`) and the staff
answer. It is indexed through :meth:`ingest.pipeline.Ingestor.index_records`, so the next
question of that need retrieves and cites it. Editing writes a new version; deleting removes it
from the index. There is no file on disk: ``suffix`` is ``.qa`` and ``stored_path`` empty, and
the source route renders the entry from its chunks.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from db.engine import Database
from db.models import DocumentRecord, DocumentVersion, QueryLog, QueueGroup, QueueItem, utcnow
from ingest.pipeline import Ingestor, RecordDoc
from retrieval.errors import IngestError, KBError, NotFoundError
from retrieval.service import KnowledgeBase

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
    report = Ingestor(kb, db).index_records([record], source=STAFF_SOURCE)
    failed = [f for f in report.files if f.outcome == "failed"]
    if failed:
        raise IngestError(f"the answer could not be indexed: {failed[0].error}")
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


def publish(
    kb: KnowledgeBase,
    db: Database,
    group_id: int,
    *,
    answer: str,
    user_id: str,
    groups: tuple[str, ...] = (),
    lang: str | None = None,
    question: str | None = None,
) -> dict[str, Any]:
    """Publish a group's first answer and mark the group answered.

    :param question: the entry's question (masked); defaults to :func:`entry_question`.
    :raises NotFoundError: no such group.
    :raises KBError: ``CONFLICT`` when the group already has an answer (edit it with PUT).
    """
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
    *,
    answer: str,
    user_id: str,
    groups: tuple[str, ...] | None = None,
    lang: str | None = None,
    question: str | None = None,
) -> dict[str, Any]:
    """Re-index a group's answer as a new version (groups kept unless given).

    :raises NotFoundError: no such group, or it has no answer.
    """
    group = _group(db, group_id)
    document_id = group.answer_document_id
    if not document_id:
        raise NotFoundError(f"queue group {group_id} has no answer")
    with db.session() as s:
        current = s.get(DocumentRecord, document_id)
        old_groups = tuple(current.groups) if current else ()
        old_title = current.title if current else group.representative
    title = question or old_title
    rec = _index(
        kb, db, document_id, title, answer, old_groups if groups is None else groups, user_id
    )
    with db.session() as s:
        g = s.get(QueueGroup, group_id)
        assert g is not None
        g.answer = answer
        g.lang = lang or g.lang
        g.answered_by = user_id
        g.answered_at = g.updated_at = utcnow()
        g.state = "answered"
        return _view(g, rec)


def get(db: Database, group_id: int) -> dict[str, Any]:
    """The published answer of a group.

    :raises NotFoundError: no such group, or it has no answer.
    """
    group = _group(db, group_id)
    if not group.answer_document_id:
        raise NotFoundError(f"queue group {group_id} has no answer")
    with db.session() as s:
        rec = s.get(DocumentRecord, group.answer_document_id)
    if rec is None:
        raise NotFoundError(f"queue group {group_id} has no answer")
    return _view(group, rec)


def withdraw(kb: KnowledgeBase, db: Database, group_id: int) -> None:
    """Delete a group's answer from the index and the catalog; the group is open again.

    :raises NotFoundError: no such group, or it has no answer.
    """
    group = _group(db, group_id)
    if not group.answer_document_id:
        raise NotFoundError(f"queue group {group_id} has no answer")
    Ingestor(kb, db).delete_document(group.answer_document_id)
    with db.session() as s:
        g = s.get(QueueGroup, group_id)
        assert g is not None
        g.answer_document_id = None
        g.answer = None
        g.answered_at = None
        g.answered_by = None
        g.state = "open"
        g.updated_at = utcnow()
