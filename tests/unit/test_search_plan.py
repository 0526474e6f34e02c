"""What the ask path asks the store for: the dense prefetches, the fusion's arithmetic and the
confidence model fitted with it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kb.retrieval.answer import FEATURES
from kb.retrieval.embedders import dense_queries
from kb.retrieval.lang import other_lang
from kb.retrieval.models import DenseQuery, Fusion, Lang
from kb.retrieval.presets import MINMAX_CONFIDENCE, SMALL_CHUNKS
from kb.retrieval.settings import RetrievalSettings
from kb.retrieval.stores._common import fuse


def test_text_and_title_prefetches_then_the_other_language_one() -> None:
    v = [0.1, 0.2]
    queries = dense_queries("e5", v, title_vectors=True, cross_lang="en", cross_lang_weight=0.4)
    assert queries == [
        DenseQuery("e5", v),
        DenseQuery("e5_title", v),
        DenseQuery("e5", v, lang="en", weight=0.4),
    ]


@pytest.mark.parametrize(("lang", "weight"), [(None, 0.4), ("ja", 0.0)])
def test_no_cross_language_prefetch_without_a_language_or_a_weight(
    lang: Lang | None, weight: float
) -> None:
    queries = dense_queries(
        "e5", [1.0], title_vectors=False, cross_lang=lang, cross_lang_weight=weight
    )
    assert queries == [DenseQuery("e5", [1.0])]


def test_other_language() -> None:
    assert other_lang("ja") == "en" and other_lang("en") == "ja"


def test_fusion_gain_is_classic_rrf_at_weight_one_and_stretches_ranks_below() -> None:
    fusion = Fusion(k=2)
    assert [fusion.gain(r, 1.0) for r in range(3)] == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    # Weight 0.5: rank r counts as rank 2r + 1 would at weight 1 (k - 1 + (r + 1) / w).
    assert [fusion.gain(r, 0.5) for r in range(3)] == pytest.approx([1 / 3, 1 / 5, 1 / 7])
    assert fusion.gain(0, 0.0) == 0.0


def test_what_a_prefetch_gives_the_passage_it_ranks_first() -> None:
    assert Fusion(method="rrf").best(0.4) == Fusion().gain(0, 0.4) == pytest.approx(1 / 3.5)
    assert Fusion(method="minmax").best(0.4) == 0.4  # its best normalises to 1


def test_the_min_max_confidence_model_comes_with_its_fusion(tmp_path: Path) -> None:
    default = RetrievalSettings()
    fitted = json.loads(MINMAX_CONFIDENCE.read_text(encoding="utf-8"))
    assert default.fusion == "rrf" and default.confidence_weights != fitted["weights"]
    chosen = RetrievalSettings(answerability="minmax")
    assert chosen.fusion == "minmax"
    assert default.section_dense_scale == 1.0 and chosen.section_dense_scale == 0.25
    assert chosen.confidence_threshold == fitted["threshold"]
    assert chosen.confidence_weights == fitted["weights"]
    assert set(chosen.confidence_weights) <= set(FEATURES)
    # A model file that names no fusion keeps the configured one.
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"bias": -1.0, "weights": {"cosine": 2.0}, "threshold": 0.5}))
    assert RetrievalSettings(answerability=str(own)).fusion == "rrf"
    assert RetrievalSettings(answerability=str(own)).section_dense_scale == 1.0
    assert RetrievalSettings(answerability=str(own)).chunk_size == default.chunk_size
    # A threshold set with the file wins over the file's (KB_RETRIEVAL__CONFIDENCE_THRESHOLD).
    both = RetrievalSettings(answerability="minmax", confidence_threshold=0.7)
    assert both.confidence_threshold == 0.7 and both.confidence_weights == fitted["weights"]
    with pytest.raises(ValueError, match="retrieval.answerability: cannot read"):
        RetrievalSettings(answerability=str(tmp_path / "missing.json"))


def test_a_model_file_brings_the_chunking_it_was_fitted_on() -> None:
    # Each shipped model's threshold means what it meant on the chunks it was fitted on:
    # choosing the file searches those chunks (after kb ingest --reindex).
    default = RetrievalSettings()
    cut = ("chunk_size", "chunk_overlap", "whole_section_size", "citations_per_document")

    def chunking(chosen: RetrievalSettings) -> tuple[int, ...]:
        return tuple(getattr(chosen, key) for key in cut)

    assert chunking(default) == (320, 40, 0, 0)
    for choice in ("builtin", "minmax"):
        assert chunking(RetrievalSettings(answerability=choice)) == (320, 40, 0, 0), choice
    small = RetrievalSettings(answerability="small-chunks")
    fitted = json.loads(SMALL_CHUNKS.read_text(encoding="utf-8"))
    assert chunking(small) == (96, 20, 0, 1)
    assert small.confidence_threshold == fitted["threshold"] != default.confidence_threshold
    assert small.confidence_weights == fitted["weights"] and small.fusion == default.fusion


def test_two_builds_of_one_index_give_the_same_fused_scores() -> None:
    """Two builds of one index can sum a BM25 score's terms in another order (14.630333 and
    14.630332 for the same passage), and return equal scores (two sections of the same text)
    in another order. The fused scores, which the confidence reads, and so the answers of a
    replay that learns from them (``kb eval --history``), must be the same for both."""

    def hits(top: float, twins: tuple[str, str]) -> list[list[SimpleNamespace]]:
        sparse = [("p0", top), ("p1", 9.25), ("p2", 3.5)]
        dense = [("p1", 0.91), (twins[0], 0.88), (twins[1], 0.88), ("p0", 0.85)]
        return [[SimpleNamespace(id=i, score=s, payload={}) for i, s in prefetch]
                for prefetch in (sparse, dense)]  # fmt: skip

    a = np.float32(14.630333)
    b = np.nextafter(a, np.float32(0))
    assert float(a) != float(b)
    for method in ("rrf", "minmax"):
        fusion = Fusion(method=method)
        one = fuse(fusion, [1.0, 1.0], hits(float(a), ("p3", "p4")), 5, [])
        other = fuse(fusion, [1.0, 1.0], hits(float(b), ("p4", "p3")), 5, [])
        assert one == other, method
