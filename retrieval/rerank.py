"""The second stage (issue 21): a learned ranker over the fused candidates.

Hybrid search fuses the dense and BM25 rankings by reciprocal rank, which only sees ranks. The
ranker reads, per (question, candidate), what the fusion throws away: each channel's score and
rank, how far the candidate trails the best of each channel, how much of the question's rare
vocabulary its text and its title hold (IDF from the candidates themselves, so no corpus
statistics are needed and the same model serves any knowledge base), whether it is a Q&A
entry, its language against the question's, its length, and how much of the candidate list its
document fills. A LightGBM lambdarank model scores the candidates; the passages are served in
that order. Features never name a document or a word, so what the model learned on one
corpus transfers to another (docs/ranker.md has the leave-one-dataset-out figures).

The model is a text file shipped in the package (``retrieval/trained/ranker.txt``), trained by
``kb train`` with fixed seeds; scoring is deterministic.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.retrieval.errors import KBError
from kb.retrieval.identifiers import identifiers
from kb.retrieval.models import Chunk, Lang, ScoredChunk

TRAINED = Path(__file__).resolve().parent / "trained"
DEFAULT_RANKER = TRAINED / "ranker.txt"
CANDIDATES = 50
"""Fused candidates the ranker reorders."""

RANK_FEATURES = (
    "fused",
    "fused_rank",
    "dense",
    "dense_rank",
    "dense_gap",
    "title_dense",
    "title_dense_rank",
    "bm25",
    "bm25_rank",
    "bm25_ratio",
    "coverage",
    "coverage_idf",
    "title_coverage_idf",
    "qa_question_coverage_idf",
    "missing_idf_max",
    "question_terms",
    "is_qa",
    "lang_match",
    "log_length",
    "doc_share",
    "doc_best_rank",
)

K1, B = 1.2, 0.75
LAMBDARANK: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "learning_rate": 0.05,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
"""What every ranker here is fitted with (``kb train``'s and the memory's): one thread,
deterministic; each adds its tree sizes and seed."""


MONOTONE: dict[str, int] = {
    "fused": 1,
    "fused_rank": -1,
    "dense": 1,
    "dense_rank": -1,
    "dense_gap": -1,
    "title_dense": 1,
    "title_dense_rank": -1,
    "bm25": 1,
    "bm25_rank": -1,
    "bm25_ratio": 1,
    "coverage": 1,
    "coverage_idf": 1,
    "title_coverage_idf": 1,
    "qa_question_coverage_idf": 1,
    "missing_idf_max": -1,
    "lang_match": 1,
    "doc_best_rank": -1,
    "memory_best": 1,
    "memory_lead": -1,
    "memory_nearest": 1,
    "memory_count": 1,
}
"""The direction each feature may move a candidate's score, other things equal (1: up, -1:
down; absent: either): a closer, better-ranked, better-covered candidate never scores lower.
The ``memory_*`` features are the question memory's ranker's own (``retrieval.domain``).
Constraining the trees so cuts what a ranker fitted on one kind of knowledge base loses on
another (docs/ranker.md, "Monotone features")."""


def monotone(names: Sequence[str]) -> dict[str, Any]:
    """LightGBM parameters constraining features ``names`` (in model order) by :data:`MONOTONE`."""
    return {
        "monotone_constraints": [MONOTONE.get(n, 0) for n in names],
        "monotone_constraints_method": "advanced",
    }


@dataclass(frozen=True, slots=True)
class CandidateTerms:
    """One candidate's terms: body (with counts) and short field (title, heading, Q&A question)."""

    body: Counter[str]
    title: frozenset[str]
    question: frozenset[str]
    codes: frozenset[str] = frozenset()
    """The identifiers its text, title and headings write (:mod:`retrieval.identifiers`)."""
    title_codes: frozenset[str] = frozenset()
    """Those its title and headings write."""


TERMS_CACHE = 20_000
"""Candidates whose terms :class:`TermsCache` keeps (cleared when full)."""


class TermsCache:
    """Each candidate's :class:`CandidateTerms`, tokenised once per chunk version."""

    def __init__(self, terms: Callable[[str], list[str]], size: int = TERMS_CACHE) -> None:
        self._terms = terms
        self._size = size
        self._cached: dict[tuple[str, str], CandidateTerms] = {}

    def __call__(self, chunk: Chunk) -> CandidateTerms:
        key = (chunk.point_id, chunk.doc_hash)
        cached = self._cached.get(key)
        if cached is None:
            heading = f"{chunk.title} {chunk.location.label()}"
            title_codes = frozenset(identifiers(heading))
            cached = CandidateTerms(
                body=Counter(self._terms(chunk.text)),
                title=frozenset(self._terms(heading)),
                question=frozenset(self._terms(chunk.question or "")),
                codes=title_codes | frozenset(identifiers(chunk.text)),
                title_codes=title_codes,
            )
            if len(self._cached) >= self._size:
                self._cached.clear()
            self._cached[key] = cached
        return cached

    def words(self, chunk: Chunk) -> set[str]:
        """Every term of ``chunk``'s body and short field."""
        terms = self(chunk)
        return set(terms.body) | terms.title


def _ranks(values: Sequence[float]) -> list[float]:
    """Rank of each value (0 = highest), ties sharing the better rank."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    ranks = [0.0] * len(values)
    for position, i in enumerate(order):
        if position and values[i] == values[order[position - 1]]:
            ranks[i] = ranks[order[position - 1]]
        else:
            ranks[i] = float(position)
    return ranks


def candidate_features(
    question_terms: Sequence[str],
    passages: Sequence[ScoredChunk],
    terms: Sequence[CandidateTerms],
    *,
    lang: Lang,
    dense_name: str,
    max_fused: float,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The :data:`RANK_FEATURES` of each candidate, one row each, in ``passages`` order."""
    n = len(passages)
    if n == 0:
        return np.zeros((0, len(RANK_FEATURES)))
    qterms = set(question_terms)
    df = Counter(t for ct in terms for t in qterms if t in ct.body or t in ct.title)
    idf = {t: math.log(1 + n / (1 + df[t])) for t in qterms}
    # math.fsum over sets and dicts: exact, so features do not depend on the order Python's
    # per-process string hashing gives them (a last-bit difference can flip a tie).
    total_idf = math.fsum(idf.values()) or 1.0
    lengths = [sum(ct.body.values()) for ct in terms]
    avg_len = (sum(lengths) / n) or 1.0
    bm25 = []
    for ct, length in zip(terms, lengths, strict=True):
        bm25.append(
            math.fsum(
                idf[t] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg_len))
                for t in qterms
                if (tf := ct.body.get(t, 0))
            )
        )
    dense = [p.signals.get(f"dense:{dense_name}", 0.0) for p in passages]
    title = [p.signals.get(f"dense:{dense_name}_title", 0.0) for p in passages]
    fused = [p.score / max_fused if max_fused > 0 else p.score for p in passages]
    dense_r, title_r, bm25_r = _ranks(dense), _ranks(title), _ranks(bm25)
    best_dense, best_bm25 = max(dense), max(bm25) or 1.0
    per_doc = Counter(p.chunk.document_id for p in passages)
    doc_best: dict[str, int] = {}
    for i, p in enumerate(passages):
        doc_best.setdefault(p.chunk.document_id, i)
    rows = []
    for i, (p, ct) in enumerate(zip(passages, terms, strict=True)):
        present = {t for t in qterms if t in ct.body or t in ct.title}
        missing = [idf[t] for t in qterms - present]
        rows.append(
            [
                fused[i],
                float(i),
                dense[i],
                dense_r[i],
                best_dense - dense[i],
                title[i],
                title_r[i],
                bm25[i],
                bm25_r[i],
                bm25[i] / best_bm25,
                len(present) / len(qterms) if qterms else 0.0,
                math.fsum(idf[t] for t in present) / total_idf,
                math.fsum(idf[t] for t in qterms & ct.title) / total_idf,
                math.fsum(idf[t] for t in qterms & ct.question) / total_idf,
                max(missing, default=0.0) / (max(idf.values(), default=0.0) or 1.0),
                float(len(qterms)),
                1.0 if p.chunk.kind == "qa" else 0.0,
                1.0 if p.chunk.lang == lang else 0.0,
                math.log1p(lengths[i]),
                per_doc[p.chunk.document_id] / n,
                float(doc_best[p.chunk.document_id]),
            ]
        )
    return np.asarray(rows, dtype=np.float64)


class Ranker:
    """A trained LightGBM ranker (text model file); thread-safe, deterministic."""

    def __init__(self, model_text: str, *, source: str = "") -> None:
        import lightgbm

        self.source = source
        self._booster = lightgbm.Booster(model_str=model_text)
        names = tuple(self._booster.feature_name())
        if names != RANK_FEATURES:
            raise ValueError(
                f"the ranker {source or '(text)'} was trained on other features ({len(names)}): "
                "retrain it with `kb train`"
            )
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Ranker:
        """The ranker saved at ``path``."""
        return cls(path.read_text(encoding="utf-8"), source=str(path))

    def scores(self, features: np.ndarray[Any, np.dtype[np.float64]]) -> list[float]:
        """One score per row, higher is better."""
        if len(features) == 0:
            return []
        with self._lock:
            out = self._booster.predict(features, num_threads=1)
        return [float(x) for x in np.asarray(out).ravel()]


KEPT_FEATURES = (
    "coverage_idf",
    "missing_idf_max",
    "qa_question_coverage_idf",
    "title_coverage_idf",
)
"""Candidate features kept on each passage as signals ``rf:<name>``: the answerability model
reads them off the best passage (:func:`retrieval.answer.ranker_features`)."""


def reorder(
    passages: Sequence[ScoredChunk],
    scores: Sequence[float],
    features: np.ndarray[Any, np.dtype[np.float64]] | None = None,
) -> list[ScoredChunk]:
    """``passages`` by ranker score, best first; each keeps its score as signal ``ranker``
    (and :data:`KEPT_FEATURES` of ``features``). Ties keep the fused order."""
    order = sorted(range(len(passages)), key=lambda i: (-round(scores[i], 9), i))
    columns = [RANK_FEATURES.index(name) for name in KEPT_FEATURES]
    out = []
    for i in order:
        p = passages[i]
        signals = {**p.signals, "ranker": scores[i]}
        if features is not None:
            signals.update(
                {
                    f"rf:{n}": float(features[i, c])
                    for n, c in zip(KEPT_FEATURES, columns, strict=True)
                }
            )
        out.append(ScoredChunk(chunk=p.chunk, score=p.score, signals=signals))
    return out


def cross_rerank(
    score: Callable[[str, Sequence[str]], list[float]],
    question: str,
    passages: Sequence[ScoredChunk],
    candidates: int,
) -> list[ScoredChunk]:
    """The first ``candidates`` of ``passages`` in the order of a cross-encoder's ``score``
    (question and passage read together; ties keep the order they came in), each with its
    score as signal ``cross``; the rest after them as they were. The passage is scored as the
    embedders index it (``Chunk.embed_text``: title and heading path, or a Q&A entry's question,
    before its text)."""
    head, tail = list(passages[:candidates]), list(passages[candidates:])
    scores = score(question, [p.chunk.embed_text for p in head])
    order = sorted(range(len(head)), key=lambda i: (-round(scores[i], 9), i))
    ranked = [
        ScoredChunk(head[i].chunk, head[i].score, {**head[i].signals, "cross": scores[i]})
        for i in order
    ]
    return ranked + tail


class RankerSlot:
    """The second-stage ranker a knowledge base ranks with: the configured one, loaded once, or
    one given with :meth:`use` (``kb train`` asks with models fitted without the question)."""

    def __init__(self) -> None:
        self._ranker: Ranker | None = None
        self._given = False
        self._lock = threading.Lock()

    def get(self, choice: str) -> Ranker | None:
        """The given ranker, else ``choice`` (``retrieval.ranker``) loaded; ``None`` for off."""
        with self._lock:
            if self._given:
                return self._ranker
            if choice == "off":
                return None
            if self._ranker is None:
                self._ranker = load_ranker(choice)
            return self._ranker

    def use(self, ranker: Ranker | None) -> None:
        """Rank with ``ranker`` from now on; ``None`` returns to the configured one."""
        with self._lock:
            self._ranker, self._given = ranker, ranker is not None


def load_ranker(choice: str) -> Ranker:
    """The ranker ``retrieval.ranker`` names: ``builtin`` (the shipped model) or a path.

    :raises KBError: ``CONFIGURATION_ERROR`` when it cannot be read.
    """
    path = DEFAULT_RANKER if choice == "builtin" else Path(choice)
    try:
        return Ranker.load(path)
    except (OSError, ValueError) as exc:
        raise KBError(
            f"retrieval.ranker: cannot load {path} ({exc}); train one with "
            "`kb train` or set KB_RETRIEVAL__RANKER=off",
            code="CONFIGURATION_ERROR",
        ) from exc
