"""The knowledge base as one object: models, store and the ask path shared by API, CLI and eval."""

from __future__ import annotations

import time
from pathlib import Path

from retrieval.answer import (
    ESCALATION_MESSAGE,
    AnswerResult,
    Citation,
    ConfidenceModel,
    compose_extractive,
    confidence_features,
)
from retrieval.embedders import EmbeddingCache, build_embedders
from retrieval.lang import detect_lang
from retrieval.models import AccessFilter, DenseQuery, Fusion, Lang, ScoredChunk
from retrieval.protocols import Embedder, VectorStore
from retrieval.settings import Settings
from retrieval.sparse import BM25Encoder


class KnowledgeBase:
    """Holds the loaded models and the open store. Build with :meth:`open`; close when done."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: VectorStore,
        embedders: list[Embedder],
        sparse: BM25Encoder,
        cache: EmbeddingCache | None,
        confidence: ConfidenceModel | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedders = embedders
        self.sparse = sparse
        self.cache = cache
        self.confidence = confidence or ConfidenceModel()

    @classmethod
    def open(cls, settings: Settings) -> KnowledgeBase:
        """Open the configured store and models (models load lazily, or in :meth:`warm_up`)."""
        from retrieval.stores import open_store

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        embedders = build_embedders(settings.embedder)
        store = open_store(settings)
        store.ensure_collection({e.name: e.dim for e in embedders})
        cache_path = settings.embedding_cache or settings.cache_dir() / "embeddings.sqlite3"
        return cls(
            settings,
            store=store,
            embedders=embedders,
            sparse=BM25Encoder(),
            cache=EmbeddingCache(Path(cache_path)),
        )

    def warm_up(self) -> None:
        """Load every model and run one query so the first real question is not slow."""
        self.sparse.warm_up()
        for embedder in self.embedders:
            embedder.warm_up()
            embedder.embed_query("warm up")

    def close(self) -> None:
        """Release the store (its folder lock) and the cache."""
        self.store.close()
        if self.cache:
            self.cache.close()

    def search(
        self, question: str, *, acl: AccessFilter, top_k: int | None = None
    ) -> tuple[list[ScoredChunk], dict[str, float]]:
        """Hybrid search; :returns: passages best first and per-stage timings in ms."""
        cfg = self.settings.retrieval
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        dense = [DenseQuery(e.name, e.embed_query(question)) for e in self.embedders]
        t1 = time.perf_counter()
        sparse = self.sparse.encode_query(question) if cfg.use_bm25 else None
        t2 = time.perf_counter()
        passages = self.store.search(
            dense=dense,
            sparse=sparse,
            top_k=top_k or cfg.top_k,
            acl=acl,
            prefetch_k=cfg.prefetch_k,
            fusion=Fusion(k=cfg.rrf_k, dense_weight=cfg.dense_weight, sparse_weight=cfg.bm25_weight),
        )
        t3 = time.perf_counter()
        timings.update(
            embed_ms=(t1 - t0) * 1000, sparse_ms=(t2 - t1) * 1000, search_ms=(t3 - t2) * 1000
        )
        return passages, timings

    def ask(self, question: str, *, acl: AccessFilter, lang: Lang | None = None) -> AnswerResult:
        """Answer from the passages the caller may read, or escalate. Never raises on no hits."""
        t0 = time.perf_counter()
        cfg = self.settings.retrieval
        lang = lang or detect_lang(question)
        passages, timings = self.search(question, acl=acl)
        t1 = time.perf_counter()
        terms = self.sparse.terms(question)
        dense_name = self.embedders[0].name if self.embedders else ""
        features = confidence_features(terms, passages, self.sparse, dense_name)
        confidence = self.confidence.score(features) if passages else 0.0
        answer, cited = "", []
        if confidence >= cfg.confidence_threshold:
            answer, cited = compose_extractive(
                terms,
                passages,
                self.sparse,
                max_citations=cfg.max_citations,
                max_sentences=cfg.max_answer_sentences,
            )
        t2 = time.perf_counter()
        timings["answer_ms"] = (t2 - t1) * 1000
        timings["total_ms"] = (t2 - t0) * 1000
        if not cited:
            return AnswerResult(
                status="escalated",
                answer=ESCALATION_MESSAGE[lang],
                citations=[],
                confidence=confidence,
                lang=lang,
                passages=passages,
                features=features,
                timings_ms=timings,
            )
        return AnswerResult(
            status="answered",
            answer=answer,
            citations=[self._citation(i + 1, p) for i, p in enumerate(cited)],
            confidence=confidence,
            lang=lang,
            passages=passages,
            features=features,
            timings_ms=timings,
        )

    def _citation(self, n: int, passage: ScoredChunk) -> Citation:
        chunk = passage.chunk
        base = self.settings.public_base_url.rstrip("/")
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
