"""A ranker learned from this knowledge base's own confirmed questions (issue 22).

The shipped ranker (:mod:`retrieval.rerank`) learns from evaluation sets and does not carry to
a knowledge base it never saw (docs/ranker.md). The questions a deployment's people confirm do:
every pair (a question and the passage that answered it, from a thumbs-up, a staff link or a
staff answer) says which of the search's candidates was right for a real question asked here.
Once the memory holds :data:`MIN_QUESTIONS` of them, a small LightGBM lambdarank model is fitted
over each confirmed question's fused candidates with the shipped ranker's features
(:data:`retrieval.rerank.RANK_FEATURES`) plus what the memory knows of each candidate
(:data:`retrieval.evidence.MEMORY_RANK_FEATURES`), and it orders the candidates of every new
question from then on. It is refitted with the memory, so every confirmed answer teaches it.

Safeguards, as for the memory's matches (:mod:`retrieval.memory`):

- the memory features read only **agreed** documents (one staff member, or two different
  askers): one asker's thumbs-up moves nothing; it is one training example among many;
- only active entries count (demoted, stale and removed ones are gone from the memory);
- a candidate's memory features come only from entries whose passage the caller may read;
- the model is kept only when, fitted on four fifths of the questions, it ranks the fifth
  better than the fused order (5-fold, by question): a model that would not help is not used;
- it is fitted to put the confirmed document first, and only its first candidate is taken
  unless its order of the next ones also does better out of fold: the search's order follows
  the learned first (:attr:`DomainRanker.search_after`).

Pure computation: :mod:`services.domain` gathers the examples (it searches each confirmed
question again) and :meth:`retrieval.service.KnowledgeBase.search` applies the model.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from kb.retrieval.evidence import MEMORY_RANK_FEATURES, Evidence, Matrix
from kb.retrieval.gate import Gate, choose_gate, wrong_rate
from kb.retrieval.memory import MemoryEntry, fit_logistic
from kb.retrieval.models import AccessFilter, ScoredChunk
from kb.retrieval.numeric import dot
from kb.retrieval.rerank import LAMBDARANK, RANK_FEATURES, monotone, reorder

FEATURES = (*RANK_FEATURES, *MEMORY_RANK_FEATURES)
ANSWER_FEATURES = (
    "bias",
    "score",
    "margin",
    "memory_best",
    "memory_lead",
    "memory_nearest",
    "memory_count",
    "dense",
    "bm25_ratio",
    "coverage_idf",
    "missing_idf_max",
    "fused",
)
"""The answerability model's inputs, of the candidate the learned ranker puts first: its score
and lead over the second (in standard deviations of the question's candidates' scores), its
memory features, and the search's view of it."""
MIN_ANSWERS = 30
MIN_CLASS = 5
"""Out-of-fold first candidates (and of each outcome) before the answerability is fitted."""
MIN_QUESTIONS = 50
"""Confirmed questions (with their document among the candidates) before a model is fitted."""
CITED = 3
"""Candidates an answer quotes from, by default (the service passes ``retrieval.max_citations``):
what the learned order is measured on beside its first."""
FOLDS = 5
SEED = 11
ROUNDS = 100
PARAMS: dict[str, Any] = {
    **LAMBDARANK,
    # A few hundred questions: small trees and large leaves, or it memorises them.
    "num_leaves": 7,
    "min_data_in_leaf": 40,
    "seed": SEED,
    **monotone(FEATURES),
}


@dataclass(frozen=True, slots=True)
class Example:
    """One confirmed question searched again: its fused candidates' features, their
    documents, and the document it was confirmed with."""

    entry: MemoryEntry
    features: Matrix
    """:data:`retrieval.rerank.RANK_FEATURES` per candidate, in the fused order."""
    documents: tuple[str, ...]
    answer: str
    plain: tuple[float, str] | None = None
    """The configured gate's view of the question without the memory: its confidence and the
    document it would have answered from (what the learned gate is held to, :func:`learn`)."""
    cited: frozenset[str] = frozenset()
    """The other documents of the answer an asker confirmed with a thumbs-up (a staff link or
    answer names one document)."""

    def answered_by(self, document: str) -> bool:
        """Whether an answer from ``document`` is one the question's confirmer accepted: the
        confirmed document, or another that the answer they confirmed cited (a thumbs-up is a
        verdict on the answer, not on its first passage)."""
        return bool(self.answer) and (document == self.answer or document in self.cited)

    @property
    def labels(self) -> list[int]:
        return [int(d == self.answer) for d in self.documents]


def _train(examples: Sequence[Example], evidence: Evidence) -> Any:
    import lightgbm

    x = np.vstack([_rows(ex, evidence) for ex in examples])
    y = np.concatenate([np.asarray(ex.labels) for ex in examples])
    data = lightgbm.Dataset(
        x, y, group=[len(ex.documents) for ex in examples], feature_name=list(FEATURES),
        params={"verbose": -1},
    )  # fmt: skip
    return lightgbm.train(dict(PARAMS), data, num_boost_round=ROUNDS)


def _rows(ex: Example, evidence: Evidence) -> Matrix:
    """An example's features, its own question left out of the memory features."""
    acl = AccessFilter(tuple(ex.entry.asker_groups))
    mem = evidence.features(ex.entry.vector, ex.documents, acl, exclude=ex.entry.query_id)
    return np.hstack([ex.features, mem])


def _fold(ex: Example) -> int:
    """The entry's fold, from its id: query ids are random, and the same confirmed answers
    must be split the same way every time (a replayed history included)."""
    return int(hashlib.sha256(str(ex.entry.id).encode()).hexdigest(), 16) % FOLDS


def _first_right(order: Sequence[int], ex: Example) -> bool:
    return bool(order) and ex.documents[order[0]] == ex.answer


def _cited_right(order: Sequence[int], ex: Example, cited: int) -> bool:
    """Whether the confirmed document is among the first ``cited`` candidates of ``order``:
    the passages an answer quotes from."""
    return ex.answer in {ex.documents[i] for i in order[:cited]}


def _search_after(order: Sequence[int]) -> list[int]:
    """``order``'s first candidate, then the others in the search's (fused) order."""
    first = order[:1]
    return [*first, *(i for i in range(len(order)) if i not in first)]


def _answer_row(rows: Matrix, scores: Sequence[float]) -> list[float]:
    """:data:`ANSWER_FEATURES` of the first of the candidates ``rows`` scored ``scores``."""
    order = _order(scores)
    top = rows[order[0]]
    # Within the question's candidates: a booster's raw scores drift in scale from one fit to
    # the next (the out-of-fold ones the answerability is fitted on, the full one it reads).
    spread = float(np.std(scores)) or 1.0
    mean = float(np.mean(scores))
    lead = (scores[order[0]] - scores[order[1]]) / spread if len(order) > 1 else 1.0
    at = FEATURES.index
    return [
        1.0,
        float((scores[order[0]] - mean) / spread),
        float(lead),
        float(top[at("memory_best")]),
        float(top[at("memory_lead")]),
        float(top[at("memory_nearest")]),
        float(np.log1p(top[at("memory_count")])),
        float(top[at("dense")]),
        float(top[at("bm25_ratio")]),
        float(top[at("coverage_idf")]),
        float(top[at("missing_idf_max")]),
        float(top[at("fused")]),
    ]


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + float(np.exp(-np.clip(z, -50.0, 50.0))))


@dataclass(frozen=True, slots=True)
class Validation:
    """The 5-fold check a fitted model must pass: first candidate right, by question."""

    questions: int
    fused: float
    learned: float
    answers: int = 0
    """First candidates the answerability model was fitted on (pairs and gaps, out of fold)."""
    gate_right: int | None = None
    """Of those, how many its gate answered right (out of fold; ``None``: no gate fitted)."""
    configured_right: int = 0
    """How many the configured gate answered right without the memory: the learned gate is
    kept only when it answered at least as many (:func:`learn`)."""
    learned_cited: int = 0
    """Questions whose confirmed document is among the learned order's first candidates, as
    many as an answer quotes from (out of fold)..."""
    search_after_cited: int = 0
    """...and among the learned first candidate and the search's next ones: the order the
    ranker gives unless the learned one finds more (:attr:`DomainRanker.search_after`)."""

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "questions": self.questions,
            "fused_first_right": round(self.fused, 4),
            "learned_first_right": round(self.learned, 4),
            "answerability_questions": self.answers,
            "answerability_right": self.gate_right,
            "configured_right": self.configured_right,
            "learned_cited": self.learned_cited,
            "search_after_cited": self.search_after_cited,
        }


class DomainRanker:
    """The fitted model and the evidence its memory features read (thread-safe)."""

    def __init__(
        self,
        booster: Any,
        evidence: Evidence,
        validation: Validation,
        answerability: tuple[float, ...] | None = None,
        gate: Gate | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        self._booster = booster
        self.evidence = evidence
        self.validation = validation
        self.answerability = answerability
        """Logistic weights over :data:`ANSWER_FEATURES`: the probability that the first
        candidate answers the question, or ``None`` (too few confirmed answers and gaps)."""
        self.gate = gate
        """Where that probability answers (:mod:`retrieval.gate`); ``None``: the probability
        is the confidence as it is."""
        self._lock = lock or threading.Lock()

    @property
    def search_after(self) -> bool:
        """Whether the learned first candidate is followed by the search's order rather than
        the learned one: where, out of fold, that put the confirmed document among the
        passages an answer quotes from more often (:class:`Validation`). A ranker fitted to
        put one confirmed document first can order the rest worse than the search did: on
        emanual_tv's history it dropped the gold section the search had cited second or third
        (docs/question-memory.md)."""
        return self.validation.search_after_cited >= self.validation.learned_cited

    def with_evidence(self, evidence: Evidence) -> DomainRanker:
        """The same model reading the memory features of other entries."""
        return DomainRanker(
            self._booster, evidence, self.validation, self.answerability, self.gate, self._lock
        )

    def rank(
        self,
        passages: Sequence[ScoredChunk],
        features: Matrix,
        vector: Sequence[float],
        acl: AccessFilter,
    ) -> list[ScoredChunk]:
        """``passages`` in the learned order (:func:`retrieval.rerank.reorder`); the first
        carries signal ``domain_p``, the probability that it answers the question, when the
        answerability is fitted (:attr:`gate` says where it answers)."""
        rows = self._rows(features, passages, vector, acl)
        scores = self._predict(rows)
        ranked = reorder(passages, scores, features)
        if self.search_after:  # the learned first, then where the search put the others
            searched = {p.chunk.point_id: i for i, p in enumerate(passages)}
            ranked[1:] = sorted(ranked[1:], key=lambda p: searched[p.chunk.point_id])
        if not ranked or self.answerability is None:
            return ranked
        z = dot(self.answerability, _answer_row(rows, scores))
        top = ranked[0]
        ranked[0] = ScoredChunk(top.chunk, top.score, {**top.signals, "domain_p": _sigmoid(z)})
        return ranked

    def scores(
        self,
        features: Matrix,
        passages: Sequence[ScoredChunk],
        vector: Sequence[float],
        acl: AccessFilter,
    ) -> list[float]:
        """One score per candidate (``features``: their :data:`RANK_FEATURES`), higher is
        better."""
        return self._predict(self._rows(features, passages, vector, acl))

    def _rows(
        self,
        features: Matrix,
        passages: Sequence[ScoredChunk],
        vector: Sequence[float],
        acl: AccessFilter,
    ) -> Matrix:
        """:data:`FEATURES` of the candidates: theirs and what the memory knows of each."""
        documents = [p.chunk.document_id for p in passages]
        return np.hstack([features, self.evidence.features(vector, documents, acl)])

    def _predict(self, rows: Matrix) -> list[float]:
        if len(rows) == 0:
            return []
        with self._lock:
            out = self._booster.predict(rows, num_threads=1)
        return [float(x) for x in np.asarray(out).ravel()]


@dataclass(frozen=True, slots=True)
class Learning:
    """What the memory learned: the ranker, or why there is none."""

    state: Literal["learned", "too_few", "no_better", "off", "fitting"]
    """``fitting``: the first fit has not ended yet (a background refit)."""
    questions: int
    """Confirmed questions whose document was among their candidates."""
    validation: Validation | None = None
    ranker: DomainRanker | None = None
    entries: int = 0
    """The pairs and gaps it was fitted from."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "questions": self.questions,
            "min_questions": MIN_QUESTIONS,
            "answerability": bool(self.ranker and self.ranker.answerability is not None),
            "search_after": bool(self.ranker and self.ranker.search_after),
            **(self.validation.to_dict() if self.validation else {}),
            **(self.ranker.gate.to_dict() if self.ranker and self.ranker.gate else {}),
        }


def teaches(entry: MemoryEntry) -> bool:
    """Whether ``entry`` is an example for the ranker: a pair with a document, or a gap."""
    return entry.kind == "gap" or bool(entry.document_id)


def learn(
    examples: Sequence[Example],
    entries: Sequence[MemoryEntry],
    *,
    threshold: float,
    target: float | None = None,
    learn_gate: bool = True,
    cited: int = CITED,
) -> Learning:
    """A model over ``examples`` (one per confirmed question; those whose document the search
    no longer finds teach nothing and are left out), kept when there are at least
    :data:`MIN_QUESTIONS` and, fitted on four fifths, it ranks the fifth better than the fused
    order (each fifth in turn). The answerability model is fitted on those out-of-fold first
    candidates, gaps included, and answers from the probability (:func:`answer_gate`) that
    holds the wrong-answer rate ``target`` on them, or, with ``target=None``, the rate the
    configured gate (``threshold``: ``retrieval.confidence_threshold``) had on them. Both are
    kept only when that gate answers at least as many of them right as the configured gate
    did (:attr:`Validation.configured_right`); otherwise, or with ``learn_gate=False``, the
    configured confidence decides."""
    useful = [ex for ex in examples if any(ex.labels) and len(ex.documents) > 1]
    taught = sum(map(teaches, entries))
    if len(useful) < MIN_QUESTIONS:
        return Learning("too_few", len(useful), entries=taught)
    evidence = Evidence(entries)
    fused = learned = learned_cited = search_after_cited = 0
    answers: list[tuple[Example, list[float], bool]] = []
    for f in range(FOLDS):
        train = [ex for ex in useful if _fold(ex) != f]
        if not train:
            continue
        booster = _train(train, evidence)
        # Every confirmed question of the fold, the gaps and the pairs whose document the
        # search missed included: the answerability learns what a first candidate is worth.
        for ex in (ex for ex in examples if _fold(ex) == f and ex.documents):
            rows = _rows(ex, evidence)
            scores = [float(x) for x in booster.predict(rows, num_threads=1)]
            order = _order(scores)
            accepted = bool(order) and ex.answered_by(ex.documents[order[0]])
            answers.append((ex, _answer_row(rows, scores), accepted))
            if any(ex.labels) and len(ex.documents) > 1:
                fused += _first_right([0], ex)
                learned += _first_right(order, ex)
                learned_cited += _cited_right(order, ex, cited)
                search_after_cited += _cited_right(_search_after(order), ex, cited)
    asked = [ex for ex, _, _ in answers]
    validation = Validation(
        len(useful),
        fused / len(useful),
        learned / len(useful),
        len(answers),
        configured_right=configured_right(asked, threshold),
        learned_cited=learned_cited,
        search_after_cited=search_after_cited,
    )
    if learned <= fused:
        return Learning("no_better", len(useful), validation, entries=taught)
    positives = sum(right for _, _, right in answers)
    answerability = gate = None
    enough = len(answers) >= MIN_ANSWERS and min(positives, len(answers) - positives) >= MIN_CLASS
    if learn_gate and enough:
        x = np.asarray([row for _, row, _ in answers])
        y = np.asarray([float(right) for _, _, right in answers])
        answerability = fit_logistic(x, y)
        gate = answer_gate(asked, x, y, threshold, target)
        if gate is not None:
            validation = replace(validation, gate_right=gate.right)
            # Kept only if it helps, as the ranker: a gate that answers fewer of these
            # questions right than the configured one did, at no more wrong answers, would
            # cost answers on the questions to come (the configured confidence then decides).
            if gate.right < validation.configured_right:
                answerability = gate = None
    ranker = DomainRanker(_train(useful, evidence), evidence, validation, answerability, gate)
    return Learning("learned", len(useful), validation, ranker, entries=taught)


def configured_right(examples: Sequence[Example], threshold: float) -> int:
    """How many of ``examples`` the configured gate (its confidence at ``threshold``, without
    the memory) answered right."""
    return sum(
        1
        for ex in examples
        if ex.plain is not None and ex.plain[0] >= threshold and ex.answered_by(ex.plain[1])
    )


def answer_gate(
    examples: Sequence[Example], x: Matrix, y: Matrix, threshold: float, target: float | None
) -> Gate | None:
    """The answerability's gate over ``examples``' out-of-fold first candidates (``x``: their
    :data:`ANSWER_FEATURES`, ``y``: whether each was right), chosen on probabilities each
    fitted without its question's fold (the ranker's folds). Without ``target``, the learned
    gate must not answer these questions more wrongly than the configured one did (its
    confidence at ``threshold``, and the document it would have answered from); ``None`` when
    that gate answered none of them (the probability is then held to ``threshold`` as it is)."""
    if target is None:
        seen = [(ex.plain, ex) for ex in examples if ex.plain is not None]
        target = wrong_rate(
            [confidence >= threshold for (confidence, _), _ in seen],
            [ex.answered_by(document) for (_, document), ex in seen],
        )
        if target is None:
            return None
    folds = np.asarray([_fold(ex) for ex in examples])
    p = np.zeros(len(examples))
    for f in range(FOLDS):
        held = folds == f
        if held.any():
            rest = ~held
            if rest.sum() and 0 < y[rest].sum() < rest.sum():
                weights = fit_logistic(x[rest], y[rest])
            else:
                weights = fit_logistic(x, y)
            p[held] = [_sigmoid(dot(weights, row)) for row in x[held]]
    return choose_gate(p.tolist(), [bool(v) for v in y], target, threshold)


def _order(scores: Any) -> list[int]:
    values = [float(s) for s in np.asarray(scores).ravel()]
    return sorted(range(len(values)), key=lambda i: (-round(values[i], 9), i))
