"""Authorization (issue 19): the one rule every read and write of a document, passage, staff
answer, queue entry, query-log row, analytics row or export goes through.

Vocabulary:

- a **source** is the access groups of one thing a record was built from: a document, a
  passage (a Q&A sheet restricts single rows), the staff answer itself. Empty groups are public;
  otherwise a member of *any* of them may read the source, as in retrieval's filter.
- a record (a question answered from passages, a queue group, a staff answer, an analytics row)
  is **readable** when the caller may read *every* source involved. Admins read everything.

Writes to a document (metadata, groups, file, delete, re-ingest) need the role content_owner
(or admin) *and* membership of every group the document has; a group change needs membership
of the old and the new groups. A staff answer inherits the union of its sources' groups;
publishing it more widely needs membership of them all.

Refusals: ``404 NOT_FOUND`` where the caller may not even know the item exists (they cannot read
it), ``403 FORBIDDEN`` where they can read it but not change it. Nothing is changed by a refusal:
every check runs before the write.

Trusted callers: the ``kb`` command on the service's own machine (``cli``, and the ``service``
tokens it signs with the data folder's secret) acts with the operator's rights, like an admin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select

from kb.db.engine import Database
from kb.db.models import DocumentRecord, QueryLog, QueueItem
from kb.retrieval.errors import KBError, NotFoundError
from kb.retrieval.models import PUBLIC_GROUP, AccessFilter

Source = tuple[str, ...]
"""The access groups of one source (empty: public)."""

TRUSTED_VIA = frozenset({"cli", "service"})
WRITER_ROLES = ("content_owner",)


class Caller(Protocol):
    """Who is asking: the API's ``Identity`` or the CLI's operator."""

    @property
    def user_id(self) -> str: ...
    @property
    def groups(self) -> tuple[str, ...]: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def via(self) -> str: ...


def source_of(groups: Iterable[str] | None) -> Source:
    """``groups`` as a source: sorted, without the store's public marker."""
    return tuple(sorted({g for g in groups or () if g and g != PUBLIC_GROUP}))


@dataclass(frozen=True, slots=True)
class Access:
    """What one caller may see and do. Build one per request with :func:`access_for`."""

    user_id: str
    groups: frozenset[str]
    roles: frozenset[str]
    via: str

    # -- who ------------------------------------------------------------------------------

    @property
    def admin(self) -> bool:
        """Admins (and the trusted operator) see and change everything."""
        return "admin" in self.roles or self.via in TRUSTED_VIA

    @property
    def acl(self) -> AccessFilter:
        """The retrieval filter of this caller (an admin searches as a member of nothing
        more than their groups: retrieval answers employees, not auditors)."""
        return AccessFilter(groups=tuple(sorted(self.groups)))

    def has_role(self, role: str) -> bool:
        """Whether the caller holds ``role`` (admin holds all; every role includes employee)."""
        from kb.services.auth import has_role

        return has_role(tuple(self.roles), role) or (self.via in TRUSTED_VIA)

    # -- reading --------------------------------------------------------------------------

    def reads(self, source: Iterable[str] | None) -> bool:
        """Whether the caller may read one source."""
        groups = source_of(source)
        return self.admin or not groups or bool(self.groups.intersection(groups))

    def reads_all(self, sources: Iterable[Iterable[str] | None]) -> bool:
        """Whether the caller may read every one of ``sources``."""
        return all(self.reads(s) for s in sources)

    def member_of_all(self, groups: Iterable[str]) -> bool:
        """Whether the caller belongs to every one of ``groups`` (admins always do)."""
        return self.admin or set(source_of(groups)) <= self.groups

    # -- writing documents ----------------------------------------------------------------

    def check_document_write(
        self, rec: DocumentRecord | None, document_id: str, new_groups: Iterable[str] | None = None
    ) -> DocumentRecord:
        """Allow a write to a document (metadata, groups, file, delete, re-ingest).

        :param new_groups: the groups it will have after a group change.
        :raises NotFoundError: no such document, or the caller may not read it.
        :raises KBError: ``FORBIDDEN`` without the role, or outside one of its groups (old or
            new).
        """
        if rec is None or not self.reads(rec.groups):
            raise NotFoundError(f"no document {document_id}")
        self._require_writer()
        missing = self._missing(rec.groups)
        if missing:
            raise KBError(
                f"document {document_id} is restricted to {', '.join(source_of(rec.groups))}: "
                f"changing it needs membership of every one of them (you are not in "
                f"{', '.join(missing)})",
                code="FORBIDDEN",
            )
        if new_groups is not None:
            self.check_new_groups(new_groups, what=f"document {document_id}")
        return rec

    def check_new_groups(self, groups: Iterable[str], *, what: str = "the document") -> None:
        """Allow giving ``what`` the access ``groups`` (a new document, or a group change).

        :raises KBError: ``FORBIDDEN`` outside one of the groups.
        """
        self._require_writer()
        missing = self._missing(groups)
        if missing:
            raise KBError(
                f"only members of a group may give {what} to it: you are not in "
                f"{', '.join(missing)}",
                code="FORBIDDEN",
            )

    def _require_writer(self) -> None:
        if not any(self.has_role(r) for r in WRITER_ROLES):
            raise KBError("this needs the role content_owner", code="FORBIDDEN")

    def _missing(self, groups: Iterable[str]) -> list[str]:
        if self.admin:
            return []
        return [g for g in source_of(groups) if g not in self.groups]

    # -- staff answers --------------------------------------------------------------------

    def check_answer_groups(self, inherited: Sequence[Source], requested: Source) -> None:
        """Allow publishing a staff answer with ``requested`` groups when its sources are
        ``inherited``: publishing more widely than the sources needs membership of them all.

        :raises KBError: ``FORBIDDEN`` naming the groups the caller lacks.
        """
        union = sorted({g for s in inherited for g in s})
        if not union or not widens(union, requested):
            return
        missing = self._missing(union)
        if missing:
            raise KBError(
                f"the answer draws on passages restricted to {', '.join(union)}: publishing it "
                f"to {', '.join(requested) or 'everyone'} needs membership of "
                f"{', '.join(missing)}",
                code="FORBIDDEN",
            )


PUBLIC = Access(user_id="(everyone)", groups=frozenset(), roles=frozenset(), via="public")
"""Anyone at all: what a row shown to every employee (a suggestion) may be built from."""


def widens(inherited: Sequence[str], requested: Sequence[str]) -> bool:
    """Whether readers of ``requested`` groups go beyond the readers of ``inherited``."""
    if not inherited:
        return False
    return not requested or bool(set(requested) - set(inherited))


def access_for(caller: Caller) -> Access:
    """The access of ``caller``."""
    return Access(
        user_id=caller.user_id,
        groups=frozenset(caller.groups),
        roles=frozenset(caller.roles),
        via=caller.via,
    )


# -- the sources of records ------------------------------------------------------------------


def document_groups(db: Database, document_ids: Iterable[str]) -> dict[str, Source]:
    """The catalog's groups of each known document among ``document_ids``."""
    ids = sorted(set(document_ids))
    out: dict[str, Source] = {}
    with db.session() as s:
        for i in range(0, len(ids), 500):
            for doc_id, groups in s.execute(
                select(DocumentRecord.id, DocumentRecord.groups).where(
                    DocumentRecord.id.in_(ids[i : i + 500])
                )
            ).all():
                out[doc_id] = source_of(groups)
    return out


UNKNOWN: Source = ("(deleted)",)
"""The source of a citation whose document is gone and whose groups were not recorded: only
admins read it (the question may still quote what the document said)."""


def citation_sources(
    citations: Sequence[Mapping[str, Any]], catalog: Mapping[str, Source]
) -> list[Source]:
    """The sources of one answered question: per cited passage, the groups recorded when it
    was cited (a Q&A sheet's row) and the document's groups now."""
    out: list[Source] = []
    for c in citations:
        doc_id = str(c.get("document_id") or "")
        recorded = c.get("groups")
        if recorded is not None:
            out.append(source_of(recorded))
        if doc_id in catalog:
            out.append(catalog[doc_id])
        elif recorded is None:
            out.append(UNKNOWN)
    return out


def query_sources(
    db: Database, rows: Iterable[tuple[str, Sequence[Any]]]
) -> dict[str, list[Source]]:
    """``{query_id: sources}`` for ``(query_id, citations)`` rows of the query log."""
    rows = list(rows)
    catalog = document_groups(
        db, (str(c.get("document_id")) for _q, cites in rows for c in cites or ())
    )
    return {qid: citation_sources(cites or (), catalog) for qid, cites in rows}


def group_query_sources(
    db: Database, group_ids: Iterable[int]
) -> dict[int, dict[str, list[Source]]]:
    """``{queue group: {query_id: sources}}`` of the questions in each queue group."""
    ids = sorted(set(group_ids))
    if not ids:
        return {}
    with db.session() as s:
        rows = s.execute(
            select(QueueItem.group_id, QueryLog.id, QueryLog.citations)
            .join(QueryLog, QueryLog.id == QueueItem.query_id)
            .where(QueueItem.group_id.in_(ids))
        ).all()
    sources = query_sources(db, ((qid, cites) for _g, qid, cites in rows))
    out: dict[int, dict[str, list[Source]]] = {g: {} for g in ids}
    for group_id, qid, _c in rows:
        out[group_id][qid] = sources[qid]
    return out
