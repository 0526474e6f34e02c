"""One contract, every VectorStore: Qdrant Edge, qdrant-client local mode, and a real server.

The server variant runs when ``KB_TEST_QDRANT_URL`` is set (``-m qdrant_server``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from kb.retrieval.errors import StoreError, StoreLockedError
from kb.retrieval.models import (
    PUBLIC_GROUP,
    AccessFilter,
    DenseQuery,
    EmbeddedChunk,
    Fusion,
    ScoredChunk,
    SparseQuery,
)
from kb.retrieval.protocols import VectorStore
from kb.retrieval.settings import QdrantSettings, Settings
from kb.retrieval.stores import open_store
from kb.retrieval.stores.edge import EdgeStore
from kb.retrieval.stores.server import QdrantServerStore
from tests.contract.helpers import DIMS, embed, make_chunk, sparse, term_id, unit, vectors

ANYONE = AccessFilter()
RRF = Fusion(method="rrf")
MINMAX = Fusion(method="minmax")
HR = AccessFilter(groups=("hr",))
StoreFactory = Callable[[], VectorStore]


def corpus() -> list[EmbeddedChunk]:
    """A public manual (3 chunks), an HR-only policy, and a public FAQ."""
    manual = [embed(make_chunk("manual", i), sparse(wifi=1.0, router=0.5)) for i in range(3)]
    policy = embed(make_chunk("policy", 0, groups=("hr",)), sparse(salary=1.0, wifi=0.2))
    faq = embed(make_chunk("faq", 0), sparse(zebra=1.0, wifi=0.3))
    return [*manual, policy, faq]


def dense_query(seed: str) -> list[DenseQuery]:
    return [DenseQuery(name, v) for name, v in vectors(seed).items()]


def ids(passages: list[ScoredChunk]) -> list[tuple[str, int]]:
    return [(p.chunk.document_id, p.chunk.index) for p in passages]


class VectorStoreContract:
    """Subclasses provide ``make_store``: a factory of stores on one location."""

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Iterator[VectorStore]:
        store = make_store()
        store.ensure_collection(dict(DIMS))
        yield store
        store.close()

    @pytest.fixture
    def filled(self, store: VectorStore) -> VectorStore:
        assert store.upsert(corpus()) == 5
        return store

    # -- collection --------------------------------------------------------------------------

    def test_reads_before_any_collection_are_empty(self, make_store: StoreFactory) -> None:
        store = make_store()
        try:
            assert store.count() == 0
            assert store.search(dense=dense_query("x"), sparse=None, top_k=3, acl=ANYONE) == []
            assert store.document_chunks("manual") == []
            assert store.present_terms([1, 2], acl=ANYONE) == set()
            assert store.access_groups() == set()
        finally:
            store.close()

    def test_ensure_collection_is_idempotent(self, filled: VectorStore) -> None:
        filled.ensure_collection(dict(DIMS))
        assert filled.count() == 5

    @pytest.mark.parametrize(
        "other", [{"e5": 16, "use": 24}, {"e5": 16}, {"e5": 16, "use": 12, "minilm": 8}]
    )
    def test_ensure_collection_with_other_vectors_raises(
        self, store: VectorStore, other: dict[str, int]
    ) -> None:
        with pytest.raises(StoreError, match="rebuild the index"):
            store.ensure_collection(other)

    def test_upsert_with_wrong_dimension_raises(self, store: VectorStore) -> None:
        bad = embed(make_chunk("bad"))
        bad.dense["use"] = [0.1] * 5
        with pytest.raises(StoreError):
            store.upsert([bad])

    # -- writes and counts -------------------------------------------------------------------

    def test_upsert_and_count(self, filled: VectorStore) -> None:
        assert filled.count() == 5
        assert filled.count("manual") == 3
        assert filled.count("nothing") == 0
        assert filled.upsert(corpus()[:2]) == 2  # same ids: replaced, not added
        assert filled.count() == 5

    def test_document_chunks_in_order_round_trip(self, store: VectorStore) -> None:
        chunks = [make_chunk("manual", i) for i in (4, 0, 3, 1, 2)]
        store.upsert([embed(c) for c in chunks])
        passages = store.document_chunks("manual")
        assert [p.chunk.index for p in passages] == [0, 1, 2, 3, 4]
        assert [p.chunk for p in passages] == sorted(chunks, key=lambda c: c.index)
        assert all(p.score == 0 for p in passages)

    def test_delete_document(self, filled: VectorStore) -> None:
        filled.delete_document("manual")
        assert filled.count("manual") == 0
        assert filled.count() == 2
        hits = filled.search(dense=dense_query("manual:h1:0"), sparse=None, top_k=5, acl=HR)
        assert "manual" not in {d for d, _ in ids(hits)}

    def test_delete_document_keeps_one_version(self, store: VectorStore) -> None:
        old = [embed(make_chunk("doc", i, doc_hash="old")) for i in range(3)]
        new = [embed(make_chunk("doc", i, doc_hash="new")) for i in range(2)]
        store.upsert(old + new)
        assert store.count("doc") == 5
        store.delete_document("doc", keep_hash="new")
        assert [p.chunk.doc_hash for p in store.document_chunks("doc")] == ["new", "new"]

    def test_the_same_content_cut_into_fewer_chunks_leaves_no_old_points(
        self, store: VectorStore
    ) -> None:
        # A re-index of unchanged content with larger chunks: the new points overwrite the old
        # ones of the same index (same id), the old cut's others must go too, or searchers
        # (which show a document's lowest version) would see only them.
        old = [embed(make_chunk("doc", i, doc_hash="h")) for i in range(5)]
        store.upsert(old)
        new = [embed(replace(make_chunk("doc", i, doc_hash="h"), version=2)) for i in range(2)]
        store.upsert(new)
        store.delete_document("doc", keep_hash="h", keep_chunks=2)
        kept = store.document_chunks("doc")
        assert [(p.chunk.index, p.chunk.version) for p in kept] == [(0, 2), (1, 2)]

    # -- search ------------------------------------------------------------------------------

    def test_dense_search_finds_exact_vector_first(self, filled: VectorStore) -> None:
        hits = filled.search(dense=dense_query("manual:h1:1"), sparse=None, top_k=3, acl=ANYONE)
        assert len(hits) == 3
        assert ids(hits)[0] == ("manual", 1)
        assert hits[0].chunk == make_chunk("manual", 1)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)

    def test_signals_hold_cosines_and_the_fused_score(self, filled: VectorStore) -> None:
        query = [DenseQuery("e5", unit("q-e5", 16)), DenseQuery("use", unit("q-use", 12))]
        hits = filled.search(dense=query, sparse=sparse(wifi=1.0), top_k=5, acl=HR)
        assert len(hits) == 5
        stored = {(e.chunk.document_id, e.chunk.index): e.dense for e in corpus()}
        for hit in hits:
            assert set(hit.signals) == {"fused", "rrf", "minmax", "dense:e5", "dense:use"}
            assert hit.signals["fused"] == hit.signals["rrf"] == hit.score
            for q in query:
                v = np.asarray(stored[(hit.chunk.document_id, hit.chunk.index)][q.name])
                expected = float(np.dot(q.vector, v) / np.linalg.norm(q.vector) / np.linalg.norm(v))
                assert hit.signals[f"dense:{q.name}"] == pytest.approx(expected, abs=1e-5)

    def test_min_max_fusion_normalises_each_prefetch_over_its_hits(
        self, filled: VectorStore
    ) -> None:
        # One prefetch of weight w: its best passage scores w, its last 0, the rest in between
        # by their cosine.
        query = [DenseQuery("e5", vectors("faq:h1:0")["e5"], weight=0.4)]
        hits = filled.search(dense=query, sparse=None, top_k=10, acl=ANYONE, fusion=MINMAX)
        assert len(hits) == 4 and ids(hits)[0] == ("faq", 0)  # the HR chunk is not readable
        cosines = [h.signals["dense:e5"] for h in hits]
        low, high = min(cosines), max(cosines)
        expected = [0.4 * (c - low) / (high - low) for c in cosines]
        assert [h.score for h in hits] == pytest.approx(expected, abs=1e-5)
        assert hits[0].score == pytest.approx(0.4) and hits[-1].score == pytest.approx(0.0)

    def test_min_max_fusion_adds_the_weighted_prefetches(self, filled: VectorStore) -> None:
        # The FAQ chunk is the dense prefetch's best and the only "zebra" chunk: 0.4 + 1.0.
        # A chunk no prefetch's best gains less; one the sparse prefetch never returned gains
        # nothing from it.
        query = [DenseQuery("e5", vectors("faq:h1:0")["e5"])]
        fusion = Fusion(dense_weight=0.4, sparse_weight=1.0, method="minmax")
        hits = filled.search(
            dense=query, sparse=sparse(zebra=1.0), top_k=10, acl=ANYONE, fusion=fusion
        )
        assert ids(hits)[0] == ("faq", 0)
        assert hits[0].score == pytest.approx(1.4)
        assert all(h.score <= 0.4 + 1e-6 for h in hits[1:])
        # Each passage also carries the score rank fusion with the same weights gives it.
        by_rank = filled.search(
            dense=query,
            sparse=sparse(zebra=1.0),
            top_k=10,
            acl=ANYONE,
            fusion=replace(fusion, method="rrf"),
        )
        rrf = {ids([h])[0]: h.score for h in by_rank}
        assert {ids([h])[0]: h.signals["rrf"] for h in hits} == pytest.approx(rrf)
        # And rank fusion's passages carry their min-max score, which the confidence reads.
        minmax = {ids([h])[0]: h.score for h in hits}
        assert {ids([h])[0]: h.signals["minmax"] for h in by_rank} == pytest.approx(minmax)
        assert by_rank[0].signals["minmax"] == pytest.approx(1.4)

    def test_section_dense_scale_weighs_sections_not_qa_entries(self, store: VectorStore) -> None:
        # The scale multiplies the same-language dense prefetch's min-max share of a passage
        # that is not a Q&A entry; a Q&A entry's share, the other-language prefetch's share and
        # the rank-fusion score stay as they were.
        manual = [embed(make_chunk("manual", i)) for i in range(2)]
        faqs = [
            embed(replace(make_chunk(f"faq{i}"), kind="qa", question="Wi-Fi?")) for i in range(2)
        ]
        japanese = embed(make_chunk("ja", lang="ja"))
        store.upsert([*manual, *faqs, japanese])

        def search(query: DenseQuery, scale: float) -> dict[tuple[str, int], ScoredChunk]:
            fusion = Fusion(method="minmax", section_dense_scale=scale)
            hits = store.search(dense=[query], sparse=None, top_k=10, acl=ANYONE, fusion=fusion)
            return {ids([h])[0]: h for h in hits}

        same = DenseQuery("e5", vectors("manual:h1:1")["e5"], weight=0.4)
        plain, scaled = search(same, 1.0), search(same, 0.25)
        everyone = {("manual", 0), ("manual", 1), ("faq0", 0), ("faq1", 0), ("ja", 0)}
        assert set(plain) == set(scaled) == everyone
        assert plain[("manual", 1)].score == pytest.approx(0.4)  # the prefetch's best
        for key, hit in plain.items():
            factor = 1.0 if key[0].startswith("faq") else 0.25
            assert scaled[key].score == pytest.approx(factor * hit.score, abs=1e-6)
            assert scaled[key].signals["rrf"] == pytest.approx(hit.signals["rrf"])
        other = DenseQuery("e5", vectors("manual:h1:1")["e5"], weight=0.4, lang="ja")
        assert search(other, 0.25)[("ja", 0)].score == pytest.approx(0.4)

    def test_rrf_constant_is_shared(self, filled: VectorStore) -> None:
        # One prefetch: the best passage scores 1 / (k + 0) with Qdrant's k = 2 everywhere.
        query = [DenseQuery("e5", vectors("faq:h1:0")["e5"])]
        hits = filled.search(dense=query, sparse=None, top_k=2, acl=ANYONE, fusion=RRF)
        assert ids(hits)[0] == ("faq", 0)
        assert hits[0].score == pytest.approx(0.5)
        assert hits[1].score == pytest.approx(1 / 3)

    @pytest.mark.parametrize("weight", [0.4, 1.0, 2.0])
    def test_weighted_fusion_gains_follow_the_fusion_formula(
        self, filled: VectorStore, weight: float
    ) -> None:
        query = [DenseQuery("e5", vectors("faq:h1:0")["e5"], weight=weight)]
        hits = filled.search(dense=query, sparse=None, top_k=3, acl=ANYONE, fusion=RRF)
        assert [h.score for h in hits] == pytest.approx([RRF.gain(r, weight) for r in range(3)])

    def test_sparse_term_match_lifts_a_document(self, filled: VectorStore) -> None:
        query = [DenseQuery("e5", vectors("manual:h1:0")["e5"])]
        dense_only = filled.search(dense=query, sparse=None, top_k=5, acl=ANYONE)
        assert ids(dense_only)[0] == ("manual", 0)
        hybrid = filled.search(dense=query, sparse=sparse(zebra=1.0), top_k=5, acl=ANYONE)
        assert ids(hybrid)[0] == ("faq", 0)  # only the FAQ has "zebra"

    def test_sparse_search_applies_idf(self, store: VectorStore) -> None:
        # Raw dot products favour "common" (weight 1.0 against 0.3); IDF must favour "rare".
        docs = [embed(make_chunk("common-heavy"), sparse(common=1.0))]
        docs += [embed(make_chunk(f"filler{i}"), sparse(common=0.5)) for i in range(4)]
        docs.append(embed(make_chunk("rare-light"), sparse(rare=0.3)))
        store.upsert(docs)
        query = sparse(common=1.0, rare=1.0)
        hits = store.search(dense=[], sparse=query, top_k=6, acl=ANYONE)
        assert ids(hits)[:2] == [("rare-light", 0), ("common-heavy", 0)]
        assert all(set(h.signals) == {"fused", "rrf", "minmax"} for h in hits)

    def test_empty_sparse_vector_is_skipped(self, filled: VectorStore) -> None:
        empty = sparse()
        assert filled.search(dense=[], sparse=empty, top_k=5, acl=ANYONE) == []
        hits = filled.search(dense=dense_query("faq:h1:0"), sparse=empty, top_k=1, acl=ANYONE)
        assert ids(hits) == [("faq", 0)]

    def test_top_k_larger_than_prefetch_k(self, filled: VectorStore) -> None:
        hits = filled.search(dense=dense_query("x"), sparse=None, top_k=4, acl=HR, prefetch_k=1)
        assert len(hits) == 4

    def test_language_prefetch_searches_only_that_language_with_its_weight(
        self, filled: VectorStore
    ) -> None:
        filled.upsert(
            [
                embed(make_chunk("handbuch", 0, lang="ja"), sparse(wifi=1.0)),
                embed(make_chunk("hr-ja", 0, lang="ja", groups=("hr",)), sparse(wifi=1.0)),
            ]
        )
        exact = vectors("manual:h1:0")["e5"]
        only_ja = [DenseQuery("e5", exact, lang="ja", weight=0.25)]
        hits = filled.search(dense=only_ja, sparse=None, top_k=5, acl=ANYONE, fusion=RRF)
        assert ids(hits) == [("handbuch", 0)]  # the English chunks and the HR one never enter
        # Its own weight: 1 / (k - 1 + (rank + 1) / w) with k = 2, rank 0, w = 0.25.
        assert hits[0].score == pytest.approx(RRF.gain(0, 0.25)) == pytest.approx(0.2)
        # The same weight in min-max fusion: its one passage is its best.
        hits = filled.search(dense=only_ja, sparse=None, top_k=5, acl=ANYONE, fusion=MINMAX)
        assert ids(hits) == [("handbuch", 0)] and hits[0].score == pytest.approx(0.25)
        hits = filled.search(dense=only_ja, sparse=None, top_k=5, acl=HR)
        assert {d for d, _ in ids(hits)} == {"handbuch", "hr-ja"}
        both = [DenseQuery("e5", exact), *only_ja]
        hits = filled.search(dense=both, sparse=None, top_k=10, acl=ANYONE)
        assert ids(hits)[0] == ("manual", 0)
        assert ("handbuch", 0) in ids(hits)
        assert set(hits[0].signals) == {"fused", "rrf", "minmax", "dense:e5"}

    def test_translated_prefetch_searches_only_its_language_with_its_weight(
        self, filled: VectorStore
    ) -> None:
        filled.upsert(
            [
                embed(make_chunk("handbuch", 0, lang="ja"), sparse(musen=1.0)),
                embed(make_chunk("hr-ja", 0, lang="ja", groups=("hr",)), sparse(musen=1.0)),
            ]
        )
        # "wifi" is in the English chunks too: the prefetch over Japanese never returns them.
        query = SparseQuery(vector=sparse(musen=1.0, wifi=1.0), lang="ja", weight=0.25)
        hits = filled.search(dense=[], sparse=None, top_k=5, acl=ANYONE, translated=query)
        assert ids(hits) == [("handbuch", 0)]  # nor the HR one, for someone outside HR
        assert hits[0].score == pytest.approx(RRF.gain(0, 0.25))
        hits = filled.search(dense=[], sparse=None, top_k=5, acl=HR, translated=query)
        assert {d for d, _ in ids(hits)} == {"handbuch", "hr-ja"}
        # Beside the question's own BM25 prefetch: one more ranked list, fused at its weight.
        own = sparse(wifi=1.0)
        hits = filled.search(dense=[], sparse=own, top_k=10, acl=ANYONE, translated=query)
        assert ("handbuch", 0) in ids(hits) and ("manual", 0) in ids(hits)
        assert ("hr-ja", 0) not in ids(hits) and ("policy", 0) not in ids(hits)
        empty = SparseQuery(vector=sparse(), lang="ja", weight=0.25)
        assert ids(filled.search(dense=[], sparse=own, top_k=10, acl=ANYONE, translated=empty)) == (
            ids(filled.search(dense=[], sparse=own, top_k=10, acl=ANYONE))
        )

    def test_language_centroid_averages_one_language_over_every_group(
        self, filled: VectorStore
    ) -> None:
        # The corpus: five English chunks, one of them HR-only; none in Japanese yet.
        assert filled.language_centroid("e5", "ja", limit=100) == ([], 0)
        english = corpus()
        mean, n = filled.language_centroid("e5", "en", limit=100)
        assert n == 5
        expected = np.mean([c.dense["e5"] for c in english], axis=0)
        assert mean == pytest.approx(list(expected), abs=1e-6)
        filled.upsert(
            [embed(make_chunk("handbuch", i, lang="ja"), sparse(wifi=1.0)) for i in range(3)]
        )
        mean, n = filled.language_centroid("use", "ja", limit=2)
        assert n == 2 and len(mean) == DIMS["use"]  # at most ``limit`` chunks are read
        filled.delete_document("handbuch")
        assert filled.language_centroid("e5", "ja", limit=100) == ([], 0)

    # -- access control ----------------------------------------------------------------------

    def test_restricted_document_hidden_even_for_its_exact_vector(
        self, filled: VectorStore
    ) -> None:
        exact = dense_query("policy:h1:0")
        terms = sparse(salary=1.0)
        for acl in (ANYONE, AccessFilter(groups=("finance",))):
            hits = filled.search(dense=exact, sparse=terms, top_k=10, acl=acl)
            assert "policy" not in {d for d, _ in ids(hits)}
            assert len(hits) == 4  # everything public is still there
        hits = filled.search(dense=exact, sparse=terms, top_k=10, acl=HR)
        assert ids(hits)[0] == ("policy", 0)
        assert hits[0].chunk.groups == ("hr",)

    def test_acl_filters_inside_each_prefetch(self, filled: VectorStore) -> None:
        # Filtering after the prefetches would let the hidden policy take the one candidate
        # slot and return nothing; filtering inside them returns the best visible passage.
        exact = dense_query("policy:h1:0")
        hits = filled.search(
            dense=exact, sparse=sparse(salary=1.0, wifi=1.0), top_k=1, acl=ANYONE, prefetch_k=1
        )
        assert len(hits) == 1 and hits[0].chunk.document_id != "policy"

    def test_present_terms_answers_under_the_access_filter(self, filled: VectorStore) -> None:
        wifi, salary, zebra, absent = (term_id(t) for t in ("wifi", "salary", "zebra", "absent"))
        asked = [wifi, salary, zebra, absent, wifi]
        assert filled.present_terms(asked, acl=ANYONE) == {wifi, zebra}  # salary: HR only
        assert filled.present_terms(asked, acl=HR) == {wifi, salary, zebra}
        assert filled.present_terms([], acl=HR) == set()
        filled.delete_document("faq")
        assert filled.present_terms(asked, acl=HR) == {wifi, salary}

    def test_access_groups_lists_every_restricting_group(self, filled: VectorStore) -> None:
        assert filled.access_groups() == {"hr"}
        row = embed(make_chunk("sheet", 0, groups=("sales", "hr")), sparse(price=1.0))
        filled.upsert([row, embed(make_chunk("sheet", 1), sparse(price=1.0))])
        assert filled.access_groups() == {"hr", "sales"}
        filled.delete_document("policy")
        filled.delete_document("sheet")
        assert filled.access_groups() == set()

    def test_public_documents_visible_to_everyone(self, filled: VectorStore) -> None:
        for acl in (ANYONE, HR, AccessFilter(groups=("x", "y"))):
            hits = filled.search(dense=dense_query("faq:h1:0"), sparse=None, top_k=1, acl=acl)
            assert ids(hits) == [("faq", 0)]
            assert hits[0].chunk.groups == ()

    def test_document_ids_restrict_the_search(self, filled: VectorStore) -> None:
        q = dense_query("manual:h1:0")
        hits = filled.search(dense=q, sparse=None, top_k=10, acl=HR, document_ids=["faq", "policy"])
        assert {d for d, _ in ids(hits)} == {"faq", "policy"}
        hits = filled.search(dense=q, sparse=None, top_k=10, acl=ANYONE, document_ids=["policy"])
        assert hits == []  # the restriction never widens access
        assert filled.search(dense=q, sparse=None, top_k=10, acl=HR, document_ids=[]) == []

    def test_set_groups_changes_visibility_in_place(self, filled: VectorStore) -> None:
        q = dense_query("manual:h1:2")
        filled.set_groups("manual", ["finance", "finance"])
        assert filled.count() == 5
        hits = filled.search(dense=q, sparse=None, top_k=10, acl=ANYONE)
        assert "manual" not in {d for d, _ in ids(hits)}
        finance = AccessFilter(groups=("finance",))
        hits = filled.search(dense=q, sparse=None, top_k=10, acl=finance)
        assert ids(hits)[0] == ("manual", 2)
        assert hits[0].chunk.groups == ("finance",)
        filled.set_groups("manual", [])
        assert all(p.chunk.groups == () for p in filled.document_chunks("manual"))
        hits = filled.search(dense=q, sparse=None, top_k=1, acl=ANYONE)
        assert ids(hits) == [("manual", 2)]

    # -- lifecycle ---------------------------------------------------------------------------

    def test_reopen_keeps_the_data(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.ensure_collection(dict(DIMS))
        store.upsert(corpus())
        store.set_groups("faq", ["hr"])
        store.close()
        again = make_store()
        try:
            assert again.count() == 5  # readable before ensure_collection
            again.ensure_collection(dict(DIMS))
            assert [p.chunk.groups for p in again.document_chunks("faq")] == [("hr",)]
            hits = again.search(dense=dense_query("faq:h1:0"), sparse=None, top_k=1, acl=HR)
            assert ids(hits) == [("faq", 0)]
        finally:
            again.close()

    def test_closed_store_refuses_calls(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.ensure_collection(dict(DIMS))
        store.close()
        store.close()  # idempotent
        with pytest.raises(StoreError, match="closed"):
            store.count()

    def test_concurrent_searches_and_writes(self, filled: VectorStore) -> None:
        errors: list[BaseException] = []

        def read() -> None:
            try:
                for i in range(15):
                    hits = filled.search(
                        dense=dense_query(f"r{i}"), sparse=sparse(wifi=1.0), top_k=3, acl=HR
                    )
                    assert len(hits) == 3
            except BaseException as exc:
                errors.append(exc)

        def write() -> None:
            try:
                for i in range(10):
                    filled.upsert([embed(make_chunk(f"w{i}", j)) for j in range(3)])
                    filled.set_groups(f"w{i}", ["hr"])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(3)] + [
            threading.Thread(target=write)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert filled.count() == 5 + 30


class TestEdgeStore(VectorStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: EdgeStore(tmp_path / "qdrant", "kb_chunks")

    def test_second_open_in_this_process_is_locked(self, make_store: StoreFactory) -> None:
        first = make_store()
        first.ensure_collection(dict(DIMS))
        second = make_store()
        with pytest.raises(StoreLockedError, match=r"qdrant/kb_chunks is in use by another store"):
            second.count()
        first.close()
        assert second.count() == 0  # the lock goes with close()
        second.close()

    def test_second_open_from_another_process_is_locked(
        self, make_store: StoreFactory, tmp_path: Path
    ) -> None:
        store = make_store()
        store.ensure_collection(dict(DIMS))
        code = (
            "import sys\nfrom pathlib import Path\nfrom retrieval.stores.edge import EdgeStore\n"
            "from kb.retrieval.errors import StoreLockedError\n"
            "try:\n    EdgeStore(Path(sys.argv[1]), 'kb_chunks').count()\n"
            "except StoreLockedError as e:\n    print('LOCKED', e.detail)\n"
        )
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "qdrant")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        store.close()
        assert out.stdout.startswith("LOCKED"), out.stderr
        assert (
            f"{tmp_path / 'qdrant' / 'kb_chunks'} is in use by another process (pid {os.getpid()})"
            in out.stdout
        )
        assert "kb serve" in out.stdout

    def test_damaged_folder_raises_store_error_naming_it(
        self, make_store: StoreFactory, tmp_path: Path
    ) -> None:
        store = make_store()
        store.ensure_collection(dict(DIMS))
        store.close()
        (tmp_path / "qdrant" / "kb_chunks" / "edge_config.json").write_text("{garbage")
        damaged = make_store()
        with pytest.raises(StoreError, match="kb_chunks could not be opened") as info:
            damaged.count()
        assert not isinstance(info.value, StoreLockedError)
        assert "kb ingest --recreate" in info.value.detail
        damaged.drop_collection()  # the cure works on a damaged folder
        damaged.ensure_collection(dict(DIMS))
        assert damaged.count() == 0
        damaged.close()

    def test_drop_collection(self, filled: EdgeStore) -> None:
        filled.drop_collection()
        assert filled.count() == 0
        filled.ensure_collection({"e5": 8})
        assert filled.count() == 0

    def test_optimize_keeps_results(self, filled: EdgeStore) -> None:
        filled.optimize()
        hits = filled.search(dense=dense_query("faq:h1:0"), sparse=None, top_k=1, acl=ANYONE)
        assert ids(hits) == [("faq", 0)]


class TestLocalModeStore(VectorStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: QdrantServerStore("kb_chunks", path=tmp_path / "local", local_mode=True)

    def test_second_open_is_locked(self, make_store: StoreFactory, tmp_path: Path) -> None:
        first = make_store()
        first.ensure_collection(dict(DIMS))
        second = make_store()
        with pytest.raises(StoreLockedError, match=str(tmp_path / "local")):
            second.count()
        first.close()
        second.close()

    def test_drop_collection(self, filled: QdrantServerStore) -> None:
        filled.drop_collection()
        assert filled.count() == 0
        filled.ensure_collection({"e5": 8})


@pytest.mark.qdrant_server
class TestServerStore(VectorStoreContract):
    @pytest.fixture
    def make_store(self) -> Iterator[StoreFactory]:
        url = os.environ.get("KB_TEST_QDRANT_URL")
        if not url:
            pytest.skip("KB_TEST_QDRANT_URL is not set")
        name = f"kb_contract_{uuid.uuid4().hex[:12]}"
        api_key = os.environ.get("KB_TEST_QDRANT_API_KEY")
        yield lambda: QdrantServerStore(name, url=url, api_key=api_key)
        cleanup = QdrantServerStore(name, url=url, api_key=api_key)
        cleanup.drop_collection()
        cleanup.close()


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    edge = open_store(Settings(data_dir=tmp_path))
    assert isinstance(edge, EdgeStore)
    assert edge.folder == tmp_path / "qdrant" / "kb_chunks"
    local = open_store(Settings(data_dir=tmp_path, qdrant=QdrantSettings(local_mode=True)))
    assert isinstance(local, QdrantServerStore) and "local store" in local.where
    server = open_store(Settings(qdrant=QdrantSettings(url="http://qdrant:6333", collection="c")))
    assert isinstance(server, QdrantServerStore) and "http://qdrant:6333" in server.where
    for store in (edge, local, server):
        store.close()  # never opened: nothing to release
    assert not (tmp_path / "qdrant").exists()


def test_public_marker_is_what_the_filter_matches() -> None:
    assert make_chunk("d").payload()["groups"] == [PUBLIC_GROUP]
    assert PUBLIC_GROUP in ANYONE.allowed()


class TestEdgeStoreInt8(VectorStoreContract):
    """The whole contract with int8-quantised dense vectors (issue 9): same results."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: EdgeStore(tmp_path / "qdrant", "kb_chunks", quantization="int8")

    def test_optimize_keeps_results(self, filled: EdgeStore) -> None:
        filled.optimize()
        hits = filled.search(dense=dense_query("faq:h1:0"), sparse=None, top_k=1, acl=ANYONE)
        assert ids(hits) == [("faq", 0)]


class TestLocalModeStoreInt8(VectorStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: QdrantServerStore(
            "kb_chunks", path=tmp_path / "local", local_mode=True, quantization="int8"
        )


def test_collection_layout_and_quantization_reach_the_server_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Local mode accepts but drops these collection options, so record what the adapter sends
    # (the real call still runs).
    sent: dict[str, object] = {}
    real = QdrantClient.create_collection

    def spy(self: QdrantClient, *args: object, **kwargs: object) -> bool:
        sent.update(kwargs)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(QdrantClient, "create_collection", spy)
    settings = Settings(
        data_dir=tmp_path,
        qdrant=QdrantSettings(
            local_mode=True,
            quantization="int8",
            shard_number=3,
            replication_factor=2,
            write_consistency_factor=2,
        ),
    )
    store = open_store(settings)
    store.ensure_collection(dict(DIMS))
    store.close()
    quantization = sent["quantization_config"]
    assert isinstance(quantization, models.ScalarQuantization)
    assert quantization.scalar.type == models.ScalarType.INT8
    assert (sent["shard_number"], sent["replication_factor"]) == (3, 2)
    assert sent["write_consistency_factor"] == 2
    plain_settings = Settings(data_dir=tmp_path / "plain", qdrant=QdrantSettings(local_mode=True))
    plain = open_store(plain_settings)
    plain.ensure_collection(dict(DIMS))
    plain.close()
    assert sent["quantization_config"] is None and sent["shard_number"] is None
    edge = open_store(Settings(data_dir=tmp_path, qdrant=QdrantSettings(quantization="int8")))
    assert isinstance(edge, EdgeStore) and edge.quantization == "int8"
    edge.close()
