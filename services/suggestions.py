"""Suggested questions for the widget (issue 6): what people ask, and, where few have asked yet,
what the knowledge base's own Q&A entries ask.

A suggestion is shown to other employees as a question worth asking, so it must lead to a good
answer they may read (issue 25). A **popular** question qualifies when:

- it was answered, and at least ``MIN_USERS`` people asked it (no one's one-off question);
- an asker **confirmed** an answer to it helpful (a thumbs-up), and no answer to it was
  **contradicted** since (a thumbs-down, or the asker sending it to support): only the
  questions asked after the latest contradiction count, so a question whose wrong answer a
  staff answer later fixed can come back once people confirm the new one;
- the viewer may read every document each counted answer cited, and each counted asker's
  groups are among the viewer's (the asker's words may name what their groups' documents are
  about): suggestions stay within the viewer's access groups;
- it does not quote a passage the viewer may not read.

A knowledge base nobody has asked much yet (a new installation, a new department's documents)
has few or none, and a newcomer most needs them then. :func:`suggestions` fills the rest, when
asked to (``starters``), with **entry** questions: the questions of the knowledge base's own Q&A
entries (Q&A sheets' rows, staff answers), written by the people who wrote their answers, in the
viewer's language, from passages the viewer may read, one category at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import DocumentRecord, Feedback, QueryLog, QueueItem
from kb.ingest.parse import SHEET_SUFFIXES
from kb.retrieval.models import AccessFilter, Chunk
from kb.retrieval.service import KnowledgeBase
from kb.services.access import Access, query_sources
from kb.services.identity import Identity
from kb.services.staff_answers import STAFF_SOURCE

RECENT = 2000
"""How many recent answered questions are counted."""
MIN_USERS = 2
"""A question is suggested only once this many people asked it: no one's one-off question."""
STAFF_ANSWERS_READ = 50
"""The newest staff answers looked at for entry questions (each is a document of its own)."""


@dataclass
class _Asked:
    """The asks of one question (normalised text), newest first."""

    text: str
    contradicted_at: datetime | None = None
    asks: list[tuple[datetime, str, bool]] = field(default_factory=list)
    """``(asked at, user, confirmed helpful)`` of the asks the viewer may see."""

    def counted(self) -> list[tuple[datetime, str, bool]]:
        """The asks after the latest contradiction."""
        cut = self.contradicted_at
        return [a for a in self.asks if cut is None or a[0] > cut]


def suggestions(
    db: Database,
    kb: KnowledgeBase,
    identity: Identity,
    *,
    lang: str | None = None,
    limit: int = 5,
    starters: bool = False,
) -> list[dict[str, Any]]:
    """Popular questions (``kind`` "popular", with how many people asked them, already masked)
    and, with ``starters``, entry questions (``kind`` "entry") after them up to ``limit``."""
    out: list[dict[str, Any]] = []
    restricted: tuple[str, ...] | None = None
    for question, users in popular_questions(db, identity, lang=lang):
        if len(out) >= limit:
            break
        if restricted is None:
            # From the index, not the catalog: a Q&A sheet restricts single rows. Only the
            # groups the viewer is not in: their passages must not be repeated to them.
            viewer = set(identity.groups)
            restricted = tuple(sorted(set(kb.store.access_groups()) - viewer))
        # Someone without access may have typed (pasted) a restricted passage (issue 8).
        if restricted and _quotes_restricted(kb, question, restricted):
            continue
        out.append({"question": question, "users": users, "kind": "popular"})
    if starters and len(out) < limit:
        taken = {_key(s["question"]) for s in out}
        # ``limit`` of them: as many as are wanted, and one for each popular question above.
        for question in entry_questions(db, kb, identity.acl, lang=lang, limit=limit):
            if len(out) >= limit:
                break
            if _key(question) not in taken:
                taken.add(_key(question))
                out.append({"question": question, "kind": "entry"})
    return out


def entry_questions(
    db: Database,
    kb: KnowledgeBase,
    acl: AccessFilter,
    *,
    lang: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """The questions of the knowledge base's Q&A entries that ``acl`` may read, in ``lang``
    (the entry's own language), in the order they are suggested: the sheets' categories in
    turn (the first question of each, then the second, ...; sheets by path), the newest staff
    answers taking a turn as one more category. Only a document's current, indexed version
    counts. With ``limit``, the first ``limit``: the sheets are read only until they give that
    many categories (each later question comes after the first of each of those), and the
    staff answers (a document each) only until there are that many of them."""
    with db.session() as s:
        sheets = s.execute(
            select(DocumentRecord.id, DocumentRecord.version)
            .where(
                DocumentRecord.status == "indexed",
                DocumentRecord.suffix.in_(SHEET_SUFFIXES),
                DocumentRecord.source != STAFF_SOURCE,
            )
            .order_by(DocumentRecord.source_path, DocumentRecord.id)
        ).all()
        staff = s.execute(
            select(DocumentRecord.id, DocumentRecord.version)
            .where(DocumentRecord.status == "indexed", DocumentRecord.source == STAFF_SOURCE)
            .order_by(DocumentRecord.created_at.desc(), DocumentRecord.id)
            .limit(STAFF_ANSWERS_READ)
        ).all()
    categories: dict[tuple[str, str], list[str]] = {}
    for doc_id, version in sheets:
        if limit is not None and len(categories) >= limit:
            break  # the first ``limit`` are the first question of each category read
        for c in _entries(kb, doc_id, version, acl, lang):
            category = c.location.heading_path[0] if c.location.heading_path else ""
            categories.setdefault((doc_id, category), []).append(c.question or "")
    answers: list[str] = []
    for doc_id, version in staff:
        if limit is not None and len(answers) + len(categories) >= limit:
            break
        answers += [c.question or "" for c in _entries(kb, doc_id, version, acl, lang)]
    queues = [*categories.values(), answers]
    out: list[str] = []
    for turn in range(max(len(q) for q in queues)):
        out += [q[turn] for q in queues if turn < len(q)]
    return out[:limit]


def _entries(
    kb: KnowledgeBase, document_id: str, version: int, acl: AccessFilter, lang: str | None
) -> list[Chunk]:
    """The Q&A entries (chunks) of one document's ``version`` that ``acl`` may read, in ``lang``."""
    return [
        p.chunk
        for p in kb.store.document_chunks(document_id)
        if p.chunk.kind == "qa"
        and p.chunk.question
        and p.chunk.version == version
        and acl.permits(p.chunk.groups)
        and (lang is None or p.chunk.lang == lang)
    ]


def _key(question: str) -> str:
    """A question as two askings of it compare: spaces and case aside."""
    return " ".join(question.split()).lower()


def popular_questions(
    db: Database, identity: Identity, *, lang: str | None = None
) -> list[tuple[str, int]]:
    """``(question, people who asked it)`` that qualify for ``identity`` (module docstring),
    most asked first."""
    # The viewer as an employee: an admin's suggestions are those of their own groups.
    viewer = Access(
        user_id=identity.user_id,
        groups=frozenset(identity.groups),
        roles=frozenset(),
        via="suggestions",
    )
    with db.session() as s:
        rows = s.execute(
            select(
                QueryLog.id,
                QueryLog.question,
                QueryLog.user_id,
                QueryLog.groups,
                QueryLog.lang,
                QueryLog.citations,
                QueryLog.created_at,
            )
            .where(QueryLog.status == "answered")
            .order_by(QueryLog.created_at.desc())
            .limit(RECENT)
        ).all()
        ids = [r[0] for r in rows]
        verdicts: dict[str, bool] = {}
        queued: set[str] = set()
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            verdicts.update(
                s.execute(
                    select(Feedback.query_id, Feedback.helpful).where(Feedback.query_id.in_(part))
                )
                .tuples()
                .all()
            )
            queued.update(
                s.execute(select(QueueItem.query_id).where(QueueItem.query_id.in_(part))).scalars()
            )
    sources = query_sources(db, ((r[0], r[5]) for r in rows))
    asked: dict[str, _Asked] = {}
    for qid, question, user_id, groups, qlang, _cites, at in rows:
        entry = asked.setdefault(_key(question), _Asked(" ".join(question.split())))
        # A contradiction counts whoever asked: a wrong answer is wrong for everyone.
        if verdicts.get(qid) is False or qid in queued:
            if entry.contradicted_at is None or at > entry.contradicted_at:
                entry.contradicted_at = at
            continue
        if (lang and qlang != lang) or "[" in question:  # masked: someone's personal data
            continue
        if not set(groups or ()) <= viewer.groups or not viewer.reads_all(sources[qid]):
            continue
        entry.asks.append((at, user_id, verdicts.get(qid) is True))
    out: list[tuple[str, int]] = []
    for entry in asked.values():
        counted = entry.counted()
        users = {user for _at, user, _ok in counted}
        if len(users) >= MIN_USERS and any(ok for _at, _user, ok in counted):
            out.append((entry.text, len(users)))
    out.sort(key=lambda x: (-x[1], x[0]))
    return out


def _grams(text: str) -> set[str]:
    flat = " ".join(text.lower().split())
    return {flat[i : i + 3] for i in range(max(0, len(flat) - 2))}


def _quotes_restricted(kb: KnowledgeBase, question: str, groups: tuple[str, ...]) -> bool:
    """Whether ``question`` mostly repeats a restricted passage (character trigrams)."""
    passages, _ = kb.search(question, acl=AccessFilter(groups=groups), top_k=5)
    wanted = _grams(question)
    if not wanted:
        return False
    for p in passages:
        if p.chunk.groups and len(wanted & _grams(p.chunk.text)) >= 0.6 * len(wanted):
            return True
    return False
