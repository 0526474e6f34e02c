"""The ranker the question memory learns (issue 22): every confirmed question searched again
and fitted on (:mod:`retrieval.domain`), alongside the memory's match model.

Searching a confirmed question again costs one search; its candidates are kept per entry
(:class:`Examples`), so a refit after one new answer searches one question, not all of them.
The candidates are those the search found when the entry was first fitted on: a training
example stays a real question with the candidates it met, and its label (the confirmed
document) is checked against the memory's active entries at every fit.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from kb.db.engine import Database
from kb.db.models import MemoryEntry as EntryRow
from kb.db.models import QueryLog
from kb.retrieval.domain import Example, Learning, teaches
from kb.retrieval.domain import learn as retrieval_learn
from kb.retrieval.evidence import Evidence
from kb.retrieval.lang import detect_lang
from kb.retrieval.memory import MemoryEntry, QuestionMemory
from kb.retrieval.models import AccessFilter
from kb.retrieval.service import KnowledgeBase

REFIT_GROWTH = 0.1
"""Share of new confirmed questions (and gaps) after which a fitted ranker is fitted again."""
MAX_EXAMPLES = 2000
"""The most recent confirmed questions fitted on (the fit and the kept candidates stay small)."""


class Examples:
    """Each confirmed question's fused candidates, searched once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[int, Example] = {}

    def for_entries(
        self, db: Database, kb: KnowledgeBase, entries: Sequence[MemoryEntry]
    ) -> list[Example]:
        """An example per pair and gap of ``entries`` (the most recent :data:`MAX_EXAMPLES`);
        a gap's answer is no document."""
        pairs = [e for e in entries if teaches(e)][-MAX_EXAMPLES:]
        with self._lock:
            missing = [e for e in pairs if e.id not in self._kept]
        texts: dict[int, tuple[str, str | None]] = {}
        cited: dict[int, frozenset[str]] = {}
        if missing:
            with db.session() as s:
                rows = s.execute(
                    select(EntryRow.id, EntryRow.question, EntryRow.lang).where(
                        EntryRow.id.in_([e.id for e in missing])
                    )
                ).all()
                cited = _cited(s, [e for e in missing if e.kind == "pair" and not e.staff])
            texts = {int(r[0]): (r[1], r[2]) for r in rows}
        found: dict[int, Example] = {}
        for e in missing:
            if e.id in texts:
                found[e.id] = _searched(kb, e, *texts[e.id], cited.get(e.id, frozenset()))
        with self._lock:
            self._kept.update(found)
            live = {e.id for e in pairs}
            for gone in [i for i in self._kept if i not in live]:
                del self._kept[gone]
            return [
                Example(
                    e, kept.features, kept.documents, e.document_id or "", kept.plain, kept.cited
                )
                for e in pairs
                if (kept := self._kept.get(e.id)) is not None
            ]


def _cited(s: Session, entries: Sequence[MemoryEntry]) -> dict[int, frozenset[str]]:
    """The documents each asker-confirmed entry's answer cited besides its own (the query
    log's citations). A thumbs-up confirms the answer, whichever of its passages held what the
    asker needed: the memory's pair is the first one, but an answer from another is one the
    asker accepted too (:meth:`retrieval.domain.Example.answered_by`)."""
    ids = {e.query_id for e in entries if e.query_id}
    if not ids:
        return {}
    rows = s.execute(select(QueryLog.id, QueryLog.citations).where(QueryLog.id.in_(ids))).all()
    by_query = {
        str(r[0]): frozenset(str(c["document_id"]) for c in r[1] or [] if c.get("document_id"))
        for r in rows
    }
    return {
        e.id: by_query[e.query_id] - {e.document_id or ""}
        for e in entries
        if e.query_id in by_query and e.document_id in by_query[e.query_id]
    }


def _searched(
    kb: KnowledgeBase,
    entry: MemoryEntry,
    text: str,
    lang: str | None,
    cited: frozenset[str] = frozenset(),
) -> Example:
    """``entry``'s question searched as its asker would (what they may read), fused order."""
    language = lang if lang in ("en", "ja") else detect_lang(text)
    acl = AccessFilter(tuple(entry.asker_groups))
    top_k = kb.settings.retrieval.ranker_candidates
    passages, _ = kb.search(text, acl=acl, top_k=top_k, lang=language, rank=False)  # type: ignore[arg-type]
    features = kb.rank_features(text, passages, language)  # type: ignore[arg-type]
    documents = tuple(p.chunk.document_id for p in passages)
    # What the configured gate made of it, without the memory: the learned gate is held to it.
    plain = kb.extractive(text, acl=acl, lang=language)  # type: ignore[arg-type]
    first = plain.passages[0].chunk.document_id if plain.passages else ""
    return Example(
        entry, features, documents, entry.document_id or "", (plain.confidence, first), cited
    )


def learn(
    db: Database,
    kb: KnowledgeBase,
    memory: QuestionMemory,
    examples: Examples,
    previous: QuestionMemory | None = None,
) -> None:
    """Fit ``memory``'s ranker on its confirmed questions (``None`` when it would not help, or
    ``support.memory_ranker`` is off). A fitted (or rejected) model is fitted again only when
    the entries grew by :data:`REFIT_GROWTH` or some went; until then ``previous``'s model
    ranks, with ``memory``'s entries as its evidence (a fit takes seconds: one per new answer
    would keep a busy memory fitting all the time)."""
    memory.ranker, memory.learning = None, Learning("off", 0)
    if not kb.settings.support.memory_ranker or not kb.embedders:
        return
    taught = sum(map(teaches, memory.entries))
    last = previous.learning if previous is not None else None
    if last is not None and last.state in ("learned", "no_better"):
        if last.entries <= taught < last.entries + max(1, math.ceil(last.entries * REFIT_GROWTH)):
            carry(previous, memory)
            return
    memory.learning = learned = retrieval_learn(
        examples.for_entries(db, kb, memory.entries),
        memory.entries,
        threshold=kb.settings.retrieval.confidence_threshold,
        target=kb.settings.support.memory_wrong_rate,
        learn_gate=kb.settings.support.memory_answerability,
        cited=kb.settings.retrieval.max_citations,
    )
    memory.ranker = learned.ranker


def carry(previous: QuestionMemory | None, memory: QuestionMemory) -> None:
    """Ask with ``previous``'s model while ``memory``'s is fitted, its memory features read
    from ``memory``'s entries (a demoted or stale entry stops counting at once)."""
    ranker = previous.ranker if previous is not None else None
    memory.ranker = ranker.with_evidence(Evidence(memory.entries)) if ranker is not None else None
    memory.learning = previous.learning if previous is not None else None
