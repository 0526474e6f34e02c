"""What a memory's agreed confirmed questions say of each candidate document: the learned
ranker's memory features (:mod:`retrieval.domain`, issue 22)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kb.retrieval.memory import MemoryEntry
from kb.retrieval.models import AccessFilter
from kb.retrieval.numeric import cosines, unit_rows

Matrix = np.ndarray[Any, np.dtype[np.float64]]

MEMORY_RANK_FEATURES = (
    "memory_best",
    "memory_lead",
    "memory_nearest",
    "memory_count",
)
"""Per candidate: the highest cosine of a confirmed question naming its document; how far that
trails the closest confirmed question of all; whether the closest names it; how many close
ones (cosine from :data:`CLOSE`) name it. Agreed documents only."""

CLOSE = 0.88
"""Cosine from which a confirmed question counts as close (:data:`MEMORY_RANK_FEATURES`)."""


class Evidence:
    """The agreed pairs of a memory, as vectors per document, for :meth:`features`."""

    def __init__(self, entries: Sequence[MemoryEntry]) -> None:
        confirmers: dict[str, set[str]] = {}
        staff: set[str] = set()
        for e in entries:
            if e.kind != "pair" or e.document_id is None:
                continue
            if e.staff:
                staff.add(e.document_id)
            elif e.confirmer:
                confirmers.setdefault(e.document_id, set()).add(e.confirmer)
        agreed = staff | {d for d, who in confirmers.items() if len(who) >= 2}
        self.entries = [
            e for e in entries if e.kind == "pair" and e.document_id in agreed and len(e.vector) > 0
        ]
        dims = {len(e.vector) for e in self.entries}
        if len(dims) > 1:
            self.entries = []
        self.matrix = unit_rows([e.vector for e in self.entries])

    def features(
        self,
        vector: Sequence[float],
        documents: Sequence[str],
        acl: AccessFilter,
        *,
        exclude: str | None = None,
    ) -> Matrix:
        """:data:`MEMORY_RANK_FEATURES` of each of ``documents`` for a question of ``vector``,
        from the entries whose passage ``acl`` may read (``exclude``: leave out the entries of
        that question, for training)."""
        out = np.zeros((len(documents), len(MEMORY_RANK_FEATURES)))
        out[:, 1] = 1.0
        if not self.entries or len(vector) != self.matrix.shape[1]:
            return out
        sims = cosines(self.matrix, vector)
        best: dict[str, float] = {}
        close: dict[str, int] = {}
        nearest, nearest_doc = 0.0, None
        for sim, e in zip(sims.tolist(), self.entries, strict=True):
            if (exclude is not None and e.query_id == exclude) or not acl.permits(e.groups):
                continue
            doc = e.document_id
            assert doc is not None
            if sim > best.get(doc, 0.0):
                best[doc] = sim
            if sim >= CLOSE:
                close[doc] = close.get(doc, 0) + 1
            if sim > nearest:
                nearest, nearest_doc = sim, doc
        for i, doc in enumerate(documents):
            b = best.get(doc, 0.0)
            out[i] = (b, nearest - b if b else 1.0, float(doc == nearest_doc), close.get(doc, 0))
        return out
