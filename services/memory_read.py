"""The question memory as questions read it (issue 22): each database's confirmed answers,
rebuilt when one changes, with the match model (:mod:`retrieval.memory`) and the ranker
(:mod:`services.domain`) they teach, refitted inline or in the background.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from kb.db.engine import Database
from kb.db.models import MemoryEntry as EntryRow
from kb.db.models import aware, utcnow
from kb.retrieval.domain import Learning
from kb.retrieval.memory import MemoryEntry, MemoryModel, QuestionMemory
from kb.retrieval.service import KnowledgeBase
from kb.services import domain


@dataclass(slots=True)
class _Built:
    stamp: tuple[int, Any]
    """The entries' count and latest change when this memory was read."""
    memory: QuestionMemory
    fitted: bool
    """Its weights were learned from these very entries (not carried over from earlier ones)."""


class _Snapshots:
    """The memory of each database and embedder, rebuilt when an entry changes.

    The entries are read again at once; the match model is refitted inline or, by default, in
    one background thread per memory while the previous weights stand in
    (``support.memory_refit``): a question never waits for the quadratic leave-one-out fit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[tuple[str, str], _Built] = {}
        self._fitting: dict[tuple[str, str], threading.Thread] = {}
        self._examples: dict[tuple[str, str], domain.Examples] = {}

    def get(self, db: Database, kb: KnowledgeBase) -> QuestionMemory | None:
        if not kb.embedders:
            return None
        name = kb.embedders[0].name
        with db.session() as s:
            row = s.execute(select(func.count(EntryRow.id), func.max(EntryRow.updated_at))).one()
        key, stamp = (db.url, name), (int(row[0] or 0), row[1])
        inline = kb.settings.support.memory_refit == "inline"
        with self._lock:
            built = self._built.get(key)
            if built is not None and built.stamp == stamp and (built.fitted or not inline):
                return built.memory
            examples = self._examples.setdefault(key, domain.Examples())
            if inline:
                memory = build_memory(db, name)
                domain.learn(db, kb, memory, examples, built.memory if built else None)
                self._built[key] = _Built(stamp, memory, fitted=True)
                return memory
            previous = built.memory.model if built is not None else None
            if built is None or built.stamp != stamp:
                memory = build_memory(db, name, model=previous or MemoryModel())
                domain.carry(built.memory if built is not None else None, memory)
                self._built[key] = built = _Built(stamp, memory, fitted=False)
            self._refit(key, db, kb)
            return built.memory

    def wait(self, timeout: float | None = None) -> bool:
        """Until no refit runs, a refit started meanwhile included, or ``timeout`` seconds
        have passed. :returns: whether none runs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                running = [t for t in self._fitting.values() if t.is_alive()]
            if not running:
                return True
            for thread in running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                thread.join(left)

    def _refit(self, key: tuple[str, str], db: Database, kb: KnowledgeBase) -> None:
        """Start fitting the weights of ``key``'s current entries, unless a fit runs (it starts
        the next one when it ends). Called with the lock held."""
        running = self._fitting.get(key)
        if running is not None and running.is_alive():
            return
        built = self._built[key]
        thread = threading.Thread(
            target=self._fit, args=(key, built.stamp, built.memory.entries, db, kb), daemon=True
        )
        self._fitting[key] = thread
        thread.start()

    def _fit(
        self,
        key: tuple[str, str],
        stamp: tuple[int, Any],
        entries: list[Any],
        db: Database,
        kb: KnowledgeBase,
    ) -> None:
        fitted_memory = QuestionMemory(entries)
        with self._lock:
            current = self._built.get(key)
        domain.learn(
            db, kb, fitted_memory, self._examples[key], current.memory if current else None
        )
        with self._lock:
            built = self._built.get(key)
            self._fitting.pop(key, None)
            if built is None:
                return
            fitted = built.stamp == stamp
            memory = QuestionMemory(built.memory.entries, model=fitted_memory.model)
            domain.carry(fitted_memory, memory)
            self._built[key] = _Built(built.stamp, memory, fitted=fitted)
            if not fitted:  # the entries changed while this fit ran: fit them too
                self._refit(key, db, kb)


_SNAPSHOTS = _Snapshots()


def memory_for(db: Database, kb: KnowledgeBase) -> QuestionMemory | None:
    """The question memory to ask with: the entries as they are now, with weights learned from
    them (``support.memory_refit`` inline) or, while a background refit runs, from earlier
    ones."""
    return _SNAPSHOTS.get(db, kb)


def wait_for_refit(timeout: float | None = None) -> bool:
    """Until the background refits of every memory have ended (or ``timeout`` seconds):
    whether they have."""
    return _SNAPSHOTS.wait(timeout)


def build_memory(
    db: Database,
    embedder: str,
    *,
    now: datetime | None = None,
    model: MemoryModel | None = None,
) -> QuestionMemory:
    """Every active entry of ``embedder``, as :class:`retrieval.memory.QuestionMemory`, with
    ``model``'s weights or (``None``) weights fitted to them."""
    now = now or utcnow()
    with db.session() as s:
        rows = s.execute(
            select(EntryRow)
            .where(EntryRow.state == "active", EntryRow.embedder == embedder)
            .order_by(EntryRow.id)
        ).scalars()
        entries = [
            MemoryEntry(
                id=r.id,
                kind="gap" if r.kind == "gap" else "pair",
                vector=r.vector,
                terms=frozenset(r.terms),
                document_id=r.document_id,
                chunk_id=r.chunk_id,
                text_hash=r.text_hash,
                groups=tuple(r.groups),
                asker_groups=tuple(r.asker_groups),
                confirmer=r.confirmed_by,
                staff=r.staff,
                # Whole days: an age of seconds says nothing, and the same history replayed
                # twice (kb eval) must match the same way however fast the machine is.
                age_days=float(max((now - aware(r.created_at)).days, 0)),
                query_id=r.query_id,
            )
            for r in rows
        ]
    return QuestionMemory(entries, model=model)


def learning(db: Database, kb: KnowledgeBase) -> dict[str, Any]:
    """What the memory has learned: its pairs and gaps, whether the match model is fitted,
    and the ranker's state with its out-of-fold figures (:class:`retrieval.domain.Learning`)."""
    memory = memory_for(db, kb)
    entries = memory.entries if memory is not None else []
    learned = memory.learning if memory is not None else None
    info = (learned or Learning("fitting", 0)).to_dict()
    return {
        "pairs": sum(1 for e in entries if e.kind == "pair"),
        "gaps": sum(1 for e in entries if e.kind == "gap"),
        "match_model_fitted": bool(memory is not None and memory.model.fitted),
        "ranker": info.pop("state"),
        **info,
    }
