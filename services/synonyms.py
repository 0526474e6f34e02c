"""The staff vocabulary (issue 23): sets of equivalent terms, stored in ``synonym_sets``.

Applied at query time (:mod:`retrieval.synonyms`): every question reads the table in force, which
is rebuilt when a set was added or removed (by this process, another worker or ``kb synonyms``),
so a change applies to the next question without re-ingesting anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from kb.db.engine import Database
from kb.db.models import SynonymSet, utcnow
from kb.retrieval.errors import KBError, NotFoundError
from kb.retrieval.protocols import SparseEncoder
from kb.retrieval.synonyms import SynonymTable, clean_terms, set_key

MAX_SETS = 5000
_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], SynonymTable]] = {}


def _view(row: SynonymSet) -> dict[str, Any]:
    return {
        "id": row.id,
        "terms": list(row.terms),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


def list_sets(db: Database) -> list[dict[str, Any]]:
    """Every set, oldest first."""
    with db.session() as s:
        return [_view(r) for r in s.execute(select(SynonymSet).order_by(SynonymSet.id)).scalars()]


def add_set(db: Database, terms: Sequence[str], *, created_by: str) -> dict[str, Any]:
    """Store a new set.

    :raises KBError: ``VALIDATION_ERROR`` for fewer than two distinct terms or an empty one;
        ``CONFLICT`` when a set with the same terms exists.
    """
    try:
        cleaned = clean_terms(terms)
    except ValueError as exc:
        raise KBError(f"terms: {exc}", code="VALIDATION_ERROR") from None
    key = set_key(cleaned)
    with db.session() as s:
        if s.execute(select(func.count()).select_from(SynonymSet)).scalar_one() >= MAX_SETS:
            raise KBError(f"the vocabulary holds {MAX_SETS} sets, the most", code="CONFLICT")
        existing = s.execute(select(SynonymSet.id).where(SynonymSet.key == key)).scalar()
        if existing is not None:
            raise KBError(f"synonym set {existing} has the same terms", code="CONFLICT")
    try:
        with db.session() as s:
            row = SynonymSet(terms=cleaned, key=key, created_by=created_by, created_at=utcnow())
            s.add(row)
            s.flush()
            return _view(row)
    except IntegrityError:  # the same set added concurrently
        raise KBError("a synonym set with the same terms exists", code="CONFLICT") from None


def delete_set(db: Database, set_id: int) -> dict[str, Any]:
    """Remove a set; :returns: what it was. :raises NotFoundError: no such set."""
    with db.session() as s:
        row = s.get(SynonymSet, set_id)
        if row is None:
            raise NotFoundError(f"no synonym set {set_id}")
        view = _view(row)
        s.delete(row)
        return view


def import_sets(
    db: Database, rows: Iterable[Sequence[str]], *, created_by: str
) -> tuple[int, list[str]]:
    """Add one set per row (empty cells ignored); :returns: sets added and per-row errors
    (``row N: why``); a row that repeats an existing set is reported and skipped."""
    added, errors = 0, []
    for n, row in enumerate(rows, start=1):
        terms = [c for c in row if c.strip()]
        if not terms:
            continue
        try:
            add_set(db, terms, created_by=created_by)
            added += 1
        except KBError as exc:
            errors.append(f"row {n}: {exc.detail}")
    return added, errors


def synonym_table(db: Database, encoder: SparseEncoder) -> SynonymTable:
    """The sets in force, analysed; rebuilt only when the stored sets changed."""
    with db.session() as s:
        count, top = s.execute(
            select(func.count(SynonymSet.id), func.coalesce(func.max(SynonymSet.id), 0))
        ).one()
    signature = (int(count), int(top))
    with _lock:
        cached = _cache.get(db.url)
        if cached is not None and cached[0] == signature:
            return cached[1]
    with db.session() as s:
        sets = [
            list(r) for r in s.execute(select(SynonymSet.terms).order_by(SynonymSet.id)).scalars()
        ]
    table = SynonymTable.build(sets, encoder)
    with _lock:
        _cache[db.url] = (signature, table)
    return table
