"""The knowledge base as one object: models, store and the ask path shared by API, CLI and eval."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator, Set
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from kb.retrieval.answer import (
    ESCALATION_MESSAGE,
    AnswerResult,
    Citation,
    ConfidenceModel,
    cite,
    gate_features,
)
from kb.retrieval.embedders import (
    CrossEncoderScorer,
    EmbeddingCache,
    build_cross_encoder,
    build_embedders,
    dense_queries,
    vector_dims,
)
from kb.retrieval.extractive import compose_extractive
from kb.retrieval.generate import (
    AskEvent,
    Delta,
    Final,
    NewCitations,
    extractive_faithfulness,
    generate,
)
from kb.retrieval.identifiers import named_in, unknown
from kb.retrieval.lang import LanguageDirection, detect_lang, other_lang, toward_other_language
from kb.retrieval.lexical import LexicalOrder
from kb.retrieval.lexicon import load_lexicon, translated_query
from kb.retrieval.llm import LLM, build_llm
from kb.retrieval.memory import QuestionMemory
from kb.retrieval.models import (
    AccessFilter,
    DenseQuery,
    Fusion,
    FusionMethod,
    Lang,
    ScoredChunk,
)
from kb.retrieval.protocols import Embedder, VectorStore
from kb.retrieval.recall import (
    MEMORY_CANDIDATE,
    apply_recall,
    confirmed_first,
    recall_for,
    with_memory,
)
from kb.retrieval.rerank import (
    Ranker,
    RankerSlot,
    TermsCache,
    candidate_features,
    cross_rerank,
    reorder,
)
from kb.retrieval.settings import Settings
from kb.retrieval.shape import procedure_answer
from kb.retrieval.sparse import BM25Encoder
from kb.retrieval.spelling import Speller
from kb.retrieval.synonyms import EMPTY, SynonymTable
from kb.retrieval.telemetry import record_search
from kb.retrieval.versions import current_versions, overfetch

QUERY_VECTORS = 256  # question vectors kept: the search and the question memory share one


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
        llm: LLM | None = None,
        cross: CrossEncoderScorer | None = None,
    ) -> None:
        self.settings = settings
        self.cross = cross  # reorders the first passages; the confidence reads its scores
        self.llm = llm
        """Writes generated answers when set (issue 7); ``None``: answers are extractive."""
        self.store = store
        self.embedders = embedders
        self.sparse = sparse
        self.cache = cache
        self._direction = LanguageDirection(store, embedders[0].name if embedders else "")
        self._rankers = RankerSlot()
        self._terms = TermsCache(sparse.terms)
        self._lexical = LexicalOrder(sparse, self._terms)
        self.speller = Speller(sparse, store)
        self._vectors: dict[str, list[float]] = {}
        self.write_lock = threading.RLock()
        """Held by ``ingest.indexing``, the store's one writer, around each write (issue 26)."""
        cfg = settings.retrieval
        self.confidence = confidence or ConfidenceModel(
            bias=cfg.confidence_bias, weights=tuple(cfg.confidence_weights.items())
        )

    @classmethod
    def open(cls, settings: Settings, *, recreate: bool = False) -> KnowledgeBase:
        """Open the configured store and models (models load lazily, or in :meth:`warm_up`).
        :param recreate: drop the collection and every point in it first, then create it for
            the configured embedders and quantization (``kb ingest --recreate``).
        """
        from kb.retrieval.stores import open_store

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        embedders = build_embedders(settings.embedder)
        cross = build_cross_encoder(settings.embedder)
        store = open_store(settings)
        try:
            if recreate:
                store.drop_collection()
            store.ensure_collection(vector_dims(embedders, settings.embedder.title_vectors))
        except Exception:
            store.close()
            raise
        cache_path = settings.embedding_cache or settings.cache_dir() / "embeddings.sqlite3"
        return cls(
            settings,
            store=store,
            embedders=embedders,
            sparse=BM25Encoder(),
            cache=EmbeddingCache(Path(cache_path)),
            llm=build_llm(settings.llm),
            cross=cross,
        )

    def warm_up(self) -> None:
        """Load every model and run one query so the first real question is not slow."""
        self.sparse.warm_up()
        self.sparse.terms("warm up ウォームアップ")
        for embedder in self.embedders:
            embedder.warm_up()
            embedder.embed_query("warm up")
        if self.cross is not None:
            self.cross.score("warm up", ["warm up"])
        self.translations("warm up ウォームアップ")  # reads the word list, if questions use it

    def close(self) -> None:
        """Release the store (its folder lock) and the cache."""
        self.store.close()
        if self.cache:
            self.cache.close()

    def search(
        self,
        question: str,
        *,
        acl: AccessFilter,
        top_k: int | None = None,
        lang: Lang | None = None,
        memory: QuestionMemory | None = None,
        rank: bool = True,
        translate: bool = True,
    ) -> tuple[list[ScoredChunk], dict[str, float]]:
        """Hybrid search; :returns: passages best first and per-stage timings in ms.

        The fused candidates are reordered by what the question writes (:mod:`retrieval.lexical`),
        then by the ranker ``memory`` learned from this knowledge base's confirmed questions
        (:mod:`retrieval.domain`) when it has one, else the configured ranker; ``rank=False``
        leaves the rankers out (as deep prefetches).

        Besides the dense and BM25 prefetches over every chunk, one dense prefetch searches only
        the chunks in the other language (``retrieval.cross_lang_weight``): the language the
        question is asked in (``lang``, detected when not given) has its own BM25 and dense
        neighbours, and this lets a manual that exists only in the other language still rank.
        """
        cfg = self.settings.retrieval
        t0 = time.perf_counter()
        lang = lang or detect_lang(question)
        dense: list[DenseQuery] = []
        for i, embedder in enumerate(self.embedders if cfg.use_dense else []):
            vector = self.query_vector(question) if i == 0 else embedder.embed_query(question)
            direction = self.language_direction() if i == 0 and cfg.language_shift > 0 else None
            if direction is not None:
                vector = toward_other_language(vector, lang, direction, cfg.language_shift)
            dense += dense_queries(
                embedder.name,
                vector,
                title_vectors=self.settings.embedder.title_vectors,
                cross_lang=other_lang(lang) if i == 0 else None,
                cross_lang_weight=cfg.cross_lang_weight,
            )
        t1 = time.perf_counter()
        spelled = self.speller.spelled(question, acl) if cfg.use_bm25 else None
        sparse = self.sparse.encode_query(question, spelled) if cfg.use_bm25 else None
        translations = self.translations(question) if cfg.use_bm25 and translate else None
        translated = translated_query(translations, lang, cfg.cross_lang_terms_weight)
        t2 = time.perf_counter()
        k = top_k or cfg.top_k
        learned = memory.ranker if memory is not None and rank else None
        ranker = self.ranker() if rank and learned is None else None
        lexical = self._lexical.plan(question, lang, cfg, self._max_fused())
        second = learned is not None or ranker is not None
        fetch = max(k, cfg.ranker_candidates) if second else k
        if lexical is not None and lexical.candidates:  # proximity reorders the first 50
            fetch, second = max(fetch, lexical.candidates), True
        if self.cross is not None:
            fetch = max(fetch, self.cross.candidates)
        found = functools.partial(
            self.store.search, dense=dense, top_k=overfetch(fetch), acl=acl, fusion=self.fusion(),
            prefetch_k=max(cfg.prefetch_k, fetch) if second or not rank else cfg.prefetch_k,
            translated=translated,
        )  # fmt: skip
        # Mid-replacement a document has points of two versions: show one (issue 5).
        passages = current_versions(found(sparse=sparse))[:fetch]
        codes = self._lexical.looked_up(lexical, passages) if sparse is not None else []
        if sparse is not None and codes:  # a code looked up, not the subject: a word too
            sparse = self.sparse.encode_query(question, spelled, codes)
            passages = current_versions(found(sparse=sparse))[:fetch]
        if lexical is not None:
            passages = self._lexical.apply(lexical, question, passages, spelled)
        t3 = time.perf_counter()
        if learned is not None:
            features = self.rank_features(question, passages, lang)
            passages = learned.rank(passages, features, self.query_vector(question), acl)
        elif ranker is not None:
            features = self.rank_features(question, passages, lang)
            passages = reorder(passages, ranker.scores(features), features)
        if self.cross is not None:
            passages = cross_rerank(self.cross.score, question, passages, self.cross.candidates)
        passages = passages[:k]
        t4 = time.perf_counter()
        timings = {
            "embed_ms": (t1 - t0) * 1000,
            "sparse_ms": (t2 - t1) * 1000,
            "search_ms": (t3 - t2) * 1000,
            "rerank_ms": (t4 - t3) * 1000,
        }
        record_search(timings)
        return passages, timings

    def translations(self, question: str) -> dict[str, list[str]] | None:
        """:meth:`BM25Encoder.translations` of ``question``; ``None`` when off or where a language
        has under ``LANGUAGE_MIN_CHUNKS`` chunks: such a knowledge base works as before."""
        off = self.settings.retrieval.cross_lang_terms_weight <= 0 or not self.embedders
        if off or self.language_direction() is None:
            return None
        return self.sparse.translations(question, load_lexicon())

    def query_vector(self, text: str) -> list[float]:
        """The first embedder's query vector of ``text`` (kept for the next few questions: the
        search and the question memory read the same one)."""
        vector = self._vectors.get(text)
        if vector is None:
            vector = self.embedders[0].embed_query(text)
            if len(self._vectors) >= QUERY_VECTORS:
                self._vectors.clear()
            self._vectors[text] = vector
        return vector

    def ranker(self) -> Ranker | None:
        """The configured second-stage ranker (loaded once), or ``None`` when it is off."""
        cfg = self.settings.retrieval
        return self._rankers.get(cfg.ranker if cfg.use_dense else "off")

    def use_ranker(self, ranker: Ranker | None) -> None:
        """Rank with ``ranker`` from now on (``kb train`` asks with models fitted without the
        question); ``None`` returns to the configured one."""
        self._rankers.use(ranker)

    def rank_features(
        self, question: str, passages: list[ScoredChunk], lang: Lang
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The ranker's features of ``passages`` for ``question`` (also used by ``kb train``)."""
        dense_name = self.embedders[0].name if self.embedders else ""
        terms = [self._terms(p.chunk) for p in passages]
        question_terms, max_fused = self.sparse.terms(question), self._max_fused()
        return candidate_features(
            question_terms, passages, terms, lang=lang, dense_name=dense_name, max_fused=max_fused
        )

    def language_direction(self) -> list[float] | None:
        """The language direction of the store (:class:`~retrieval.lang.LanguageDirection`)."""
        return self._direction.get()

    def forget_language_direction(self) -> None:
        """Compute the language direction again at the next question (after an ingestion)."""
        self._direction.forget()

    def ask(
        self,
        question: str,
        *,
        acl: AccessFilter,
        lang: Lang | None = None,
        depth: int | None = None,
        synonyms: SynonymTable = EMPTY,
        memory: QuestionMemory | None = None,
    ) -> AnswerResult:
        """Answer from the passages the caller may read, or escalate. Never raises on no hits.

        With an LLM configured, a question the passages answer (confidence at or above the
        threshold) gets a generated answer, checked sentence by sentence against the passages
        it cites; on failure the extractive answer is given (:mod:`retrieval.generate`).

        :param depth: retrieve (and return in ``passages``) this many passages, for evaluation;
            the answer and its confidence still come from the first ``retrieval.top_k``, so an
            evaluation measures exactly what is served.
        :param synonyms: the staff vocabulary: the question is searched with the equivalents
            of the terms it holds (:mod:`retrieval.synonyms`).
        :param memory: the confirmed questions (:mod:`retrieval.memory`, :mod:`retrieval.recall`).
        """
        final: AnswerResult | None = None
        events = self._answer(
            question, acl=acl, lang=lang, stream=False, depth=depth, synonyms=synonyms,
            memory=memory,
        )  # fmt: skip
        for event in events:
            if isinstance(event, Final):
                final = event.result
        assert final is not None
        return final

    def ask_stream(
        self,
        question: str,
        *,
        acl: AccessFilter,
        lang: Lang | None = None,
        synonyms: SynonymTable = EMPTY,
        memory: QuestionMemory | None = None,
    ) -> Iterator[AskEvent]:
        """:meth:`ask` as events: :class:`NewCitations` and :class:`Delta` as checked text
        arrives, then :class:`Final` with the whole result. An extractive answer or an
        escalation comes as one delta. The final answer may differ from the deltas (a fallback
        after a failed generation): the :class:`Final` result is authoritative."""
        return self._answer(
            question, acl=acl, lang=lang, stream=True, synonyms=synonyms, memory=memory
        )

    def _answer(
        self,
        question: str,
        *,
        acl: AccessFilter,
        lang: Lang | None,
        stream: bool,
        depth: int | None = None,
        synonyms: SynonymTable = EMPTY,
        memory: QuestionMemory | None = None,
    ) -> Iterator[AskEvent]:
        lang = lang or detect_lang(question)
        searched = synonyms.expand(question, self.sparse)
        # The question's own terms that a set names count as known: the knowledge base
        # holds the thing under another name (an abbreviation it never prints).
        aliases = synonyms.aliases(question, self.sparse) if searched != question else set()
        # Confirmed questions are matched as asked (they were stored as asked, unexpanded).
        result = self.extractive(
            searched, acl=acl, lang=lang, depth=depth, aliases=aliases, memory=memory,
            asked=question,
        )  # fmt: skip
        result.faithfulness = extractive_faithfulness(result)
        if self.llm is not None and result.status == "answered":
            # Below the threshold the question escalates without calling the model.
            yield from generate(
                question, result, self.llm, self.settings.llm, self._citation, stream=stream
            )
            return
        if result.citations:
            yield NewCitations(list(result.citations))
        yield Delta(result.answer)
        yield Final(result)

    def extractive(
        self,
        question: str,
        *,
        acl: AccessFilter,
        lang: Lang | None = None,
        depth: int | None = None,
        aliases: set[str] | None = None,
        memory: QuestionMemory | None = None,
        asked: str | None = None,
    ) -> AnswerResult:
        """Retrieval, the extractive answer and the confidence gate, all over the served
        passages (``retrieval.top_k``), except that the gate reads the search's own passages
        where the memory's learned order has no answerability; ``depth`` only appends deeper
        ones for evaluation."""
        t0 = time.perf_counter()
        cfg = self.settings.retrieval
        lang = lang or detect_lang(question)
        passages, timings = self.search(question, acl=acl, lang=lang, memory=memory)
        asked = asked or question
        vector = self.query_vector(asked) if memory is not None and self.embedders else []
        recall = recall_for(memory, vector, self.sparse.terms(asked), acl)
        if recall.hits:
            passages = with_memory(passages, recall, acl, self.store, self._max_fused())[
                : cfg.top_k
            ]
        retrieved = passages
        if depth is not None and depth > len(passages):
            # Evaluation: the served passages, then a deeper search's others. Not one deeper
            # search: its longer prefetches would shift the fused scores the gate reads.
            deep, _ = self.search(question, acl=acl, lang=lang, top_k=depth, memory=memory)
            seen = {p.chunk.point_id for p in passages}
            rest = [p for p in deep if p.chunk.point_id not in seen]
            retrieved = passages + rest[: depth - len(passages)]
        t1 = time.perf_counter()
        terms = self.speller.terms(question, acl)
        translations = self.translations(question)  # the search looked them up too
        compose = functools.partial(
            compose_extractive,
            max_citations=cfg.max_citations,
            max_sentences=cfg.max_answer_sentences,
            per_document=cfg.citations_per_document,
            translations=translations, lang=lang, encoder=self.sparse, codes=named_in(question),
        )  # fmt: skip
        confirmed = confirmed_first(recall, passages, MEMORY_CANDIDATE)
        answer, cited = compose(terms, passages, confirmed=confirmed)
        # The confidence was fitted on the search's own order and answer: it judges those where
        # the memory's ranker has no answerability of its own (docs/question-memory.md) or the
        # question's translation searched too (its prefetch lifts passages as the fit never saw).
        judged, judged_answer, judged_cited = passages, answer, cited
        ranker = memory.ranker if memory is not None else None
        unfitted = ranker is not None and ranker.answerability is None
        if unfitted or (cfg.use_bm25 and translations):
            own = None if unfitted else memory
            judged, _ = self.search(question, acl=acl, lang=lang, memory=own, translate=False)
            if recall.hits and own is not None:
                judged = with_memory(judged, recall, acl, self.store, self._max_fused())
            judged = judged[: cfg.top_k]
            judged_answer, judged_cited = compose(terms, judged, translations=None)

        # A retrieved passage's terms are known; the store is asked about the rare rest.
        present = functools.partial(self.speller.present, acl=acl)
        features = gate_features(
            terms, judged, judged_answer, judged_cited, self.sparse, present,
            dense_name=self.embedders[0].name if self.embedders and cfg.use_dense else "",
            max_rrf=self._max_fused("rrf"), max_minmax=self._max_fused("minmax"), aliases=aliases,
        )  # fmt: skip
        confidence = self.confidence.score(features) if cited and judged_cited else 0.0
        if cfg.identifier_weight > 0 and unknown(question, present):  # "E-305": none writes it
            confidence, features["unknown_identifier"] = 0.0, 1.0
        gate = ranker.gate if ranker is not None else None
        confidence = apply_recall(confidence, recall, cited, features, gate)
        t2 = time.perf_counter()
        timings["answer_ms"] = (t2 - t1) * 1000
        timings["total_ms"] = (t2 - t0) * 1000
        if confidence < cfg.confidence_threshold or not cited:
            return AnswerResult(
                status="escalated", answer=ESCALATION_MESSAGE[lang], citations=[],
                confidence=confidence, lang=lang, passages=retrieved, features=features,
                timings_ms=timings, memory=recall.to_log(),
            )  # fmt: skip
        # Shown: said once in the asker's language, a lower Q&A entry by what it adds.
        shown = functools.partial(compose, restated=self._restated, whole_entries=False)
        answer, cited = shown(terms, passages, confirmed=confirmed)
        if not confirmed:  # asked how: the procedure, whole and in order
            best, chunks = passages[: cfg.max_citations], self.store.document_chunks
            steps = procedure_answer(question, terms, best, self.sparse, chunks, lang)
            answer, cited = steps or (answer, cited)
        read = {p.chunk.point_id: p for p in cited}  # a procedure's passage: its whole section
        return AnswerResult(
            status="answered", answer=answer,
            citations=[self._citation(i + 1, p) for i, p in enumerate(cited)],
            confidence=confidence, lang=lang,
            passages=[read.get(p.chunk.point_id, p) for p in retrieved],
            features=features, timings_ms=timings, memory=recall.to_log(),
        )  # fmt: skip

    def fusion(self) -> Fusion:
        """The configured fusion of the prefetches."""
        r = self.settings.retrieval
        return Fusion(r.rrf_k, r.dense_weight, r.bm25_weight, r.fusion, r.section_dense_scale)

    def _max_fused(self, method: FusionMethod | None = None) -> float:
        """Fused score (by ``method``; the configured fusion's by default) of a passage ranked
        first by every prefetch over all languages (the cross-language prefetch aside: the
        question's language tops it)."""
        cfg = self.settings.retrieval
        fusion = replace(self.fusion(), method=method) if method else self.fusion()
        n_dense = len(self.embedders) * (2 if self.settings.embedder.title_vectors else 1)
        dense = n_dense * fusion.best(cfg.dense_weight) if cfg.use_dense else 0.0
        return dense + (fusion.best(cfg.bm25_weight) if cfg.use_bm25 else 0.0)

    def _restated(self, text: str, said: list[str], skip: Set[str]) -> tuple[int, int]:
        return self.sparse.restated(text, said, load_lexicon(), skip)  # one language shown

    def _citation(self, n: int, passage: ScoredChunk) -> Citation:
        return cite(n, passage, self.settings.public_base_url)
