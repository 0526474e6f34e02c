"""What the ask path asks the store for: the dense prefetches and the fusion's arithmetic."""

from __future__ import annotations

import pytest

from kb.retrieval.embedders import dense_queries
from kb.retrieval.lang import other_lang
from kb.retrieval.models import DenseQuery, Fusion, Lang


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
