"""Extractive answers with citations, and the confidence that decides answer or escalation.

The answer is made of sentences copied from the passages (or a Q&A entry's whole answer), each
followed by ``[n]``, the number of the passage it comes from. Nothing is written that a passage
does not say. When the confidence is under the threshold the reply says that the knowledge base
does not answer the question and that it has been passed to support.

Confidence is a logistic function of retrieval signals of the best passage: its cosine to the
query under the first dense model, and the share of the question's terms it contains. The
weights and the default threshold come from ``kb eval`` on the development sets
(docs/benchmarks.md explains the fit); a company re-fits them on its own questions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from retrieval.models import Lang, ScoredChunk
from retrieval.protocols import SparseEncoder
from retrieval.text import sentence_spans

Status = Literal["answered", "escalated"]

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
    """``sigmoid(bias + w_cos * cosine + w_cov * coverage + w_qa * is_qa)``."""

    bias: float = -17.0
    w_cos: float = 18.0
    w_cov: float = 4.0
    w_qa: float = 0.5

    def score(self, features: dict[str, float]) -> float:
        """Confidence in [0, 1] from the features of :func:`confidence_features`."""
        z = (
            self.bias
            + self.w_cos * features.get("cosine", 0.0)
            + self.w_cov * features.get("coverage", 0.0)
            + self.w_qa * features.get("is_qa", 0.0)
        )
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


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
    mode: str = "extractive"
    timings_ms: dict[str, float] = field(default_factory=dict)


def confidence_features(
    question_terms: list[str], passages: list[ScoredChunk], encoder: SparseEncoder, dense_name: str
) -> dict[str, float]:
    """Signals of the best passage: ``cosine`` (first dense model), ``coverage`` (share of the
    distinct question terms found in it), ``is_qa``."""
    if not passages:
        return {"cosine": 0.0, "coverage": 0.0, "is_qa": 0.0}
    top = passages[0]
    terms = set(question_terms)
    passage_terms = set(encoder.terms(top.chunk.embed_text))
    coverage = len(terms & passage_terms) / len(terms) if terms else 0.0
    return {
        "cosine": top.signals.get(f"dense:{dense_name}", 0.0),
        "coverage": coverage,
        "is_qa": 1.0 if top.chunk.kind == "qa" else 0.0,
    }


def compose_extractive(
    question_terms: list[str],
    passages: list[ScoredChunk],
    encoder: SparseEncoder,
    *,
    max_citations: int,
    max_sentences: int,
) -> tuple[str, list[ScoredChunk]]:
    """Pick the sentences that answer, in reading order, each tagged with its passage number.

    A Q&A passage on top answers with its whole answer. Otherwise sentences from the best
    ``max_citations`` passages are scored by the question terms they contain (the best passage
    first on ties), and the top ``max_sentences`` are kept. A passage with no matching sentence
    is not cited. :returns: the answer text and the cited passages, numbered from 1 in order.
    """
    if not passages:
        return "", []
    top = passages[0]
    if top.chunk.kind == "qa":
        return f"{top.chunk.text.strip()} [1]", [top]
    terms = set(question_terms)
    scored: list[tuple[float, int, int, str]] = []
    for rank, passage in enumerate(passages[:max_citations]):
        text = passage.chunk.text
        for order, (s, e) in enumerate(sentence_spans(text)):
            sentence = text[s:e]
            hits = len(terms & set(encoder.terms(sentence)))
            if hits == 0 and not (rank == 0 and order == 0):
                continue
            # Term hits dominate; earlier passages and earlier sentences break ties.
            scored.append((hits - 0.3 * rank - 0.01 * order, rank, order, sentence))
    best = sorted(scored, key=lambda t: -t[0])[:max_sentences]
    if not best:
        return "", []
    best.sort(key=lambda t: (t[1], t[2]))
    cited_ranks = sorted({rank for _, rank, _, _ in best})
    number = {rank: i + 1 for i, rank in enumerate(cited_ranks)}
    parts = [f"{sentence.strip()} [{number[rank]}]" for _, rank, _, sentence in best]
    joiner = "" if top.chunk.lang == "ja" else " "
    return joiner.join(parts), [passages[r] for r in cited_ranks]
