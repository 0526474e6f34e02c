"""Confirmed answers and gaps (issue 22): how feedback and staff work become question memory.

A question and the passage that answered it become a **pair** when the asker marks the answer
helpful, when staff resolve its queue group by linking it to an existing passage, or when staff
publish an answer for its group. A question staff mark "not covered" becomes a **gap**. Entries
are matched against new questions by :mod:`retrieval.memory`; this module writes, demotes,
re-validates and lists them:

- a thumbs-down on an answer a memory entry chose demotes the asker-confirmed entries behind it
  (a staff-confirmed one after two); a staff correction (the question linked elsewhere, or
  marked not covered) demotes them whoever confirmed them;
- an entry whose passage changed or was deleted is marked ``stale`` when a question next meets
  it; one whose passage is unchanged in a new version of its document follows it;
- the text of a confirmed question is shown only to staff who may read its sources, and only
  in the console; askers never see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import MemoryEntry as EntryRow
from kb.db.models import QueryLog, QueueGroup, QueueItem, utcnow
from kb.retrieval.errors import KBError, NotFoundError
from kb.retrieval.models import Chunk
from kb.retrieval.service import KnowledgeBase
from kb.services.access import Access, Source, query_sources
from kb.services.queue import check_group_write, get_group

How = Literal["helpful", "staff_link", "staff_answer", "not_covered"]
STAFF_NEGATIVES = 2
"""Thumbs-down that demote a staff-confirmed entry (one asker does not outweigh staff)."""


# -- writing ----------------------------------------------------------------------------------


def _question_text(query: QueryLog) -> str:
    """What the question searched: a follow-up's resolved form, else the question (masked)."""
    return query.rewritten or query.question


def _new_entry(
    kb: KnowledgeBase,
    query: QueryLog,
    sources: Sequence[Source],
    *,
    kind: Literal["pair", "gap"],
    how: How,
    confirmed_by: str,
    staff: bool,
    chunk: Chunk | None = None,
) -> EntryRow:
    text = _question_text(query)
    now = utcnow()
    return EntryRow(
        kind=kind,
        how=how,
        query_id=query.id,
        question=text,
        lang=query.lang,
        embedder=kb.embedders[0].name,
        vector=[round(x, 6) for x in kb.query_vector(text)],
        terms=sorted(set(kb.sparse.terms(text))),
        document_id=chunk.document_id if chunk else None,
        chunk_id=chunk.point_id if chunk else None,
        version=chunk.version if chunk else None,
        text_hash=chunk.content_hash if chunk else None,
        groups=list(chunk.groups) if chunk else [],
        asker_groups=sorted(query.groups or []),
        sources=[list(s) for s in sources],
        asker_id=query.user_id,
        confirmed_by=confirmed_by,
        staff=staff,
        state="active",
        negatives=0,
        created_at=now,
        updated_at=now,
    )


def find_chunk(kb: KnowledgeBase, document_id: str, chunk_id: str) -> Chunk | None:
    """The passage ``chunk_id`` of ``document_id`` as the store holds it now."""
    for passage in kb.store.document_chunks(document_id):
        if passage.chunk.point_id == chunk_id:
            return passage.chunk
    return None


def confirm_helpful(
    db: Database, kb: KnowledgeBase, query_id: str, user_id: str, citation: int | None = None
) -> int | None:
    """The asker found the answer helpful: its question and the passage that answered it become
    a pair, one per question. The passage is the citation the asker named (``[n]``), else the
    first cited. A repeated thumbs-up changes nothing unless it names another passage, which
    then replaces the asker's pair. :returns: the entry id, or ``None`` when the passage no
    longer exists.

    :raises KBError: ``citation`` is not one of the answer's (code ``VALIDATION_ERROR``).
    """
    with db.session() as s:
        query = s.get(QueryLog, query_id)
        if query is None or query.status != "answered" or not query.citations:
            return None
        chosen = cited_passage(query, citation)
        existing = s.execute(
            select(EntryRow).where(
                EntryRow.query_id == query_id, EntryRow.how == "helpful", EntryRow.state == "active"
            )
        ).scalar()
        # A plain thumbs-up again keeps the passage the asker named before.
        if existing is not None and (citation is None or existing.chunk_id == chosen["chunk_id"]):
            return int(existing.id)
    chunk = find_chunk(kb, str(chosen["document_id"]), str(chosen["chunk_id"]))
    if chunk is None or not kb.embedders:
        return None
    sources = query_sources(db, [(query.id, query.citations)])[query.id]
    row = _new_entry(
        kb, query, sources, kind="pair", how="helpful", confirmed_by=user_id, staff=False,
        chunk=chunk,
    )  # fmt: skip
    row.citation = citation
    with db.session() as s:
        if existing is not None:
            replaced = s.get(EntryRow, existing.id)
            if replaced is not None:
                replaced.state, replaced.note = "removed", "the asker named another source"
                replaced.updated_at = utcnow()
        s.add(row)
        s.flush()
        return int(row.id)


def cited_passage(query: QueryLog, citation: int | None) -> dict[str, Any]:
    """The answer's citation ``[citation]`` (its first when ``None``).

    :raises KBError: the answer has no such citation (code ``VALIDATION_ERROR``).
    """
    cited = sorted(query.citations or [], key=lambda c: int(c.get("n", 0)))
    if not cited:
        raise KBError(f"the answer to {query.id} cites no source", code="VALIDATION_ERROR")
    if citation is None:
        return dict(cited[0])
    for c in cited:
        if int(c.get("n", 0)) == citation:
            return dict(c)
    numbers = ", ".join(f"[{c.get('n')}]" for c in cited)
    raise KBError(
        f"citation [{citation}] is not one of the answer's sources ({numbers})",
        code="VALIDATION_ERROR",
    )


def on_thumbs_down(db: Database, query_id: str) -> int:
    """The asker found the answer unhelpful: their own thumbs-up on it is withdrawn, and the
    entries that chose its passage lose standing. :returns: entries demoted or withdrawn."""
    changed = 0
    with db.session() as s:
        query = s.get(QueryLog, query_id)
        if query is None:
            return 0
        for row in s.execute(
            select(EntryRow).where(
                EntryRow.query_id == query_id, EntryRow.how == "helpful", EntryRow.state == "active"
            )
        ).scalars():
            row.state, row.note, row.updated_at = (
                "removed",
                "the asker changed their verdict",
                utcnow(),
            )
            changed += 1
        chosen = _first_cited(query)
        for row in _active(s, _entries_for(query, chosen) if chosen else []):
            row.negatives += 1
            if not row.staff or row.negatives >= STAFF_NEGATIVES:
                row.state = "demoted"
                row.note = f"thumbs-down on an answer it chose ({query_id})"
                changed += 1
            row.updated_at = utcnow()
    return changed


def _entries_for(query: QueryLog, chunk_id: str | None) -> list[int]:
    """Ids of the memory entries that pointed the question's answer at ``chunk_id`` (any
    passage when ``None``)."""
    out: list[int] = []
    for hit in query.memory or []:
        if hit.get("kind") != "pair":
            continue
        if chunk_id is None or chunk_id in (hit.get("chunk_id"), hit.get("moved_to")):
            out += [int(i) for i in hit.get("entries") or []]
    return out


def _active(s: Any, ids: Sequence[int]) -> list[EntryRow]:
    if not ids:
        return []
    return list(
        s.execute(
            select(EntryRow).where(EntryRow.id.in_(sorted(set(ids))), EntryRow.state == "active")
        ).scalars()
    )


def _group_queries(s: Any, group_id: int) -> list[QueryLog]:
    return list(
        s.execute(
            select(QueryLog)
            .join(QueueItem, QueueItem.query_id == QueryLog.id)
            .where(QueueItem.group_id == group_id)
            .order_by(QueueItem.created_at)
        ).scalars()
    )


def _first_cited(query: QueryLog) -> str | None:
    if not query.citations:
        return None
    return str(cited_passage(query, None).get("chunk_id") or "")


def _correct(s: Any, queries: Sequence[QueryLog], keep_chunk: str | None, staff_id: str) -> None:
    """Staff resolved these questions otherwise: the entries that chose another passage for
    their answers (any passage, for a gap) are demoted, whoever confirmed them."""
    for query in queries:
        chosen = _first_cited(query)
        if chosen is None or chosen == keep_chunk:
            continue
        for row in _active(s, _entries_for(query, chosen)):
            row.state, row.updated_at = "demoted", utcnow()
            row.note = f"corrected by {staff_id} (question {query.id})"


def _staff_entries(
    db: Database,
    kb: KnowledgeBase,
    group_id: int,
    user_id: str,
    *,
    how: How,
    chunk: Chunk | None = None,
) -> list[QueryLog]:
    """Every question of the group becomes a staff-confirmed pair with ``chunk`` (a gap when
    ``chunk`` is ``None``). :returns: the questions."""
    with db.session() as s:
        queries = _group_queries(s, group_id)
    sources = query_sources(db, [(q.id, q.citations) for q in queries])
    kind: Literal["pair", "gap"] = "gap" if chunk is None else "pair"
    rows = [
        _new_entry(
            kb,
            q,
            sources[q.id],
            kind=kind,
            how=how,
            confirmed_by=user_id,
            staff=True,
            chunk=chunk,
        )  # fmt: skip
        for q in queries
    ]
    with db.session() as s:
        s.add_all(rows)
    return queries


def link_group(
    db: Database,
    kb: KnowledgeBase,
    group_id: int,
    access: Access,
    *,
    document_id: str,
    chunk_id: str,
    user_id: str,
) -> dict[str, Any]:
    """Resolve a queue group as "answered by this passage": each of its questions becomes a
    staff-confirmed pair with it, and the group is answered.

    :raises NotFoundError: no such group or passage, or the caller may read neither.
    :raises KBError: ``FORBIDDEN`` when some of its questions are hidden from the caller.
    """
    check_group_write(db, group_id, access)
    chunk = find_chunk(kb, document_id, chunk_id)
    # A passage the caller may not read is reported exactly like one that does not exist.
    if chunk is None or not access.reads(chunk.groups):
        raise NotFoundError(f"no passage {chunk_id} in document {document_id}")
    queries = _staff_entries(db, kb, group_id, user_id, how="staff_link", chunk=chunk)
    with db.session() as s:
        _correct(s, queries, chunk_id, user_id)
        group = s.get(QueueGroup, group_id)
        assert group is not None
        group.state, group.resolution = "answered", "linked"
        group.linked_document_id, group.linked_chunk_id = document_id, chunk_id
        group.answered_by, group.answered_at = user_id, utcnow()
        group.updated_at = utcnow()
    return get_group(db, group_id, access)


def mark_not_covered(
    db: Database, kb: KnowledgeBase, group_id: int, access: Access, *, user_id: str
) -> dict[str, Any]:
    """Resolve a queue group as "not covered by the knowledge base": its questions become
    gaps (close questions are escalated rather than answered) and the group is dismissed.

    :raises NotFoundError: no such group, or the caller may read none of its questions.
    :raises KBError: ``FORBIDDEN`` when some of its questions are hidden from the caller.
    """
    check_group_write(db, group_id, access)
    queries = _staff_entries(db, kb, group_id, user_id, how="not_covered")
    with db.session() as s:
        _correct(s, queries, None, user_id)
        group = s.get(QueueGroup, group_id)
        assert group is not None
        group.state, group.resolution = "dismissed", "not_covered"
        group.updated_at = utcnow()
    return get_group(db, group_id, access)


def confirm_staff_answer(
    db: Database, kb: KnowledgeBase, group_id: int, chunks: Sequence[Chunk], user_id: str
) -> int:
    """A staff answer was published (or edited) for a group: its questions become pairs with
    the answer's passage; pairs with an earlier version of it are replaced. :returns: entries."""
    if not chunks or not kb.embedders:
        return 0
    chunk = chunks[0]
    withdraw_document(db, chunk.document_id, "the staff answer changed")
    queries = _staff_entries(db, kb, group_id, user_id, how="staff_answer", chunk=chunk)
    with db.session() as s:
        _correct(s, queries, chunk.point_id, user_id)
        group = s.get(QueueGroup, group_id)
        if group is not None:
            group.resolution = "staff_answer"
    return len(queries)


def withdraw_document(db: Database, document_id: str, note: str) -> int:
    """Entries pointing at ``document_id`` go stale (a withdrawn staff answer, a deleted
    document). :returns: how many."""
    with db.session() as s:
        rows = s.execute(
            select(EntryRow).where(EntryRow.document_id == document_id, EntryRow.state == "active")
        ).scalars()
        n = 0
        for row in rows:
            row.state, row.note, row.updated_at = "stale", note, utcnow()
            n += 1
        return n


def note_served(db: Database, memory_log: Sequence[dict[str, Any]]) -> None:
    """Follow what a question found out about its matches: a passage gone (the entries go
    stale) or unchanged in a new version of its document (the entries follow it)."""
    stale = [i for h in memory_log if h.get("stale") for i in h.get("entries") or []]
    moved = [(h["moved_to"], h.get("entries") or []) for h in memory_log if h.get("moved_to")]
    if not stale and not moved:
        return
    with db.session() as s:
        for row in _active(s, stale):
            row.state, row.updated_at = "stale", utcnow()
            row.note = "its passage changed or its document was deleted"
        for chunk_id, ids in moved:
            for row in _active(s, ids):
                row.chunk_id, row.updated_at = chunk_id, utcnow()
