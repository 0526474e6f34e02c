"""What an answer is (its citations, status and signals), and the confidence that decides
answer or escalation.

The extractive answer is composed in :mod:`retrieval.extractive`: sentences copied from the
passages, each followed by the ``[n]`` of the passage it comes from. When the confidence is
under the threshold the reply says that the knowledge base does not answer the question and
that it has been passed to support.

Confidence is a logistic function of retrieval signals of the best passage (its cosine to the
query under the first dense model, the share of the question's terms it contains, ...), of the
composed answer, and of the share of the question's terms that nothing the asker may read holds. The
weights and the default threshold come from ``kb eval`` on the development sets
(docs/experiments.md explains the fit); a company re-fits them on its own questions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kb.retrieval.models import Lang, ScoredChunk
from kb.retrieval.protocols import SparseEncoder

Status = Literal["answered", "escalated"]
Mode = Literal["extractive", "generated"]

RANKER_FEATURES = (
    "rank_top",
    "rank_margin",
    "top_missing_idf",
    "top_coverage_idf50",
    "top_qa_question_coverage",
    "top_title_coverage",
)
"""The answer features read off the second-stage ranker (:func:`ranker_features`)."""
FEATURES = (
    "cosine",
    "coverage",
    "coverage_any",
    "is_qa",
    "agreement",
    "margin",
    "cos_margin",
    "answer_coverage",
    "coverage_idf",
    "answer_coverage_idf",
    "oov",
    "minmax_top",
    "minmax_margin",
    "cross",
    "cross_margin",
    *RANKER_FEATURES,
    "proximity",
)
CROSS_FEATURES = ("cross", "cross_margin")
"""The answer features read off a configured cross-encoder (:func:`cross_features`)."""

ESCALATION_MESSAGE: dict[str, str] = {
    "en": (
        "The knowledge base does not answer this question, so I have passed it to the support "
        "team. They will reply to you, and their answer will be added to the knowledge base."
    ),
    "ja": (
        "ナレッジベースにはこの質問への回答が見つかりませんでした。サポート担当者に引き継ぎました。"
        "担当者から回答があり、その回答はナレッジベースにも追加されます。"
    ),
}


@dataclass(frozen=True, slots=True)
class ConfidenceModel:
    """``sigmoid(bias + sum(weight[f] * feature[f]))`` over :func:`confidence_features`.
    No defaults: the fitted values live in ``retrieval.settings.RetrievalSettings``
    (``confidence_bias``, ``confidence_weights``) or a trained answerability file."""

    bias: float
    weights: tuple[tuple[str, float], ...]

    def score(self, features: dict[str, float]) -> float:
        """Confidence in [0, 1]."""
        z = self.bias + sum(w * features.get(name, 0.0) for name, w in self.weights)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@dataclass(frozen=True, slots=True)
class Removed:
    """A sentence of the model's reply that the answer leaves out, and why: a faithfulness
    reason (``no_citation``, ``unknown_citation``, ``number_mismatch``, ``low_overlap``) or
    ``not_in_kb`` for the model saying it cannot answer."""

    text: str
    citations: tuple[int, ...]
    reason: str

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"text": self.text, "citations": list(self.citations), "reason": self.reason}


@dataclass(slots=True)
class Generation:
    """What the model did for one question (kept on :class:`AnswerResult` for the log, the
    stream's verdict and ``kb eval``)."""

    model: str
    raw: str = ""
    score: float | None = None
    """Share of the model's sentences the check supported (None: no reply to check)."""
    removed: list[Removed] = field(default_factory=list)
    refused: bool = False
    error: str | None = None
    neutralized: int = 0
    """Instruction-like sentences removed from the prompt's passages."""

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {
            "model": self.model,
            "score": self.score,
            "removed": [r.to_dict() for r in self.removed],
            "refused": self.refused,
            "error": self.error,
            "neutralized": self.neutralized,
        }


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered reference from the answer text to a passage."""

    n: int
    document_id: str
    title: str
    location: str
    url: str
    snippet: str
    score: float
    chunk_id: str
    version: int
    source_path: str


@dataclass(slots=True)
class AnswerResult:
    """What one question produced; the API and ``kb ask --json`` serialise the public part."""

    status: Status
    answer: str
    citations: list[Citation]
    confidence: float
    lang: Lang
    passages: list[ScoredChunk] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    mode: Mode = "extractive"
    """``generated`` when the answer (or the escalation) came from the LLM (issue 7)."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    fallback_reason: str | None = None
    """Why an LLM was configured but the extractive answer was given: ``llm_error``,
    ``llm_timeout``, ``unsupported`` (too little of the reply passed the check),
    ``empty_answer``."""
    faithfulness: float | None = None
    """Share of the answer's author's sentences that the faithfulness check supported: the
    model's reply for generated answers (before unsupported sentences were removed), the
    composed answer for extractive ones. None when escalated."""
    generation: Generation | None = None
    """The model's reply, its check and what was removed, when a model was asked."""
    memory: list[dict[str, Any]] = field(default_factory=list)
    """What the question memory contributed (:meth:`retrieval.memory.Recall.to_log`)."""


def confidence_features(
    question_terms: list[str],
    passages: list[ScoredChunk],
    passage_terms: list[set[str]],
    dense_name: str,
    max_rrf: float = 1.0,
    max_minmax: float = 1.0,
) -> dict[str, float]:
    """Signals of how well the passages answer the question. ``passage_terms`` holds the terms
    of each passage's ``embed_text``, computed once by the caller.

    - ``cosine``: the best passage's cosine to the question (first dense model);
    - ``coverage``: share of the distinct question terms found in the best passage;
    - ``coverage_any``: share found in any returned passage. A term found nowhere (a product or
      feature the documents never mention) is the clearest sign of a question out of scope;
    - ``is_qa``: the best passage is a Q&A entry;
    - ``agreement``: the best passage's reciprocal-rank fused score (its ``rrf`` signal, its
      score where it has none) over ``max_rrf``, the score of a passage ranked first by every
      retriever: 1.0 when dense and BM25 retrieval agree on it, whatever fusion ordered them;
    - ``margin``: its lead over the second passage, on the same scale;
    - ``minmax_top``: its ``minmax`` signal (each retriever's score min-max normalised over its
      own hits, weighted and summed) over ``max_minmax``: 1.0 when every retriever scored it
      best. Unlike rank fusion it reads how far ahead of the rest a retriever scored it;
    - ``minmax_margin``: its lead, on the same scale, over the best ``minmax`` of the others;
    - ``cos_margin``: its cosine minus the best cosine among the other passages;
    - ``coverage_idf``: ``coverage`` with terms weighted by :func:`local_idf`;
    - ``proximity``: the share of the question's adjacent word pairs the best passage holds
      side by side (its ``proximity`` signal, :mod:`retrieval.proximity`; 0 where the
      question's language orders by none).

    A lone passage leads by nothing: its margins are 0, not its whole score (a knowledge base
    of one document would otherwise read as a far stronger answer than calibration ever saw).
    """
    if not passages:
        return dict.fromkeys(FEATURES, 0.0)
    top = passages[0]
    terms = set(question_terms)
    found = passage_terms
    key = f"dense:{dense_name}"
    cosine = top.signals.get(key, 0.0)
    idf = local_idf(question_terms, found)
    rivals = passages[1:] or passages[:1]
    first = top.signals.get("rrf", top.score)
    second = rivals[0].signals.get("rrf", rivals[0].score)
    other_cos = max(p.signals.get(key, 0.0) for p in rivals)
    best_minmax = top.signals.get("minmax", 0.0)
    other_minmax = max(p.signals.get("minmax", 0.0) for p in rivals)
    return {
        "agreement": _share(first, max_rrf),
        "margin": _share(first - second, max_rrf),
        "minmax_top": _share(best_minmax, max_minmax),
        "minmax_margin": _share(best_minmax - other_minmax, max_minmax),
        "cos_margin": cosine - other_cos,
        "cosine": cosine,
        "coverage": len(terms & found[0]) / len(terms) if terms else 0.0,
        "coverage_any": len(terms & set().union(*found)) / len(terms) if terms else 0.0,
        "is_qa": 1.0 if top.chunk.kind == "qa" else 0.0,
        "coverage_idf": weighted_coverage(idf, found[0]),
        "proximity": top.signals.get("proximity", 0.0),
    }


def _share(value: float, scale: float) -> float:
    return value / scale if scale > 0 else 0.0


def ranker_features(passages: list[ScoredChunk]) -> dict[str, float]:
    """The second-stage ranker's score of the best passage (``rank_top``) and its lead over
    the second (``rank_margin``); 0 when no ranker ran (:mod:`retrieval.rerank`)."""
    scores = [p.signals["ranker"] for p in passages[:2] if "ranker" in p.signals]
    if not scores:
        return dict.fromkeys(RANKER_FEATURES, 0.0)
    top = passages[0].signals
    return {
        "rank_top": scores[0],
        "rank_margin": scores[0] - (scores[1] if len(scores) > 1 else 0.0),
        "top_missing_idf": top.get("rf:missing_idf_max", 0.0),
        "top_coverage_idf50": top.get("rf:coverage_idf", 0.0),
        "top_qa_question_coverage": top.get("rf:qa_question_coverage_idf", 0.0),
        "top_title_coverage": top.get("rf:title_coverage_idf", 0.0),
    }


def cross_features(passages: list[ScoredChunk]) -> dict[str, float]:
    """A cross-encoder's score of the best passage it scored (``cross``) and its lead over the
    best passage of another document (``cross_margin``); 0 when none is configured. No default
    model weighs them: a company that has one fits the confidence with them
    (``python -m kb.eval.calibrate --features``, docs/ranker.md)."""
    scored = [(p.chunk.document_id, p.signals["cross"]) for p in passages if "cross" in p.signals]
    if not scored:
        return dict.fromkeys(CROSS_FEATURES, 0.0)
    document, top = scored[0]
    other = max((s for d, s in scored[1:] if d != document), default=0.0)
    return {"cross": top, "cross_margin": top - other}


def local_idf(question_terms: list[str], passage_terms: list[set[str]]) -> dict[str, float]:
    """Weight of each question term by how rare it is among the retrieved passages.

    ``log(1 + n / (1 + df))`` with ``n`` passages retrieved and ``df`` of them containing the
    term. A product name found in every passage weighs little; a term found in none ("AirPrint",
    "Chromebook") weighs most, which is what tells a near-miss question from an answerable one.
    Computed from the results alone, so it needs no corpus statistics and works on any store.
    """
    n = len(passage_terms)
    return {
        t: math.log(1 + n / (1 + sum(t in p for p in passage_terms))) for t in set(question_terms)
    }


def weighted_coverage(weights: dict[str, float], found: set[str]) -> float:
    """Share of the question's term weight that ``found`` contains."""
    # fsum: exact, so the result does not depend on the dict's (hash-seeded) order.
    total = math.fsum(weights.values())
    return math.fsum(w for t, w in weights.items() if t in found) / total if total else 0.0


def answer_features(
    question_terms: list[str], answer_terms: set[str], idf: dict[str, float]
) -> dict[str, float]:
    """How much of the question the composed answer covers: ``answer_coverage`` (share of the
    distinct question terms) and ``answer_coverage_idf`` (weighted by :func:`local_idf`)."""
    terms = set(question_terms)
    return {
        "answer_coverage": len(terms & answer_terms) / len(terms) if terms else 0.0,
        "answer_coverage_idf": weighted_coverage(idf, answer_terms),
    }


def vocabulary_features(question_terms: list[str], known: set[str]) -> dict[str, float]:
    """``oov``: the share of the distinct question terms that no chunk the asker may read
    contains ("Chromebook" asked of a printer manual, 「リサイクル」 of a toner page). ``known``
    comes from the store under the asker's access filter
    (:meth:`~retrieval.protocols.VectorStore.present_terms`), so a term only a restricted
    document holds counts as unknown and the confidence says nothing about that document."""
    terms = set(question_terms)
    return {"oov": len(terms - known) / len(terms) if terms else 0.0}


def gate_features(
    terms: list[str],
    passages: list[ScoredChunk],
    answer: str,
    cited: list[ScoredChunk],
    sparse: SparseEncoder,
    present: Callable[[set[str]], set[str]],
    *,
    dense_name: str,
    max_rrf: float,
    max_minmax: float,
    aliases: set[str] | None = None,
) -> dict[str, float]:
    """The confidence model's inputs for ``answer`` (citing ``cited``), composed from
    ``passages`` for a question of ``terms``: the passages' scores and coverage, the answer's
    coverage, and the share of the question's words the knowledge base knows (``present``:
    which of the words no passage holds it has elsewhere; ``aliases``: words known as another's
    synonym, counted when it knows some other word)."""
    # Each passage is tokenised once; every coverage feature reads these sets.
    found = [set(sparse.terms(p.chunk.embed_text)) for p in passages]
    features = confidence_features(
        terms, passages, found, dense_name, max_rrf=max_rrf, max_minmax=max_minmax
    )
    features.update(ranker_features(passages))
    features.update(cross_features(passages))
    # A Q&A entry answers through its question too: count the question's terms as covered.
    covered = " ".join([answer, *(p.chunk.question or "" for p in cited)])
    features.update(answer_features(terms, set(sparse.terms(covered)), local_idf(terms, found)))
    in_passages = set(terms) & set().union(*found)
    known = in_passages | present(set(terms) - in_passages)
    if aliases and known - aliases:
        known |= aliases
    features.update(vocabulary_features(terms, known))
    return features


def cite(n: int, passage: ScoredChunk, base_url: str) -> Citation:
    """Citation ``n`` of ``passage``, linking to its place in the source document."""
    chunk = passage.chunk
    base = base_url.rstrip("/")
    url = f"{base}/api/documents/{chunk.document_id}/source{chunk.location.fragment()}"
    snippet = chunk.text if len(chunk.text) <= 600 else chunk.text[:600].rstrip() + "…"
    return Citation(
        n=n,
        document_id=chunk.document_id,
        title=chunk.title,
        location=chunk.location.label(),
        url=url,
        snippet=snippet,
        score=round(passage.score, 6),
        chunk_id=chunk.point_id,
        version=chunk.version,
        source_path=chunk.source_path,
    )
