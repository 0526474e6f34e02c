"""Relational records: the document catalog, its version history, ingestion runs and the query log.

SQLite (WAL) in ``KB_DATA_DIR`` by default; PostgreSQL through ``KB_DATABASE_URL``. The schema is
owned by the Alembic migrations in ``db/migrations``; these classes must match them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the records use."""
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """A stored time as UTC-aware: SQLite hands back naive datetimes for timezone-aware columns."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DocumentRecord(Base):
    """One source document as the catalog knows it; ``hash`` is the content hash of the file."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(512), index=True)
    """The ingested root folder (absolute) or ``upload`` / ``staff-answers``."""
    source_path: Mapped[str] = mapped_column(String(1024))
    """Path relative to the source root, POSIX separators; shown in citations."""
    stored_path: Mapped[str] = mapped_column(String(2048))
    """Where the original bytes can be read to serve ``/source``."""
    title: Mapped[str] = mapped_column(String(512), default="")
    suffix: Mapped[str] = mapped_column(String(16), default="")
    lang: Mapped[str] = mapped_column(String(8), default="en")
    hash: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """``indexed``; ``failed`` (never indexed); ``stale`` (update failed, old version serves)."""
    last_ingested: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Instruction-like text found at ingestion (issue 7): ``[{kind, location, excerpt}]``."""
    analyzer: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """The BM25 term analyzer (``retrieval.sparse.ANALYZER_VERSION``) its points were encoded
    with; an older one is re-encoded by :meth:`ingest.indexing.Indexer.refresh_terms`."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DocumentVersion(Base):
    """Each indexed version of a document: what changed, when and by whom."""

    __tablename__ = "document_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128), default="system")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IngestRun(Base):
    """One ingestion run and its report (per-file outcomes in ``report``)."""

    __tablename__ = "ingest_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class QueryLog(Base):
    """One question asked and what the bot did with it."""

    __tablename__ = "query_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(String(128), default="anonymous", index=True)
    department: Mapped[str | None] = mapped_column(String(128), nullable=True)
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    lang: Mapped[str] = mapped_column(String(8), default="en")
    status: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16), default="extractive")
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    citations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """[{n, document_id, version, chunk_id}]"""
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    redactions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Placeholder kinds masked out of ``question`` (``EMAIL``, ``PHONE``, ...)."""
    faithfulness: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Share of the answer's sentences supported by the passage they cite (None: not checked)."""
    fallback_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Why a generated answer fell back to the extractive one (``timeout``, ``error``, ...)."""
    conversation_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    """The conversation this question is a turn of (issue 23)."""
    rewritten: Mapped[str | None] = mapped_column(Text, nullable=True)
    """What was searched for a follow-up (masked): the question resolved with earlier turns;
    ``None`` when the question was searched as asked."""
    rewrite_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """How a follow-up was resolved: ``standalone``, ``context`` (deterministic) or ``llm``."""
    memory: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    """What the question memory contributed (issue 22): ``[{kind, entries, chunk_id, sim, p,
    agreed, lifted}]``; ``None`` when it held nothing close."""


class Feedback(Base):
    """An asker's verdict on one answer (one per query; a new verdict replaces the old)."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("query_id", name="uq_feedback_query_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("query_log.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(128), default="anonymous")
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Masked like the question."""
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class QueueGroup(Base):
    """One need in the unanswered queue: questions asked in different words or languages."""

    __tablename__ = "queue_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    """``open``, ``answered``, ``dismissed``."""
    assignee: Mapped[str | None] = mapped_column(String(128), nullable=True)
    representative: Mapped[str] = mapped_column(Text)
    """The question that stands for the group (masked); the title of its staff answer."""
    lang: Mapped[str] = mapped_column(String(8), default="en")
    centroid: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Mean of the members' unit query vectors (first embedder), for grouping."""
    members: Mapped[int] = mapped_column(Integer, default=0)
    """Items ever added (the centroid's weight); the live count comes from ``queue_items``."""
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answer_document_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The staff answer published for this group (a ``staff-answers`` document)."""
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """How staff resolved it (issue 22): ``staff_answer``, ``linked`` (answered by an existing
    passage, ``linked_chunk_id``) or ``not_covered``."""
    linked_document_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    linked_chunk_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class QueueItem(Base):
    """One logged question in the queue, with why it is there (one item per query)."""

    __tablename__ = "queue_items"
    __table_args__ = (UniqueConstraint("query_id", name="uq_queue_items_query_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("queue_groups.id", ondelete="CASCADE"), index=True
    )
    query_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("query_log.id", ondelete="CASCADE")
    )
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Any of ``escalated`` (the bot escalated), ``thumbs_down``, ``user_escalation``."""
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    similarity: Mapped[float] = mapped_column(Float, default=1.0)
    """Cosine to the group's centroid when the item joined."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PolicyHit(Base):
    """A request refused by the guidelines. Holds neither the blocked term nor personal data."""

    __tablename__ = "policy_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), default="anonymous", index=True)
    department: Mapped[str | None] = mapped_column(String(128), nullable=True)
    rule: Mapped[str] = mapped_column(String(32), default="blocked_term")
    terms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Indexes into the configured blocked-term list."""
    endpoint: Mapped[str] = mapped_column(String(32), default="ask")
    text: Mapped[str] = mapped_column(Text, default="")
    """The request text, masked, with the blocked terms replaced by ``[BLOCKED]``."""
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class User(Base):
    """A local user (issue 8): the embedded default's accounts, managed with ``kb users``."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    department: Mapped[str | None] = mapped_column(String(128), nullable=True)
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A local API token; only its SHA-256 is stored (the token is shown once, at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    """The first characters of the token, to recognise it in listings."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """One security-relevant action. Append-only: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(512), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Conversation(Base):
    """A conversation: the questions one user asked in a row (turns are query-log rows)."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class SynonymSet(Base):
    """A set of equivalent terms kept by staff (abbreviations, internal names)."""

    __tablename__ = "synonym_sets"
    __table_args__ = (UniqueConstraint("key", name="uq_synonym_sets_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    terms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    key: Mapped[str] = mapped_column(String(1024))
    """The normalized terms, sorted and joined: two sets with the same terms are one set."""
    created_by: Mapped[str] = mapped_column(String(128), default="system")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Notification(Base):
    """One delivery of an escalation to a webhook or a mailbox (the delivery log)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_id: Mapped[str] = mapped_column(String(36), index=True)
    event: Mapped[str] = mapped_column(String(32), default="question.escalated")
    channel: Mapped[str] = mapped_column(String(16))
    """``webhook`` or ``email``."""
    target: Mapped[str] = mapped_column(String(512))
    """The webhook URL (without credentials) or the e-mail address."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """What is sent: masked text only."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """``pending``, ``sending``, ``delivered``, ``failed`` (gave up after the retries)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class MemoryEntry(Base):
    """A confirmed question (issue 22): the passage that answered it (a pair), or the mark that
    the knowledge base does not cover it (a gap). Matched against new questions by
    :mod:`retrieval.memory`."""

    __tablename__ = "memory_entries"
    __table_args__ = (Index("ix_memory_entries_state", "state", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    """``pair`` or ``gap``."""
    how: Mapped[str] = mapped_column(String(16))
    """``helpful`` (the asker's thumbs-up), ``staff_link``, ``staff_answer``, ``not_covered``."""
    query_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    question: Mapped[str] = mapped_column(Text)
    """Masked, as asked (or as resolved, for a follow-up). Never shown to askers."""
    lang: Mapped[str] = mapped_column(String(8), default="en")
    embedder: Mapped[str] = mapped_column(String(64))
    vector: Mapped[list[Any]] = mapped_column(JSON, default=list)
    terms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    document_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    chunk_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    text_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The passage's content hash: finds it again when its document is re-ingested."""
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """The passage's access groups."""
    asker_groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """The sources of the question (its cited passages' groups): who may read its text."""
    retrieved: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Until 2026-12-07, the documents the search found for the question when it was
    confirmed (the match model read where a match's document ranked); no longer written."""
    asker_id: Mapped[str] = mapped_column(String(128), default="anonymous")
    confirmed_by: Mapped[str] = mapped_column(String(128))
    staff: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="active")
    """``active``; ``demoted`` (a later thumbs-down or staff correction), ``stale`` (its passage
    changed or was deleted), ``removed`` (by staff)."""
    negatives: Mapped[int] = mapped_column(Integer, default=0)
    """Thumbs-down on answers this entry chose."""
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    citation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The source the asker named as the one that answered (its ``[n]``, "This answered it");
    ``None``: a plain thumbs-up, which confirms the answer's first cited passage, or staff."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
